//! CLOCK (second chance): an accessed allocation survives one sweep of the
//! hand.
//!
//! [`Clock`] owns the ring and one reference bit per id.
//! The ring is a queue whose tail is under the hand: passing an entry moves
//! it to the head, which is the position just behind the hand, and a new
//! entry is placed there too. Creating an allocation is not an access, so its
//! bit starts clear; an access sets it.
//!
//! `victim` sweeps from the hand: a referenced entry has its bit cleared and
//! is passed; an unreferenced one is offered to `claim`. A failed claim means
//! the allocation is in use, which counts as a reference: its bit is set and
//! the hand passes it. Each call makes at most two sweeps (`2 * len` steps),
//! enough to reach every entry whose bit it cleared in the first, so it
//! returns `None` only when nothing could be claimed, and offers each id at
//! most once.
//!
//! Must never: set a bit on insertion, sweep more than twice per call (stale
//! copies aside), or allocate per access.

use std::collections::VecDeque;

use super::list::NIL;
use super::{EntryId, Replacement};

/// `state` bits: the id is tracked.
const PRESENT: u8 = 1;
/// `state` bits: the reference bit.
const REFERENCED: u8 = 2;
/// `state`: the count of the id's copies in the ring, in the bits above.
const COPY_SHIFT: u32 = 2;
/// The most copies one id may have in the ring before a compaction.
const COPIES_MAX: u8 = u8::MAX >> COPY_SHIFT;
/// Stale copies a ring may hold beyond its live ids before a compaction.
const STALE_SLACK: usize = 64;

/// CLOCK over entry ids; see the module docs.
///
/// Five bytes per id, not a linked node of sixteen: the ring is a deque of
/// ids (tail in front, under the hand), and an id's removal leaves its copy
/// in place, *stale*, to be dropped when the hand reaches it. An id
/// re-inserted meanwhile has a newer copy behind it; the live copy of an id
/// is always its newest (it is pushed on insert and again each time the
/// hand passes it, and stale copies are never pushed), so a copy the hand
/// meets while the id has more than one is stale. Each id's `state` byte
/// holds its bits and its copy count; the ring is compacted when stale
/// copies outnumber the live ones (by [`STALE_SLACK`]) or a count would
/// overflow.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    /// Ids in ring order, the tail (front) under the hand, with stale copies.
    ring: VecDeque<EntryId>,
    /// Per id: [`PRESENT`], [`REFERENCED`] and the number of its copies in
    /// `ring`.
    state: Vec<u8>,
    /// Tracked ids.
    live: usize,
}

impl Clock {
    fn copies(&self, id: EntryId) -> u8 {
        self.state[id as usize] >> COPY_SHIFT
    }

    fn is_present(&self, id: EntryId) -> bool {
        self.state.get(id as usize).is_some_and(|s| s & PRESENT != 0)
    }

    /// Drops every stale copy, keeping the ring order of the live ones.
    fn compact(&mut self) {
        let state = &mut self.state;
        self.ring.retain(|&id| {
            let s = &mut state[id as usize];
            let copies = *s >> COPY_SHIFT;
            *s -= 1 << COPY_SHIFT;
            let live = copies == 1 && *s & PRESENT != 0;
            if live {
                *s += 1 << COPY_SHIFT;
            }
            live
        });
    }

    fn compact_if_stale(&mut self) {
        if self.ring.len() > 2 * self.live + STALE_SLACK {
            self.compact();
        }
    }

    /// Pops the live id at the hand, dropping the stale copies before it.
    fn pop_live(&mut self) -> Option<EntryId> {
        loop {
            let id = self.ring.pop_front()?;
            let s = &mut self.state[id as usize];
            let copies = *s >> COPY_SHIFT;
            if copies == 1 && *s & PRESENT != 0 {
                return Some(id);
            }
            *s -= 1 << COPY_SHIFT;
        }
    }

    /// Puts `id` (just popped by [`Self::pop_live`]) back behind the hand.
    fn pass(&mut self, id: EntryId, referenced: bool) {
        let s = &mut self.state[id as usize];
        *s = if referenced { *s | REFERENCED } else { *s & !REFERENCED };
        self.ring.push_back(id);
    }
}

impl Replacement for Clock {
    fn insert(&mut self, id: EntryId, _cost: usize) {
        debug_assert_ne!(id, NIL, "u32::MAX is the null link, not an id");
        if id == NIL {
            return;
        }
        self.remove(id);
        let index = id as usize;
        crate::growth::cover(&mut self.state, index + 1, 0);
        if self.copies(id) == COPIES_MAX {
            self.compact();
        }
        if self.ring.len() == self.ring.capacity() {
            self.ring.reserve_exact((self.ring.len() / 8).max(STALE_SLACK));
        }
        self.ring.push_back(id);
        let s = &mut self.state[index];
        *s = (*s + (1 << COPY_SHIFT)) | PRESENT;
        self.live += 1;
    }

    fn access(&mut self, id: EntryId, count: u32) {
        if count > 0 && self.is_present(id) {
            self.state[id as usize] |= REFERENCED;
        }
    }

    fn remove(&mut self, id: EntryId) {
        if self.is_present(id) {
            self.state[id as usize] &= !(PRESENT | REFERENCED);
            self.live -= 1;
            self.compact_if_stale();
        }
    }

    fn victim(&mut self, claim: &mut dyn FnMut(EntryId) -> bool) -> Option<EntryId> {
        for _ in 0..2 * self.live {
            let id = self.pop_live()?;
            if self.state[id as usize] & REFERENCED != 0 {
                self.pass(id, false);
            } else if claim(id) {
                // Its one copy just left the ring.
                self.state[id as usize] = 0;
                self.live -= 1;
                return Some(id);
            } else {
                // In use: a failed claim is a reference.
                self.pass(id, true);
            }
        }
        None
    }

    fn len(&self) -> usize {
        self.live
    }

    fn heap_bytes(&self) -> usize {
        self.ring.capacity() * size_of::<EntryId>() + self.state.capacity()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::list::trace::{self, access_all, drain, insert_all, victim_except, Op};
    use super::*;

    #[test]
    fn contract() {
        trace::contract(|| Box::<Clock>::default());
    }

    #[test]
    fn second_chance() {
        let mut p = Clock::default();
        insert_all(&mut p, &[0, 1, 2, 3]);
        access_all(&mut p, &[1]);
        assert_eq!(drain(&mut p), [0, 2, 3, 1]);
    }

    #[test]
    fn hand_keeps_ring_order_unlike_lru() {
        // LRU would give 2, 1, 0: CLOCK does not order by access time.
        let mut p = Clock::default();
        insert_all(&mut p, &[0, 1, 2]);
        access_all(&mut p, &[1, 0]);
        assert_eq!(drain(&mut p), [2, 0, 1]);
    }

    #[test]
    fn insertion_is_not_an_access() {
        let mut p = Clock::default();
        insert_all(&mut p, &[0, 1, 2]);
        assert_eq!(drain(&mut p), [0, 1, 2]);
    }

    #[test]
    fn hand_position_persists_between_calls() {
        let mut p = Clock::default();
        insert_all(&mut p, &[0, 1, 2, 3]);
        access_all(&mut p, &[0, 1]);
        // The hand clears 0 and 1, takes 2.
        assert_eq!(victim_except(&mut p, &[]), Some(2));
        // 4 lands behind the hand, after 0 and 1; 3 is re-referenced.
        insert_all(&mut p, &[4]);
        access_all(&mut p, &[3]);
        assert_eq!(drain(&mut p), [0, 1, 4, 3]);
    }

    #[test]
    fn everything_referenced_takes_the_second_sweep() {
        let mut p = Clock::default();
        insert_all(&mut p, &[0, 1, 2]);
        access_all(&mut p, &[0, 1, 2]);
        let mut offered = Vec::new();
        let v = p.victim(&mut |id| {
            offered.push(id);
            true
        });
        assert_eq!((v, offered), (Some(0), vec![0]));
        assert_eq!(drain(&mut p), [1, 2]);
    }

    #[test]
    fn failed_claim_counts_as_reference() {
        let mut p = Clock::default();
        insert_all(&mut p, &[0, 1, 2, 3]);
        let mut offered = Vec::new();
        let v = p.victim(&mut |id| {
            offered.push(id);
            id >= 2
        });
        assert_eq!((v, offered), (Some(2), vec![0, 1, 2]));
        // 0 and 1 were passed with their bits set: 3 goes first.
        assert_eq!(drain(&mut p), [3, 0, 1]);
    }

    #[test]
    fn pinned_then_unpinned() {
        let mut p = Clock::default();
        insert_all(&mut p, &[0, 1, 2]);
        access_all(&mut p, &[2]);
        assert_eq!(victim_except(&mut p, &[0, 1, 2]), None);
        assert_eq!(p.len(), 3);
        // Two sweeps cleared the bits their failed claims set on 0 and 1,
        // and 2 was offered last, so only 2 is referenced now.
        assert_eq!(victim_except(&mut p, &[1]), Some(0));
        assert_eq!(victim_except(&mut p, &[1]), Some(2));
        assert_eq!(drain(&mut p), [1]);
    }

    #[test]
    fn reused_id_is_new() {
        let mut p = Clock::default();
        insert_all(&mut p, &[0, 1, 2]);
        access_all(&mut p, &[1]);
        assert_eq!(victim_except(&mut p, &[]), Some(0));
        p.remove(1);
        // The reused 1 starts unreferenced.
        insert_all(&mut p, &[1, 0]);
        assert_eq!(drain(&mut p), [2, 1, 0]);
    }

    #[test]
    fn stale_copies_are_compacted_away() {
        let mut p = Clock::default();
        insert_all(&mut p, &[0, 1, 2, 3]);
        access_all(&mut p, &[2]);
        // Each re-insert of 0 and 1 leaves a stale copy: 0's copy count
        // reaches its maximum, and the stale copies outnumber the live ids.
        for _ in 0..100 {
            p.remove(0);
            insert_all(&mut p, &[0]);
            p.remove(1);
            insert_all(&mut p, &[1]);
        }
        assert!(p.ring.len() <= 2 * p.live + STALE_SLACK + 1, "{}", p.ring.len());
        assert_eq!(p.len(), 4);
        // The re-inserted ids are new: behind 3, and unreferenced; 2 keeps
        // its bit and goes last.
        assert_eq!(drain(&mut p), [3, 0, 1, 2]);
        assert!(p.ring.is_empty());
    }

    /// Naive CLOCK: a `Vec` ring with the hand at index 0.
    #[derive(Debug, Default)]
    struct Model(Vec<(EntryId, bool)>);

    impl Replacement for Model {
        fn insert(&mut self, id: EntryId, _: usize) {
            self.0.push((id, false));
        }
        fn access(&mut self, id: EntryId, count: u32) {
            for entry in &mut self.0 {
                if entry.0 == id && count > 0 {
                    entry.1 = true;
                }
            }
        }
        fn remove(&mut self, id: EntryId) {
            self.0.retain(|&(x, _)| x != id);
        }
        fn victim(&mut self, claim: &mut dyn FnMut(EntryId) -> bool) -> Option<EntryId> {
            for _ in 0..2 * self.0.len() {
                let (id, referenced) = self.0[0];
                if !referenced && claim(id) {
                    return Some(self.0.remove(0).0);
                }
                self.0[0].1 = !referenced;
                self.0.rotate_left(1);
            }
            None
        }
        fn len(&self) -> usize {
            self.0.len()
        }
        fn heap_bytes(&self) -> usize {
            0 // a test model: nothing to account for
        }
    }

    proptest! {
        #[test]
        fn same_as_naive_clock(ops in trace::ops()) {
            trace::same_as_model(&mut Clock::default(), &mut Model::default(), &ops)?;
        }

        /// Churn on a few ids: long runs of removes and re-inserts between
        /// the hand's visits pile up stale copies, so the compactions (by
        /// count of stale copies, and by an id's copy count reaching
        /// `COPIES_MAX`) run many times in one trace.
        #[test]
        fn same_as_naive_clock_under_churn(ops in proptest::collection::vec(prop_oneof![
            6 => (0..4_u32).prop_map(|id| Op::Insert(id, 1)),
            6 => (0..4_u32).prop_map(Op::Remove),
            1 => (0..4_u32, 0..2_u32).prop_map(|(id, n)| Op::Access(id, n)),
            1 => any::<u16>().prop_map(Op::Victim),
        ], 0..3000)) {
            trace::same_as_model(&mut Clock::default(), &mut Model::default(), &ops)?;
        }
    }
}
