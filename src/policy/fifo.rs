//! First in, first out by creation; accesses are ignored.
//!
//! [`Fifo`] owns one insertion-order queue (head = newest). `victim` walks it
//! from the oldest; a candidate whose claim fails keeps its place and the
//! next oldest is offered, so an allocation pinned for a while is still the
//! first offered once it is unpinned.
//!
//! Must never: reorder on access or on a failed claim, allocate per call, or
//! offer an id more than once per `victim` call.

use super::list::Queues;
use super::{EntryId, Replacement};

/// The only queue.
const ARRIVALS: usize = 0;

/// FIFO over entry ids; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Fifo {
    /// Insertion order: head newest, tail oldest.
    queue: Queues<1>,
}

impl Replacement for Fifo {
    fn insert(&mut self, id: EntryId, cost: usize) {
        self.queue.insert(ARRIVALS, id, cost);
    }

    fn access(&mut self, _: EntryId, _: u32) {}

    fn remove(&mut self, id: EntryId) {
        self.queue.remove(id);
    }

    fn victim(&mut self, claim: &mut dyn FnMut(EntryId) -> bool) -> Option<EntryId> {
        let id = self.queue.iter_from_tail(ARRIVALS).find(|&id| claim(id))?;
        self.queue.remove(id);
        Some(id)
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn heap_bytes(&self) -> usize {
        self.queue.heap_bytes()
    }

    fn uses_accesses(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::list::trace::{self, access_all, drain, insert_all, victim_except};
    use super::*;

    #[test]
    fn contract() {
        trace::contract(|| Box::<Fifo>::default());
    }

    #[test]
    fn access_is_ignored() {
        let mut p = Fifo::default();
        insert_all(&mut p, &[0, 1, 2, 3]);
        access_all(&mut p, &[1, 0, 0, 3]);
        p.access(2, 9);
        assert_eq!(drain(&mut p), [0, 1, 2, 3]);
    }

    #[test]
    fn failed_claim_keeps_position() {
        let mut p = Fifo::default();
        insert_all(&mut p, &[0, 1, 2, 3]);
        let mut offered = Vec::new();
        let v = p.victim(&mut |id| {
            offered.push(id);
            id >= 2
        });
        assert_eq!((v, offered), (Some(2), vec![0, 1, 2]));
        assert_eq!(victim_except(&mut p, &[0]), Some(1));
        insert_all(&mut p, &[4]);
        assert_eq!(drain(&mut p), [0, 3, 4]);
    }

    #[test]
    fn pinned_then_unpinned() {
        let mut p = Fifo::default();
        insert_all(&mut p, &[0, 1, 2]);
        assert_eq!(victim_except(&mut p, &[0, 1, 2]), None);
        assert_eq!(victim_except(&mut p, &[0, 1]), Some(2));
        assert_eq!(victim_except(&mut p, &[0, 1]), None);
        assert_eq!(drain(&mut p), [0, 1]);
    }

    #[test]
    fn reused_id_is_new() {
        let mut p = Fifo::default();
        insert_all(&mut p, &[0, 1, 2]);
        assert_eq!(victim_except(&mut p, &[]), Some(0));
        p.remove(1);
        insert_all(&mut p, &[1, 0]);
        assert_eq!(drain(&mut p), [2, 1, 0]);
    }

    /// Naive FIFO: a `Vec` from oldest to newest.
    #[derive(Debug, Default)]
    struct Model(Vec<EntryId>);

    impl Replacement for Model {
        fn insert(&mut self, id: EntryId, _: usize) {
            self.0.push(id);
        }
        fn access(&mut self, _: EntryId, _: u32) {}
        fn remove(&mut self, id: EntryId) {
            self.0.retain(|&x| x != id);
        }
        fn victim(&mut self, claim: &mut dyn FnMut(EntryId) -> bool) -> Option<EntryId> {
            let i = self.0.iter().position(|&id| claim(id))?;
            Some(self.0.remove(i))
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
        fn same_as_naive_fifo(ops in trace::ops()) {
            trace::same_as_model(&mut Fifo::default(), &mut Model::default(), &ops)?;
        }
    }
}
