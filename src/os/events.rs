//! Event primitives for the manager thread: eventfd, poll, and the writes
//! that arm kernel notifications (cgroup v1 `cgroup.event_control`, PSI
//! triggers).
//!
//! Owns no state: every function is one system call (or one call retried on
//! `EINTR`) on a descriptor the caller owns. File descriptors are returned as
//! [`OwnedFd`], so closing is `Drop` and never forgotten; closing an eventfd
//! registered with `cgroup.event_control` or a PSI trigger file is also what
//! unregisters the notification in the kernel.
//!
//! Invariants:
//!
//! - INV-1: every descriptor this module opens has `O_CLOEXEC` (`EFD_CLOEXEC`),
//!   so a `fork` + `exec` child never inherits the manager's notifications.
//! - INV-2: a [`BorrowedFd`] argument is open for the whole call (the type's
//!   guarantee), which is the precondition every `read`/`write`/`pread` here
//!   relies on.
//!
//! Like the rest of `os`, it knows no file formats (the caller formats the
//! lines it writes) and never allocates.

use core::time::Duration;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Instant;

use super::OsError;

fn last_error(op: &'static str) -> OsError {
    OsError { op, errno: errno() }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Wraps a descriptor a successful system call just returned.
fn own(fd: libc::c_int, op: &'static str) -> Result<OwnedFd, OsError> {
    if fd < 0 {
        return Err(last_error(op));
    }
    // SAFETY: `fd` was just returned by a successful `open`/`eventfd`, so it
    // is open and nothing else owns it; `OwnedFd` becomes its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates an eventfd with counter 0, non-blocking and close-on-exec (INV-1).
///
/// Post: the descriptor is readable (`POLLIN`) whenever its counter is
/// non-zero; [`read_u64`] returns and resets the counter.
///
/// References: [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html).
pub(crate) fn eventfd() -> Result<OwnedFd, OsError> {
    // SAFETY: `eventfd` has no memory preconditions; flags are valid constants.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    own(fd, "eventfd")
}

/// Opens `path` read-only and close-on-exec (INV-1).
///
/// References: [open(2)](https://man7.org/linux/man-pages/man2/open.2.html).
pub(crate) fn open_rdonly(path: &CStr) -> Result<OwnedFd, OsError> {
    // SAFETY: `path` is a valid NUL-terminated string for the whole call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    own(fd, "open")
}

/// Opens `path` read-write, non-blocking and close-on-exec (INV-1): the mode
/// a PSI trigger needs (written once, then polled for `POLLPRI`).
///
/// References: [open(2)](https://man7.org/linux/man-pages/man2/open.2.html),
/// [PSI triggers](https://docs.kernel.org/accounting/psi.html#userspace-monitor-usage-example).
pub(crate) fn open_rdwr(path: &CStr) -> Result<OwnedFd, OsError> {
    // SAFETY: `path` is a valid NUL-terminated string for the whole call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    own(fd, "open")
}

/// Writes all of `bytes` to `fd` in a single `write` call (retried on
/// `EINTR`).
///
/// Kernel control files (`cgroup.event_control`, PSI trigger files) parse
/// each `write` as one command, so a short write is reported as an `EIO`
/// error rather than continued.
///
/// References: [write(2)](https://man7.org/linux/man-pages/man2/write.2.html).
pub(crate) fn write_fd(fd: BorrowedFd<'_>, bytes: &[u8]) -> Result<(), OsError> {
    loop {
        // SAFETY: `fd` is open (INV-2) and `bytes` is a live buffer of
        // `bytes.len()` readable bytes.
        let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        match n {
            n if n >= 0 && n as usize == bytes.len() => return Ok(()),
            n if n >= 0 => return Err(OsError { op: "write (short)", errno: libc::EIO }),
            _ if errno() == libc::EINTR => {}
            _ => return Err(last_error("write")),
        }
    }
}

/// Opens `path` write-only, writes `bytes` with one [`write_fd`] and closes
/// it: the way to send one command line to a kernel control file such as a
/// cgroup v1 `cgroup.event_control`.
///
/// References: [open(2)](https://man7.org/linux/man-pages/man2/open.2.html),
/// [cgroup v1 memory notifications](https://docs.kernel.org/admin-guide/cgroup-v1/memory.html#memory-thresholds).
pub(crate) fn write_file(path: &CStr, bytes: &[u8]) -> Result<(), OsError> {
    // SAFETY: `path` is a valid NUL-terminated string for the whole call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    let fd = own(fd, "open")?;
    write_fd(fd.as_fd(), bytes)
}

/// Reads and resets an eventfd's counter. Returns 0 when the counter was
/// already zero (the descriptor is non-blocking, `EAGAIN`).
///
/// Pre: `fd` is an eventfd (any other descriptor may return other data).
///
/// References: [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html).
pub(crate) fn read_u64(fd: BorrowedFd<'_>) -> Result<u64, OsError> {
    let mut value = [0u8; 8];
    loop {
        // SAFETY: `fd` is open (INV-2) and `value` is 8 writable bytes, the
        // size an eventfd read requires.
        let n = unsafe { libc::read(fd.as_raw_fd(), value.as_mut_ptr().cast(), value.len()) };
        match n {
            8 => return Ok(u64::from_ne_bytes(value)),
            n if n >= 0 => return Err(OsError { op: "read (eventfd)", errno: libc::EIO }),
            _ => match errno() {
                libc::EINTR => {}
                libc::EAGAIN => return Ok(0),
                _ => return Err(last_error("read")),
            },
        }
    }
}

/// Adds `value` to an eventfd's counter, waking anyone polling it.
///
/// Pre: `fd` is an eventfd; `value` is below `u64::MAX`.
///
/// References: [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html).
#[allow(dead_code)] // for the manager's own wake-up eventfd (integration of issue 4); tested below
pub(crate) fn write_u64(fd: BorrowedFd<'_>, value: u64) -> Result<(), OsError> {
    write_fd(fd, &value.to_ne_bytes())
}

/// Reads up to `buf.len()` bytes of `fd` starting at `offset` (`pread`,
/// retried on `EINTR`) and returns how many were read.
///
/// Re-reading a cgroup or sysfs file from offset 0 is also what acknowledges
/// a `POLLPRI` "file modified" event on it.
///
/// References: [pread(2)](https://man7.org/linux/man-pages/man2/pread.2.html),
/// [sysfs_notify](https://docs.kernel.org/filesystems/sysfs.html).
pub(crate) fn read_at(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> Result<usize, OsError> {
    let offset = libc::off_t::try_from(offset).map_err(|_| OsError { op: "pread", errno: libc::EINVAL })?;
    loop {
        // SAFETY: `fd` is open (INV-2) and `buf` is a live buffer of
        // `buf.len()` writable bytes.
        let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset) };
        if n >= 0 {
            return Ok(n as usize);
        }
        if errno() != libc::EINTR {
            return Err(last_error("pread"));
        }
    }
}

/// Waits until one of `fds` is ready or `timeout` passes (`None`: no
/// timeout), and returns how many entries have a non-zero `revents`.
///
/// Pre: every `fd` in `fds` is open or negative (negative entries are
/// ignored, as poll(2) specifies). Post: each `revents` is filled in; `0`
/// means the timeout passed. `EINTR` is retried with the time that is left,
/// so a signal neither shortens nor lengthens the wait. Sub-millisecond
/// timeouts are rounded up to 1 ms (poll's resolution), never down to a busy
/// loop.
///
/// References: [poll(2)](https://man7.org/linux/man-pages/man2/poll.2.html).
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> Result<usize, OsError> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut left = timeout;
    loop {
        let ms = match left {
            None => -1,
            Some(t) => libc::c_int::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX),
        };
        // SAFETY: `fds` is a live, writable slice of `fds.len()` pollfd
        // entries for the whole call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n >= 0 {
            return Ok(n as usize);
        }
        if errno() != libc::EINTR {
            return Err(last_error("poll"));
        }
        if let (Some(_), Some(deadline)) = (left, deadline) {
            left = Some(deadline.saturating_duration_since(Instant::now()));
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn eventfd_counts_and_polls() {
        let fd = eventfd().expect("eventfd");
        assert_eq!(read_u64(fd.as_fd()), Ok(0), "a fresh eventfd reads 0 without blocking");
        let mut fds = [libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        assert_eq!(poll(&mut fds, Some(Duration::ZERO)), Ok(0));
        write_u64(fd.as_fd(), 2).unwrap();
        write_u64(fd.as_fd(), 3).unwrap();
        assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))), Ok(1));
        assert_eq!(fds[0].revents & libc::POLLIN, libc::POLLIN);
        assert_eq!(read_u64(fd.as_fd()), Ok(5));
        assert_eq!(read_u64(fd.as_fd()), Ok(0));
    }

    #[test]
    fn poll_times_out_after_roughly_the_timeout() {
        let fd = eventfd().unwrap();
        let mut fds = [libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        let start = Instant::now();
        assert_eq!(poll(&mut fds, Some(Duration::from_micros(300))), Ok(0));
        assert!(start.elapsed() >= Duration::from_micros(300), "rounded up, not down to zero");
        // A negative fd is ignored, so an empty wait just times out.
        let mut none = [libc::pollfd { fd: -1, events: libc::POLLIN, revents: 0 }];
        assert_eq!(poll(&mut none, Some(Duration::from_millis(1))), Ok(0));
    }

    #[test]
    fn files_write_and_read_back_at_offsets() {
        let dir = std::env::temp_dir().join(format!("discardable-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, b"").unwrap();
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        write_file(&c, b"hello world").unwrap();
        let fd = open_rdonly(&c).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(read_at(fd.as_fd(), &mut buf, 6), Ok(5));
        assert_eq!(&buf[..5], b"world");
        let rw = open_rdwr(&c).unwrap();
        write_fd(rw.as_fd(), b"HELLO").unwrap();
        assert_eq!(read_at(fd.as_fd(), &mut buf, 0), Ok(11));
        assert_eq!(&buf[..11], b"HELLO world");
        let missing = std::ffi::CString::new(dir.join("missing").to_str().unwrap()).unwrap();
        assert_eq!(open_rdonly(&missing).unwrap_err().errno, libc::ENOENT);
        assert_eq!(write_file(&missing, b"x").unwrap_err().errno, libc::ENOENT);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
