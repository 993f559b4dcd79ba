//! Lazy mode under loom: offers, revivals, the kernel's reclaim, drops and
//! discards racing.
#![cfg(loom)]

#[test]
fn two_pinners_revive_once() {
    loom_tests::lazy::two_pinners_revive_once();
}

#[test]
fn offer_racing_a_pinner() {
    loom_tests::lazy::offer_racing_a_pinner();
}

#[test]
fn failed_offer_racing_a_pinner() {
    loom_tests::lazy::failed_offer_racing_a_pinner();
}

#[test]
fn partly_failed_offer_racing_a_pinner() {
    loom_tests::lazy::partly_failed_offer_racing_a_pinner();
}

#[test]
fn kernel_reclaim_racing_revivers() {
    loom_tests::lazy::kernel_reclaim_racing_revivers();
}

#[test]
fn drop_racing_an_offer() {
    loom_tests::lazy::drop_racing_an_offer();
}

#[test]
fn discard_racing_a_reviver() {
    loom_tests::lazy::discard_racing_a_reviver();
}
