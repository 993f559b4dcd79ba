//! [`CacheGuard`]: an owned pin on a cached value.
//!
//! Owns: one pin on one allocation's state word. The guard borrows nothing:
//! the header it pins stays alive while any pin is counted, even after the
//! cache dropped the entry (the table frees an orphan only after the last
//! unpin, state INV-8), so it may outlive `remove`, `insert` of the same
//! key, `clear` and the cache itself.
//!
//! Must never: take a lock or touch the cache on drop (dropping is one
//! `fetch_add`).

use core::fmt;
use core::ops::Deref;
use core::ptr::NonNull;

use crate::handle::header::Header;

/// A pinned value from a [`Cache`](super::Cache): while it lives the bytes
/// are never discarded. Derefs to `V`.
///
/// Owned and `'static`: it holds no lock and no borrow of the cache, and is
/// `Send + Sync` when `V: Sync`, so it can cross an `.await` or a thread.
/// Dropping it unpins (one atomic add) and records an access for the
/// replacement policy.
///
/// ```
/// use discardable::{Cache, CacheGuard};
///
/// let cache: Cache<u32, str> = Cache::builder().capacity(1 << 20).build()?;
/// cache.insert(1, "one")?;
/// let guard: CacheGuard<str> = cache.get(&1).expect("just inserted");
/// drop(cache); // the guard keeps its bytes
/// assert_eq!(&*guard, "one");
/// # Ok::<(), discardable::Error>(())
/// ```
pub struct CacheGuard<V: ?Sized> {
    ptr: NonNull<V>,
    header: NonNull<Header>,
}

// SAFETY: the guard is a `&V` plus an atomic unpin on drop; `&V` is Send and
// Sync exactly when `V: Sync`. The header is reached only through atomics.
unsafe impl<V: ?Sized + Sync> Send for CacheGuard<V> {}
// SAFETY: as above.
unsafe impl<V: ?Sized + Sync> Sync for CacheGuard<V> {}

impl<V: ?Sized> CacheGuard<V> {
    /// Wraps a pin the caller holds.
    ///
    /// # Safety
    ///
    /// The caller holds one pin on `header` (counted in its state word) and
    /// hands it to the guard; `ptr` points into the pinned bytes at a valid
    /// `V`.
    pub(crate) unsafe fn adopt(ptr: NonNull<V>, header: NonNull<Header>) -> Self {
        Self { ptr, header }
    }
}

impl<V: ?Sized> Deref for CacheGuard<V> {
    type Target = V;

    #[inline(always)]
    fn deref(&self) -> &V {
        // SAFETY: our pin keeps the bytes alive (state INV-1) and the header
        // too (INV-8); the bytes hold a valid `V` copied at insertion and are
        // never written while pinned (the cache hands out no `&mut`).
        unsafe { self.ptr.as_ref() }
    }
}

impl<V: ?Sized> Drop for CacheGuard<V> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: our pin keeps the header alive (state INV-8); after this
        // unpin we never touch it again.
        unsafe { self.header.as_ref() }.state.unpin();
    }
}

impl<V: ?Sized + fmt::Debug> fmt::Debug for CacheGuard<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
