//! Thread exit, span abandonment, adoption and the purge timer's sweep
//! under loom.
#![cfg(loom)]

#[test]
fn thread_exits_while_its_parked_span_empties() {
    loom_tests::abandon::thread_exits_while_its_parked_span_empties();
}

#[test]
fn a_thread_adopts_while_a_block_is_freed_remotely() {
    loom_tests::abandon::a_thread_adopts_while_a_block_is_freed_remotely();
}
