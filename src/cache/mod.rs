//! [`Cache`]: a concurrent map whose values live in discardable memory, so
//! that it shrinks under memory pressure instead of getting the process
//! killed.
//!
//! # When to use it
//!
//! Use a [`Discardable`](crate::Discardable) when your program already knows
//! where each value is (a field, a slot in your own structure) and only needs
//! "keep this unless memory runs short". Use a `Cache` when you would
//! otherwise write a map of such handles: it finds values by key, forgets a
//! key as soon as the manager discards its value (a discard notification,
//! not a failed lookup), keeps its own byte capacity, runs one computation
//! per missing key at a time (single flight, for threads and futures alike)
//! and reports what it holds.
//!
//! # The pinning rule
//!
//! A value can vanish at any moment while nobody reads it; it cannot vanish
//! while a [`CacheGuard`] for it lives. [`get`](Cache::get) returns a guard
//! or `None` (never a value that is half gone), and the guard is owned: it
//! survives `remove`, a replacing `insert`, `clear`, even dropping the cache.
//! Hold guards for as long as you read, not longer: a pinned value cannot be
//! reclaimed, so a guard kept for minutes is memory the system cannot take
//! back.
//!
//! # One budget for several caches
//!
//! Caches built with [`CacheBuilder::manager`] share that manager's budget,
//! policy and pressure thread with each other and with any
//! [`Discardable`](crate::Discardable) handle made in it; under pressure the
//! manager discards the coldest values whichever cache holds them. A
//! [`capacity`](CacheBuilder::capacity) next to a shared manager bounds that
//! one cache inside the shared budget.
//!
//! ```
//! use discardable::{Cache, CacheGuard, Manager};
//!
//! let manager = Manager::builder().limit(64 << 20).start()?;
//! let thumbnails: Cache<u64, [u8]> = Cache::builder().manager(&manager).capacity(16 << 20).build()?;
//!
//! let render = |id: u64| vec![id as u8; 4096];
//! let g: CacheGuard<[u8]> = thumbnails.get_or_insert_with(7, || render(7))?;
//! assert_eq!(g[0], 7);
//! assert!(thumbnails.contains_key(&7));
//! drop(g);
//! // Under memory pressure the value may go; then the key goes with it.
//! manager.reclaim(usize::MAX);
//! assert!(thumbnails.get(&7).is_none());
//! # Ok::<(), discardable::Error>(())
//! ```
//!
//! Owns: the shards, the single-flight protocol over them, the capacity
//! sweep, the discard sink the manager reports to, and the eviction
//! listener. Layer 8 in DESIGN.md: it imports the manager, handle and policy
//! layers and nothing above.
//!
//! Must never: hold a shard lock while it runs user code (a closure, the
//! listener) or waits for a flight; leave a key stuck behind a flight whose
//! leader is gone; or let the manager wait for a shard.

mod builder;
mod flight;
mod guard;
mod hash;
mod inner;
mod shard;
mod sketch;
mod stats;
mod table;
mod ticket;
mod value;

use core::borrow::Borrow;
use core::future::Future;
use core::hash::{BuildHasher, Hash};
use core::marker::PhantomData;
use core::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

pub use self::builder::CacheBuilder;
use self::flight::Flight;
pub use self::guard::CacheGuard;
pub use self::hash::{DefaultHashBuilder, FoldHasher};
use self::inner::Inner;
use self::shard::{Counters, Item, Removed, Shard, Slot};
pub use self::stats::{CacheStats, RemovalCause};
use self::ticket::Ticket;
pub use self::value::CacheValue;
use crate::handle::header::Header;
use crate::manager::sink::DiscardSink;
use crate::{Error, Manager};

/// An eviction listener, boxed so it does not change the cache's type.
pub(crate) type Listener<K> = Box<dyn Fn(&K, RemovalCause) + Send + Sync>;

/// A concurrent, pressure-aware cache map from `K` to values of type `V`
/// held in discardable memory. See the [module docs](crate::cache).
///
/// `V` is `[u8]`, `str`, any `T: Copy`, or `[T]` with `T: Copy`
/// ([`CacheValue`]); values are copied in. Every method takes `&self`, and
/// the cache is `Send + Sync`: share it with an `Arc` or a `static`.
///
/// ```
/// use discardable::Cache;
///
/// let cache: Cache<String, str> = Cache::builder().capacity(1 << 20).build()?;
/// cache.insert("greeting".to_string(), "hello")?;
/// assert_eq!(cache.get("greeting").as_deref(), Some("hello"));
/// let g = cache.try_get_or_insert_with("name".to_string(), || Ok::<_, discardable::Error>("world"))?;
/// assert_eq!(&*g, "world");
/// assert_eq!(cache.len(), 2);
/// # Ok::<(), discardable::Error>(())
/// ```
pub struct Cache<K, V: ?Sized, S = DefaultHashBuilder> {
    inner: Arc<Inner<K, S>>,
    _value: PhantomData<fn() -> *const V>,
}

impl<K, V: ?Sized, S> core::fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let c = &self.inner.counters;
        f.debug_struct("Cache")
            .field("capacity", &self.inner.capacity)
            .field("shards", &self.inner.shards.len())
            .field("entries", &c.entries.load(Relaxed))
            .field("bytes", &c.bytes.load(Relaxed))
            .finish()
    }
}

impl<K, V: ?Sized> Cache<K, V> {
    /// A builder with the defaults: no capacity of its own, the global
    /// manager, the default hasher, four shards per CPU.
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::default()
    }
}

/// What a lookup for a `get_or_insert_with*` found.
enum Step<'a, K, S, V: ?Sized> {
    Hit(CacheGuard<V>),
    Wait(Arc<Flight>, K),
    Lead(Ticket<'a, K, S>),
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: ?Sized + CacheValue,
    S: BuildHasher + Send + Sync + 'static,
{
    pub(crate) fn from_parts(
        manager: Manager,
        capacity: Option<usize>,
        shards: usize,
        hasher: S,
        listener: Option<Listener<K>>,
    ) -> Self {
        let inner = Arc::new_cyclic(|weak: &Weak<Inner<K, S>>| {
            let sink: Weak<dyn DiscardSink> = weak.clone();
            Inner {
                shards: (0..shards).map(|_| Shard::default()).collect(),
                shift: 32 - shards.trailing_zeros(),
                hasher,
                arena: Arc::clone(manager.arena()),
                sink: manager.add_sink(sink),
                manager,
                capacity,
                counters: Counters::default(),
                listener,
                sweep: parking_lot::Mutex::new(0),
                sketch: std::sync::OnceLock::new(),
            }
        });
        Self { inner, _value: PhantomData }
    }

    /// Copies `value` into the cache under `key`, replacing (and reporting
    /// as [`RemovalCause::Replaced`]) any value it had. Beyond the capacity
    /// it still succeeds: cold values are dropped first, so the capacity
    /// holds again when it returns (± one value).
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] for a value bigger than the whole capacity,
    /// [`Error::Layout`] or [`Error::Os`] if no memory could be had.
    pub fn insert(&self, key: K, value: &V) -> Result<(), Error> {
        let hash = inner::key_hash(self.inner.hasher.hash_one(&key));
        let cost = value.__shape().0;
        self.inner.fits(cost)?;
        if !self.inner.admits(hash, cost, || self.contains_key(&key)) {
            self.inner.reject(key);
            return Ok(());
        }
        let (entry, guard) = self.inner.create(value, hash)?;
        let mut removed = Removed::new();
        {
            let shard = self.inner.shard(hash);
            let mut map = shard.map.write();
            if let Some(i) = map.table.find(hash, |it| it.key == key) {
                let (old, live) = map.take(i, &self.inner.arena, &self.inner.counters, RemovalCause::Replaced);
                if live {
                    removed.push((old, RemovalCause::Replaced));
                }
            }
            map.put(hash, key, entry, &self.inner.counters);
            shard.apply(&mut map, &self.inner.arena, &self.inner.counters, &mut removed);
        }
        drop(guard); // published pinned: never discarded before it was in the map
        self.inner.report(removed);
        self.inner.enforce_capacity(cost);
        Ok(())
    }

    /// Pins the value under `key`: `None` if it is absent, being computed,
    /// or was discarded (then its key goes too).
    pub fn get<Q>(&self, key: &Q) -> Option<CacheGuard<V>>
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        let hash = inner::key_hash(self.inner.hasher.hash_one(key));
        let shard = self.inner.shard(hash);
        let found = {
            let map = shard.map.read();
            match map.table.find(hash, |it| it.key.borrow() == key).and_then(|i| map.table.get(i)) {
                Some(Item { slot: Slot::Ready(entry), .. }) => Some(self.inner.pin(entry)),
                _ => None,
            }
        };
        if shard.has_notices() {
            self.inner.tidy(shard);
        }
        match found {
            Some(Some(guard)) => {
                shard::tally(&shard.hits);
                Some(guard)
            }
            Some(None) => {
                // Discarded under us: take the key out now.
                shard::tally(&shard.misses);
                self.remove_if_dead(hash, key);
                None
            }
            None => {
                shard::tally(&shard.misses);
                None
            }
        }
    }

    fn remove_if_dead<Q>(&self, hash: u64, key: &Q)
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        let mut removed = Removed::new();
        {
            let mut map = self.inner.shard(hash).map.write();
            if let Some(i) = map.table.find(hash, |it| it.key.borrow() == key && shard::is_dead(it)) {
                let (k, _) = map.take(i, &self.inner.arena, &self.inner.counters, RemovalCause::Discarded);
                removed.push((k, RemovalCause::Discarded));
            }
        }
        self.inner.report(removed);
    }

    /// The value under `key`, or the one `init` computes, stored and pinned.
    /// Single flight: concurrent calls for one key run one `init`; the
    /// others block until it is done and share its value. If `init` panics,
    /// the key is released, one waiter retries, and the panic continues in
    /// this caller. The guard returned is always the value stored (or, if a
    /// concurrent `insert`, `remove` or `clear` overtook the computation,
    /// the value computed).
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    pub fn get_or_insert_with<R: Borrow<V>>(&self, key: K, init: impl FnOnce() -> R) -> Result<CacheGuard<V>, Error> {
        self.try_get_or_insert_with(key, || Ok::<R, Error>(init()))
    }

    /// [`get_or_insert_with`](Self::get_or_insert_with) with a fallible
    /// `init`: its error comes back to this caller, nothing is cached, and
    /// one waiter retries.
    ///
    /// # Errors
    ///
    /// `init`'s error, or the cache's own (as [`insert`](Self::insert))
    /// converted with `From`.
    pub fn try_get_or_insert_with<R: Borrow<V>, E: From<Error>>(
        &self,
        key: K,
        init: impl FnOnce() -> Result<R, E>,
    ) -> Result<CacheGuard<V>, E> {
        let hash = inner::key_hash(self.inner.hasher.hash_one(&key));
        let mut key = key;
        loop {
            match self.step(key, hash) {
                Step::Hit(guard) => return Ok(guard),
                Step::Wait(flight, k) => {
                    flight.wait();
                    key = k;
                }
                Step::Lead(ticket) => {
                    let value = init()?;
                    return ticket.complete(value.borrow()).map_err(E::from);
                }
            }
        }
    }

    /// [`get_or_insert_with`](Self::get_or_insert_with) for an async `init`.
    /// Waiters await without blocking a thread (no executor is assumed), and
    /// share one flight with synchronous callers of the same key. If the
    /// leading future is dropped, its waiters wake and one retries.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    pub async fn get_or_insert_with_async<R, Fut>(
        &self,
        key: K,
        init: impl FnOnce() -> Fut,
    ) -> Result<CacheGuard<V>, Error>
    where
        R: Borrow<V>,
        Fut: Future<Output = R>,
    {
        let hash = inner::key_hash(self.inner.hasher.hash_one(&key));
        let mut key = key;
        loop {
            match self.step(key, hash) {
                Step::Hit(guard) => return Ok(guard),
                Step::Wait(flight, k) => {
                    flight.ended().await;
                    key = k;
                }
                Step::Lead(ticket) => {
                    let value = init().await;
                    return ticket.complete(value.borrow());
                }
            }
        }
    }

    /// Finds `key`'s value, its flight, or places a flight of our own.
    fn step(&self, key: K, hash: u64) -> Step<'_, K, S, V> {
        if let Some(guard) = self.get(&key) {
            return Step::Hit(guard);
        }
        let inner = &*self.inner;
        let shard = inner.shard(hash);
        let mut removed = Removed::new();
        let step = {
            let mut map = shard.map.write();
            shard.apply(&mut map, &inner.arena, &inner.counters, &mut removed);
            let found = map.table.find(hash, |it| it.key == key);
            match found.and_then(|i| Some((i, map.table.get(i)?))) {
                Some((_, Item { slot: Slot::Pending(flight), .. })) => Step::Wait(Arc::clone(flight), key),
                Some((i, Item { slot: Slot::Ready(entry), .. })) => match inner.pin(entry) {
                    Some(guard) => Step::Hit(guard),
                    None => {
                        let (old, _) = map.take(i, &inner.arena, &inner.counters, RemovalCause::Discarded);
                        removed.push((old, RemovalCause::Discarded));
                        Step::Lead(inner.lead(&mut map, hash, key))
                    }
                },
                None => Step::Lead(inner.lead(&mut map, hash, key)),
            }
        };
        inner.report(removed);
        step
    }

    /// Removes `key`'s value (reported as [`RemovalCause::Removed`]);
    /// returns whether there was a live one. Guards already handed out keep
    /// their bytes.
    pub fn remove<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        let hash = inner::key_hash(self.inner.hasher.hash_one(key));
        let mut removed = Removed::new();
        let live = {
            let mut map = self.inner.shard(hash).map.write();
            match map.table.find(hash, |it| it.key.borrow() == key) {
                Some(i) => {
                    let dead = map.table.get(i).is_some_and(shard::is_dead);
                    let cause = if dead { RemovalCause::Discarded } else { RemovalCause::Removed };
                    let (k, live) = map.take(i, &self.inner.arena, &self.inner.counters, cause);
                    if live {
                        removed.push((k, cause));
                    }
                    live && !dead
                }
                None => false,
            }
        };
        self.inner.report(removed);
        live
    }

    /// Whether `key` has a live value (false once it was discarded, and
    /// while it is being computed). A `true` may be stale by the time it is
    /// read.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: ?Sized + Hash + Eq,
    {
        let hash = inner::key_hash(self.inner.hasher.hash_one(key));
        let map = self.inner.shard(hash).map.read();
        matches!(
            map.table.find(hash, |it| it.key.borrow() == key).and_then(|i| map.table.get(i)),
            Some(Item { slot: Slot::Ready(e), .. }) if !e.header().state.load().is_discarded()
        )
    }

    /// Live entries (discarded ones leave within one manager pass).
    pub fn len(&self) -> usize {
        self.inner.counters.entries.load(Relaxed)
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the values cost, in the unit of the capacity (bytes of
    /// discardable memory: whole pages for large values, the slot size for
    /// small ones).
    pub fn weighted_size(&self) -> usize {
        self.inner.counters.bytes.load(Relaxed)
    }

    /// The capacity in bytes, if the cache has one of its own.
    pub fn capacity(&self) -> Option<usize> {
        self.inner.capacity
    }

    /// The manager this cache's values live in.
    pub fn manager(&self) -> &Manager {
        &self.inner.manager
    }

    /// Removes every entry (reported as [`RemovalCause::Cleared`]).
    /// Computations in flight finish, but their values are not stored.
    pub fn clear(&self) {
        for shard in self.inner.shards.iter() {
            let mut removed = Removed::new();
            {
                let mut map = shard.map.write();
                while let Some(i) = (0..map.table.slots()).find(|&i| map.table.get(i).is_some()) {
                    let (k, live) = map.take(i, &self.inner.arena, &self.inner.counters, RemovalCause::Cleared);
                    if live {
                        removed.push((k, RemovalCause::Cleared));
                    }
                }
            }
            self.inner.report(removed);
        }
    }

    /// A snapshot of the counters; walks the shards to count dead entries.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        let (mut dead, mut hits, mut misses) = (0, 0, 0);
        let mut overhead = size_of::<Inner<K, S>>()
            + self.inner.shards.len() * size_of::<Shard<K>>()
            + self.inner.sketch.get().map_or(0, sketch::Sketch::heap_bytes);
        // The manager's table and policy hold a slot per allocation: this
        // cache's share, at the table's average per allocation (exact for a
        // cache with a manager of its own).
        let (table_bytes, tracked) = self.inner.manager.table_bytes();
        let entries = c.entries.load(Relaxed);
        overhead += (table_bytes as u128 * entries as u128 / tracked.max(1) as u128) as usize;
        for shard in self.inner.shards.iter() {
            hits += shard.hits.load(Relaxed);
            misses += shard.misses.load(Relaxed);
            let map = shard.map.read();
            dead += map.dead();
            overhead += map.table.heap_bytes() + map.table.len() * size_of::<Header>();
        }
        CacheStats {
            hits,
            misses,
            inserts: c.inserts.load(Relaxed),
            discarded: c.discarded.load(Relaxed),
            removed: c.removed.load(Relaxed),
            entries: c.entries.load(Relaxed) as u64,
            bytes: c.bytes.load(Relaxed) as u64,
            overhead_bytes: overhead as u64,
            dead_entries: dead as u64,
            listener_panics: c.listener_panics.load(Relaxed),
        }
    }
}
