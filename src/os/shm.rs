//! Shared-memory files for the group registry: exclusive creation with
//! mode 0600, opening an existing one only when it is a regular file of the
//! calling user, its size, `ftruncate`, and `MAP_SHARED` mappings.
//!
//! These are the registry's only system calls; the layout of the file and
//! every check of its contents belong to `group`.

use core::ptr::NonNull;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::OsError;

fn last_error(op: &'static str) -> OsError {
    OsError { op, errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0) }
}

/// What [`stat_path`] and [`stat_fd`] report of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileInfo {
    /// The owner's user id.
    pub(crate) uid: u32,
    /// The size in bytes.
    pub(crate) size: u64,
    /// A regular file (not a link, directory, FIFO, device).
    pub(crate) regular: bool,
}

fn info(st: &libc::stat) -> FileInfo {
    FileInfo { uid: st.st_uid, size: st.st_size.max(0) as u64, regular: st.st_mode & libc::S_IFMT == libc::S_IFREG }
}

/// The real user id of the process (`getuid`).
pub(crate) fn user_id() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// `lstat(path)`: what is at `path` itself (a link is reported as a link,
/// never followed), without opening it.
///
/// References: [stat(2)](https://man7.org/linux/man-pages/man2/lstat.2.html).
pub(crate) fn stat_path(path: &CStr) -> Result<FileInfo, OsError> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is writable for the call.
    if unsafe { libc::lstat(path.as_ptr(), &mut st) } != 0 {
        return Err(last_error("lstat"));
    }
    Ok(info(&st))
}

/// `fstat(fd)`.
pub(crate) fn stat_fd(fd: &OwnedFd) -> Result<FileInfo, OsError> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `fd` is open for the call and `st` is writable.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(last_error("fstat"));
    }
    Ok(info(&st))
}

/// Opens `path` read-write, creating it if `create` (`O_CREAT | O_EXCL`,
/// mode 0600, so exactly one caller creates it and the file is never
/// anyone else's). Never follows a symbolic link (`O_NOFOLLOW`) and never
/// blocks on a FIFO (`O_NONBLOCK`). `EEXIST` means another caller created
/// it first.
///
/// References: [open(2)](https://man7.org/linux/man-pages/man2/open.2.html).
pub(crate) fn open_shared(path: &CStr, create: bool) -> Result<OwnedFd, OsError> {
    let mut flags = libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    if create {
        flags |= libc::O_CREAT | libc::O_EXCL;
    }
    // SAFETY: `path` is NUL-terminated; the mode argument is read only with
    // O_CREAT.
    let fd = unsafe { libc::open(path.as_ptr(), flags, 0o600 as libc::c_uint) };
    if fd < 0 {
        return Err(last_error("open"));
    }
    // SAFETY: `fd` was just returned by open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets the file's size to `len` bytes (`ftruncate`); new bytes read zero.
pub(crate) fn set_len(fd: &OwnedFd, len: u64) -> Result<(), OsError> {
    // SAFETY: `fd` is open for the call.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
        return Err(last_error("ftruncate"));
    }
    Ok(())
}

/// Maps the first `len` bytes of `fd` read-write and shared with every
/// process that maps the same file (`MAP_SHARED`), page aligned.
///
/// Post: `[result, result + len)` stays mapped until [`unmap_shared`].
/// Touching a page that lies beyond the file's end raises `SIGBUS`, so
/// callers check the size ([`stat_fd`]) before they read.
///
/// References: [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html).
pub(crate) fn map_shared(fd: &OwnedFd, len: usize) -> Result<NonNull<u8>, OsError> {
    // SAFETY: a shared file mapping with a null hint touches no existing
    // memory of ours; the kernel picks the address.
    let ptr = unsafe {
        libc::mmap(core::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd.as_raw_fd(), 0)
    };
    if ptr == libc::MAP_FAILED {
        return Err(last_error("mmap"));
    }
    NonNull::new(ptr.cast()).ok_or(OsError { op: "mmap", errno: libc::ENOMEM })
}

/// Unmaps a mapping made by [`map_shared`].
///
/// # Safety
///
/// `ptr` and `len` are those of one [`map_shared`] call, unmapped once, and
/// no reference into the range is used afterwards.
pub(crate) unsafe fn unmap_shared(ptr: NonNull<u8>, len: usize) {
    // SAFETY: the caller guarantees the range is one whole mapping of ours
    // that nothing uses any more.
    let _ = unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
}

/// `CLOCK_MONOTONIC` in milliseconds: the clock every process of one host
/// (and every container on it) shares, so heartbeats compare across them.
pub(crate) fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec.max(0) as u64 * 1000 + ts.tv_nsec.max(0) as u64 / 1_000_000
}

/// The calling process's id.
pub(crate) fn process_id() -> u32 {
    std::process::id()
}
