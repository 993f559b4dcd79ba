//! Models of lazy mode (DESIGN.md, "Reclaim modes"; state INV-5..7): an
//! allocation that owns whole pages is offered to the kernel behind cookies
//! and revived by compare-and-swapping them back.
//!
//! Everything runs the shipped code: `Header::offer`, the handle's pin
//! (`pin_fast`, then `Header::pin_slow`, which waits, revives or fails),
//! `State::try_discard` and `State::mark_dropped`, on a lazy-mode arena. The
//! span is real (the shipped code frees it through the page heap), but its
//! pages, as loom sees them, are a [`Pages`] page source: the first words
//! are loom atomics, each saved word has a loom cell beside it, the rest of
//! a page is a loom cell that pinned readers read, and `MADV_FREE` only
//! records the offer. A model thread plays the kernel: it takes a page
//! (zeroes it) only while the offer is pending and nobody wrote the page.
//!
//! What the models check, beyond loom's own causality checking:
//! - a pinned reader sees the original bytes, never a cookie or a zeroed
//!   page;
//! - of two pinners racing to revive, exactly one revives, and both succeed
//!   when the kernel took nothing;
//! - a page the kernel took makes the pin fail and the allocation discarded
//!   for good (every later pin fails), and the reviver frees the bytes,
//!   also when the `madvise` call handed pages over and then failed;
//! - the offer, the owner's drop and a discarder each exclude the others as
//!   INV-5..7 say, and the bytes are freed exactly once.

use core::ptr::NonNull;

use discardable::__loom::pages::Pages;
use discardable::__loom::{self as internals, Arena, Block, Dropped, Header, Snapshot};
use loom::sync::atomic::Ordering::Relaxed;
use loom::sync::Arc;

use crate::harness;

/// The first word of every page while the allocation is alive.
const WORD: u64 = 0x0123_4567_89ab_cdef;
/// The rest of every page.
const REST: u64 = 0x5eed_f00d_dead_beef;

/// One lazy-mode allocation: a lazy arena, a header registered with it and
/// taken in as the manager's table takes it (only then may it be offered;
/// the model frees it when dropped, as the table would), and the pages loom
/// sees.
#[derive(Debug)]
pub struct Alloc {
    arena: Arena,
    header: NonNull<Header>,
    block: Block,
    pages: std::sync::Arc<Pages>,
}

// SAFETY: the header is `Send + Sync` and lives as long as `self` (freed in
// its drop).
unsafe impl Send for Alloc {}
// SAFETY: as above.
unsafe impl Sync for Alloc {}

impl Drop for Alloc {
    fn drop(&mut self) {
        // As the arena did for the headers left on its intake: a header an
        // owned pin still holds is leaked, never freed under it.
        if self.state().pins() == 0 {
            // SAFETY: taken in by `new`, freed only here, and every model
            // thread that used it has finished.
            unsafe { internals::free_header(self.header) };
        }
    }
}

impl Alloc {
    /// A live, unpinned allocation of `pages` pages.
    pub fn new(pages: usize) -> Self {
        let arena = internals::lazy_arena();
        let block = internals::alloc_span(&arena, pages);
        let pages = Pages::attach(block.ptr, &vec![WORD; pages], REST);
        let header = arena.register(block);
        assert_eq!(internals::take_in(&arena), [header]);
        Self { arena, header, block, pages }
    }

    /// The header.
    pub fn header(&self) -> &Header {
        // SAFETY: `self` frees the header only when it is dropped.
        unsafe { self.header.as_ref() }
    }

    /// The state word now.
    pub fn state(&self) -> Snapshot {
        self.header().state.load()
    }

    /// The manager offers the allocation (`Header::offer`).
    pub fn offer(&self) -> bool {
        internals::offer(self.header())
    }

    /// `upgrade()`, read every page, drop the guard: whether the pin
    /// succeeded. A pinned reader must see the original bytes.
    pub fn read(&self) -> bool {
        if !internals::pin(self.header(), &self.arena) {
            return false;
        }
        for i in 0..self.pages.len() {
            let (word, rest) = self.pages.read(i);
            assert_ne!(word, 0, "a pinned reader saw a zeroed page as data");
            assert_eq!((word, rest), (WORD, REST), "a pinned reader saw a cookie or foreign bytes as data");
        }
        self.header().state.unpin();
        true
    }

    /// Reads twice in a row: once the first pin fails, the second must fail
    /// too (once discarded, always discarded).
    pub fn read_twice(&self) -> [bool; 2] {
        let first = self.read();
        let second = self.read();
        if !first {
            assert!(!second, "a discarded allocation came back");
        }
        [first, second]
    }

    /// The manager's discard: `try_discard`, then free the bytes.
    pub fn discard(&self) -> bool {
        if !self.header().state.try_discard() {
            return false;
        }
        self.pages.free();
        self.arena.release_discarded(self.header());
        true
    }

    /// `Discardable::drop`: mark the header dropped; free the bytes if the
    /// owner won them. Returns what the mark found.
    pub fn drop_owner(&self) -> Dropped {
        self.arena.note_dropping();
        let dropped = self.header().state.mark_dropped();
        if dropped == Dropped::OwnsBytes {
            self.pages.free();
            // SAFETY: the owner won the bytes and never uses them again.
            unsafe { self.arena.release_dropped(self.block) };
        }
        self.arena.note_dropped();
        dropped
    }

    /// The simulated kernel takes page `i` if it may.
    pub fn reclaim(&self, i: usize) -> bool {
        self.pages.reclaim(i)
    }

    /// Checks the end state once every thread is done: no pin left, the
    /// bytes freed exactly once after the owner's drop.
    fn finish(&self) {
        let snap = self.state();
        assert_eq!(snap.pins(), 0, "a pin leaked");
        if !snap.is_dropped() {
            self.drop_owner();
        }
        let c = &self.arena.counters;
        assert_eq!(c.bytes.load(Relaxed), 0, "the bytes were not freed exactly once");
        assert_eq!(c.live.load(Relaxed), 0);
    }
}

/// Two pinners race to revive an offered allocation; the kernel takes
/// nothing. Both pins succeed and read the original bytes, and exactly one
/// of them revives (swaps the cookies back), the other waits for it.
pub fn two_pinners_revive_once() {
    harness::check("two pinners revive an offered allocation", 3, || {
        let alloc = Arc::new(Alloc::new(1));
        assert!(alloc.offer());
        let pinners: Vec<_> = (0..2).map(|_| harness::spawn(&alloc, move |alloc| alloc.read())).collect();
        for pinner in pinners {
            assert!(pinner.join().unwrap(), "a pin failed though the kernel took no page");
        }
        let c = &alloc.arena.counters;
        assert_eq!(c.revivals.load(Relaxed), 1, "not exactly one reviver");
        assert_eq!(c.kernel_discards.load(Relaxed), 0);
        let snap = alloc.state();
        assert!(!snap.is_offered() && !snap.is_discarded(), "not plain alive after the revival");
        assert!(alloc.read(), "the fast path fails after the revival");
        alloc.finish();
    });
}

/// The manager offers while a pinner pins once. Either the pin came first
/// and the offer fails, or the pinner waits out the offer and revives, or
/// it came and went before the offer; it always reads the original bytes.
pub fn offer_racing_a_pinner() {
    let outcomes =
        harness::Outcomes::new(&["pinned before the offer", "came and went before the offer", "waited and revived"]);
    let seen = std::sync::Arc::clone(&outcomes);
    harness::check("offer racing a pinner", 3, move || {
        let alloc = Arc::new(Alloc::new(1));
        let pinner = harness::spawn(&alloc, move |alloc| alloc.read());
        let offered = alloc.offer();
        assert!(pinner.join().unwrap(), "a pin failed though the kernel took no page");
        let revivals = alloc.arena.counters.revivals.load(Relaxed);
        let snap = alloc.state();
        match (offered, revivals) {
            (false, 0) => assert!(!snap.is_offered(), "a failed offer left a flag"),
            (true, 0) => assert!(snap.is_offered(), "the pinner came and went first: still offered"),
            (true, 1) => assert!(!snap.is_offered(), "revived but still offered"),
            other => panic!("offered and revivals: {other:?}"),
        }
        seen.saw(match (offered, revivals) {
            (false, _) => 0,
            (true, 0) => 1,
            _ => 2,
        });
        assert!(alloc.read(), "a late pin fails though the kernel took no page");
        alloc.finish();
    });
    outcomes.assert_all_seen();
}

/// Two pinners find an offered allocation of two pages while the kernel
/// tries to take the second. Either one pinner swapped that page's cookie
/// back first (the page is dirty, the kernel leaves it) and both read the
/// original bytes, or the kernel took it first: the revival fails, the
/// reviver frees the bytes, the allocation is discarded for good and no pin
/// ever succeeds. No zeroed page is ever read as data.
pub fn kernel_reclaim_racing_revivers() {
    let outcomes = harness::Outcomes::new(&["the kernel took the page first", "revived first"]);
    let seen = std::sync::Arc::clone(&outcomes);
    harness::check("kernel reclaim racing two revivers", 3, move || {
        let alloc = Arc::new(Alloc::new(2));
        assert!(alloc.offer());
        let kernel = harness::spawn(&alloc, move |alloc| alloc.reclaim(1));
        let pinner = harness::spawn(&alloc, move |alloc| alloc.read_twice());
        let mine = alloc.read_twice();
        let theirs = pinner.join().unwrap();
        let took = kernel.join().unwrap();
        for pinned in mine.into_iter().chain(theirs) {
            assert_eq!(pinned, !took, "the kernel's reclaim and a pin must exclude each other");
        }
        let c = &alloc.arena.counters;
        let snap = alloc.state();
        if took {
            assert!(snap.is_discarded() && !snap.is_offered(), "a taken page left the allocation alive");
            assert_eq!((c.revivals.load(Relaxed), c.kernel_discards.load(Relaxed)), (0, 1));
            assert_eq!(c.bytes.load(Relaxed), 0, "the reviver did not free the bytes");
            assert!(!alloc.read(), "a pin succeeded after the kernel's discard");
            assert_eq!(alloc.drop_owner(), Dropped::AlreadyDiscarded);
        } else {
            assert!(!snap.is_offered() && !snap.is_discarded());
            assert_eq!((c.revivals.load(Relaxed), c.kernel_discards.load(Relaxed)), (1, 0));
            assert!(!alloc.reclaim(0) && !alloc.reclaim(1), "the kernel took a revived page");
        }
        seen.saw(usize::from(!took));
        alloc.finish();
    });
    outcomes.assert_all_seen();
}

/// The owner drops its handle while the manager offers. `mark_dropped`
/// waits out `OFFERING`, so the offerer never touches freed pages; an offer
/// after the drop mark fails. The owner frees the bytes, once.
pub fn drop_racing_an_offer() {
    let outcomes = harness::Outcomes::new(&["offered before the drop mark", "drop mark before the offer"]);
    let seen = std::sync::Arc::clone(&outcomes);
    harness::check("owner's drop racing an offer", 3, move || {
        let alloc = Arc::new(Alloc::new(1));
        let offerer = harness::spawn(&alloc, move |alloc| alloc.offer());
        assert_eq!(alloc.drop_owner(), Dropped::OwnsBytes);
        let offered = offerer.join().unwrap();
        let snap = alloc.state();
        assert!(snap.is_dropped() && !snap.is_discarded());
        assert_eq!(snap.is_offered(), offered, "a failed offer left a flag, or a made one none");
        seen.saw(usize::from(!offered));
        alloc.finish();
    });
    outcomes.assert_all_seen();
}

/// A discarder races a pinner on an offered allocation (INV-7). The
/// discard wins only with no pin and no revival in progress; a pin after
/// it fails for good; a pinner that wins revives and reads the original
/// bytes; the bytes are freed exactly once.
pub fn discard_racing_a_reviver() {
    let outcomes =
        harness::Outcomes::new(&["discarded before any pin", "revived, then discarded", "the discard lost to a pin"]);
    let seen = std::sync::Arc::clone(&outcomes);
    harness::check("discard racing a reviver", 3, move || {
        let alloc = Arc::new(Alloc::new(1));
        assert!(alloc.offer());
        let discarder = harness::spawn(&alloc, move |alloc| alloc.discard());
        let [first, second] = alloc.read_twice();
        let won = discarder.join().unwrap();
        let c = &alloc.arena.counters;
        let snap = alloc.state();
        assert_eq!(snap.is_discarded(), won);
        assert!(!snap.is_offered(), "still offered after a revival or a discard");
        if !won {
            assert!(first && second, "the discard failed, yet a pin failed too");
            assert!(alloc.discard(), "the discard failed once every pin was gone");
        }
        assert_eq!(c.revivals.load(Relaxed), u64::from(first), "a pin succeeded without a revival");
        assert_eq!(c.kernel_discards.load(Relaxed), 0);
        seen.saw(match (won, first) {
            (true, false) => 0,
            (true, true) => 1,
            (false, _) => 2,
        });
        assert!(!alloc.read(), "a pin succeeded after the discard");
        assert_eq!(alloc.drop_owner(), Dropped::AlreadyDiscarded);
        alloc.finish();
    });
    outcomes.assert_all_seen();
}

/// An offer whose `madvise` fails races a pinner: the offerer puts the saved
/// words back, the pinner waits it out and reads the original bytes, and no
/// flag is left behind.
pub fn failed_offer_racing_a_pinner() {
    harness::check("failed offer racing a pinner", 3, || {
        let alloc = Arc::new(Alloc::new(1));
        alloc.pages.refuse_offers(true);
        let pinner = harness::spawn(&alloc, move |alloc| alloc.read());
        assert!(!alloc.offer());
        assert!(pinner.join().unwrap(), "a pin failed though nothing was offered");
        let snap = alloc.state();
        assert!(!snap.is_offered() && !snap.is_discarded());
        assert_eq!(alloc.arena.counters.revivals.load(Relaxed), 0);
        assert!(alloc.read());
        alloc.finish();
    });
}

/// An offer whose `madvise` stops partway (it hands the first two of three
/// pages to the kernel, then reports failure) races a pinner, while the
/// kernel takes the second page. The offerer swaps each cookie back as a
/// reviver does: if the kernel took the page first, that swap fails and
/// the offer ends as made, so that the next pin's revival (whether the
/// racing pinner's or a later one) finds the page missing, fails and frees
/// the bytes; otherwise every page is restored and nothing was offered. No
/// pin ever reads the taken page, now zero but for a restored first word,
/// as data.
pub fn partly_failed_offer_racing_a_pinner() {
    let outcomes = harness::Outcomes::new(&[
        "the pin came first: nothing offered",
        "restored before the kernel could take the page",
        "the kernel took the page: a racing pin failed",
        "the kernel took the page after the pinner left",
    ]);
    let seen = std::sync::Arc::clone(&outcomes);
    harness::check("partly failed offer racing a pinner and the kernel", 3, move || {
        let alloc = Arc::new(Alloc::new(3));
        alloc.pages.refuse_offers_after_marking(2);
        let kernel = harness::spawn(&alloc, move |alloc| alloc.reclaim(1));
        let pinner = harness::spawn(&alloc, move |alloc| alloc.read_twice());
        let offered = alloc.offer();
        let pins = pinner.join().unwrap();
        let took = kernel.join().unwrap();
        assert_eq!(offered, took, "a failed offer lost a page but ended as failed, or lost none but ended as made");
        let c = &alloc.arena.counters;
        assert_eq!(c.revivals.load(Relaxed), 0, "a revival succeeded after a failed offer");
        if took {
            assert!(!alloc.read(), "a pin succeeded after the kernel took a page");
            let snap = alloc.state();
            assert!(snap.is_discarded() && !snap.is_offered(), "a taken page left the allocation alive");
            assert_eq!(c.kernel_discards.load(Relaxed), 1);
            assert_eq!(c.bytes.load(Relaxed), 0, "the reviver did not free the bytes");
            assert_eq!(alloc.drop_owner(), Dropped::AlreadyDiscarded);
        } else {
            assert_eq!(pins, [true, true], "a pin failed though the kernel took no page");
            let snap = alloc.state();
            assert!(!snap.is_offered() && !snap.is_discarded(), "a failed offer left a flag");
            assert_eq!(c.kernel_discards.load(Relaxed), 0);
            assert!(alloc.read(), "a late pin fails though the kernel took no page");
        }
        seen.saw(match (alloc.pages.was_offered(), took, pins) {
            (false, _, _) => 0,
            (true, false, _) => 1,
            (true, true, [true, true]) => 3,
            (true, true, _) => 2,
        });
        alloc.finish();
    });
    outcomes.assert_all_seen();
}
