//! The same tests as `tests/{global}.rs`, compiled into a second binary whose
//! global allocator is `DiscardAlloc`: strong and discardable memory from one arena. The test
//! counts of the two runs are equal by construction.

#[global_allocator]
static A: discardable::DiscardAlloc = discardable::DiscardAlloc::new();

#[path = "global.rs"]
mod global;
