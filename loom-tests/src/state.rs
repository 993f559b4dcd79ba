//! Models of the state word alone: pins, unpins and discards racing on one
//! allocation.
//!
//! The allocation is a shipped [`State`] next to its "bytes", a loom
//! `UnsafeCell<u64>`. A reader touches the bytes only while pinned (`with`);
//! a discarder writes them (zeroes them, as `MADV_DONTNEED` would) only after
//! winning `try_discard` (`with_mut`). Loom's cell causality checking is what
//! rejects a protocol that lets the write race with a read: the models assert
//! the visible outcomes on top of that.

use discardable::__loom::State;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use crate::harness;

/// What the bytes hold while the allocation is alive.
const ORIGINAL: u64 = 0x5eed_f00d_dead_beef;

/// One modelled allocation: the shipped state word and its bytes.
#[derive(Debug)]
pub struct Alloc {
    state: State,
    bytes: UnsafeCell<u64>,
}

impl Default for Alloc {
    fn default() -> Self {
        Self { state: State::new(), bytes: UnsafeCell::new(ORIGINAL) }
    }
}

impl Alloc {
    /// `upgrade()`, read, drop the guard: `Some(bytes)` if the pin succeeded.
    pub fn read(&self) -> Option<u64> {
        if !self.state.pin() {
            return None;
        }
        let value = self.read_pinned();
        self.state.unpin();
        Some(value)
    }

    /// Reads the bytes; the caller holds a pin.
    fn read_pinned(&self) -> u64 {
        // SAFETY: the caller holds a pin, so no discarder writes the bytes
        // (state INV-1); loom checks exactly that.
        self.bytes.with(|bytes| unsafe { *bytes })
    }

    /// The manager's discard: `try_discard`, then the pages go (the bytes
    /// read as zero). Returns whether this call won.
    pub fn discard(&self) -> bool {
        if !self.state.try_discard() {
            return false;
        }
        // SAFETY: winning `try_discard` hands the bytes to this thread
        // (state INV-4); loom checks that every read under a pin happened
        // before this write.
        self.bytes.with_mut(|bytes| unsafe { *bytes = 0 });
        true
    }
}

/// A reader that upgrades twice in a row; returns both results.
fn reader(alloc: &Alloc) -> [Option<u64>; 2] {
    let first = alloc.read();
    let second = alloc.read();
    for value in [first, second].into_iter().flatten() {
        assert_eq!(value, ORIGINAL, "a pinned reader saw discarded bytes");
    }
    if first.is_none() {
        assert!(second.is_none(), "a discarded allocation came back");
        assert!(alloc.state.load().is_discarded(), "a pin failed on a live allocation");
    }
    [first, second]
}

/// Two pinners (each upgrading twice) and a discarder on one allocation.
///
/// A pin either succeeds and reads the original bytes, or fails because the
/// allocation is discarded, and then every later pin fails too. A discard
/// fails only while someone is pinned; once the readers are gone it
/// succeeds, so exactly one discard succeeds over the whole run.
pub fn two_pinners_and_a_discarder() {
    harness::check("two pinners and a discarder", 3, || {
        let alloc = Arc::new(Alloc::default());
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let alloc = Arc::clone(&alloc);
                thread::spawn(move || reader(&alloc))
            })
            .collect();

        let won = alloc.discard();
        if won {
            assert!(alloc.read().is_none(), "a pin succeeded after the discard");
        }
        let results: Vec<_> = readers.into_iter().map(|r| r.join().unwrap()).collect();

        let snap = alloc.state.load();
        assert_eq!(snap.pins(), 0, "a pin leaked");
        assert_eq!(snap.is_discarded(), won);
        if !won {
            assert!(results.iter().flatten().any(Option::is_some), "the discard failed with nobody pinned");
            assert!(alloc.discard(), "the discard failed once every pin was gone");
        }
        assert!(alloc.read().is_none());
    });
}

/// Two discarders race while a third thread pins once: at most one of them
/// wins, and a discard after both counts the allocation as discarded exactly
/// once in total.
pub fn two_discarders_race() {
    harness::check("two discarders race", 3, || {
        let alloc = Arc::new(Alloc::default());
        let discarders: Vec<_> = (0..2)
            .map(|_| {
                let alloc = Arc::clone(&alloc);
                thread::spawn(move || alloc.discard())
            })
            .collect();

        let pinned = alloc.read();
        if let Some(value) = pinned {
            assert_eq!(value, ORIGINAL);
        }
        let wins = discarders.into_iter().map(|d| d.join().unwrap()).filter(|&won| won).count();
        assert!(wins <= 1, "two discarders both won");
        if pinned.is_none() {
            assert_eq!(wins, 1, "a pin failed but nobody discarded");
        }
        let late = alloc.discard();
        assert_eq!(wins + usize::from(late), 1, "not exactly one discard in total");
        assert_eq!(alloc.state.load().pins(), 0);
    });
}

/// A guard pinned before the race is dropped on one thread while another
/// keeps trying to discard. The discard succeeds only after the unpin (it
/// always does, eventually), and the reader's read under the guard happens
/// before the discarder's write (the `Release` of `unpin` pairing with the
/// `Acquire` of the winning CAS is all that orders them). Afterwards exactly
/// one access was recorded and no pin is left.
pub fn unpin_racing_discard() {
    harness::check("unpin racing discard", 3, || {
        let alloc = Arc::new(Alloc::default());
        assert!(alloc.state.pin());
        let guard_holder = {
            let alloc = Arc::clone(&alloc);
            thread::spawn(move || {
                assert_eq!(alloc.read_pinned(), ORIGINAL);
                alloc.state.unpin(); // the `Pinned` guard's drop
            })
        };

        let mut attempts = 0;
        while !alloc.discard() {
            attempts += 1;
            assert!(!alloc.state.load().is_discarded());
            thread::yield_now();
        }
        assert!(alloc.read().is_none(), "a pin succeeded after the discard");
        guard_holder.join().unwrap();
        let snap = alloc.state.load();
        assert_eq!((snap.pins(), snap.accesses()), (0, 1), "after {attempts} failed attempts");
        assert!(snap.is_discarded());
    });
}
