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

/// Header of one discardable allocation. Cache-line aligned, so pinning
/// one allocation never contends with another's state word.
#[derive(Debug)]
#[repr(align(64))]
pub struct Header {
    /// The pin/discard state word.
    pub state: State,
    /// The first byte of the allocation (immutable).
    pub data: NonNull<u8>,
    /// Where the bytes came from (immutable).
    pub loc: Loc,
    /// What the bytes cost the OS (immutable).
    pub cost: usize,
    /// Link in the arena's intake list; written before publication only.
    pub next: AtomicPtr<Header>,
    /// Who hears of this allocation's discard: a sink id the manager handed
    /// out (`0`: nobody), immutable. See `manager::sink`.
    pub sink: u32,
    /// What the sink is told with the discard (a cache passes the key's
    /// hash), immutable.
    pub tag: u64,
    /// Lazy mode: the first word of each page, saved before the pages were
    /// offered (a `Box<[MaybeUninit<u64>]>` of `cost / page` words, or
    /// null: the words may be a `T`'s uninitialised padding). Written by the
    /// offerer under `OFFERING`, read by the reviver under `REVIVING`
    /// (state INV-5, INV-6); freed with the header.
    pub(crate) saved: core::sync::atomic::AtomicPtr<core::mem::MaybeUninit<u64>>,
    /// Loom models only: set when the header is freed. A model keeps its own
    /// clone and reads it around every read of the header, so loom's cell
    /// checking rejects a read that races with the free, and the flag one
    /// that follows it.
    #[cfg(loom)]
    pub canary: crate::sync::Arc<crate::sync::UnsafeCell<bool>>,
}

/// How an allocation starts life: [`Header::with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Birth {
    /// Published with one pin counted (its creator's, state `new_pinned`).
    pub pinned: bool,
    /// The discard sink id (`0`: none).
    pub sink: u32,
    /// The value passed to the sink.
    pub tag: u64,
}

// The header fills one cache line exactly: the sink and tag took the
// padding that `repr(align(64))` left.
#[cfg(not(loom))]
static_assertions::const_assert_eq!(core::mem::size_of::<Header>(), 64);

// SAFETY: every field but the atomics is immutable after construction, and
// `data` is only dereferenced under the pin protocol.
unsafe impl Send for Header {}
// SAFETY: as above; shared access only reads immutable fields or atomics.
unsafe impl Sync for Header {}

impl Header {
    /// Pins the allocation: one `fetch_add`, and the slow path (waiting,
    /// lazy-mode revival) only when a flag is set. What every handle, guard
    /// and loom model pins with.
    #[inline(always)]
    pub fn pin(&self, arena: &super::arena::Arena) -> bool {
        self.state.pin_fast() || self.pin_slow(arena)
    }

    /// A live, unpinned header for bytes at `data`.
    #[cfg_attr(not(test), allow(dead_code))] // unit tests build bare headers
    pub fn new(data: NonNull<u8>, loc: Loc, cost: usize) -> Self {
        Self::with(data, loc, cost, Birth::default())
    }

    /// A header as `birth` asks: pinned or not, and whom to tell of the
    /// discard.
    pub fn with(data: NonNull<u8>, loc: Loc, cost: usize, birth: Birth) -> Self {
        Self {
            state: if birth.pinned { State::new_pinned() } else { State::new() },
            sink: birth.sink,
            tag: birth.tag,
            data,
            loc,
            cost,
            next: AtomicPtr::new(core::ptr::null_mut()),
            saved: core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()),
            #[cfg(loom)]
            canary: crate::sync::Arc::new(crate::sync::UnsafeCell::new(false)),
        }
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        let saved = *self.saved.get_mut();
        if !saved.is_null() {
            let words = self.cost / crate::os::page_size();
            // SAFETY: `saved` came from `Box::<[MaybeUninit<u64>]>::into_raw`
            // of `words` words in `lazy::offer` and is freed only here, once.
            drop(unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(saved, words)) });
        }
        // SAFETY: only this drop writes the canary, once; every other access
        // is a model's read, which loom checks against this write.
        #[cfg(loom)]
        self.canary.with_mut(|freed| unsafe { *freed = true });
    }
}
