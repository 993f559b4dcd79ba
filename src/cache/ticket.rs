//! The leader's side of single flight: a [`Ticket`] ends its flight exactly
//! once, whatever the leader does (stores the value, errs, panics, or its
//! future is dropped), so no key stays stuck behind a flight whose leader
//! is gone.
//!
//! Must never: end a flight while holding the shard lock it took (waiters
//! retake it at once).

use core::hash::BuildHasher;
use core::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::flight::Flight;
use super::inner::Inner;
use super::shard::{Map, Removed, Slot};
use super::value::CacheValue;
use super::{CacheGuard, RemovalCause};
use crate::Error;

/// The leader's side of a flight: ends it exactly once, however the leader
/// leaves (value stored, error, panic, future dropped).
pub(crate) struct Ticket<'a, K, S> {
    pub(super) inner: &'a Inner<K, S>,
    pub(super) hash: u64,
    pub(super) flight: Arc<Flight>,
    pub(super) done: bool,
}

impl<K, S> Ticket<'_, K, S> {
    /// The slot of our placeholder, if nobody removed or replaced it.
    fn find(&self, map: &Map<K>) -> Option<usize> {
        map.table.find(self.hash, |it| matches!(&it.slot, Slot::Pending(f) if Arc::ptr_eq(f, &self.flight)))
    }
}

impl<K, S: BuildHasher> Ticket<'_, K, S> {
    /// Stores `value` in place of the placeholder and ends the flight.
    pub(super) fn complete<V: ?Sized + CacheValue>(mut self, value: &V) -> Result<CacheGuard<V>, Error> {
        let inner = self.inner;
        let cost = value.__shape().0;
        let (entry, guard) = inner.create(value, self.hash)?;
        // Waiters share the value: admit it whatever the sketch says (the
        // map's placeholder and this ticket hold two references). Asked
        // before the shard lock (the admission sweeps, which takes shard
        // locks), and again under it for a waiter that joined meanwhile.
        let waited = || Arc::strong_count(&self.flight) > 2;
        let admitted = waited() || inner.admits(self.hash, cost, || false);
        let mut removed = Removed::new();
        {
            let shard = inner.shard(self.hash);
            let mut map = shard.map.write();
            match self.find(&map) {
                Some(i) if admitted || waited() => map.fulfil(i, entry, &inner.counters),
                Some(i) => {
                    // Turned away: the caller still gets the value it
                    // computed (an orphan, freed after its last unpin).
                    let item = map.table.remove(i).expect("the placeholder");
                    // SAFETY: we own the fresh handle and drop it once, here.
                    unsafe { inner.arena.drop_owner(entry.header) };
                    inner.counters.inserts.fetch_add(1, Relaxed);
                    inner.counters.discarded.fetch_add(1, Relaxed);
                    removed.push((item.key, RemovalCause::Discarded));
                }
                // Overtaken by `insert`, `remove` or `clear`: the newer state
                // stands; our guard keeps the value we computed (an orphan,
                // freed after its last unpin).
                None => {
                    // SAFETY: we own the fresh handle and drop it once, here.
                    unsafe { inner.arena.drop_owner(entry.header) };
                }
            }
            shard.apply(&mut map, &inner.arena, &inner.counters, &mut removed);
        }
        self.done = true;
        self.flight.end();
        inner.report(removed);
        inner.enforce_capacity(cost);
        Ok(guard)
    }
}

impl<K, S> Drop for Ticket<'_, K, S> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Error, panic or a dropped future: release the key, wake waiters.
        {
            let mut map = self.inner.shard(self.hash).map.write();
            if let Some(i) = self.find(&map) {
                map.table.remove(i);
            }
        }
        self.flight.end();
    }
}
