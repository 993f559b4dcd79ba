//! The group registry's slot protocol under loom.
#![cfg(loom)]

#[test]
fn publish_while_reading() {
    loom_tests::group::publish_while_reading();
}

#[test]
fn taker_races_the_owner() {
    loom_tests::group::taker_races_the_owner();
}
