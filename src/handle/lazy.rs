//! Lazy mode: cold allocations that own whole pages are handed to the
//! kernel with `MADV_FREE`, so it can drop them the instant memory runs
//! short, with no user-space reaction time.
//!
//! The recipe (DESIGN.md, "Reclaim modes"; Chromium's
//! `madv_free_discardable_memory_posix.cc` is the single-threaded original):
//! before `MADV_FREE`, each page's first word is saved in strong memory and
//! replaced by a non-zero cookie. Re-pinning claims each page by one
//! compare-and-swap from the cookie to a second marker: a successful swap
//! writes the page, which cancels its pending free, and the saved word then
//! goes back with a plain write; a failed one (the page reads as zero)
//! means the kernel took it, and the whole allocation is then discarded.
//! The saved words are kept as `MaybeUninit<u64>` and never read as
//! integers: the first bytes of a page may be a `T`'s padding, which is
//! uninitialised (so the cookie swap compares only words we wrote). A failed
//! `MADV_FREE` puts the words back the same way, as it may have applied to
//! part of the range; a page found taken then ends the offer as made, so
//! that the next pin's revival discards the allocation.
//!
//! Concurrency is the state word's (state INV-5..7): the offerer holds
//! `OFFERING`, exactly one pinner holds `REVIVING`, everyone else waits,
//! and nobody ever reads the bytes as `T` while a flag is set. Only spans
//! are offered: no allocator metadata lives inside them.
//!
//! Under `cfg(loom)` the first words and `MADV_FREE` go through the loom
//! models' page source (`__loom::pages`): the words are loom atomics, each
//! saved word has a loom cell beside it, and a model thread plays the
//! kernel that takes offered pages. Everything else is the shipped code.
//!
//! Must never: offer a pinned allocation, or let two revivers run.

use core::mem::MaybeUninit;
use core::ptr::NonNull;
#[cfg(not(loom))]
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::*;

use super::arena::Arena;
use super::header::Header;
use super::state::State;
use super::store::Loc;
use crate::os;
#[cfg(not(loom))]
use crate::os::offer as offer_pages;

/// The word left at the start of every offered page. Any non-zero value
/// works: a page the kernel took reads as zero.
const COOKIE: u64 = 0xD15C_A4DA_B1E0_0FF5;
/// What a reviver swaps the cookie for to claim a page back, before it
/// writes the saved word (which may be uninitialised) in its place.
const CLAIMED: u64 = 0xC1A1_3ED0_D15C_A4DA;

/// Reads page `i`'s first word as the offer saves it: as bytes that may be
/// uninitialised (a `T`'s padding), never as an integer.
///
/// # Safety
///
/// As for [`first_word`].
#[cfg(not(loom))]
unsafe fn read_first_word(data: NonNull<u8>, i: usize) -> MaybeUninit<u64> {
    // SAFETY: page `i` is inside the live span and 8-byte aligned; the
    // caller's flag keeps every other access away (as for `first_word`).
    unsafe { data.as_ptr().add(i * os::page_size()).cast::<MaybeUninit<u64>>().read() }
}

/// Writes a saved first word back into page `i`, which the caller claimed.
///
/// # Safety
///
/// As for [`first_word`], and the page must be claimed (its cookie swapped
/// for [`CLAIMED`]), so the kernel no longer takes it.
#[cfg(not(loom))]
unsafe fn write_first_word(data: NonNull<u8>, i: usize, value: MaybeUninit<u64>) {
    // SAFETY: as in `read_first_word`.
    unsafe { data.as_ptr().add(i * os::page_size()).cast::<MaybeUninit<u64>>().write(value) }
}

/// Loom models: the model's page words are always initialised.
#[cfg(loom)]
unsafe fn read_first_word(data: NonNull<u8>, i: usize) -> MaybeUninit<u64> {
    // SAFETY: forwarded from the caller's contract.
    MaybeUninit::new(unsafe { first_word(data, i) }.load(Relaxed))
}

/// Loom models: see [`read_first_word`].
#[cfg(loom)]
unsafe fn write_first_word(data: NonNull<u8>, i: usize, value: MaybeUninit<u64>) {
    // SAFETY: forwarded from the caller's contract; the model's saved words
    // came from `read_first_word`, which initialised them.
    unsafe { first_word(data, i).store(value.assume_init(), Relaxed) }
}

/// The first word of page `i` of the allocation at `data`, as an atomic.
///
/// # Safety
///
/// `data` must be the page-aligned start of a live span of more than `i`
/// pages, and the caller must hold `OFFERING` or `REVIVING`.
#[cfg(not(loom))]
unsafe fn first_word<'a>(data: NonNull<u8>, i: usize) -> &'a AtomicU64 {
    // SAFETY: page `i` is inside the live span and 8-byte aligned; while the
    // caller holds the flag nobody reads or writes the bytes as `T`.
    unsafe { AtomicU64::from_ptr(data.as_ptr().add(i * os::page_size()).cast()) }
}

/// Loom models: the first word of page `i` is a loom atomic of the model's
/// page source (`__loom::pages`), so loom sees every cookie swap and the
/// simulated kernel's reclaim. The span at `data` is real, for the page
/// heap's sake only: its memory is never touched.
///
/// # Safety
///
/// As above (the page source checks that the span is still attached and
/// its bytes not freed).
#[cfg(loom)]
unsafe fn first_word(data: NonNull<u8>, i: usize) -> crate::testing::loom::pages::Word {
    crate::testing::loom::pages::word(data, i)
}

/// Loom models: `MADV_FREE` is recorded by the model's page source, whose
/// simulated kernel may then take the pages.
///
/// # Safety
///
/// As for `os::offer`.
#[cfg(loom)]
unsafe fn offer_pages(data: NonNull<u8>, len: usize) -> Result<(), os::OsError> {
    let _replaced = os::offer; // named, so the loom build has no dead code
    crate::testing::loom::pages::offer(data, len)
}

impl Header {
    /// Whether this allocation may be offered (it owns whole pages).
    pub(crate) fn offerable(&self) -> bool {
        self.loc() == Loc::Span && self.cost() != 0 // locked spans cannot be MADV_FREEd
    }

    /// Offers the pages to the kernel if the allocation is unpinned and
    /// settled. Returns whether it is now offered (`OFFERED`): the
    /// `MADV_FREE` call succeeded, or it failed after the kernel had
    /// already taken a page (see below). Manager thread only.
    pub(crate) fn offer(&self) -> bool {
        if !self.offerable() || !self.state.try_begin_offer() {
            return false;
        }
        // SAFETY: we hold OFFERING (state INV-5).
        unsafe { self.write_cookies() };
        // SAFETY: the span is live and ours while OFFERING is held; its
        // contents stay valid unless the kernel drops pages, which revival
        // detects.
        let advised = unsafe { offer_pages(self.data, self.cost()) }.is_ok();
        // A failed `madvise` may still have applied to part of the range (it
        // stops at the first page it cannot advise, e.g. ENOMEM on a hole, or
        // EAGAIN), and the kernel may take any such page at any moment. A
        // plain store of the saved word into a taken page would make a fresh
        // zero page that looks intact but for its first word. So the words go
        // back as a revival puts them back: one compare-and-swap from the
        // cookie each, a failed one meaning the kernel took that page.
        //
        // If one did, the offer ends as made (`OFFERED`, state INV-6), not
        // failed: the allocation is then an ordinary offered one whose
        // revival cannot succeed. The taken page reads as zero for good (while
        // `OFFERED`, nothing writes the pages but a reviver's swap from the
        // cookie), so the first pinner's swap of it fails, whatever the pages
        // restored before it hold, and that pinner sets `DISCARDED` and frees
        // the bytes (INV-4, INV-6), as when the kernel takes a page of a
        // successful offer. Pinners that came during the offer are counted
        // and waiting (INV-5) and go the same way; a discarder may take it
        // first (INV-7), or the owner's drop free it. So no new path sets
        // `DISCARDED` (INV-1) and no bytes are ever read as `T` meanwhile.
        //
        // SAFETY: we hold OFFERING (state INV-5) and filled `saved` above.
        let offered = advised || !unsafe { self.restore_failed_offer() };
        self.state.end_offer(offered);
        offered
    }

    /// Saves each page's first word in `saved` and writes the cookie in its
    /// place.
    ///
    /// # Safety
    ///
    /// The caller holds `OFFERING` (state INV-5).
    unsafe fn write_cookies(&self) {
        let pages = self.cost() / os::page_size();
        let mut saved = self.saved();
        if saved.is_null() {
            saved = Box::into_raw(vec![MaybeUninit::<u64>::uninit(); pages].into_boxed_slice()).cast();
            self.set_saved(saved);
        }
        for i in 0..pages {
            // SAFETY: the caller holds OFFERING (state INV-5): no pin reads
            // the bytes; `saved` holds `pages` words.
            unsafe {
                let value = read_first_word(self.data, i);
                *saved.add(i) = value;
                let word = first_word(self.data, i);
                // The model's words are initialised (`read_first_word`).
                #[cfg(loom)]
                word.save(value.assume_init());
                word.store(COOKIE, Relaxed);
            }
        }
    }

    /// After a failed `MADV_FREE`: puts every saved word back; `false` if
    /// the kernel took a page (see `offer`).
    ///
    /// # Safety
    ///
    /// As for [`Self::swap_back`], holding `OFFERING`.
    #[cfg(not(discardable_broken_restore))]
    unsafe fn restore_failed_offer(&self) -> bool {
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.swap_back() }
    }

    /// Deliberately broken variant for the loom models: the saved words go
    /// back with plain stores, so a page the kernel took comes back as a
    /// zero page with only its first word restored, and the offer ends as
    /// failed: the next pin hands those bytes out as intact.
    ///
    /// # Safety
    ///
    /// As for [`Self::swap_back`], holding `OFFERING`.
    #[cfg(discardable_broken_restore)]
    unsafe fn restore_failed_offer(&self) -> bool {
        let saved = self.saved();
        for i in 0..self.cost() / os::page_size() {
            // SAFETY: the caller holds OFFERING (state INV-5); `saved` holds
            // `cost / page` words.
            unsafe {
                #[cfg(loom)]
                first_word(self.data, i).check_saved((*saved.add(i)).assume_init());
                write_first_word(self.data, i, *saved.add(i));
            }
        }
        true
    }

    /// The slow path of a pin whose `pin_fast` found a flag: the pin is
    /// counted. Waits out offers and revivals, revives an offered
    /// allocation, or fails (undoing the pin) when it is discarded, in which
    /// case a reviver that found a page gone also frees the bytes.
    #[cold]
    pub(crate) fn pin_slow(&self, arena: &Arena) -> bool {
        let mut round = 0;
        loop {
            let word = self.state.raw();
            if State::gone(word) {
                self.state.undo_pin(word);
                return false;
            }
            if State::busy(word) {
                crate::sync::spin_wait(round);
                round += 1;
                continue;
            }
            if State::settled(word) {
                if State::overflowing(word) {
                    self.state.undo_pin(word); // panics: too many live pins
                }
                return true;
            }
            if self.state.try_begin_revive(word).is_err() {
                continue;
            }
            if self.revive() {
                self.state.revived();
                arena.note_revived();
                return true;
            }
            self.state.revive_failed();
            arena.note_kernel_discard(self);
            return false;
        }
    }

    /// Swaps every cookie back; `false` if a page was taken by the kernel.
    fn revive(&self) -> bool {
        // SAFETY: we hold REVIVING (state INV-6); `saved` was filled by the
        // offer before its Release, which our CAS acquired.
        unsafe { self.swap_back() }
    }

    /// Claims each page back, in page order: one compare-and-swap from the
    /// cookie to [`CLAIMED`], which writes the page and so cancels its
    /// pending free, then a plain write of its saved word (which may be
    /// uninitialised bytes). Stops at the first page that no longer holds
    /// the cookie: `false` then, as the kernel took that page (it reads as
    /// zero).
    ///
    /// # Safety
    ///
    /// The caller holds `OFFERING` (a failed offer, state INV-5) or
    /// `REVIVING` (INV-6), and sees the saved words the offer wrote: its own,
    /// or through the Acquire that took `REVIVING`.
    unsafe fn swap_back(&self) -> bool {
        let saved = self.saved();
        // The offer set it before its Release in `end_offer` (a reviver's
        // Acquire sees it); null means that pairing is broken.
        debug_assert!(!saved.is_null(), "a reviver found no saved words");
        let pages = self.cost() / os::page_size();
        (0..pages).all(|i| {
            // SAFETY: the caller holds OFFERING or REVIVING (state INV-5,
            // INV-6), so nobody else touches the first words or `saved`,
            // which holds `pages` words the caller sees (the contract).
            unsafe {
                let word = first_word(self.data, i);
                #[cfg(loom)]
                word.check_saved((*saved.add(i)).assume_init());
                // The broken variant for the loom models writes the saved
                // word back without claiming the page first, so a page the
                // kernel took comes back zeroed but for its first word.
                let claimed =
                    cfg!(discardable_broken_claim) || word.compare_exchange(COOKIE, CLAIMED, Relaxed, Relaxed).is_ok();
                if !claimed {
                    return false;
                }
                write_first_word(self.data, i, *saved.add(i));
                true
            }
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::handle::arena::Wake;

    fn arena() -> Arena {
        Arena::with_mode(usize::MAX, Arc::new(Wake::default()), true)
    }

    /// A header over a fresh span of `pages` pages filled with `byte`.
    fn header(arena: &Arena, pages: usize, byte: u8) -> Box<Header> {
        let page = os::page_size();
        let block = arena.store.alloc(pages * page, 8, false).unwrap();
        // SAFETY: a fresh span of `pages` pages, ours.
        unsafe { block.ptr.as_ptr().write_bytes(byte, pages * page) };
        Box::new(Header::new(block.ptr, block.loc, block.cost))
    }

    fn bytes(h: &Header) -> &[u8] {
        // SAFETY: the caller holds a pin, so the span is alive and intact.
        unsafe { core::slice::from_raw_parts(h.data.as_ptr(), h.cost()) }
    }

    #[test]
    fn offered_pages_come_back_intact() {
        let arena = arena();
        let h = header(&arena, 4, 0x5a);
        assert!(h.offer());
        assert!(h.state.load().is_offered());
        assert!(!h.offer(), "already offered");
        assert!(!h.state.pin_fast());
        assert!(h.pin_slow(&arena), "nothing reclaimed the pages: revival succeeds");
        assert!(bytes(&h).iter().all(|&b| b == 0x5a), "cookies swapped back");
        h.state.unpin();
        assert_eq!(arena.counters.revivals.load(Relaxed), 1);
        assert!(h.state.pin(), "settled again: the fast path works");
        h.state.unpin();
        // Tidy up like a dropped owner.
        assert_eq!(h.state.mark_dropped(), super::super::state::Dropped::OwnsBytes);
        // SAFETY: we won the drop; nobody uses the bytes.
        unsafe { arena.store.free(h.data, h.loc(), crate::page_heap::Release::Now) };
    }

    #[test]
    fn a_page_the_kernel_took_discards_the_allocation() {
        let arena = arena();
        let h = header(&arena, 3, 0x77);
        assert!(h.offer());
        // What the kernel does under pressure: drop one offered page.
        // SAFETY: the middle page of the offered span; nobody pins it.
        unsafe { os::discard(NonNull::new_unchecked(h.data.as_ptr().add(os::page_size())), os::page_size()) }.unwrap();
        assert!(!h.state.pin_fast());
        assert!(!h.pin_slow(&arena), "a taken page makes the whole allocation discarded");
        let s = h.state.load();
        assert!(s.is_discarded() && !s.is_offered() && s.pins() == 0);
        assert_eq!(arena.counters.kernel_discards.load(Relaxed), 1);
        assert_eq!(arena.counters.discarded_count.load(Relaxed), 1);
        assert!(!h.state.pin(), "once discarded, always discarded");
        assert_eq!(h.state.mark_dropped(), super::super::state::Dropped::AlreadyDiscarded);
    }

    #[test]
    fn a_failed_offer_that_lost_a_page_discards_the_allocation() {
        let arena = arena();
        let h = header(&arena, 3, 0x66);
        let page = os::page_size();
        // `offer` up to a `madvise` that applied to the range and then
        // reported failure, after which the kernel took the last page.
        assert!(h.state.try_begin_offer());
        // SAFETY: we hold OFFERING.
        unsafe { h.write_cookies() };
        // SAFETY: the span is ours while OFFERING is held.
        unsafe { os::offer(h.data, h.cost()) }.unwrap();
        // SAFETY: the last page of the offered span; nobody pins it.
        unsafe { os::discard(NonNull::new_unchecked(h.data.as_ptr().add(2 * page)), page) }.unwrap();
        // SAFETY: we hold OFFERING and wrote `saved`.
        assert!(!unsafe { h.restore_failed_offer() }, "the taken page is noticed");
        // SAFETY: as above; the first page was restored by a swap.
        assert_eq!(unsafe { first_word(h.data, 0) }.load(Relaxed), u64::from_ne_bytes([0x66; 8]));
        h.state.end_offer(true);
        assert!(h.state.load().is_offered(), "ends as made");
        assert!(!h.state.pin_fast());
        assert!(!h.pin_slow(&arena), "the restored pages do not make the allocation intact");
        let s = h.state.load();
        assert!(s.is_discarded() && !s.is_offered() && s.pins() == 0);
        assert_eq!(arena.counters.kernel_discards.load(Relaxed), 1);
        assert_eq!(arena.counters.revivals.load(Relaxed), 0);
        assert_eq!(arena.counters.discarded_bytes.load(Relaxed), 3 * page as u64, "the reviver freed the bytes");
        assert!(!h.state.pin(), "once discarded, always discarded");
        assert_eq!(h.state.mark_dropped(), super::super::state::Dropped::AlreadyDiscarded);
    }

    #[test]
    fn a_failed_offer_that_lost_nothing_restores_every_page() {
        let arena = arena();
        let h = header(&arena, 2, 0x21);
        assert!(h.state.try_begin_offer());
        // SAFETY: we hold OFFERING.
        unsafe { h.write_cookies() };
        // SAFETY: we hold OFFERING and wrote `saved`.
        assert!(unsafe { h.restore_failed_offer() });
        h.state.end_offer(false);
        assert!(h.state.pin(), "plain alive again");
        assert!(bytes(&h).iter().all(|&b| b == 0x21), "every cookie swapped back");
        h.state.unpin();
        h.state.mark_dropped();
        // SAFETY: we won the drop; nobody uses the bytes.
        unsafe { arena.store.free(h.data, h.loc(), crate::page_heap::Release::Now) };
    }

    #[test]
    fn two_pinners_revive_once() {
        let arena = Arc::new(arena());
        let h: Arc<Header> = Arc::from(header(&arena, 8, 0x33));
        for _ in 0..200 {
            assert!(h.offer());
            let pinners: Vec<_> = (0..2)
                .map(|_| {
                    let (arena, h) = (Arc::clone(&arena), Arc::clone(&h));
                    std::thread::spawn(move || {
                        let ok = h.state.pin_fast() || h.pin_slow(&arena);
                        assert!(ok, "no page was taken, so both pins succeed");
                        assert!(bytes(&h).iter().all(|&b| b == 0x33), "a pinner saw a cookie");
                        h.state.unpin();
                    })
                })
                .collect();
            for p in pinners {
                p.join().unwrap();
            }
            assert!(!h.state.load().is_offered());
        }
        assert_eq!(arena.counters.revivals.load(Relaxed), 200, "exactly one reviver per offer");
        assert_eq!(arena.counters.kernel_discards.load(Relaxed), 0);
        h.state.mark_dropped();
        // SAFETY: we won the drop; nobody uses the bytes.
        unsafe { arena.store.free(h.data, h.loc(), crate::page_heap::Release::Now) };
    }

    #[test]
    fn small_slots_are_never_offered() {
        let arena = arena();
        let block = arena.store.alloc(64, 8, true).unwrap();
        let h = Header::new(block.ptr, block.loc, block.cost);
        assert!(!h.offer());
        h.state.mark_dropped();
        // SAFETY: we won the drop; nobody uses the bytes.
        unsafe { arena.store.free(h.data, h.loc(), crate::page_heap::Release::Now) };
    }
}
