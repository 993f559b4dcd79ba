//! Discovery: finding the signals under the proc root, reading the
//! files that feed the reports, and arming the kernel notifications
//! (never fatal, INV-1).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

use super::cgroup::{self, c_path, read_text, Version, STAT_BUF};
use super::meminfo;
use super::notify::{self, Kind, Notifier};
use super::psi;
use super::signal::FileFault;
use super::watermark::{Hysteresis, Watermarks};
use super::{Group, Host, Pressure, PressureConfig, Psi, Signal, SignalReport};

impl Pressure {
    /// Finds the signals under `cfg.proc_root`, reads each once and arms
    /// the kernel notifications (if `cfg.notifications`). Never fails
    /// (INV-1).
    pub(crate) fn discover(cfg: PressureConfig) -> Pressure {
        let root = cfg.proc_root.as_path();
        let mut p = Pressure {
            marks: cfg.watermarks.unwrap_or(Watermarks::DEFAULT),
            own_marks: cfg.watermarks.unwrap_or(Watermarks::PROCESS_LIMIT),
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
            trigger_group: None,
            cgroup_paths: [None, None],
            proc_root: root.to_path_buf(),
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
                p.cgroup_paths = [v1.path, v2.path];
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
    pub(super) fn rearm_threshold(&mut self, i: usize) {
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

    pub(super) fn read_host(&mut self, buf: &mut [u8]) {
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

    pub(super) fn read_psi(&mut self, buf: &mut [u8]) {
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
}

/// A report for a signal discovery looked for and did not find.
fn missing(signal: Signal, at: &Path, fault: FileFault) -> SignalReport {
    let mut r = SignalReport::new(signal, at.display().to_string());
    r.add_error(fault);
    r
}
