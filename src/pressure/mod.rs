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
mod meminfo;
mod notify;
mod poll;
mod psi;
mod signal;
mod watermark;

#[cfg(all(test, not(loom)))]
mod tests;

use core::time::Duration;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub(crate) use cgroup::cgroup_limit;
pub use signal::{Signal, SignalReport};
pub use watermark::{PressureError, Watermarks};

use cgroup::{c_path, read_text, Level, Version, STAT_BUF};
use meminfo::MemInfo;
use notify::{Drained, Kind, Notifier};
use signal::{tighter, FileFault};
use watermark::Hysteresis;

use crate::os;

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
    pub(crate) watermarks: Watermarks,
    /// Arm kernel notifications (off for fake trees, where writing a
    /// trigger line would just overwrite a plain file).
    pub(crate) notifications: bool,
}

impl Default for PressureConfig {
    fn default() -> Self {
        PressureConfig {
            proc_root: PathBuf::from("/"),
            process_limit: None,
            watermarks: Watermarks::default(),
            notifications: true,
        }
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

/// What [`Pressure::wait`] woke for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ready {
    /// The caller's own descriptor is readable.
    pub(crate) extra: bool,
    /// Kernel notifications drained.
    pub(crate) notifications: usize,
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
    marks: Watermarks,
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
    /// Finds the signals under `cfg.proc_root`, reads each once and arms
    /// the kernel notifications (if `cfg.notifications`). Never fails
    /// (INV-1).
    pub(crate) fn discover(cfg: PressureConfig) -> Pressure {
        let root = cfg.proc_root.as_path();
        let mut p = Pressure {
            marks: cfg.watermarks,
            notifications: cfg.notifications,
            process_limit: cfg.process_limit,
            process_bytes: 0,
            groups: Vec::new(),
            host: None,
            psi: None,
            notifiers: Vec::new(),
            missing: Vec::new(),
            hysteresis: Hysteresis::default(),
            refresh: false,
            files_at: None,
            files_bytes: 0,
        };
        match cgroup::discover(root) {
            Ok((v1, v2)) => {
                if let (true, Some((dir, fault))) = (v1.levels.is_empty(), &v1.fault) {
                    p.missing.push(missing(Signal::CgroupV1, dir, *fault));
                }
                // On hybrid hosts memory is a v1 controller: an empty v2
                // group is expected there, not a problem.
                if let (true, true, Some((dir, fault))) = (v1.levels.is_empty(), v2.levels.is_empty(), &v2.fault) {
                    p.missing.push(missing(Signal::CgroupV2, dir, *fault));
                }
                let group = |level| Group {
                    level,
                    threshold_tried: None,
                    threshold_fault: None,
                    arm_fault: None,
                    read_at: None,
                };
                p.groups.extend(v1.levels.into_iter().chain(v2.levels).map(group));
            }
            Err(fault) => {
                let at = root.join("proc/self/cgroup");
                p.missing.push(missing(Signal::CgroupV1, &at, fault));
                p.missing.push(missing(Signal::CgroupV2, &at, fault));
            }
        }
        if let Some(path) = c_path(root, "proc/meminfo") {
            p.host = Some(Host { path, source: root.join("proc/meminfo"), last: None, fault: None });
        }
        // The v2 group's own pressure file when there is one (it covers
        // exactly the group's tasks), else the host's.
        let psi_source = match p.groups.iter().find(|g| g.level.version == Version::V2) {
            Some(g) => g.level.file("memory.pressure"),
            None => root.join("proc/pressure/memory"),
        };
        if let Ok(path) = CString::new(psi_source.as_os_str().as_bytes()) {
            p.psi = Some(Psi {
                path,
                source: psi_source,
                avg10: None,
                fault: None,
                window: None,
                arm_fault: None,
                pending: false,
                last_stall: None,
                read_at: None,
            });
        }
        let mut buf = [0u8; STAT_BUF];
        p.read_host(&mut buf);
        p.read_psi(&mut buf);
        if p.notifications {
            p.arm();
        }
        p
    }

    /// Arms every notification discovery found a place for.
    fn arm(&mut self) {
        let mut own_v1 = true;
        for i in 0..self.groups.len() {
            let dir = self.groups[i].level.dir.clone();
            match self.groups[i].level.version {
                Version::V1 => {
                    self.rearm_threshold(i);
                    // Pressure levels on the process's own group only: the
                    // kernel reports reclaim of our pages there whichever
                    // limit (or the host) caused it.
                    if own_v1 {
                        own_v1 = false;
                        for (level, critical) in [("medium", false), ("critical", true)] {
                            match notify::arm_v1(&dir, notify::Arg::Level(level)) {
                                Ok(fd) => {
                                    self.notifiers.push(Notifier::new(fd, Kind::PressureLevel { level: i, critical }))
                                }
                                Err(f) => {
                                    self.groups[i].arm_fault.get_or_insert(f);
                                }
                            }
                        }
                    }
                }
                Version::V2 => match notify::open_events(&dir) {
                    Ok(fd) => self.notifiers.push(Notifier::new(fd, Kind::Events { level: i })),
                    Err(f) => {
                        self.groups[i].arm_fault.get_or_insert(f);
                    }
                },
            }
        }
        if let Some(psi) = self.psi.as_mut().filter(|psi| psi.fault.is_none()) {
            match psi::arm(&psi.path) {
                Ok((fd, window)) => {
                    psi.window = Some(window);
                    self.notifiers.push(Notifier::new(fd, Kind::Psi));
                }
                Err(f) => psi.arm_fault = Some(f),
            }
        }
    }

    /// (Re-)arms the v1 usage threshold of group `i` at the high mark of
    /// its current limit, unless that exact threshold was already tried.
    fn rearm_threshold(&mut self, i: usize) {
        let g = &mut self.groups[i];
        let want = g.level.limit.map(|l| self.marks.high_mark(l));
        if want == g.threshold_tried {
            return;
        }
        g.threshold_tried = want;
        // Dropping the old eventfd unregisters its threshold (notify INV-1).
        self.notifiers.retain(|n| !matches!(n.kind, Kind::Threshold { level, .. } if level == i));
        let Some(bytes) = want else { return };
        match notify::arm_v1(&g.level.dir, notify::Arg::Threshold(bytes)) {
            Ok(fd) => {
                g.threshold_fault = None;
                self.notifiers.push(Notifier::new(fd, Kind::Threshold { level: i, bytes }));
            }
            Err(f) => g.threshold_fault = Some(f),
        }
    }

    fn read_host(&mut self, buf: &mut [u8]) {
        let Some(host) = self.host.as_mut() else { return };
        match read_text(&host.path, "/proc/meminfo", buf)
            .and_then(|t| meminfo::parse_meminfo(t).ok_or(FileFault::format("/proc/meminfo")))
        {
            Ok(info) => {
                host.last = Some(info);
                host.fault = None;
            }
            Err(f) => host.fault = Some(f),
        }
    }

    fn read_psi(&mut self, buf: &mut [u8]) {
        let Some(psi) = self.psi.as_mut() else { return };
        match read_text(&psi.path, "memory.pressure", buf)
            .and_then(|t| psi::parse_some_avg10(t).ok_or(FileFault::format("memory.pressure")))
        {
            Ok(avg10) => {
                psi.avg10 = Some(avg10);
                psi.fault = None;
                psi.read_at = Some(Instant::now());
            }
            Err(f) => psi.fault = Some(f),
        }
    }

    /// A fresh sample now, whatever the age of the last one (tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn sample(&mut self, process_bytes: usize) -> Reading {
        self.sample_at(process_bytes, Instant::now())
    }

    /// A sample ([`Self::sample_at`]) when the files are due (INV-4): `fresh` (the
    /// caller's timer expired), a notification arrived, or the last file
    /// sample is [`FILE_MAX_AGE`] old. Otherwise reuses that sample: the
    /// process limit is checked against `process_bytes`, and each usage read
    /// from a file is moved by the change of `process_bytes` since (the
    /// process's own growth or reclaim shows in its cgroups and in
    /// `MemAvailable`), so a pass right after a reclaim does not reclaim the
    /// same bytes again. No PSI stall counts without a fresh sample.
    pub(crate) fn sample_if_due(&mut self, process_bytes: usize, fresh: bool) -> Reading {
        self.sample_if_due_at(process_bytes, fresh, Instant::now())
    }

    /// [`Self::sample_if_due`] at `now` (tests pass their own clock).
    fn sample_if_due_at(&mut self, process_bytes: usize, fresh: bool, now: Instant) -> Reading {
        let due = fresh || self.refresh || self.files_at.is_none_or(|t| now.duration_since(t) >= FILE_MAX_AGE);
        if due {
            self.sample_at(process_bytes, now)
        } else {
            self.evaluate(process_bytes, now, false)
        }
    }

    /// Reads the signals at `now` and returns the trigger's usage and
    /// limit. `process_bytes` is the process's strong + discardable bytes.
    ///
    /// Every signal that can trigger is read on every call; an unlimited
    /// cgroup and the `avg10` of an armed PSI trigger only every
    /// [`REFRESH`] or after a notification (they feed reports, not
    /// decisions), which keeps an idle sample at one or two file reads.
    fn sample_at(&mut self, process_bytes: usize, now: Instant) -> Reading {
        let refresh = core::mem::take(&mut self.refresh);
        let stale = |read_at: Option<Instant>| refresh || read_at.is_none_or(|t| now.duration_since(t) >= REFRESH);
        let mut buf = [0u8; STAT_BUF];
        for i in 0..self.groups.len() {
            let g = &mut self.groups[i];
            if g.level.limit.is_some() || stale(g.read_at) {
                g.read_at = Some(now);
                // A failure is recorded in the level and leaves it no limit.
                let _ = g.level.sample(&mut buf);
            }
            if self.notifications && self.groups[i].level.version == Version::V1 {
                self.rearm_threshold(i);
            }
        }
        self.read_host(&mut buf);
        if self.psi.as_ref().is_some_and(|psi| psi.window.is_none() || stale(psi.read_at)) {
            self.read_psi(&mut buf);
        }
        self.files_at = Some(now);
        self.files_bytes = process_bytes;
        self.evaluate(process_bytes, now, true)
    }

    /// The trigger among the process limit and the signals' last file
    /// readings (moved by the process's own change since, INV-4), and, on
    /// a `fresh` sample, a PSI stall.
    fn evaluate(&mut self, process_bytes: usize, now: Instant, fresh: bool) -> Reading {
        self.process_bytes = process_bytes;
        let (grown, shrunk) =
            (process_bytes.saturating_sub(self.files_bytes), self.files_bytes.saturating_sub(process_bytes));
        let moved = |usage: usize| usage.saturating_add(grown).saturating_sub(shrunk);
        let mut best: Option<(Signal, usize, usize)> = None;
        let mut consider = |signal, usage, limit| {
            if best.is_none_or(|(_, u, l)| tighter((usage, limit), (u, l))) {
                best = Some((signal, usage, limit));
            }
        };
        if let Some(limit) = self.process_limit {
            consider(Signal::ProcessLimit, process_bytes, limit);
        }
        for g in &self.groups {
            if let Some((usage, limit)) = g.level.usage_and_limit() {
                consider(g.level.version.signal(), moved(usage), limit);
            }
        }
        // Whether the host itself is short of memory (usage past the low
        // watermark of MemTotal), for host-wide PSI below.
        let mut host_tight = false;
        if let Some(info) = self.host.as_ref().and_then(|h| h.last.filter(|_| h.fault.is_none())) {
            let (usage, limit) = info.usage_and_limit();
            let usage = moved(usage);
            host_tight = usage >= self.marks.low_mark(limit);
            consider(Signal::MemAvailable, usage, limit);
        }
        // The host's PSI file reports stalls anywhere on the machine (another
        // group at its limit); act on it only when the host is short too. A
        // v2 group's own pressure file covers exactly our tasks.
        let own_psi = self.groups.iter().any(|g| g.level.version == Version::V2);
        if let Some(psi) = self.psi.as_mut().filter(|_| fresh) {
            let polled_stall = psi.window.is_none()
                && psi.fault.is_none()
                && psi.avg10.is_some_and(|a| a >= psi::AVG10_STALL)
                && psi.last_stall.is_none_or(|t| now.duration_since(t) >= psi.window());
            if (psi.pending || polled_stall) && process_bytes > 0 && (own_psi || host_tight) {
                psi.last_stall = Some(now);
                consider(Signal::Psi, process_bytes, process_bytes);
            }
            psi.pending = false;
        }
        match best {
            Some((signal, usage, limit)) => {
                Reading { limit, usage, headroom: limit.saturating_sub(usage), trigger: Some(signal) }
            }
            None => {
                Reading { limit: usize::MAX, usage: process_bytes, headroom: usize::MAX - process_bytes, trigger: None }
            }
        }
    }

    /// The reclaim decision for `reading`: `Some(bytes)` to discard now.
    ///
    /// Byte signals follow the watermarks with hysteresis: reclaim starts
    /// when usage rises above the high mark, and every later decision
    /// returns the bytes that would bring usage down to the low mark until
    /// usage is there. A PSI stall is a one-shot: `1 - low` of the process's
    /// bytes, without starting an episode.
    pub(crate) fn decide(&mut self, reading: &Reading) -> Option<usize> {
        match reading.trigger {
            None => {
                self.hysteresis.reset();
                None
            }
            Some(Signal::Psi) => {
                Some(reading.usage.saturating_sub(self.marks.low_mark(reading.limit))).filter(|&n| n > 0)
            }
            Some(_) => self.hysteresis.step(&self.marks, reading.usage, reading.limit),
        }
    }

    /// How long the manager may sleep before the next sample, given the
    /// last one (`None`: until a descriptor of [`Self::fds`] or the
    /// manager's own wake-up is ready). The policy is documented in
    /// `pressure/poll.rs`: 5 ms above the low mark, 10 ms to 1 s below it
    /// depending on headroom, and no polling for a signal a kernel
    /// notification covers while it is below its low mark.
    pub(crate) fn poll_interval(&self, reading: &Reading) -> Option<Duration> {
        let m = &self.marks;
        // The trigger first: it covers the PSI one-shot (usage == limit).
        let mut out =
            if reading.trigger.is_some() { poll::interval(reading.usage, reading.limit, true, m) } else { None };
        if let Some(limit) = self.process_limit {
            out = poll::shorter(out, poll::interval(self.process_bytes, limit, false, m));
        }
        for (i, g) in self.groups.iter().enumerate() {
            let Some((usage, limit)) = g.level.usage_and_limit() else { continue };
            let covered = g.level.version == Version::V1
                && self
                    .notifiers
                    .iter()
                    .any(|n| matches!(n.kind, Kind::Threshold { level, bytes } if level == i && g.level.raw < bytes));
            out = poll::shorter(out, poll::interval(usage, limit, covered, m));
        }
        if let Some(info) = self.host.as_ref().and_then(|h| h.last.filter(|_| h.fault.is_none())) {
            let (usage, limit) = info.usage_and_limit();
            out = poll::shorter(out, poll::interval(usage, limit, false, m));
        }
        if let Some(psi) = &self.psi {
            if psi.window.is_none() && psi.fault.is_none() {
                out = poll::shorter(out, Some(poll::SLOW));
            }
        }
        out
    }

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

/// A report for a signal discovery looked for and did not find.
fn missing(signal: Signal, at: &Path, fault: FileFault) -> SignalReport {
    let mut r = SignalReport::new(signal, at.display().to_string());
    r.add_error(fault);
    r
}
