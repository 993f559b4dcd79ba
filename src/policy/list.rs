//! Index-linked queues over entry ids: the bookkeeping every replacement
//! policy shares, written once.
//!
//! [`Queues`] owns, for each tracked [`EntryId`]: which of its `N` queues the
//! id is in, its two neighbours there, its cost in bytes (saturated at 4 GiB),
//! and one small mark whose meaning the policy chooses (the CLOCK reference
//! bit, the S3-FIFO frequency). The links live in a `Vec` indexed by id, with [`NIL`]
//! (`u32::MAX`) as the null link, so every operation is O(1) and nothing
//! allocates except `insert` of an id larger than any seen before, which
//! grows the table.
//!
//! Each queue runs from its *head* (newest, most recently used) to its *tail*
//! (the next candidate for eviction).
//!
//! Invariants:
//! - INV-1: an id is in at most one queue. It is in none exactly when its
//!   node's `queue` is `ABSENT`, and then its links are [`NIL`].
//! - INV-2: each queue's `len` and `cost` are the number of its members and
//!   the sum of their costs; following `prev` from the tail visits exactly the
//!   members, ending at the head.
//!
//! Used only by the policies, under the manager's table lock.
//!
//! Must never: decide policy (which queue, which victim: that is the
//! callers' job), call anything outside this module except the `claim`
//! callback it is handed, or panic on an id it does not track (such calls
//! are no-ops).

use super::EntryId;

/// The null link; never a valid id.
pub(super) const NIL: EntryId = EntryId::MAX;

/// `Node::queue` of an id that is in no queue.
const ABSENT: u8 = u8::MAX;

/// The largest cost a node records: a bigger allocation weighs as much as
/// one of 4 GiB in its queue's total. Costs only set queue shares (S3-FIFO's
/// small queue), where that is exact enough.
const COST_MAX: u32 = u32::MAX;

/// Per-id links and bookkeeping.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// Neighbour toward the tail (older), or [`NIL`].
    prev: EntryId,
    /// Neighbour toward the head (newer), or [`NIL`].
    next: EntryId,
    /// Cost in bytes, as given to [`Queues::insert`], saturated at
    /// [`COST_MAX`] (4 bytes, not 8: this node is paid for per allocation).
    cost: u32,
    /// Index of the queue holding the id, or [`ABSENT`].
    queue: u8,
    /// Policy-defined mark, 0 on insert.
    mark: u8,
}

// Sixteen bytes a tracked allocation: the table is paid for per entry.
#[cfg(not(loom))]
static_assertions::const_assert_eq!(core::mem::size_of::<Node>(), 16);

impl Node {
    /// A table slot that tracks nothing.
    const VACANT: Node = Node { prev: NIL, next: NIL, cost: 0, queue: ABSENT, mark: 0 };
}

/// The two ends and the totals of one queue.
#[derive(Debug, Clone, Copy)]
struct Ends {
    /// Newest member, or [`NIL`].
    head: EntryId,
    /// Oldest member, or [`NIL`].
    tail: EntryId,
    /// Number of members.
    len: usize,
    /// Sum of the members' costs.
    cost: usize,
}

impl Ends {
    /// An empty queue.
    const EMPTY: Ends = Ends { head: NIL, tail: NIL, len: 0, cost: 0 };
}

/// `N` doubly linked queues sharing one id-indexed link table.
///
/// Queue indices are `0..N`; passing `q >= N` is a bug and panics.
#[derive(Debug)]
pub(super) struct Queues<const N: usize> {
    /// Links and bookkeeping, indexed by id.
    nodes: Vec<Node>,
    /// Ends and totals of each queue.
    ends: [Ends; N],
}

impl<const N: usize> Default for Queues<N> {
    fn default() -> Self {
        const { assert!(N < ABSENT as usize, "too many queues") };
        Self { nodes: Vec::new(), ends: [Ends::EMPTY; N] }
    }
}

impl<const N: usize> Queues<N> {
    /// Bytes of the link table.
    pub(super) fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * core::mem::size_of::<Node>()
    }

    /// Number of ids tracked, over all queues.
    pub(super) fn len(&self) -> usize {
        self.ends.iter().map(|e| e.len).sum()
    }

    /// Sum of the costs of all tracked ids.
    pub(super) fn cost(&self) -> usize {
        self.ends.iter().map(|e| e.cost).sum()
    }

    /// Number of ids in queue `q`.
    pub(super) fn queue_len(&self, q: usize) -> usize {
        self.ends[q].len
    }

    /// Sum of the costs of the ids in queue `q`.
    pub(super) fn queue_cost(&self, q: usize) -> usize {
        self.ends[q].cost
    }

    /// The queue holding `id`, if any.
    pub(super) fn queue_of(&self, id: EntryId) -> Option<usize> {
        self.nodes.get(id as usize).filter(|n| n.queue != ABSENT).map(|n| usize::from(n.queue))
    }

    /// The oldest id of queue `q` (the next eviction candidate), if any.
    pub(super) fn tail(&self, q: usize) -> Option<EntryId> {
        Some(self.ends[q].tail).filter(|&id| id != NIL)
    }

    /// The mark of `id`; 0 if it is not tracked.
    pub(super) fn mark(&self, id: EntryId) -> u8 {
        match self.queue_of(id) {
            Some(_) => self.nodes[id as usize].mark,
            None => 0,
        }
    }

    /// Sets the mark of `id`; does nothing if it is not tracked.
    pub(super) fn set_mark(&mut self, id: EntryId, mark: u8) {
        if self.queue_of(id).is_some() {
            self.nodes[id as usize].mark = mark;
        }
    }

    /// Starts tracking `id` at the head of queue `q`, with mark 0.
    ///
    /// An id that is already tracked is first removed, so it starts afresh.
    /// [`NIL`] is not an id and is ignored.
    pub(super) fn insert(&mut self, q: usize, id: EntryId, cost: usize) {
        debug_assert_ne!(id, NIL, "u32::MAX is the null link, not an id");
        if id == NIL {
            return;
        }
        self.remove(id);
        let index = id as usize;
        crate::growth::cover(&mut self.nodes, index + 1, Node::VACANT);
        self.nodes[index].cost = u32::try_from(cost).unwrap_or(COST_MAX);
        self.nodes[index].mark = 0;
        self.link_front(q, id);
    }

    /// Stops tracking `id`; returns whether it was tracked.
    pub(super) fn remove(&mut self, id: EntryId) -> bool {
        if !self.unlink(id) {
            return false;
        }
        self.nodes[id as usize] = Node::VACANT;
        true
    }

    /// Moves a tracked `id` to the head of queue `q` (which may be the queue
    /// it is in), keeping its cost and mark; returns whether it was tracked.
    pub(super) fn move_to_front(&mut self, id: EntryId, q: usize) -> bool {
        if !self.unlink(id) {
            return false;
        }
        self.link_front(q, id);
        true
    }

    /// Offers the tracked `id` to `claim`; if the claim succeeds, stops
    /// tracking it and returns `true`. A failed claim changes nothing.
    pub(super) fn take(&mut self, id: EntryId, claim: &mut dyn FnMut(EntryId) -> bool) -> bool {
        claim(id) && self.remove(id)
    }

    /// The ids of queue `q`, oldest first.
    pub(super) fn iter_from_tail(&self, q: usize) -> FromTail<'_, N> {
        FromTail { queues: self, at: self.ends[q].tail }
    }

    /// Detaches `id` from its queue and marks it `ABSENT`; keeps its cost
    /// and mark. Returns whether it was tracked.
    fn unlink(&mut self, id: EntryId) -> bool {
        let Some(q) = self.queue_of(id) else {
            return false;
        };
        let node = self.nodes[id as usize];
        match node.prev {
            NIL => self.ends[q].tail = node.next,
            prev => self.nodes[prev as usize].next = node.next,
        }
        match node.next {
            NIL => self.ends[q].head = node.prev,
            next => self.nodes[next as usize].prev = node.prev,
        }
        self.ends[q].len -= 1;
        self.ends[q].cost -= node.cost as usize;
        let node = &mut self.nodes[id as usize];
        node.prev = NIL;
        node.next = NIL;
        node.queue = ABSENT;
        true
    }

    /// Links the detached `id` (its node has a cost, `ABSENT`, [`NIL`]
    /// links) at the head of queue `q`.
    fn link_front(&mut self, q: usize, id: EntryId) {
        let old_head = self.ends[q].head;
        match old_head {
            NIL => self.ends[q].tail = id,
            head => self.nodes[head as usize].next = id,
        }
        let node = &mut self.nodes[id as usize];
        node.prev = old_head;
        node.next = NIL;
        // Lossless: `Default` asserts `N < ABSENT`, and `q < N` or the
        // `ends` index below panics.
        node.queue = q as u8;
        let cost = node.cost as usize;
        let ends = &mut self.ends[q];
        ends.head = id;
        ends.len += 1;
        ends.cost += cost;
    }
}

/// Iterator over one queue, oldest first; see [`Queues::iter_from_tail`].
#[derive(Debug)]
pub(super) struct FromTail<'a, const N: usize> {
    /// The queues being walked.
    queues: &'a Queues<N>,
    /// The next id to yield, or [`NIL`].
    at: EntryId,
}

impl<const N: usize> Iterator for FromTail<'_, N> {
    type Item = EntryId;

    fn next(&mut self) -> Option<EntryId> {
        let id = Some(self.at).filter(|&id| id != NIL)?;
        self.at = self.queues.nodes[id as usize].next;
        Some(id)
    }
}

/// Test support shared by the policies' unit tests: trace helpers, the
/// contract every policy must meet, and a differential harness that runs a
/// policy beside a naive model over random operations.
#[cfg(test)]
pub(super) mod trace {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::super::{EntryId, Replacement};

    /// Inserts `ids` in order, each costing one byte.
    pub(in crate::policy) fn insert_all(policy: &mut dyn Replacement, ids: &[EntryId]) {
        for &id in ids {
            policy.insert(id, 1);
        }
    }

    /// Accesses each of `ids` once, in order.
    pub(in crate::policy) fn access_all(policy: &mut dyn Replacement, ids: &[EntryId]) {
        for &id in ids {
            policy.access(id, 1);
        }
    }

    /// One `victim` call in which the claims of `pinned` ids fail.
    pub(in crate::policy) fn victim_except(policy: &mut dyn Replacement, pinned: &[EntryId]) -> Option<EntryId> {
        policy.victim(&mut |id| !pinned.contains(&id))
    }

    /// Victims, in order, until the policy has none (claims fail for
    /// `pinned` ids).
    pub(in crate::policy) fn drain_except(policy: &mut dyn Replacement, pinned: &[EntryId]) -> Vec<EntryId> {
        std::iter::from_fn(|| victim_except(policy, pinned)).collect()
    }

    /// Victims, in order, until the policy is empty.
    pub(in crate::policy) fn drain(policy: &mut dyn Replacement) -> Vec<EntryId> {
        drain_except(policy, &[])
    }

    /// Checks the trait contract that does not depend on the algorithm.
    pub(in crate::policy) fn contract(make: fn() -> Box<dyn Replacement>) {
        // An empty policy has no victim and offers nothing.
        let mut p = make();
        assert_eq!(p.victim(&mut |_| panic!("offered from empty")), None);
        assert_eq!(p.len(), 0);

        // Unknown ids are ignored by access and remove, including an id
        // beyond the table and an id removed twice.
        insert_all(&mut *p, &[0, 1, 2]);
        p.access(7, 1);
        p.access(1_000_000, 3);
        p.remove(9);
        p.remove(1_000_000);
        p.remove(1);
        p.remove(1);
        p.access(1, 1);
        p.access(0, 0);
        assert_eq!(p.len(), 2);
        let mut rest = drain(&mut *p);
        rest.sort_unstable();
        assert_eq!(rest, [0, 2]);
        assert_eq!(p.victim(&mut |_| true), None);

        // When every claim fails: `None`, every id offered at least once and
        // at most twice, nothing lost; afterwards all are still evictable.
        let mut p = make();
        let ids: Vec<EntryId> = (0..8).collect();
        insert_all(&mut *p, &ids);
        access_all(&mut *p, &[1, 3, 3, 5]);
        for round in 0..3 {
            let mut offers = vec![0_u32; ids.len()];
            let got = p.victim(&mut |id| {
                offers[id as usize] += 1;
                false
            });
            assert_eq!(got, None, "round {round}");
            assert!(offers.iter().all(|&n| (1..=2).contains(&n)), "{offers:?}");
            assert_eq!(p.len(), ids.len());
        }
        let mut all = drain(&mut *p);
        all.sort_unstable();
        assert_eq!(all, ids);

        // Pinned ids are skipped while pinned, then evicted once unpinned.
        let mut p = make();
        insert_all(&mut *p, &ids);
        let pinned = [0, 4, 7];
        let mut unpinned = drain_except(&mut *p, &pinned);
        unpinned.sort_unstable();
        assert_eq!(unpinned, [1, 2, 3, 5, 6]);
        assert_eq!(p.len(), pinned.len());
        let mut later = drain(&mut *p);
        later.sort_unstable();
        assert_eq!(later, pinned);

        // Ids are reused after `victim` and after `remove`.
        let mut p = make();
        insert_all(&mut *p, &[0, 1, 2]);
        let v = p.victim(&mut |_| true).unwrap();
        p.remove(2);
        p.insert(v, 5);
        p.insert(2, 5);
        assert_eq!(p.len(), 3);
        let mut all = drain(&mut *p);
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2]);
    }

    /// One step of a random trace over ids `0..16` (a few unknown ids too).
    #[derive(Debug, Clone)]
    pub(in crate::policy) enum Op {
        /// Insert (skipped when the id is present, as the contract demands).
        Insert(EntryId, usize),
        /// Access with a count, possibly 0.
        Access(EntryId, u32),
        /// Remove, possibly an unknown id.
        Remove(EntryId),
        /// A victim call; claims fail for ids whose bit is set.
        Victim(u16),
    }

    /// Random traces.
    pub(in crate::policy) fn ops() -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            4 => (0..16_u32, 0..64_usize).prop_map(|(id, c)| Op::Insert(id, c)),
            3 => (0..18_u32, 0..5_u32).prop_map(|(id, n)| Op::Access(id, n)),
            1 => (0..18_u32).prop_map(Op::Remove),
            3 => prop_oneof![Just(0_u16), any::<u16>()].prop_map(Op::Victim),
        ];
        proptest::collection::vec(op, 0..200)
    }

    /// Runs `policy` and `model` over `ops`; they must offer the same
    /// candidates in the same order and return the same victims.
    pub(in crate::policy) fn same_as_model(
        policy: &mut dyn Replacement,
        model: &mut dyn Replacement,
        ops: &[Op],
    ) -> Result<(), TestCaseError> {
        let mut present = BTreeSet::new();
        for op in ops {
            match *op {
                Op::Insert(id, cost) => {
                    if present.insert(id) {
                        policy.insert(id, cost);
                        model.insert(id, cost);
                    }
                }
                Op::Access(id, n) => {
                    policy.access(id, n);
                    model.access(id, n);
                }
                Op::Remove(id) => {
                    present.remove(&id);
                    policy.remove(id);
                    model.remove(id);
                }
                Op::Victim(pinned) => {
                    let (mut got, mut want) = (Vec::new(), Vec::new());
                    let claim = |offers: &mut Vec<EntryId>, id: EntryId| {
                        offers.push(id);
                        pinned & (1 << id) == 0
                    };
                    let v = policy.victim(&mut |id| claim(&mut got, id));
                    let w = model.victim(&mut |id| claim(&mut want, id));
                    prop_assert_eq!(&got, &want, "offers");
                    prop_assert_eq!(v, w, "victim");
                    if let Some(v) = v {
                        present.remove(&v);
                    }
                }
            }
            prop_assert_eq!(policy.len(), model.len());
            prop_assert_eq!(policy.len(), present.len());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(q: &Queues<2>, queue: usize) -> Vec<EntryId> {
        q.iter_from_tail(queue).collect()
    }

    #[test]
    fn push_move_remove_keep_links_and_totals() {
        let mut q = Queues::<2>::default();
        q.insert(0, 3, 30);
        q.insert(0, 1, 10);
        q.insert(1, 7, 70);
        q.insert(0, 5, 50);
        assert_eq!(order(&q, 0), [3, 1, 5]);
        assert_eq!(order(&q, 1), [7]);
        assert_eq!((q.len(), q.cost()), (4, 160));
        assert_eq!((q.queue_len(0), q.queue_cost(0)), (3, 90));

        assert!(q.move_to_front(3, 0));
        assert_eq!(order(&q, 0), [1, 5, 3]);
        assert!(q.move_to_front(5, 1));
        assert_eq!(order(&q, 0), [1, 3]);
        assert_eq!(order(&q, 1), [7, 5]);
        assert_eq!((q.queue_cost(0), q.queue_cost(1)), (40, 120));

        assert!(q.remove(1));
        assert!(!q.remove(1));
        assert_eq!(order(&q, 0), [3]);
        assert_eq!(q.tail(0), Some(3));
        assert!(q.remove(3));
        assert_eq!(q.tail(0), None);
        assert_eq!(order(&q, 0), []);
        assert_eq!((q.len(), q.cost()), (2, 120));
        assert_eq!(q.queue_of(3), None);
        assert_eq!(q.queue_of(5), Some(1));
    }

    #[test]
    fn marks_and_unknown_ids() {
        let mut q = Queues::<1>::default();
        q.insert(0, 2, 1);
        q.set_mark(2, 3);
        q.set_mark(9, 3);
        q.set_mark(1, 3);
        assert_eq!((q.mark(2), q.mark(9), q.mark(1)), (3, 0, 0));
        assert!(q.move_to_front(2, 0));
        assert_eq!(q.mark(2), 3, "moving keeps the mark");
        assert!(!q.move_to_front(1, 0));
        assert!(!q.move_to_front(EntryId::MAX - 1, 0));
        assert_eq!(q.queue_of(NIL), None);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn reinsert_starts_afresh() {
        let mut q = Queues::<2>::default();
        q.insert(0, 0, 5);
        q.insert(0, 1, 5);
        q.set_mark(0, 2);
        q.insert(1, 0, 8);
        assert_eq!(order(&q, 0), [1]);
        assert_eq!(order(&q, 1), [0]);
        assert_eq!(q.mark(0), 0);
        assert_eq!((q.len(), q.cost(), q.queue_cost(1)), (2, 13, 8));
    }

    #[test]
    fn take_removes_only_on_success() {
        let mut q = Queues::<1>::default();
        q.insert(0, 4, 1);
        assert!(!q.take(4, &mut |_| false));
        assert_eq!(q.len(), 1);
        assert!(q.take(4, &mut |id| id == 4));
        assert_eq!(q.len(), 0);
    }
}
