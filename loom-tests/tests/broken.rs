//! The models must be able to fail: with `--cfg discardable_broken` the
//! crate's `try_discard` checks the word and then sets `DISCARDED` in a
//! separate store, so a pin can slip in between. `.ci/loom.sh` runs this
//! test in that build and requires loom to reject it.
#![cfg(all(loom, discardable_broken))]

#[test]
fn broken_protocol_is_rejected() {
    loom_tests::state::two_pinners_and_a_discarder();
}
