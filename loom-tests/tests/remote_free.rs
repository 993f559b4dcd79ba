//! The allocator's remote-free protocol under loom: an owner collecting,
//! parking or taking back a span while a remote thread frees a block.
#![cfg(loom)]

#[test]
fn owner_collects_while_the_last_block_is_freed_remotely() {
    loom_tests::remote_free::owner_collects_while_the_last_block_is_freed_remotely();
}

#[test]
fn owner_parks_while_the_last_block_is_freed_remotely() {
    loom_tests::remote_free::owner_parks_while_the_last_block_is_freed_remotely();
}

#[test]
fn owner_takes_back_a_parked_span_while_a_block_is_freed_remotely() {
    loom_tests::remote_free::owner_takes_back_a_parked_span_while_a_block_is_freed_remotely();
}
