//! The purge timer: a raw pthread that gives retained pages back to the OS
//! shortly after the program stops freeing, and frees abandoned spans that
//! became empty. It runs in every program that frees memory through the
//! allocator, with or without a `Manager`.
//!
//! It is started lazily from the allocator's entry points at a moment when
//! no allocator lock is held (`pthread_create` may call `malloc`), never
//! from inside a critical section, and restarted lazily in a forked child.
//!
//! Must never: allocate through the Rust heap, or hold a lock across a
//! sleep.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use core::time::Duration;

use super::accounting::NEED_PURGE;
use crate::os;
use crate::page_heap;

/// How often the timer looks.
const TICK: Duration = Duration::from_millis(50);
/// How long retained pages must sit unused before they go back.
const DELAY_NS: u64 = 100_000_000;

static STARTED: AtomicBool = AtomicBool::new(false);
/// When memory last went back to the page heap.
static LAST_RELEASE_NS: AtomicU64 = AtomicU64::new(0);

/// Starts the timer once memory has been released to the page heap. Call
/// only where no allocator lock is held.
#[inline]
pub(crate) fn maybe_start() {
    if NEED_PURGE.load(Relaxed) {
        note_release();
    }
}

#[cold]
fn note_release() {
    NEED_PURGE.store(false, Relaxed);
    LAST_RELEASE_NS.store(os::now_ns(), Relaxed);
    start();
}

/// Starts the timer thread unless it runs. Call only where no allocator
/// lock is held.
pub(crate) fn start() {
    if !STARTED.load(Relaxed) && !STARTED.swap(true, AcqRel) && !os::spawn_detached(run, core::ptr::null_mut()) {
        STARTED.store(false, Release);
    }
}

/// In a forked child the timer thread does not exist: allow a restart.
pub(crate) fn after_fork_in_child() {
    STARTED.store(false, Release);
}

extern "C" fn run(_: *mut c_void) -> *mut c_void {
    os::set_thread_name(c"discardable-prg");
    loop {
        os::sleep(TICK);
        super::abandoned::global().sweep();
        let idle = os::now_ns().saturating_sub(LAST_RELEASE_NS.load(Relaxed));
        if idle >= DELAY_NS && page_heap::global().stats().retained > 0 {
            page_heap::global().purge();
        }
    }
}
