//! The comparison driver: runs every allocator binary on every workload,
//! interleaved over several rounds (the allocator order rotates each
//! round), and prints the median times, the ratios of `discardable` to each
//! peer with their geometric means, and the RSS lifecycle per allocator.
//!
//! Build and run (five rounds by default, about three minutes on two cores):
//!
//! ```text
//! cargo build --release -p alloc-bench && target/release/compare [--rounds N] [--only w1,w2] [--no-rss]
//! ```
//!
//! or `benches/alloc/run.sh`. The allocator binaries must sit next to this
//! one. `ALLOC_BENCH_SCALE` is passed through to them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const ALLOCATORS: [&str; 4] = ["system", "mimalloc", "jemalloc", "discardable"];
const OURS: &str = "discardable";
const PEERS: [&str; 3] = ["system", "mimalloc", "jemalloc"];
/// The RSS goal: within this many MiB of the baseline after 1 s idle.
const RSS_SLACK_MIB: f64 = 64.0;

/// One line of an allocator binary's output, as key/value pairs.
fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace().skip(1).filter_map(|kv| kv.split_once('=')).collect()
}

/// Runs `bin arg`; on failure (a workload's data check panicked, or the
/// allocator crashed) returns the status and the last lines of stderr.
fn run(bin: &Path, arg: &str) -> Result<Vec<String>, String> {
    let out = Command::new(bin).arg(arg).output().unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).take(3).collect();
        return Err(format!("{}: {}", out.status, why.join(" | ")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn geomean(v: &[f64]) -> f64 {
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
}

#[derive(Default)]
struct Results {
    /// (workload, allocator) -> seconds per round.
    secs: BTreeMap<(String, String), Vec<f64>>,
    /// (workload, allocator) -> checksums seen.
    checks: BTreeMap<(String, String), Vec<String>>,
    /// allocator -> field -> MiB per round (and settle_ms).
    rss: BTreeMap<String, BTreeMap<String, Vec<f64>>>,
    /// allocator -> extra statistics lines.
    stats: BTreeMap<String, String>,
    /// Runs that failed (a data check or a crash), with why.
    failures: Vec<String>,
}

impl Results {
    fn absorb(&mut self, lines: &[String]) {
        for line in lines {
            let f = fields(line);
            let alloc = f.get("alloc").copied().unwrap_or("?").to_string();
            if line.starts_with("result ") {
                let key = (f["workload"].to_string(), alloc);
                self.secs.entry(key.clone()).or_default().push(f["secs"].parse().expect("secs"));
                self.checks.entry(key).or_default().push(f["check"].to_string());
            } else if line.starts_with("rss ") {
                let entry = self.rss.entry(alloc).or_default();
                for (k, v) in f.iter().filter(|(k, _)| **k != "alloc") {
                    // `settle_ms=none`: not within the slack in the second.
                    entry.entry(k.to_string()).or_default().push(v.parse().unwrap_or(f64::INFINITY));
                }
            } else if let Some(rest) = line.strip_prefix("stats ") {
                let rest: Vec<&str> = rest.split_whitespace().filter(|kv| !kv.starts_with("alloc=")).collect();
                self.stats.insert(alloc, rest.join(" "));
            }
        }
    }
}

fn main() {
    let mut rounds = 5usize;
    let mut only: Option<Vec<String>> = None;
    let mut rss = true;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => rounds = args.next().and_then(|s| s.parse().ok()).expect("--rounds N"),
            "--only" => only = Some(args.next().expect("--only w1,w2").split(',').map(str::to_owned).collect()),
            "--no-rss" => rss = false,
            _ => {
                eprintln!("usage: compare [--rounds N] [--only w1,w2] [--no-rss]");
                std::process::exit(2);
            }
        }
    }
    let dir = std::env::current_exe().expect("current_exe").parent().expect("exe dir").to_path_buf();
    let bins: Vec<PathBuf> = ALLOCATORS.iter().map(|a| dir.join(a)).collect();
    for b in &bins {
        if !b.exists() {
            eprintln!("{} missing: build with `cargo build --release -p alloc-bench`", b.display());
            std::process::exit(1);
        }
    }
    let mut workloads: Vec<String> = run(&bins[0], "list").unwrap_or_else(|e| panic!("list: {e}"));
    if let Some(only) = &only {
        workloads.retain(|w| only.contains(w));
    }
    if !rss {
        workloads.retain(|w| w != "rss");
    }
    let started = std::time::Instant::now();
    let mut results = Results::default();
    for round in 0..rounds {
        for (wi, w) in workloads.iter().enumerate() {
            // Rotate the order by round and workload, so no allocator
            // always runs right after the same neighbour.
            for k in 0..ALLOCATORS.len() {
                let i = (k + round + wi) % ALLOCATORS.len();
                match run(&bins[i], w) {
                    Ok(lines) => results.absorb(&lines),
                    Err(why) => {
                        eprintln!("FAILED: {} {w} (round {}): {why}", ALLOCATORS[i], round + 1);
                        results.failures.push(format!("{} {w} round {}: {why}", ALLOCATORS[i], round + 1));
                    }
                }
            }
        }
        eprintln!("round {}/{rounds} done after {:.0} s", round + 1, started.elapsed().as_secs_f64());
    }

    let timed: Vec<String> = {
        let mut seen: Vec<String> = Vec::new();
        for (w, _) in results.secs.keys() {
            if !seen.contains(w) {
                seen.push(w.clone());
            }
        }
        // Keep the binaries' order.
        let mut order: Vec<String> =
            workloads.iter().map(|w| if w == "rss" { "rss_lifecycle".to_string() } else { w.clone() }).collect();
        order.retain(|w| seen.contains(w));
        order
    };

    println!("median seconds over {rounds} round(s); ratios are discardable / peer (lower is better)");
    println!();
    print!("{:<15}", "workload");
    for a in ALLOCATORS {
        print!(" {a:>11}");
    }
    for p in PEERS {
        print!(" {:>8}", format!("d/{}", &p[..3.min(p.len())]));
    }
    println!();
    let mut ratios: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for w in &timed {
        let med = |a: &str| results.secs.get(&(w.clone(), a.to_string())).map(|v| median(v));
        print!("{w:<15}");
        for a in ALLOCATORS {
            match med(a) {
                Some(s) => print!(" {s:>10.3}s"),
                None => print!(" {:>11}", "-"),
            }
        }
        let in_geomean = w != "rss_lifecycle";
        for p in PEERS {
            match (med(OURS), med(p)) {
                (Some(o), Some(s)) => {
                    print!(" {:>8.2}", o / s);
                    if in_geomean {
                        ratios.entry(p).or_default().push(o / s);
                    }
                }
                _ => print!(" {:>8}", "-"),
            }
        }
        if !in_geomean {
            print!("  (not in geomean)");
        }
        let checks: Vec<&String> =
            ALLOCATORS.iter().filter_map(|a| results.checks.get(&(w.clone(), a.to_string()))).flatten().collect();
        if checks.windows(2).any(|c| c[0] != c[1]) {
            print!("  CHECKSUM MISMATCH");
        }
        println!();
    }
    print!("{:<15}", "geomean");
    print!(" {:>47}", "");
    for p in PEERS {
        match ratios.get(p) {
            Some(r) if !r.is_empty() => print!(" {:>8.2}", geomean(r)),
            _ => print!(" {:>8}", "-"),
        }
    }
    println!();
    if let (Some(s), Some(m)) = (ratios.get("system"), ratios.get("mimalloc")) {
        let (gs, gm) = (geomean(s), geomean(m));
        println!(
            "goal: geomean <= 0.80x system: {} ({gs:.2}); <= 1.20x mimalloc: {} ({gm:.2})",
            if gs <= 0.8 { "met" } else { "NOT met" },
            if gm <= 1.2 { "met" } else { "NOT met" }
        );
    }

    if !results.rss.is_empty() {
        println!();
        println!("RSS lifecycle (MiB, median over rounds): 1 GiB of 64 B..64 KiB blocks, every other freed, all freed, 1 s idle");
        println!(
            "{:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>10}  goal",
            "allocator", "baseline", "peak", "half", "all", "idle 1s", "idle-base", "settle ms"
        );
        for a in ALLOCATORS {
            let Some(r) = results.rss.get(a) else { continue };
            let m = |k: &str| r.get(k).map_or(f64::NAN, |v| median(v));
            let (base, idle) = (m("baseline"), m("idle"));
            let settle = m("settle_ms");
            let settle = if settle.is_finite() { format!("{settle:.0}") } else { "never".to_string() };
            println!(
                "{a:<12} {base:>9.1} {:>9.1} {:>9.1} {:>9.1} {idle:>9.1} {:>11.1} {settle:>10}  {}",
                m("peak"),
                m("half"),
                m("all"),
                idle - base,
                if idle - base <= RSS_SLACK_MIB { "met" } else { "NOT met" }
            );
        }
        for (a, s) in &results.stats {
            println!("{a} stats after idle (last round): {s}");
        }
    }
    if !results.failures.is_empty() {
        println!();
        println!("FAILED runs ({}; their times are missing from the medians):", results.failures.len());
        for f in &results.failures {
            println!("  {f}");
        }
    }
    eprintln!("total {:.0} s", started.elapsed().as_secs_f64());
    if !results.failures.is_empty() {
        std::process::exit(1);
    }
}
