//! The header of a discardable allocation: its state word and where its
//! bytes are. Headers live in strong memory (a `Box`), never inside the
//! discardable bytes.
//!
//! Lifetime (DESIGN.md INV-4): a header is created by the handle, published
//! to the manager through the arena's intake list, and freed only by the
//! manager's table, after the owner marked it dropped, through epoch-based
//! reclamation, so that a reclaimer still reading it outside the table lock
//! never sees it freed.
//!
//! Must never: be freed by the handle, or be mutated after publication except
//! through its atomics.

use core::ptr::NonNull;

use super::state::State;
use super::store::Loc;
use crate::sync::AtomicPtr;

/// Header of one discardable allocation.
#[derive(Debug)]
pub(crate) struct Header {
    /// The pin/discard state word.
    pub(crate) state: State,
    /// The first byte of the allocation (immutable).
    pub(crate) data: NonNull<u8>,
    /// Where the bytes came from (immutable).
    pub(crate) loc: Loc,
    /// What the bytes cost the OS (immutable).
    pub(crate) cost: usize,
    /// Link in the arena's intake list; written before publication only.
    pub(crate) next: AtomicPtr<Header>,
}

// SAFETY: every field but the atomics is immutable after construction, and
// `data` is only dereferenced under the pin protocol.
unsafe impl Send for Header {}
// SAFETY: as above; shared access only reads immutable fields or atomics.
unsafe impl Sync for Header {}

impl Header {
    /// A live, unpinned header for bytes at `data`.
    pub(crate) fn new(data: NonNull<u8>, loc: Loc, cost: usize) -> Self {
        Self { state: State::new(), data, loc, cost, next: AtomicPtr::new(core::ptr::null_mut()) }
    }
}
