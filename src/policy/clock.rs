//! CLOCK (second chance): an accessed allocation survives one sweep of the
//! hand.
//!
//! [`Clock`] owns the ring and one reference bit per id (the list's mark).
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
//! Must never: set a bit on insertion, sweep more than twice per call, or
//! allocate per access.

use super::list::Queues;
use super::{EntryId, Replacement};

/// The only queue: the ring, tail under the hand.
const RING: usize = 0;

/// Reference bit values of the mark.
const CLEAR: u8 = 0;
/// See [`CLEAR`].
const REFERENCED: u8 = 1;

/// CLOCK over entry ids; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    /// The ring; the mark is the reference bit.
    ring: Queues<1>,
}

impl Replacement for Clock {
    fn insert(&mut self, id: EntryId, cost: usize) {
        self.ring.insert(RING, id, cost);
    }

    fn access(&mut self, id: EntryId, count: u32) {
        if count > 0 {
            self.ring.set_mark(id, REFERENCED);
        }
    }

    fn remove(&mut self, id: EntryId) {
        self.ring.remove(id);
    }

    fn victim(&mut self, claim: &mut dyn FnMut(EntryId) -> bool) -> Option<EntryId> {
        for _ in 0..2 * self.ring.len() {
            let id = self.ring.tail(RING)?;
            if self.ring.mark(id) == REFERENCED {
                self.ring.set_mark(id, CLEAR);
            } else if self.ring.take(id, claim) {
                return Some(id);
            } else {
                // In use: a failed claim is a reference.
                self.ring.set_mark(id, REFERENCED);
            }
            self.ring.move_to_front(id, RING);
        }
        None
    }

    fn len(&self) -> usize {
        self.ring.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::list::trace::{self, access_all, drain, insert_all, victim_except};
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
    }

    proptest! {
        #[test]
        fn same_as_naive_clock(ops in trace::ops()) {
            trace::same_as_model(&mut Clock::default(), &mut Model::default(), &ops)?;
        }
    }
}
