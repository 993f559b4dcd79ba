//! Differential fuzzing of the four replacement policies against reference
//! implementations written here from the algorithm descriptions in the
//! module docs of `src/policy/*.rs` (plain `VecDeque`s, none of the crate's
//! code).
//!
//! # What is driven
//!
//! Every input runs one list of [`Op`]s against all four policies at once,
//! each built the way the manager builds it (`policy::build`, reached through
//! the hidden `discardable::__fuzz::Replacer`), each beside its own model.
//! Ids are small ([`IDS`]) so they collide, leave and come back (the manager
//! reuses ids); an `Insert` of an id the model already tracks is skipped, as
//! the `Replacement` contract says `insert` comes once per id. `Access` and
//! `Remove` of absent ids are passed on: the contract says they are ignored.
//!
//! A `Victim` op's claim callback fails for the ids of a mask (pinned
//! allocations) and for the first few offers of the call (an allocation
//! pinned for a moment); `Drain` repeats `Victim` until `None`.
//!
//! # What is checked
//!
//! After every op, per policy: `len()` equals the model's; for `Victim`, the
//! whole sequence of ids offered to `claim` and the returned victim equal
//! the model's exactly. The models follow the documented choices:
//!
//! - LRU (`lru.rs`): one recency queue; an access (`count >= 1`) moves to the
//!   most recent end; `victim` offers from the least recent end, and a failed
//!   claim is an access (the candidate becomes most recent); at most `len`
//!   offers per call.
//! - FIFO (`fifo.rs`): insertion order; accesses ignored; `victim` offers
//!   oldest first and a failed claim keeps the candidate's position.
//! - CLOCK (`clock.rs`): a ring, the hand at the oldest end; insertion puts
//!   the id just behind the hand with its bit clear; an access sets the bit;
//!   `victim` takes up to `2 * len` steps: a set bit is cleared and passed, a
//!   clear one is offered, and a failed claim sets the bit and passes.
//! - S3-FIFO (`s3fifo.rs`): small and main FIFOs, frequency `0..=3` saturating
//!   (insertion is not an access, an access adds its count); `victim`:
//!   (1) while small is non-empty and holds at least 10 % of the total cost
//!   (or main is empty), small's oldest is promoted to main with frequency
//!   **0** if its frequency is >= 1, else offered, and promoted with
//!   frequency 3 if the claim fails; (2) then `4 * len(main)` steps over
//!   main's oldest: a frequency > 0 is decremented and the entry re-queued,
//!   a 0 is offered, and a failed claim re-queues with 3; (3) then what is
//!   left in small, oldest first, failures promoted with 3; else `None`.
//!   Costs weigh in the shares saturated at 4 GiB (`u32::MAX`), as
//!   `src/policy/list.rs` records them.

#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use discardable::__fuzz::Replacer;
use discardable::Policy;
use libfuzzer_sys::fuzz_target;

/// Ids per input: `0..IDS` (all fit the `u64` pin mask).
const IDS: u8 = 40;
/// Most ops run per input (longer inputs are cut).
const MAX_OPS: usize = 512;
/// Most `victim` calls in one `Drain`.
const MAX_DRAIN: usize = 2 * IDS as usize;

/// A cost in bytes: zero costs happen (empty allocations), equal costs are
/// common, and large ones tip S3-FIFO's 10 % share. The largest keeps the
/// total of [`IDS`] entries far below `usize::MAX`, as live bytes are.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Cost {
    Zero,
    One,
    Small(u8),
    Any(u32),
    Pow2(u8),
}

impl Cost {
    fn get(self) -> usize {
        match self {
            Cost::Zero => 0,
            Cost::One => 1,
            Cost::Small(x) => usize::from(x),
            Cost::Any(x) => x as usize,
            Cost::Pow2(x) => 1 << (x % 41),
        }
    }
}

/// An access count: 0 (ignored), a few, or enough to saturate anything.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Count {
    Zero,
    One,
    Few(u8),
    Max,
    Any(u32),
}

impl Count {
    fn get(self) -> u32 {
        match self {
            Count::Zero => 0,
            Count::One => 1,
            Count::Few(x) => u32::from(x % 5),
            Count::Max => u32::MAX,
            Count::Any(x) => x,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Insert {
        id: u8,
        cost: Cost,
    },
    Access {
        id: u8,
        count: Count,
    },
    Remove {
        id: u8,
    },
    /// One `victim` call: claims fail for ids in `pinned` (bit `id`) and for
    /// the first `fail_first % 4` offers.
    Victim {
        pinned: u64,
        fail_first: u8,
    },
    /// `victim` until it returns `None` (claims fail for `pinned`).
    Drain {
        pinned: u64,
    },
}

fn id_of(id: u8) -> u32 {
    u32::from(id % IDS)
}

/// The claim of the `n`-th offer (0-based) of id `id` in one call.
fn claim_ok(id: u32, n: usize, pinned: u64, fail_first: usize) -> bool {
    n >= fail_first && (id >= 64 || pinned >> id & 1 == 0)
}

/// What every reference model offers: the `Replacement` operations.
trait Model {
    fn insert(&mut self, id: u32, cost: usize);
    fn access(&mut self, id: u32, count: u32);
    fn remove(&mut self, id: u32);
    fn victim(&mut self, claim: &mut dyn FnMut(u32) -> bool) -> Option<u32>;
    fn len(&self) -> usize;
    fn contains(&self, id: u32) -> bool;
}

/// Removes the first element equal to `id` by key; returns it.
fn take_from<T: Copy>(q: &mut VecDeque<T>, key: impl Fn(&T) -> bool) -> Option<T> {
    let i = q.iter().position(key)?;
    q.remove(i)
}

/// LRU: front least recent, back most recent.
#[derive(Debug, Default)]
struct LruModel(VecDeque<u32>);

impl Model for LruModel {
    fn insert(&mut self, id: u32, _: usize) {
        self.0.push_back(id);
    }
    fn access(&mut self, id: u32, count: u32) {
        if count > 0 {
            if let Some(x) = take_from(&mut self.0, |&x| x == id) {
                self.0.push_back(x);
            }
        }
    }
    fn remove(&mut self, id: u32) {
        take_from(&mut self.0, |&x| x == id);
    }
    fn victim(&mut self, claim: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        for _ in 0..self.0.len() {
            let id = *self.0.front()?;
            if claim(id) {
                return self.0.pop_front();
            }
            // In use: a failed claim is an access.
            self.0.rotate_left(1);
        }
        None
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn contains(&self, id: u32) -> bool {
        self.0.contains(&id)
    }
}

/// FIFO: front oldest.
#[derive(Debug, Default)]
struct FifoModel(VecDeque<u32>);

impl Model for FifoModel {
    fn insert(&mut self, id: u32, _: usize) {
        self.0.push_back(id);
    }
    fn access(&mut self, _: u32, _: u32) {}
    fn remove(&mut self, id: u32) {
        take_from(&mut self.0, |&x| x == id);
    }
    fn victim(&mut self, claim: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        let i = (0..self.0.len()).find(|&i| claim(self.0[i]))?;
        self.0.remove(i)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn contains(&self, id: u32) -> bool {
        self.0.contains(&id)
    }
}

/// CLOCK: front under the hand, back just behind it; `(id, referenced)`.
#[derive(Debug, Default)]
struct ClockModel(VecDeque<(u32, bool)>);

impl Model for ClockModel {
    fn insert(&mut self, id: u32, _: usize) {
        self.0.push_back((id, false));
    }
    fn access(&mut self, id: u32, count: u32) {
        if count > 0 {
            if let Some(e) = self.0.iter_mut().find(|e| e.0 == id) {
                e.1 = true;
            }
        }
    }
    fn remove(&mut self, id: u32) {
        take_from(&mut self.0, |e| e.0 == id);
    }
    fn victim(&mut self, claim: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        for _ in 0..2 * self.0.len() {
            let (id, referenced) = *self.0.front()?;
            if referenced {
                self.0[0].1 = false;
            } else if claim(id) {
                self.0.pop_front();
                return Some(id);
            } else {
                // In use: a failed claim is a reference.
                self.0[0].1 = true;
            }
            self.0.rotate_left(1);
        }
        None
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn contains(&self, id: u32) -> bool {
        self.0.iter().any(|e| e.0 == id)
    }
}

/// One S3-FIFO entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u32,
    cost: usize,
    freq: u8,
}

/// S3-FIFO: two FIFOs, front oldest.
#[derive(Debug, Default)]
struct S3FifoModel {
    small: VecDeque<Entry>,
    main: VecDeque<Entry>,
}

impl S3FifoModel {
    fn cost(q: &VecDeque<Entry>) -> u128 {
        q.iter().map(|e| e.cost as u128).sum()
    }

    /// Small pays while it holds at least 10 % of the total cost, or main
    /// is empty.
    fn small_due(&self) -> bool {
        let small = Self::cost(&self.small);
        !self.small.is_empty() && (self.main.is_empty() || small * 100 >= (small + Self::cost(&self.main)) * 10)
    }

    fn promote(&mut self, mut e: Entry, freq: u8) {
        e.freq = freq;
        self.main.push_back(e);
    }
}

impl Model for S3FifoModel {
    fn insert(&mut self, id: u32, cost: usize) {
        let cost = cost.min(u32::MAX as usize);
        self.small.push_back(Entry { id, cost, freq: 0 });
    }
    fn access(&mut self, id: u32, count: u32) {
        if let Some(e) = self.small.iter_mut().chain(self.main.iter_mut()).find(|e| e.id == id) {
            e.freq = (u64::from(e.freq) + u64::from(count)).min(3) as u8;
        }
    }
    fn remove(&mut self, id: u32) {
        take_from(&mut self.small, |e| e.id == id);
        take_from(&mut self.main, |e| e.id == id);
    }
    fn victim(&mut self, claim: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        // 1. Small, while it holds its share.
        while self.small_due() {
            let e = self.small.pop_front()?;
            if e.freq > 0 {
                self.promote(e, 0);
            } else if claim(e.id) {
                return Some(e.id);
            } else {
                self.promote(e, 3);
            }
        }
        // 2. Main: four rounds.
        for _ in 0..4 * self.main.len() {
            let e = self.main.pop_front()?;
            if e.freq > 0 {
                self.promote(e, e.freq - 1);
            } else if claim(e.id) {
                return Some(e.id);
            } else {
                self.promote(e, 3);
            }
        }
        // 3. What is left in small.
        while let Some(e) = self.small.pop_front() {
            if claim(e.id) {
                return Some(e.id);
            }
            self.promote(e, 3);
        }
        None
    }
    fn len(&self) -> usize {
        self.small.len() + self.main.len()
    }
    fn contains(&self, id: u32) -> bool {
        self.small.iter().chain(&self.main).any(|e| e.id == id)
    }
}

/// One policy under test beside its model.
struct Pair {
    name: &'static str,
    policy: Replacer,
    model: Box<dyn Model>,
}

impl Pair {
    fn new(name: &'static str, policy: Policy, model: Box<dyn Model>) -> Self {
        Pair { name, policy: Replacer::new(policy), model }
    }

    /// One `victim` call on both; checks the offers and the result match.
    fn victim(&mut self, pinned: u64, fail_first: usize, step: usize) -> Option<u32> {
        let mut got_offers = Vec::new();
        let got = self.policy.victim(&mut |id| {
            let ok = claim_ok(id, got_offers.len(), pinned, fail_first);
            got_offers.push(id);
            ok
        });
        let mut want_offers = Vec::new();
        let want = self.model.victim(&mut |id| {
            let ok = claim_ok(id, want_offers.len(), pinned, fail_first);
            want_offers.push(id);
            ok
        });
        let name = self.name;
        assert_eq!(
            got_offers, want_offers,
            "{name}, op {step}: offers to claim (pinned {pinned:#x}, first {fail_first} fail)"
        );
        assert_eq!(got, want, "{name}, op {step}: victim");
        got
    }

    fn run(&mut self, op: &Op, step: usize) {
        match *op {
            Op::Insert { id, cost } => {
                let id = id_of(id);
                if !self.model.contains(id) {
                    self.policy.insert(id, cost.get());
                    self.model.insert(id, cost.get());
                }
            }
            Op::Access { id, count } => {
                self.policy.access(id_of(id), count.get());
                self.model.access(id_of(id), count.get());
            }
            Op::Remove { id } => {
                self.policy.remove(id_of(id));
                self.model.remove(id_of(id));
            }
            Op::Victim { pinned, fail_first } => {
                self.victim(pinned, usize::from(fail_first % 4), step);
            }
            Op::Drain { pinned } => {
                for _ in 0..MAX_DRAIN {
                    if self.victim(pinned, 0, step).is_none() {
                        break;
                    }
                }
                let pinned_left = (0..u32::from(IDS)).filter(|&id| pinned >> id & 1 == 1 && self.model.contains(id));
                assert_eq!(self.model.len(), pinned_left.count(), "{}, op {step}: drain left unpinned ids", self.name);
            }
        }
        assert_eq!(self.policy.len(), self.model.len(), "{}, op {step}: len after {op:?}", self.name);
        assert_eq!(self.policy.is_empty(), self.model.len() == 0);
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut pairs = [
        Pair::new("LRU", Policy::Lru, Box::<LruModel>::default()),
        Pair::new("FIFO", Policy::Fifo, Box::<FifoModel>::default()),
        Pair::new("CLOCK", Policy::Clock, Box::<ClockModel>::default()),
        Pair::new("S3-FIFO", Policy::S3Fifo, Box::<S3FifoModel>::default()),
    ];
    for (step, op) in ops.iter().take(MAX_OPS).enumerate() {
        for pair in &mut pairs {
            pair.run(op, step);
        }
    }
    // Everything left is claimable in the end, in the model's order.
    for pair in &mut pairs {
        while pair.victim(0, 0, usize::MAX).is_some() {}
        assert_eq!(pair.policy.len(), 0, "{}: not empty after the final drain", pair.name);
    }
});
