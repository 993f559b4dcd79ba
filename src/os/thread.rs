//! Threads and process events for the allocator, without the Rust heap:
//! a pthread key whose destructor sees thread exit, a raw pthread for the
//! purge timer, `pthread_atfork` handlers, sleeping, and aborting with a
//! static message.
//!
//! Must never: allocate through the Rust global allocator or panic.

use core::ffi::c_void;
use core::time::Duration;

/// A pthread TLS key whose destructor runs at thread exit for threads that
/// stored a non-null value.
///
/// Returns the key, or `None` if the system has no keys left.
///
/// References: [pthread_key_create(3p)](https://man7.org/linux/man-pages/man3/pthread_key_create.3p.html).
pub(crate) fn key_create(destructor: unsafe extern "C" fn(*mut c_void)) -> Option<libc::pthread_key_t> {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; `destructor` is a valid C-ABI
    // function for the life of the process.
    let rc = unsafe { libc::pthread_key_create(&mut key, Some(destructor)) };
    (rc == 0).then_some(key)
}

/// Stores `value` in this thread's slot of `key` (non-null arms the
/// destructor). Returns whether it succeeded.
pub(crate) fn key_set(key: libc::pthread_key_t, value: *mut c_void) -> bool {
    // SAFETY: `key` came from `key_create`; the value is opaque to libc.
    unsafe { libc::pthread_setspecific(key, value) == 0 }
}

/// Spawns a detached raw pthread running `body(arg)`. It does not go
/// through `std::thread`, so it allocates nothing through the Rust global
/// allocator (libc may still call `malloc` for its own bookkeeping).
pub(crate) fn spawn_detached(body: extern "C" fn(*mut c_void) -> *mut c_void, arg: *mut c_void) -> bool {
    let mut thread: libc::pthread_t = 0;
    // SAFETY: `thread` is a valid out-pointer; null attributes mean the
    // defaults; `body` is a valid C-ABI function for the whole process.
    let rc = unsafe { libc::pthread_create(&mut thread, core::ptr::null(), body, arg) };
    if rc != 0 {
        return false;
    }
    // SAFETY: `thread` was just created and is joined by nobody.
    unsafe { libc::pthread_detach(thread) };
    true
}

/// Registers fork handlers (see pthread_atfork(3)). Returns whether it
/// succeeded.
pub(crate) fn at_fork(
    prepare: unsafe extern "C" fn(),
    parent: unsafe extern "C" fn(),
    child: unsafe extern "C" fn(),
) -> bool {
    // SAFETY: the handlers are valid C-ABI functions for the whole process.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) == 0 }
}

/// Sleeps for `d` (restarting after signals until the time has passed).
pub(crate) fn sleep(d: Duration) {
    let mut req = libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long };
    loop {
        let mut rem = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: both pointers are valid timespecs on our stack.
        if unsafe { libc::nanosleep(&req, &mut rem) } == 0 {
            return;
        }
        req = rem;
    }
}

/// Monotonic time in nanoseconds.
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Monotonic time in nanoseconds at the kernel tick's resolution (a few
/// milliseconds; `CLOCK_MONOTONIC_COARSE`): a read of the vDSO's data page,
/// several times cheaper than [`now_ns`], for timestamps on hot paths that
/// only compare against tens of milliseconds. (Not under loom, whose models
/// use a counter instead.)
#[cfg(not(loom))]
pub(crate) fn coarse_now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC_COARSE exists on
    // Linux since 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time the calling thread has used, in nanoseconds.
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_THREAD_CPUTIME_ID always
    // exists for the calling thread.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Writes `msg` to stderr and aborts the process: the allocator's answer to
/// an internal failure, usable where panicking is not.
pub(crate) fn abort_with(msg: &'static str) -> ! {
    // SAFETY: `msg` is a valid byte buffer; fd 2 may be closed, which only
    // makes the write fail.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    std::process::abort()
}

/// Waits while `*word == expected`, for at most `timeout`: returns early on
/// [`futex_wake`], a signal, a changed value, or a spurious wake-up.
/// Allocation-free, so the allocator may wait for the manager with it.
///
/// References: [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html).
pub(crate) fn futex_wait(word: &core::sync::atomic::AtomicU32, expected: u32, timeout: Duration) {
    let ts =
        libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos() as libc::c_long };
    // SAFETY: `word` is a live, aligned u32 for the duration of the call; the
    // kernel only reads it and the timespec.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, expected, &ts)
    };
}

/// Wakes every thread waiting in [`futex_wait`] on `word`.
pub(crate) fn futex_wake(word: &core::sync::atomic::AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE only uses its address.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX) };
}

/// Adds 1 to the eventfd `fd` (best effort; allocation-free), waking a
/// thread polling it.
pub(crate) fn eventfd_signal(fd: i32) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live local; an invalid or closed fd only
    // makes the call fail.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Names the calling thread (at most 15 bytes are kept), so tools and tests
/// can tell the allocator's timer from the thread that happened to start it.
pub(crate) fn set_thread_name(name: &core::ffi::CStr) {
    // SAFETY: `name` is a valid NUL-terminated string; PR_SET_NAME copies it.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

/// Best effort: lowers the calling thread's nice value to -10, so it gets
/// a CPU sooner when other threads of its session compete for one. Needs
/// `CAP_SYS_NICE` (or root); returns whether the kernel agreed.
pub(crate) fn raise_nice() -> bool {
    // SAFETY: `gettid` has no preconditions.
    let tid = unsafe { libc::gettid() };
    // SAFETY: setpriority on our own thread id only changes its nice value.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, -10) == 0 }
}

/// Best effort: moves the calling thread to `SCHED_RR` at real-time
/// priority 1, so the kernel runs it ahead of every ordinary thread as soon
/// as it wakes (reset in children it forks). Needs `CAP_SYS_NICE` or an
/// `RLIMIT_RTPRIO` of at least 1; returns whether the kernel agreed.
pub(crate) fn set_realtime() -> bool {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: `param` is a live local; a tid of 0 is the calling thread, and
    // the call changes only its scheduling policy.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &param) == 0 }
}
