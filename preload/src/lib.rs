//! `libdiscardable_malloc.so`: the C allocation API served by
//! [`discardable::DiscardAlloc`], so that
//!
//! ```text
//! LD_PRELOAD=/path/to/libdiscardable_malloc.so some-program
//! ```
//!
//! runs any dynamically linked program on the allocator (glibc resolves
//! `malloc` and friends by ELF symbol interposition, also for its own
//! internal calls, so every block of the program comes from here).
//!
//! # What it exports
//!
//! | function | behaviour |
//! | --- | --- |
//! | `malloc(n)` | a block of at least `n` bytes aligned to 16; `malloc(0)` returns a unique minimal block (as glibc) |
//! | `free(p)` | frees `p`; null is ignored |
//! | `calloc(n, s)` | zeroed `n * s` bytes; an overflowing product returns null with `errno = ENOMEM` |
//! | `realloc(p, n)` | `realloc(NULL, n)` is `malloc(n)`; **`realloc(p, 0)` with `p` non-null frees `p` and returns null** (glibc's behaviour, `REALLOC_ZERO_BYTES_FREES`; errno is left alone); on failure null with `errno = ENOMEM`, and `p` stays valid and unchanged |
//! | `reallocarray(p, n, s)` | `realloc(p, n * s)`, null with `ENOMEM` if the product overflows |
//! | `posix_memalign(&p, a, n)` | returns `EINVAL` if `a` is not a power of two or not a multiple of `sizeof(void *)`, `ENOMEM` if memory is refused; `*memptr` is written only on success |
//! | `aligned_alloc(a, n)` | null with `errno = EINVAL` if `a` is not a power of two (C17; glibc since 2.38); any size is accepted |
//! | `memalign(a, n)` | as glibc: `a` is rounded up to a power of two (`EINVAL` if impossible) |
//! | `valloc(n)`, `pvalloc(n)` | page-aligned; `pvalloc` rounds `n` up to whole pages (`pvalloc(0)` is one page) |
//! | `malloc_usable_size(p)` | the bytes usable at `p` (0 for null) |
//!
//! Every allocation failure returns null with `errno = ENOMEM`; sizes above
//! `PTRDIFF_MAX` always fail. Alignments are served up to what
//! `DiscardAlloc` supports (below its 32 MiB segment size); larger ones fail
//! with `ENOMEM`.
//!
//! # Load time
//!
//! A constructor in `.init_array` starts the allocator's purge timer (so
//! freed memory goes back to the OS even in a program that never calls the
//! allocator again) and, if the environment variable `DISCARDABLE_STATS` is
//! set to anything but the empty string or `0`, registers an `atexit`
//! handler that prints one line to stderr:
//!
//! ```text
//! discardable-malloc: mapped=<bytes> in_use=<bytes> retained=<bytes> allocs=<count>
//! ```
//!
//! `allocs` counts the calls to the allocating entry points, so a test can
//! prove that the library served a program (they are counted only when the
//! variable is set: a shared counter on every call would cost the
//! multi-threaded programs a cache line moving between cores). The line goes to a
//! close-on-exec duplicate of stderr taken at load time (descriptor 200 or
//! above), because many programs close fd 2 in their own `atexit` handlers,
//! which run before this one; if that duplicate no longer refers to the
//! same file, the line goes to fd 2.
//!
//! # Rules
//!
//! This library *is* the process allocator: no path in it allocates through
//! the Rust heap, panics, uses `std::sync` or the formatting machinery (the
//! statistics line is formatted by hand into a stack buffer and written with
//! `write(2)`).

#![deny(unsafe_op_in_unsafe_fn)]

use core::ffi::{c_char, c_int, c_void};
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use discardable::DiscardAlloc;

/// The alignment `malloc` guarantees (as glibc on 64-bit targets).
const MIN_ALIGN: usize = 16;
/// No request above `PTRDIFF_MAX` can succeed (as glibc).
const MAX_SIZE: usize = isize::MAX as usize;

/// Calls to the allocating entry points, counted only while [`COUNTING`]
/// (a shared counter bumped on every `malloc` costs a locked instruction
/// and, with threads, a cache line moving between cores).
static ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Whether `DISCARDABLE_STATS` asked for the statistics line; written once
/// by the load-time constructor, read-only afterwards.
static COUNTING: AtomicBool = AtomicBool::new(false);

/// Sets this thread's `errno`.
#[inline]
fn set_errno(code: c_int) {
    // SAFETY: `__errno_location` returns the calling thread's errno slot,
    // valid for the life of the thread.
    unsafe { *libc::__errno_location() = code };
}

/// The OS page size, cached.
fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: `sysconf` has no preconditions.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if raw > 0 && (raw as usize).is_power_of_two() { raw as usize } else { 4096 };
    PAGE.store(page, Relaxed);
    page
}

/// Counts an allocating call if the statistics line was asked for.
#[inline(always)]
fn count_alloc() {
    if COUNTING.load(Relaxed) {
        ALLOCS.fetch_add(1, Relaxed);
    }
}

/// Serves `size` bytes aligned to `align` (a power of two); null with
/// `errno = ENOMEM` on failure. (Inlined into each entry point, so
/// `malloc` is one function on the fast path.)
#[inline(always)]
fn serve(size: usize, align: usize, zeroed: bool) -> *mut c_void {
    count_alloc();
    let p = if size > MAX_SIZE { ptr::null_mut() } else { DiscardAlloc::c_alloc(size, align.max(MIN_ALIGN), zeroed) };
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p.cast()
}

/// Allocates `size` bytes aligned to 16.
///
/// # Safety
///
/// None beyond C's: the result must be released with `free` (or resized
/// with `realloc`) of this library.
#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    serve(size, MIN_ALIGN, false)
}

/// Frees a block; null is ignored.
///
/// # Safety
///
/// `p` must be null or a live block returned by this library's allocating
/// functions, and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: forwarded from the caller.
    unsafe { DiscardAlloc::c_free(p.cast()) }
}

/// Allocates `nmemb * size` zeroed bytes; null with `errno = ENOMEM` if the
/// product overflows.
///
/// # Safety
///
/// As for [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn calloc(nmemb: usize, size: usize) -> *mut c_void {
    match nmemb.checked_mul(size) {
        Some(total) => serve(total, MIN_ALIGN, true),
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// Resizes a block. `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` with
/// `p` non-null frees `p` and returns null (glibc's choice); on failure
/// returns null with `errno = ENOMEM` and leaves `p` untouched.
///
/// # Safety
///
/// `p` must be null or a live block of this library; on success it must not
/// be used afterwards (use the result).
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return serve(size, MIN_ALIGN, false);
    }
    if size == 0 {
        // SAFETY: `p` is a live block of ours (caller).
        unsafe { DiscardAlloc::c_free(p.cast()) };
        return ptr::null_mut();
    }
    count_alloc();
    let q = if size > MAX_SIZE {
        ptr::null_mut()
    } else {
        // SAFETY: `p` is a live block of ours (caller).
        unsafe { DiscardAlloc::c_realloc(p.cast(), size) }
    };
    if q.is_null() {
        set_errno(libc::ENOMEM);
    }
    q.cast()
}

/// `realloc(p, nmemb * size)`, failing with `errno = ENOMEM` if the product
/// overflows (then `p` is untouched).
///
/// # Safety
///
/// As for [`realloc`].
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, nmemb: usize, size: usize) -> *mut c_void {
    match nmemb.checked_mul(size) {
        // SAFETY: forwarded from the caller.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// Stores a block of `size` bytes aligned to `alignment` in `*memptr`.
/// Returns 0, `EINVAL` (alignment not a power of two or not a multiple of
/// `sizeof(void *)`) or `ENOMEM`; `*memptr` is written only on success.
///
/// # Safety
///
/// `memptr` must be valid for a pointer-sized write.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(memptr: *mut *mut c_void, alignment: usize, size: usize) -> c_int {
    if !alignment.is_power_of_two() || alignment % core::mem::size_of::<*mut c_void>() != 0 {
        return libc::EINVAL;
    }
    let p = serve(size, alignment, false);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller guarantees `memptr` is writable.
    unsafe { memptr.write(p) };
    0
}

/// C11 `aligned_alloc`: null with `errno = EINVAL` if `alignment` is not a
/// power of two; any `size` is accepted.
///
/// # Safety
///
/// As for [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(alignment: usize, size: usize) -> *mut c_void {
    if !alignment.is_power_of_two() {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    serve(size, alignment, false)
}

/// Obsolete `memalign`, as glibc: the alignment is rounded up to a power of
/// two (null with `errno = EINVAL` if there is none).
///
/// # Safety
///
/// As for [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn memalign(alignment: usize, size: usize) -> *mut c_void {
    match alignment.checked_next_power_of_two() {
        Some(align) => serve(size, align, false),
        None => {
            set_errno(libc::EINVAL);
            ptr::null_mut()
        }
    }
}

/// Obsolete `valloc`: `size` bytes aligned to the page size.
///
/// # Safety
///
/// As for [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    serve(size, page_size(), false)
}

/// Obsolete `pvalloc`: `size` rounded up to whole pages (at least one),
/// page aligned.
///
/// # Safety
///
/// As for [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
    match size.checked_next_multiple_of(page) {
        Some(rounded) => serve(rounded.max(page), page, false),
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// The number of bytes usable at `p` (at least what was asked for); 0 for
/// null.
///
/// # Safety
///
/// `p` must be null or a live block of this library.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: `p` is a live block of ours (caller).
    unsafe { DiscardAlloc::usable_size(p.cast()) }
}

/// The load-time constructor: glibc calls every function pointer in
/// `.init_array` when the library is loaded, after libc is initialised.
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;

extern "C" fn init() {
    // SAFETY: a NUL-terminated name; constructors run before `main`, when
    // nothing else touches the environment (the timer is not started yet).
    let value = unsafe { libc::getenv(c"DISCARDABLE_STATS".as_ptr()) };
    // SAFETY: `value` is null or a NUL-terminated string from the
    // environment.
    if unsafe { stats_enabled(value) } {
        COUNTING.store(true, Relaxed);
        keep_stderr();
        // SAFETY: `print_stats` is a valid C-ABI function for the whole
        // process.
        unsafe { libc::atexit(print_stats) };
    }
    DiscardAlloc::start_purge_timer();
}

/// The lowest descriptor number [`keep_stderr`] may take, far above the
/// ones programs expect `open` to return.
const STATS_FD_MIN: c_int = 200;
/// A duplicate of stderr for the statistics line (or -1), with the device
/// and inode it referred to when it was made.
static STATS_FD: AtomicI32 = AtomicI32::new(-1);
static STATS_DEV: AtomicU64 = AtomicU64::new(0);
static STATS_INO: AtomicU64 = AtomicU64::new(0);

/// Keeps a close-on-exec duplicate of stderr for [`print_stats`]: many
/// programs close fd 2 in their own `atexit` handlers (GNU coreutils'
/// `close_stdout`), which run before ours.
fn keep_stderr() {
    // SAFETY: `F_DUPFD_CLOEXEC` only creates a new descriptor; a closed fd 2
    // makes it fail.
    let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, STATS_FD_MIN) };
    if fd < 0 {
        return;
    }
    if let Some((dev, ino)) = identity(fd) {
        STATS_DEV.store(dev, Relaxed);
        STATS_INO.store(ino, Relaxed);
        STATS_FD.store(fd, Relaxed);
    } else {
        // SAFETY: `fd` was created above and is not used elsewhere.
        unsafe { libc::close(fd) };
    }
}

/// The device and inode `fd` refers to, if it is open.
fn identity(fd: c_int) -> Option<(u64, u64)> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is a writable buffer of the right size; `fstat` fails
    // harmlessly on a closed descriptor.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: `fstat` succeeded, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // `dev_t` and `ino_t` are not `u64` on every target
    Some((st.st_dev as u64, st.st_ino as u64))
}

/// Where the statistics line goes: the duplicate made at load time if it
/// still refers to the same file (the program may have closed it and
/// reused the number), else fd 2.
fn stats_fd() -> c_int {
    let fd = STATS_FD.load(Relaxed);
    if fd >= 0 && identity(fd) == Some((STATS_DEV.load(Relaxed), STATS_INO.load(Relaxed))) {
        fd
    } else {
        2
    }
}

/// Whether the variable's value asks for statistics: set, non-empty and not
/// `"0"`.
///
/// # Safety
///
/// `value` must be null or a NUL-terminated string.
unsafe fn stats_enabled(value: *const c_char) -> bool {
    if value.is_null() {
        return false;
    }
    // SAFETY: a NUL-terminated string has at least one byte; the second is
    // read only if the first is not the terminator.
    unsafe {
        let first = *value;
        first != 0 && !(first == b'0' as c_char && *value.add(1) == 0)
    }
}

/// The `atexit` handler: one line of statistics to stderr, no allocation.
extern "C" fn print_stats() {
    let stats = DiscardAlloc::stats();
    let mut line = Line::new();
    line.push(b"discardable-malloc: mapped=");
    line.number(stats.mapped as u64);
    line.push(b" in_use=");
    line.number(stats.in_use as u64);
    line.push(b" retained=");
    line.number(stats.retained as u64);
    line.push(b" allocs=");
    line.number(ALLOCS.load(Relaxed));
    line.push(b"\n");
    let bytes = line.as_bytes();
    // SAFETY: `bytes` is a live buffer of `bytes.len()` bytes; a closed
    // descriptor only makes the write fail.
    unsafe { libc::write(stats_fd(), bytes.as_ptr().cast(), bytes.len()) };
}

/// A fixed-size line buffer on the stack; bytes past its end are dropped
/// (never a panic).
struct Line {
    buf: [u8; 192],
    len: usize,
}

impl Line {
    const fn new() -> Self {
        Self { buf: [0; 192], len: 0 }
    }

    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    /// Appends `n` in decimal.
    fn number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        while start > 0 {
            start -= 1;
            if let Some(d) = digits.get_mut(start) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(digits.get(start..).unwrap_or(&[]));
    }

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}
