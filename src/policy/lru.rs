//! Least recently used: evicts the allocation unpinned longest ago.
//!
//! [`Lru`] owns one recency queue (head = most recently used). It turns the
//! manager's access reports into moves to the head and offers candidates
//! from the tail. A candidate whose claim fails is in use, which counts as an
//! access: it moves to the head and the next oldest is offered, so one
//! `victim` call offers each id at most once.
//!
//! Must never: allocate per access, touch anything but its queue, or offer
//! an id more than once per `victim` call.

use super::list::Queues;
use super::{EntryId, Replacement};

/// The only queue.
const RECENCY: usize = 0;

/// LRU over entry ids; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Lru {
    /// Recency order: head most recent, tail least recent.
    queue: Queues<1>,
}

impl Replacement for Lru {
    fn insert(&mut self, id: EntryId, cost: usize) {
        self.queue.insert(RECENCY, id, cost);
    }

    fn access(&mut self, id: EntryId, count: u32) {
        if count > 0 {
            self.queue.move_to_front(id, RECENCY);
        }
    }

    fn remove(&mut self, id: EntryId) {
        self.queue.remove(id);
    }

    fn victim(&mut self, claim: &mut dyn FnMut(EntryId) -> bool) -> Option<EntryId> {
        for _ in 0..self.queue.len() {
            let id = self.queue.tail(RECENCY)?;
            if self.queue.take(id, claim) {
                return Some(id);
            }
            // In use: a failed claim is an access.
            self.queue.move_to_front(id, RECENCY);
        }
        None
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn heap_bytes(&self) -> usize {
        self.queue.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::list::trace::{self, access_all, drain, insert_all, victim_except};
    use super::*;

    #[test]
    fn contract() {
        trace::contract(|| Box::<Lru>::default());
    }

    #[test]
    fn access_moves_to_most_recent() {
        let mut p = Lru::default();
        insert_all(&mut p, &[0, 1, 2, 3]);
        access_all(&mut p, &[1]);
        assert_eq!(drain(&mut p), [0, 2, 3, 1]);
    }

    #[test]
    fn latest_access_wins() {
        let mut p = Lru::default();
        insert_all(&mut p, &[0, 1, 2]);
        access_all(&mut p, &[1, 0]);
        assert_eq!(drain(&mut p), [2, 1, 0]);
        insert_all(&mut p, &[0, 1, 2]);
        p.access(2, 4);
        p.access(0, 0);
        assert_eq!(drain(&mut p), [0, 1, 2]);
    }

    #[test]
    fn failed_claim_counts_as_access() {
        let mut p = Lru::default();
        insert_all(&mut p, &[0, 1, 2, 3]);
        let mut offered = Vec::new();
        let v = p.victim(&mut |id| {
            offered.push(id);
            id >= 2
        });
        assert_eq!((v, offered), (Some(2), vec![0, 1, 2]));
        // 0 and 1 became the most recent, behind 3.
        assert_eq!(drain(&mut p), [3, 0, 1]);
    }

    #[test]
    fn pinned_then_unpinned() {
        let mut p = Lru::default();
        insert_all(&mut p, &[0, 1, 2]);
        assert_eq!(victim_except(&mut p, &[0, 1, 2]), None);
        assert_eq!(p.len(), 3);
        assert_eq!(victim_except(&mut p, &[0]), Some(1));
        assert_eq!(drain(&mut p), [2, 0]);
    }

    #[test]
    fn reused_id_is_new() {
        let mut p = Lru::default();
        insert_all(&mut p, &[0, 1, 2]);
        assert_eq!(victim_except(&mut p, &[]), Some(0));
        p.remove(1);
        insert_all(&mut p, &[1, 0]);
        assert_eq!(drain(&mut p), [2, 1, 0]);
    }

    /// Naive LRU: a `Vec` from least to most recent.
    #[derive(Debug, Default)]
    struct Model(Vec<EntryId>);

    impl Replacement for Model {
        fn insert(&mut self, id: EntryId, _: usize) {
            self.0.push(id);
        }
        fn access(&mut self, id: EntryId, count: u32) {
            if let Some(i) = self.0.iter().position(|&x| x == id) {
                if count > 0 {
                    let id = self.0.remove(i);
                    self.0.push(id);
                }
            }
        }
        fn remove(&mut self, id: EntryId) {
            self.0.retain(|&x| x != id);
        }
        fn victim(&mut self, claim: &mut dyn FnMut(EntryId) -> bool) -> Option<EntryId> {
            for _ in 0..self.0.len() {
                if claim(self.0[0]) {
                    return Some(self.0.remove(0));
                }
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
        fn same_as_naive_lru(ops in trace::ops()) {
            trace::same_as_model(&mut Lru::default(), &mut Model::default(), &ops)?;
        }
    }
}
