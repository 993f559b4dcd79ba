//! Waiting: the armed notification descriptors, draining them, and the
//! manager thread's `poll` on them and on its own wake-up (INV-3).

use core::time::Duration;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use super::notify::{Drained, Kind};
use super::{Pressure, Signal};
use crate::os;

/// What [`Pressure::wait`] woke for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ready {
    /// The caller's own descriptor is readable.
    pub(crate) extra: bool,
    /// Kernel notifications drained.
    pub(crate) notifications: usize,
}

impl Pressure {
    /// The armed notification descriptors and the `poll` events to ask for
    /// (INV-3). Pass every ready one to [`Self::drain_fd`].
    pub(crate) fn fds(&self) -> impl Iterator<Item = (RawFd, i16)> + '_ {
        self.notifiers.iter().map(|n| (n.raw_fd(), n.events()))
    }

    /// Acknowledges a descriptor `poll` reported ready with `revents`:
    /// reads an eventfd's counter, re-reads `memory.events`, notes a PSI
    /// stall for the next [`Self::sample`]. A descriptor that reports an
    /// error is closed and its failure goes into the reports. Returns the
    /// signal it belongs to, `None` for a descriptor that is not ours.
    pub(crate) fn drain_fd(&mut self, fd: RawFd, revents: i16) -> Option<Signal> {
        let i = self.notifiers.iter().position(|n| n.raw_fd() == fd)?;
        let signal = self.notifiers[i].signal();
        match self.notifiers[i].drain(revents) {
            Drained::Fired(n) => {
                if let (Kind::Psi, Some(psi)) = (self.notifiers[i].kind, self.psi.as_mut()) {
                    psi.pending |= n > 0;
                }
                self.refresh |= n > 0;
            }
            Drained::Gone(fault) => {
                let dead = self.notifiers.remove(i);
                match dead.level() {
                    Some(level) if matches!(dead.kind, Kind::Threshold { .. }) => {
                        self.groups[level].threshold_fault = Some(fault)
                    }
                    Some(level) => self.groups[level].arm_fault = Some(fault),
                    None => {
                        if let Some(psi) = self.psi.as_mut() {
                            psi.window = None;
                            psi.arm_fault = Some(fault);
                        }
                    }
                }
            }
        }
        Some(signal)
    }

    /// Waits for a notification, the caller's `extra` descriptor (polled
    /// for `POLLIN`, e.g. the manager's own eventfd; the caller drains it)
    /// or `timeout`, and drains every ready notification.
    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        extra: Option<BorrowedFd<'_>>,
    ) -> Result<Ready, os::OsError> {
        let mut fds: Vec<libc::pollfd> = extra
            .map(|fd| (fd.as_raw_fd(), libc::POLLIN))
            .into_iter()
            .chain(self.fds())
            .map(|(fd, events)| libc::pollfd { fd, events, revents: 0 })
            .collect();
        let mut ready = Ready { extra: false, notifications: 0 };
        if os::poll(&mut fds, timeout)? == 0 {
            return Ok(ready);
        }
        let skip = usize::from(extra.is_some());
        ready.extra = extra.is_some() && fds[0].revents != 0;
        for pfd in &fds[skip..] {
            if pfd.revents != 0 && self.drain_fd(pfd.fd, pfd.revents).is_some() {
                ready.notifications += 1;
            }
        }
        Ok(ready)
    }
}
