//! Linux (and other POSIX-like) implementations of the platform contract.
//! `libc` calls and nothing else.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::ffi::CStr;

use super::OsError;

fn last_error(op: &'static str) -> OsError {
    OsError { op, errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0) }
}

/// The OS page size in bytes (a power of two), cached after the first call.
///
/// Never fails: falls back to 4096 if `sysconf` reports nonsense.
pub(crate) fn page_size() -> usize {
    static CACHE: AtomicUsize = AtomicUsize::new(0);
    let cached = CACHE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: `sysconf` has no preconditions; it only reads system constants.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let size = if raw > 0 && (raw as usize).is_power_of_two() { raw as usize } else { 4096 };
    CACHE.store(size, Ordering::Relaxed);
    size
}

/// Total physical memory in bytes (`_SC_PHYS_PAGES * page size`), or `None`
/// when the system does not say.
pub(crate) fn physical_memory() -> Option<usize> {
    // SAFETY: `sysconf` has no preconditions; it only reads system constants.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    if pages <= 0 {
        return None;
    }
    (pages as usize).checked_mul(page_size())
}

/// Maps `len` bytes of fresh, zero-filled, private anonymous memory whose
/// start is a multiple of `align`.
///
/// Pre: `len` and `align` are non-zero multiples of [`page_size`], `align` is
/// a power of two. Post: exactly `[result, result + len)` is mapped; the
/// over-mapped slack used for alignment has been unmapped again.
///
/// References: [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html).
pub(crate) fn map_aligned(len: usize, align: usize) -> Result<NonNull<u8>, OsError> {
    debug_assert!(align.is_power_of_two() && len % page_size() == 0);
    let page = page_size();
    let slack = align.saturating_sub(page);
    let Some(total) = len.checked_add(slack) else {
        return Err(OsError { op: "mmap", errno: libc::ENOMEM });
    };
    let base = map(total)?;
    let start = base.as_ptr() as usize;
    let aligned = (start + align - 1) & !(align - 1);
    let head = aligned - start;
    let tail = total - head - len;
    if head != 0 {
        // SAFETY: `[start, start + head)` lies inside the mapping made above
        // and nothing has been handed out from it.
        unsafe { unmap(base, head) };
    }
    if tail != 0 {
        // SAFETY: `[aligned + len, aligned + len + tail)` is the end of the
        // same fresh mapping, likewise unused.
        unsafe { unmap(NonNull::new_unchecked((aligned + len) as *mut u8), tail) };
    }
    // SAFETY: `aligned` lies inside a successful mapping, so it is non-null.
    Ok(unsafe { NonNull::new_unchecked(aligned as *mut u8) })
}

/// Maps `len` bytes (a non-zero multiple of the page size) of zero-filled
/// private anonymous memory, page aligned.
fn map(len: usize) -> Result<NonNull<u8>, OsError> {
    #[cfg(discardable_fault_injection)]
    if super::faults::take(super::faults::Fault::Map) {
        return Err(OsError { op: "mmap", errno: libc::ENOMEM });
    }
    // SAFETY: an anonymous private mapping with a null hint touches no
    // existing memory; the kernel picks the address.
    let ptr = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(last_error("mmap"));
    }
    NonNull::new(ptr.cast()).ok_or(OsError { op: "mmap", errno: libc::ENOMEM })
}

/// Unmaps `[ptr, ptr + len)`.
///
/// # Safety
///
/// The range must have been mapped by this module, be page aligned, and no
/// reference into it may be used afterwards.
pub(crate) unsafe fn unmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: the caller guarantees the range is ours and unused; munmap on a
    // valid range cannot fail in a way we could act on.
    let _ = unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
}

/// Gives the pages of `[ptr, ptr + len)` back to the OS at once
/// (`MADV_DONTNEED`): resident memory drops now and the range reads back as
/// zero-filled pages on the next touch.
///
/// Note that `POSIX_MADV_DONTNEED` is a different, advisory call on Linux;
/// this is the Linux `MADV_DONTNEED`.
///
/// # Safety
///
/// The range must be page aligned, mapped by this module, and hold no data
/// anyone still needs.
///
/// References: [madvise(2)](https://man7.org/linux/man-pages/man2/madvise.2.html).
pub(crate) unsafe fn discard(ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
    #[cfg(discardable_fault_injection)]
    if super::faults::take(super::faults::Fault::Advise) {
        return Err(OsError { op: "madvise(MADV_DONTNEED)", errno: libc::EINVAL });
    }
    // SAFETY: the caller guarantees the range is ours and its contents dead.
    let rc = unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(last_error("madvise(MADV_DONTNEED)"))
    }
}

/// Reads at most `buf.len()` bytes of the file at `path` into `buf` with raw
/// `open`/`read`/`close` (no heap, no buffering) and returns how many bytes
/// were read. Meant for small `/proc` and `/sys` files.
pub(crate) fn read_file(path: &CStr, buf: &mut [u8]) -> Result<usize, OsError> {
    #[cfg(discardable_fault_injection)]
    if super::faults::take(super::faults::Fault::Read) {
        return Err(OsError { op: "open", errno: libc::EACCES });
    }
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the
    // call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(last_error("open"));
    }
    let mut filled = 0;
    let result = loop {
        if filled == buf.len() {
            break Ok(filled);
        }
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a live, writable buffer of `rest.len()` bytes and
        // `fd` is open.
        let n = unsafe { libc::read(fd, rest.as_mut_ptr().cast(), rest.len()) };
        match n {
            0 => break Ok(filled),
            n if n > 0 => filled += n as usize,
            _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
            _ => break Err(last_error("read")),
        }
    };
    // SAFETY: `fd` was opened above and is closed exactly once.
    unsafe { libc::close(fd) };
    result
}

/// Hands the pages of `[ptr, ptr + len)` to the kernel lazily
/// (`MADV_FREE`): they stay readable and keep their contents until the
/// kernel needs memory, then read back as zero pages. Writing a page
/// cancels its pending free. Resident memory does not drop until then.
///
/// # Safety
///
/// The range must be page aligned and mapped by this module, and its owner
/// must be prepared to find any page zeroed.
///
/// References: [madvise(2)](https://man7.org/linux/man-pages/man2/madvise.2.html).
pub(crate) unsafe fn offer(ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
    #[cfg(discardable_fault_injection)]
    if super::faults::take(super::faults::Fault::Advise) {
        return Err(OsError { op: "madvise(MADV_FREE)", errno: libc::EINVAL });
    }
    // SAFETY: the caller guarantees the range is ours and accepts zeroing.
    let rc = unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_FREE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(last_error("madvise(MADV_FREE)"))
    }
}

/// Locks `[ptr, ptr + len)` in memory (`mlock`), so its pages are never
/// swapped out; fails beyond `RLIMIT_MEMLOCK` without privilege.
///
/// # Safety
///
/// The range must be page aligned and mapped by this module.
///
/// References: [mlock(2)](https://man7.org/linux/man-pages/man2/mlock.2.html).
pub(crate) unsafe fn lock(ptr: NonNull<u8>, len: usize) -> Result<(), OsError> {
    // SAFETY: the caller guarantees the range is ours; mlock only pins it.
    if unsafe { libc::mlock(ptr.as_ptr().cast(), len) } == 0 {
        Ok(())
    } else {
        Err(last_error("mlock"))
    }
}

/// Unlocks `[ptr, ptr + len)` (`munlock`); harmless on unlocked pages.
///
/// # Safety
///
/// The range must be page aligned and mapped by this module.
pub(crate) unsafe fn unlock(ptr: NonNull<u8>, len: usize) {
    // SAFETY: the caller guarantees the range is ours.
    let _ = unsafe { libc::munlock(ptr.as_ptr().cast(), len) };
}
