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
use super::store::{Block, Loc, Place};
use crate::sync::{AtomicPtr, Ordering::Relaxed};

/// Header of one discardable allocation: 40 bytes, strong memory paid per
/// allocation (a cache pays it per entry). Not cache-line aligned: eight
/// headers share five lines, so pins of neighbouring allocations from
/// different cores may contend on a line, which costs only where one
/// allocation's neighbours are hot on other cores at the same moment.
#[derive(Debug)]
pub struct Header {
    /// The pin/discard state word.
    pub state: State,
    /// The first byte of the allocation (immutable).
    pub data: NonNull<u8>,
    /// Where the bytes came from and what they cost the OS (immutable).
    place: Place,
    /// Who hears of this allocation's discard: a sink id the manager handed
    /// out (`0`: nobody), immutable. See `manager::sink`.
    pub sink: u32,
    /// What the sink is told with the discard (a cache passes its 32-bit
    /// key hash), immutable.
    pub tag: u32,
    /// One word, two roles in turn (each header is on the intake before
    /// the table takes it in, and offered only after):
    /// - until the table drains it: the next header on the arena's intake
    ///   list (written before publication only; cleared by the drain);
    /// - after: lazy mode's first words of each page, saved before the
    ///   pages were offered (a `Box<[MaybeUninit<u64>]>` of `cost / page`
    ///   words, or null: the words may be a `T`'s uninitialised padding).
    ///   Written by the offerer under `OFFERING`, read by the reviver under
    ///   `REVIVING` (state INV-5, INV-6); freed with the header.
    link: AtomicPtr<Header>,
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
    pub tag: u32,
}

// Per allocation: keep it at 40 bytes (an allocator size class).
#[cfg(not(loom))]
static_assertions::const_assert_eq!(core::mem::size_of::<Header>(), 40);

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

    /// Where the bytes came from.
    #[inline]
    pub fn loc(&self) -> Loc {
        self.place.loc()
    }

    /// What the bytes cost the OS.
    #[inline]
    pub fn cost(&self) -> usize {
        self.place.cost()
    }

    /// The next header on the arena's intake (before the table drained this
    /// one; `handle::arena` only).
    #[inline]
    pub(crate) fn intake_link(&self) -> &AtomicPtr<Header> {
        &self.link
    }

    /// Lazy mode's saved first words, or null (after the drain; see the
    /// field's docs for who may call this when).
    #[inline]
    pub(crate) fn saved(&self) -> *mut core::mem::MaybeUninit<u64> {
        self.link.load(Relaxed).cast()
    }

    /// Records the saved first words (the offerer, under `OFFERING`).
    #[inline]
    pub(crate) fn set_saved(&self, saved: *mut core::mem::MaybeUninit<u64>) {
        self.link.store(saved.cast(), Relaxed);
    }

    /// The block to free.
    #[inline]
    pub fn block(&self) -> Block {
        Block { ptr: self.data, loc: self.loc(), cost: self.cost() }
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
            place: Place::new(loc, cost),
            link: AtomicPtr::new(core::ptr::null_mut()),
            #[cfg(loom)]
            canary: crate::sync::Arc::new(crate::sync::UnsafeCell::new(false)),
        }
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        // Null unless an offer saved words: the drain cleared the intake link.
        let saved = self.saved();
        if !saved.is_null() {
            let words = self.cost() / crate::os::page_size();
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
