//! Segments and spans: runs of whole pages carved from large aligned mmap
//! regions, and given back to the OS.
//!
//! Owns: every mapping the crate makes for data, the per-segment page maps
//! and the exact accounting of mapped, in-use and retained bytes.
//!
//! Layout. A *segment* is a [`SEGMENT_SIZE`]-aligned mapping whose first pages
//! hold its metadata ([`Segment`]): a free bitmap, a "dirty" bitmap (free
//! pages still committed, i.e. retained) and, for the first page of every
//! used span, its length. Any span pointer masked with `!(SEGMENT_SIZE - 1)`
//! finds its segment, so freeing needs only the pointer. A span larger than
//! a segment's data area gets a *huge* segment of its own, unmapped on free.
//! No metadata ever lives inside a span.
//!
//! Invariants:
//! - INV-1: a segment's metadata is read or written only under `lock`.
//! - INV-2: a page is in exactly one state: used, free-dirty or free-clean;
//!   `in_use + retained + clean == mapped` (metadata counts as in use).
//! - INV-3: a span handed out is never handed out again before it is freed.
//! - INV-4: free-clean pages read as zero (fresh or `MADV_DONTNEED`ed).
//!
//! Retention: a span freed with [`Release::Retain`] stays committed for
//! reuse until retained bytes pass the heap's bound, then every dirty free
//! page goes back with `MADV_DONTNEED`. [`Release::Now`] (discards) gives the
//! pages back at once. At most one wholly free segment stays mapped.
//!
//! Must never: allocate from the Rust heap, take a parking_lot lock, pin an
//! epoch or panic on a path the global allocator can reach. Threads: any.

mod bitmap;
mod segment;

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use self::bitmap::{find_run, run_len, set_range, test};
use self::segment::{meta_pages, segment_of, Kind, Segment};
use crate::os::{self, OsError};
use crate::sync::RawLock;

/// log2 of [`SEGMENT_SIZE`].
pub(crate) const SEGMENT_SHIFT: u32 = 25;
/// Size and alignment of a segment: 32 MiB.
pub(crate) const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT;
/// Pages per segment at the smallest supported page size (4 KiB).
const MAX_PAGES: usize = SEGMENT_SIZE / 4096;
const WORDS: usize = MAX_PAGES / 64;
/// Granularity of span tags: 64 KiB.
pub(crate) const SLICE_SIZE: usize = 64 << 10;
const SLICES: usize = SEGMENT_SIZE / SLICE_SIZE;
/// Default bound on retained (free but committed) bytes.
const DEFAULT_RETAIN: usize = 64 << 20;

/// How a freed span's pages are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Release {
    /// Keep the pages committed for reuse, within the heap's retention bound.
    Retain,
    /// Give the pages back to the OS now (`MADV_DONTNEED`).
    Now,
    /// The caller already gave the pages back (they read as zero): mark
    /// them clean, with no system call.
    Done,
}

/// A snapshot of the heap's accounting, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HeapStats {
    /// Address space currently mapped (data and metadata).
    pub(crate) mapped: usize,
    /// Bytes of spans handed out and not yet freed.
    pub(crate) in_use: usize,
    /// Free bytes still committed (will be released past the bound).
    pub(crate) retained: usize,
}

/// The page heap. One global instance serves the whole process
/// ([`global`]); tests may build their own.
pub(crate) struct PageHeap {
    lock: RawLock,
    inner: UnsafeCell<Inner>,
    mapped: AtomicUsize,
    in_use: AtomicUsize,
    retained: AtomicUsize,
}

struct Inner {
    segments: *mut Segment,
    retain_limit: usize,
}

// SAFETY: `inner` (and the segment metadata it points to) is only touched
// while `lock` is held (INV-1); the counters are atomics.
unsafe impl Sync for PageHeap {}
// SAFETY: the raw pointers in `Inner` own mappings, not thread-bound data.
unsafe impl Send for PageHeap {}

impl core::fmt::Debug for PageHeap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PageHeap").field("stats", &self.stats()).finish()
    }
}

static GLOBAL: PageHeap = PageHeap::new(DEFAULT_RETAIN);

/// The process-wide page heap.
pub(crate) fn global() -> &'static PageHeap {
    &GLOBAL
}

impl PageHeap {
    /// An empty heap retaining at most `retain_limit` free bytes.
    pub(crate) const fn new(retain_limit: usize) -> Self {
        Self {
            lock: RawLock::new(),
            inner: UnsafeCell::new(Inner { segments: ptr::null_mut(), retain_limit }),
            mapped: AtomicUsize::new(0),
            in_use: AtomicUsize::new(0),
            retained: AtomicUsize::new(0),
        }
    }

    /// The page size spans are measured in.
    #[inline]
    pub(crate) fn page_size(&self) -> usize {
        os::page_size()
    }

    /// The accounting, read without the lock (each counter exact on its own).
    pub(crate) fn stats(&self) -> HeapStats {
        HeapStats {
            mapped: self.mapped.load(Relaxed),
            in_use: self.in_use.load(Relaxed),
            retained: self.retained.load(Relaxed),
        }
    }

    /// Allocates a span of `pages` whole pages. With `zeroed`, every byte of
    /// the span reads as zero (retained pages are released first, so the
    /// span is fresh zero pages, never memset).
    ///
    /// Errors: `ENOMEM` for a zero or absurd page count, or whatever `mmap`
    /// reports.
    pub(crate) fn alloc_span(&self, pages: usize, zeroed: bool) -> Result<NonNull<u8>, OsError> {
        self.alloc_span_aligned(pages, self.page_size(), zeroed)
    }

    /// Like [`Self::alloc_span`], with the span's start a multiple of `align`
    /// (a power of two, at least the page size, below [`SEGMENT_SIZE`]).
    pub(crate) fn alloc_span_aligned(&self, pages: usize, align: usize, zeroed: bool) -> Result<NonNull<u8>, OsError> {
        let page = self.page_size();
        let nomem = OsError { op: "mmap", errno: libc::ENOMEM };
        // Span lengths are kept in pages as `u32` (16 TiB at 4 KiB pages).
        if pages == 0 || pages > u32::MAX as usize || !align.is_power_of_two() || align > 1 << 40 {
            return Err(nomem);
        }
        let align_pages = (align / page).max(1);
        let meta_pages = meta_pages(page);
        let seg_pages = SEGMENT_SIZE / page;
        if pages + align_pages > seg_pages - meta_pages {
            return self.alloc_huge(pages, align_pages);
        }
        let _locked = self.lock.lock();
        // SAFETY: the lock is held (INV-1).
        let inner = unsafe { &mut *self.inner.get() };
        let mut seg = inner.segments;
        while !seg.is_null() {
            // SAFETY: every pointer on the list is a live normal segment and
            // the lock is held (INV-1).
            let s = unsafe { &mut *seg };
            if s.free_pages >= pages {
                if let Some(start) = find_run(&s.free, s.first_page, s.pages, pages, align_pages) {
                    return Ok(self.take(s, start, pages, zeroed));
                }
            }
            seg = s.next;
        }
        let seg = self.map_segment(Kind::Normal, SEGMENT_SIZE, 0)?;
        // SAFETY: `seg` was just mapped and initialised; the lock is held.
        let s = unsafe { &mut *seg };
        s.next = inner.segments;
        inner.segments = seg;
        let start = s.first_page.next_multiple_of(align_pages);
        // Fresh pages are already zero.
        Ok(self.take(s, start, pages, false))
    }

    /// The length in bytes of the span at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must have been returned by [`Self::alloc_span`] on this heap and
    /// not freed since.
    #[allow(dead_code)] // the global allocator's realloc needs it
    pub(crate) unsafe fn span_bytes(&self, ptr: NonNull<u8>) -> usize {
        let seg = segment_of(ptr);
        let _locked = self.lock.lock();
        // SAFETY: the caller guarantees `ptr` is a live span, so its segment
        // is mapped; the lock is held (INV-1).
        let s = unsafe { &*seg };
        let idx = (ptr.as_ptr() as usize - seg as usize) / self.page_size();
        s.span_len[if s.kind == Kind::Huge { 0 } else { idx }] as usize * self.page_size()
    }

    /// Frees the span at `ptr` and returns its length in bytes.
    ///
    /// # Safety
    ///
    /// `ptr` must have been returned by [`Self::alloc_span`] on this heap,
    /// not freed since, and nobody may use its bytes afterwards.
    pub(crate) unsafe fn free_span(&self, ptr: NonNull<u8>, release: Release) -> usize {
        let page = self.page_size();
        let seg = segment_of(ptr);
        // SAFETY: `ptr` is a live span (caller), so `seg` is a live segment;
        // `kind` and `mapped_len` are never written after mapping.
        let (kind, mapped_len) = unsafe { ((*seg).kind, (*seg).mapped_len) };
        if kind == Kind::Huge {
            // SAFETY: span_len[0] was written at allocation, never changed.
            let bytes = unsafe { (*seg).span_len[0] } as usize * page;
            self.in_use.fetch_sub(bytes, Relaxed);
            self.mapped.fetch_sub(mapped_len, Relaxed);
            // SAFETY: the huge mapping is this span's alone and the caller
            // gives the span up; `map_base` is never written after mapping.
            unsafe { os::unmap(NonNull::new_unchecked((*seg).map_base as *mut u8), mapped_len) };
            return bytes;
        }
        let idx = (ptr.as_ptr() as usize - seg as usize) / page;
        // Give the pages back before taking the lock for the bookkeeping:
        // the span is still the caller's, so nobody can be handed it while
        // `madvise` runs, and allocating threads never wait behind it.
        let released = match release {
            Release::Retain => false,
            Release::Done => true,
            Release::Now => {
                // SAFETY: the span is live (caller), so its length is set.
                let bytes = unsafe { self.span_bytes(ptr) };
                // SAFETY: the span is ours (caller) and its contents are dead.
                unsafe { os::discard(ptr, bytes) }.is_ok()
            }
        };
        let _locked = self.lock.lock();
        // SAFETY: live normal segment, lock held (INV-1).
        let s = unsafe { &mut *seg };
        let pages = core::mem::take(&mut s.span_len[idx]) as usize;
        debug_assert!(pages > 0, "free of a pointer that is not a live span");
        let bytes = pages * page;
        set_range(&mut s.free, idx, pages, true);
        s.free_pages += pages;
        self.in_use.fetch_sub(bytes, Relaxed);
        if !released {
            set_range(&mut s.dirty, idx, pages, true);
            let retained = self.retained.fetch_add(bytes, Relaxed) + bytes;
            // SAFETY: the lock is held (INV-1).
            if retained > unsafe { (*self.inner.get()).retain_limit } {
                // SAFETY: the lock is held (INV-1).
                unsafe { self.purge_locked() };
            }
        }
        if s.free_pages == s.pages - s.first_page {
            // SAFETY: the lock is held (INV-1).
            unsafe { self.unmap_empty_locked(seg) };
        }
        bytes
    }

    /// Frees every span in `spans` and gives their pages back to the OS
    /// with one `madvise` per run of adjacent spans (victims of one reclaim
    /// pass often lie side by side). Sorts `spans`. Returns the number of
    /// `madvise` calls made.
    ///
    /// # Safety
    ///
    /// Each pointer must satisfy [`Self::free_span`]'s contract, and appear
    /// once.
    pub(crate) unsafe fn free_spans_now(&self, spans: &mut [NonNull<u8>]) -> u64 {
        spans.sort_unstable();
        let mut calls = 0;
        let mut i = 0;
        while i < spans.len() {
            let start = spans[i];
            let seg = segment_of(start);
            // SAFETY: a live span's segment is mapped; `kind` is never
            // written after mapping.
            if unsafe { (*seg).kind } == Kind::Huge {
                // SAFETY: forwarded from the caller's contract; a huge span
                // is unmapped whole.
                unsafe { self.free_span(start, Release::Now) };
                i += 1;
                continue;
            }
            // SAFETY: live spans (caller), so their lengths are set.
            let mut end = start.as_ptr() as usize + unsafe { self.span_bytes(start) };
            let mut j = i + 1;
            while j < spans.len() && spans[j].as_ptr() as usize == end && segment_of(spans[j]) == seg {
                // SAFETY: as above.
                end += unsafe { self.span_bytes(spans[j]) };
                j += 1;
            }
            // SAFETY: the run is made of whole live spans the caller gives
            // up, so its contents are dead and nobody else uses it.
            let released = unsafe { os::discard(start, end - start.as_ptr() as usize) }.is_ok();
            calls += 1;
            for &span in &spans[i..j] {
                let release = if released { Release::Done } else { Release::Retain };
                // SAFETY: forwarded from the caller's contract.
                unsafe { self.free_span(span, release) };
            }
            i = j;
        }
        calls
    }

    /// Tags (or untags, with `on == false`) the span `[ptr, ptr + len)` so
    /// that [`Self::tagged_span_of`] finds its start from any interior
    /// pointer. `ptr` and `len` must be multiples of [`SLICE_SIZE`], `len` at
    /// most 255 slices.
    ///
    /// # Safety
    ///
    /// `[ptr, ptr + len)` must be a live span of this heap owned by the
    /// caller, in a normal segment.
    #[cfg_attr(loom, allow(dead_code))] // class spans are model memory under loom
    pub(crate) unsafe fn tag(&self, ptr: NonNull<u8>, len: usize, on: bool) {
        debug_assert!(ptr.as_ptr() as usize % SLICE_SIZE == 0 && len % SLICE_SIZE == 0);
        let seg = segment_of(ptr);
        let first = (ptr.as_ptr() as usize - seg as usize) / SLICE_SIZE;
        for i in 0..len / SLICE_SIZE {
            let value = if on { i as u8 + 1 } else { 0 };
            // SAFETY: the span is live (caller), so its segment is mapped;
            // the slice entries are atomics.
            unsafe { (*seg).slices[first + i].store(value, Relaxed) };
        }
    }

    /// The start of the tagged span that contains `ptr`, or `None` if `ptr`
    /// is not inside a tagged span.
    ///
    /// # Safety
    ///
    /// `ptr` must point into a live span of this heap.
    #[inline]
    pub(crate) unsafe fn tagged_span_of(&self, ptr: NonNull<u8>) -> Option<NonNull<u8>> {
        let seg = segment_of(ptr);
        let slice = (ptr.as_ptr() as usize - seg as usize) / SLICE_SIZE;
        // SAFETY: `ptr` is in a live span (caller), so its segment is mapped.
        let back = unsafe { (*seg).slices[slice].load(Relaxed) } as usize;
        let start = (seg as usize + (slice + 1).checked_sub(back)? * SLICE_SIZE) as *mut u8;
        (back != 0).then(|| NonNull::new(start)).flatten()
    }

    /// Grows the span at `ptr` in place to `new_pages` if the pages after it
    /// are free; returns whether it did. Shrinking is not done here.
    ///
    /// # Safety
    ///
    /// `ptr` must be a live span of this heap owned by the caller.
    pub(crate) unsafe fn try_grow(&self, ptr: NonNull<u8>, new_pages: usize) -> bool {
        let page = self.page_size();
        let seg = segment_of(ptr);
        let _locked = self.lock.lock();
        // SAFETY: the span is live (caller); the lock is held (INV-1).
        let s = unsafe { &mut *seg };
        if s.kind == Kind::Huge {
            return false;
        }
        let idx = (ptr.as_ptr() as usize - seg as usize) / page;
        let old = s.span_len[idx] as usize;
        if new_pages <= old {
            return new_pages == old;
        }
        let extra = new_pages - old;
        if idx + new_pages > s.pages || run_len(&s.free, idx + old, extra) < extra {
            return false;
        }
        let dirty = (idx + old..idx + new_pages).filter(|&i| test(&s.dirty, i)).count();
        set_range(&mut s.free, idx + old, extra, false);
        set_range(&mut s.dirty, idx + old, extra, false);
        s.span_len[idx] = new_pages as u32;
        s.free_pages -= extra;
        self.retained.fetch_sub(dirty * page, Relaxed);
        self.in_use.fetch_add(extra * page, Relaxed);
        true
    }

    /// Takes the heap lock without a guard, for `pthread_atfork`'s prepare
    /// handler, so a child never inherits it held mid-operation.
    pub(crate) fn lock_for_fork(&self) {
        core::mem::forget(self.lock.lock());
    }

    /// Releases the lock taken by [`Self::lock_for_fork`].
    ///
    /// # Safety
    ///
    /// Only after [`Self::lock_for_fork`], once, in the parent or the child.
    pub(crate) unsafe fn unlock_after_fork(&self) {
        // SAFETY: forwarded: the lock is held by the fork handler.
        unsafe { self.lock.force_unlock() };
    }

    /// Releases every retained page to the OS now.
    #[allow(dead_code)] // the global allocator's timer needs it
    pub(crate) fn purge(&self) {
        let _locked = self.lock.lock();
        // SAFETY: the lock is held (INV-1).
        unsafe { self.purge_locked() };
    }

    /// # Safety
    ///
    /// `self.lock` must be held.
    unsafe fn purge_locked(&self) {
        let page = self.page_size();
        // SAFETY: the caller holds the lock (INV-1).
        let mut seg = unsafe { (*self.inner.get()).segments };
        while !seg.is_null() {
            // SAFETY: list members are live normal segments; lock held.
            let s = unsafe { &mut *seg };
            let mut i = s.first_page;
            while let Some(run) = find_run(&s.dirty, i, s.pages, 1, 1) {
                let mut end = run;
                while end < s.pages && test(&s.dirty, end) {
                    end += 1;
                }
                let addr = (seg as usize + run * page) as *mut u8;
                // SAFETY: dirty pages are free (INV-2): nobody's data, inside
                // this segment's mapping.
                if unsafe { os::discard(NonNull::new_unchecked(addr), (end - run) * page) }.is_ok() {
                    set_range(&mut s.dirty, run, end - run, false);
                    self.retained.fetch_sub((end - run) * page, Relaxed);
                }
                i = end;
            }
            seg = s.next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_freed_in_a_batch_are_given_back_clean() {
        let heap = PageHeap::new(1 << 30);
        let page = heap.page_size();
        let mut spans: Vec<NonNull<u8>> = (0..6).map(|i| heap.alloc_span(1 + i % 3, true).unwrap()).collect();
        for (i, p) in spans.iter().enumerate() {
            // SAFETY: each span is ours and at least a page long.
            unsafe { ptr::write_bytes(p.as_ptr(), 0xa0 + i as u8, page) };
        }
        let in_use = heap.stats().in_use;
        spans.reverse(); // out of order: the batch sorts
                         // SAFETY: live spans of `heap`, each freed once.
        unsafe { heap.free_spans_now(&mut spans) };
        let after = heap.stats();
        assert_eq!((after.retained, in_use - after.in_use), (0, (1 + 2 + 3) * 2 * page), "{after:?}");
        // Given back: the same pages come out again reading zero.
        let again = heap.alloc_span(12, false).unwrap();
        // SAFETY: the span is ours and 12 pages long.
        assert!(unsafe { core::slice::from_raw_parts(again.as_ptr(), 12 * page) }.iter().all(|&b| b == 0));
    }

    #[test]
    fn spans_do_not_overlap_and_accounting_is_exact() {
        let heap = PageHeap::new(1 << 20);
        let page = heap.page_size();
        let mut spans = Vec::new();
        for pages in [1, 3, 16, 1, 7, 64] {
            let p = heap.alloc_span(pages, true).unwrap();
            // SAFETY: the span is ours and `pages * page` long.
            unsafe { ptr::write_bytes(p.as_ptr(), pages as u8, pages * page) };
            spans.push((p, pages));
        }
        let total: usize = spans.iter().map(|s| s.1 * page).sum();
        let meta = meta_pages(page) * page;
        assert_eq!(heap.stats().in_use, total + meta);
        for &(p, pages) in &spans {
            // SAFETY: live span of this heap.
            assert_eq!(unsafe { heap.span_bytes(p) }, pages * page);
            // SAFETY: reading our own span.
            let bytes = unsafe { core::slice::from_raw_parts(p.as_ptr(), pages * page) };
            assert!(bytes.iter().all(|&b| b == pages as u8), "overlapping spans");
        }
        for (p, _) in spans {
            // SAFETY: live span, never used again.
            unsafe { heap.free_span(p, Release::Retain) };
        }
        let s = heap.stats();
        assert_eq!(s.in_use, meta);
        assert_eq!(s.retained, total);
        // Retained pages come back zeroed when asked.
        let p = heap.alloc_span(92, true).unwrap();
        // SAFETY: live span of 92 pages.
        let bytes = unsafe { core::slice::from_raw_parts(p.as_ptr(), 92 * page) };
        assert!(bytes.iter().all(|&b| b == 0));
        // SAFETY: live span.
        unsafe { heap.free_span(p, Release::Now) };
        heap.purge();
        assert_eq!(heap.stats().retained, 0);
    }

    #[test]
    fn huge_spans_are_their_own_mapping() {
        let heap = PageHeap::new(0);
        let page = heap.page_size();
        let pages = SEGMENT_SIZE / page + 5;
        let before = heap.stats();
        let p = heap.alloc_span(pages, true).unwrap();
        assert_eq!(heap.stats().in_use - before.in_use, pages * page);
        // SAFETY: live span.
        assert_eq!(unsafe { heap.span_bytes(p) }, pages * page);
        // SAFETY: live span, last byte in range.
        unsafe { p.as_ptr().add(pages * page - 1).write(7) };
        // SAFETY: live span.
        assert_eq!(unsafe { heap.free_span(p, Release::Now) }, pages * page);
        assert_eq!(heap.stats(), before);
    }

    #[test]
    fn aligned_spans_tags_and_growth() {
        let heap = PageHeap::new(1 << 20);
        let page = heap.page_size();
        let _pad = heap.alloc_span(3, false).unwrap();
        let p = heap.alloc_span_aligned(SLICE_SIZE * 2 / page, SLICE_SIZE * 2, false).unwrap();
        assert_eq!(p.as_ptr() as usize % (SLICE_SIZE * 2), 0);
        // SAFETY: `p` is a live span of 128 KiB owned by this test.
        unsafe {
            heap.tag(p, SLICE_SIZE * 2, true);
            let inner = NonNull::new_unchecked(p.as_ptr().add(SLICE_SIZE + 100));
            assert_eq!(heap.tagged_span_of(inner), Some(p));
            assert_eq!(heap.tagged_span_of(p), Some(p));
            heap.tag(p, SLICE_SIZE * 2, false);
            assert_eq!(heap.tagged_span_of(inner), None);
        }
        let q = heap.alloc_span(2, false).unwrap();
        // SAFETY: `q` is a live span owned by this test.
        unsafe {
            assert!(heap.try_grow(q, 5));
            assert_eq!(heap.span_bytes(q), 5 * page);
            q.as_ptr().add(5 * page - 1).write(1);
            let r = heap.alloc_span(1, false).unwrap();
            assert!(!heap.try_grow(q, 6), "the next page is taken");
            heap.free_span(r, Release::Now);
            heap.free_span(q, Release::Now);
            heap.free_span(p, Release::Now);
        }
    }

    #[test]
    fn segment_and_larger_alignments_work() {
        let heap = PageHeap::new(0);
        for align in [SEGMENT_SIZE, SEGMENT_SIZE * 4] {
            let before = heap.stats();
            let p = heap.alloc_span_aligned(3, align, true).unwrap();
            assert_eq!(p.as_ptr() as usize % align, 0);
            // SAFETY: a live span of 3 pages.
            unsafe {
                p.as_ptr().add(3 * heap.page_size() - 1).write(9);
                assert_eq!(heap.span_bytes(p), 3 * heap.page_size());
                assert_eq!(heap.tagged_span_of(p), None);
                assert_eq!(heap.free_span(p, Release::Now), 3 * heap.page_size());
            }
            assert_eq!(heap.stats(), before);
        }
    }

    #[test]
    fn absurd_sizes_are_errors() {
        let heap = PageHeap::new(0);
        assert!(heap.alloc_span(0, false).is_err());
        assert!(heap.alloc_span(usize::MAX / 2, false).is_err());
        assert!(heap.alloc_span(u32::MAX as usize + 1, false).is_err(), "lengths are kept in 32 bits");
        assert!(heap.alloc_span_aligned(1, 1 << 41, false).is_err());
        assert!(heap.alloc_span_aligned(1, 3 * 4096, false).is_err());
    }
}
