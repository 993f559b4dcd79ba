//! Reaction to a fast strong-memory spike under a cgroup v1 memory limit
//! (issue 4, "Proof"): the time from crossing the high mark to the first
//! discard and to being back under the high mark, the discard rate, and OOM
//! kills, for a spike in the process that owns the discardable memory
//! (`own`) and in a sibling process of the same group (`sibling`), in both
//! reclaim modes. A second figure, with no cgroup, is how fast
//! [`Manager::reclaim`] discards 1 GiB of 1 MiB allocations in-process.
//!
//! Goals (issue 4): first discard within 10 ms of crossing the high mark,
//! at least 10 GiB/s discard rate, zero OOM kills.
//!
//! # The episode
//!
//! Each repetition makes a fresh child group of the v1 memory controller
//! with a 512 MiB `memory.limit_in_bytes` and re-executes this binary in it
//! (the child writes `0` to the group's `cgroup.procs` between `fork` and
//! `exec`, so the manager finds the limit through `/proc/self/cgroup` when it
//! starts). The `owner` installs the global manager in the mode under test
//! (discardable budget = the cgroup limit, default watermarks 90 % / 80 %),
//! fills 320 MiB of discardable memory in 1 MiB allocations and, in lazy
//! mode, waits until all of them are offered. Then the spiker, the owner's
//! main thread (`own`) or a `sibling` process using the system allocator,
//! writes 256 MiB of fresh strong memory as fast as it can, in 256 KiB
//! pieces. 320 + 256 MiB do not fit: unless discardable memory goes, the
//! group's OOM killer fires.
//!
//! # The measurement, all in the spiking process
//!
//! All timestamps are `CLOCK_MONOTONIC`, taken by the spiker around its
//! pieces. After every piece it reads the group's `memory.usage_in_bytes`
//! and (while looking for the crossing) `memory.max_usage_in_bytes`; after
//! the spike it keeps reading usage in a tight loop for a while.
//!
//! - *Crossing*: the kernel's high-water mark (`max_usage_in_bytes`, reset
//!   before the spike) shows usage went above 90 % of the limit during a
//!   piece. The crossing is stamped at the *start* of that piece, so it is
//!   never later than the real one, even when the manager brought usage back
//!   down before the read after the piece.
//! - *First discard*: the spiker knows what it added itself, so the group's
//!   *deficit* (usage at the start of the spike + bytes the spiker wrote −
//!   usage now) is memory someone else gave back. The first discard is the
//!   first read after the crossing at which the deficit grew by at least
//!   1 MiB (one allocation) since the read before the crossing piece; it is
//!   stamped at that read, so it is never earlier than the real one. Noise
//!   (per-CPU charge batches, page tables) is well under 1 MiB.
//! - *MiB written by then*: what the spiker wrote from the start of the
//!   crossing piece to that read, i.e. what the 10 % between the high mark
//!   and the limit had to absorb before the discard. Unlike the time, it
//!   does not grow while the spiker itself waits for a CPU, so it is the
//!   figure that tells how close a spike came to an OOM kill.
//! - *Back under the high mark*: the first read after the crossing at which
//!   raw usage is at most the high mark.
//! - *Discard rate*: over the first burst of the deficit after the crossing:
//!   from the read before the first discard to the first read after which
//!   the deficit grew by less than 1 MiB over the next millisecond. Reads
//!   are 50–100 µs apart during the spike (a few µs after it), so a burst
//!   shorter than that is rated as if it took one read interval, and the
//!   manager thread shares the two cores with the spiker: a lower bound.
//! - *OOM kills*: the group's `oom_kill` count in `memory.oom_control`, and
//!   children that died by a signal.
//!
//! In the `own` scenario the spiker also reads the manager's own
//! `discarded_bytes` after every piece, as a cross-check of the deficit.
//!
//! Times seen by the spiker include the time the spiker itself waited for a
//! CPU: on a busy machine it may notice a discard milliseconds after it
//! happened. `REACTION_FTRACE=1` (root, tracefs) adds the manager thread's
//! side from the kernel's own trace, on the same clock: when the kernel woke
//! it (the cgroup threshold's eventfd), when it got a CPU, and its first
//! `MADV_DONTNEED` (a private tracefs instance, removed afterwards).
//!
//! Lazy mode is different by design: offered pages still count in raw usage
//! (the kernel frees them only when it needs memory, i.e. at the limit, in
//! the spiker's own page faults), so there the "first discard" is the
//! kernel's first drop, which comes when usage reaches the limit, not the
//! high mark; raw usage stays near the limit afterwards (DESIGN.md counts
//! those pages as inactive file, i.e. as headroom), and there is no rate of
//! its own: the kernel frees as fast as the spike charges.
//!
//! Every cell of the table is the median over the repetitions (5 with
//! `--bench`, 1 as a smoke run otherwise, e.g. under `cargo test
//! --benches`; `REACTION_REPS=n` overrides), with the worst case in
//! parentheses. `REACTION_ONLY=sibling/managed` runs one cell,
//! `REACTION_VERBOSE=1` prints each episode's raw figures, and
//! `REACTION_PRIORITY=normal|raised|realtime` sets the manager thread's
//! [`ThreadPriority`] (default: the builder's).
//!
//! Without root or a writable v1 memory controller it prints why, runs only
//! the in-process figure and exits 0.
//!
//! Run: `cargo bench --bench reaction` (about a minute).

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use discardable::{DiscardAlloc, Discardable, Manager, ManagerBuilder, ReclaimMode, Signal, ThreadPriority};

#[path = "../tests/support/cgroup_v1.rs"]
mod cgroup_v1;
use cgroup_v1::{join_group, now_ns, Group, SysBuf, V1_ROOT};

#[global_allocator]
static A: DiscardAlloc = DiscardAlloc::new();

const ROLE_ENV: &str = "DISCARDABLE_REACTION_ROLE";
const MODE_ENV: &str = "DISCARDABLE_REACTION_MODE";
const SCENARIO_ENV: &str = "DISCARDABLE_REACTION_SCENARIO";
const GROUP_ENV: &str = "DISCARDABLE_REACTION_GROUP";

const MIB: usize = 1 << 20;
/// The group's limit.
const LIMIT: usize = 512 * MIB;
/// The default high mark, 90 % of the limit.
const HIGH_MARK: u64 = (LIMIT as u64) * 9 / 10;
/// One discardable allocation.
const ALLOC: usize = MIB;
/// Discardable memory the owner holds.
const DISCARDABLE: usize = 320 * MIB;
/// The spike.
const SPIKE: usize = 256 * MIB;
/// The spike is written, and usage read, in pieces of this size.
const PIECE: usize = 256 << 10;
/// How long the spiker keeps reading after the spike.
const TAIL: Duration = Duration::from_millis(300);
/// Reads kept per episode.
const MAX_SAMPLES: usize = 1 << 17;
/// The in-process figure: this many 1 MiB allocations.
const RECLAIM_ALLOCS: usize = 1024;
/// The manager thread's name as the kernel keeps it.
const MANAGER_COMM: &str = "discardable-man";

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        let group = PathBuf::from(std::env::var(GROUP_ENV).expect("group"));
        let mode = parse_mode(&std::env::var(MODE_ENV).expect("mode"));
        match role.as_str() {
            "owner" => owner(mode, &std::env::var(SCENARIO_ENV).expect("scenario"), &group),
            "sibling" => sibling(&group),
            other => panic!("unknown role {other}"),
        }
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let reps = std::env::var("REACTION_REPS").ok().and_then(|r| r.parse().ok()).unwrap_or(if full { 5 } else { 1 });
    println!("reaction: {reps} repetition(s) per cell{}", if full { "" } else { " (smoke run; `--bench` for 5)" });

    println!();
    println!("In-process Manager::reclaim of {RECLAIM_ALLOCS} x 1 MiB (no cgroup):");
    for mode in ["managed", "lazy"] {
        let mut rates: Vec<f64> = (0..reps).map(|_| reclaim_rate(parse_mode(mode))).collect();
        rates.sort_by(f64::total_cmp);
        println!("  {mode:<8} {:>6.1} GiB/s (median; worst {:.1})", rates[rates.len() / 2], rates[0]);
    }

    println!();
    if let Err(reason) = cgroup_available() {
        println!("cgroup scenarios skipped: {reason}");
        return;
    }
    println!(
        "Under a cgroup v1 limit of {} MiB: {} MiB discardable, a {} MiB strong spike; high mark {} MiB.",
        LIMIT / MIB,
        DISCARDABLE / MIB,
        SPIKE / MIB,
        HIGH_MARK / MIB as u64
    );
    println!("Times in ms from the crossing of the high mark; median (worst) of {reps}.");
    println!();
    let ftrace = match std::env::var_os("REACTION_FTRACE") {
        Some(_) => Ftrace::start().map_err(|e| println!("ftrace cross-check unavailable: {e}")).ok(),
        None => None,
    };
    let header = [
        "scenario",
        "mode",
        "spike GiB/s",
        "start->cross",
        "cross->1st discard",
        "MiB written by then",
        "cross->under high",
        "discard GiB/s",
        "OOM kills",
    ];
    print_cells(&header.map(String::from));
    println!("|{}", WIDTHS.iter().map(|w| format!("{:-<1$}|", "", w + 2)).collect::<String>());
    let mut notes = Vec::new();
    let mut lags = Vec::new();
    let mut kernel_rows = Vec::new();
    // `REACTION_ONLY=sibling/managed` (say) runs one cell.
    let only = std::env::var("REACTION_ONLY").ok();
    for scenario in ["own", "sibling"] {
        for mode in ["managed", "lazy"] {
            if only.as_ref().is_some_and(|o| *o != format!("{scenario}/{mode}")) {
                continue;
            }
            let episodes: Vec<Episode> = (0..reps).map(|_| run_episode(scenario, mode, ftrace.as_ref())).collect();
            print_row(scenario, mode, &episodes);
            for (i, e) in episodes.iter().enumerate() {
                notes.extend(e.notes.iter().map(|n| format!("{scenario}/{mode} #{i}: {n}")));
            }
            if mode == "managed" {
                lags.extend(episodes.iter().filter_map(|e| e.lag));
                if ftrace.is_some() {
                    kernel_rows.push((scenario, episodes.iter().map(|e| e.kernel.unwrap_or_default()).collect()));
                }
            }
        }
    }
    println!();
    println!("Goals: first discard <= 10 ms after crossing, discard rate >= 10 GiB/s, 0 OOM kills.");
    println!(
        "Lazy mode: the kernel drops offered pages at the limit, not at the high mark, as the spike charges new \
         ones (no rate of its own); raw usage stays near the limit (see the docs)."
    );
    if let Some(max) = lags.iter().copied().reduce(f64::max) {
        println!(
            "Cross-check (own/managed): the group's deficit showed the first discard at most {max:.2} ms after the \
             manager's own counter moved ({} episodes).",
            lags.len()
        );
    }
    if !kernel_rows.is_empty() {
        print_kernel_rows(&kernel_rows);
    }
    for n in notes {
        println!("note: {n}");
    }
}

fn parse_mode(mode: &str) -> ReclaimMode {
    match mode {
        "lazy" => ReclaimMode::Lazy,
        _ => ReclaimMode::Managed,
    }
}

// ------------------------------------------------------------ in-process

/// `Manager::reclaim` of `RECLAIM_ALLOCS` written 1 MiB allocations, GiB/s.
fn reclaim_rate(mode: ReclaimMode) -> f64 {
    let m = Manager::builder()
        .limit(2 * RECLAIM_ALLOCS * ALLOC)
        .reclaim_mode(mode)
        .lazy_delay(Duration::from_millis(2))
        .start()
        .expect("manager");
    let data = vec![0x5Au8; ALLOC];
    let handles: Vec<Discardable<[u8]>> = (0..RECLAIM_ALLOCS).map(|_| Discardable::from_slice_in(&data, &m)).collect();
    if mode == ReclaimMode::Lazy {
        let deadline = Instant::now() + Duration::from_secs(10);
        while m.stats().offers < RECLAIM_ALLOCS as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let t = Instant::now();
    let freed = m.reclaim(usize::MAX);
    let dt = t.elapsed();
    assert_eq!(freed, RECLAIM_ALLOCS * ALLOC);
    assert!(handles.iter().all(Discardable::is_discarded));
    freed as f64 / dt.as_secs_f64() / (1u64 << 30) as f64
}

// ---------------------------------------------------------------- parent

/// What one repetition measured (times in ns from the crossing).
#[derive(Debug, Default)]
struct Episode {
    /// With `REACTION_FTRACE`: the manager thread's side of the reaction.
    kernel: Option<Reaction>,
    /// MiB the spiker wrote from the crossing until it saw the discard.
    written_mib: Option<f64>,
    spike_rate: Option<f64>,
    start_to_cross: Option<u64>,
    first_discard: Option<u64>,
    under_high: Option<u64>,
    rate: Option<f64>,
    lag: Option<f64>,
    oom_kills: u64,
    notes: Vec<String>,
}

/// Whether the cgroup scenarios can run here.
fn cgroup_available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root (making a memory cgroup needs root)".into());
    }
    let root = Path::new(V1_ROOT);
    if !root.join("cgroup.procs").exists() || !root.join("memory.max_usage_in_bytes").exists() {
        return Err(format!("no cgroup v1 memory controller at {V1_ROOT}"));
    }
    let group = Group::create("bench", LIMIT)?;
    drop(group);
    Ok(())
}

/// A re-executed child in the group; its stdout lines come through a
/// channel so that every wait is bounded.
struct Proc {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    status: Option<ExitStatus>,
}

impl Proc {
    fn spawn(group: &Group, role: &str, mode: &str, scenario: &str) -> Proc {
        let procs = CString::new(group.dir.join("cgroup.procs").as_os_str().as_bytes()).expect("no NUL");
        let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
        cmd.env(ROLE_ENV, role)
            .env(MODE_ENV, mode)
            .env(SCENARIO_ENV, scenario)
            .env(GROUP_ENV, &group.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: the closure runs between fork and exec and only makes
        // async-signal-safe calls (open, write, close) on memory prepared
        // before the fork; it allocates nothing.
        unsafe { cmd.pre_exec(move || join_group(&procs)) };
        let mut child = cmd.spawn().expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines, seen: Vec::new(), status: None }
    }

    /// The next line starting with `prefix`, `None` if the child ended (or
    /// went silent for 60 s) first.
    fn expect(&mut self, prefix: &str) -> Option<String> {
        loop {
            let line = self.lines.recv_timeout(Duration::from_secs(60)).ok()?;
            self.seen.push(line.clone());
            if line.starts_with(prefix) {
                return Some(line);
            }
        }
    }

    fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Waits for the exit (killing the child after 60 s).
    fn wait(&mut self) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                break self.child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        self.status = Some(status);
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.close_stdin();
        self.wait();
    }
}

/// One repetition of one cell.
fn run_episode(scenario: &str, mode: &str, ftrace: Option<&Ftrace>) -> Episode {
    if let Some(f) = ftrace {
        f.clear();
    }
    let group = match Group::create("bench", LIMIT) {
        Ok(g) => g,
        Err(e) => return Episode { notes: vec![e], ..Episode::default() },
    };
    let mut owner = Proc::spawn(&group, "owner", mode, scenario);
    let mut sibling = None;
    let mut notes = Vec::new();
    let result = if scenario == "own" {
        owner.expect("RESULT ")
    } else if owner.expect("FILLED").is_some() {
        let sib = sibling.insert(Proc::spawn(&group, "sibling", mode, scenario));
        let r = sib.expect("RESULT ");
        sib.close_stdin();
        r
    } else {
        None
    };
    owner.close_stdin();
    let owner_stats = owner.expect("STATS ");
    let mut killed = 0;
    for (role, p) in std::iter::once(("owner", &mut owner)).chain(sibling.as_mut().map(|s| ("sibling", s))) {
        let status = p.wait();
        if !status.success() {
            if status.signal() == Some(libc::SIGKILL) {
                killed += 1;
            }
            notes.push(format!("{role} {status}; output: {}", p.seen.join(" | ")));
        }
    }
    drop(sibling);
    drop(owner);
    let oom_kills = group.oom_kills().unwrap_or(0).max(killed);
    let stats = owner_stats.as_deref().map(parse).unwrap_or_default();
    if num(&stats, "psi_reclaims") > 0 {
        notes.push(format!("the owner also shed memory for PSI ({} passes)", num(&stats, "psi_reclaims")));
    }
    if std::env::var_os("REACTION_VERBOSE").is_some() {
        eprintln!(
            "{scenario}/{mode}: {} | {}",
            result.as_deref().unwrap_or("-"),
            owner_stats.as_deref().unwrap_or("-")
        );
    }
    let Some(r) = result.as_deref().map(parse) else {
        notes.push("no measurement (the spiker did not report)".into());
        return Episode { oom_kills, notes, ..Episode::default() };
    };
    let opt = |k: &str| r.get(k).and_then(|v| v.parse::<u64>().ok());
    let optf = |k: &str| r.get(k).and_then(|v| v.parse::<f64>().ok());
    // How much later the deficit showed the first discard than the
    // manager's own counter (own scenario only).
    let lag = match (opt("first_discard_stats"), opt("first_discard")) {
        (Some(a), Some(b)) => Some(b as f64 / 1e6 - a as f64 / 1e6),
        _ => None,
    };
    let kernel = match (ftrace, opt("cross_at"), num(&stats, "manager_tid")) {
        (Some(f), Some(cross), tid) if tid != 0 => Some(f.reaction(cross, tid)),
        _ => None,
    };
    Episode {
        kernel,
        written_mib: opt("written_before_discard").map(|b| b as f64 / MIB as f64),
        spike_rate: optf("spike_gibs"),
        start_to_cross: opt("start_to_cross"),
        first_discard: opt("first_discard"),
        under_high: opt("under_high"),
        // Lazy mode: the kernel frees offered pages as the spiker charges
        // new ones, so any "rate" would be the spike's own pace.
        rate: if mode == "lazy" { None } else { optf("rate_gibs") },
        lag,
        oom_kills,
        notes,
    }
}

/// `key=value` pairs.
fn parse(line: &str) -> HashMap<String, String> {
    line.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
}

fn num(map: &HashMap<String, String>, key: &str) -> u64 {
    map.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Median and worst (`worst_high`: the largest is worst) of the values that
/// exist; "n/a" when none does, "+k n/a" when some are missing.
fn cell(values: &[Option<f64>], worst_high: bool, precision: usize) -> String {
    let mut v: Vec<f64> = values.iter().flatten().copied().collect();
    if v.is_empty() {
        return "n/a".into();
    }
    v.sort_by(f64::total_cmp);
    let median = v[v.len() / 2];
    let worst = if worst_high { v[v.len() - 1] } else { v[0] };
    let missing = values.len() - v.len();
    let mut s = format!("{median:.precision$} ({worst:.precision$})");
    if missing > 0 {
        s.push_str(&format!(" +{missing} n/a"));
    }
    s
}

/// Column widths of the main table.
const WIDTHS: [usize; 9] = [8, 7, 12, 14, 18, 19, 17, 13, 9];

fn print_cells(cells: &[String; 9]) {
    let row: String = cells
        .iter()
        .zip(WIDTHS)
        .enumerate()
        .map(|(i, (c, w))| if i < 2 { format!(" {c:<w$} |") } else { format!(" {c:>w$} |") })
        .collect();
    println!("|{row}");
}

fn print_row(scenario: &str, mode: &str, eps: &[Episode]) {
    let ms = |f: fn(&Episode) -> Option<u64>| eps.iter().map(|e| f(e).map(|ns| ns as f64 / 1e6)).collect::<Vec<_>>();
    let of = |f: fn(&Episode) -> Option<f64>| eps.iter().map(f).collect::<Vec<_>>();
    let ooms: u64 = eps.iter().map(|e| e.oom_kills).sum();
    print_cells(&[
        scenario.into(),
        mode.into(),
        cell(&of(|e| e.spike_rate), false, 2),
        cell(&ms(|e| e.start_to_cross), true, 1),
        cell(&ms(|e| e.first_discard), true, 2),
        cell(&of(|e| e.written_mib), true, 1),
        cell(&ms(|e| e.under_high), true, 2),
        cell(&of(|e| e.rate), false, 1),
        ooms.to_string(),
    ]);
}

/// The ftrace cross-check: the manager thread's side, managed mode.
fn print_kernel_rows(rows: &[(&str, Vec<Reaction>)]) {
    println!();
    println!("The manager thread's side (ftrace, managed mode), ms after the crossing; median (worst);");
    println!("\"n/a\": the manager was awake already (a pass or a 5 ms poll) when usage crossed.");
    println!("| scenario | kernel woke it | it got a CPU | its 1st MADV_DONTNEED |");
    println!("|----------|----------------|--------------|-----------------------|");
    for (scenario, rs) in rows {
        let col = |f: fn(&Reaction) -> Option<u64>| {
            cell(&rs.iter().map(|r| f(r).map(|ns| ns as f64 / 1e6)).collect::<Vec<_>>(), true, 2)
        };
        println!(
            "| {scenario:<8} | {:>14} | {:>12} | {:>21} |",
            col(|r| r.wake),
            col(|r| r.on_cpu),
            col(|r| r.madvise)
        );
    }
}

// ------------------------------------------------------------- ftrace

/// The manager thread's side of one reaction, ns after the crossing, from
/// the kernel's trace (`CLOCK_MONOTONIC`, like the spiker's stamps).
#[derive(Debug, Default, Clone, Copy)]
struct Reaction {
    /// The kernel woke the manager thread (the cgroup threshold's eventfd);
    /// `None` when it was awake already.
    wake: Option<u64>,
    /// The manager thread got a CPU after that wake-up.
    on_cpu: Option<u64>,
    /// Its first `MADV_DONTNEED` of 1 MiB: the first discard.
    madvise: Option<u64>,
}

/// Optional (`REACTION_FTRACE=1`; root and tracefs): a private tracefs
/// instance recording the manager thread's wake-ups, context switches and
/// `MADV_DONTNEED` calls, removed on drop.
struct Ftrace {
    dir: PathBuf,
}

impl Ftrace {
    const EVENTS: [&str; 3] = ["sched/sched_wakeup", "sched/sched_switch", "syscalls/sys_enter_madvise"];

    fn start() -> Result<Ftrace, String> {
        let dir = PathBuf::from(format!("/sys/kernel/tracing/instances/discardable-reaction-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let f = Ftrace { dir };
        f.write("trace_clock", "mono")?;
        f.write("buffer_size_kb", "16384")?;
        f.write("events/sched/sched_wakeup/filter", &format!("comm == \"{MANAGER_COMM}\""))?;
        f.write("events/sched/sched_switch/filter", &format!("next_comm == \"{MANAGER_COMM}\""))?;
        f.write("events/syscalls/sys_enter_madvise/filter", &format!("behavior == 4 && len_in == {ALLOC}"))?;
        for e in Self::EVENTS {
            f.write(&format!("events/{e}/enable"), "1")?;
        }
        f.write("tracing_on", "1")?;
        Ok(f)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.dir.join(file), value).map_err(|e| format!("{file}: {e}"))
    }

    fn clear(&self) {
        let _ = self.write("trace", "");
    }

    /// The reaction of the manager thread `tid` to the crossing at `cross`:
    /// its first `MADV_DONTNEED` after it, and the wake-up and switch-in
    /// that led to it (none when the manager was awake already, in a pass
    /// or a fast poll, when usage crossed).
    fn reaction(&self, cross: u64, tid: u64) -> Reaction {
        let text = std::fs::read_to_string(self.dir.join("trace")).unwrap_or_default();
        let mut r = Reaction::default();
        let (woke, switched) = (format!(" pid={tid} "), format!("next_pid={tid} "));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((t, task, rest)) = trace_line(line) else { continue };
            let Some(after) = t.checked_sub(cross) else { continue };
            if rest.starts_with("sched_wakeup:") && rest.contains(&woke) {
                r.wake = Some(after);
                r.on_cpu = None;
            } else if r.wake.is_some() && r.on_cpu.is_none() && rest.starts_with("sched_switch:") {
                if rest.contains(&switched) {
                    r.on_cpu = Some(after);
                }
            } else if rest.starts_with("sys_madvise(") && task == tid {
                r.madvise = Some(after);
                break;
            }
        }
        if r.madvise.is_none() {
            return Reaction::default();
        }
        r
    }
}

impl Drop for Ftrace {
    fn drop(&mut self) {
        let _ = self.write("tracing_on", "0");
        for e in Self::EVENTS {
            let _ = self.write(&format!("events/{e}/enable"), "0");
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// `(time in ns, task id, event text)` of a trace line such as
/// `name-123 [000] d..2. 4943.292277: sched_switch: ...`.
fn trace_line(line: &str) -> Option<(u64, u64, &str)> {
    let (head, rest) = line.split_once(']')?;
    let task: u64 = head.rsplit_once('[')?.0.trim().rsplit_once('-')?.1.parse().ok()?;
    let mut words = rest.split_whitespace();
    let _flags = words.next()?;
    let stamp = words.next()?.strip_suffix(':')?;
    let (secs, micros) = stamp.split_once('.')?;
    let t = secs.parse::<u64>().ok()? * 1_000_000_000 + micros.parse::<u64>().ok()? * 1000;
    let at = rest.find(stamp)? + stamp.len() + 1;
    Some((t, task, rest[at..].trim_start()))
}

// -------------------------------------------------------------- children

/// A cgroup file kept open and re-read from offset 0 (no allocation, no
/// open per read).
struct Counter {
    file: File,
    buf: [u8; 32],
}

impl Counter {
    fn open(path: &Path) -> Counter {
        Counter { file: File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())), buf: [0; 32] }
    }

    fn read(&mut self) -> u64 {
        let n = self.file.read_at(&mut self.buf, 0).expect("read");
        std::str::from_utf8(&self.buf[..n]).ok().and_then(|t| t.trim().parse().ok()).expect("a number")
    }
}

/// The owner: discardable memory, then its own spike (`own`) or a wait
/// while the sibling spikes.
fn owner(mode: ReclaimMode, scenario: &str, group: &Path) {
    let mut builder = ManagerBuilder::default().reclaim_mode(mode).limit(LIMIT);
    let wanted = std::env::var("REACTION_PRIORITY").ok();
    match wanted.as_deref() {
        None => {}
        Some("normal") => builder = builder.priority(ThreadPriority::Normal),
        Some("raised") => builder = builder.priority(ThreadPriority::Raised),
        Some("realtime") => builder = builder.priority(ThreadPriority::Realtime),
        Some(other) => panic!("REACTION_PRIORITY={other}: expected normal, raised or realtime"),
    }
    let m = builder.install_global().expect("install_global");
    if let Some(wanted) = wanted {
        let deadline = Instant::now() + Duration::from_secs(2);
        while m.stats().thread_priority.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let got = m.stats().thread_priority;
        assert_eq!(format!("{got:?}").to_lowercase(), format!("some({wanted})"), "the OS refused the priority");
    }
    let seen = m.signals().into_iter().find(|r| r.signal == Signal::CgroupV1).and_then(|r| r.limit);
    assert_eq!(seen, Some(LIMIT as u64), "the manager did not find the group's limit");
    let data = vec![0xC3u8; ALLOC];
    let handles: Vec<Discardable<[u8]>> = (0..DISCARDABLE / ALLOC).map(|_| Discardable::from_slice(&data)).collect();
    drop(data);
    if mode == ReclaimMode::Lazy {
        let deadline = Instant::now() + Duration::from_secs(5);
        while m.stats().offers < handles.len() as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Let the manager go idle: nothing above the marks, nothing to offer.
    std::thread::sleep(Duration::from_millis(200));
    if scenario == "own" {
        let mut spike = vec![0u8; SPIKE];
        let r = spike_and_measure(group, &mut spike, Some(m));
        println!("RESULT {r}");
        drop(spike);
    } else {
        println!("FILLED");
    }
    std::io::stdout().flush().expect("flush");
    // Hold everything until the parent is done with this episode.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let st = m.stats();
    let alive = handles.iter().filter(|h| !h.is_discarded()).count();
    println!(
        "STATS discarded={} alive={alive} cgroup_reclaims={} psi_reclaims={} offers={} kernel_discards={} \
         manager_tid={}",
        st.discarded_count,
        st.reclaims(Signal::CgroupV1),
        st.reclaims(Signal::Psi),
        st.offers,
        st.kernel_discards,
        manager_tid().unwrap_or(0)
    );
    std::io::stdout().flush().expect("flush");
}

/// The thread id of this process's manager thread (named
/// `discardable-manager`, which the kernel shortens to 15 bytes).
fn manager_tid() -> Option<u64> {
    std::fs::read_dir("/proc/self/task").ok()?.flatten().find_map(|task| {
        let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
        (comm.trim() == MANAGER_COMM).then(|| task.file_name().to_str()?.parse().ok())?
    })
}

/// The sibling: a spike the owner's allocator cannot see.
fn sibling(group: &Path) {
    let mut buf = SysBuf::new(SPIKE);
    let r = spike_and_measure(group, buf.as_mut(), None);
    println!("RESULT {r}");
    std::io::stdout().flush().expect("flush");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// One read of the spiker.
#[derive(Clone, Copy, Default)]
struct Sample {
    t: u64,
    usage: u64,
    /// Bytes given back by others since the spike started (may be
    /// slightly negative: page tables, charge batches).
    deficit: i64,
    /// Bytes the spiker had written.
    written: u64,
}

/// Writes `buf` (fresh, untouched memory) piece by piece and measures the
/// group's reaction; returns the `key=value` pairs of a `RESULT` line.
/// With `m` (the `own` scenario) it also watches the manager's counter.
fn spike_and_measure(group: &Path, buf: &mut [u8], m: Option<&Manager>) -> String {
    let mut usage = Counter::open(&group.join("memory.usage_in_bytes"));
    let max_path = group.join("memory.max_usage_in_bytes");
    let mut max_usage = Counter::open(&max_path);
    std::fs::write(&max_path, "0").expect("reset memory.max_usage_in_bytes");
    // Written (charged) before the spike, so that its growth does not count
    // against the deficit.
    let mut samples: Vec<Sample> = vec![Sample::default(); MAX_SAMPLES];
    samples.clear();
    let discarded = || m.map_or(0, |m| m.stats().discarded_bytes);
    let discarded_before = discarded();
    let mut first_discard_stats = None;

    let u0 = usage.read();
    let start = now_ns();
    samples.push(Sample { t: start, usage: u0, deficit: 0, written: 0 });
    // The crossing: (start of the piece, index of the read before it).
    let mut cross: Option<(u64, usize)> = None;
    let mut written = 0u64;
    for piece in buf.chunks_mut(PIECE) {
        let t0 = now_ns();
        piece.fill(0xA5);
        written += piece.len() as u64;
        let u = usage.read();
        let t = now_ns();
        if cross.is_none() && max_usage.read() > HIGH_MARK {
            cross = Some((t0, samples.len() - 1));
        }
        if first_discard_stats.is_none() && cross.is_some() && discarded() > discarded_before {
            first_discard_stats = Some(t);
        }
        if samples.len() < MAX_SAMPLES {
            samples.push(Sample { t, usage: u, deficit: (u0 + written) as i64 - u as i64, written });
        }
    }
    let spike_end = now_ns();
    let tail_end = spike_end + TAIL.as_nanos() as u64;
    while samples.len() < MAX_SAMPLES {
        // A read every 5 µs or so is plenty.
        let last = samples.last().map_or(0, |s| s.t);
        while now_ns() < last + 5_000 {
            std::hint::spin_loop();
        }
        let u = usage.read();
        let t = now_ns();
        if cross.is_none() && max_usage.read() > HIGH_MARK {
            cross = Some((t, samples.len() - 1));
        }
        if first_discard_stats.is_none() && cross.is_some() && discarded() > discarded_before {
            first_discard_stats = Some(t);
        }
        samples.push(Sample { t, usage: u, deficit: (u0 + written) as i64 - u as i64, written });
        if t >= tail_end {
            break;
        }
    }

    let mut out =
        format!("spike_gibs={:.3}", written as f64 / ((spike_end - start) as f64 / 1e9) / (1u64 << 30) as f64);
    let Some((t_cross, before)) = cross else {
        out.push_str(" crossed=0");
        return out;
    };
    out.push_str(&format!(" start_to_cross={} cross_at={t_cross}", t_cross - start));
    let base = samples[before].deficit;
    let first = (before + 1..samples.len()).find(|&i| samples[i].deficit - base >= MIB as i64);
    if let Some(f) = first {
        out.push_str(&format!(" first_discard={}", samples[f].t.saturating_sub(t_cross)));
        // What the spike wrote from the start of the crossing piece until
        // the discard showed: what the limit had to absorb meanwhile.
        out.push_str(&format!(" written_before_discard={}", samples[f].written - samples[before].written));
        if let Some(t) = first_discard_stats {
            out.push_str(&format!(" first_discard_stats={}", t.saturating_sub(t_cross)));
        }
        // The first burst: until the deficit grows by under 1 MiB in 1 ms.
        let end = (f..samples.len())
            .find(|&i| {
                let later = samples[i..].iter().find(|s| s.t >= samples[i].t + 1_000_000);
                later.is_some_and(|s| s.deficit - samples[i].deficit < MIB as i64)
            })
            .unwrap_or(samples.len() - 1);
        let (a, b) = (samples[f - 1], samples[end]);
        if b.t > a.t && b.deficit > a.deficit {
            let rate = (b.deficit - a.deficit) as f64 / ((b.t - a.t) as f64 / 1e9) / (1u64 << 30) as f64;
            out.push_str(&format!(" rate_gibs={rate:.3} burst_bytes={}", b.deficit - a.deficit));
        }
    }
    if let Some(u) = samples[before + 1..].iter().find(|s| s.usage <= HIGH_MARK) {
        out.push_str(&format!(" under_high={}", u.t.saturating_sub(t_cross)));
    }
    out.push_str(&format!(" samples={}", samples.len()));
    out
}
