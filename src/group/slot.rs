//! The registry's layout in shared memory and the slot protocol: claiming
//! a free or expired slot, publishing a member's figures, giving the slot
//! up, and reading a slot consistently.
//!
//! Layout (every field a native-endian `u64`, the file shared by processes
//! of one host, so one byte order):
//!
//! | words | what |
//! | --- | --- |
//! | header 0 | [`MAGIC`] |
//! | header 1 | the version: 0 while the creator initialises, then [`VERSION`] (published last, with Release) |
//! | header 2, 3 | [`SLOTS`] and [`SLOT_WORDS`] |
//! | header 4 | [`LEASE_MS`] |
//! | header 5..8 | zero |
//! | slot word 0 | the claim word ([`Claim`]): 0 free, else `INIT | tag << 40 | heartbeat ms` |
//! | slot words 1..8 | pid, weight, held, pinned, demand, share, reclaims |
//!
//! Invariants:
//!
//! - INV-1: a slot's claim word changes only by compare-and-swap, so of
//!   the members (and takers) that race for it exactly one wins, and an
//!   owner learns it lost its slot when its next swap fails; after that it
//!   writes nothing more to the slot.
//! - INV-2: an owner writes its fields only while the claim word holds its
//!   tag with `INIT` set and its heartbeat refreshed at the start of the
//!   write (a seqlock); it clears `INIT` with Release when done. A reader
//!   accepts a slot only if it loaded the same word, without `INIT`, before
//!   and after reading the fields (Acquire, then an Acquire fence), so the
//!   fields it accepts are all from one publication of the word's owner.
//! - INV-3: a slot whose heartbeat is older than [`LEASE_MS`] (or in the
//!   future by more than [`SKEW_MS`], which no live member writes) may be
//!   taken by anyone; a member that stalls for longer than the lease
//!   between two of its own stores (a `SIGSTOP`) can overwrite its taker's
//!   fields once before its swap fails (INV-1); the taker's next publication
//!   repairs them.
//!
//! Nothing here trusts the bytes: a hostile writer can make a slot read as
//! anything, and `view.rs` validates what was read.
//!
//! Threads: any thread of any process that maps the registry. Lock-free:
//! no operation waits for another member, so a member killed mid-update
//! leaves at worst an `INIT` word that expires with its heartbeat.

use crate::sync::{fence, AtomicU64, Ordering};

/// The first header word: "DISCGRP" and a NUL, little-endian.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"DISCGRP\0");
/// The layout's version; another number is another layout.
pub(crate) const VERSION: u64 = 1;
/// Slots per registry: members of one group at the same time.
pub(crate) const SLOTS: usize = 64;
/// Words per slot.
pub(crate) const SLOT_WORDS: usize = 8;
/// Words of the header.
pub(crate) const HEADER_WORDS: usize = 8;
/// The registry's size in bytes.
pub(crate) const BYTES: usize = (HEADER_WORDS + SLOTS * SLOT_WORDS) * 8;

/// How long a member keeps its slot without a heartbeat: 3 s. Members
/// publish at least every [`HEARTBEAT_MS`] (the manager thread wakes for
/// it), so a live member misses the lease only if its thread is stopped
/// for over 2 s; a member killed with SIGKILL loses its slot (and its
/// share goes to the others) at the first reclaim decision after 3 s.
pub(crate) const LEASE_MS: u64 = 3000;
/// How often a member renews its heartbeat at the least: 1 s.
pub(crate) const HEARTBEAT_MS: u64 = 1000;
/// A heartbeat this far in the future was not written by a live member.
pub(crate) const SKEW_MS: u64 = 1000;

const INIT: u64 = 1 << 63;
const TAG_SHIFT: u32 = 40;
const TAG_MASK: u64 = (1 << 23) - 1;
const HEARTBEAT_MASK: u64 = (1 << TAG_SHIFT) - 1;

/// The registry header, as mapped.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) words: [AtomicU64; HEADER_WORDS],
}

/// One member's slot, as mapped.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Slot {
    /// The claim word ([`Claim`]).
    word: AtomicU64,
    /// pid, weight, held, pinned, demand, share, reclaims.
    fields: [AtomicU64; SLOT_WORDS - 1],
}

/// The whole registry, as mapped: a header and [`SLOTS`] slots.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) header: Header,
    pub(crate) slots: [Slot; SLOTS],
}

#[cfg(not(loom))]
static_assertions::const_assert_eq!(core::mem::size_of::<Layout>(), BYTES);
#[cfg(not(loom))]
static_assertions::const_assert_eq!(core::mem::align_of::<Layout>(), 8);

/// What a member publishes in its slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Figures {
    pub(crate) pid: u64,
    pub(crate) weight: u64,
    pub(crate) held: u64,
    pub(crate) pinned: u64,
    pub(crate) demand: u64,
    pub(crate) share: u64,
    pub(crate) reclaims: u64,
}

impl Figures {
    fn to_words(self) -> [u64; SLOT_WORDS - 1] {
        [self.pid, self.weight, self.held, self.pinned, self.demand, self.share, self.reclaims]
    }

    fn from_words(w: [u64; SLOT_WORDS - 1]) -> Self {
        Figures { pid: w[0], weight: w[1], held: w[2], pinned: w[3], demand: w[4], share: w[5], reclaims: w[6] }
    }
}

/// A decoded claim word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    /// Who holds the slot (never 0 while held).
    pub(crate) tag: u32,
    /// When the holder last renewed it, ms on `CLOCK_MONOTONIC`.
    pub(crate) heartbeat: u64,
    /// The holder is writing its fields (or claimed and has not yet).
    pub(crate) init: bool,
}

impl Claim {
    /// Decodes `word`; `None` for a free slot.
    pub(crate) fn decode(word: u64) -> Option<Claim> {
        (word != 0).then_some(Claim {
            tag: ((word >> TAG_SHIFT) & TAG_MASK) as u32,
            heartbeat: word & HEARTBEAT_MASK,
            init: word & INIT != 0,
        })
    }

    fn encode(tag: u32, heartbeat: u64, init: bool) -> u64 {
        let tag = (u64::from(tag) & TAG_MASK).max(1);
        (if init { INIT } else { 0 }) | tag << TAG_SHIFT | (heartbeat & HEARTBEAT_MASK)
    }

    /// Whether anyone may take the slot at `now` (INV-3).
    pub(crate) fn expired(&self, now: u64) -> bool {
        now.saturating_sub(self.heartbeat) > LEASE_MS || self.heartbeat > now.saturating_add(SKEW_MS)
    }
}

/// A member's hold on one slot: the claim word it last wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hold {
    word: u64,
}

impl Hold {
    /// The heartbeat of the hold's last claim word.
    pub(crate) fn heartbeat(&self) -> u64 {
        self.word & HEARTBEAT_MASK
    }
}

/// A member's tag from its pid and a per-process serial: never 0, and
/// different for the managers of one process.
pub(crate) fn tag(pid: u32, serial: u32) -> u32 {
    let t = (u64::from(pid) ^ u64::from(serial).rotate_left(17)).wrapping_mul(0x9E37_79B9) >> 7;
    ((t & TAG_MASK) as u32).max(1)
}

impl Slot {
    /// A free slot (loom models and in-memory registries).
    #[cfg(any(loom, test))]
    pub(crate) fn new() -> Slot {
        Slot { word: AtomicU64::new(0), fields: core::array::from_fn(|_| AtomicU64::new(0)) }
    }

    /// Claims the slot for `tag` at `now` if it is free or expired
    /// (INV-1, INV-3), leaving it in `INIT` until the first
    /// [`Slot::publish`].
    pub(crate) fn try_claim(&self, tag: u32, now: u64) -> Option<Hold> {
        // Acquire: a taker of an expired slot sees its last owner's writes
        // before it writes its own (pairs with `publish`'s Release).
        let current = self.word.load(Ordering::Acquire);
        if let Some(claim) = Claim::decode(current) {
            if !claim.expired(now) {
                return None;
            }
        }
        let word = Claim::encode(tag, now, true);
        self.word.compare_exchange(current, word, Ordering::AcqRel, Ordering::Relaxed).ok()?;
        Some(Hold { word })
    }

    /// Publishes `figures` at `now` under `hold` (INV-2). `false` if the
    /// slot was taken from us (INV-1): the hold is dead and nothing was
    /// written.
    pub(crate) fn publish(&self, hold: &mut Hold, figures: &Figures, now: u64) -> bool {
        let tag = ((hold.word >> TAG_SHIFT) & TAG_MASK) as u32;
        // Never move the heartbeat backwards (a caller's clock read may be
        // older than the claim's).
        let now = now.max(hold.heartbeat());
        #[cfg(not(discardable_broken_group))]
        {
            let writing = Claim::encode(tag, now, true);
            if self.word.compare_exchange(hold.word, writing, Ordering::Relaxed, Ordering::Relaxed).is_err() {
                return false;
            }
            hold.word = writing;
            // Release fence: the `INIT` word is ordered before the field
            // stores, for a reader's second load (the seqlock's writer side).
            fence(Ordering::Release);
        }
        // Deliberately broken variant for the loom model: the fields are
        // written with the slot still marked ready, no seqlock.
        for (cell, value) in self.fields.iter().zip(figures.to_words()) {
            cell.store(value, Ordering::Relaxed);
        }
        let ready = Claim::encode(tag, now, false);
        // Release: pairs with the reader's Acquire load of the word, which
        // then sees these fields.
        if self.word.compare_exchange(hold.word, ready, Ordering::Release, Ordering::Relaxed).is_err() {
            return false;
        }
        hold.word = ready;
        true
    }

    /// Gives the slot up (a manager's drop). Does nothing if it was taken.
    pub(crate) fn release(&self, hold: Hold) {
        let _ = self.word.compare_exchange(hold.word, 0, Ordering::Release, Ordering::Relaxed);
    }

    /// One consistent read of the slot (INV-2): its claim and the fields
    /// of one publication; `None` if it is free, being written, or changed
    /// while read (a caller may retry).
    pub(crate) fn read(&self) -> Option<(Claim, Figures)> {
        // Acquire: pairs with `publish`'s Release store of this word.
        let before = self.word.load(Ordering::Acquire);
        let claim = Claim::decode(before)?;
        if claim.init {
            return None;
        }
        let mut words = [0u64; SLOT_WORDS - 1];
        for (out, cell) in words.iter_mut().zip(&self.fields) {
            *out = cell.load(Ordering::Relaxed);
        }
        // Acquire fence: the field loads are ordered before the second load
        // of the word, so a publication that overlapped them is seen there
        // (pairs with `publish`'s Release fence).
        fence(Ordering::Acquire);
        let after = self.word.load(Ordering::Relaxed);
        (after == before).then(|| (claim, Figures::from_words(words)))
    }

    /// The raw claim word.
    #[cfg(test)]
    pub(crate) fn word(&self) -> u64 {
        self.word.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn claim_publish_read_release() {
        let slot = Slot::new();
        assert_eq!(slot.read(), None, "free");
        let mut hold = slot.try_claim(7, 100).expect("free slot");
        assert_eq!(slot.read(), None, "claimed but not yet published");
        assert!(slot.try_claim(8, 200).is_none(), "held and fresh");
        let f = Figures { pid: 42, weight: 2, held: 10, pinned: 1, demand: 12, share: 9, reclaims: 3 };
        assert!(slot.publish(&mut hold, &f, 150));
        let (claim, read) = slot.read().expect("published");
        assert_eq!((claim.tag, claim.heartbeat, claim.init, read), (7, 150, false, f));
        slot.release(hold);
        assert_eq!(slot.word(), 0);
    }

    #[test]
    fn an_expired_slot_is_taken_and_its_owner_learns_it() {
        let slot = Slot::new();
        let mut old = slot.try_claim(7, 100).unwrap();
        assert!(slot.publish(&mut old, &Figures::default(), 100));
        assert!(slot.try_claim(8, 100 + LEASE_MS).is_none(), "exactly at the lease: still held");
        let mut new = slot.try_claim(8, 101 + LEASE_MS).expect("expired");
        assert!(!slot.publish(&mut old, &Figures { pid: 1, ..Figures::default() }, 5000), "the old owner lost it");
        let f = Figures { pid: 2, weight: 1, ..Figures::default() };
        assert!(slot.publish(&mut new, &f, 5000));
        assert_eq!(slot.read().unwrap().1, f);
        slot.release(old); // a dead hold releases nothing
        assert_eq!(slot.read().unwrap().0.tag, 8);
    }

    #[test]
    fn a_heartbeat_from_the_future_expires() {
        let c = Claim::decode(Claim::encode(3, 10_000, false)).unwrap();
        assert!(!c.expired(9_500));
        assert!(c.expired(8_000), "more than the skew ahead of us");
    }

    #[test]
    fn tags_are_never_zero_and_differ_per_serial() {
        for pid in [0, 1, 4_194_303, u32::MAX] {
            assert_ne!(tag(pid, 0), 0);
            assert_ne!(tag(pid, 1), tag(pid, 2));
        }
    }
}
