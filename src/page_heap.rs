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

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering::Relaxed};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Huge,
}

/// Segment metadata, at the start of every segment (INV-1).
#[repr(C)]
struct Segment {
    next: *mut Segment,
    kind: Kind,
    /// Start and length of the whole mapping in bytes (the header is not at
    /// its start only for huge spans aligned to a segment or more).
    map_base: usize,
    mapped_len: usize,
    /// First data page (after the metadata pages).
    first_page: usize,
    /// Pages in the segment (data limit).
    pages: usize,
    /// Free data pages in the segment.
    free_pages: usize,
    /// Per [`SLICE_SIZE`] slice: 0, or 1 + the distance in slices back to
    /// the start of the tagged span covering it (see [`PageHeap::tag`]).
    /// Written by the span's owner before its pointers escape, read by
    /// `free` of pointers into it; atomics so no access is a data race.
    slices: [AtomicU8; SLICES],
    /// Bit set: page is free.
    free: [u64; WORDS],
    /// Bit set: page is free but still committed (retained).
    dirty: [u64; WORDS],
    /// Length in pages of the used span starting at each page (0 elsewhere).
    span_len: [u32; MAX_PAGES],
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

    /// Marks `[start, start + pages)` of `s` used and returns its address.
    fn take(&self, s: &mut Segment, start: usize, pages: usize, zeroed: bool) -> NonNull<u8> {
        let page = self.page_size();
        let base = s as *mut Segment as usize;
        let mut dirty = 0;
        // Release dirty sub-runs first when the caller needs zeroes (INV-4).
        let mut i = start;
        while i < start + pages {
            if !test(&s.dirty, i) {
                i += 1;
                continue;
            }
            let run = i;
            while i < start + pages && test(&s.dirty, i) {
                i += 1;
            }
            dirty += i - run;
            if zeroed {
                let addr = (base + run * page) as *mut u8;
                // SAFETY: the run is free (so nobody's data) and inside this
                // segment's mapping; `addr` is non-null.
                let ok = unsafe { os::discard(NonNull::new_unchecked(addr), (i - run) * page) };
                if ok.is_err() {
                    // Could not release: zero by hand so the promise holds.
                    // SAFETY: same range, mapped and writable, unused.
                    unsafe { ptr::write_bytes(addr, 0, (i - run) * page) };
                }
            }
        }
        set_range(&mut s.free, start, pages, false);
        set_range(&mut s.dirty, start, pages, false);
        s.span_len[start] = pages as u32;
        s.free_pages -= pages;
        self.retained.fetch_sub(dirty * page, Relaxed);
        self.in_use.fetch_add(pages * page, Relaxed);
        // SAFETY: `base + start * page` lies inside a live mapping.
        unsafe { NonNull::new_unchecked((base + start * page) as *mut u8) }
    }

    fn alloc_huge(&self, pages: usize, align_pages: usize) -> Result<NonNull<u8>, OsError> {
        let page = self.page_size();
        let nomem = OsError { op: "mmap", errno: libc::ENOMEM };
        // The header takes the first page; the data starts at the first
        // aligned page after it (below SEGMENT_SIZE, so masking finds the
        // header).
        let first = align_pages.max(1);
        let len = pages.checked_add(first).and_then(|p| p.checked_mul(page)).ok_or(nomem)?;
        let seg = self.map_segment(Kind::Huge, len, first)?;
        // SAFETY: just mapped and initialised; not shared with anyone yet.
        let s = unsafe { &mut *seg };
        s.span_len[0] = pages as u32;
        let data_page = s.first_page;
        self.in_use.fetch_add(pages * page, Relaxed);
        // SAFETY: the data starts `first_page` pages after the header, inside
        // the mapping of `pages + first` pages.
        Ok(unsafe { NonNull::new_unchecked((seg as *mut u8).add(data_page * page)) })
    }

    /// Maps and initialises a segment of `len` bytes.
    fn map_segment(&self, kind: Kind, len: usize, huge_first: usize) -> Result<*mut Segment, OsError> {
        let page = self.page_size();
        // Data aligned to a segment or more cannot find a header by masking
        // (it would mask to itself): its header sits in the page before it,
        // `huge_first` pages into a mapping aligned to the data's alignment.
        let over_aligned = kind == Kind::Huge && huge_first * page >= SEGMENT_SIZE;
        let base = os::map_aligned(len, if over_aligned { huge_first * page } else { SEGMENT_SIZE })?;
        self.mapped.fetch_add(len, Relaxed);
        let header =
            if over_aligned { base.as_ptr() as usize + (huge_first - 1) * page } else { base.as_ptr() as usize };
        let seg = header as *mut Segment;
        let huge_first = if over_aligned { 1 } else { huge_first };
        let (first_page, pages) = match kind {
            Kind::Normal => (meta_pages(page), SEGMENT_SIZE / page),
            Kind::Huge => (huge_first, len / page),
        };
        // The mapping is zero-filled, so the bitmaps and span lengths start
        // cleared; only the scalar fields need writing. A huge segment's
        // header fits its first page because only the scalars are touched.
        // SAFETY: `seg` points to at least one fresh, writable, aligned page.
        unsafe {
            ptr::addr_of_mut!((*seg).next).write(ptr::null_mut());
            ptr::addr_of_mut!((*seg).kind).write(kind);
            ptr::addr_of_mut!((*seg).map_base).write(base.as_ptr() as usize);
            ptr::addr_of_mut!((*seg).mapped_len).write(len);
            ptr::addr_of_mut!((*seg).first_page).write(first_page);
            ptr::addr_of_mut!((*seg).pages).write(pages);
        }
        if kind == Kind::Normal {
            // SAFETY: a normal segment's metadata pages are fresh and ours.
            let s = unsafe { &mut *seg };
            set_range(&mut s.free, first_page, pages - first_page, true);
            s.free_pages = pages - first_page;
            self.in_use.fetch_add(first_page * page, Relaxed);
        }
        Ok(seg)
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
        let released = release == Release::Now && {
            // SAFETY: the span is live (caller), so its length is set.
            let bytes = unsafe { self.span_bytes(ptr) };
            // SAFETY: the span is ours (caller) and its contents are dead.
            unsafe { os::discard(ptr, bytes) }.is_ok()
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

    /// Unmaps `seg` (wholly free) if another wholly free segment exists.
    ///
    /// # Safety
    ///
    /// `self.lock` must be held and `seg` must be a wholly free segment on
    /// the list.
    unsafe fn unmap_empty_locked(&self, seg: *mut Segment) {
        // SAFETY: the caller holds the lock (INV-1).
        let inner = unsafe { &mut *self.inner.get() };
        let mut other_empty = false;
        let mut link: *mut *mut Segment = &mut inner.segments;
        let mut prev_link = ptr::null_mut();
        // SAFETY: `link` points at the list head or a live member's `next`
        // field; list members are live and the lock is held (INV-1).
        while let Some(s) = unsafe { (*link).as_mut() } {
            if ptr::eq(s, seg) {
                prev_link = link;
            } else if s.free_pages == s.pages - s.first_page {
                other_empty = true;
            }
            link = &mut s.next;
        }
        if !other_empty || prev_link.is_null() {
            return;
        }
        let page = self.page_size();
        // SAFETY: `seg` is live (caller) and wholly free; unlink it first.
        let s = unsafe { &mut *seg };
        // SAFETY: `prev_link` points at the link that holds `seg`.
        unsafe { *prev_link = s.next };
        let dirty = count(&s.dirty) * page;
        self.retained.fetch_sub(dirty, Relaxed);
        self.in_use.fetch_sub(s.first_page * page, Relaxed);
        self.mapped.fetch_sub(s.mapped_len, Relaxed);
        // SAFETY: the segment is unlinked and holds no live span.
        unsafe { os::unmap(NonNull::new_unchecked(seg.cast()), s.mapped_len) };
    }
}

/// The metadata pages of a normal segment at page size `page`.
fn meta_pages(page: usize) -> usize {
    core::mem::size_of::<Segment>().div_ceil(page)
}

/// The segment header of the span at (or the block inside a span at)
/// `ptr`: address masking, except for huge spans aligned to a segment or
/// more, whose header is the page before them (no other span starts on a
/// segment boundary: normal segments begin with their metadata).
#[inline]
fn segment_of(ptr: NonNull<u8>) -> *mut Segment {
    let addr = ptr.as_ptr() as usize;
    if addr % SEGMENT_SIZE == 0 {
        (addr - os::page_size()) as *mut Segment
    } else {
        (addr & !(SEGMENT_SIZE - 1)) as *mut Segment
    }
}

#[inline]
fn test(bits: &[u64], i: usize) -> bool {
    bits[i / 64] >> (i % 64) & 1 == 1
}

fn count(bits: &[u64]) -> usize {
    bits.iter().map(|w| w.count_ones() as usize).sum()
}

/// Sets (or clears) `n` bits from `start`.
fn set_range(bits: &mut [u64], start: usize, n: usize, value: bool) {
    let mut i = start;
    let end = start + n;
    while i < end {
        let b = i % 64;
        let take = (64 - b).min(end - i);
        let mask = if take == 64 { u64::MAX } else { ((1u64 << take) - 1) << b };
        if value {
            bits[i / 64] |= mask;
        } else {
            bits[i / 64] &= !mask;
        }
        i += take;
    }
}

/// The first set bit in `[from, limit)`.
fn next_set(bits: &[u64], from: usize, limit: usize) -> Option<usize> {
    let mut i = from;
    while i < limit {
        let word = bits[i / 64] >> (i % 64);
        if word != 0 {
            let at = i + word.trailing_zeros() as usize;
            return (at < limit).then_some(at);
        }
        i = (i / 64 + 1) * 64;
    }
    None
}

/// How many consecutive set bits start at `i`, counting at most `cap`.
fn run_len(bits: &[u64], i: usize, cap: usize) -> usize {
    let mut len = 0;
    while len < cap {
        let at = i + len;
        let ones = (bits[at / 64] >> (at % 64)).trailing_ones() as usize;
        len += ones;
        if (at + ones) % 64 != 0 || ones == 0 {
            break;
        }
    }
    len.min(cap)
}

/// The first run of `n` set bits in `[start, limit)` whose start is a
/// multiple of `align` (first fit).
fn find_run(bits: &[u64], start: usize, limit: usize, n: usize, align: usize) -> Option<usize> {
    let mut i = next_set(bits, start, limit)?.next_multiple_of(align);
    while i + n <= limit {
        let len = run_len(bits, i, n);
        if len >= n {
            return Some(i);
        }
        i = next_set(bits, i + len + 1, limit)?.next_multiple_of(align);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_run_first_fit() {
        let mut bits = [0u64; 4];
        set_range(&mut bits, 3, 2, true);
        set_range(&mut bits, 60, 80, true);
        assert_eq!(find_run(&bits, 0, 256, 1, 1), Some(3));
        assert_eq!(find_run(&bits, 0, 256, 2, 1), Some(3));
        assert_eq!(find_run(&bits, 0, 256, 3, 1), Some(60));
        assert_eq!(find_run(&bits, 0, 256, 80, 1), Some(60));
        assert_eq!(find_run(&bits, 0, 256, 81, 1), None);
        assert_eq!(find_run(&bits, 0, 100, 41, 1), None);
        assert_eq!(find_run(&bits, 61, 256, 79, 1), Some(61));
        assert_eq!(find_run(&bits, 0, 256, 1, 4), Some(4));
        assert_eq!(find_run(&bits, 0, 256, 2, 2), Some(60));
        assert_eq!(find_run(&bits, 0, 256, 2, 8), Some(64));
        assert_eq!(find_run(&bits, 0, 256, 16, 16), Some(64));
        assert_eq!(find_run(&bits, 0, 256, 70, 16), Some(64));
        assert_eq!(find_run(&bits, 0, 256, 77, 16), None);
        assert_eq!(find_run(&bits, 0, 256, 64, 64), Some(64));
        assert_eq!(find_run(&bits, 0, 256, 76, 64), Some(64));
        assert_eq!(find_run(&bits, 0, 256, 77, 64), None);
        assert_eq!(count(&bits), 82);
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
