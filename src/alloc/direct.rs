//! Direct reclaim: when the allocator maps memory past the process limit,
//! the allocating thread wakes the manager thread and waits for it, for a
//! bounded time, on a raw futex. It never runs manager code itself, and a
//! strong allocation never fails because of the budget.
//!
//! The manager installs the hook ([`install`]): the process limit and the
//! eventfd that wakes its thread; after each pass it calls [`pass_done`].
//! This module only leaves marks for it (an eventfd write) and waits.
//!
//! Must never: allocate, lock, or wait without a bound.

use core::cell::Cell;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use core::time::Duration;

use crate::os;
use crate::page_heap;

/// Longest a thread waits for the manager.
const WAIT: Duration = Duration::from_millis(10);

/// The process limit in bytes (0: none).
static LIMIT: AtomicUsize = AtomicUsize::new(0);
/// The manager's wake eventfd (-1: none).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// Bumped by the manager after every pass; futex word of the waiters.
static DONE: AtomicU32 = AtomicU32::new(0);
/// Direct reclaims requested so far.
pub(crate) static REQUESTS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the manager thread, which must never wait for itself.
    static EXEMPT: Cell<bool> = const { Cell::new(false) };
}

/// Installs the hook: above `limit` mapped bytes, allocating threads wake
/// the manager through `wake_fd` (an eventfd) and wait for a pass.
pub(crate) fn install(limit: usize, wake_fd: i32) {
    WAKE_FD.store(wake_fd, Release);
    LIMIT.store(limit, Release);
}

/// Marks the calling thread (the manager's) as never waiting.
pub(crate) fn exempt_this_thread() {
    let _ = EXEMPT.try_with(|e| e.set(true));
}

/// The manager finished a pass: wake every waiter.
pub(crate) fn pass_done() {
    DONE.fetch_add(1, Release);
    os::futex_wake(&DONE);
}

/// Called after the allocator mapped new memory: if the page heap is past
/// the limit, wake the manager and wait (bounded) for one pass.
#[inline]
pub(crate) fn after_growth() {
    let limit = LIMIT.load(Relaxed);
    if limit != 0 && page_heap::global().stats().in_use > limit {
        wait_for_manager();
    }
}

#[cold]
fn wait_for_manager() {
    let fd = WAKE_FD.load(Acquire);
    if fd < 0 || EXEMPT.try_with(Cell::get).unwrap_or(true) {
        return;
    }
    REQUESTS.fetch_add(1, Relaxed);
    let seen = DONE.load(Acquire);
    os::eventfd_signal(fd);
    os::futex_wait(&DONE, seen, WAIT);
}
