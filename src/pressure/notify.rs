//! Kernel notifications: the descriptors the manager thread polls.
//!
//! - cgroup v1 usage threshold: an eventfd registered through
//!   `cgroup.event_control` as `"<eventfd> <fd of memory.usage_in_bytes>
//!   <bytes>"`; its counter rises each time usage crosses the threshold, in
//!   either direction.
//! - cgroup v1 `memory.pressure_level`: the same registration with
//!   `"medium"` or `"critical"` instead of a byte count; it fires while the
//!   kernel reclaims from the group with difficulty.
//! - cgroup v2 `memory.events`: read-only, polled for `POLLPRI` (a "file
//!   modified" event when a `high`, `max`, `oom` or `oom_kill` counter
//!   changes), acknowledged by re-reading it from offset 0.
//! - PSI trigger: see [`super::psi`]; `POLLPRI`, acknowledged by the poll
//!   itself.
//!
//! Invariants:
//!
//! - INV-1: each [`Notifier`] owns its descriptor; dropping it closes the
//!   descriptor, which is also what unregisters a v1 event or a PSI trigger
//!   in the kernel.
//! - INV-2: a notifier whose descriptor reports an error is dropped by
//!   [`Notifier::drain`]'s caller, so a dead notification can never make
//!   the manager's poll return at once forever.
//!
//! Threads: the manager thread only.

use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::cgroup::c_path;
use super::signal::{FileFault, Signal};
use crate::os;

/// What a notifier watches. `level` indexes `Pressure::levels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// v1 usage threshold at `bytes` of raw usage (the high mark).
    Threshold { level: usize, bytes: usize },
    /// v1 `memory.pressure_level` at `"medium"` or `"critical"`.
    PressureLevel { level: usize, critical: bool },
    /// v2 `memory.events` changes.
    Events { level: usize },
    /// A PSI trigger.
    Psi,
}

/// One armed kernel notification.
#[derive(Debug)]
pub(crate) struct Notifier {
    fd: OwnedFd,
    pub(crate) kind: Kind,
    /// Events counted so far (eventfd counts, or one per wake).
    pub(crate) fired: u64,
}

/// What draining a ready descriptor found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// `n` events (0: a spurious wake).
    Fired(u64),
    /// The notification is dead and must be dropped (INV-2).
    Gone(FileFault),
}

impl Notifier {
    pub(crate) fn new(fd: OwnedFd, kind: Kind) -> Self {
        Notifier { fd, kind, fired: 0 }
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The `poll` events to ask for.
    pub(crate) fn events(&self) -> i16 {
        match self.kind {
            Kind::Threshold { .. } | Kind::PressureLevel { .. } => libc::POLLIN,
            Kind::Events { .. } | Kind::Psi => libc::POLLPRI,
        }
    }

    /// The signal this notification belongs to.
    pub(crate) fn signal(&self) -> Signal {
        match self.kind {
            Kind::Threshold { .. } | Kind::PressureLevel { .. } => Signal::CgroupV1,
            Kind::Events { .. } => Signal::CgroupV2,
            Kind::Psi => Signal::Psi,
        }
    }

    /// The level this notification is armed on, if any.
    pub(crate) fn level(&self) -> Option<usize> {
        match self.kind {
            Kind::Threshold { level, .. } | Kind::PressureLevel { level, .. } | Kind::Events { level } => Some(level),
            Kind::Psi => None,
        }
    }

    /// Acknowledges a ready descriptor given its `revents`.
    pub(crate) fn drain(&mut self, revents: i16) -> Drained {
        let dead = libc::POLLNVAL | libc::POLLHUP;
        match self.kind {
            Kind::Threshold { .. } | Kind::PressureLevel { .. } => {
                if revents & (dead | libc::POLLERR) != 0 {
                    return Drained::Gone(FileFault::os("eventfd", os::OsError { op: "poll", errno: libc::EIO }));
                }
                match os::read_u64(self.fd.as_fd()) {
                    Ok(n) => self.count(n),
                    Err(e) => Drained::Gone(FileFault::os("eventfd", e)),
                }
            }
            Kind::Psi => {
                // POLLERR here means the trigger is gone (the group was
                // removed, PSI was disabled).
                if revents & (dead | libc::POLLERR) != 0 {
                    return Drained::Gone(FileFault::os("PSI trigger", os::OsError { op: "poll", errno: libc::EIO }));
                }
                self.count(u64::from(revents & libc::POLLPRI != 0))
            }
            Kind::Events { .. } => {
                // kernfs reports a change as POLLPRI | POLLERR until the
                // file is read again from the start.
                if revents & dead != 0 {
                    return Drained::Gone(FileFault::os("memory.events", os::OsError { op: "poll", errno: libc::EIO }));
                }
                let mut buf = [0u8; 512];
                match os::read_at(self.fd.as_fd(), &mut buf, 0) {
                    Ok(_) => self.count(u64::from(revents & libc::POLLPRI != 0)),
                    Err(e) => Drained::Gone(FileFault::os("memory.events", e)),
                }
            }
        }
    }

    fn count(&mut self, n: u64) -> Drained {
        self.fired = self.fired.saturating_add(n);
        Drained::Fired(n)
    }
}

/// What a `cgroup.event_control` registration listens for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg {
    /// A usage threshold in bytes, on `memory.usage_in_bytes`.
    Threshold(usize),
    /// A `memory.pressure_level` level.
    Level(&'static str),
}

/// Registers a fresh eventfd with the v1 group at `dir` and returns it.
pub(crate) fn arm_v1(dir: &Path, arg: Arg) -> Result<OwnedFd, FileFault> {
    let nul = || FileFault::format("path with NUL");
    let (target, file) = match arg {
        Arg::Threshold(_) => ("memory.usage_in_bytes", "memory.usage_in_bytes"),
        Arg::Level(_) => ("memory.pressure_level", "memory.pressure_level"),
    };
    let control = c_path(dir, "cgroup.event_control").ok_or_else(nul)?;
    let target = c_path(dir, target).ok_or_else(nul)?;
    let efd = os::eventfd().map_err(|e| FileFault::os("eventfd", e))?;
    // Only needed while registering: the kernel takes what it needs from it.
    let cfd = os::open_rdonly(&target).map_err(|e| FileFault::os(file, e))?;
    const LINE: usize = 96;
    let mut buf = [0u8; LINE];
    let mut cursor = &mut buf[..];
    // Cannot fail: two descriptors and a u64 or a short word fit in 96 bytes.
    let _ = match arg {
        Arg::Threshold(bytes) => write!(cursor, "{} {} {bytes}", efd.as_raw_fd(), cfd.as_raw_fd()),
        Arg::Level(level) => write!(cursor, "{} {} {level}", efd.as_raw_fd(), cfd.as_raw_fd()),
    };
    let len = LINE - cursor.len();
    os::write_file(&control, &buf[..len]).map_err(|e| FileFault::os("cgroup.event_control", e))?;
    Ok(efd)
}

/// Opens a v2 group's `memory.events` for `POLLPRI` and reads it once, so
/// that only changes from now on are reported.
pub(crate) fn open_events(dir: &Path) -> Result<OwnedFd, FileFault> {
    let path = c_path(dir, "memory.events").ok_or(FileFault::format("path with NUL"))?;
    let fd = os::open_rdonly(&path).map_err(|e| FileFault::os("memory.events", e))?;
    let mut buf = [0u8; 512];
    os::read_at(fd.as_fd(), &mut buf, 0).map_err(|e| FileFault::os("memory.events", e))?;
    Ok(fd)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn eventfd_notifiers_count_and_die_on_error() {
        let fd = os::eventfd().unwrap();
        os::write_u64(fd.as_fd(), 3).unwrap();
        let mut n = Notifier::new(fd, Kind::Threshold { level: 0, bytes: 100 });
        assert_eq!((n.events(), n.signal(), n.level()), (libc::POLLIN, Signal::CgroupV1, Some(0)));
        assert_eq!(n.drain(libc::POLLIN), Drained::Fired(3));
        assert_eq!(n.drain(libc::POLLIN), Drained::Fired(0), "spurious wake reads nothing");
        assert_eq!(n.fired, 3);
        assert!(matches!(n.drain(libc::POLLERR), Drained::Gone(_)));
    }

    #[test]
    fn psi_notifiers_count_pri_and_die_on_err() {
        let mut n = Notifier::new(os::eventfd().unwrap(), Kind::Psi);
        assert_eq!((n.events(), n.signal(), n.level()), (libc::POLLPRI, Signal::Psi, None));
        assert_eq!(n.drain(libc::POLLPRI), Drained::Fired(1));
        assert!(matches!(n.drain(libc::POLLPRI | libc::POLLERR), Drained::Gone(_)));
    }

    #[test]
    fn events_notifiers_reread_and_accept_err_with_pri() {
        let dir = std::env::temp_dir().join(format!("discardable-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(open_events(&dir).is_err(), "missing file");
        std::fs::write(dir.join("memory.events"), "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n").unwrap();
        let mut n = Notifier::new(open_events(&dir).unwrap(), Kind::Events { level: 1 });
        assert_eq!((n.events(), n.signal(), n.level()), (libc::POLLPRI, Signal::CgroupV2, Some(1)));
        assert_eq!(n.drain(libc::POLLPRI | libc::POLLERR), Drained::Fired(1), "kernfs change");
        assert!(matches!(n.drain(libc::POLLHUP), Drained::Gone(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn arming_v1_needs_the_control_files() {
        let dir = std::env::temp_dir().join(format!("discardable-notify-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = arm_v1(&dir, Arg::Threshold(1 << 20)).unwrap_err();
        assert_eq!(err.file, "memory.usage_in_bytes");
        std::fs::write(dir.join("memory.pressure_level"), "").unwrap();
        let err = arm_v1(&dir, Arg::Level("medium")).unwrap_err();
        assert_eq!(err.file, "cgroup.event_control");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
