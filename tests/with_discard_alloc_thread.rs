//! The same tests as `tests/manager_thread.rs`, compiled into a second binary whose global
//! allocator is `DiscardAlloc`. A binary of its own: it counts the process's manager threads.

#[global_allocator]
static A: discardable::DiscardAlloc = discardable::DiscardAlloc::new();

#[path = "manager_thread.rs"]
mod manager_thread;
