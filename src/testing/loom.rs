//! The protocol internals, for the model checks in `loom-tests/` only
//! (built with `RUSTFLAGS="--cfg loom"`); not an API. Re-exported from the
//! crate root as `__loom`.
//!
//! Owns: the thin facade the models drive (the shipped state word, headers,
//! arena, manager core and allocator spans) and the loom page source that
//! stands in for the kernel's pages (`pages`), which lazy mode reads through
//! when built for the models.
//!
//! Must never: be built outside `cfg(loom)`, or hold protocol logic of its
//! own (the models must check the code users run).

pub use crate::handle::arena::{Arena, Counters, Wake};
pub use crate::handle::header::{Birth, Header};
pub use crate::handle::state::{Dropped, Snapshot, State};
pub use crate::handle::store::{Block, Loc};
pub use crate::manager::table::{Scan, Table};

/// The manager's core: its table, its epoch collector and the one
/// reclaim decision (`Core::reclaim`, `Core::pass`), without the
/// manager thread or pressure discovery.
pub struct Core(crate::manager::Core);

impl core::fmt::Debug for Core {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Core").finish_non_exhaustive()
    }
}

impl Core {
    /// A core ordering its table by `policy` and protecting headers
    /// with `collector` (a fresh one per model execution, which the
    /// model's threads register with), offering in lazy mode after
    /// `lazy_delay` if given. `probe`, if given, is called with each
    /// header a pass reads outside the table lock, right before and
    /// right after the read.
    pub fn new(
        policy: crate::Policy,
        collector: crossbeam_epoch::Collector,
        lazy_delay: Option<std::time::Duration>,
        probe: Option<Box<dyn Fn(core::ptr::NonNull<Header>) + Send + Sync>>,
    ) -> Self {
        Self(crate::manager::Core::for_model(policy, usize::MAX, collector, lazy_delay, probe))
    }

    /// `Core::reclaim`: scan, then claim victims and release their
    /// bytes until `target` bytes are freed or nothing unpinned is
    /// left. Returns the bytes freed.
    pub fn reclaim(&self, arena: &Arena, local: &crossbeam_epoch::LocalHandle, target: usize) -> usize {
        self.0.reclaim(arena, local, target)
    }

    /// `Core::pass`: [`Core::reclaim`], and with `offer` (lazy mode)
    /// also offers cold spans. Returns the bytes freed and how many
    /// offerable allocations remain unoffered.
    pub fn pass(
        &self,
        arena: &Arena,
        local: &crossbeam_epoch::LocalHandle,
        target: usize,
        offer: bool,
    ) -> (usize, usize) {
        self.0.model_pass(arena, local, target, offer)
    }

    /// The bytes the last scan found pinned.
    pub fn pinned_bytes(&self) -> usize {
        self.0.pinned_bytes()
    }
}

/// The page size spans are measured in.
pub fn page_size() -> usize {
    crate::os::page_size()
}

/// An arena in lazy reclaim mode (`ReclaimMode::Lazy`) with no manager
/// thread: wake requests are only flagged.
pub fn lazy_arena() -> Arena {
    Arena::with_mode(usize::MAX, std::sync::Arc::new(Wake::default()), true)
}

/// A fresh span of `pages` pages from `arena`'s store, as a handle
/// allocates one. Its memory is real (so the page heap can free it
/// wherever the shipped code does) but, under loom, the lazy path reads
/// and writes a [`pages::Pages`] attached to it instead.
///
/// # Panics
///
/// If the page heap cannot map memory.
pub fn alloc_span(arena: &Arena, pages: usize) -> Block {
    let block = arena.store.alloc(pages * page_size(), 8, false).expect("loom model: mapping a span failed");
    assert_eq!(block.loc, Loc::Span);
    block
}

/// Takes every header published on `arena`'s intake off it, oldest first,
/// as the manager's table does when it drains (`Arena::drain_intake`). The
/// arena no longer frees them, and their link word is free for lazy mode's
/// saved words: only a header taken in may be offered. Free each with
/// [`free_header`].
pub fn take_in(arena: &Arena) -> Vec<core::ptr::NonNull<Header>> {
    let mut taken = Vec::new();
    arena.drain_intake(|h| taken.push(h));
    taken
}

/// Frees a header taken with [`take_in`] (and the saved words it holds),
/// as the table does once no pin or owner can reach it.
///
/// # Safety
///
/// `header` came from [`take_in`], is freed once, and nobody uses it after.
pub unsafe fn free_header(header: core::ptr::NonNull<Header>) {
    // SAFETY: headers are created by `Box::leak` in `Arena::register`; the
    // caller's contract makes this the only free.
    drop(unsafe { Box::from_raw(header.as_ptr()) });
}

/// `Header::offer`: the manager's offer of a cold span (lazy mode).
pub fn offer(header: &Header) -> bool {
    header.offer()
}

/// A handle's pin, as `Discardable::pin` does it: the one-`fetch_add`
/// fast path, then the header's slow path, which waits out an offer or
/// a revival, revives an offered allocation, or fails.
pub fn pin(header: &Header, arena: &Arena) -> bool {
    header.pin(arena)
}

/// Lazy mode's pages as loom sees them: the models' page source and
/// simulated kernel.
///
/// A model allocates a real span ([`alloc_span`]) and attaches a
/// [`Pages`] to its address. Under loom, `handle::lazy` reads and writes
/// the first word of each page here, as loom atomics, keeps a loom cell
/// beside each saved word, and records `MADV_FREE` here instead of
/// calling the OS. A model thread plays the kernel with
/// [`Pages::reclaim`]; readers read with [`Pages::read`]; whoever frees
/// the bytes in the model calls [`Pages::free`] first, after which any
/// touch by the lazy path panics.
pub mod pages {
    use core::ptr::NonNull;
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicBool as UnmodelledBool, AtomicUsize as UnmodelledUsize};
    use std::sync::{Arc, Weak};

    use crate::os::OsError;
    use crate::sync::{AtomicU64, Ordering::*, UnsafeCell};

    /// One page of an attached span.
    struct Page {
        /// The first word: the data, a cookie while offered, zero once
        /// the kernel took the page.
        word: AtomicU64,
        /// Beside `Header::saved[i]`: written by the offerer, read by
        /// the reviver, so loom checks that hand-over.
        saved: UnsafeCell<u64>,
        /// The rest of the page: read by pinned readers, zeroed by the
        /// kernel, overwritten by the model's free.
        rest: UnsafeCell<u64>,
        /// The first word as `MADV_FREE` left it (zero: never offered).
        /// The kernel may take the page while it still reads so: no
        /// write since the offer (the models' data never equals the
        /// cookie).
        clean: AtomicU64,
    }

    /// The loom-visible pages of one span (see the module docs).
    pub struct Pages {
        base: usize,
        pages: Box<[Page]>,
        /// Whether the bytes were freed: written by [`Pages::free`], read
        /// by every touch of the lazy path and every reader, so loom
        /// both explores a touch racing the free and rejects one that is
        /// not ordered before it.
        freed: UnsafeCell<bool>,
        /// Offers fail, as a failing `madvise` would (set before the
        /// model's threads start; invisible to loom).
        refuse: UnmodelledBool,
        /// How many leading pages a refused offer hands to the kernel
        /// before it fails, as a `madvise` that stops partway does
        /// (like `refuse`).
        refuse_after: UnmodelledUsize,
    }

    // SAFETY: the cells are only accessed through loom's `with` and
    // `with_mut`, which check every access for races; the rest are
    // atomics.
    unsafe impl Sync for Pages {}
    // SAFETY: as above.
    unsafe impl Send for Pages {}

    impl core::fmt::Debug for Pages {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_struct("Pages").field("base", &self.base).field("len", &self.pages.len()).finish()
        }
    }

    std::thread_local! {
        /// The page sources attached on this OS thread. loom runs all of
        /// a model's threads on the test's own thread, so this is per
        /// test, shared by the model's threads.
        static ATTACHED: RefCell<Vec<(usize, Weak<Pages>)>> = const { RefCell::new(Vec::new()) };
    }

    impl Pages {
        /// Attaches pages to the span at `data`: page `i` starts with
        /// `words[i]`, and the rest of every page holds `rest`. The
        /// pages stay attached while the returned `Arc` lives.
        pub fn attach(data: NonNull<u8>, words: &[u64], rest: u64) -> Arc<Pages> {
            let base = data.as_ptr() as usize;
            let pages = Arc::new(Pages {
                base,
                pages: words
                    .iter()
                    .map(|&w| Page {
                        word: AtomicU64::new(w),
                        saved: UnsafeCell::new(0),
                        rest: UnsafeCell::new(rest),
                        clean: AtomicU64::new(0),
                    })
                    .collect(),
                freed: UnsafeCell::new(false),
                refuse: UnmodelledBool::new(false),
                refuse_after: UnmodelledUsize::new(0),
            });
            ATTACHED.with(|a| {
                let mut a = a.borrow_mut();
                a.retain(|(b, w)| *b != base && w.strong_count() > 0);
                a.push((base, Arc::downgrade(&pages)));
            });
            pages
        }

        /// How many pages.
        pub fn len(&self) -> usize {
            self.pages.len()
        }

        /// Whether there are no pages.
        pub fn is_empty(&self) -> bool {
            self.pages.is_empty()
        }

        /// What a pinned reader reads on page `i`: its first word and
        /// the rest. loom checks the read of the rest against the
        /// kernel's zeroing and the model's free.
        ///
        /// # Panics
        ///
        /// If the bytes were freed.
        pub fn read(&self, i: usize) -> (u64, u64) {
            self.check_live("a pinned reader read");
            let page = &self.pages[i];
            let word = page.word.load(Relaxed);
            // SAFETY: a read of the model's cell; loom checks it against
            // every write (the kernel's, the free's).
            let rest = page.rest.with(|r| unsafe { *r });
            (word, rest)
        }

        /// The simulated kernel reclaims page `i` of an offered span, as
        /// it may under memory pressure: only while `MADV_FREE` is
        /// pending and nothing wrote the page since (then the first word
        /// still reads as the offer left it). One compare-and-swap, as
        /// the real reclaim is atomic with respect to the process's
        /// writes; the page reads as zero from then on. Returns whether
        /// it took the page.
        ///
        /// Call it only while the model has not freed the bytes (the
        /// real `MADV_DONTNEED` ends the offer).
        pub fn reclaim(&self, i: usize) -> bool {
            let page = &self.pages[i];
            // Acquire pairs with the Release in `offer`: the kernel acts
            // after the madvise call, and so after everything the
            // offerer saw.
            let clean = page.clean.load(Acquire);
            if clean == 0 || page.word.compare_exchange(clean, 0, Relaxed, Relaxed).is_err() {
                return false;
            }
            // SAFETY: the kernel's write; loom checks it against readers.
            page.rest.with_mut(|r| unsafe { *r = 0 });
            true
        }

        /// The model frees the allocation's bytes (it won them): loom
        /// checks that every read came before, and any later touch by
        /// the lazy path panics.
        pub fn free(&self) {
            for page in self.pages.iter() {
                // SAFETY: the free's write; loom checks it against readers.
                page.rest.with_mut(|r| unsafe { *r = 0 });
            }
            // SAFETY: the free's write; loom checks it against every
            // touch of the pages.
            self.freed.with_mut(|f| unsafe { *f = true });
        }

        /// Panics if the bytes were freed; a loom read that conflicts
        /// with the free's write.
        fn check_live(&self, what: &str) {
            // SAFETY: a read of the model's cell (see `freed`).
            let freed = self.freed.with(|f| unsafe { *f });
            assert!(!freed, "{what} the bytes after they were freed");
        }

        /// Makes every later offer fail (`madvise` returning an error)
        /// while `on`, before it hands any page to the kernel.
        pub fn refuse_offers(&self, on: bool) {
            self.refuse_after.store(0, SeqCst);
            self.refuse.store(on, SeqCst);
        }

        /// Makes every later offer fail after handing its first `pages`
        /// pages to the kernel, as a `madvise` that stops partway through
        /// the range does (`ENOMEM` on a hole, `EAGAIN`): the simulated
        /// kernel may take those pages although the call failed.
        pub fn refuse_offers_after_marking(&self, pages: usize) {
            self.refuse_after.store(pages, SeqCst);
            self.refuse.store(true, SeqCst);
        }

        /// Whether an offer ever handed a page to the kernel (even one
        /// that then failed). Call it inside the model, once the offerer
        /// is joined.
        pub fn was_offered(&self) -> bool {
            self.pages.iter().any(|page| page.clean.load(Relaxed) != 0)
        }

        fn of(data: NonNull<u8>) -> Arc<Pages> {
            let base = data.as_ptr() as usize;
            ATTACHED
                .with(|a| a.borrow().iter().find(|(b, _)| *b == base).and_then(|(_, w)| w.upgrade()))
                .expect("loom model: no pages attached to this span")
        }
    }

    /// The first word of one page, for `handle::lazy` (derefs to the
    /// loom atomic).
    pub struct Word {
        pages: Arc<Pages>,
        i: usize,
    }

    impl core::fmt::Debug for Word {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_struct("Word").field("base", &self.pages.base).field("page", &self.i).finish()
        }
    }

    impl core::ops::Deref for Word {
        type Target = AtomicU64;

        fn deref(&self) -> &AtomicU64 {
            &self.pages.pages[self.i].word
        }
    }

    impl Word {
        /// Records the word the offerer saved (`Header::saved[i]`).
        pub(crate) fn save(&self, value: u64) {
            // SAFETY: the offerer's write under OFFERING; loom checks
            // it against the reviver's read.
            self.pages.pages[self.i].saved.with_mut(|s| unsafe { *s = value });
        }

        /// Reads the saved word as the reviver (or a failed offer) does
        /// and checks that it is `value`, the one `Header::saved` holds.
        pub(crate) fn check_saved(&self, value: u64) {
            // SAFETY: a read under REVIVING or OFFERING; loom checks it
            // against the offerer's write.
            let saved = self.pages.pages[self.i].saved.with(|s| unsafe { *s });
            assert_eq!(saved, value, "the saved word changed under the reviver");
        }
    }

    /// The first word of page `i` of the span at `data`.
    ///
    /// # Panics
    ///
    /// If no pages are attached there, or the bytes were freed.
    pub(crate) fn word(data: NonNull<u8>, i: usize) -> Word {
        let pages = Pages::of(data);
        pages.check_live("lazy mode touched");
        assert!(i < pages.len(), "page {i} is outside the span");
        Word { pages, i }
    }

    /// `MADV_FREE` on the span at `data`: from now on the kernel may
    /// take any page that nobody writes. A refused offer fails, after
    /// handing over the pages [`Pages::refuse_offers_after_marking`]
    /// asked for.
    pub(crate) fn offer(data: NonNull<u8>, len: usize) -> Result<(), OsError> {
        let pages = Pages::of(data);
        pages.check_live("lazy mode offered");
        assert_eq!(len, pages.len() * super::page_size(), "the offer does not cover the span");
        let refused = pages.refuse.load(SeqCst);
        let marked = if refused { pages.refuse_after.load(SeqCst).min(pages.len()) } else { pages.len() };
        for page in &pages.pages[..marked] {
            let cookie = page.word.load(Relaxed);
            // Release: see `reclaim`.
            page.clean.store(cookie, Release);
        }
        if refused {
            let errno = if marked == 0 { libc::EINVAL } else { libc::ENOMEM };
            return Err(OsError { op: "madvise(MADV_FREE)", errno });
        }
        Ok(())
    }
}
pub use crate::alloc::model::{ClassSpans, Listed, SpanView, ACTIVE, PARKED, STOLEN};

/// One group registry slot (src/group/slot.rs), the shipped slot
/// protocol, in loom's atomics: claims, publications with their seqlock,
/// and reads. Every field a publication writes is the same `value`, so a
/// model sees at once whether a read mixed two publications.
#[derive(Debug)]
pub struct GroupSlot(crate::group::Slot);

/// A hold on a [`GroupSlot`].
#[derive(Debug, Clone, Copy)]
pub struct GroupHold(crate::group::Hold);

impl Default for GroupSlot {
    fn default() -> Self {
        Self(crate::group::Slot::new())
    }
}

impl GroupSlot {
    /// `Slot::try_claim`: claims the slot for `tag` at `now` (ms) if it
    /// is free or its heartbeat older than the lease.
    pub fn try_claim(&self, tag: u32, now: u64) -> Option<GroupHold> {
        self.0.try_claim(tag, now).map(GroupHold)
    }

    /// `Slot::publish` of figures whose every field is `value`; `false` if
    /// the slot was taken from the hold.
    pub fn publish(&self, hold: &mut GroupHold, value: u64, now: u64) -> bool {
        let f = crate::group::Figures {
            pid: value,
            weight: value,
            held: value,
            pinned: value,
            demand: value,
            share: value,
            reclaims: value,
        };
        self.0.publish(&mut hold.0, &f, now)
    }

    /// `Slot::release`.
    pub fn release(&self, hold: GroupHold) {
        self.0.release(hold.0);
    }

    /// `Slot::read`: the holder's tag and heartbeat and the seven fields of
    /// one publication, or `None` (free, being written, changed while read).
    pub fn read(&self) -> Option<(u32, u64, [u64; 7])> {
        self.0
            .read()
            .map(|(c, f)| (c.tag, c.heartbeat, [f.pid, f.weight, f.held, f.pinned, f.demand, f.share, f.reclaims]))
    }

    /// The lease, in ms.
    pub const LEASE_MS: u64 = crate::group::LEASE_MS;
}
