//! The state word under loom: pins, unpins and discards racing.
#![cfg(loom)]

#[test]
fn two_pinners_and_a_discarder() {
    loom_tests::state::two_pinners_and_a_discarder();
}

#[test]
fn two_discarders_race() {
    loom_tests::state::two_discarders_race();
}

#[test]
fn unpin_racing_discard() {
    loom_tests::state::unpin_racing_discard();
}
