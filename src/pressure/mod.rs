//! Memory-pressure signals turned into budgets and reclaim targets.
//!
//! Owns the knowledge of file formats (`/proc/self/cgroup`, cgroup v1 and
//! v2 memory files, `/proc/meminfo`, PSI) and of the kernel notifications
//! that go with them, and turns them into one question the manager asks on
//! every wake: "how many bytes must go now?"
//!
//! The model (DESIGN.md, "Pressure signals"): each signal in use yields a
//! usage and a limit —
//!
//! - [`Signal::ProcessLimit`]: the process's strong + discardable bytes
//!   against a configured limit;
//! - [`Signal::CgroupV1`], [`Signal::CgroupV2`]: for the process's group and
//!   each ancestor with a limit of its own, usage (`memory.usage_in_bytes`,
//!   `memory.current`) minus inactive file pages (the kernel reclaims those
//!   first, so they are headroom) against `memory.limit_in_bytes`, or the
//!   smaller of `memory.high` and `memory.max`;
//! - [`Signal::MemAvailable`]: `MemTotal - MemAvailable` against `MemTotal`;
//! - [`Signal::Psi`]: no bytes of its own; a memory stall (a PSI trigger
//!   event, or `some avg10` at 7.5 % where no trigger could be armed, at
//!   most once per trigger window) counts as the process's own footprint
//!   being its limit, so the decision sheds `1 - low` of it, once;
//!
//! — and the one with the least relative headroom is the *trigger*: its
//! usage and limit form the [`Reading`]. [`Pressure::decide`] applies the
//! [`Watermarks`] with hysteresis. Kernel notifications wake the manager
//! where they exist ([`Pressure::fds`]); elsewhere [`Pressure::poll_interval`]
//! says how long it may sleep (the policy is in `poll.rs`).
//!
//! Invariants:
//!
//! - INV-1: nothing here is fatal. [`Pressure::discover`] never fails: a
//!   missing or unreadable file, a refused notification, or an unexpected
//!   format becomes a [`SignalReport::error`] and the signal is left out of
//!   (or contributes nothing to) the decision.
//! - INV-2: [`Pressure::sample`] reads through [`crate::os::read_file`] into
//!   one stack buffer and, unless a cgroup limit changed (which re-arms a
//!   threshold), allocates nothing.
//! - INV-3: every descriptor [`Pressure::fds`] yields is owned by the
//!   `Pressure` and stays open until [`Pressure::drain_fd`] reports it dead
//!   or the `Pressure` is dropped; the set can change after `sample` and
//!   `drain_fd`, so callers fetch it again before each wait.
//! - INV-4: [`Pressure::sample_if_due`] reads no file only when the caller
//!   did not ask for a fresh sample, no notification arrived since the last
//!   file read, and that read is younger than [`FILE_MAX_AGE`]; the
//!   process's own bytes (and with them [`Signal::ProcessLimit`]) are
//!   current on every call.
//!
//! Threads: a `Pressure` is owned by the manager thread (it is `Send`, not
//! shared). Reports are plain values for other threads.
//!
//! Must never: be reached from the allocator's path.

mod cgroup;
mod decide;
mod discover;
mod meminfo;
mod notify;
mod poll;
mod psi;
mod signal;
mod wait;
mod watermark;

#[cfg(all(test, not(loom)))]
mod tests;

use core::time::Duration;
use std::ffi::CString;
use std::path::PathBuf;
use std::time::Instant;

pub(crate) use cgroup::cgroup_limit;
pub use signal::{Signal, SignalReport};
pub use watermark::{PressureError, Watermarks};

use cgroup::Level;
use meminfo::MemInfo;
use notify::Notifier;
use signal::FileFault;
use watermark::Hysteresis;

// What the tests (`use super::*`) take from here besides the above.
#[cfg(all(test, not(loom)))]
use {crate::os, notify::Kind, std::os::fd::AsRawFd, wait::Ready};

/// The default discardable limit: a quarter of physical memory or of the
/// cgroup limit, whichever is smaller (64 MiB if neither is known).
pub(crate) fn default_limit() -> usize {
    let physical = crate::os::physical_memory();
    let cgroup = cgroup_limit();
    let base = match (physical, cgroup) {
        (Some(p), Some(c)) => p.min(c),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => 256 << 20,
    };
    (base / 4).max(1)
}

/// How to set up a [`Pressure`].
#[derive(Debug, Clone)]
pub(crate) struct PressureConfig {
    /// Where `proc/` and `sys/fs/cgroup/` are found: `/` normally; tests
    /// point it at a fake tree.
    pub(crate) proc_root: PathBuf,
    /// The process's own limit on strong + discardable bytes, if any.
    pub(crate) process_limit: Option<usize>,
    /// Explicit watermarks for every signal (`None`: the defaults,
    /// [`Watermarks::DEFAULT`] and for the process limit
    /// [`Watermarks::PROCESS_LIMIT`]).
    pub(crate) watermarks: Option<Watermarks>,
    /// Arm kernel notifications (off for fake trees, where writing a
    /// trigger line would just overwrite a plain file).
    pub(crate) notifications: bool,
}

impl Default for PressureConfig {
    fn default() -> Self {
        PressureConfig { proc_root: PathBuf::from("/"), process_limit: None, watermarks: None, notifications: true }
    }
}

/// One sample: the trigger's usage against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reading {
    /// The trigger's limit, bytes (`usize::MAX` without a trigger).
    pub(crate) limit: usize,
    /// The trigger's usage, bytes (the process's bytes without a trigger).
    pub(crate) usage: usize,
    /// `limit - usage`, saturating at 0.
    pub(crate) headroom: usize,
    /// The signal with the least relative headroom, `None` when no signal
    /// has a limit.
    pub(crate) trigger: Option<Signal>,
}

/// A cgroup level and the state of its notification.
#[derive(Debug)]
struct Group {
    level: Level,
    /// The threshold last tried for this level (armed or refused), so a
    /// refusal is not retried on every sample.
    threshold_tried: Option<usize>,
    /// Why the threshold is not armed.
    threshold_fault: Option<FileFault>,
    /// Why another notification of the level is not armed.
    arm_fault: Option<FileFault>,
    /// When the level was last read (an unlimited level is re-read at most
    /// every [`REFRESH`]).
    read_at: Option<Instant>,
}

/// `/proc/meminfo`.
#[derive(Debug)]
struct Host {
    path: CString,
    source: PathBuf,
    last: Option<MemInfo>,
    fault: Option<FileFault>,
}

/// The PSI file, its trigger and the stall bookkeeping.
#[derive(Debug)]
struct Psi {
    path: CString,
    source: PathBuf,
    avg10: Option<u64>,
    fault: Option<FileFault>,
    /// The accepted trigger window while a trigger is armed.
    window: Option<Duration>,
    arm_fault: Option<FileFault>,
    /// A trigger event arrived since the last sample.
    pending: bool,
    /// When a stall last counted, for the once-per-window limit.
    last_stall: Option<Instant>,
    /// When `avg10` was last read (with a trigger armed, only the reports
    /// need it: at most every [`REFRESH`]).
    read_at: Option<Instant>,
}

impl Psi {
    fn window(&self) -> Duration {
        self.window.unwrap_or(psi::WINDOWS[psi::WINDOWS.len() - 1])
    }
}

/// The pressure layer's state: discovered signals, armed notifications,
/// the hysteresis. Owned by the manager thread.
#[derive(Debug)]
pub(crate) struct Pressure {
    /// Watermarks of every signal but the process limit.
    marks: Watermarks,
    /// Watermarks of the process limit.
    own_marks: Watermarks,
    notifications: bool,
    process_limit: Option<usize>,
    process_bytes: usize,
    groups: Vec<Group>,
    host: Option<Host>,
    psi: Option<Psi>,
    notifiers: Vec<Notifier>,
    /// Reports for what discovery could not find.
    missing: Vec<SignalReport>,
    hysteresis: Hysteresis,
    /// Read every file on the next sample (set by notifications).
    refresh: bool,
    /// When the files were last sampled (INV-4).
    files_at: Option<Instant>,
    /// The process's bytes at that sample: usages read from files are
    /// moved by how much they changed since (INV-4).
    files_bytes: usize,
    /// The index in `groups` of the last reading's trigger, if a cgroup.
    trigger_group: Option<usize>,
    /// The process's v1 memory and v2 cgroup paths (`/proc/self/cgroup`).
    cgroup_paths: [Option<String>; 2],
    /// Where `/proc` and `/sys` are (`/`, or a test's fake tree).
    #[cfg_attr(loom, allow(dead_code))] // groups (not under loom) ask
    proc_root: std::path::PathBuf,
}

/// How often a file that cannot trigger anything by itself (an unlimited
/// cgroup, the `avg10` of an armed PSI trigger) is re-read for the reports
/// and to notice a new limit. Each read costs about 10 µs of system time.
const REFRESH: Duration = Duration::from_secs(1);

/// The oldest file sample [`Pressure::sample_if_due`] reuses (INV-4).
///
/// Why 2 ms: below [`poll::FAST`] (5 ms), the staleness the poll policy
/// already accepts for a signal near its limit that nothing notifies, and
/// well inside the 10 ms reaction goal (`poll.rs`), so a change nobody
/// notifies is seen by a wake-driven pass at most 2 ms later than if every
/// pass read the files; changes the process makes itself are not stale at
/// all (the usages move with its own bytes). It caps wake-driven file
/// samples at 500 a second (a sample is a few reads of tens of µs), where
/// reading on every wake costs thousands a second under churn.
pub(crate) const FILE_MAX_AGE: Duration = Duration::from_millis(2);

impl Pressure {
    /// One report per signal in use or looked for: source, last reading,
    /// limit, whether a notification is armed, and any error.
    pub(crate) fn reports(&self) -> Vec<SignalReport> {
        let mut out = Vec::new();
        if let Some(limit) = self.process_limit {
            let mut r = SignalReport::new(Signal::ProcessLimit, "process limit (strong + discardable bytes)".into());
            r.last_reading = Some(self.process_bytes as u64);
            r.limit = Some(limit as u64);
            out.push(r);
        }
        for (i, g) in self.groups.iter().enumerate() {
            let mut r = SignalReport::new(g.level.version.signal(), g.level.dir.display().to_string());
            r.last_reading = Some(g.level.usage() as u64);
            r.limit = g.level.limit.map(|l| l as u64);
            r.notified = self.notifiers.iter().any(|n| n.level() == Some(i));
            if let Some(f) = g.level.fault {
                r.add_error(f);
            }
            for f in [g.threshold_fault, g.arm_fault].into_iter().flatten() {
                r.add_error(format_args!("notification: {f}"));
            }
            out.push(r);
        }
        out.extend(self.missing.iter().cloned());
        if let Some(host) = &self.host {
            let mut r = SignalReport::new(Signal::MemAvailable, host.source.display().to_string());
            r.last_reading = host.last.map(|m| m.available);
            r.limit = host.last.map(|m| m.total);
            if let Some(f) = host.fault {
                r.add_error(f);
            }
            out.push(r);
        }
        if let Some(psi) = &self.psi {
            let mut r = SignalReport::new(Signal::Psi, psi.source.display().to_string());
            r.last_reading = psi.avg10;
            r.notified = psi.window.is_some();
            if let Some(f) = psi.fault {
                r.add_error(f);
            }
            if let Some(f) = psi.arm_fault {
                r.add_error(format_args!("trigger: {f}"));
            }
            out.push(r);
        }
        out
    }
}
