//! The models must be able to fail: each protocol has a deliberately broken
//! variant behind a cfg switch, and `.ci/loom.sh` builds this test once per
//! switch and requires loom to reject each model that covers it (one test
//! per model; the tests of one switch share its build).
//!
//! - `--cfg discardable_broken`: `try_discard` checks the word and then sets
//!   `DISCARDED` in a separate store, so a pin or a second discarder can
//!   slip in between.
//! - `--cfg discardable_broken_lazy`: `try_begin_revive` checks the word and
//!   then sets `REVIVING` in a separate `fetch_or`, so two pinners can both
//!   revive, and the second takes the first's swap for a kernel discard.
//! - `--cfg discardable_broken_epoch`: `Core::pass` drops its epoch guard
//!   before it releases the victims it claimed, so a header it still reads
//!   can be retired and freed under it.
//! - `--cfg discardable_broken_inflight`: the allocator's remote freer
//!   leaves `remote_inflight` right after its push, so the owner can release
//!   the span while the freer still reads its header.
//! - `--cfg discardable_broken_park`: the owner flags a parking span's
//!   remote list whatever it holds, so a block pushed quietly just before
//!   the park sits on a parked span whose owner nobody tells.
//! - `--cfg discardable_broken_adopt`: the abandoned set collects a stolen
//!   span's lists, which its thief gave back to the OS.
//! - `--cfg discardable_broken_restore`: a failed lazy offer restores the
//!   saved words with plain stores, so a page the kernel took comes back
//!   zeroed but for its first word, and is pinned as intact.
//! - `--cfg discardable_broken_intake`: `Arena::register` publishes a new
//!   header on the intake without Release, so the manager can read it
//!   before its creator's writes.
//! - `--cfg discardable_broken_orphan`: the table retires a dropped header
//!   whatever its pins, under an owned guard that still reads it.
//! - `--cfg discardable_broken_unpin`: `unpin` is Relaxed, so a discarder's
//!   Acquire does not order the last reader's accesses before the free.
//! - `--cfg discardable_broken_claim`: a reviver writes each saved word back
//!   without first claiming the page from the kernel (the cookie swap), so
//!   a page the kernel took comes back zeroed but for its first word.
//! - `--cfg discardable_broken_group`: a group slot's publication writes
//!   its fields with the slot still marked ready (no seqlock), so a reader
//!   can accept fields of two publications, and an owner that lost its
//!   slot to a taker writes over the taker's fields.
//! - `--cfg discardable_broken_end_offer`: `end_offer` is Relaxed, so a
//!   reviver may miss the saved words, a pinner that waited out a failed
//!   offer may read a cookie, and the owner's drop may free the pages
//!   under the offerer's last touch.
//! - `--cfg discardable_broken_quiet`: a remote freer's quiet push is
//!   Relaxed, so the owner's collect does not order the freer's last access
//!   to the span header before the span's release.
//! - `--cfg discardable_broken_adopt_full`: an adopter takes an abandoned
//!   span with no free block, which its refill parks on its own full list.
#![cfg(loom)]

#[cfg(discardable_broken)]
#[test]
fn broken_discard_is_rejected() {
    loom_tests::state::two_pinners_and_a_discarder();
}

#[cfg(discardable_broken)]
#[test]
fn broken_discard_is_rejected_by_two_discarders() {
    loom_tests::state::two_discarders_race();
}

#[cfg(discardable_broken)]
#[test]
fn broken_discard_is_rejected_by_a_reviver() {
    loom_tests::lazy::discard_racing_a_reviver();
}

#[cfg(discardable_broken_lazy)]
#[test]
fn broken_revive_is_rejected() {
    loom_tests::lazy::two_pinners_revive_once();
}

#[cfg(discardable_broken_epoch)]
#[test]
fn broken_epoch_guard_is_rejected() {
    loom_tests::table::last_handle_dropped_while_the_manager_scans();
}

#[cfg(discardable_broken_inflight)]
#[test]
fn broken_inflight_is_rejected() {
    loom_tests::remote_free::owner_takes_back_a_parked_span_while_a_block_is_freed_remotely();
}

#[cfg(discardable_broken_park)]
#[test]
fn broken_park_is_rejected() {
    loom_tests::remote_free::owner_parks_while_the_last_block_is_freed_remotely();
}

#[cfg(discardable_broken_adopt)]
#[test]
fn broken_adopt_is_rejected() {
    loom_tests::abandon::thread_exits_while_its_parked_span_empties();
}

#[cfg(discardable_broken_restore)]
#[test]
fn broken_restore_is_rejected() {
    loom_tests::lazy::partly_failed_offer_racing_a_pinner();
}

#[cfg(discardable_broken_intake)]
#[test]
fn broken_intake_is_rejected() {
    loom_tests::table::handle_created_while_the_manager_drains();
}

#[cfg(discardable_broken_orphan)]
#[test]
fn broken_orphan_is_rejected() {
    loom_tests::orphan::owner_drops_while_an_owned_guard_unpins();
}

#[cfg(discardable_broken_unpin)]
#[test]
fn broken_unpin_is_rejected() {
    loom_tests::state::unpin_racing_discard();
}

#[cfg(discardable_broken_claim)]
#[test]
fn broken_claim_is_rejected() {
    loom_tests::lazy::kernel_reclaim_racing_revivers();
}

#[cfg(discardable_broken_group)]
#[test]
fn broken_group_slot_is_rejected() {
    loom_tests::group::publish_while_reading();
}

#[cfg(discardable_broken_group)]
#[test]
fn broken_group_slot_is_rejected_by_a_taker() {
    loom_tests::group::taker_races_the_owner();
}

#[cfg(discardable_broken_end_offer)]
#[test]
fn broken_end_offer_is_rejected_by_a_pinner() {
    loom_tests::lazy::offer_racing_a_pinner();
}

#[cfg(discardable_broken_end_offer)]
#[test]
fn broken_end_offer_is_rejected_by_a_failed_offer() {
    loom_tests::lazy::failed_offer_racing_a_pinner();
}

#[cfg(discardable_broken_end_offer)]
#[test]
fn broken_end_offer_is_rejected_by_a_drop() {
    loom_tests::lazy::drop_racing_an_offer();
}

#[cfg(discardable_broken_end_offer)]
#[test]
fn broken_end_offer_is_rejected_by_the_last_handle_drop() {
    loom_tests::table::last_handle_dropped_while_the_manager_offers();
}

#[cfg(discardable_broken_quiet)]
#[test]
fn broken_quiet_push_is_rejected() {
    loom_tests::remote_free::owner_collects_while_the_last_block_is_freed_remotely();
}

#[cfg(discardable_broken_adopt_full)]
#[test]
fn broken_adopt_full_is_rejected() {
    loom_tests::abandon::a_thread_adopts_while_a_block_is_freed_remotely();
}
