//! One memory budget for a whole process: a `Cache` that gives memory back
//! when the program's own ordinary (strong) memory needs it, and takes it
//! back afterwards.
//!
//! ```text
//! cargo run --release --example pressure_demo [-- --secs N] [--threads N]
//! cargo run --release --example pressure_demo -- --compare [--limit-mib N] [--only NAME,..]
//! ```
//!
//! No root, no cgroup, no configuration. `DiscardAlloc` is the global
//! allocator, so the manager sees every strong byte; the global manager has
//! a process limit (`ManagerBuilder::process_limit`: strong plus
//! discardable bytes, 512 MiB) and a `Cache<u64, [u8]>` of 4 KiB values
//! lives in it with a capacity of its own (384 MiB, three quarters of the
//! budget). Worker threads run a Zipf(0.99) workload over a million keys
//! (4 GiB if every value were kept): `get`, and on a miss compute the key's
//! value (a deterministic byte stream) and `insert` it. Every hit is checked
//! byte for byte against the generator. Before the clock starts the cache
//! is warmed with the hottest keys up to its capacity (so that a short run
//! starts in the steady state too).
//!
//! A quarter of the way through the run the same process allocates and
//! touches strong memory worth 60 % of the budget (`Vec<u8>`s of 4 MiB);
//! half way through it frees it. The cache cannot keep 384 MiB next to that:
//! the manager discards cold values (the allocating thread waits for it,
//! bounded, when it maps past the limit), the cache forgets their keys, and
//! once the spike is gone the workload's misses fill the cache again.
//!
//! It prints a line per second (time, strong MiB, cache MiB, entries, hit
//! ratio, operations, capacity evictions and pressure discards per second),
//! then a summary per phase (before, during, after the spike), and writes
//! the timeline at 100 ms resolution to `pressure_demo.csv` and a plot to
//! `pressure_demo.svg` in the current directory.
//!
//! The run checks its claims and exits 1 if one fails: every value read was
//! correct (and every spike byte too); no insert failed; the cache filled
//! before the spike, and the spike made the manager discard; the cache got
//! back to at least 70 % of its pre-spike size after the spike, and still
//! held that much over the last second of the run; and strong
//! plus discardable bytes, sampled every 5 ms and after each spike
//! allocation, never exceeded the process limit by more than `SLACK` (2 % of it).
//!
//! `--secs N` (default 40) scales the three phases (¼ before, ¼ spike, ½
//! after; on a busy host a late spike stretches the run so that the phase
//! after it still lasts a quarter, at most up to 4×). Default threads: one worker per CPU beyond the first, at most
//! two, so the manager and the spike have a CPU. `--compare [--limit-mib N]`
//! (root and a cgroup memory controller, else it exits 2) runs the spike
//! scenario against moka and quick_cache, each contender in a memory cgroup
//! of its own with a real limit (default 1 GiB, 28 s each unless `--secs`
//! is given); see `compare.rs`. It writes `pressure_compare.csv` and
//! `pressure_compare.svg`.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use discardable::{Cache, DiscardAlloc, Manager};

mod compare;
mod plot;

#[global_allocator]
static A: DiscardAlloc = DiscardAlloc::new();

const MIB: usize = 1 << 20;
/// The process budget: strong plus discardable bytes.
const PROCESS_LIMIT: usize = 512 * MIB;
/// The cache's own capacity: three quarters of the budget, so that in
/// normal times the process stays below the manager's low watermark (95 %)
/// and only the spike makes it reclaim.
const CAPACITY: usize = PROCESS_LIMIT / 4 * 3;
/// Bytes per value: one page each.
const VALUE: usize = 4096;
/// Distinct keys: 4 GiB of values, ten times what the cache can hold.
const KEYS: usize = 1 << 20;
/// The Zipf exponent.
const ZIPF_S: f64 = 0.99;
/// Strong bytes the spike allocates and touches: 60 % of the budget.
const SPIKE: usize = PROCESS_LIMIT / 10 * 6;
/// The spike allocates in `Vec<u8>`s of this size.
const CHUNK: usize = 4 * MIB;
/// How often the budget is sampled for the limit check.
const SAMPLE: Duration = Duration::from_millis(5);
/// One timeline row (CSV, plot) per this many samples: 100 ms.
const SAMPLES_PER_ROW: u32 = 20;
/// Rows per printed line: one second.
const ROWS_PER_LINE: usize = 10;
/// How far strong plus discardable bytes may exceed the process limit:
/// 2 % of it (about 10 MiB). The limit is enforced asynchronously by design
/// (a strong allocation never fails and waits at most 10 ms for the
/// manager), the two counters are read one after the other, and each
/// worker may be in the middle of an insert.
const SLACK: usize = PROCESS_LIMIT / 50;
/// After the spike the cache must get back to this fraction of the size it
/// had before it.
const RECOVERY: f64 = 0.70;
/// Before the spike the cache must have reached this fraction of its
/// capacity, or the recovery check would prove nothing.
const FILLED: f64 = 0.90;
/// Wrong values described in full (the rest are only counted).
const REPORTS: usize = 10;

/// Command line options.
#[derive(Debug, Clone)]
struct Args {
    secs: f64,
    /// Whether `--secs` was given (`--compare` has its own default).
    secs_given: bool,
    threads: usize,
    compare: bool,
    /// `--compare`: each contender's cgroup limit, MiB.
    limit_mib: usize,
    /// `--compare --only a,b`: run only these contenders.
    only: Option<String>,
    /// `--compare`'s hidden child arguments: the contender this process
    /// runs, the cgroup directory it joins and the CSV it writes.
    contender: Option<String>,
    cgroup: Option<std::path::PathBuf>,
    csv: Option<std::path::PathBuf>,
}

fn usage() -> ! {
    eprintln!("usage: pressure_demo [--secs N] [--threads N] [--compare [--limit-mib N] [--only NAME,..]]");
    std::process::exit(2);
}

fn parse_args() -> Args {
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = Args {
        secs: 40.0,
        secs_given: false,
        threads: (cpus - 1).clamp(1, 2),
        compare: false,
        limit_mib: 1024,
        only: None,
        contender: None,
        cgroup: None,
        csv: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--secs" => {
                out.secs = value().parse().unwrap_or_else(|_| usage());
                out.secs_given = true;
            }
            "--threads" => out.threads = value().parse().unwrap_or_else(|_| usage()),
            "--compare" => out.compare = true,
            "--limit-mib" => out.limit_mib = value().parse().unwrap_or_else(|_| usage()),
            "--only" => out.only = Some(value()),
            compare::CHILD_ARG => out.contender = Some(value()),
            "--cgroup" => out.cgroup = Some(value().into()),
            "--csv" => out.csv = Some(value().into()),
            _ => usage(),
        }
    }
    if !(out.secs.is_finite() && out.secs >= 2.0 && out.secs < 1e6) || out.threads == 0 || out.limit_mib < 64 {
        usage();
    }
    out
}

/// SplitMix64: the workers' random numbers and the value generator.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The value of `key`: `VALUE` bytes, word `i` a hash of the key and `i`, so
/// a zeroed page, another key's bytes or a shifted copy all differ.
fn value_of(key: u64, out: &mut [u8]) {
    let base = mix(key ^ 0x5EED_F00D_DA7A);
    for (i, word) in out.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&mix(base.wrapping_add(GOLDEN.wrapping_mul(i as u64 + 1))).to_le_bytes());
    }
}

/// Zipf(`s`) over ranks `0..n` by inverting its cumulative distribution
/// (a table of `n` floats: 8 MiB of strong memory for a million keys).
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / (k as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Self { cdf }
    }

    /// The rank for a uniform `u` in `[0, 1)`.
    fn sample(&self, u: f64) -> u64 {
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len() - 1) as u64
    }
}

/// One worker's counters, on a cache line of their own.
#[derive(Default)]
#[repr(align(64))]
struct WorkerCounters {
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What every thread shares.
struct Shared {
    cache: Cache<u64, [u8]>,
    zipf: Zipf,
    stop: AtomicBool,
    workers: Vec<WorkerCounters>,
    /// Hits whose bytes differed from the generator's.
    wrong: AtomicU64,
    /// Inserts that returned an error.
    insert_errors: AtomicU64,
    /// Spike bytes that read back wrong.
    spike_corrupt: AtomicU64,
    /// The first wrong values and errors, described.
    reports: Mutex<Vec<String>>,
    /// The highest strong + discardable bytes seen (sampler and spike).
    peak: AtomicUsize,
    /// Where the spike is: [`BEFORE`], [`SPIKE_HELD`] (allocating or held) or
    /// [`AFTER`] (freed).
    phase: AtomicU8,
}

/// [`Shared::phase`]: the spike has not started.
const BEFORE: u8 = 0;
/// [`Shared::phase`]: the spike memory is being allocated or is held.
const SPIKE_HELD: u8 = 1;
/// [`Shared::phase`]: the spike memory was freed.
const AFTER: u8 = 2;
/// Phase names, by [`Shared::phase`].
const PHASES: [&str; 3] = ["before", "spike", "after"];

impl Shared {
    fn report(&self, what: String) {
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        if reports.len() < REPORTS {
            reports.push(what);
        }
    }

    fn hits_misses(&self) -> (u64, u64) {
        self.workers.iter().fold((0, 0), |(h, m), w| (h + w.hits.load(Relaxed), m + w.misses.load(Relaxed)))
    }
}

/// Strong and discardable bytes now, the two sides of the process budget.
fn budget(manager: &Manager) -> (usize, usize) {
    let strong = DiscardAlloc::stats().in_use;
    (strong, manager.stats().discardable_bytes)
}

/// Records a budget sample in the peak; returns strong + discardable.
fn note_peak(shared: &Shared, manager: &Manager) -> usize {
    let (strong, discardable) = budget(manager);
    let total = strong + discardable;
    shared.peak.fetch_max(total, Relaxed);
    total
}

/// The workload loop, shared with `--compare`'s contenders: Zipf keys, each
/// handed with its expected value to `op`, which verifies a hit or inserts
/// on a miss and says which it was; `stop` is looked at every 256
/// operations.
fn drive(zipf: &Zipf, stop: &AtomicBool, id: usize, counters: &WorkerCounters, mut op: impl FnMut(u64, &[u8]) -> bool) {
    let mut rng = mix(0xC0FF_EE00 + id as u64);
    let mut expected = vec![0u8; VALUE];
    while !stop.load(Relaxed) {
        for _ in 0..256 {
            rng = rng.wrapping_add(GOLDEN);
            let u = (mix(rng) >> 11) as f64 / (1u64 << 53) as f64;
            let key = zipf.sample(u);
            value_of(key, &mut expected);
            if op(key, &expected) {
                counters.hits.fetch_add(1, Relaxed);
            } else {
                counters.misses.fetch_add(1, Relaxed);
            }
        }
    }
}

/// The workload: Zipf keys; a hit is verified, a miss computes and inserts.
fn worker(shared: &Shared, id: usize) {
    drive(&shared.zipf, &shared.stop, id, &shared.workers[id], |key, expected| match shared.cache.get(&key) {
        Some(value) => {
            if *value != *expected {
                shared.wrong.fetch_add(1, Relaxed);
                let first = value.iter().zip(expected).position(|(a, b)| a != b);
                shared.report(format!("key {key}: {} bytes read, first wrong byte at {first:?}", value.len()));
            }
            true
        }
        None => {
            if let Err(e) = shared.cache.insert(key, expected) {
                shared.insert_errors.fetch_add(1, Relaxed);
                shared.report(format!("insert of key {key} failed: {e}"));
            }
            false
        }
    });
}

/// When the spike thread allocated and freed its memory.
#[derive(Debug, Default, Clone, Copy)]
struct SpikeTimes {
    /// Seconds from the start of the run when the allocation began and ended.
    alloc: (f64, f64),
    /// Seconds from the start of the run when the memory was freed.
    freed: f64,
}

/// The spike, shared with `--compare`'s contenders: at `at` (from `start`)
/// sets `phase` to [`SPIKE_HELD`], allocates and touches `bytes` of strong
/// memory in `Vec<u8>`s of [`CHUNK`] (calling `on_chunk` after each), holds
/// them until `until`, checks every byte (calling `corrupt(chunk, bad
/// bytes)` for a chunk that changed), frees them and sets [`AFTER`].
fn hold_spike(
    bytes: usize,
    phase: &AtomicU8,
    start: Instant,
    (at, until): (Duration, Duration),
    mut on_chunk: impl FnMut(),
    mut corrupt: impl FnMut(usize, usize),
) -> SpikeTimes {
    let mut times = SpikeTimes::default();
    thread::sleep(at.saturating_sub(start.elapsed()));
    phase.store(SPIKE_HELD, Relaxed);
    times.alloc.0 = start.elapsed().as_secs_f64();
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(bytes / CHUNK);
    for i in 0..bytes / CHUNK {
        let mut chunk = Vec::with_capacity(CHUNK);
        chunk.resize(CHUNK, (i as u8) | 1); // touches every page
        chunks.push(chunk);
        on_chunk();
    }
    times.alloc.1 = start.elapsed().as_secs_f64();
    thread::sleep(until.saturating_sub(start.elapsed()));
    let mut pattern = [0u8; 4096];
    for (i, chunk) in chunks.iter().enumerate() {
        pattern.fill((i as u8) | 1);
        if !chunk.chunks(pattern.len()).all(|c| *c == pattern[..c.len()]) {
            corrupt(i, chunk.iter().filter(|&&b| b != pattern[0]).count());
        }
    }
    drop(chunks);
    times.freed = start.elapsed().as_secs_f64();
    phase.store(AFTER, Relaxed);
    times
}

/// Allocates and touches `SPIKE` strong bytes at `at`, frees them at `until`.
fn spike(shared: &Shared, manager: &Manager, start: Instant, at: Duration, until: Duration) -> SpikeTimes {
    hold_spike(
        SPIKE,
        &shared.phase,
        start,
        (at, until),
        || {
            note_peak(shared, manager);
        },
        |i, bad| {
            shared.spike_corrupt.fetch_add(bad as u64, Relaxed);
            shared.report(format!("spike chunk {i}: {bad} bytes changed"));
        },
    )
}

/// Inserts the hottest keys until the cache is at its capacity, so the run
/// starts in the steady state even when it is short. Returns how long it
/// took.
fn prefill(shared: &Shared) -> Duration {
    let start = Instant::now();
    let mut value = vec![0u8; VALUE];
    for key in 0..(CAPACITY / VALUE) as u64 {
        value_of(key, &mut value);
        if let Err(e) = shared.cache.insert(key, &value) {
            shared.insert_errors.fetch_add(1, Relaxed);
            shared.report(format!("warm-up insert of key {key} failed: {e}"));
        }
    }
    start.elapsed()
}

/// One timeline row: the state at `t` and the counters so far.
#[derive(Debug, Clone, Copy, Default)]
struct Row {
    t: f64,
    /// [`Shared::phase`] when the row was taken.
    phase: u8,
    strong: usize,
    discardable: usize,
    cache: usize,
    entries: u64,
    hits: u64,
    misses: u64,
    /// Values the cache lost so far (capacity and pressure).
    cache_discarded: u64,
    /// Values the manager discarded so far (pressure).
    manager_discarded: u64,
    /// The highest strong + discardable bytes sampled since the last row.
    peak: usize,
}

impl Row {
    fn ops(&self) -> u64 {
        self.hits + self.misses
    }
}

/// Rates between two rows.
struct Rates {
    hit_ratio: f64,
    ops: f64,
    evictions: f64,
    discards: f64,
}

fn rates(a: &Row, b: &Row) -> Rates {
    let dt = (b.t - a.t).max(1e-9);
    let ops = b.ops() - a.ops();
    let discards = b.manager_discarded - a.manager_discarded;
    Rates {
        hit_ratio: if ops == 0 { 0.0 } else { (b.hits - a.hits) as f64 / ops as f64 },
        ops: ops as f64 / dt,
        // The cache counts both; the manager only its own discards.
        evictions: (b.cache_discarded - a.cache_discarded).saturating_sub(discards) as f64 / dt,
        discards: discards as f64 / dt,
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / MIB as f64
}

/// A phase's figures.
struct PhaseSummary {
    name: &'static str,
    from: f64,
    to: f64,
    strong: f64,
    cache_mean: f64,
    cache_min: f64,
    cache_max: f64,
    entries: f64,
    rates: Rates,
    peak: usize,
}

/// The figures of the rows taken in `phase` (a contiguous run).
fn summarize(rows: &[Row], phase: u8) -> Option<PhaseSummary> {
    let first = rows.iter().position(|r| r.phase == phase)?.saturating_sub(1);
    let inside: Vec<&Row> = rows.iter().skip(1).filter(|r| r.phase == phase).collect();
    let last = *inside.last()?;
    let n = inside.len() as f64;
    let cache: Vec<f64> = inside.iter().map(|r| mib(r.cache)).collect();
    Some(PhaseSummary {
        name: PHASES[usize::from(phase)],
        from: rows[first].t,
        to: last.t,
        strong: inside.iter().map(|r| mib(r.strong)).sum::<f64>() / n,
        cache_mean: cache.iter().sum::<f64>() / n,
        cache_min: cache.iter().copied().fold(f64::INFINITY, f64::min),
        cache_max: cache.iter().copied().fold(0.0, f64::max),
        entries: inside.iter().map(|r| r.entries as f64).sum::<f64>() / n,
        rates: rates(&rows[first], last),
        peak: inside.iter().map(|r| r.peak).max().unwrap_or(0),
    })
}

fn write_csv(path: &str, rows: &[Row]) -> std::io::Result<()> {
    let mut out = String::from(
        "t_s,phase,strong_mib,discardable_mib,total_mib,peak_total_mib,cache_mib,entries,hits,misses,\
         hit_ratio,ops_per_s,evictions_per_s,discards_per_s\n",
    );
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let r = rates(a, b);
        let _ = writeln!(
            out,
            "{:.2},{},{:.2},{:.2},{:.2},{:.2},{:.2},{},{},{},{:.4},{:.0},{:.0},{:.0}",
            b.t,
            PHASES[usize::from(b.phase)],
            mib(b.strong),
            mib(b.discardable),
            mib(b.strong + b.discardable),
            mib(b.peak),
            mib(b.cache),
            b.entries,
            b.hits,
            b.misses,
            r.hit_ratio,
            r.ops,
            r.evictions,
            r.discards
        );
    }
    std::fs::write(path, out)
}

/// The plot: memory over time (top) and the hit ratio (bottom), the spike
/// shaded.
fn plot(path: &str, rows: &[Row], at: f64, until: f64, secs: f64) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::{SeriesLabelPosition, BLACK, BLUE, GREEN, MAGENTA, RED};

    type Series = (&'static str, plotters::style::RGBColor, fn(&Row) -> f64);
    let series: [Series; 4] = [
        ("strong + discardable", MAGENTA, |r| mib(r.strong + r.discardable)),
        ("cache values", BLUE, |r| mib(r.cache)),
        ("strong (DiscardAlloc)", RED, |r| mib(r.strong)),
        ("process limit", BLACK, |_| mib(PROCESS_LIMIT)),
    ];
    let memory = plot::Panel {
        caption: Some("discardable::Cache under a strong-memory spike (process limit 512 MiB)".to_string()),
        y_desc: "MiB",
        y_max: mib(PROCESS_LIMIT) * 1.1,
        height: 480,
        legend: SeriesLabelPosition::LowerRight,
        lines: series
            .iter()
            .map(|&(label, color, f)| plot::Line {
                label: label.to_string(),
                color,
                points: rows.iter().map(|r| (r.t, f(r))).collect(),
            })
            .collect(),
    };
    let hits = plot::Panel {
        caption: None,
        y_desc: "hit ratio %",
        y_max: 100.0,
        height: 240,
        legend: SeriesLabelPosition::LowerRight,
        lines: vec![plot::Line {
            label: "hit ratio (per 100 ms)".to_string(),
            color: GREEN,
            points: rows.windows(2).map(|w| (w[1].t, 100.0 * rates(&w[0], &w[1]).hit_ratio)).collect(),
        }],
    };
    plot::draw(path, 960, secs, (at, until), &[memory, hits])
}

fn main() -> ExitCode {
    let args = parse_args();
    if let Some(name) = &args.contender {
        return compare::child(&args, name);
    }
    if args.compare {
        return compare::compare(&args);
    }
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("pressure_demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the demonstration; `Ok(false)` if a check failed.
fn run(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    // The global manager: only it gets direct reclaim from the allocator.
    let manager: &'static Manager =
        Manager::builder().limit(PROCESS_LIMIT).process_limit(PROCESS_LIMIT).install_global()?;
    let cache: Cache<u64, [u8]> = Cache::builder().manager(manager).capacity(CAPACITY).build()?;
    let shared = Arc::new(Shared {
        cache,
        zipf: Zipf::new(KEYS, ZIPF_S),
        stop: AtomicBool::new(false),
        workers: (0..args.threads).map(|_| WorkerCounters::default()).collect(),
        wrong: AtomicU64::new(0),
        insert_errors: AtomicU64::new(0),
        spike_corrupt: AtomicU64::new(0),
        reports: Mutex::new(Vec::new()),
        peak: AtomicUsize::new(0),
        phase: AtomicU8::new(BEFORE),
    });
    let secs = args.secs;
    let (at, until) = (secs / 4.0, secs / 2.0);
    println!(
        "pressure_demo: process limit {} MiB (strong + discardable), cache capacity {} MiB, {} KiB values, \
         Zipf({ZIPF_S}) over {KEYS} keys, {} worker thread(s)",
        PROCESS_LIMIT / MIB,
        CAPACITY / MIB,
        VALUE / 1024,
        args.threads
    );
    println!(
        "  {secs:.0} s: strong spike of {} MiB at {at:.1} s, freed at {until:.1} s; manager thread priority {:?}",
        SPIKE / MIB,
        manager.stats().thread_priority
    );
    let warm = prefill(&shared);
    println!(
        "  warm-up (not timed below): the {} hottest keys inserted in {warm:.2?}; cache {:.1} MiB, strong {:.1} MiB",
        CAPACITY / VALUE,
        mib(shared.cache.weighted_size()),
        mib(DiscardAlloc::stats().in_use)
    );
    println!();
    println!(
        "{:>6} {:>7} {:>7} {:>8} {:>6} {:>9} {:>8} {:>9}  phase",
        "t s", "strong", "cache", "entries", "hit %", "ops/s", "evict/s", "discard/s"
    );

    let start = Instant::now();
    let workers: Vec<_> = (0..args.threads)
        .map(|id| {
            let shared = Arc::clone(&shared);
            thread::spawn(move || worker(&shared, id))
        })
        .collect();
    let spiker = {
        let shared = Arc::clone(&shared);
        thread::spawn(move || {
            spike(&shared, manager, start, Duration::from_secs_f64(at), Duration::from_secs_f64(until))
        })
    };

    // The sampler: every 5 ms the budget, every 100 ms a row, every second
    // a line.
    let row = |t: f64, peak: usize| {
        let (strong, discardable) = budget(manager);
        let c = shared.cache.stats();
        let (hits, misses) = shared.hits_misses();
        Row {
            t,
            phase: shared.phase.load(Relaxed),
            strong,
            discardable,
            cache: shared.cache.weighted_size(),
            entries: c.entries,
            hits,
            misses,
            cache_discarded: c.discarded,
            manager_discarded: manager.stats().discarded_count,
            peak: peak.max(strong + discardable),
        }
    };
    let mut rows = vec![row(0.0, 0)];
    let mut tick = 0u64;
    let mut row_peak = 0;
    let mut over_samples = 0u64;
    let mut samples = 0u64;
    // Until `secs`, and in any case until the recovery phase lasted a
    // quarter of it (a spike that ran late on a busy host), at most 4×.
    let mut freed_seen = None;
    loop {
        let now = start.elapsed().as_secs_f64();
        if shared.phase.load(Relaxed) == AFTER {
            freed_seen.get_or_insert(now);
        }
        let recovery_done = freed_seen.is_some_and(|f| now >= f + secs / 4.0);
        if (now >= secs && recovery_done) || now >= 4.0 * secs {
            break;
        }
        tick += 1;
        thread::sleep((SAMPLE * tick as u32).saturating_sub(start.elapsed()));
        let total = note_peak(&shared, manager);
        samples += 1;
        if total > PROCESS_LIMIT {
            over_samples += 1;
        }
        row_peak = row_peak.max(total);
        if tick % u64::from(SAMPLES_PER_ROW) == 0 {
            rows.push(row(start.elapsed().as_secs_f64(), row_peak));
            row_peak = 0;
            if (rows.len() - 1) % ROWS_PER_LINE == 0 {
                let (a, b) = (&rows[rows.len() - 1 - ROWS_PER_LINE], &rows[rows.len() - 1]);
                let r = rates(a, b);
                println!(
                    "{:>6.1} {:>7.1} {:>7.1} {:>8} {:>6.1} {:>9.0} {:>8.0} {:>9.0}  {}",
                    b.t,
                    mib(b.strong),
                    mib(b.cache),
                    b.entries,
                    100.0 * r.hit_ratio,
                    r.ops,
                    r.evictions,
                    r.discards,
                    PHASES[usize::from(b.phase)]
                );
            }
        }
    }
    shared.stop.store(true, Relaxed);
    let spike_finished = shared.phase.load(Relaxed) == AFTER;
    for w in workers {
        w.join().map_err(|_| "a worker panicked")?;
    }
    let times = spiker.join().map_err(|_| "the spike thread panicked")?;
    let end = manager.stats();

    // The summary per phase.
    println!();
    println!(
        "{:<7} {:>12} {:>7} {:>17} {:>8} {:>6} {:>9} {:>8} {:>9} {:>9}",
        "phase",
        "seconds",
        "strong",
        "cache min/avg/max",
        "entries",
        "hit %",
        "ops/s",
        "evict/s",
        "discard/s",
        "peak MiB"
    );
    let summaries: Vec<PhaseSummary> =
        [BEFORE, SPIKE_HELD, AFTER].iter().filter_map(|&p| summarize(&rows, p)).collect();
    for p in &summaries {
        println!(
            "{:<7} {:>5.1}-{:<6.1} {:>7.1} {:>5.0}/{:>5.0}/{:>5.0} {:>8.0} {:>6.1} {:>9.0} {:>8.0} {:>9.0} {:>9.1}",
            p.name,
            p.from,
            p.to,
            p.strong,
            p.cache_min,
            p.cache_mean,
            p.cache_max,
            p.entries,
            100.0 * p.rates.hit_ratio,
            p.rates.ops,
            p.rates.evictions,
            p.rates.discards,
            mib(p.peak)
        );
    }

    // The claims.
    let pre: Vec<&Row> = rows.iter().filter(|r| r.phase == BEFORE && r.t >= times.alloc.0 / 2.0).collect();
    let pre_cache = pre.iter().map(|r| r.cache as f64).sum::<f64>() / pre.len().max(1) as f64;
    let recovered = rows.iter().find(|r| r.t >= times.freed && r.cache as f64 >= RECOVERY * pre_cache).map(|r| r.t);
    // And it stays there: the last second of the run, on average.
    let tail = &rows[rows.len().saturating_sub(ROWS_PER_LINE)..];
    let end_cache = tail.iter().map(|r| r.cache as f64).sum::<f64>() / tail.len().max(1) as f64;
    let spike_discards = {
        let before = rows.iter().rev().find(|r| r.t <= times.alloc.0);
        let after = rows.iter().find(|r| r.t >= times.freed);
        match (before, after) {
            (Some(a), Some(b)) => b.manager_discarded - a.manager_discarded,
            _ => 0,
        }
    };
    let peak = shared.peak.load(Relaxed);
    let wrong = shared.wrong.load(Relaxed);
    let insert_errors = shared.insert_errors.load(Relaxed);
    let spike_corrupt = shared.spike_corrupt.load(Relaxed);
    let (hits, misses) = shared.hits_misses();
    println!();
    println!(
        "spike: {} MiB allocated and touched in {:.2} s (from {:.2} s), freed at {:.2} s; {} direct reclaims, \
         {} limit / {} process-limit reclaim passes in total",
        SPIKE / MIB,
        times.alloc.1 - times.alloc.0,
        times.alloc.0,
        times.freed,
        end.direct_reclaims,
        end.limit_reclaims,
        end.reclaims(discardable::Signal::ProcessLimit),
    );
    println!(
        "budget: peak strong + discardable {:.1} MiB of {} MiB (slack allowed {:.1} MiB); {over_samples} of \
         {samples} 5 ms samples above the limit",
        mib(peak),
        PROCESS_LIMIT / MIB,
        mib(SLACK)
    );
    match recovered {
        Some(t) => println!(
            "recovery: cache back to {:.0} % of its pre-spike {:.0} MiB {:.2} s after the spike was freed",
            RECOVERY * 100.0,
            pre_cache / MIB as f64,
            t - times.freed
        ),
        None => println!(
            "recovery: cache never got back to {:.0} % of its pre-spike {:.0} MiB",
            RECOVERY * 100.0,
            pre_cache / MIB as f64
        ),
    }
    println!(
        "          over the last second it held {:.0} MiB ({:.0} % of its pre-spike size)",
        end_cache / MIB as f64,
        100.0 * end_cache / pre_cache.max(1.0)
    );
    println!(
        "values: {} reads verified byte for byte ({hits} hits), {misses} misses computed and inserted; \
         {wrong} wrong, {insert_errors} insert errors, {spike_corrupt} spike bytes corrupt; manager panics {}",
        hits + misses,
        end.manager_panics
    );
    let strong_at = |phase: u8, last: bool| {
        let mut it = rows.iter().filter(|r| r.phase == phase);
        mib(if last { it.next_back() } else { it.next() }.map_or(0, |r| r.strong))
    };
    println!(
        "strong: {:.1} MiB at the start, {:.1} MiB just before the spike, {:.1} MiB just after it, {:.1} MiB at \
         the end (the cache's own map: {:.1} MiB)",
        strong_at(BEFORE, false),
        strong_at(BEFORE, true),
        strong_at(AFTER, false),
        strong_at(AFTER, true),
        mib(shared.cache.stats().overhead_bytes as usize)
    );
    for r in shared.reports.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        println!("  ! {r}");
    }

    let mut failed = Vec::new();
    if !spike_finished {
        failed.push(format!("the spike thread had not freed its memory after {:.0} s", 4.0 * secs));
    }
    if wrong > 0 || insert_errors > 0 || spike_corrupt > 0 {
        failed
            .push(format!("{wrong} wrong values, {insert_errors} insert errors, {spike_corrupt} corrupt spike bytes"));
    }
    if end.manager_panics > 0 {
        failed.push(format!("{} manager-thread panics", end.manager_panics));
    }
    if pre_cache < FILLED * CAPACITY as f64 {
        failed.push(format!(
            "the cache held only {:.0} MiB before the spike (want ≥ {:.0} % of {} MiB)",
            pre_cache / MIB as f64,
            FILLED * 100.0,
            CAPACITY / MIB
        ));
    }
    if spike_discards == 0 {
        failed.push("the spike made the manager discard nothing".to_string());
    }
    if recovered.is_none() {
        failed.push(format!("the cache did not recover to {:.0} % of its pre-spike size", RECOVERY * 100.0));
    } else if end_cache < RECOVERY * pre_cache {
        failed.push(format!(
            "the cache recovered but did not stay: {:.0} MiB over the last second, under {:.0} % of {:.0} MiB",
            end_cache / MIB as f64,
            RECOVERY * 100.0,
            pre_cache / MIB as f64
        ));
    }
    if peak > PROCESS_LIMIT + SLACK {
        failed.push(format!(
            "strong + discardable peaked at {:.1} MiB, over the {} MiB limit by more than {:.1} MiB",
            mib(peak),
            PROCESS_LIMIT / MIB,
            mib(SLACK)
        ));
    }

    write_csv("pressure_demo.csv", &rows)?;
    let end_t = rows.last().map_or(secs, |r| r.t);
    plot("pressure_demo.svg", &rows, times.alloc.0, times.freed, end_t)?;
    println!("wrote pressure_demo.csv ({} rows) and pressure_demo.svg", rows.len() - 1);
    if failed.is_empty() {
        println!("PASS: values correct, budget kept, cache recovered");
        Ok(true)
    } else {
        for f in &failed {
            println!("FAIL: {f}");
        }
        Ok(false)
    }
}
