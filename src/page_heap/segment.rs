//! Segments: the metadata at the start of each mapping ([`Segment`]), how
//! a pointer finds its segment, and the heap's segment-level operations:
//! mapping and initialising a segment (normal or huge), carving a span out
//! of one, and unmapping a wholly free one. The module docs of the parent
//! give the layout and the invariants (INV-1 … INV-4).

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU8, Ordering::Relaxed};

use super::bitmap::{count, set_range, test};
#[cfg(doc)]
use super::SLICE_SIZE;
use super::{PageHeap, MAX_PAGES, SEGMENT_SIZE, SLICES, WORDS};
use crate::os::{self, OsError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Normal,
    Huge,
}

/// Segment metadata, at the start of every segment (INV-1).
#[repr(C)]
pub(super) struct Segment {
    pub(super) next: *mut Segment,
    pub(super) kind: Kind,
    /// Start and length of the whole mapping in bytes (the header is not at
    /// its start only for huge spans aligned to a segment or more).
    pub(super) map_base: usize,
    pub(super) mapped_len: usize,
    /// First data page (after the metadata pages).
    pub(super) first_page: usize,
    /// Pages in the segment (data limit).
    pub(super) pages: usize,
    /// Free data pages in the segment.
    pub(super) free_pages: usize,
    /// Per [`SLICE_SIZE`] slice: 0, or 1 + the distance in slices back to
    /// the start of the tagged span covering it (see [`PageHeap::tag`]).
    /// Written by the span's owner before its pointers escape, read by
    /// `free` of pointers into it; atomics so no access is a data race.
    pub(super) slices: [AtomicU8; SLICES],
    /// Bit set: page is free.
    pub(super) free: [u64; WORDS],
    /// Bit set: page is free but still committed (retained).
    pub(super) dirty: [u64; WORDS],
    /// Length in pages of the used span starting at each page (0 elsewhere).
    pub(super) span_len: [u32; MAX_PAGES],
}

/// The metadata pages of a normal segment at page size `page`.
pub(super) fn meta_pages(page: usize) -> usize {
    core::mem::size_of::<Segment>().div_ceil(page)
}

/// The segment header of the span at (or the block inside a span at)
/// `ptr`: address masking, except for huge spans aligned to a segment or
/// more, whose header is the page before them (no other span starts on a
/// segment boundary: normal segments begin with their metadata).
#[inline]
pub(super) fn segment_of(ptr: NonNull<u8>) -> *mut Segment {
    let addr = ptr.as_ptr() as usize;
    if addr % SEGMENT_SIZE == 0 {
        (addr - os::page_size()) as *mut Segment
    } else {
        (addr & !(SEGMENT_SIZE - 1)) as *mut Segment
    }
}

impl PageHeap {
    /// Marks `[start, start + pages)` of `s` used and returns its address.
    pub(super) fn take(&self, s: &mut Segment, start: usize, pages: usize, zeroed: bool) -> NonNull<u8> {
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

    pub(super) fn alloc_huge(&self, pages: usize, align_pages: usize) -> Result<NonNull<u8>, OsError> {
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
    pub(super) fn map_segment(&self, kind: Kind, len: usize, huge_first: usize) -> Result<*mut Segment, OsError> {
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

    /// Unmaps `seg` (wholly free) if another wholly free segment exists.
    ///
    /// # Safety
    ///
    /// `self.lock` must be held and `seg` must be a wholly free segment on
    /// the list.
    pub(super) unsafe fn unmap_empty_locked(&self, seg: *mut Segment) {
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
