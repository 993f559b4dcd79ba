//! Header lifetime under loom: a handle's creation racing the manager's
//! drain, and the owner's drop racing the manager's scan, or its offer.
#![cfg(loom)]

#[test]
fn last_handle_dropped_while_the_manager_scans() {
    loom_tests::table::last_handle_dropped_while_the_manager_scans();
}

#[test]
fn last_handle_dropped_while_the_manager_offers() {
    loom_tests::table::last_handle_dropped_while_the_manager_offers();
}

#[test]
fn handle_created_while_the_manager_drains() {
    loom_tests::table::handle_created_while_the_manager_drains();
}
