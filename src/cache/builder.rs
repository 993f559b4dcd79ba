//! [`CacheBuilder`]: how a [`Cache`](super::Cache) is configured.
//!
//! Owns: validating the options and choosing the manager (its own, a shared
//! one, or the global one). Every contradiction is an `Err` from
//! [`build`](CacheBuilder::build), never a panic.
//!
//! Must never: start a manager before the options are known to be valid.

use core::hash::{BuildHasher, Hash};
use core::marker::PhantomData;

use super::hash::DefaultHashBuilder;
use super::{Cache, Listener, RemovalCause};
use crate::{Error, Manager, Policy};

/// The most shards a cache may have: a key's shard is the top bits of its
/// 32-bit hash ([`super::inner::key_hash`]), and the bits below them place it
/// in the shard's table.
const MAX_SHARDS: usize = 1 << 16;

/// Configures a [`Cache`](super::Cache); from [`Cache::builder`](super::Cache::builder).
///
/// ```
/// use discardable::{Cache, Manager, RemovalCause};
///
/// // A cache with a budget (and a manager) of its own:
/// let own: Cache<u64, [u8]> = Cache::builder().capacity(64 << 20).shards(16).build()?;
/// // Two caches sharing one budget, one of them with a capacity inside it:
/// let manager = Manager::builder().limit(256 << 20).start()?;
/// let a: Cache<String, str> = Cache::builder().manager(&manager).build()?;
/// let b: Cache<u32, [u32]> = Cache::builder()
///     .manager(&manager)
///     .capacity(8 << 20)
///     .eviction_listener(|key: &u32, cause| assert!(cause != RemovalCause::Cleared || *key > 0))
///     .build()?;
/// # let _ = (own, a, b);
/// # Ok::<(), discardable::Error>(())
/// ```
pub struct CacheBuilder<K, V: ?Sized, S = DefaultHashBuilder> {
    capacity: Option<usize>,
    shards: Option<usize>,
    manager: Option<Manager>,
    policy: Option<Policy>,
    hasher: S,
    listener: Option<Listener<K>>,
    _value: PhantomData<fn() -> *const V>,
}

impl<K, V: ?Sized, S: core::fmt::Debug> core::fmt::Debug for CacheBuilder<K, V, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("capacity", &self.capacity)
            .field("shards", &self.shards)
            .field("manager", &self.manager.is_some())
            .field("policy", &self.policy)
            .field("hasher", &self.hasher)
            .field("listener", &self.listener.is_some())
            .finish()
    }
}

impl<K, V: ?Sized> Default for CacheBuilder<K, V> {
    fn default() -> Self {
        Self {
            capacity: None,
            shards: None,
            manager: None,
            policy: None,
            hasher: DefaultHashBuilder::default(),
            listener: None,
            _value: PhantomData,
        }
    }
}

impl<K, V: ?Sized, S> CacheBuilder<K, V, S> {
    /// The most bytes the cache's values may cost (their discardable pages
    /// or slots). Inserts beyond it succeed and drop cold values to make
    /// room. Without [`manager`](Self::manager) the cache gets a manager
    /// of its own with this budget; with one, it is a capacity inside the
    /// shared budget. `0` is an error from [`build`](Self::build).
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// Shares `manager`'s budget, policy and pressure thread with its other
    /// caches and handles.
    pub fn manager(mut self, manager: &Manager) -> Self {
        self.manager = Some(manager.clone());
        self
    }

    /// The replacement policy of the cache's own manager (which values go
    /// first under memory pressure). Only for a cache with its own
    /// manager: with [`manager`](Self::manager) it is an error.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// How many independently locked shards (rounded up to a power of two;
    /// `0` and more than 65536 are errors). Default: four per CPU, at least
    /// 8, at most 256.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Hashes keys with `hasher` instead of the default (a seeded
    /// folded-multiply hash, [`DefaultHashBuilder`]).
    pub fn hasher<S2>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            capacity: self.capacity,
            shards: self.shards,
            manager: self.manager,
            policy: self.policy,
            hasher,
            listener: self.listener,
            _value: PhantomData,
        }
    }

    /// Called with each key that leaves the cache and why. It runs with no
    /// shard lock held, possibly on the manager thread, may call back into
    /// the cache, and a panic in it is caught and counted
    /// ([`CacheStats::listener_panics`](super::CacheStats::listener_panics)).
    pub fn eviction_listener(mut self, listener: impl Fn(&K, RemovalCause) + Send + Sync + 'static) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }
}

impl<K, V, S> CacheBuilder<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: ?Sized + super::CacheValue,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Validates the options and builds the cache.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroLimit`] for a zero capacity, [`Error::Config`] for zero
    /// shards or a policy next to a shared manager, and whatever starting a
    /// manager of its own returns.
    pub fn build(self) -> Result<Cache<K, V, S>, Error> {
        if self.capacity == Some(0) {
            return Err(Error::ZeroLimit);
        }
        let shards = match self.shards {
            Some(0) => return Err(Error::Config("a cache needs at least one shard")),
            Some(n) if n > MAX_SHARDS => return Err(Error::Config("too many shards (at most 65536)")),
            Some(n) => n.next_power_of_two(),
            None => {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                (cpus * 4).next_power_of_two().clamp(8, 256)
            }
        };
        let manager = match (self.manager, self.capacity) {
            (Some(_), _) if self.policy.is_some() => {
                return Err(Error::Config("`policy` configures a cache's own manager; a shared manager has its own"))
            }
            (Some(m), _) => m,
            (None, Some(capacity)) => {
                // The cache's own sweep keeps it at its capacity; the manager
                // answers memory pressure, with a little headroom above the
                // capacity as a backstop.
                let mut b = Manager::builder().limit(capacity.saturating_add(capacity / 8));
                if let Some(policy) = self.policy {
                    b = b.policy(policy);
                }
                b.start()?
            }
            (None, None) => match self.policy {
                Some(policy) => Manager::builder().policy(policy).start()?,
                None => Manager::global().clone(),
            },
        };
        Ok(Cache::from_parts(manager, self.capacity, shards, self.hasher, self.listener))
    }
}
