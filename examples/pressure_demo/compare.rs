//! `--compare`: the spike scenario against other caches, each contender in
//! a memory cgroup of its own with a real limit.
//!
//! The parent (root; a cgroup v2 hierarchy with the memory controller, else
//! the v1 memory controller) makes one child group per contender with the
//! limit (`--limit-mib`, default 1024), re-executes this binary in it with
//! the hidden argument [`CHILD_ARG`] naming the contender, waits, and reads
//! what the child left: a timeline CSV (one row per 100 ms, written as it
//! goes, so a killed child leaves its rows up to the kill), its exit status
//! (SIGKILL) and the group's `oom_kill` counter (`memory.oom_control` in
//! v1, `memory.events` in v2). Then it prints one table, writes
//! `pressure_compare.csv` and `pressure_compare.svg`, and removes every
//! group it made (on an error or a panic too: the groups and the children
//! are guards).
//!
//! Each child joins its group first thing (it writes its pid to
//! `cgroup.procs`), warms its cache with the hottest keys up to its
//! capacity, then runs the demo's workload (Zipf 0.99 over a million 4 KiB
//! values, every hit checked byte for byte) while a spike of strong memory
//! worth 60 % of the limit is allocated at a quarter of the run and freed at
//! half of it. The contenders:
//!
//! - `moka-peak`: `moka::sync::Cache<u64, Arc<[u8]>>` with a weigher,
//!   sized for the peak (limit − 10 %);
//! - `moka-safe`: the same sized for safety (limit − spike − 10 %);
//! - `quick-poll`: `quick_cache::sync::Cache` sized for the peak, with a
//!   thread that reads the group's usage once a second and calls
//!   `set_capacity`: down by the excess when usage is above 90 % of the
//!   limit, back up (at most to the peak size) when it is below 70 %;
//! - `discardable`: `discardable::Cache` in the global manager, a cache
//!   that wants more than the group holds (its capacity and the manager's
//!   limit are the group's limit), with a process limit of the group's
//!   limit (strong plus discardable bytes; the allocator's direct reclaim
//!   works against it, its marks 97 % / 95 %), discovering the group's
//!   limit itself too (its cgroup signal): the marks alone decide how much
//!   it keeps, in normal times and during the spike.
//!
//! `DiscardAlloc` is this binary's global allocator, so the peers allocate
//! through it too: one allocator for everyone. The peers' weigher charges
//! each entry what its `Arc<[u8]>` costs in that allocator (measured at the
//! child's start), so "MiB of cache" means the same for all four.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use plotters::prelude::{RGBColor, SeriesLabelPosition, BLACK};

use discardable::{Cache, DiscardAlloc, Manager};

use super::{
    drive, hold_spike, mib, plot, value_of, Args, WorkerCounters, Zipf, AFTER, BEFORE, CHUNK, KEYS, MIB, PHASES,
    SPIKE_HELD, VALUE, ZIPF_S,
};

/// The hidden argument that makes this process a contender.
pub(crate) const CHILD_ARG: &str = "--contender";

/// Seconds per contender when `--secs` is not given: four runs of this (the
/// peak-sized moka ends early) take about two minutes.
const DEFAULT_SECS: f64 = 28.0;
/// The spike: 60 % of the limit (614 MiB of 1 GiB).
const SPIKE_SHARE: f64 = 0.6;
/// What a cache sized "for the peak" leaves free: 10 % of the limit, for the
/// process's own strong memory (the Zipf table, the maps) and the kernel's.
const MARGIN_SHARE: f64 = 0.1;
/// One timeline row per this.
const ROW: Duration = Duration::from_millis(100);
/// Rows per printed line: one second.
const ROWS_PER_LINE: usize = 10;
/// The quick_cache poller's period and thresholds (fractions of the limit).
const POLL: Duration = Duration::from_secs(1);
const POLL_HIGH: f64 = 0.90;
const POLL_TARGET: f64 = 0.80;
const POLL_GROW: f64 = 0.70;

/// The contenders, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    MokaPeak,
    MokaSafe,
    QuickPoll,
    Ours,
}

const KINDS: [Kind; 4] = [Kind::MokaPeak, Kind::MokaSafe, Kind::QuickPoll, Kind::Ours];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::MokaPeak => "moka-peak",
            Kind::MokaSafe => "moka-safe",
            Kind::QuickPoll => "quick-poll",
            Kind::Ours => "discardable",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::MokaPeak => "moka, sized for the peak",
            Kind::MokaSafe => "moka, sized for safety",
            Kind::QuickPoll => "quick_cache + 1 s usage poller",
            Kind::Ours => "discardable::Cache",
        }
    }

    fn color(self) -> RGBColor {
        match self {
            Kind::MokaPeak => RGBColor(220, 30, 30),
            Kind::MokaSafe => RGBColor(230, 140, 0),
            Kind::QuickPoll => RGBColor(30, 80, 220),
            Kind::Ours => RGBColor(0, 150, 60),
        }
    }

    fn from_name(name: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.name() == name)
    }
}

/// The byte figures of a run, all derived from the limit.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    limit: usize,
    spike: usize,
    margin: usize,
}

impl Sizes {
    fn new(limit_mib: usize) -> Sizes {
        let limit = limit_mib * MIB;
        let spike = ((limit as f64 * SPIKE_SHARE) as usize / CHUNK).max(1) * CHUNK;
        Sizes { limit, spike, margin: (limit as f64 * MARGIN_SHARE) as usize }
    }

    /// The cache's capacity, bytes.
    fn capacity(self, kind: Kind) -> usize {
        match kind {
            Kind::MokaSafe => self.limit.saturating_sub(self.spike + self.margin).max(MIB),
            // A cache that wants more than the group holds: the manager's
            // own limit and the group's marks bound it.
            Kind::Ours => self.limit,
            _ => self.limit - self.margin,
        }
    }
}

// ---------------------------------------------------------------------------
// cgroups

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

impl Version {
    fn usage_file(self) -> &'static str {
        match self {
            Version::V1 => "memory.usage_in_bytes",
            Version::V2 => "memory.current",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Version::V1 => "cgroup v1",
            Version::V2 => "cgroup v2",
        }
    }
}

/// Where the groups are made.
#[derive(Debug)]
struct Controller {
    version: Version,
    root: PathBuf,
}

/// Whether the effective uid is 0 (from `/proc/self/status`: no `unsafe`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:").map(|r| r.split_whitespace().nth(1) == Some("0"))))
        .unwrap_or(false)
}

/// The memory controller, looked for where the pressure layer looks: a
/// cgroup2 mount (`/sys/fs/cgroup`, `/sys/fs/cgroup/unified`) whose
/// `cgroup.controllers` lists `memory`, else the v1 controller at
/// `/sys/fs/cgroup/memory`.
fn find_controller() -> Result<Controller, String> {
    for mount in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let root = Path::new(mount);
        let listed = std::fs::read_to_string(root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"));
        if listed {
            // Children get the memory files only if the parent delegates the
            // controller to them.
            let control = root.join("cgroup.subtree_control");
            let enabled = std::fs::read_to_string(&control).is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"));
            if !enabled {
                std::fs::write(&control, "+memory")
                    .map_err(|e| format!("cannot enable the memory controller in {}: {e}", control.display()))?;
            }
            return Ok(Controller { version: Version::V2, root: root.to_path_buf() });
        }
    }
    let root = Path::new("/sys/fs/cgroup/memory");
    if root.join("memory.limit_in_bytes").exists() && root.join("cgroup.procs").exists() {
        return Ok(Controller { version: Version::V1, root: root.to_path_buf() });
    }
    Err("no cgroup memory controller found (no cgroup2 mount listing `memory` at /sys/fs/cgroup or \
         /sys/fs/cgroup/unified, no v1 controller at /sys/fs/cgroup/memory)"
        .into())
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A child memory group with a limit, removed on drop.
#[derive(Debug)]
struct Group {
    dir: PathBuf,
    version: Version,
}

impl Group {
    fn create(ctl: &Controller, tag: &str, limit: usize) -> Result<Group, String> {
        let dir = ctl.root.join(format!("discardable-compare-{}-{tag}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let group = Group { dir, version: ctl.version };
        let file = match ctl.version {
            Version::V1 => group.dir.join("memory.limit_in_bytes"),
            Version::V2 => group.dir.join("memory.max"),
        };
        std::fs::write(&file, limit.to_string()).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        let read = read_u64(&file);
        if read != Some(limit as u64) {
            return Err(format!("{} reads {read:?} after writing {limit}", file.display()));
        }
        if ctl.version == Version::V2 {
            // No swap for the contenders (a host with swap would otherwise
            // turn the OOM kill into thrashing); absent without swap support.
            let _ = std::fs::write(group.dir.join("memory.swap.max"), "0");
        }
        Ok(group)
    }

    /// The kernel's OOM kills in this group.
    fn oom_kills(&self) -> Option<u64> {
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        let text = std::fs::read_to_string(self.dir.join(file)).ok()?;
        text.lines().find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
    }

    /// The highest usage the kernel saw, bytes.
    fn peak(&self) -> Option<u64> {
        match self.version {
            Version::V1 => read_u64(&self.dir.join("memory.max_usage_in_bytes")),
            Version::V2 => read_u64(&self.dir.join("memory.peak")),
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // The child was waited for (or killed and waited for) before this
        // runs; the kernel may take a moment to let the group go.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    eprintln!("warning: could not remove {}: {e}", self.dir.display());
                    return;
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// A child process, killed and reaped on drop unless it was waited for.
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// The child: one contender

/// What the workload needs of a cache.
trait Store: Send + Sync {
    /// `Some(correct)` on a hit, `None` on a miss.
    fn lookup(&self, key: u64, expected: &[u8]) -> Option<bool>;
    /// Whether the insert succeeded.
    fn insert(&self, key: u64, value: &[u8]) -> bool;
    /// The cache's size in bytes, as it counts them.
    fn weight(&self) -> usize;
    fn entries(&self) -> u64;
    /// Runs deferred maintenance (moka's pending tasks).
    fn settle(&self) {}
    /// Sets the capacity, bytes (quick_cache's `set_capacity`).
    fn resize(&self, _bytes: u64) {}
}

struct Moka(moka::sync::Cache<u64, Arc<[u8]>>);

impl Store for Moka {
    fn lookup(&self, key: u64, expected: &[u8]) -> Option<bool> {
        self.0.get(&key).map(|v| *v == *expected)
    }
    fn insert(&self, key: u64, value: &[u8]) -> bool {
        self.0.insert(key, Arc::from(value));
        true
    }
    fn weight(&self) -> usize {
        self.0.weighted_size() as usize
    }
    fn entries(&self) -> u64 {
        self.0.entry_count()
    }
    fn settle(&self) {
        self.0.run_pending_tasks();
    }
}

/// quick_cache's weigher: every entry costs what one `Arc<[u8]>` value
/// costs in the allocator.
#[derive(Debug, Clone, Copy)]
struct EntryCost(u64);

impl quick_cache::Weighter<u64, Arc<[u8]>> for EntryCost {
    fn weight(&self, _: &u64, _: &Arc<[u8]>) -> u64 {
        self.0
    }
}

struct Quick(quick_cache::sync::Cache<u64, Arc<[u8]>, EntryCost>);

impl Store for Quick {
    fn lookup(&self, key: u64, expected: &[u8]) -> Option<bool> {
        self.0.get(&key).map(|v| *v == *expected)
    }
    fn insert(&self, key: u64, value: &[u8]) -> bool {
        self.0.insert(key, Arc::from(value));
        true
    }
    fn weight(&self) -> usize {
        self.0.weight() as usize
    }
    fn entries(&self) -> u64 {
        self.0.len() as u64
    }
    fn resize(&self, bytes: u64) {
        self.0.set_capacity(bytes);
    }
}

struct Ours(Cache<u64, [u8]>);

impl Store for Ours {
    fn lookup(&self, key: u64, expected: &[u8]) -> Option<bool> {
        self.0.get(&key).map(|v| *v == *expected)
    }
    fn insert(&self, key: u64, value: &[u8]) -> bool {
        self.0.insert(key, value).is_ok()
    }
    fn weight(&self) -> usize {
        self.0.weighted_size()
    }
    fn entries(&self) -> u64 {
        self.0.stats().entries
    }
}

/// What one `Arc<[u8]>` of [`VALUE`] bytes costs in the global allocator
/// (`DiscardAlloc`): measured on 256 of them, single-threaded.
fn arc_cost() -> usize {
    const N: usize = 256;
    let bytes = vec![1u8; VALUE];
    let mut held: Vec<Arc<[u8]>> = Vec::with_capacity(N);
    let before = DiscardAlloc::stats().in_use;
    for _ in 0..N {
        held.push(Arc::from(&bytes[..]));
    }
    let after = DiscardAlloc::stats().in_use;
    let cost = after.saturating_sub(before) / N;
    // Outside DiscardAlloc (or a counter that moves in other units), the
    // value plus the two reference counts.
    if (VALUE..2 * VALUE).contains(&cost) {
        cost
    } else {
        VALUE + 16
    }
}

/// Resident set size from `/proc/self/statm` (its second field, in pages),
/// bytes.
fn rss() -> usize {
    let pages: usize = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

/// The page size without `unsafe`: `VmRSS` of `/proc/self/status` (KiB)
/// over the resident pages of `/proc/self/statm`, rounded to a known page
/// size (checked once; 4 KiB if either is missing).
fn page_size() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        let statm: Option<usize> =
            std::fs::read_to_string("/proc/self/statm").ok().and_then(|s| s.split_whitespace().nth(1)?.parse().ok());
        let vm_rss: Option<usize> = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok()));
        match (statm, vm_rss) {
            (Some(pages), Some(kib)) if pages > 0 => {
                let ratio = kib * 1024 / pages;
                [4096usize, 16384, 65536].into_iter().min_by_key(|p| p.abs_diff(ratio)).unwrap_or(4096)
            }
            _ => 4096,
        }
    })
}

/// Runs one contender; the exit code says whether its values were right
/// (0), wrong (1), or the run could not be done (3).
pub(crate) fn child(args: &Args, name: &str) -> ExitCode {
    match child_run(args, name) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("pressure_demo contender {name}: {e}");
            ExitCode::from(3)
        }
    }
}

fn child_run(args: &Args, name: &str) -> Result<bool, Box<dyn std::error::Error>> {
    let kind = Kind::from_name(name).ok_or_else(|| format!("unknown contender {name:?}"))?;
    let dir = args.cgroup.clone().ok_or("--cgroup missing")?;
    let csv_path = args.csv.clone().ok_or("--csv missing")?;
    // Join the group before anything big is allocated (and before the
    // manager looks for its cgroup).
    std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
        .map_err(|e| format!("cannot join {}: {e}", dir.display()))?;
    let group_name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let mine = std::fs::read_to_string("/proc/self/cgroup")?;
    if !mine.lines().any(|l| l.ends_with(&format!("/{group_name}"))) {
        return Err(format!("not in {group_name} after joining it: {mine}").into());
    }
    let version = if dir.join("memory.limit_in_bytes").exists() { Version::V1 } else { Version::V2 };
    let usage_file = dir.join(version.usage_file());

    let sizes = Sizes::new(args.limit_mib);
    let capacity = sizes.capacity(kind);
    let cost = arc_cost();
    let tag = kind.name();
    let mut manager = None;
    let store: Arc<dyn Store> = match kind {
        Kind::MokaPeak | Kind::MokaSafe => Arc::new(Moka(
            moka::sync::Cache::builder()
                .max_capacity(capacity as u64)
                .weigher(move |_: &u64, _: &Arc<[u8]>| cost as u32)
                .build(),
        )),
        Kind::QuickPoll => Arc::new(Quick(quick_cache::sync::Cache::with_weighter(
            capacity / cost,
            capacity as u64,
            EntryCost(cost as u64),
        ))),
        Kind::Ours => {
            let m: &'static Manager =
                Manager::builder().limit(sizes.limit).process_limit(sizes.limit).install_global()?;
            manager = Some(m);
            Arc::new(Ours(Cache::builder().manager(m).capacity(capacity).build()?))
        }
    };
    let per_entry = if kind == Kind::Ours { VALUE } else { cost };
    println!(
        "[{tag}] {}: capacity {} MiB ({} entries of {per_entry} B), limit {} MiB, spike {} MiB, {} worker(s); \
         an Arc<[u8]> of {VALUE} B costs {cost} B in DiscardAlloc",
        kind.title(),
        capacity / MIB,
        capacity / per_entry,
        sizes.limit / MIB,
        sizes.spike / MIB,
        args.threads
    );
    if let Some(m) = manager {
        for r in m.signals() {
            if r.limit.is_some() {
                println!(
                    "[{tag}] manager signal {}: {} (limit {} MiB, notification {})",
                    r.signal,
                    r.source,
                    r.limit.unwrap_or(0) >> 20,
                    if r.notified { "armed" } else { "none" }
                );
            }
        }
    }

    let zipf = Arc::new(Zipf::new(KEYS, ZIPF_S));
    let stop = Arc::new(AtomicBool::new(false));
    let phase = Arc::new(AtomicU8::new(BEFORE));
    let counters: Arc<Vec<WorkerCounters>> = Arc::new((0..args.threads).map(|_| WorkerCounters::default()).collect());
    let wrong = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let secs = args.secs;
    let (at, until) = (Duration::from_secs_f64(secs / 4.0), Duration::from_secs_f64(secs / 2.0));

    let mut file = std::fs::File::create(&csv_path)?;
    file.write_all(b"t_s,phase,rss_mib,cgroup_mib,strong_mib,cache_mib,entries,hits,misses,wrong\n")?;

    // Warm-up, not timed: the hottest keys up to the capacity, inserted by
    // the workers themselves (each its share). A value freed by another
    // thread than the one that allocated it goes back to that thread's
    // heap; values warmed up by the otherwise idle main thread would leave
    // their blocks there, unused, as the workers evict them.
    let warm = Instant::now();
    let ready = Arc::new(std::sync::Barrier::new(args.threads + 1));
    let go = Arc::new(std::sync::Barrier::new(args.threads + 1));
    let workers: Vec<_> = (0..args.threads)
        .map(|id| {
            let (store, zipf, stop, counters, wrong, errors, ready, go) = (
                Arc::clone(&store),
                Arc::clone(&zipf),
                Arc::clone(&stop),
                Arc::clone(&counters),
                Arc::clone(&wrong),
                Arc::clone(&errors),
                Arc::clone(&ready),
                Arc::clone(&go),
            );
            let (threads, warm_keys) = (args.threads as u64, (capacity / per_entry) as u64);
            thread::spawn(move || {
                let mut value = vec![0u8; VALUE];
                for key in (id as u64..warm_keys).step_by(threads as usize) {
                    value_of(key, &mut value);
                    if !store.insert(key, &value) {
                        errors.fetch_add(1, Relaxed);
                    }
                }
                drop(value);
                ready.wait();
                go.wait();
                drive(&zipf, &stop, id, &counters[id], |key, expected| match store.lookup(key, expected) {
                    Some(correct) => {
                        if !correct {
                            wrong.fetch_add(1, Relaxed);
                        }
                        true
                    }
                    None => {
                        if !store.insert(key, expected) {
                            errors.fetch_add(1, Relaxed);
                        }
                        false
                    }
                })
            })
        })
        .collect();
    ready.wait();
    store.settle();
    println!(
        "[{tag}] warm-up: {:.0} MiB in {} entries in {:.2?}; rss {:.0} MiB, group usage {:.0} MiB",
        mib(store.weight()),
        store.entries(),
        warm.elapsed(),
        mib(rss()),
        read_u64(&usage_file).map_or(0.0, |u| mib(u as usize))
    );
    let start = Instant::now();
    go.wait();
    let corrupt = Arc::new(AtomicU64::new(0));
    let spiker = {
        let (phase, corrupt) = (Arc::clone(&phase), Arc::clone(&corrupt));
        let spike = sizes.spike;
        thread::spawn(move || {
            hold_spike(
                spike,
                &phase,
                start,
                (at, until),
                || {},
                |_, bad| {
                    corrupt.fetch_add(bad as u64, Relaxed);
                },
            )
        })
    };
    // The glue users write today: poll the group's usage, resize.
    let poller = (kind == Kind::QuickPoll).then(|| {
        let (store, stop, usage_file) = (Arc::clone(&store), Arc::clone(&stop), usage_file.clone());
        thread::spawn(move || quick_poller(&*store, &stop, &usage_file, sizes, capacity as u64, tag))
    });

    let mut rows = String::new();
    let mut last = (0.0f64, 0u64, 0u64);
    let mut tick = 0u32;
    while start.elapsed().as_secs_f64() < secs {
        tick += 1;
        thread::sleep((ROW * tick).saturating_sub(start.elapsed()));
        let t = start.elapsed().as_secs_f64();
        let (hits, misses) =
            counters.iter().fold((0, 0), |(h, m), c| (h + c.hits.load(Relaxed), m + c.misses.load(Relaxed)));
        let (rss, usage, strong) = (rss(), read_u64(&usage_file).unwrap_or(0) as usize, DiscardAlloc::stats().in_use);
        let ph = phase.load(Relaxed);
        rows.clear();
        let _ = writeln!(
            rows,
            "{t:.2},{},{:.2},{:.2},{:.2},{:.2},{},{hits},{misses},{}",
            PHASES[usize::from(ph)],
            mib(rss),
            mib(usage),
            mib(strong),
            mib(store.weight()),
            store.entries(),
            wrong.load(Relaxed)
        );
        file.write_all(rows.as_bytes())?;
        if tick as usize % ROWS_PER_LINE == 0 {
            let ops = (hits + misses) - (last.1 + last.2);
            let hit = if ops == 0 { 0.0 } else { (hits - last.1) as f64 / ops as f64 };
            println!(
                "[{tag}] {t:>5.1} s  rss {:>6.0}  group {:>6.0}  strong {:>6.0}  cache {:>6.0} MiB  {:>7} entries  \
                 hit {:>5.1} %  {:>8.0} ops/s  {}",
                mib(rss),
                mib(usage),
                mib(strong),
                mib(store.weight()),
                store.entries(),
                100.0 * hit,
                ops as f64 / (t - last.0).max(1e-9),
                PHASES[usize::from(ph)]
            );
            last = (t, hits, misses);
        }
    }
    stop.store(true, Relaxed);
    for w in workers {
        w.join().map_err(|_| "a worker panicked")?;
    }
    if let Some(p) = poller {
        p.join().map_err(|_| "the poller panicked")?;
    }
    let times = spiker.join().map_err(|_| "the spike thread panicked")?;
    let (wrong, errors, corrupt) = (wrong.load(Relaxed), errors.load(Relaxed), corrupt.load(Relaxed));
    println!(
        "[{tag}] done: spike allocated in {:.2} s from {:.2} s, freed at {:.2} s; {wrong} wrong values, {errors} \
         insert errors, {corrupt} spike bytes corrupt{}",
        times.alloc.1 - times.alloc.0,
        times.alloc.0,
        times.freed,
        manager.map_or(String::new(), |m| {
            let s = m.stats();
            format!(
                "; manager: {} discarded, {} direct reclaims, {} panics",
                s.discarded_count, s.direct_reclaims, s.manager_panics
            )
        })
    );
    Ok(wrong == 0 && errors == 0 && corrupt == 0 && manager.is_none_or(|m| m.stats().manager_panics == 0))
}

/// quick_cache's poller: once a second, read the group's usage; above
/// [`POLL_HIGH`] of the limit shrink the capacity by the excess over
/// [`POLL_TARGET`], below [`POLL_GROW`] grow it back by the headroom up to
/// `max`.
fn quick_poller(store: &dyn Store, stop: &AtomicBool, usage_file: &Path, sizes: Sizes, max: u64, tag: &str) {
    let limit = sizes.limit as f64;
    let mut capacity = max;
    let mut next = Instant::now() + POLL;
    while !stop.load(Relaxed) {
        thread::sleep(Duration::from_millis(20));
        if Instant::now() < next {
            continue;
        }
        next += POLL;
        let Some(usage) = read_u64(usage_file) else { continue };
        let usage = usage as f64;
        let new = if usage > POLL_HIGH * limit {
            (store.weight() as f64 - (usage - POLL_TARGET * limit)).max(16.0 * MIB as f64) as u64
        } else if usage < POLL_GROW * limit {
            ((capacity as f64 + (POLL_TARGET * limit - usage)) as u64).min(max)
        } else {
            capacity
        };
        if new != capacity {
            capacity = new;
            store.resize(new);
            println!("[{tag}] poller: group usage {:.0} MiB -> set_capacity({} MiB)", usage / MIB as f64, new >> 20);
        }
    }
}

// ---------------------------------------------------------------------------
// The parent

/// One row of a child's timeline.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    t: f64,
    phase: u8,
    rss: f64,
    cgroup: f64,
    strong: f64,
    cache: f64,
    entries: u64,
    hits: u64,
    misses: u64,
    wrong: u64,
}

impl Sample {
    fn parse(line: &str) -> Option<Sample> {
        let f: Vec<&str> = line.trim().split(',').collect();
        if f.len() != 10 {
            return None;
        }
        Some(Sample {
            t: f[0].parse().ok()?,
            phase: PHASES.iter().position(|p| *p == f[1])? as u8,
            rss: f[2].parse().ok()?,
            cgroup: f[3].parse().ok()?,
            strong: f[4].parse().ok()?,
            cache: f[5].parse().ok()?,
            entries: f[6].parse().ok()?,
            hits: f[7].parse().ok()?,
            misses: f[8].parse().ok()?,
            wrong: f[9].parse().ok()?,
        })
    }

    fn ops(&self) -> u64 {
        self.hits + self.misses
    }
}

/// Hit ratio and operations per second between two samples.
fn rate(a: &Sample, b: &Sample) -> (f64, f64) {
    let ops = b.ops().saturating_sub(a.ops());
    let hit = if ops == 0 { 0.0 } else { b.hits.saturating_sub(a.hits) as f64 / ops as f64 };
    (hit, ops as f64 / (b.t - a.t).max(1e-9))
}

/// How a contender's run ended.
#[derive(Debug)]
struct Outcome {
    kind: Kind,
    status: Option<ExitStatus>,
    timed_out: bool,
    oom_kills: Option<u64>,
    peak: Option<u64>,
    rows: Vec<Sample>,
    /// When the spike was due, seconds.
    spike_at: f64,
}

impl Outcome {
    fn killed(&self) -> bool {
        self.status.and_then(|s| s.signal()) == Some(libc::SIGKILL)
    }

    fn oom_killed(&self) -> bool {
        self.killed() && !self.timed_out && self.oom_kills.unwrap_or(0) > 0
    }

    fn survived(&self) -> bool {
        self.status.is_some_and(|s| s.code() == Some(0))
    }

    fn wrong(&self) -> u64 {
        self.rows.last().map_or(0, |r| r.wrong)
    }

    fn describe(&self) -> String {
        let at = self.rows.last().map_or(0.0, |r| r.t);
        // The kill came after the last row, within one row's time: a row
        // taken just before the spike started still says "before".
        let phase = match self.rows.last() {
            Some(r) if r.phase == BEFORE && r.t + ROW.as_secs_f64() >= self.spike_at => PHASES[1],
            Some(r) => PHASES[usize::from(r.phase)],
            None => PHASES[0],
        };
        match self.status {
            _ if self.timed_out => "timed out (killed)".to_string(),
            _ if self.oom_killed() => format!("OOM-killed at t={at:.1} s ({phase})"),
            Some(s) if s.code() == Some(0) => "survived".to_string(),
            Some(s) if s.code() == Some(1) => "survived, checks FAILED".to_string(),
            Some(s) => match s.signal() {
                Some(sig) => format!("killed by signal {sig} at t={at:.1} s"),
                None => format!("error (exit {})", s.code().unwrap_or(-1)),
            },
            None => "not run".to_string(),
        }
    }

    /// The mean of `f` over the rows of `phase` (in MiB, as the rows are).
    fn mean(&self, phase: u8, f: impl Fn(&Sample) -> f64) -> Option<f64> {
        let rows: Vec<f64> = self.rows.iter().filter(|r| r.phase == phase).map(f).collect();
        (!rows.is_empty()).then(|| rows.iter().sum::<f64>() / rows.len() as f64)
    }

    /// Hit ratio and ops/s over the rows of `phase`, from the row before its
    /// first one.
    fn phase(&self, phase: u8) -> Option<(f64, f64)> {
        let first = self.rows.iter().position(|r| r.phase == phase)?;
        let last = self.rows.iter().rposition(|r| r.phase == phase)?;
        let from = first.saturating_sub(1);
        (last > from).then(|| rate(&self.rows[from], &self.rows[last]))
    }
}

/// Why `--compare` cannot run here: exit 2.
enum Refusal {
    Unsupported(String),
    Failed(Box<dyn std::error::Error>),
}

impl<E: Into<Box<dyn std::error::Error>>> From<E> for Refusal {
    fn from(e: E) -> Self {
        Refusal::Failed(e.into())
    }
}

/// The `--compare` run.
pub(crate) fn compare(args: &Args) -> ExitCode {
    match compare_run(args) {
        Ok(code) => code,
        Err(Refusal::Unsupported(why)) => {
            eprintln!("pressure_demo --compare: {why}");
            ExitCode::from(2)
        }
        Err(Refusal::Failed(e)) => {
            eprintln!("pressure_demo --compare: {e}");
            ExitCode::FAILURE
        }
    }
}

fn compare_run(args: &Args) -> Result<ExitCode, Refusal> {
    if !is_root() {
        return Err(Refusal::Unsupported(
            "needs root (it makes a memory cgroup per contender); run it with sudo, or run the demo without \
             --compare"
                .into(),
        ));
    }
    let ctl = find_controller().map_err(Refusal::Unsupported)?;
    let secs = if args.secs_given { args.secs } else { DEFAULT_SECS };
    let sizes = Sizes::new(args.limit_mib);
    let exe = std::env::current_exe()?;
    let tmp = TempDir(std::env::temp_dir().join(format!("pressure-compare-{}", std::process::id())));
    std::fs::create_dir_all(&tmp.0)?;
    println!(
        "pressure_demo --compare: {} contenders, each in its own {} memory group under {} with a limit of {} MiB \
         (no swap); Zipf({ZIPF_S}) over {KEYS} keys of {} KiB, {} worker thread(s), {secs:.0} s each: a strong \
         spike of {} MiB at {:.1} s, freed at {:.1} s",
        KINDS.len(),
        ctl.version.label(),
        ctl.root.display(),
        sizes.limit / MIB,
        VALUE / 1024,
        args.threads,
        sizes.spike / MIB,
        secs / 4.0,
        secs / 2.0
    );
    println!(
        "  every contender allocates through DiscardAlloc (this binary's global allocator): one allocator for all, \
         so the comparison is of the caches; the peers' weigher charges an entry its real allocation"
    );

    let chosen = |kind: Kind| args.only.as_deref().is_none_or(|only| only.split(',').any(|n| n == kind.name()));
    let mut outcomes = Vec::new();
    for kind in KINDS.into_iter().filter(|&k| chosen(k)) {
        println!();
        let group = Group::create(&ctl, kind.name(), sizes.limit)?;
        let csv = tmp.0.join(format!("{}.csv", kind.name()));
        let child = Command::new(&exe)
            .arg(CHILD_ARG)
            .arg(kind.name())
            .arg("--cgroup")
            .arg(&group.dir)
            .arg("--csv")
            .arg(&csv)
            .args(["--secs", &secs.to_string(), "--threads", &args.threads.to_string()])
            .args(["--limit-mib", &args.limit_mib.to_string()])
            .spawn()?;
        let mut running = Running(Some(child));
        let deadline = Instant::now() + Duration::from_secs_f64(2.0 * secs + 120.0);
        let mut timed_out = false;
        let status = loop {
            let child = running.0.as_mut().ok_or("no child")?;
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                let _ = child.kill();
                break child.wait()?;
            }
            thread::sleep(Duration::from_millis(50));
        };
        running.0 = None;
        let rows: Vec<Sample> =
            std::fs::read_to_string(&csv).unwrap_or_default().lines().skip(1).filter_map(Sample::parse).collect();
        let outcome = Outcome {
            kind,
            status: Some(status),
            timed_out,
            oom_kills: group.oom_kills(),
            peak: group.peak(),
            rows,
            spike_at: secs / 4.0,
        };
        println!("[{}] exit: {status}; {}; group oom_kill {:?}", kind.name(), outcome.describe(), outcome.oom_kills);
        outcomes.push(outcome);
        drop(group);
    }

    print_table(&outcomes, &sizes);
    write_csv("pressure_compare.csv", &outcomes)?;
    plot_compare("pressure_compare.svg", &outcomes, &sizes, secs)?;
    println!("wrote pressure_compare.csv and pressure_compare.svg");

    let mut failed = Vec::new();
    for o in &outcomes {
        if o.wrong() > 0 {
            failed.push(format!("{}: {} wrong values", o.kind.name(), o.wrong()));
        }
        let broken = match o.status {
            Some(s) => s.code().is_some_and(|c| c > 1) || o.timed_out,
            None => true,
        };
        if broken {
            failed.push(format!("{}: {}", o.kind.name(), o.describe()));
        }
    }
    if let Some(ours) = outcomes.iter().find(|o| o.kind == Kind::Ours) {
        if !ours.survived() {
            failed.push(format!("{}: {}", ours.kind.title(), ours.describe()));
        }
    }
    failed.dedup();
    if failed.is_empty() {
        println!("PASS: discardable::Cache survived with every value correct");
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &failed {
            println!("FAIL: {f}");
        }
        Ok(ExitCode::FAILURE)
    }
}

fn print_table(outcomes: &[Outcome], sizes: &Sizes) {
    println!();
    println!(
        "{:<31} {:<30} {:>8} {:>8} | {:>6} {:>9} | {:>6} {:>9} | {:>6} {:>9} | {:>5}",
        "contender", "outcome", "capacity", "peak", "before", "", "spike", "", "after", "", "wrong"
    );
    println!(
        "{:<31} {:<30} {:>8} {:>8} | {:>6} {:>9} | {:>6} {:>9} | {:>6} {:>9} | {:>5}",
        "", "", "MiB", "MiB", "hit %", "ops/s", "hit %", "ops/s", "hit %", "ops/s", ""
    );
    for o in outcomes {
        let mut line = format!(
            "{:<31} {:<30} {:>8} {:>8}",
            o.kind.title(),
            o.describe(),
            sizes.capacity(o.kind) / MIB,
            o.peak.map_or("?".to_string(), |p| format!("{:.0}", p as f64 / MIB as f64)),
        );
        for phase in [BEFORE, SPIKE_HELD, AFTER] {
            match o.phase(phase) {
                Some((hit, ops)) => {
                    let _ = write!(line, " | {:>6.1} {ops:>9.0}", 100.0 * hit);
                }
                None => {
                    let _ = write!(line, " | {:>6} {:>9}", "-", "-");
                }
            }
        }
        let _ = write!(line, " | {:>5}", o.wrong());
        println!("{line}");
    }
    println!(
        "(limit {} MiB per group; peak = the group's highest usage as the kernel counts it; phases as the child saw \
         them: the spike phase runs from its first allocation to its free)",
        sizes.limit / MIB
    );
    let limit = sizes.limit as f64 / MIB as f64;
    for o in outcomes {
        let (Some(before), Some(cache)) = (o.mean(BEFORE, |r| r.cgroup), o.mean(SPIKE_HELD, |r| r.cache)) else {
            continue;
        };
        println!(
            "  {}: group usage before the spike {:.3} of the limit (mean of the rows); cache during the spike {:.0} MiB",
            o.kind.name(),
            before / limit,
            cache
        );
    }
}

fn write_csv(path: &str, outcomes: &[Outcome]) -> std::io::Result<()> {
    let mut out = String::from(
        "contender,t_s,phase,rss_mib,cgroup_mib,strong_mib,cache_mib,entries,hits,misses,hit_ratio,ops_per_s,wrong\n",
    );
    for o in outcomes {
        let mut prev = Sample::default();
        for r in &o.rows {
            let (hit, ops) = rate(&prev, r);
            let _ = writeln!(
                out,
                "{},{:.2},{},{:.2},{:.2},{:.2},{:.2},{},{},{},{hit:.4},{ops:.0},{}",
                o.kind.name(),
                r.t,
                PHASES[usize::from(r.phase)],
                r.rss,
                r.cgroup,
                r.strong,
                r.cache,
                r.entries,
                r.hits,
                r.misses,
                r.wrong
            );
            prev = *r;
        }
    }
    std::fs::write(path, out)
}

/// One plot with all four: the group's usage, the cache's size and the hit
/// ratio (over 1 s windows), the spike shaded.
fn plot_compare(path: &str, outcomes: &[Outcome], sizes: &Sizes, secs: f64) -> Result<(), Box<dyn std::error::Error>> {
    let limit = mib(sizes.limit);
    let label = |o: &Outcome| format!("{} ({})", o.kind.title(), o.describe());
    let series = |f: fn(&Sample) -> f64| -> Vec<plot::Line> {
        outcomes
            .iter()
            .map(|o| plot::Line {
                label: label(o),
                color: o.kind.color(),
                points: o.rows.iter().map(|r| (r.t, f(r))).collect(),
            })
            .collect()
    };
    let mut usage = series(|r| r.cgroup);
    usage.push(plot::Line { label: "cgroup limit".into(), color: BLACK, points: vec![(0.0, limit), (secs, limit)] });
    let hits = outcomes
        .iter()
        .map(|o| plot::Line {
            label: label(o),
            color: o.kind.color(),
            points: o
                .rows
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, r)| (r.t, 100.0 * rate(&o.rows[i.saturating_sub(ROWS_PER_LINE)], r).0))
                .collect(),
        })
        .collect();
    let panels = [
        plot::Panel {
            caption: Some(format!(
                "4 caches, each in a {} MiB memory cgroup, under a {} MiB strong-memory spike",
                sizes.limit / MIB,
                sizes.spike / MIB
            )),
            y_desc: "group usage MiB",
            y_max: limit * 1.1,
            height: 400,
            legend: SeriesLabelPosition::LowerRight,
            lines: usage,
        },
        plot::Panel {
            caption: None,
            y_desc: "cache MiB",
            y_max: limit * 1.1,
            height: 300,
            legend: SeriesLabelPosition::UpperRight,
            lines: series(|r| r.cache),
        },
        plot::Panel {
            caption: None,
            y_desc: "hit ratio % (1 s)",
            y_max: 100.0,
            height: 300,
            legend: SeriesLabelPosition::LowerRight,
            lines: hits,
        },
    ];
    plot::draw(path, 1100, secs, (secs / 4.0, secs / 2.0), &panels)
}
