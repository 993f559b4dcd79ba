//! The synchronisation shim: `std`/`parking_lot` normally, `loom` under
//! `cfg(loom)`.
//!
//! Every protocol in the crate imports its atomics, cells, locks and threads
//! from here, so the code that loom model-checks is the code that ships (the
//! tokio and sharded-slab pattern). It owns no state and must never contain
//! protocol logic of its own.

#[cfg(not(loom))]
#[allow(unused_imports, dead_code)]
mod imp {
    pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use std::sync::Arc;

    pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};

    /// `std`'s `UnsafeCell` with loom's closure-based access API.
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(core::cell::UnsafeCell::new(value))
        }
    }

    impl<T: ?Sized> UnsafeCell<T> {
        /// Runs `f` with a shared raw pointer to the contents.
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a unique raw pointer to the contents.
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    /// Spins or yields while waiting for another thread.
    #[inline]
    pub(crate) fn spin_wait(round: u32) {
        if round < 6 {
            for _ in 0..(1u32 << round) {
                core::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
    }
}

#[cfg(loom)]
#[allow(unused_imports, dead_code)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use loom::sync::Arc;

    /// loom's mutex with parking_lot's non-poisoning API.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    /// The guard of [`Mutex`].
    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().expect("loom mutex poisoned")
        }
    }

    /// loom's condition variable with parking_lot's API shape.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }

        pub(crate) fn notify_one(&self) -> bool {
            self.0.notify_one();
            true
        }
    }

    /// Yields to loom's scheduler.
    pub(crate) fn spin_wait(_round: u32) {
        loom::thread::yield_now();
    }
}

#[allow(unused_imports)]
pub(crate) use imp::*;

/// A lock for state the loom models check (the allocator's abandoned
/// lists): [`RawLock`] normally, loom's mutex under `cfg(loom)`, so the
/// models see its hand-overs and explore who takes it first.
#[cfg(not(loom))]
pub(crate) type SpinLock = RawLock;

/// The guard of a [`SpinLock`].
#[cfg(not(loom))]
pub(crate) type SpinGuard<'a> = RawLockGuard<'a>;

/// The guard of a [`SpinLock`].
#[cfg(loom)]
pub(crate) type SpinGuard<'a> = loom::sync::MutexGuard<'a, ()>;

/// Under loom: loom's mutex with [`RawLock`]'s API (not `const`; loom
/// objects live inside one model execution).
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct SpinLock(loom::sync::Mutex<()>);

#[cfg(loom)]
impl SpinLock {
    /// An unlocked lock.
    pub(crate) fn new() -> Self {
        Self(loom::sync::Mutex::new(()))
    }

    /// Blocks (in loom's scheduler) until the lock is taken.
    pub(crate) fn lock(&self) -> SpinGuard<'_> {
        self.0.lock().expect("loom mutex poisoned")
    }

    /// The fork handlers' entry points: loom models never fork.
    pub(crate) fn lock_for_fork(&self) {
        unreachable!("loom models never fork");
    }

    /// See [`SpinLock::lock_for_fork`].
    ///
    /// # Safety
    ///
    /// Never called under loom.
    pub(crate) unsafe fn force_unlock(&self) {
        unreachable!("loom models never fork");
    }
}

/// A minimal test-and-test-and-set lock usable from the allocation path.
///
/// It never allocates, never parks through parking_lot's global table and
/// has a `const` constructor, so it can guard statics that the global
/// allocator reaches. Critical sections under it must be short. It always
/// uses `core` atomics: the page heap it guards is not modelled under loom.
#[derive(Debug)]
pub(crate) struct RawLock {
    locked: core::sync::atomic::AtomicBool,
}

impl RawLock {
    /// An unlocked lock.
    pub(crate) const fn new() -> Self {
        Self { locked: core::sync::atomic::AtomicBool::new(false) }
    }

    /// Spins (then yields) until the lock is taken; returns a guard.
    #[inline]
    pub(crate) fn lock(&self) -> RawLockGuard<'_> {
        use core::sync::atomic::Ordering::{Acquire, Relaxed};
        let mut round = 0;
        // Acquire pairs with the Release store in `RawLockGuard::drop`.
        while self.locked.compare_exchange_weak(false, true, Acquire, Relaxed).is_err() {
            while self.locked.load(Relaxed) {
                round += 1;
                if round < 8 {
                    core::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        RawLockGuard { lock: self }
    }
}

impl RawLock {
    /// Takes the lock and forgets the guard (the `pthread_atfork` prepare
    /// handler); released with [`Self::force_unlock`].
    pub(crate) fn lock_for_fork(&self) {
        core::mem::forget(self.lock());
    }

    /// Releases the lock without a guard.
    ///
    /// # Safety
    ///
    /// The lock must be held, and its guard forgotten (the fork handlers).
    pub(crate) unsafe fn force_unlock(&self) {
        self.locked.store(false, core::sync::atomic::Ordering::Release);
    }
}

/// Releases a [`RawLock`] when dropped.
#[derive(Debug)]
pub(crate) struct RawLockGuard<'a> {
    lock: &'a RawLock,
}

impl Drop for RawLockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // Release publishes the critical section to the next `lock`.
        self.lock.locked.store(false, core::sync::atomic::Ordering::Release);
    }
}
