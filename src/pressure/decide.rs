//! Sampling and decision: reading the signals (or reusing a recent
//! sample, INV-4), picking the trigger, the reclaim decision with
//! hysteresis, and how long the manager may sleep before the next sample.

use core::time::Duration;
use std::time::Instant;

use super::cgroup::{Version, STAT_BUF};
use super::notify::Kind;
use super::signal::tighter;
use super::watermark::Watermarks;
use super::{poll, psi, Pressure, Reading, Signal, FILE_MAX_AGE, REFRESH};

impl Pressure {
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
    pub(super) fn sample_if_due_at(&mut self, process_bytes: usize, fresh: bool, now: Instant) -> Reading {
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
        // The tightest signal, and for a cgroup, the index of its level.
        let mut best: Option<(Signal, usize, usize, Option<usize>)> = None;
        let mut consider = |signal, usage, limit, group| {
            if best.is_none_or(|(_, u, l, _)| tighter((usage, limit), (u, l))) {
                best = Some((signal, usage, limit, group));
            }
        };
        if let Some(limit) = self.process_limit {
            consider(Signal::ProcessLimit, process_bytes, limit, None);
        }
        for (i, g) in self.groups.iter().enumerate() {
            if let Some((usage, limit)) = g.level.usage_and_limit() {
                consider(g.level.version.signal(), moved(usage), limit, Some(i));
            }
        }
        // Whether the host itself is short of memory (usage past the low
        // watermark of MemTotal), for host-wide PSI below.
        let mut host_tight = false;
        if let Some(info) = self.host.as_ref().and_then(|h| h.last.filter(|_| h.fault.is_none())) {
            let (usage, limit) = info.usage_and_limit();
            let usage = moved(usage);
            host_tight = usage >= self.marks.low_mark(limit);
            consider(Signal::MemAvailable, usage, limit, None);
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
                consider(Signal::Psi, process_bytes, process_bytes, None);
            }
            psi.pending = false;
        }
        self.trigger_group = best.and_then(|b| b.3);
        match best {
            Some((signal, usage, limit, _)) => {
                Reading { limit, usage, headroom: limit.saturating_sub(usage), trigger: Some(signal) }
            }
            None => {
                Reading { limit: usize::MAX, usage: process_bytes, headroom: usize::MAX - process_bytes, trigger: None }
            }
        }
    }

    /// Whether the process `pid` feels `trigger` (the last reading's) as
    /// this one does, so that a group of managers may share it out
    /// (`group` module): a host-wide signal (`MemAvailable`, PSI) always;
    /// a cgroup if `pid` is inside the triggering cgroup (its own group or
    /// a descendant); the process limit never. When it cannot be told
    /// (`pid` gone, another namespace), `true`: the group shares as if
    /// all members felt it.
    #[cfg_attr(loom, allow(dead_code))] // groups (not under loom) ask
    pub(crate) fn shares_trigger(&self, trigger: Option<Signal>, pid: u64) -> bool {
        match trigger {
            Some(Signal::MemAvailable | Signal::Psi) => true,
            Some(Signal::CgroupV1 | Signal::CgroupV2) => {
                let Some(g) = self.trigger_group.and_then(|i| self.groups.get(i)) else { return true };
                let version = g.level.version;
                let Some(own) = self.groups.iter().find(|o| o.level.version == version) else { return true };
                let up = own.level.dir.components().count().saturating_sub(g.level.dir.components().count());
                let own_path = match version {
                    Version::V1 => &self.cgroup_paths[0],
                    Version::V2 => &self.cgroup_paths[1],
                };
                let Some(own_path) = own_path else { return true };
                super::cgroup::shares_cgroup(&self.proc_root, pid, version, own_path, up).unwrap_or(true)
            }
            Some(Signal::ProcessLimit) | None => false,
        }
    }

    /// The watermarks `signal` follows.
    fn marks_for(&self, signal: Signal) -> &Watermarks {
        if signal == Signal::ProcessLimit {
            &self.own_marks
        } else {
            &self.marks
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
            Some(signal) => {
                let marks = *self.marks_for(signal);
                self.hysteresis.step(&marks, reading.usage, reading.limit)
            }
        }
    }

    /// The bytes `reading`'s usage may grow by before its trigger's high
    /// mark (`usize::MAX` without a trigger, 0 after a PSI stall): room
    /// that a cache may fill with no reclaim.
    pub(crate) fn room(&self, reading: &Reading) -> usize {
        match reading.trigger {
            None => usize::MAX,
            Some(Signal::Psi) => 0,
            Some(signal) => self.marks_for(signal).high_mark(reading.limit).saturating_sub(reading.usage),
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
            reading.trigger.and_then(|t| poll::interval(reading.usage, reading.limit, true, self.marks_for(t)));
        if let Some(limit) = self.process_limit {
            out = poll::shorter(out, poll::interval(self.process_bytes, limit, false, &self.own_marks));
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
}
