//! `fork()` safety for discardable memory: a process-wide gate that every
//! arena operation and manager pass holds for reading, which the
//! `pthread_atfork` prepare handler takes for writing, so a child never
//! inherits a store or table lock held mid-operation by a thread that does
//! not exist in it; and a fork generation, bumped in the child, by which
//! managers notice that their thread is gone and restart it.
//!
//! (The global allocator's own locks have their own fork handlers, in
//! `alloc::thread`.)
//!
//! Must never: be taken from the allocator's path (it is a parking_lot lock).

#[cfg(not(loom))]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::Once;

    static GATE: parking_lot::RwLock<()> = parking_lot::const_rwlock(());
    static GENERATION: AtomicU64 = AtomicU64::new(0);
    static HANDLERS: Once = Once::new();

    /// Enters the gate for one operation; the guard holds it open
    /// (recursive: a pass may free bytes through the store, which enters
    /// again).
    #[inline]
    pub(crate) fn enter() -> parking_lot::RwLockReadGuard<'static, ()> {
        GATE.read_recursive()
    }

    /// How many forks this process descends from (0 in the original).
    #[inline]
    pub(crate) fn generation() -> u64 {
        GENERATION.load(Relaxed)
    }

    /// Registers the fork handlers once.
    pub(crate) fn install() {
        HANDLERS.call_once(|| {
            if !crate::os::at_fork(prepare, parent, child) {
                // Without handlers a fork may inherit a held lock; say so
                // once rather than fail the caller.
                eprintln!("discardable: pthread_atfork failed; fork() while allocating may deadlock the child");
            }
        });
    }

    unsafe extern "C" fn prepare() {
        core::mem::forget(GATE.write());
    }

    unsafe extern "C" fn parent() {
        // SAFETY: `prepare` took the write lock in this thread and forgot
        // its guard.
        unsafe { GATE.force_unlock_write() };
    }

    unsafe extern "C" fn child() {
        GENERATION.fetch_add(1, Relaxed);
        // SAFETY: as in `parent`; the child has only this thread.
        unsafe { GATE.force_unlock_write() };
    }
}

#[cfg(loom)]
mod imp {
    /// The gate's stand-in under loom, where models never fork.
    #[derive(Debug)]
    pub(crate) struct Gate;

    /// No gate under loom: models never fork.
    pub(crate) fn enter() -> Gate {
        Gate
    }

    pub(crate) fn generation() -> u64 {
        0
    }

    pub(crate) fn install() {}
}

pub(crate) use imp::{enter, generation, install};
