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
//! `pressure` → `manager`. Each layer calls only the ones below it.
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
mod error;
mod handle;
mod manager;
mod os;
mod page_heap;
mod policy;
mod pressure;
mod sync;

pub use alloc::{AllocStats, DiscardAlloc};
pub use error::{AccessError, Error, OsError};
pub use handle::{Discardable, Pinned, PinnedMut};
pub use manager::{Manager, ManagerBuilder, ReclaimMode, Stats};
pub use policy::Policy;
pub use pressure::{PressureError, Signal, SignalReport, Watermarks};

/// Fault injection for tests (feature `fault-injection`): make system calls
/// fail on purpose. Not part of the stable API.
#[cfg(feature = "fault-injection")]
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

/// The protocol internals, for the model checks in `loom-tests/` only
/// (built with `RUSTFLAGS="--cfg loom"`); not an API.
#[cfg(loom)]
#[doc(hidden)]
pub mod __loom {
    pub use crate::handle::arena::{Arena, Counters, Wake};
    pub use crate::handle::header::Header;
    pub use crate::handle::state::{Dropped, Snapshot, State};
    pub use crate::handle::store::{Block, Loc};
    pub use crate::manager::table::{Scan, Table};
}

/// Internals for the fuzz targets in `fuzz/` only (cargo-fuzz builds with
/// `--cfg fuzzing`); not an API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod __fuzz {
    use crate::policy::{self, Replacement};
    use crate::Policy;

    /// The page size the page heap measures spans in.
    pub fn page_size() -> usize {
        crate::page_heap::global().page_size()
    }

    /// Gives every retained page of the global page heap back to the OS
    /// now (what the allocator's purge timer does once frees go quiet).
    pub fn purge() {
        crate::page_heap::global().purge();
    }

    /// Frees the abandoned class spans that became empty (what the purge
    /// timer does on every tick).
    pub fn sweep_abandoned() {
        crate::alloc::heap::sweep_abandoned();
    }

    /// A replacement policy as the manager builds it (`policy::build`),
    /// behind the `Replacement` trait's methods.
    pub struct Replacer(Box<dyn Replacement>);

    impl core::fmt::Debug for Replacer {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_struct("Replacer").field("len", &self.0.len()).finish()
        }
    }

    impl Replacer {
        /// The implementation of `policy`.
        pub fn new(policy: Policy) -> Self {
            Self(policy::build(policy))
        }
        /// `Replacement::insert`.
        pub fn insert(&mut self, id: u32, cost: usize) {
            self.0.insert(id, cost);
        }
        /// `Replacement::access`.
        pub fn access(&mut self, id: u32, count: u32) {
            self.0.access(id, count);
        }
        /// `Replacement::remove`.
        pub fn remove(&mut self, id: u32) {
            self.0.remove(id);
        }
        /// `Replacement::victim`.
        pub fn victim(&mut self, claim: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
            self.0.victim(claim)
        }
        /// `Replacement::len`.
        pub fn len(&self) -> usize {
            self.0.len()
        }
        /// Whether `len() == 0`.
        pub fn is_empty(&self) -> bool {
            self.0.len() == 0
        }
    }
}
