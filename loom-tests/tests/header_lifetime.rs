//! Header lifetime under loom: the owner's drop racing the manager's scan, or its offer.
#![cfg(loom)]

#[test]
fn last_handle_dropped_while_the_manager_scans() {
    loom_tests::table::last_handle_dropped_while_the_manager_scans();
}

#[test]
fn last_handle_dropped_while_the_manager_offers() {
    loom_tests::table::last_handle_dropped_while_the_manager_offers();
}
