//! The same tests as `tests/{bytes_prop,fork,lazy,lock_pages,manager,rss,stress}.rs`, compiled into a second binary whose
//! global allocator is `DiscardAlloc`: strong and discardable memory from one arena. The test
//! counts of the two runs are equal by construction.

#[global_allocator]
static A: discardable::DiscardAlloc = discardable::DiscardAlloc::new();

#[path = "bytes_prop.rs"]
mod bytes_prop;

#[path = "fork.rs"]
mod fork;

#[path = "lazy.rs"]
mod lazy;

#[path = "lock_pages.rs"]
mod lock_pages;

#[path = "manager.rs"]
mod manager;

#[path = "rss.rs"]
mod rss;

#[path = "stress.rs"]
mod stress;
