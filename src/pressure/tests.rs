//! Discovery, sampling, decisions and reports against fake `/proc` and
//! `/sys` trees in a temp dir (cgroup v2 cannot be tested for real on a
//! hybrid host whose cgroup2 mount lacks the memory controller), plus tests
//! that arm real kernel notifications: a PSI trigger and cgroup v1
//! thresholds. Those skip with a reason when the kernel or the permissions
//! do not allow it, and fail instead when `CI=true`.

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::*;

/// The marks the scenarios are written for.
const MARKS: Watermarks = match Watermarks::new(0.9, 0.8) {
    Ok(m) => m,
    Err(_) => panic!("valid marks"),
};

const MIB: usize = 1 << 20;

/// A fake root directory, removed on drop.
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn new(name: &str) -> Tree {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("discardable-pressure-{}-{name}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        Tree { root }
    }

    fn write(&self, rel: &str, text: impl AsRef<[u8]>) {
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn remove(&self, rel: &str) {
        fs::remove_file(self.root.join(rel)).unwrap();
    }

    fn meminfo(&self, total: usize, available: usize) {
        self.write(
            "proc/meminfo",
            format!("MemTotal: {} kB\nMemFree: 1 kB\nMemAvailable: {} kB\n", total / 1024, available / 1024),
        );
    }

    fn psi(&self, rel: &str, avg10: &str) {
        self.write(
            rel,
            format!(
                "some avg10={avg10} avg60=0.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
            ),
        );
    }

    fn config(&self) -> PressureConfig {
        // The scenarios below are written for marks at 90 % / 80 % (their
        // numbers say so); the defaults have a test of their own.
        PressureConfig {
            proc_root: self.root.clone(),
            notifications: false,
            watermarks: Some(MARKS),
            ..PressureConfig::default()
        }
    }

    fn path(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn report(p: &Pressure, signal: Signal, source: &str) -> SignalReport {
    p.reports()
        .into_iter()
        .find(|r| r.signal == signal && r.source == source)
        .unwrap_or_else(|| panic!("no {signal} report for {source}: {:#?}", p.reports()))
}

const V2: &str = "sys/fs/cgroup/app.slice/svc";

/// A pure-v2 host: the group `/app.slice/svc` with a 1000 MiB `memory.max`
/// inside `/app.slice` with 4000 MiB, a roomy host.
fn v2_tree() -> Tree {
    let t = Tree::new("v2");
    t.write("proc/self/cgroup", "0::/app.slice/svc\n");
    t.write(&format!("{V2}/memory.current"), format!("{}\n", 600 * MIB));
    t.write(&format!("{V2}/memory.max"), format!("{}\n", 1000 * MIB));
    t.write(&format!("{V2}/memory.high"), "max\n");
    t.write(&format!("{V2}/memory.stat"), format!("anon 1\nfile 2\nactive_file 5\ninactive_file {}\n", 100 * MIB));
    t.psi(&format!("{V2}/memory.pressure"), "0.00");
    t.write("sys/fs/cgroup/app.slice/memory.current", format!("{}\n", 1500 * MIB));
    t.write("sys/fs/cgroup/app.slice/memory.max", format!("{}\n", 4000 * MIB));
    t.write("sys/fs/cgroup/app.slice/memory.stat", "inactive_file 0\n");
    // The root group has no memory.current: not a level.
    t.write("sys/fs/cgroup/memory.stat", "inactive_file 0\n");
    t.meminfo(16 << 30, 12 << 30);
    t.psi("proc/pressure/memory", "0.00");
    t
}

fn set_v2(t: &Tree, current: usize, inactive: usize) {
    t.write(&format!("{V2}/memory.current"), format!("{current}\n"));
    t.write(&format!("{V2}/memory.stat"), format!("anon 1\ninactive_file {inactive}\n"));
}

#[test]
fn v2_discovery_finds_the_group_and_its_limited_ancestor() {
    let t = v2_tree();
    let p = Pressure::discover(t.config());
    let own = report(&p, Signal::CgroupV2, &t.path(V2));
    assert_eq!(own.last_reading, Some(500 * MIB as u64), "usage net of inactive_file");
    assert_eq!(own.limit, Some(1000 * MIB as u64), "memory.high is max, so memory.max");
    assert_eq!(own.error, None);
    assert!(!own.notified, "notifications off for fake trees");
    let parent = report(&p, Signal::CgroupV2, &t.path("sys/fs/cgroup/app.slice"));
    assert_eq!((parent.last_reading, parent.limit), (Some(1500 * MIB as u64), Some(4000 * MIB as u64)));
    // PSI comes from the group's own pressure file.
    let psi = report(&p, Signal::Psi, &t.path(&format!("{V2}/memory.pressure")));
    assert_eq!((psi.last_reading, psi.error), (Some(0), None));
    let host = report(&p, Signal::MemAvailable, &t.path("proc/meminfo"));
    assert_eq!((host.last_reading, host.limit), (Some(12 << 30), Some(16 << 30)));
    assert_eq!(p.reports().len(), 4, "{:#?}", p.reports());
    assert!(p.reports().iter().all(|r| r.error.is_none()));
    assert_eq!(p.fds().count(), 0);
}

#[test]
fn v2_sample_counts_inactive_file_as_headroom_with_hysteresis() {
    let t = v2_tree();
    let mut p = Pressure::discover(t.config());
    let r = p.sample(10 * MIB);
    assert_eq!(
        r,
        Reading { limit: 1000 * MIB, usage: 500 * MIB, headroom: 500 * MIB, trigger: Some(Signal::CgroupV2) }
    );
    assert_eq!(p.decide(&r), None);

    // 960 MiB charged, 100 MiB of it inactive page cache: 860, in the band.
    set_v2(&t, 960 * MIB, 100 * MIB);
    let r = p.sample(10 * MIB);
    assert_eq!((r.usage, r.trigger), (860 * MIB, Some(Signal::CgroupV2)));
    assert_eq!(p.decide(&r), None, "below the high mark of 900 MiB");

    // The same charge with no inactive cache is above the high mark.
    set_v2(&t, 960 * MIB, 0);
    let r = p.sample(10 * MIB);
    assert_eq!(p.decide(&r), Some(160 * MIB), "down to the low mark of 800 MiB");

    // Cache turning inactive is headroom: 960 - 100 = 860, still in the
    // band, so the episode goes on down to the low mark.
    set_v2(&t, 960 * MIB, 100 * MIB);
    let r = p.sample(10 * MIB);
    assert_eq!(p.decide(&r), Some(60 * MIB));
    set_v2(&t, 960 * MIB, 200 * MIB);
    let r = p.sample(10 * MIB);
    assert_eq!(p.decide(&r), None, "760 MiB is below the low mark");

    // memory.high below memory.max takes over as the limit.
    t.write(&format!("{V2}/memory.high"), format!("{}\n", 800 * MIB));
    let r = p.sample(10 * MIB);
    assert_eq!((r.limit, r.usage, r.headroom), (800 * MIB, 760 * MIB, 40 * MIB));
    assert_eq!(p.decide(&r), Some(760 * MIB - MARKS.low_mark(800 * MIB)));
}

#[test]
fn the_tightest_signal_triggers() {
    let t = v2_tree();
    let mut p = Pressure::discover(PressureConfig { process_limit: Some(100 * MIB), ..t.config() });
    // Process at 60 %, group at 50 %, parent at 37.5 %, host at 25 %.
    assert_eq!(p.sample(60 * MIB).trigger, Some(Signal::ProcessLimit));
    // The parent's usage rises to 95 %: it is the tightest now.
    t.write("sys/fs/cgroup/app.slice/memory.current", format!("{}\n", 3800 * MIB));
    let r = p.sample(60 * MIB);
    assert_eq!((r.trigger, r.limit, r.usage), (Some(Signal::CgroupV2), 4000 * MIB, 3800 * MIB));
    // The host at 97 % beats it.
    t.meminfo(16 << 30, (16 << 30) * 3 / 100);
    let r = p.sample(60 * MIB);
    assert_eq!((r.trigger, r.limit), (Some(Signal::MemAvailable), 16 << 30));
    let process = report(&p, Signal::ProcessLimit, "process limit (strong + discardable bytes)");
    assert_eq!((process.last_reading, process.limit), (Some(60 * MIB as u64), Some(100 * MIB as u64)));
}

#[test]
fn a_cgroup_trigger_is_shared_only_by_processes_inside_that_cgroup() {
    let t = v2_tree();
    // Peers: one in our own group, one in a child of it, one in a sibling
    // under the same parent, one at the root, one whose file is gone.
    t.write("proc/101/cgroup", "0::/app.slice/svc\n");
    t.write("proc/102/cgroup", "0::/app.slice/svc/worker\n");
    t.write("proc/103/cgroup", "0::/app.slice/other\n");
    t.write("proc/104/cgroup", "0::/\n");
    let mut p = Pressure::discover(t.config());
    // Our own group (500 of 1000 MiB, net of inactive) is the tightest.
    let r = p.sample(10 * MIB);
    assert_eq!(r.trigger, Some(Signal::CgroupV2));
    let feels = |p: &Pressure, pid| p.shares_trigger(r.trigger, pid);
    assert!(feels(&p, 101) && feels(&p, 102), "the group itself and its child feel its limit");
    assert!(!feels(&p, 103) && !feels(&p, 104), "a sibling and the root do not");
    assert!(feels(&p, 105), "a peer that cannot be told apart shares, as before");
    // The parent (app.slice) at 95 %: the sibling is inside it now.
    t.write("sys/fs/cgroup/app.slice/memory.current", format!("{}\n", 3800 * MIB));
    let r = p.sample(10 * MIB);
    assert_eq!((r.trigger, r.limit), (Some(Signal::CgroupV2), 4000 * MIB));
    assert!(p.shares_trigger(r.trigger, 103) && !p.shares_trigger(r.trigger, 104));
    // Host signals are everyone's; the process limit is nobody else's.
    assert!(p.shares_trigger(Some(Signal::MemAvailable), 104) && p.shares_trigger(Some(Signal::Psi), 104));
    assert!(!p.shares_trigger(Some(Signal::ProcessLimit), 101) && !p.shares_trigger(None, 101));
}

const V1: &str = "sys/fs/cgroup/memory/docker/abc";

/// A hybrid host: memory on v1 at `/docker/abc`, cgroup2 without memory.
fn v1_tree() -> Tree {
    let t = Tree::new("v1");
    t.write("proc/self/cgroup", "12:memory:/docker/abc\n5:cpu,cpuacct:/docker/abc\n0::/\n");
    t.write(&format!("{V1}/memory.usage_in_bytes"), format!("{}\n", 300 * MIB));
    t.write(&format!("{V1}/memory.limit_in_bytes"), format!("{}\n", 512 * MIB));
    t.write(
        &format!("{V1}/memory.stat"),
        format!("cache 1\ninactive_file 7\nhierarchical_memory_limit 9\ntotal_inactive_file {}\n", 44 * MIB),
    );
    // The parent is unlimited: not a level of its own.
    t.write("sys/fs/cgroup/memory/docker/memory.usage_in_bytes", "1\n");
    t.write("sys/fs/cgroup/memory/docker/memory.limit_in_bytes", "9223372036854771712\n");
    t.write("sys/fs/cgroup/memory/docker/memory.stat", "total_inactive_file 0\n");
    t.write("sys/fs/cgroup/unified/cgroup.procs", "");
    t.meminfo(16 << 30, 12 << 30);
    t.psi("proc/pressure/memory", "0.00");
    t
}

#[test]
fn v1_discovery_and_sample() {
    let t = v1_tree();
    let mut p = Pressure::discover(t.config());
    let own = report(&p, Signal::CgroupV1, &t.path(V1));
    assert_eq!((own.last_reading, own.limit, own.error), (Some(256 * MIB as u64), Some(512 * MIB as u64), None));
    // Hybrid host: no v2 report, PSI from /proc.
    assert!(p.reports().iter().all(|r| r.signal != Signal::CgroupV2), "{:#?}", p.reports());
    report(&p, Signal::Psi, &t.path("proc/pressure/memory"));
    assert_eq!(p.reports().len(), 3);

    let r = p.sample(0);
    assert_eq!(r, Reading { limit: 512 * MIB, usage: 256 * MIB, headroom: 256 * MIB, trigger: Some(Signal::CgroupV1) });
    t.write(&format!("{V1}/memory.usage_in_bytes"), format!("{}\n", 520 * MIB));
    let r = p.sample(0);
    assert_eq!((r.usage, r.headroom), (476 * MIB, 36 * MIB));
    let low = MARKS.low_mark(512 * MIB);
    assert_eq!(p.decide(&r), Some(476 * MIB - low));
    assert_eq!(p.poll_interval(&r), Some(poll::FAST));
}

#[test]
fn v1_inside_a_container_without_a_cgroup_namespace() {
    // /proc/self/cgroup names the host path; the mount shows the
    // container's own group as its root.
    let t = Tree::new("v1-container");
    t.write("proc/self/cgroup", "4:memory:/docker/abc\n");
    t.write("sys/fs/cgroup/memory/memory.usage_in_bytes", "100\n");
    t.write("sys/fs/cgroup/memory/memory.limit_in_bytes", "1000\n");
    t.write("sys/fs/cgroup/memory/memory.stat", "total_inactive_file 0\n");
    let mut p = Pressure::discover(t.config());
    let r = report(&p, Signal::CgroupV1, &t.path("sys/fs/cgroup/memory"));
    assert_eq!((r.last_reading, r.limit), (Some(100), Some(1000)));
    assert_eq!(p.sample(0).trigger, Some(Signal::CgroupV1));
}

#[test]
fn missing_and_unreadable_files_are_reported_never_fatal() {
    // Nothing at all.
    let t = Tree::new("empty");
    let mut p = Pressure::discover(t.config());
    let reports = p.reports();
    for (signal, source) in [
        (Signal::CgroupV1, t.path("proc/self/cgroup")),
        (Signal::CgroupV2, t.path("proc/self/cgroup")),
        (Signal::MemAvailable, t.path("proc/meminfo")),
        (Signal::Psi, t.path("proc/pressure/memory")),
    ] {
        let r = reports.iter().find(|r| r.signal == signal).unwrap();
        assert_eq!(r.source, source);
        assert!(r.error.as_deref().is_some_and(|e| e.contains("No such file")), "{r:?}");
        assert_eq!(r.last_reading, None);
    }
    let r = p.sample(123);
    assert_eq!(r, Reading { limit: usize::MAX, usage: 123, headroom: usize::MAX - 123, trigger: None });
    assert_eq!(p.decide(&r), None);
    assert_eq!(p.poll_interval(&r), None, "nothing to poll");

    // A group whose memory.stat is unreadable (a directory) and whose
    // limit file is garbled; meminfo without MemAvailable; garbled PSI.
    let t = v1_tree();
    fs::remove_file(t.root.join(V1).join("memory.stat")).unwrap();
    fs::create_dir(t.root.join(V1).join("memory.stat")).unwrap();
    t.write(&format!("{V1}/memory.limit_in_bytes"), "lots\n");
    t.write("proc/meminfo", "MemTotal: 100 kB\n");
    t.write("proc/pressure/memory", "weird\n");
    let mut p = Pressure::discover(t.config());
    let own = report(&p, Signal::CgroupV1, &t.path(V1));
    let err = own.error.unwrap();
    assert!(err.contains("memory.limit_in_bytes: unexpected format"), "{err}");
    assert_eq!(own.last_reading, Some(300 * MIB as u64), "usage still read; no inactive pages counted");
    assert_eq!(own.limit, None);
    let host = report(&p, Signal::MemAvailable, &t.path("proc/meminfo"));
    assert_eq!(host.error.as_deref(), Some("/proc/meminfo: unexpected format"));
    let psi = report(&p, Signal::Psi, &t.path("proc/pressure/memory"));
    assert_eq!(psi.error.as_deref(), Some("memory.pressure: unexpected format"));
    assert_eq!(p.sample(0).trigger, None, "no signal with a limit left");

    // The files come back. A level without a limit is re-read only every
    // REFRESH, or at once after a notification.
    t.write(&format!("{V1}/memory.limit_in_bytes"), format!("{}\n", 512 * MIB));
    t.meminfo(16 << 30, 12 << 30);
    assert_eq!(p.sample(0).trigger, Some(Signal::MemAvailable), "the unlimited level is not due yet");
    p.refresh = true;
    assert_eq!(p.sample(0).trigger, Some(Signal::CgroupV1));
    let own = report(&p, Signal::CgroupV1, &t.path(V1));
    assert!(own.error.unwrap().starts_with("memory.stat: read failed"), "only the stat dir is left");

    // The usage file vanishing keeps the group, with an error.
    t.remove(&format!("{V1}/memory.usage_in_bytes"));
    assert_eq!(p.sample(0).trigger, Some(Signal::MemAvailable));
    let own = report(&p, Signal::CgroupV1, &t.path(V1));
    assert!(own.error.unwrap().starts_with("memory.usage_in_bytes: open failed"));
}

#[test]
fn v2_without_memory_files_is_reported_when_there_is_no_v1() {
    let t = Tree::new("v2-root");
    t.write("proc/self/cgroup", "0::/\n");
    t.write("sys/fs/cgroup/cgroup.procs", "");
    t.meminfo(16 << 30, 12 << 30);
    let p = Pressure::discover(t.config());
    let r = p.reports().into_iter().find(|r| r.signal == Signal::CgroupV2).unwrap();
    assert!(r.error.unwrap().contains("memory.current"));
}

#[test]
fn polled_psi_stall_sheds_part_of_the_process_once_per_window() {
    let t = v1_tree();
    t.psi("proc/pressure/memory", "9.50");
    // Host-wide PSI counts only while the host is short too (84 % used,
    // past the low watermark but under the high one).
    t.meminfo(16 << 30, (16 << 30) * 5 / 32);
    let mut p = Pressure::discover(t.config());
    let r = p.sample(1000 * MIB);
    assert_eq!(r, Reading { limit: 1000 * MIB, usage: 1000 * MIB, headroom: 0, trigger: Some(Signal::Psi) });
    assert_eq!(p.decide(&r), Some(1000 * MIB - MARKS.low_mark(1000 * MIB)));
    assert_eq!(p.poll_interval(&r), Some(poll::FAST));
    // Within the same window the stall does not count again; the byte
    // signals decide, and the PSI one-shot started no episode.
    let r = p.sample(1000 * MIB);
    assert_eq!(r.trigger, Some(Signal::MemAvailable));
    assert_eq!(p.decide(&r), None);
    assert_eq!(report(&p, Signal::Psi, &t.path("proc/pressure/memory")).last_reading, Some(950));
    // Without process bytes there is nothing to shed.
    p.psi.as_mut().unwrap().last_stall = None;
    assert_eq!(p.sample(0).trigger, Some(Signal::MemAvailable));
}

#[test]
fn host_psi_is_ignored_while_the_host_has_memory() {
    // A stall elsewhere on the machine (another group at its limit) with
    // MemAvailable ample: not our problem on a cgroup v1 host.
    let t = v1_tree();
    t.psi("proc/pressure/memory", "9.50");
    let mut p = Pressure::discover(t.config());
    let r = p.sample(1000 * MIB);
    assert_eq!(r.trigger, Some(Signal::CgroupV1));
    assert_eq!(p.decide(&r), None);
}

#[test]
fn psi_trigger_events_count_once() {
    let t = v1_tree();
    t.meminfo(16 << 30, (16 << 30) * 5 / 32); // host short: host PSI counts
    let mut p = Pressure::discover(t.config());
    // Stand-in for an armed trigger: an eventfd reporting POLLPRI.
    let fd = os::eventfd().unwrap();
    let raw = fd.as_raw_fd();
    p.notifiers.push(Notifier::new(fd, Kind::Psi));
    p.psi.as_mut().unwrap().window = Some(Duration::from_secs(2));
    assert_eq!(p.fds().collect::<Vec<_>>(), [(raw, libc::POLLPRI)]);
    let r = p.sample(0);
    assert_eq!(p.poll_interval(&r).map(|d| d <= poll::SLOW), Some(true));
    assert_eq!(p.drain_fd(raw, libc::POLLPRI), Some(Signal::Psi));
    assert_eq!(p.drain_fd(-7, libc::POLLPRI), None, "not ours");
    assert_eq!(p.sample(100 * MIB).trigger, Some(Signal::Psi));
    assert_eq!(p.sample(100 * MIB).trigger, Some(Signal::MemAvailable), "consumed");
    assert!(report(&p, Signal::Psi, &t.path("proc/pressure/memory")).notified);
    // A dead trigger is dropped and reported; polling takes over.
    assert_eq!(p.drain_fd(raw, libc::POLLPRI | libc::POLLERR), Some(Signal::Psi));
    assert_eq!(p.fds().count(), 0);
    let r = report(&p, Signal::Psi, &t.path("proc/pressure/memory"));
    assert!(!r.notified);
    assert!(r.error.unwrap().starts_with("trigger: PSI trigger"));
}

#[test]
fn file_samples_are_reused_until_due_and_notifications_force_one() {
    let t = v1_tree();
    let mut p = Pressure::discover(PressureConfig { process_limit: Some(100 * MIB), ..t.config() });
    let group = |p: &Pressure| report(p, Signal::CgroupV1, &t.path(V1)).last_reading;
    let host = |p: &Pressure| report(p, Signal::MemAvailable, &t.path("proc/meminfo")).last_reading;
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);

    // The first sample reads the files: the group is at 256 of 512 MiB.
    let r = p.sample_if_due_at(10 * MIB, false, t0);
    assert_eq!((r.trigger, r.usage), (Some(Signal::CgroupV1), 256 * MIB));

    // Files change; a pass within FILE_MAX_AGE reads none of them (the
    // reports keep the old readings) but follows the process's own bytes:
    // 40 MiB more of them count in the group's usage.
    t.write(&format!("{V1}/memory.usage_in_bytes"), format!("{}\n", 500 * MIB));
    t.meminfo(16 << 30, 1 << 30);
    let r = p.sample_if_due_at(50 * MIB, false, ms(1));
    assert_eq!((r.trigger, r.usage), (Some(Signal::CgroupV1), 296 * MIB));
    assert_eq!((group(&p), host(&p)), (Some(256 * MIB as u64), Some(12 << 30)), "no file read");
    // The process limit is current on every pass.
    let r = p.sample_if_due_at(95 * MIB, false, ms(1));
    assert_eq!((r.trigger, r.usage), (Some(Signal::ProcessLimit), 95 * MIB));
    // Reclaim by the process shows at once: no second reclaim of the same
    // bytes before the files are read again.
    let r = p.sample_if_due_at(0, false, ms(1));
    assert_eq!((r.trigger, r.usage), (Some(Signal::CgroupV1), 246 * MIB));

    // A kernel notification forces a fresh sample at once.
    let threshold = os::eventfd().unwrap();
    let raw = threshold.as_raw_fd();
    os::write_u64(threshold.as_fd(), 1).unwrap();
    p.notifiers.push(Notifier::new(threshold, Kind::Threshold { level: 0, bytes: 1 << 40 }));
    assert_eq!(p.drain_fd(raw, libc::POLLIN), Some(Signal::CgroupV1));
    let r = p.sample_if_due_at(0, false, ms(1));
    assert_eq!((r.trigger, r.usage), (Some(Signal::MemAvailable), 15 << 30));
    assert_eq!((group(&p), host(&p)), (Some(456 * MIB as u64), Some(1 << 30)));

    // So does the caller's timer (`fresh`)...
    t.write(&format!("{V1}/memory.usage_in_bytes"), format!("{}\n", 300 * MIB));
    assert_eq!(p.sample_if_due_at(0, false, ms(2)).usage, 15 << 30, "reused");
    assert_eq!(group(&p), Some(456 * MIB as u64));
    assert_eq!(p.sample_if_due_at(0, true, ms(2)).usage, 15 << 30);
    assert_eq!(group(&p), Some(256 * MIB as u64), "read");
    // ... and age: FILE_MAX_AGE after the last file sample.
    t.meminfo(16 << 30, 12 << 30);
    let until = ms(2) + FILE_MAX_AGE;
    assert_eq!(p.sample_if_due_at(0, false, until - Duration::from_micros(1)).trigger, Some(Signal::MemAvailable));
    assert_eq!(host(&p), Some(1 << 30), "still reused");
    assert_eq!(p.sample_if_due_at(0, false, until).trigger, Some(Signal::CgroupV1));
    assert_eq!(host(&p), Some(12 << 30), "read");
}

#[test]
fn poll_interval_follows_headroom_and_cover() {
    let t = v1_tree();
    let mut p = Pressure::discover(t.config());
    // Group at 50 % (uncovered: notifications off), host at 25 %: the
    // group asks for the slow heartbeat.
    let r = p.sample(0);
    assert_eq!(p.poll_interval(&r), Some(poll::SLOW));
    // 70 % of the limit: between STEADY and SLOW.
    t.write(&format!("{V1}/memory.usage_in_bytes"), format!("{}\n", (512 * 7 / 10 + 44) * MIB));
    let r = p.sample(0);
    let d = p.poll_interval(&r).unwrap();
    assert!(d > poll::STEADY && d < poll::SLOW, "{d:?}");
    // A threshold above the raw usage covers the group: only the host's
    // heartbeat is left.
    let fd = os::eventfd().unwrap();
    p.notifiers.push(Notifier::new(fd, Kind::Threshold { level: 0, bytes: 1 << 40 }));
    assert_eq!(p.poll_interval(&r), Some(poll::SLOW));
    // Without the host signal, nothing needs polling at all.
    p.host = None;
    p.psi = None;
    assert_eq!(p.poll_interval(&r), None);
    // A threshold already below the raw usage covers nothing.
    p.notifiers.clear();
    p.notifiers.push(Notifier::new(os::eventfd().unwrap(), Kind::Threshold { level: 0, bytes: 1 }));
    assert_eq!(p.poll_interval(&r), Some(d));
}

#[test]
fn wait_reports_the_extra_fd_and_drains_notifications() {
    let t = v1_tree();
    let mut p = Pressure::discover(t.config());
    let wake = os::eventfd().unwrap();
    let threshold = os::eventfd().unwrap();
    os::write_u64(threshold.as_fd(), 1).unwrap();
    p.notifiers.push(Notifier::new(threshold, Kind::Threshold { level: 0, bytes: 1 << 40 }));
    let ready = p.wait(Some(Duration::from_secs(5)), Some(wake.as_fd())).unwrap();
    assert_eq!(ready, Ready { extra: false, notifications: 1 });
    assert_eq!(p.notifiers[0].fired, 1);
    assert!(report(&p, Signal::CgroupV1, &t.path(V1)).notified);
    os::write_u64(wake.as_fd(), 1).unwrap();
    let ready = p.wait(None, Some(wake.as_fd())).unwrap();
    assert_eq!(ready, Ready { extra: true, notifications: 0 });
    let start = Instant::now();
    assert_eq!(os::read_u64(wake.as_fd()), Ok(1));
    let ready = p.wait(Some(Duration::from_millis(20)), None).unwrap();
    assert_eq!(ready, Ready { extra: false, notifications: 0 });
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[test]
fn discovery_on_this_machine_never_fails() {
    let mut p = Pressure::discover(PressureConfig { process_limit: Some(1 << 30), ..PressureConfig::default() });
    let r = p.sample(1 << 20);
    assert!(r.trigger.is_some());
    let _ = p.decide(&r);
    let _ = p.poll_interval(&r);
    for report in p.reports() {
        eprintln!("{report:?}");
    }
    // One sample is cheap: tens of microseconds (the poll policy's CPU
    // estimate relies on it). Generous bound for debug builds and CI.
    let start = Instant::now();
    for _ in 0..100 {
        p.sample(1 << 20);
    }
    let per_sample = start.elapsed() / 100;
    eprintln!("one sample: {per_sample:?}");
    assert!(per_sample < Duration::from_millis(5), "{per_sample:?}");
}

// ---- real kernel notifications -------------------------------------------

/// Skips (returns) with a reason, or fails when `CI=true`.
fn skip(reason: impl std::fmt::Display) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason} (CI=true: failing instead of skipping)");
    }
    eprintln!("SKIPPED: {reason}");
}

#[test]
fn real_psi_trigger_arms_on_proc_pressure_memory() {
    let path = std::ffi::CString::new("/proc/pressure/memory").unwrap();
    let (fd, window) = match psi::arm(&path) {
        Ok(armed) => armed,
        Err(f) => return skip(format!("cannot arm a PSI trigger on /proc/pressure/memory: {f}")),
    };
    assert!(psi::WINDOWS.contains(&window));
    eprintln!("PSI trigger armed with a {window:?} window");
    let mut fds = [libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLPRI, revents: 0 }];
    let n = os::poll(&mut fds, Some(Duration::from_millis(10))).unwrap();
    assert_eq!(fds[0].revents & (libc::POLLERR | libc::POLLNVAL), 0, "a live trigger reports no error");
    assert!(n == 0 || fds[0].revents & libc::POLLPRI != 0);
    // And through discovery on the real root.
    let p = Pressure::discover(PressureConfig::default());
    let psi = p.reports().into_iter().find(|r| r.signal == Signal::Psi).unwrap();
    assert!(psi.notified, "{psi:?}");
    assert!(p.fds().any(|(_, events)| events == libc::POLLPRI));
}

/// This process's v1 memory group directory, if there is one.
fn own_v1_dir() -> Result<PathBuf, String> {
    let text = fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))?;
    let (_, v1) = cgroup::parse_proc_cgroup(&text);
    let path = v1.ok_or("no cgroup v1 memory controller in /proc/self/cgroup")?;
    let dir = Path::new("/").join(cgroup::V1_MOUNT).join(path.trim_start_matches('/'));
    if !dir.join("cgroup.event_control").exists() {
        return Err(format!("{} has no cgroup.event_control", dir.display()));
    }
    Ok(dir)
}

fn read_usize(path: &Path) -> usize {
    fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

#[test]
fn real_v1_threshold_fires_when_this_process_grows() {
    let dir = match own_v1_dir() {
        Ok(dir) => dir,
        Err(reason) => return skip(reason),
    };
    let usage = read_usize(&dir.join("memory.usage_in_bytes"));
    let threshold = usage + 32 * MIB;
    let efd = match notify::arm_v1(&dir, notify::Arg::Threshold(threshold)) {
        Ok(fd) => fd,
        Err(f) => return skip(format!("cannot register a threshold in {}: {f}", dir.display())),
    };
    let mut n = Notifier::new(efd, Kind::Threshold { level: 0, bytes: threshold });
    // Grow by 96 MiB of touched memory (other tests may shrink meanwhile;
    // 64 MiB of margin).
    let mut grown = vec![0u8; 96 * MIB];
    for page in grown.chunks_mut(4096) {
        page[0] = 1;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut fired = 0;
    while fired == 0 && Instant::now() < deadline {
        let mut fds = [libc::pollfd { fd: n.raw_fd(), events: n.events(), revents: 0 }];
        if os::poll(&mut fds, Some(Duration::from_millis(100))).unwrap() > 0 {
            match n.drain(fds[0].revents) {
                notify::Drained::Fired(k) => fired += k,
                notify::Drained::Gone(f) => panic!("threshold eventfd died: {f}"),
            }
        }
    }
    std::hint::black_box(&grown);
    assert!(fired > 0, "usage {} never crossed {threshold}", read_usize(&dir.join("memory.usage_in_bytes")));
}

/// A real v1 child group with a limit, seen through a fake root whose
/// `/proc/self/cgroup` names it and whose `/sys/fs/cgroup/memory` is the
/// real one: discovery arms the threshold and pressure levels for real, a
/// child process fills the group, and the manager-side loop wakes.
#[test]
fn real_v1_group_end_to_end() {
    let own = match own_v1_dir() {
        Ok(dir) => dir,
        Err(reason) => return skip(reason),
    };
    let name = format!("discardable-pressure-test-{}", std::process::id());
    let group = own.join(&name);
    if let Err(e) = fs::create_dir(&group) {
        return skip(format!("cannot create {}: {e}", group.display()));
    }
    struct Cleanup(PathBuf, PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.1);
            let _ = fs::remove_dir(&self.0);
        }
    }
    let shm = PathBuf::from(format!("/dev/shm/{name}"));
    let _cleanup = Cleanup(group.clone(), shm.clone());
    let limit = 256 * MIB;
    fs::write(group.join("memory.limit_in_bytes"), limit.to_string()).unwrap();

    let t = Tree::new("real-v1");
    let own_rel = own.strip_prefix(Path::new("/").join(cgroup::V1_MOUNT)).unwrap();
    t.write("proc/self/cgroup", format!("4:memory:/{}/{name}\n0::/\n", own_rel.display()));
    fs::create_dir_all(t.root.join("sys/fs/cgroup")).unwrap();
    std::os::unix::fs::symlink("/sys/fs/cgroup/memory", t.root.join("sys/fs/cgroup/memory")).unwrap();
    std::os::unix::fs::symlink("/proc/meminfo", t.root.join("proc/meminfo")).unwrap();
    std::os::unix::fs::symlink("/proc/pressure", t.root.join("proc/pressure")).unwrap();

    let mut p = Pressure::discover(PressureConfig { notifications: true, ..t.config() });
    let source = t.root.join("sys/fs/cgroup/memory").join(own_rel).join(&name).display().to_string();
    let r = report(&p, Signal::CgroupV1, &source);
    assert_eq!(r.limit, Some(limit as u64));
    assert!(r.notified && r.error.is_none(), "{r:?}");
    let high = MARKS.high_mark(limit);
    assert!(p.notifiers.iter().any(|n| n.kind == Kind::Threshold { level: 0, bytes: high }));
    let r = p.sample(0);
    // The group is covered by its threshold: only the host's MemAvailable
    // heartbeat is left, whose pace follows the real host's headroom (1 s
    // on an idle machine), never the fast pace of an uncovered group.
    let interval = p.poll_interval(&r).expect("the host heartbeat stays");
    assert!(interval > poll::FAST, "covered group polled like an uncovered one: {interval:?}");

    // A child joins the group and puts 240 MiB in tmpfs (charged to the
    // group, not reclaimable without swap).
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec dd if=/dev/zero of={} bs=1M count=240 status=none",
            group.display(),
            shm.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut woke_for = None;
    while woke_for.is_none() && Instant::now() < deadline {
        let fds: Vec<_> = p.fds().collect();
        let mut pfds: Vec<_> = fds.iter().map(|&(fd, events)| libc::pollfd { fd, events, revents: 0 }).collect();
        if os::poll(&mut pfds, Some(Duration::from_millis(100))).unwrap() > 0 {
            for pfd in pfds.iter().filter(|pfd| pfd.revents != 0) {
                woke_for = woke_for.or(p.drain_fd(pfd.fd, pfd.revents));
            }
        }
    }
    assert_eq!(woke_for, Some(Signal::CgroupV1));
    let r = p.sample(0);
    assert_eq!((r.trigger, r.limit), (Some(Signal::CgroupV1), limit));
    assert!(r.usage > high, "{r:?}");
    let target = p.decide(&r).expect("above the high mark");
    assert_eq!(target, r.usage - MARKS.low_mark(limit));
    assert_eq!(p.poll_interval(&r), Some(poll::FAST));

    // The limit is raised: the threshold is re-armed at the new high mark.
    fs::write(group.join("memory.limit_in_bytes"), (2 * limit).to_string()).unwrap();
    p.sample(0);
    let high2 = MARKS.high_mark(2 * limit);
    assert!(p.notifiers.iter().any(|n| n.kind == Kind::Threshold { level: 0, bytes: high2 }));
    assert_eq!(p.notifiers.iter().filter(|n| matches!(n.kind, Kind::Threshold { .. })).count(), 1);
}

/// Without explicit watermarks, byte signals reclaim from 90 % down to 87 %
/// of their limit and the process limit from 97 % down to 95 %; explicit
/// watermarks apply to every signal.
#[test]
fn default_marks_are_small_steps_and_tighter_for_the_process_limit() {
    let t = v1_tree();
    let mut p = Pressure::discover(PressureConfig { watermarks: None, ..t.config() });
    // 544 MiB charged, 44 MiB inactive: 500 of 512 MiB, above 90 %.
    t.write(&format!("{V1}/memory.usage_in_bytes"), format!("{}\n", 544 * MIB));
    let r = p.sample(0);
    assert_eq!((r.trigger, r.usage, r.limit), (Some(Signal::CgroupV1), 500 * MIB, 512 * MIB));
    let low = (512 * MIB) as f64 * 0.87;
    assert_eq!(p.decide(&r), Some(500 * MIB - low as usize), "down to 87 % of the group's limit");

    let t = Tree::new("default-marks-process");
    t.meminfo(16 << 30, 12 << 30);
    let config = PressureConfig { process_limit: Some(1000 * MIB), watermarks: None, ..t.config() };
    let mut p = Pressure::discover(config.clone());
    let r = p.sample(960 * MIB);
    assert_eq!(r.trigger, Some(Signal::ProcessLimit));
    assert_eq!(p.decide(&r), None, "96 % is under the process limit's high mark");
    let r = p.sample(980 * MIB);
    assert_eq!(p.decide(&r), Some(30 * MIB), "down to 95 % of the process limit");

    let mut p = Pressure::discover(PressureConfig { watermarks: Some(MARKS), ..config });
    let r = p.sample(960 * MIB);
    assert_eq!(p.decide(&r), Some(160 * MIB), "explicit marks apply to the process limit too");
}
