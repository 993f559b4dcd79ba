//! Where discardable bytes live: whole-page spans for large allocations,
//! size-class slots on shared pages for small ones.
//!
//! Owns: the slot pages of one arena and their free bitmaps, and the pool
//! of discarded spans kept for reuse. Spans come from and go back to the
//! process-wide [`PageHeap`]. A slot page goes back to the page heap the
//! moment every slot on it is free or discarded: to the OS at once
//! (`MADV_DONTNEED`) under pressure, else committed within the page heap's
//! bounded retention, for the next pages.
//!
//! Discarded spans ([`Store::free_discarded`]): a discard made for the
//! manager's own budget keeps its span mapped in the pool, up to the
//! pool's bound (set by the manager: 1 % of its limit, at most 4 MiB), and
//! the next allocation of the same page count takes it back without a
//! page fault; the pool's bytes count against the limit. Every other
//! discarded span gives its pages back at once, adjacent spans in one
//! `madvise`. [`Store::flush_kept`] empties the pool (memory pressure).
//!
//! Costs are what an allocation costs the OS: whole pages for a span, the
//! slot size for a small one.
//!
//! Must never: be reached from the global allocator's path (it takes a
//! parking_lot lock and grows `Vec`s), or read the bytes it stores.

use core::ptr::NonNull;

use crate::error::Error;
use crate::page_heap::{PageHeap, Release};
use crate::sync::Mutex;

/// Largest slot size; anything bigger (or more aligned than [`SLOT_ALIGN`])
/// gets its own span.
pub(crate) const SMALL_MAX: usize = 2048;
/// Alignment every slot has.
pub(crate) const SLOT_ALIGN: usize = 16;
const CLASSES: usize = 24;
/// Slot bitmaps cover a page of 16-byte slots at 4 KiB pages.
const SLOT_WORDS: usize = 4;

/// Where an allocation's bytes are, so they can be freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    /// Zero bytes: nothing to free.
    Empty,
    /// A span of the page heap starting at the data pointer.
    Span,
    /// A span locked in memory with `mlock` (managed mode with
    /// `lock_pages`), unlocked before it is discarded or freed.
    LockedSpan,
    /// A slot on a shared page.
    Slot {
        /// The slot page's index in the store.
        page: u32,
        /// The slot's index on that page.
        slot: u16,
    },
}

/// A block's [`Loc`] and cost packed in one word, as a header keeps them
/// (eight bytes where the enum and a `usize` took sixteen):
///
/// ```text
///  63  62 61                                                            0
/// +------+---------------------------------------------------------------+
/// | kind |  Empty, Span, LockedSpan: the cost in bytes (62 bits)         |
/// |      |  Slot: page (32 bits) | slot (16 bits) | slot size (14 bits)  |
/// +------+---------------------------------------------------------------+
/// ```
///
/// Slots are at most [`SMALL_MAX`] bytes, so their size fits its field;
/// a span's cost is a mapping's length, far below 2^62.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place(u64);

const KIND_SHIFT: u32 = 62;
const COST_MASK: u64 = (1 << KIND_SHIFT) - 1;
const SLOT_SIZE_BITS: u32 = 14;
static_assertions::const_assert!(SMALL_MAX < 1 << SLOT_SIZE_BITS);

impl Place {
    /// Packs `loc` and `cost` (`cost` as the store computed it for `loc`).
    pub fn new(loc: Loc, cost: usize) -> Self {
        let cost = cost as u64;
        debug_assert!(cost <= COST_MASK, "a cost of 2^62 bytes or more");
        Self(match loc {
            Loc::Empty => cost & COST_MASK,
            Loc::Span => 1 << KIND_SHIFT | (cost & COST_MASK),
            Loc::LockedSpan => 2 << KIND_SHIFT | (cost & COST_MASK),
            Loc::Slot { page, slot } => {
                debug_assert!(cost < 1 << SLOT_SIZE_BITS, "a slot larger than SMALL_MAX");
                3 << KIND_SHIFT
                    | u64::from(page) << (16 + SLOT_SIZE_BITS)
                    | u64::from(slot) << SLOT_SIZE_BITS
                    | (cost & ((1 << SLOT_SIZE_BITS) - 1))
            }
        })
    }

    /// Where the bytes are.
    #[inline]
    pub fn loc(self) -> Loc {
        match self.0 >> KIND_SHIFT {
            0 => Loc::Empty,
            1 => Loc::Span,
            2 => Loc::LockedSpan,
            _ => Loc::Slot { page: (self.0 >> (16 + SLOT_SIZE_BITS)) as u32, slot: (self.0 >> SLOT_SIZE_BITS) as u16 },
        }
    }

    /// What the bytes cost the OS.
    #[inline]
    pub fn cost(self) -> usize {
        match self.0 >> KIND_SHIFT {
            3 => (self.0 & ((1 << SLOT_SIZE_BITS) - 1)) as usize,
            _ => (self.0 & COST_MASK) as usize,
        }
    }
}

/// A successful allocation.
#[derive(Debug, Clone, Copy)]
pub struct Block {
    /// The first byte.
    pub ptr: NonNull<u8>,
    /// Where the bytes came from.
    pub loc: Loc,
    /// What the allocation costs the OS, in bytes.
    pub cost: usize,
}

/// The size class of a small request: multiples of 16 up to 128, then four
/// classes per doubling (at most 25 % internal waste). Coarser than the
/// allocator's (`alloc/size_class.rs`): slots share pages that must empty to go back.
fn class_of(size: usize) -> usize {
    debug_assert!(size <= SMALL_MAX);
    let size = size.max(1);
    if size <= 128 {
        return (size - 1) / 16;
    }
    let log = (usize::BITS - 1 - (size - 1).leading_zeros()) as usize; // 7..=10
    let base = 1usize << log;
    8 + (log - 7) * 4 + (size - 1 - base) / (base / 4)
}

/// The slot size of class `class`.
fn class_size(class: usize) -> usize {
    if class < 8 {
        return (class + 1) * 16;
    }
    let group = (class - 8) / 4; // 0 for 129..=256
    let sub = (class - 8) % 4;
    let base = 128 << group;
    base + (sub + 1) * (base / 4)
}

#[derive(Debug)]
struct SlotPage {
    base: NonNull<u8>,
    /// Whether `mlock` succeeded on the page.
    locked: bool,
    class: u8,
    used: u16,
    capacity: u16,
    /// Bit set: slot free.
    free: [u64; SLOT_WORDS],
}

#[derive(Debug, Default)]
struct Slots {
    pages: Vec<Option<SlotPage>>,
    vacant: Vec<u32>,
    /// Per class, pages with at least one free slot.
    partial: [Vec<u32>; CLASSES],
}

// SAFETY: the page pointers own page-heap spans, not thread-bound data; all
// access goes through the `Mutex` in `Store`.
unsafe impl Send for Slots {}

/// Discarded spans kept mapped for reuse: (first byte, bytes).
#[derive(Debug, Default)]
struct Kept(Vec<(NonNull<u8>, usize)>);

// SAFETY: the pointers own page-heap spans, not thread-bound data; all
// access goes through the `Mutex` in `Store`.
unsafe impl Send for Kept {}

/// The byte store of one arena.
#[derive(Debug)]
pub(crate) struct Store {
    heap: &'static PageHeap,
    slots: Mutex<Slots>,
    kept: Mutex<Kept>,
    /// Bytes in `kept` (read without the lock on every span allocation).
    pub(crate) kept_bytes: core::sync::atomic::AtomicUsize,
    /// The pool's bound in bytes (0: no pool).
    keep_limit: core::sync::atomic::AtomicUsize,
    /// `madvise` calls made giving this store's pages back.
    pub(crate) advised: core::sync::atomic::AtomicU64,
    /// Lock discardable pages in memory (`mlock`) so they are dropped, not
    /// swapped.
    lock_pages: bool,
    /// Bytes currently locked.
    pub(crate) locked_bytes: core::sync::atomic::AtomicUsize,
    /// `mlock` calls the OS refused (typically `RLIMIT_MEMLOCK`).
    pub(crate) lock_refusals: core::sync::atomic::AtomicU64,
}

impl Store {
    /// A store drawing pages from `heap`, locking them in memory when
    /// `lock_pages` is set.
    pub(crate) fn with_locking(heap: &'static PageHeap, lock_pages: bool) -> Self {
        Self {
            heap,
            slots: Mutex::new(Slots::default()),
            kept: Mutex::new(Kept::default()),
            kept_bytes: core::sync::atomic::AtomicUsize::new(0),
            keep_limit: core::sync::atomic::AtomicUsize::new(0),
            advised: core::sync::atomic::AtomicU64::new(0),
            lock_pages,
            locked_bytes: core::sync::atomic::AtomicUsize::new(0),
            lock_refusals: core::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Tries to lock `[ptr, ptr + len)` if this store locks pages; returns
    /// whether the pages are now locked.
    fn lock(&self, ptr: NonNull<u8>, len: usize) -> bool {
        if !self.lock_pages {
            return false;
        }
        // SAFETY: the range is a span or slot page this store just took from
        // the page heap.
        if unsafe { crate::os::lock(ptr, len) }.is_ok() {
            self.locked_bytes.fetch_add(len, core::sync::atomic::Ordering::Relaxed);
            true
        } else {
            self.lock_refusals.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            false
        }
    }

    /// Unlocks `[ptr, ptr + len)` before it is discarded or freed (locked
    /// pages cannot be `MADV_DONTNEED`ed).
    fn unlock(&self, ptr: NonNull<u8>, len: usize) {
        // SAFETY: the range is a locked span or slot page of this store.
        unsafe { crate::os::unlock(ptr, len) };
        self.locked_bytes.fetch_sub(len, core::sync::atomic::Ordering::Relaxed);
    }

    /// Allocates `size` bytes aligned to `align`. With `zeroed` the bytes read
    /// as zero (spans are fresh zero pages; slots are cleared).
    /// An alignment above the page size is [`Error::Layout`]; a refusal of
    /// the OS is [`Error::Os`] whatever its errno.
    pub(crate) fn alloc(&self, size: usize, align: usize, zeroed: bool) -> Result<Block, Error> {
        let page = self.heap.page_size();
        if size == 0 {
            // A dangling, well-aligned pointer: nothing is ever read or written.
            let ptr = NonNull::new(align as *mut u8).unwrap_or(NonNull::dangling());
            return Ok(Block { ptr, loc: Loc::Empty, cost: 0 });
        }
        if align > page {
            return Err(Error::Layout);
        }
        if size > SMALL_MAX || align > SLOT_ALIGN {
            let pages = size.div_ceil(page);
            if let Some(ptr) = self.reuse(pages * page) {
                if zeroed {
                    // SAFETY: the kept span is ours alone now and
                    // `pages * page` long.
                    unsafe { ptr.as_ptr().write_bytes(0, pages * page) };
                }
                return Ok(Block { ptr, loc: Loc::Span, cost: pages * page });
            }
            let ptr = self.heap.alloc_span(pages, zeroed).map_err(Error::Os)?;
            let loc = if self.lock(ptr, pages * page) { Loc::LockedSpan } else { Loc::Span };
            return Ok(Block { ptr, loc, cost: pages * page });
        }
        let class = class_of(size);
        let slot_size = class_size(class);
        let _gate = crate::fork::enter();
        let mut slots = self.slots.lock();
        let id = match slots.partial[class].last() {
            Some(&id) => id,
            None => {
                let base = self.heap.alloc_span(1, true).map_err(Error::Os)?;
                let capacity = (page / slot_size).min(SLOT_WORDS * 64);
                let mut free = [0u64; SLOT_WORDS];
                for i in 0..capacity {
                    free[i / 64] |= 1 << (i % 64);
                }
                let locked = self.lock(base, page);
                let sp = SlotPage { base, locked, class: class as u8, used: 0, capacity: capacity as u16, free };
                let id = match slots.vacant.pop() {
                    Some(id) => {
                        slots.pages[id as usize] = Some(sp);
                        id
                    }
                    None => {
                        slots.pages.push(Some(sp));
                        (slots.pages.len() - 1) as u32
                    }
                };
                slots.partial[class].push(id);
                id
            }
        };
        let sp = slots.pages[id as usize].as_mut().expect("partial page is live");
        let word = sp.free.iter().position(|&w| w != 0).expect("partial page has a free slot");
        let slot = word * 64 + sp.free[word].trailing_zeros() as usize;
        sp.free[word] &= !(1 << (slot % 64));
        sp.used += 1;
        // SAFETY: `slot < capacity`, so the slot lies inside the page.
        let ptr = unsafe { sp.base.add(slot * slot_size) };
        if sp.used == sp.capacity {
            slots.partial[class].pop();
        }
        drop(slots);
        if zeroed {
            // SAFETY: the slot is ours alone now and `slot_size` long.
            unsafe { ptr.as_ptr().write_bytes(0, slot_size) };
        }
        Ok(Block { ptr, loc: Loc::Slot { page: id, slot: slot as u16 }, cost: slot_size })
    }

    /// Counts the `madvise` a free with `release` makes.
    fn count_advice(&self, release: Release) {
        if release == Release::Now {
            self.advised.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Sets the bound of the pool of kept spans (0: keep none). A store
    /// that locks its pages keeps none: its spans are unlocked when freed.
    pub(crate) fn set_keep_limit(&self, bytes: usize) {
        let bytes = if self.lock_pages { 0 } else { bytes };
        self.keep_limit.store(bytes, core::sync::atomic::Ordering::Relaxed);
    }

    /// A kept span of exactly `bytes`, if the pool has one.
    fn reuse(&self, bytes: usize) -> Option<NonNull<u8>> {
        if self.kept_bytes.load(core::sync::atomic::Ordering::Relaxed) == 0 {
            return None;
        }
        let _gate = crate::fork::enter();
        let mut kept = self.kept.lock();
        let i = kept.0.iter().rposition(|&(_, b)| b == bytes)?;
        let (ptr, _) = kept.0.swap_remove(i);
        self.kept_bytes.fetch_sub(bytes, core::sync::atomic::Ordering::Relaxed);
        Some(ptr)
    }

    /// Frees the bytes of discarded allocations, emptying `blocks`. With
    /// `keep`, spans go into the pool while it has room and emptied slot
    /// pages stay committed in the page heap's bounded retention; every
    /// other span gives its pages back now, adjacent ones in one `madvise`.
    ///
    /// # Safety
    ///
    /// Each block must satisfy [`Self::free`]'s contract.
    pub(crate) unsafe fn free_discarded(&self, blocks: &mut Vec<Block>, keep: bool) {
        use core::sync::atomic::Ordering::Relaxed;
        let mut release: Vec<NonNull<u8>> = Vec::new();
        let limit = if keep { self.keep_limit.load(Relaxed) } else { 0 };
        let _gate = crate::fork::enter();
        let mut kept = (limit > 0).then(|| self.kept.lock());
        for block in blocks.drain(..) {
            match (block.loc, kept.as_mut()) {
                (Loc::Span, Some(kept)) if self.kept_bytes.load(Relaxed) + block.cost <= limit => {
                    kept.0.push((block.ptr, block.cost));
                    self.kept_bytes.fetch_add(block.cost, Relaxed);
                }
                (Loc::Span, _) => release.push(block.ptr),
                // A slot page emptied by a budget discard stays committed
                // (within the page heap's retention bound) for the next
                // allocations; under pressure it goes back at once.
                // SAFETY: forwarded from the caller's contract.
                _ => unsafe { self.free(block.ptr, block.loc, if keep { Release::Retain } else { Release::Now }) },
            }
        }
        drop(kept);
        // SAFETY: live spans of this store, each given up once (caller).
        let calls = unsafe { self.heap.free_spans_now(&mut release) };
        self.advised.fetch_add(calls, Relaxed);
    }

    /// Gives every kept span's pages back to the OS.
    pub(crate) fn flush_kept(&self) {
        if self.kept_bytes.load(core::sync::atomic::Ordering::Relaxed) == 0 {
            return;
        }
        let _gate = crate::fork::enter();
        let spans = core::mem::take(&mut self.kept.lock().0);
        let bytes: usize = spans.iter().map(|&(_, b)| b).sum();
        let mut ptrs: Vec<NonNull<u8>> = spans.into_iter().map(|(p, _)| p).collect();
        // SAFETY: kept spans are live spans of this store that nobody uses;
        // taking them out of the pool made them ours alone.
        let calls = unsafe { self.heap.free_spans_now(&mut ptrs) };
        self.kept_bytes.fetch_sub(bytes, core::sync::atomic::Ordering::Relaxed);
        self.advised.fetch_add(calls, core::sync::atomic::Ordering::Relaxed);
    }

    /// Frees a block. With [`Release::Now`] the pages go back to the OS at
    /// once where the block owns them (spans) or the page becomes empty.
    ///
    /// # Safety
    ///
    /// `ptr`/`loc` must come from one successful [`Self::alloc`] on this
    /// store, freed once, and nobody may use the bytes afterwards.
    pub(crate) unsafe fn free(&self, ptr: NonNull<u8>, loc: Loc, release: Release) {
        match loc {
            Loc::Empty => {}
            Loc::Span => {
                self.count_advice(release);
                // SAFETY: forwarded from the caller's contract.
                unsafe { self.heap.free_span(ptr, release) };
            }
            Loc::LockedSpan => {
                // SAFETY: forwarded from the caller's contract: a live span.
                let bytes = unsafe { self.heap.span_bytes(ptr) };
                self.unlock(ptr, bytes);
                self.count_advice(release);
                // SAFETY: as above.
                unsafe { self.heap.free_span(ptr, release) };
            }
            Loc::Slot { page, slot } => {
                let _gate = crate::fork::enter();
                let mut slots = self.slots.lock();
                let sp = slots.pages[page as usize].as_mut().expect("slot page is live");
                let class = sp.class as usize;
                let bit = 1u64 << (slot % 64);
                debug_assert!(sp.free[slot as usize / 64] & bit == 0, "double free of a slot");
                sp.free[slot as usize / 64] |= bit;
                let was_full = sp.used == sp.capacity;
                sp.used -= 1;
                if sp.used == 0 {
                    let (base, locked) = (sp.base, sp.locked);
                    slots.pages[page as usize] = None;
                    slots.vacant.push(page);
                    let list = &mut slots.partial[class];
                    if let Some(i) = list.iter().rposition(|&p| p == page) {
                        list.swap_remove(i);
                    }
                    drop(slots);
                    if locked {
                        self.unlock(base, self.heap.page_size());
                    }
                    self.count_advice(release);
                    // SAFETY: every slot of the page is free, so nobody uses
                    // its bytes; it came from `alloc_span` in `alloc`.
                    unsafe { self.heap.free_span(base, release) };
                } else if was_full {
                    slots.partial[class].push(page);
                }
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.flush_kept();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::page_heap;

    proptest::proptest! {
        #[test]
        fn a_place_gives_back_its_loc_and_cost(
            kind in 0u8..4, page: u32, slot: u16, slot_size in 1usize..=SMALL_MAX, cost in 0usize..1 << 48,
        ) {
            let (loc, cost) = match kind {
                0 => (Loc::Empty, cost),
                1 => (Loc::Span, cost),
                2 => (Loc::LockedSpan, cost),
                _ => (Loc::Slot { page, slot }, slot_size),
            };
            let place = Place::new(loc, cost);
            proptest::prop_assert_eq!((place.loc(), place.cost()), (loc, cost));
        }
    }

    #[test]
    fn classes_cover_sizes_with_bounded_waste() {
        let mut last = 0;
        for size in 1..=SMALL_MAX {
            let c = class_of(size);
            assert!(c < CLASSES, "class {c} for {size}");
            let s = class_size(c);
            assert!(s >= size, "size {size} in class {c} of {s}");
            assert!(s % SLOT_ALIGN == 0);
            assert!(c >= last, "classes are monotonic");
            if size > 64 {
                assert!((s - size) * 4 <= s, "waste over 25 % at {size}: {s}");
            } else {
                assert!(s - size < 16, "more than one step of waste at {size}");
            }
            if c > 0 {
                assert!(class_size(c - 1) < size, "{size} not in the smallest class");
            }
            last = c;
        }
        assert_eq!(class_size(CLASSES - 1), SMALL_MAX);
    }

    #[test]
    fn slots_share_pages_and_pages_go_back_when_empty() {
        let store = Store::with_locking(page_heap::global(), false);
        let page = page_heap::global().page_size();
        let blocks: Vec<Block> = (0..(page / 64) * 2).map(|_| store.alloc(64, 8, true).unwrap()).collect();
        let pages: std::collections::HashSet<usize> = blocks.iter().map(|b| b.ptr.as_ptr() as usize / page).collect();
        assert_eq!(pages.len(), 2, "64-byte slots fill whole pages first");
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(b.cost, 64);
            // SAFETY: each slot is ours and 64 bytes long.
            unsafe { b.ptr.as_ptr().write_bytes(i as u8, 64) };
        }
        for (i, b) in blocks.iter().enumerate() {
            // SAFETY: reading our own slot.
            let bytes = unsafe { core::slice::from_raw_parts(b.ptr.as_ptr(), 64) };
            assert!(bytes.iter().all(|&x| x == i as u8), "slots overlap");
        }
        for b in blocks {
            // SAFETY: allocated above, freed once.
            unsafe { store.free(b.ptr, b.loc, Release::Now) };
        }
        assert!(store.slots.lock().pages.iter().all(Option::is_none));
    }

    #[test]
    fn discarded_spans_are_kept_for_reuse_within_the_bound_and_flushed() {
        let store = Store::with_locking(page_heap::global(), false);
        let page = page_heap::global().page_size();
        store.set_keep_limit(2 * page);
        let blocks: Vec<Block> = (0..3).map(|_| store.alloc(page, 8, false).unwrap()).collect();
        for b in &blocks {
            // SAFETY: each span is ours and a page long.
            unsafe { b.ptr.as_ptr().write_bytes(7, page) };
        }
        let mut victims = blocks.clone();
        // SAFETY: allocated above, each freed once, nobody uses them after.
        unsafe { store.free_discarded(&mut victims, true) };
        assert!(victims.is_empty());
        assert_eq!(store.kept_bytes.load(core::sync::atomic::Ordering::Relaxed), 2 * page, "kept up to the bound");
        // The next allocations of that size take the kept spans back, zeroed
        // when asked.
        let again = store.alloc(page, 8, true).unwrap();
        assert!(blocks.iter().any(|b| b.ptr == again.ptr), "a kept span is reused");
        // SAFETY: `again` is ours and a page long.
        assert!(unsafe { core::slice::from_raw_parts(again.ptr.as_ptr(), page) }.iter().all(|&b| b == 0));
        assert_eq!(store.kept_bytes.load(core::sync::atomic::Ordering::Relaxed), page);
        store.flush_kept();
        assert_eq!(store.kept_bytes.load(core::sync::atomic::Ordering::Relaxed), 0);
        // Without `keep`, nothing is kept.
        let mut victims = vec![again];
        // SAFETY: as above.
        unsafe { store.free_discarded(&mut victims, false) };
        assert_eq!(store.kept_bytes.load(core::sync::atomic::Ordering::Relaxed), 0);
    }

    #[test]
    fn large_and_aligned_requests_get_spans() {
        let store = Store::with_locking(page_heap::global(), false);
        let page = page_heap::global().page_size();
        let b = store.alloc(SMALL_MAX + 1, 8, false).unwrap();
        assert_eq!((b.loc, b.cost), (Loc::Span, page));
        let a = store.alloc(64, 64, false).unwrap();
        assert_eq!(a.loc, Loc::Span);
        assert!(store.alloc(64, page * 2, false).is_err());
        // SAFETY: allocated above, freed once.
        unsafe {
            store.free(b.ptr, b.loc, Release::Now);
        }
        // SAFETY: allocated above, freed once.
        unsafe { store.free(a.ptr, a.loc, Release::Retain) };
    }
}
