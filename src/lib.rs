//! Memory a program may use aggressively and the system may take back.
//!
//! Programs cache aggressively; machines and containers are provisioned
//! conservatively. This crate relaxes the paging contract for memory marked
//! *discardable*: while unpinned it may be reclaimed at any moment (pages
//! dropped, never swapped out), and the owner learns so the next time it
//! asks.
//!
//! - [`Discardable<T>`] owns a value like a `Box` and is `Weak`-like in
//!   [`upgrade`](Discardable::upgrade): a [`Pinned`] guard while the bytes are
//!   alive, `None` once the manager discarded them.
//! - [`Manager`] owns a budget, a replacement [`Policy`] and a background
//!   thread that discards unpinned allocations when the budget is exceeded.
//!
//! ```
//! use discardable::{Discardable, Manager};
//!
//! let manager = Manager::builder().limit(64 << 20).start()?;
//! let thumbnail = Discardable::from_slice_in(&[0u8; 4096], &manager);
//! if let Some(pixels) = thumbnail.upgrade() {
//!     assert_eq!(pixels.len(), 4096); // pinned: cannot vanish while `pixels` lives
//! }
//! // Unpinned again: under pressure it may be discarded, and then
//! // `upgrade()` returns `None` and the program recomputes it.
//! # Ok::<(), discardable::Error>(())
//! ```
//!
//! # Layers
//!
//! `os` (system calls) → `page_heap` (segments and spans) → `handle`
//! (handles, the pin/discard protocol, the byte store) → `policy` →
//! `pressure` and, beside it, `group` (weighted fair share across
//! processes) → `manager`. Each layer calls only the ones below it.
//!
//! # The hot path
//!
//! `upgrade()` is one atomic `fetch_add` on the allocation's state word and
//! dropping the guard another (which also records the access for the
//! policy): no lock, no system call, no epoch guard. Epoch-based reclamation
//! (crossbeam-epoch, with a collector per manager) protects headers only
//! where the manager retires and scans them.

#![deny(unsafe_op_in_unsafe_fn)]

mod alloc;
#[cfg(not(loom))]
pub mod cache;
mod error;
mod fork;
mod group;
mod growth;
mod handle;
mod manager;
mod os;
mod page_heap;
mod policy;
mod pressure;
mod sync;
mod testing;

pub use alloc::{AllocStats, DiscardAlloc};
#[cfg(not(loom))]
pub use cache::{
    Cache, CacheBuilder, CacheGuard, CacheStats, CacheValue, DefaultHashBuilder, FoldHasher, RemovalCause,
};
pub use error::{AccessError, Error, OsError};
#[cfg(not(loom))]
pub use group::{group_members, GroupMember};
pub use handle::{Discardable, Fresh, Pinned, PinnedMut};
pub use manager::{Manager, ManagerBuilder, ReclaimMode, Stats, ThreadPriority};
pub use policy::Policy;
pub use pressure::{PressureError, Signal, SignalReport, Watermarks};

/// Fault injection for tests (`--cfg discardable_fault_injection`): make
/// system calls fail on purpose. A cfg, never a cargo feature: features
/// unify across a dependency graph, so any crate could switch process-wide
/// failures on in another's binary. Not part of the stable API.
#[cfg(discardable_fault_injection)]
#[doc(hidden)]
pub use os::faults as __faults;

/// Under `--cfg discardable_test_alloc` the crate's own unit tests run with
/// `DiscardAlloc` as the global allocator (the CI runs them both ways).
#[cfg(all(test, discardable_test_alloc))]
#[global_allocator]
static TEST_ALLOC: DiscardAlloc = DiscardAlloc::new();

#[cfg(test)]
static_assertions::assert_impl_all!(Manager: Send, Sync, Clone);
static_assertions::assert_impl_all!(Discardable<u64>: Send, Sync);
static_assertions::assert_not_impl_any!(Discardable<u64>: Clone);
static_assertions::assert_not_impl_any!(Discardable<core::cell::Cell<u8>>: Sync);
static_assertions::assert_impl_all!(Pinned<'static, u64>: Send, Sync);

/// README.md's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(loom)]
#[doc(hidden)]
pub use testing::loom as __loom;

#[cfg(fuzzing)]
#[doc(hidden)]
pub use testing::fuzz as __fuzz;
