//! `Discardable::upgrade()` + guard drop against `std::sync::Weak::upgrade()` + drop.
//!
//! Both sides are measured in the same run, in the default configuration (access recording on:
//! dropping a guard also bumps the allocation's access counter), with one thread and with two threads.
//! With two threads, the "same" cases make both threads hammer the *same* handle (the same `Weak`),
//! which is the contended case; the "distinct" cases give each thread its own handle (its own `Weak`),
//! each created on the thread that uses it.
//!
//! Two phases:
//!
//! 1. criterion groups (`pin/1-thread`, `pin/2-threads-same`, `pin/2-threads-distinct`), each with a
//!    `discardable` and a `weak` function, for per-operation times with confidence intervals. Criterion
//!    measures one function after the other, so these absolute numbers are for reference only.
//! 2. The ratio table: rounds that alternate our batch and `Weak`'s batch (the order flips every round),
//!    a ratio per round, and the median (with the quartiles) over all rounds, so that a noisy neighbour
//!    on a shared machine hits both sides alike. This is the number the goal (ours/Weak <= 1.0 with one
//!    thread) is judged by.
//!
//! Run it with `cargo bench --bench pin` (well under two minutes). Quick mode: `PIN_BENCH_QUICK=1 cargo
//! bench --bench pin`, or `cargo bench --bench pin -- --quick`. Under `cargo test --benches` it runs
//! every case once, as a smoke test.
//!
//! For two threads an "iteration" is one upgrade + drop on *each* thread and the time is wall time,
//! so ns/iteration is what one thread sees per operation while the other hammers too. On Linux the
//! main and the helper thread are pinned to two different CPUs (`PIN_BENCH_NO_AFFINITY=1` turns that
//! off), and a two-thread round counts only if the two threads' work really overlapped in time.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion};
use discardable::{Discardable, Manager};

/// The value behind both our handle and `Weak`.
const VALUE: u64 = 42;

/// One batch of `n` `upgrade()` + deref + drop on our handle. Never inlined, so that both sides run
/// the same shape of loop and the hot path is easy to find in a disassembly of the bench binary.
#[inline(never)]
fn ours_batch(handle: &Discardable<u64>, n: u64) {
    let mut missed = 0u64;
    for _ in 0..n {
        match handle.upgrade() {
            Some(guard) => {
                black_box(*guard);
            }
            None => missed += 1,
        }
    }
    assert_eq!(missed, 0, "the handle was discarded during the benchmark");
}

/// One batch of `n` `Weak::upgrade()` + deref + drop, the peer of [`ours_batch`].
#[inline(never)]
fn weak_batch(weak: &Weak<u64>, n: u64) {
    let mut missed = 0u64;
    for _ in 0..n {
        match weak.upgrade() {
            Some(strong) => {
                black_box(*strong);
            }
            None => missed += 1,
        }
    }
    assert_eq!(missed, 0, "the Arc was dropped during the benchmark");
}

/// Which side runs, and on which target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    /// Our handle shared by both threads.
    OursSame = 1,
    /// `Weak` shared by both threads.
    WeakSame = 2,
    /// Each thread its own handle.
    OursDistinct = 3,
    /// Each thread its own `Weak`.
    WeakDistinct = 4,
}

impl Job {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::OursSame,
            2 => Self::WeakSame,
            3 => Self::OursDistinct,
            _ => Self::WeakDistinct,
        }
    }
}

/// The targets one thread works on.
struct Targets<'a> {
    same_handle: &'a Discardable<u64>,
    same_weak: &'a Weak<u64>,
    own_handle: &'a Discardable<u64>,
    own_weak: &'a Weak<u64>,
}

impl Targets<'_> {
    fn run(&self, job: Job, n: u64) {
        match job {
            Job::OursSame => ours_batch(self.same_handle, n),
            Job::WeakSame => weak_batch(self.same_weak, n),
            Job::OursDistinct => ours_batch(self.own_handle, n),
            Job::WeakDistinct => weak_batch(self.own_weak, n),
        }
    }
}

/// Hand-off between the main thread and the one persistent helper thread. The helper parks between
/// batches (so it does not steal a core from the one-thread measurements), is woken before the clock
/// starts, and both threads start on the same flag.
struct Control {
    job: AtomicU8,
    iters: AtomicU64,
    /// Bumped by main to post a batch.
    posted: AtomicU64,
    /// Set by the helper to the posted number once it is awake and waiting to start.
    ready: AtomicU64,
    /// Set by main to the posted number to start both threads.
    go: AtomicU64,
    /// Set by the helper to the posted number when its share is done.
    done: AtomicU64,
    /// When the helper started and finished its share, in ns since `epoch`.
    helper_start: AtomicU64,
    helper_end: AtomicU64,
    epoch: Instant,
    quit: AtomicBool,
}

impl Control {
    fn new() -> Self {
        Self {
            job: AtomicU8::new(0),
            iters: AtomicU64::new(0),
            posted: AtomicU64::new(0),
            ready: AtomicU64::new(0),
            go: AtomicU64::new(0),
            done: AtomicU64::new(0),
            helper_start: AtomicU64::new(0),
            helper_end: AtomicU64::new(0),
            epoch: Instant::now(),
            quit: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// Waits for `flag` to read `want`: spins briefly, then yields, so that on an oversubscribed machine
/// (both threads on one core) the waiter does not hold the core until the next scheduler tick.
fn wait_for(flag: &AtomicU64, want: u64) {
    let mut spins = 0u32;
    while flag.load(Ordering::Acquire) != want {
        if spins < 256 {
            spins += 1;
            std::hint::spin_loop();
        } else {
            thread::yield_now();
        }
    }
}

fn helper_loop(ctl: &Control, targets: &Targets<'_>) {
    let mut seen = 0;
    loop {
        let mut posted = ctl.posted.load(Ordering::Acquire);
        while posted == seen && !ctl.quit.load(Ordering::Acquire) {
            thread::park();
            posted = ctl.posted.load(Ordering::Acquire);
        }
        if ctl.quit.load(Ordering::Acquire) {
            return;
        }
        seen = posted;
        let job = Job::from_u8(ctl.job.load(Ordering::Relaxed));
        let iters = ctl.iters.load(Ordering::Relaxed);
        ctl.ready.store(seen, Ordering::Release);
        wait_for(&ctl.go, seen);
        ctl.helper_start.store(ctl.now(), Ordering::Relaxed);
        targets.run(job, iters);
        ctl.helper_end.store(ctl.now(), Ordering::Relaxed);
        ctl.done.store(seen, Ordering::Release);
    }
}

/// The CPUs this process may run on, in order (Linux), to put the two threads on two different cores.
#[cfg(target_os = "linux")]
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is a plain bit array, so all zeroes is a valid (empty) set;
    // `sched_getaffinity` writes at most `size_of::<cpu_set_t>()` bytes into it; `CPU_ISSET` reads
    // bit `cpu` of it, and `cpu < CPU_SETSIZE` keeps that in bounds.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&cpu| libc::CPU_ISSET(cpu, &set)).collect()
    }
}

/// Restricts the calling thread to `cpu`; whether that worked.
#[cfg(target_os = "linux")]
fn pin_thread_to(cpu: usize) -> bool {
    if cpu >= libc::CPU_SETSIZE as usize {
        return false;
    }
    // SAFETY: as in `allowed_cpus`: an all-zero `cpu_set_t` is the empty set, `cpu < CPU_SETSIZE`
    // keeps `CPU_SET` in bounds, and `sched_setaffinity` only reads the set we pass (for the
    // calling thread, pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

#[cfg(not(target_os = "linux"))]
fn pin_thread_to(_cpu: usize) -> bool {
    false
}

/// The two CPUs the main and the helper thread are pinned to. Without pinning, the scheduler of a
/// busy machine tends to run a waker and its wakee on one core in turns, and the two-thread cases
/// would measure nothing concurrent. `PIN_BENCH_NO_AFFINITY=1` turns it off.
fn choose_cpus() -> Option<(usize, usize)> {
    if std::env::var("PIN_BENCH_NO_AFFINITY").is_ok_and(|v| !v.is_empty() && v != "0") {
        return None;
    }
    match allowed_cpus()[..] {
        [a, b, ..] => Some((a, b)),
        _ => None,
    }
}

/// One timed batch.
#[derive(Clone, Copy)]
struct Sample {
    /// Wall time from the start until every thread finished.
    time: Duration,
    /// With two threads: how much of the two threads' work ran at the same time (overlap of the
    /// two busy intervals over the longer one). 1.0 means truly concurrent; near 0 means the two
    /// threads took turns on one core (the machine was oversubscribed). 1.0 for one thread.
    overlap: f64,
}

/// The main thread's side of the measurements.
struct Pair<'a> {
    ctl: &'a Control,
    helper: &'a thread::Thread,
    mine: Targets<'a>,
    posted: u64,
}

impl Pair<'_> {
    /// Both threads run `job` `iters` times each, started together.
    fn run(&mut self, job: Job, iters: u64) -> Sample {
        self.posted += 1;
        let n = self.posted;
        self.ctl.job.store(job as u8, Ordering::Relaxed);
        self.ctl.iters.store(iters, Ordering::Relaxed);
        self.ctl.posted.store(n, Ordering::Release);
        self.helper.unpark();
        wait_for(&self.ctl.ready, n);
        let start = Instant::now();
        let my_start = self.ctl.now();
        self.ctl.go.store(n, Ordering::Release);
        self.mine.run(job, iters);
        let my_end = self.ctl.now();
        wait_for(&self.ctl.done, n);
        let time = start.elapsed();
        let (h_start, h_end) =
            (self.ctl.helper_start.load(Ordering::Relaxed), self.ctl.helper_end.load(Ordering::Relaxed));
        let both = my_end.min(h_end).saturating_sub(my_start.max(h_start));
        let longer = (my_end - my_start).max(h_end - h_start).max(1);
        Sample { time, overlap: both as f64 / longer as f64 }
    }

    /// The main thread alone runs `job` `iters` times.
    fn run_alone(&self, job: Job, iters: u64) -> Sample {
        let start = Instant::now();
        self.mine.run(job, iters);
        Sample { time: start.elapsed(), overlap: 1.0 }
    }
}

/// One line of the ratio table.
#[derive(Clone, Copy)]
enum Case {
    OneThread,
    TwoSame,
    TwoDistinct,
}

impl Case {
    const ALL: [Case; 3] = [Case::OneThread, Case::TwoSame, Case::TwoDistinct];

    fn label(self) -> &'static str {
        match self {
            Case::OneThread => "1 thread",
            Case::TwoSame => "2 threads, same handle",
            Case::TwoDistinct => "2 threads, distinct handles",
        }
    }

    fn group(self) -> &'static str {
        match self {
            Case::OneThread => "pin/1-thread",
            Case::TwoSame => "pin/2-threads-same",
            Case::TwoDistinct => "pin/2-threads-distinct",
        }
    }

    /// (ours, Weak's) jobs.
    fn jobs(self) -> (Job, Job) {
        match self {
            Case::OneThread | Case::TwoSame => (Job::OursSame, Job::WeakSame),
            Case::TwoDistinct => (Job::OursDistinct, Job::WeakDistinct),
        }
    }

    fn measure(self, pair: &mut Pair<'_>, job: Job, iters: u64) -> Sample {
        match self {
            Case::OneThread => pair.run_alone(job, iters),
            Case::TwoSame | Case::TwoDistinct => pair.run(job, iters),
        }
    }
}

/// How long the run may take.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `cargo bench`: the real measurement.
    Full,
    /// `PIN_BENCH_QUICK=1` or `--quick`.
    Quick,
    /// `cargo test --benches` (no `--bench` argument) or `--test`: run everything once.
    Smoke,
}

impl Mode {
    fn detect() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let quick_env = std::env::var("PIN_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test") {
            Mode::Smoke
        } else if quick_env || args.iter().any(|a| a == "--quick") {
            Mode::Quick
        } else {
            Mode::Full
        }
    }

    /// (rounds per case, target time of one batch) for the ratio table. Short batches and many
    /// rounds: on a shared machine most short batches run without being preempted, and the median
    /// over rounds ignores the ones that were.
    fn rounds(self) -> (usize, Duration) {
        match self {
            Mode::Full => (2001, Duration::from_micros(250)),
            Mode::Quick => (301, Duration::from_micros(150)),
            Mode::Smoke => (3, Duration::from_micros(50)),
        }
    }
}

fn criterion_phase(mode: Mode, pair: &mut Pair<'_>) {
    let mut c = match mode {
        Mode::Full => Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(60),
        Mode::Quick | Mode::Smoke => Criterion::default()
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(800))
            .sample_size(20),
    }
    .without_plots()
    .configure_from_args();

    for case in Case::ALL {
        let mut group: BenchmarkGroup<'_, _> = c.benchmark_group(case.group());
        let (ours, weak) = case.jobs();
        group.bench_function("discardable", |b| b.iter_custom(|iters| case.measure(pair, ours, iters).time));
        group.bench_function("weak", |b| b.iter_custom(|iters| case.measure(pair, weak, iters).time));
        group.finish();
    }
    c.final_summary();
}

/// The median and quartiles of `xs` (sorted in place).
fn quartiles(xs: &mut [f64]) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
}

/// A two-thread round counts for the ratio only if both batches overlapped at least this much.
const MIN_OVERLAP: f64 = 0.9;

/// The measured line of the ratio table.
struct Row {
    case: Case,
    iters: u64,
    /// Rounds the medians are over.
    rounds: usize,
    ours_ns: f64,
    weak_ns: f64,
    /// Quartiles of the per-round ratio ours/Weak.
    ratio: (f64, f64, f64),
    /// Median overlap of the two threads' work (see [`Sample::overlap`]).
    overlap: f64,
}

/// Alternates batches of ours and `Weak`'s, flipping the order each round, and takes medians.
fn ratio_phase(mode: Mode, pair: &mut Pair<'_>, case: Case) -> Row {
    let (rounds, batch) = mode.rounds();
    let (ours, weak) = case.jobs();

    // Calibrate: the slower side's batch should take about `batch`. The best of three tries per size
    // keeps one preempted batch from stopping the calibration early. Warms both sides up as well.
    let mut iters = 256u64;
    loop {
        let t = (0..3)
            .map(|_| case.measure(pair, ours, iters).time.max(case.measure(pair, weak, iters).time))
            .min()
            .unwrap_or_default();
        if t >= batch || iters >= 1 << 32 {
            break;
        }
        let grow = (batch.as_secs_f64() / t.as_secs_f64().max(1e-9)).clamp(1.5, 16.0);
        iters = ((iters as f64) * grow) as u64;
    }

    let mut pairs = Vec::with_capacity(rounds);
    for round in 0..rounds {
        pairs.push(if round % 2 == 0 {
            let o = case.measure(pair, ours, iters);
            (o, case.measure(pair, weak, iters))
        } else {
            let w = case.measure(pair, weak, iters);
            (case.measure(pair, ours, iters), w)
        });
    }
    let mut overlaps: Vec<f64> = pairs.iter().flat_map(|(o, w)| [o.overlap, w.overlap]).collect();
    let overlap = quartiles(&mut overlaps).1;

    // With two threads, a round counts only if both of its batches really ran concurrently: on a
    // shared machine the scheduler sometimes runs the two threads in turns on one core, which is
    // not the contended case. Fall back to every round if too few qualify (and say so).
    let concurrent: Vec<(Sample, Sample)> =
        pairs.iter().copied().filter(|(o, w)| o.overlap >= MIN_OVERLAP && w.overlap >= MIN_OVERLAP).collect();
    let kept = if concurrent.len() >= (rounds / 4).max(3) { concurrent } else { pairs };

    let per_op = |d: Duration| d.as_secs_f64() * 1e9 / iters as f64;
    let mut ours_ns: Vec<f64> = kept.iter().map(|(o, _)| per_op(o.time)).collect();
    let mut weak_ns: Vec<f64> = kept.iter().map(|(_, w)| per_op(w.time)).collect();
    let mut ratios: Vec<f64> =
        kept.iter().map(|(o, w)| o.time.as_secs_f64() / w.time.as_secs_f64().max(1e-12)).collect();
    Row {
        case,
        iters,
        rounds: kept.len(),
        ours_ns: quartiles(&mut ours_ns).1,
        weak_ns: quartiles(&mut weak_ns).1,
        ratio: quartiles(&mut ratios),
        overlap,
    }
}

fn print_table(mode: Mode, cpus: Option<(usize, usize)>, rows: &[Row]) {
    let (rounds, _) = mode.rounds();
    println!();
    println!("pin: Discardable::upgrade() + guard drop vs std::sync::Weak::upgrade() + drop");
    println!(
        "  access recording on (default); {rounds} rounds per case alternating ours and Weak (order flipped \
         each round); medians over the rounds{}",
        if mode == Mode::Smoke { " (smoke run: numbers are meaningless)" } else { "" }
    );
    match cpus {
        Some((a, b)) => println!("  main thread pinned to CPU {a}, helper thread to CPU {b}"),
        None => println!("  threads not pinned to CPUs"),
    }
    println!("  2 threads: ns per iteration of wall time, each thread doing one upgrade + drop per iteration;");
    println!("  overlap: median share of the two threads' work that ran concurrently (near 0: they took turns on");
    println!("  one core); a 2-thread round counts only if both its batches overlapped >= {MIN_OVERLAP}");
    println!();
    println!(
        "  {:<28} {:>10} {:>6} {:>9} {:>9} {:>10} {:>15} {:>8}",
        "case", "ops/batch", "rounds", "ours ns", "Weak ns", "ours/Weak", "ratio p25..p75", "overlap"
    );
    for row in rows {
        let (p25, p50, p75) = row.ratio;
        let overlap = match row.case {
            Case::OneThread => "-".to_string(),
            _ => format!("{:.2}", row.overlap),
        };
        println!(
            "  {:<28} {:>10} {:>6} {:>9.2} {:>9.2} {:>10.3} {:>7.3}..{:<6.3} {:>8}",
            row.case.label(),
            row.iters,
            row.rounds,
            row.ours_ns,
            row.weak_ns,
            p50,
            p25,
            p75,
            overlap
        );
    }
    if let Some(one) = rows.iter().find(|r| matches!(r.case, Case::OneThread)) {
        let ratio = one.ratio.1;
        let verdict = if ratio <= 1.0 { "met" } else { "NOT met" };
        println!();
        println!("  goal (1 thread, ours/Weak <= 1.0): {verdict} ({ratio:.3})");
    }
}

fn main() {
    let mode = Mode::detect();
    let listing = std::env::args().any(|a| a == "--list");

    let manager = Manager::builder().limit(1 << 30).start().expect("start the manager");
    let same_handle = Discardable::new_in(VALUE, &manager);
    let same_arc = Arc::new(VALUE);
    let same_weak = Arc::downgrade(&same_arc);
    let own_handle = Discardable::new_in(VALUE, &manager);
    let own_arc = Arc::new(VALUE);
    let own_weak = Arc::downgrade(&own_arc);
    let ctl = Control::new();
    let cpus = choose_cpus().filter(|&(main_cpu, _)| pin_thread_to(main_cpu));

    thread::scope(|s| {
        let helper = s.spawn(|| {
            if let Some((_, helper_cpu)) = cpus {
                assert!(pin_thread_to(helper_cpu), "pin the helper thread to CPU {helper_cpu}");
            }
            // The helper's own targets are created on the helper thread, so that they do not share a
            // cache line with the main thread's (a per-thread malloc arena).
            let helper_handle = Discardable::new_in(VALUE, &manager);
            let helper_arc = Arc::new(VALUE);
            let helper_weak = Arc::downgrade(&helper_arc);
            let targets = Targets {
                same_handle: &same_handle,
                same_weak: &same_weak,
                own_handle: &helper_handle,
                own_weak: &helper_weak,
            };
            helper_loop(&ctl, &targets);
        });
        let helper_thread = helper.thread().clone();
        let mut pair = Pair {
            ctl: &ctl,
            helper: &helper_thread,
            mine: Targets {
                same_handle: &same_handle,
                same_weak: &same_weak,
                own_handle: &own_handle,
                own_weak: &own_weak,
            },
            posted: 0,
        };

        criterion_phase(mode, &mut pair);
        if !listing {
            let rows: Vec<Row> = Case::ALL.iter().map(|&case| ratio_phase(mode, &mut pair, case)).collect();
            print_table(mode, cpus, &rows);
        }

        ctl.quit.store(true, Ordering::Release);
        helper_thread.unpark();
    });

    assert!(!same_handle.is_discarded() && !own_handle.is_discarded());
    drop((same_arc, own_arc));
}
