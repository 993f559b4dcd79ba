//! Typed handles to discardable memory: [`Discardable`], [`Pinned`] and
//! [`PinnedMut`].
//!
//! Owns: the user-facing side of the pin/discard protocol. A handle owns its
//! allocation like a `Box` and is `Weak`-like in [`Discardable::upgrade`]:
//! while a guard lives the bytes stay; once the manager discarded them every
//! later upgrade returns `None`. The protocol itself is in [`state`]; the
//! bytes live in the arena's [`store`].
//!
//! Neither guard is `core::pin::Pin`: "pinned" here means "protected from
//! discard", the domain word of the seed paper and of Chromium.
//!
//! Must never: run `T`'s destructor (handles hold `T: Copy`), read the bytes
//! without a pin, or touch a header after marking it dropped.

pub(crate) mod arena;
mod bytes;
pub(crate) mod header;
mod lazy;
mod raw;
pub(crate) mod state;
pub(crate) mod store;

use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use std::sync::Arc;

use self::arena::Arena;
use self::header::{Birth, Header};
use self::state::State;
use self::store::Block;

/// A handle to a value the system may discard while it is not pinned.
///
/// Like [`std::sync::Weak`], it must be upgraded to reach the value:
/// [`upgrade`](Self::upgrade) returns a [`Pinned`] guard, or `None` once the
/// bytes were discarded. Like [`Box`], it uniquely owns the allocation (it is
/// not `Clone`; share it with an `Arc`), which is what makes
/// [`upgrade_mut`](Self::upgrade_mut) sound.
///
/// `T` must be `Copy` to create one: a discarded value's destructor could
/// never run.
///
/// ```
/// use discardable::{Discardable, Manager};
///
/// let manager = Manager::builder().limit(1 << 20).start()?;
/// let decoded = Discardable::new_in([7u8; 64], &manager);
/// match decoded.upgrade() {
///     Some(bytes) => assert_eq!(bytes[3], 7),
///     None => { /* discarded under pressure: recompute */ }
/// }
/// # Ok::<(), discardable::Error>(())
/// ```
pub struct Discardable<T: ?Sized> {
    ptr: NonNull<T>,
    header: NonNull<Header>,
    arena: Arc<Arena>,
    _owns: PhantomData<T>,
}

// SAFETY: the handle owns its `T` like a `Box`; moving it moves that
// ownership, so `T: Send` suffices. The header is shared with the manager
// only through atomics.
unsafe impl<T: ?Sized + Send> Send for Discardable<T> {}
// SAFETY: `&Discardable<T>` only gives out `&T` (through `Pinned`), so
// sharing needs `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for Discardable<T> {}

impl<T: ?Sized> Discardable<T> {
    /// The handle of a fresh `block` of `arena` holding a valid `T` at
    /// `ptr`, published to the manager as `birth` says. The constructors
    /// (`manager/handles.rs`, where the manager is in sight) all end here.
    pub(crate) fn from_block(block: Block, ptr: NonNull<T>, arena: &Arc<Arena>, birth: Birth) -> Self {
        let header = arena.register_as(block, birth);
        Self { ptr, header, arena: Arc::clone(arena), _owns: PhantomData }
    }

    #[inline(always)]
    fn state(&self) -> &State {
        // SAFETY: the header outlives the handle: only the table frees it,
        // and only after `Drop` marked it dropped (header.rs).
        unsafe { &self.header.as_ref().state }
    }

    /// One `fetch_add`, and the slow path (waiting, lazy-mode revival) only
    /// when a flag is set.
    #[inline(always)]
    fn pin(&self) -> bool {
        // SAFETY: the header lives as long as the handle (see `state`).
        unsafe { self.header.as_ref() }.pin(&self.arena)
    }

    /// Pins the value: `Some(guard)` while its bytes are alive, `None` once
    /// they were discarded (and forever after).
    ///
    /// Lock-free: one atomic read-modify-write, no system call, no epoch.
    #[inline]
    pub fn upgrade(&self) -> Option<Pinned<'_, T>> {
        if self.pin() {
            Some(Pinned { ptr: self.ptr, state: self.state(), _borrow: PhantomData })
        } else {
            None
        }
    }

    /// Pins the value for writing. The guard is unique: `&mut self` rules
    /// out any other guard.
    #[inline]
    pub fn upgrade_mut(&mut self) -> Option<PinnedMut<'_, T>> {
        if self.pin() {
            Some(PinnedMut { ptr: self.ptr, state: self.state(), _borrow: PhantomData })
        } else {
            None
        }
    }

    /// Whether the bytes have been discarded. A `false` may be stale by the
    /// time it is read; a `true` is final.
    pub fn is_discarded(&self) -> bool {
        self.state().load().is_discarded()
    }

    /// Discards the bytes now if nobody pins them; returns whether this call
    /// discarded them. Useful to exercise the recovery path.
    ///
    /// ```
    /// # let manager = discardable::Manager::builder().limit(1 << 20).start()?;
    /// let d = discardable::Discardable::new_in(5u32, &manager);
    /// let guard = d.upgrade().unwrap();
    /// assert!(!d.discard(), "pinned");
    /// drop(guard);
    /// assert!(d.discard());
    /// assert!(d.upgrade().is_none());
    /// # Ok::<(), discardable::Error>(())
    /// ```
    pub fn discard(&self) -> bool {
        if !self.state().try_discard() {
            return false;
        }
        // SAFETY: the header lives as long as the handle (see `state`).
        self.arena.release_discarded(unsafe { self.header.as_ref() });
        true
    }

    /// What the allocation costs the OS in bytes (whole pages for a span,
    /// the slot size for a small one).
    pub fn cost(&self) -> usize {
        // SAFETY: the header lives as long as the handle (see `state`).
        unsafe { self.header.as_ref() }.cost()
    }
}

impl<T> Discardable<[T]> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.ptr.len()
    }

    /// Whether the slice has no elements.
    pub fn is_empty(&self) -> bool {
        self.ptr.len() == 0
    }
}

impl<T: ?Sized> Drop for Discardable<T> {
    fn drop(&mut self) {
        // SAFETY: the handle owns the header, drops it once, here; a guard
        // forgotten with `mem::forget` only leaks the bytes (state INV-8).
        unsafe { self.arena.drop_owner(self.header) };
    }
}

impl<T: ?Sized> fmt::Debug for Discardable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state().load();
        f.debug_struct("Discardable")
            .field("cost", &self.cost())
            .field("pins", &s.pins())
            .field("discarded", &s.is_discarded())
            .finish()
    }
}

/// A shared pin: while it lives the bytes are never discarded. Derefs to
/// `T`. Dropping it unpins and records an access for the policy.
///
/// It is `Send` and `Sync` when `T: Sync`, so it may be held across an
/// `.await`. Methods of its own would be associated functions, so they never
/// shadow `T`'s.
pub struct Pinned<'a, T: ?Sized> {
    ptr: NonNull<T>,
    state: &'a State,
    _borrow: PhantomData<&'a T>,
}

// SAFETY: a `Pinned` is a `&T` plus an atomic unpin on drop; `&T` is Send
// and Sync exactly when `T: Sync`.
unsafe impl<T: ?Sized + Sync> Send for Pinned<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for Pinned<'_, T> {}

impl<T: ?Sized> Deref for Pinned<'_, T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: the pin keeps the bytes alive (state INV-1); they hold a
        // valid `T` written at creation; no `PinnedMut` coexists because it
        // needs `&mut` to the handle this guard borrows.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ?Sized> Drop for Pinned<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        self.state.unpin();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Pinned<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A unique pin: like [`Pinned`], and also derefs mutably.
pub struct PinnedMut<'a, T: ?Sized> {
    ptr: NonNull<T>,
    state: &'a State,
    _borrow: PhantomData<&'a mut T>,
}

// SAFETY: a `PinnedMut` is a `&mut T` plus an atomic unpin on drop.
unsafe impl<T: ?Sized + Send> Send for PinnedMut<'_, T> {}
// SAFETY: as above; `&mut T` is Sync when `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for PinnedMut<'_, T> {}

impl<T: ?Sized> Deref for PinnedMut<'_, T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: pinned (state INV-1), valid `T`, unique (`&mut` borrow).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for PinnedMut<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: pinned (state INV-1), valid `T`, and this guard is the only
        // access path (it borrows the unique handle mutably).
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: ?Sized> Drop for PinnedMut<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        self.state.unpin();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for PinnedMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A new allocation, published already pinned: its bytes cannot be
/// discarded before its creator lets go. Derefs (mutably) to `T`;
/// [`into_handle`](Fresh::into_handle) unpins and returns the handle.
///
/// What [`Discardable::new_pinned_in`] and [`Discardable::fill_in`] return:
/// a fresh allocation made under a tight budget can otherwise be discarded
/// before its creator's first [`upgrade`](Discardable::upgrade).
///
/// ```
/// use discardable::{Discardable, Manager};
///
/// let manager = Manager::builder().limit(1 << 20).start()?;
/// let mut fresh = Discardable::<[u8]>::fill_in(4096, &manager, |page| page[0] = 1)?;
/// fresh[1] = 2; // still pinned, and unique
/// let handle: Discardable<[u8]> = fresh.into_handle();
/// # let _ = handle;
/// # Ok::<(), discardable::Error>(())
/// ```
pub struct Fresh<T: ?Sized> {
    handle: core::mem::ManuallyDrop<Discardable<T>>,
}

impl<T: ?Sized> Fresh<T> {
    /// Wraps a handle born pinned (`Birth::pinned`), taking over that pin.
    pub(crate) fn adopt(handle: Discardable<T>) -> Self {
        Self { handle: core::mem::ManuallyDrop::new(handle) }
    }

    /// The handle, for more (shared) pins while this one lives.
    pub fn handle(&self) -> &Discardable<T> {
        &self.handle
    }

    /// Unpins and returns the handle: from now on the bytes may be
    /// discarded whenever nobody pins them.
    pub fn into_handle(self) -> Discardable<T> {
        let mut this = core::mem::ManuallyDrop::new(self);
        this.handle.state().unpin();
        // SAFETY: `this` is never dropped, so the handle is taken out once.
        unsafe { core::mem::ManuallyDrop::take(&mut this.handle) }
    }
}

impl<T: ?Sized> Deref for Fresh<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: our pin keeps the bytes alive (state INV-1) and they hold
        // a valid `T`; only `&self` methods reach them.
        unsafe { self.handle.ptr.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for Fresh<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: pinned (INV-1), valid; `&mut self` excludes any guard made
        // through `handle()`, which borrows `self`.
        unsafe { self.handle.ptr.as_mut() }
    }
}

impl<T: ?Sized> Drop for Fresh<T> {
    fn drop(&mut self) {
        self.handle.state().unpin();
        // SAFETY: dropped once, here, after our pin is gone.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.handle) };
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Fresh<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
