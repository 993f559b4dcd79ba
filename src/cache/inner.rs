//! The shared state of a cache (`Inner`): its shards, counters, manager,
//! listener and admission sketch, and the operations under the public
//! methods: creating values pinned, pinning entries, admission, the
//! capacity sweep, and receiving the manager's discard notices.
//!
//! Owns: every write to the cache's counters outside a shard's map, and the
//! rule that the listener runs with no lock held.
//!
//! Must never: run user code (the listener) under a shard lock or the
//! sweep's lock, or make the manager wait for a shard.

use core::hash::BuildHasher;
use core::sync::atomic::Ordering::Relaxed;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use super::flight::Flight;
use super::shard::{self, Counters, Entry, Item, Map, Removed, Shard, Slot};
use super::sketch;
use super::ticket::Ticket;
use super::value::{self, CacheValue};
use super::{CacheGuard, Listener, RemovalCause};
use crate::handle::arena::Arena;
use crate::handle::header::Birth;
use crate::manager::sink::DiscardSink;
use crate::{Error, Manager};

/// The hash the cache keys everything on, from the hasher's 64 bits: 32
/// bits, never zero, carried in a `u64`. Its top bits pick the shard, its low
/// bits the slot in the shard's table (distinct bits while a shard's table
/// has fewer than `2^32 / shards` slots; beyond, slots still work but
/// cluster); the table item, the admission sketch and the header's discard
/// tag all hold this value, so a discard notice finds its item by it. Four
/// bytes in the item instead of eight: with the niche of its non-zero value,
/// an item of a `u64` key takes 40 bytes, not 56.
#[inline]
pub(super) fn key_hash(full: u64) -> u64 {
    u64::from(((full ^ (full >> 32)) as u32).max(1))
}

/// Slots one sweep step visits in a shard before it moves to the next.
const SWEEP_STEP: usize = 64;

/// The shared part: also the manager's discard sink.
pub(crate) struct Inner<K, S> {
    pub(super) shards: Box<[Shard<K>]>,
    /// `32 - log2(shards)`: a key hash's shard is its top bits.
    pub(super) shift: u32,
    pub(super) hasher: S,
    pub(super) manager: Manager,
    pub(super) arena: Arc<Arena>,
    pub(super) capacity: Option<usize>,
    pub(super) counters: Counters,
    pub(super) listener: Option<Listener<K>>,
    /// Our sink id in the manager.
    pub(super) sink: u32,
    /// Serialises the capacity sweep; holds the hand's shard index.
    pub(super) sweep: parking_lot::Mutex<usize>,
    /// Admission when full (caches with a capacity only), sized by the
    /// entries the cache held when it first filled up.
    pub(super) sketch: std::sync::OnceLock<sketch::Sketch>,
}

impl<K, S> Inner<K, S> {
    /// The index of `hash`'s shard: its top bits.
    #[inline]
    pub(super) fn shard_index(&self, hash: u64) -> usize {
        // `checked_shr`: a single shard has shift 32.
        (hash as u32).checked_shr(self.shift).unwrap_or(0) as usize
    }

    /// `hash`'s shard.
    #[inline]
    pub(super) fn shard(&self, hash: u64) -> &Shard<K> {
        &self.shards[self.shard_index(hash)]
    }
}

impl<K, S: BuildHasher> Inner<K, S> {
    /// Pins a live entry: a guard, or `None` if it was discarded.
    #[inline]
    pub(super) fn pin<V: ?Sized + CacheValue>(&self, entry: &Entry) -> Option<CacheGuard<V>> {
        // The value's line and the header's come from memory at once; the
        // pin (a locked RMW) would otherwise hold the value's load back.
        if let Some(data) = entry.data_hint() {
            crate::os::prefetch(data.as_ptr());
        }
        let header = entry.header();
        if !header.pin(&self.arena) {
            return None;
        }
        let (data, meta) = entry.data_and_meta();
        let ptr = V::__from_raw(data, meta);
        // SAFETY: we just took one pin for the guard; `data` holds the `V`
        // copied in at creation with this `meta`.
        Some(unsafe { CacheGuard::adopt(ptr, entry.header) })
    }

    /// A new allocation holding a copy of `value`, published pinned (so it
    /// cannot be discarded before it is in the map), tagged with `hash` for
    /// the discard sink (a key hash, [`key_hash`], fits the tag's 32 bits).
    /// Returns the entry and the creator's pin.
    pub(super) fn create<V: ?Sized + CacheValue>(&self, value: &V, hash: u64) -> Result<(Entry, CacheGuard<V>), Error> {
        let (size, align, meta) = value.__shape();
        self.fits(size)?;
        let (block, arena) = self.manager.alloc_block(size, align, false)?;
        // SAFETY: the block is fresh and ours, `size` bytes aligned to
        // `align`; it cannot overlap `value`.
        unsafe { value::copy_to(value, block.ptr) };
        let header = arena.register_as(block, Birth { pinned: true, sink: self.sink, tag: hash as u32 });
        // SAFETY: born with one pin (ours), handed to the guard; the bytes
        // hold the copy of `value` whose shape had `meta`.
        let guard = unsafe { CacheGuard::adopt(V::__from_raw(block.ptr, meta), header) };
        Ok((Entry::new(header, block.ptr, meta), guard))
    }

    /// [`Error::TooLarge`] for a value bigger than the whole capacity.
    pub(super) fn fits(&self, size: usize) -> Result<(), Error> {
        match self.capacity {
            Some(capacity) if size > capacity => Err(Error::TooLarge { cost: size, capacity }),
            _ => Ok(()),
        }
    }

    /// Whether `more` bytes would take the cache past its capacity.
    #[inline]
    fn over_capacity(&self, more: usize) -> bool {
        self.capacity.is_some_and(|c| self.counters.bytes.load(Relaxed).saturating_add(more) > c)
    }

    /// Whether `more` bytes would take the manager's arena past the
    /// ceiling its thread last published (`Manager::ceiling`: the room
    /// before it would reclaim). The cache is then full as at its capacity:
    /// its own sweep and admission choose what goes, not the manager's
    /// reclaim.
    #[inline]
    fn over_ceiling(&self, more: usize) -> bool {
        self.arena.held().saturating_add(more) > self.manager.ceiling()
    }

    /// Admission (TinyLFU, `sketch.rs`): counts this request to store
    /// `hash` and says whether to keep it. Always while the value fits (in
    /// the capacity and under the manager's ceiling), or
    /// if the key is resident (`resident` is asked only when full); when
    /// full, only if the key was asked for more often, lately, than the
    /// entry the sweep would drop for it (which then goes in
    /// [`enforce_capacity`](Self::enforce_capacity): the hand stays on it).
    /// Must not be called under a shard lock (it takes them).
    pub(super) fn admits(&self, hash: u64, cost: usize, resident: impl FnOnce() -> bool) -> bool {
        let full = self.over_capacity(cost) || self.over_ceiling(cost);
        let sketch = match self.sketch.get() {
            Some(sketch) => sketch,
            None if !full => return true,
            None => self.sketch.get_or_init(|| sketch::Sketch::new(self.counters.entries.load(Relaxed))),
        };
        sketch.increment(hash);
        if !full || resident() {
            return true;
        }
        let mut removed = Removed::new();
        let victim = {
            let mut hand = self.sweep.lock();
            let mut budget = self.sweep_budget();
            self.next_victim(&mut hand, &mut budget, &mut removed, |map, i, _| {
                map.table.get(i).filter(|item| !shard::is_dead(item)).map(|item| u64::from(item.hash.get()))
            })
        };
        self.report(removed);
        match victim {
            // A dead victim, or none unpinned: nothing is lost by admitting.
            None | Some(None) => true,
            Some(Some(victim)) => sketch.estimate(hash) > sketch.estimate(victim),
        }
    }

    /// Counts and reports a value the admission turned away.
    /// It counts as inserted and at once discarded (to honour the capacity).
    pub(super) fn reject(&self, key: K) {
        self.counters.inserts.fetch_add(1, Relaxed);
        self.counters.discarded.fetch_add(1, Relaxed);
        self.report(vec![(key, RemovalCause::Discarded)]);
    }

    /// Places a flight for `key` (absent from `map`) and returns its ticket.
    pub(super) fn lead(&self, map: &mut Map<K>, hash: u64, key: K) -> Ticket<'_, K, S> {
        let flight = Arc::new(Flight::default());
        map.table.insert(Item::new(hash, key, Slot::Pending(Arc::clone(&flight))));
        Ticket { inner: self, hash, flight, done: false }
    }

    /// Runs the listener for each removed key, outside every shard lock.
    pub(super) fn report(&self, removed: Removed<K>) {
        let Some(listener) = &self.listener else { return };
        for (key, cause) in removed {
            if std::panic::catch_unwind(AssertUnwindSafe(|| listener(&key, cause))).is_err() {
                self.counters.listener_panics.fetch_add(1, Relaxed);
            }
        }
    }

    /// Applies `shard`'s notices if its lock is free; `false` if some wait.
    pub(super) fn tidy(&self, shard: &Shard<K>) -> bool {
        let mut removed = Removed::new();
        let done = shard.try_apply(&self.arena, &self.counters, &mut removed);
        self.report(removed);
        done
    }

    /// Sweep visits enough to spend every credit in every slot (a table is
    /// at least 7/16 full once it has grown, so slots < 3 x entries).
    fn sweep_budget(&self) -> usize {
        let slots = 3 * self.counters.entries.load(Relaxed) + 8 * self.shards.len();
        (usize::from(shard::MAX_CREDIT) + 2) * slots + SWEEP_STEP
    }

    /// Walks the shards from the sweep's `hand` (the caller holds the
    /// sweep's lock), spending `budget` visits, until one names a victim
    /// ([`Map::victim`]); runs `then` on it with that shard's write lock
    /// held. `None` if the budget ran out first. The hand stays on the
    /// victim's shard, so the next call finds the same victim unless it was
    /// read meanwhile.
    fn next_victim<R>(
        &self,
        hand: &mut usize,
        budget: &mut usize,
        removed: &mut Removed<K>,
        then: impl FnOnce(&mut Map<K>, usize, &mut Removed<K>) -> R,
    ) -> Option<R> {
        while *budget > 0 {
            let shard = &self.shards[*hand % self.shards.len()];
            let mut map = shard.map.write();
            // Notices first: applying them moves items between slots.
            shard.apply(&mut map, &self.arena, &self.counters, removed);
            let (victim, visited) = map.victim(SWEEP_STEP, self.sketch.get());
            *budget = budget.saturating_sub(visited.max(1));
            if let Some(i) = victim {
                return Some(then(&mut map, i, removed));
            }
            // Move on once this shard gave what one step could.
            *hand = hand.wrapping_add(1);
        }
        None
    }

    /// Drops cold values (GCLOCK over the shards) until the capacity holds
    /// and, if an insert of `added` bytes took the manager's arena past its
    /// ceiling, as much again (never more: other holders' bytes are not
    /// ours to make up for), or until enough rounds to spend every credit
    /// found nothing unpinned.
    pub(super) fn enforce_capacity(&self, added: usize) {
        let mut ceiling_debt = if self.over_ceiling(0) { added.max(1) } else { 0 };
        if !self.over_capacity(0) && ceiling_debt == 0 {
            return;
        }
        let mut removed = Removed::new();
        {
            let mut hand = self.sweep.lock();
            let mut budget = self.sweep_budget();
            while self.over_capacity(0) || (ceiling_debt > 0 && self.over_ceiling(0)) {
                let before = self.counters.bytes.load(Relaxed);
                let dropped = self.next_victim(&mut hand, &mut budget, &mut removed, |map, i, removed| {
                    let (key, _) = map.take(i, &self.arena, &self.counters, RemovalCause::Discarded);
                    removed.push((key, RemovalCause::Discarded));
                });
                if dropped.is_none() {
                    break;
                }
                let freed = before.saturating_sub(self.counters.bytes.load(Relaxed));
                ceiling_debt = ceiling_debt.saturating_sub(freed.max(1));
            }
        }
        // The listener may call back into the cache (and sweep again): run
        // it with the sweep's lock released too.
        self.report(removed);
    }
}

impl<K, S> DiscardSink for Inner<K, S>
where
    K: Send + Sync,
    S: BuildHasher + Send + Sync,
{
    fn discarded(&self, tags: &[u64]) -> bool {
        let mut per_shard: Vec<Vec<u64>> = vec![Vec::new(); self.shards.len()];
        for &hash in tags {
            per_shard[self.shard_index(hash)].push(hash);
        }
        for (shard, hashes) in self.shards.iter().zip(per_shard) {
            if !hashes.is_empty() {
                shard.post(hashes);
            }
        }
        self.flush()
    }

    fn flush(&self) -> bool {
        let mut pending = false;
        for shard in self.shards.iter() {
            pending |= !self.tidy(shard);
        }
        pending
    }
}

impl<K, S> Drop for Inner<K, S> {
    fn drop(&mut self) {
        self.manager.remove_sink(self.sink);
        for shard in self.shards.iter_mut() {
            let map = shard.map.get_mut();
            for item in map.table.drain() {
                if let Slot::Ready(entry) = item.slot {
                    // SAFETY: the map owned the handle and forgets it here;
                    // guards still pinning it keep it alive (state INV-8).
                    unsafe { self.arena.drop_owner(entry.header) };
                }
            }
        }
    }
}
