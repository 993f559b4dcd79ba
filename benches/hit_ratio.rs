//! Hit ratio of [`discardable::Cache`] against moka (W-TinyLFU) and quick_cache (a modified
//! Clock-PRO, close to S3-FIFO) at equal entry capacity.
//!
//! Workload, the same for every cache: for each key of the trace, `get`; on a miss, insert the key
//! (a 64 B value by default; the peers store one shared `Arc<[u8]>`, as their capacity counts
//! entries). Hits are counted over the whole trace, cold start included.
//!
//! Capacity: `C` entries, where `C` is 1 %, 10 % and 50 % of the key space. The peers get `C`
//! entries; ours gets `C x cost` bytes, where `cost` is what one value costs in our cache (measured
//! before the run and printed; for 64 B values it is exactly 64 B, a size-class slot). Rows:
//!
//! - `ours`: `Cache::builder().capacity(C x cost)`, its own manager, default policy. This is the
//!   production configuration; the capacity is enforced by the cache's own CLOCK sweep over its
//!   shards, on every insert.
//! - `ours capacity +policy=P`: the same with `.policy(P)`. The policy only orders what the cache's
//!   own manager discards under memory pressure; the manager's limit is 9/8 of the capacity and the
//!   sweep keeps the cache under the capacity, so the policy never decides anything here and these
//!   rows differ from `ours` only by noise (the default hasher is seeded at random per cache, so
//!   the sweep visits keys in a different order each run).
//! - `ours manager +policy=P`: what the policy would do if it enforced the capacity: no cache
//!   capacity, a shared manager of its own with that policy and a limit far above the data (so its
//!   thread stays idle), and after each insert that takes the cache over `C x cost` bytes, a
//!   synchronous `Manager::reclaim` back down to `C - B` entries, `B` = 1 % of `C` (at least 1; a
//!   reclaim scans the manager's whole table, so it is batched; the cache runs at 99-100 % of `C`,
//!   a slight handicap). Not a production configuration: a diagnostic of the policies.
//! - `moka`: `moka::sync::Cache::builder().max_capacity(C)`, left to do its own housekeeping (it
//!   may exceed `C` briefly, as in production).
//! - `quick_cache`: `quick_cache::sync::Cache::new(C)`.
//!
//! Traces, from the committed generator in `benches/support/traces.rs` (fixed seeds), over a key
//! space of `N` = 100k keys, 1M accesses each:
//!
//! - `zipf`: Zipf 0.99.
//! - `zipf+scan`: the same Zipf trace with a one-pass scan of `N` fresh keys (each read once)
//!   spliced in at the middle.
//! - `loop`: keys `0..ceil(1.1 C)` in order, repeated (a loop slightly larger than the cache, LRU's
//!   worst case); its capacity labels still mean `C` = that share of `N`.
//!
//! Run: `cargo bench --bench hit_ratio` (a minute or two). Replay a trace of your own (one key per
//! line: a decimal `u64`, or any text, which is hashed) at 1/10/50 % of its distinct keys: `cargo
//! bench --bench hit_ratio -- path/to/trace.txt`. Knobs (environment): `HIT_RATIO_KEYS` (N,
//! 100000), `HIT_RATIO_LEN` (accesses, 1000000), `HIT_RATIO_VALUE` (bytes, 64), `HIT_RATIO_CAPS`
//! (percentages, `1,10,50`), `HIT_RATIO_POLICIES=0` to skip the per-policy rows. Without `--bench`
//! (as under `cargo test --benches`) it runs a tiny smoke configuration.

#[path = "support/traces.rs"]
mod traces;

use std::sync::Arc;
use std::time::Instant;

use discardable::{Cache, Manager, Policy};

const POLICIES: [Policy; 4] = [Policy::Lru, Policy::Clock, Policy::Fifo, Policy::S3Fifo];

/// A cache under test.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Contender {
    /// Ours with a capacity of its own, optionally with a policy for its own manager.
    Capacity(Option<Policy>),
    /// Ours with no capacity, bounded by synchronous reclaims of a manager with this policy.
    Manager(Policy),
    Moka,
    Quick,
}

impl Contender {
    fn name(self) -> String {
        match self {
            Self::Capacity(None) => "ours".into(),
            Self::Capacity(Some(p)) => format!("ours capacity +policy={p:?}"),
            Self::Manager(p) => format!("ours manager +policy={p:?}"),
            Self::Moka => "moka".into(),
            Self::Quick => "quick_cache".into(),
        }
    }
}

/// The run's parameters.
struct Setup {
    /// One value's bytes.
    value: Vec<u8>,
    /// What one value costs in our cache.
    cost: usize,
}

/// Replays `trace` on `who` with a capacity of `cap` entries; returns hits and a note (empty, or
/// what went unexpectedly).
fn replay(who: Contender, trace: &[u64], cap: usize, setup: &Setup) -> (u64, String) {
    let bytes = cap * setup.cost;
    match who {
        Contender::Capacity(policy) => {
            let mut b = Cache::builder().capacity(bytes);
            if let Some(p) = policy {
                b = b.policy(p);
            }
            let cache: Cache<u64, [u8]> = b.build().expect("building our cache");
            let mut hits = 0;
            let mut max_len = 0;
            for &k in trace {
                if cache.get(&k).is_some() {
                    hits += 1;
                } else {
                    cache.insert(k, &setup.value).expect("insert");
                    max_len = max_len.max(cache.len());
                }
            }
            let discarded_by_manager = cache.manager().stats().discarded_count;
            let mut note = String::new();
            if max_len > cap + 1 {
                note += &format!("held up to {max_len} entries; ");
            }
            if discarded_by_manager > 0 {
                note += &format!("manager discarded {discarded_by_manager}; ");
            }
            (hits, note)
        }
        Contender::Manager(policy) => {
            let limit = (1usize << 30).max(4 * trace.len() * setup.cost);
            let manager = Manager::builder().limit(limit).policy(policy).start().expect("starting a manager");
            let cache: Cache<u64, [u8]> = Cache::builder().manager(&manager).build().expect("building our cache");
            let batch = (cap / 100).max(1);
            let low = cap.saturating_sub(batch) * setup.cost;
            let mut hits = 0;
            let mut short = 0u64;
            for &k in trace {
                if cache.get(&k).is_some() {
                    hits += 1;
                } else {
                    cache.insert(k, &setup.value).expect("insert");
                    let size = cache.weighted_size();
                    if size > bytes {
                        manager.reclaim(size - low);
                        if cache.weighted_size() > bytes {
                            short += 1;
                        }
                    }
                }
            }
            let note = if short > 0 { format!("{short} reclaims fell short; ") } else { String::new() };
            (hits, note)
        }
        Contender::Moka => {
            let cache: moka::sync::Cache<u64, Arc<[u8]>> =
                moka::sync::Cache::builder().max_capacity(cap as u64).build();
            let value: Arc<[u8]> = Arc::from(&setup.value[..]);
            let mut hits = 0;
            for &k in trace {
                if cache.get(&k).is_some() {
                    hits += 1;
                } else {
                    cache.insert(k, Arc::clone(&value));
                }
            }
            (hits, String::new())
        }
        Contender::Quick => {
            let cache: quick_cache::sync::Cache<u64, Arc<[u8]>> = quick_cache::sync::Cache::new(cap);
            let value: Arc<[u8]> = Arc::from(&setup.value[..]);
            let mut hits = 0;
            for &k in trace {
                if cache.get(&k).is_some() {
                    hits += 1;
                } else {
                    cache.insert(k, Arc::clone(&value));
                }
            }
            (hits, String::new())
        }
    }
}

/// One column of the table: a trace at one capacity.
struct Column {
    label: String,
    trace: Arc<Vec<u64>>,
    cap: usize,
}

/// What one value of `size` bytes costs in our cache.
fn cost_of(value: &[u8]) -> usize {
    let probe: Cache<u64, [u8]> = Cache::builder().capacity(64 << 20).build().expect("building a probe cache");
    for k in 0..16 {
        probe.insert(k, value).expect("probe insert");
    }
    let total = probe.weighted_size();
    assert_eq!(total % 16, 0, "values of one size cost different amounts");
    total / 16
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|_| "?".into(), |s| s.trim().to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let smoke = !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test");
    let file = args.iter().skip(1).find(|a| !a.starts_with("--")).cloned();
    let (keys, len) = if smoke { (1_000, 10_000) } else { (100_000, 1_000_000) };
    let keys: usize = traces::env_or("HIT_RATIO_KEYS", keys);
    let len: usize = traces::env_or("HIT_RATIO_LEN", len);
    let value_size: usize = traces::env_or("HIT_RATIO_VALUE", 64);
    let caps: Vec<f64> = std::env::var("HIT_RATIO_CAPS")
        .unwrap_or_else(|_| "1,10,50".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap_or_else(|_| panic!("HIT_RATIO_CAPS: {s:?} is not a number")))
        .collect();
    let policies = std::env::var("HIT_RATIO_POLICIES").map_or(true, |v| v != "0");
    assert!(keys > 0 && len > 0 && value_size > 0, "every knob must be positive");

    let value = vec![0xa5u8; value_size];
    let cost = cost_of(&value);
    let setup = Setup { value, cost };
    println!("hit_ratio: load average {}", loadavg());
    println!("one {value_size} B value costs {cost} B in our cache; our capacity = C x {cost} B");

    let mut columns = Vec::new();
    let share = |pct: f64, n: usize| ((n as f64 * pct / 100.0).round() as usize).max(1);
    if let Some(path) = &file {
        let trace = Arc::new(traces::read_file(path).unwrap_or_else(|e| panic!("reading {path}: {e}")));
        let distinct = traces::distinct(&trace);
        assert!(distinct > 0, "{path} holds no keys");
        println!("trace {path}: {} accesses, {distinct} distinct keys", trace.len());
        for &pct in &caps {
            columns.push(Column {
                label: format!("file {pct}%"),
                trace: Arc::clone(&trace),
                cap: share(pct, distinct),
            });
        }
    } else {
        println!("traces: N = {keys} keys, {len} accesses (+{keys} for the scan), seed {:#x}", traces::SEED);
        let zipf = Arc::new(traces::zipf(keys, 0.99, len, traces::SEED));
        let scan = Arc::new(traces::zipf_with_scan(keys, 0.99, len, keys, traces::SEED));
        for &pct in &caps {
            columns.push(Column { label: format!("zipf {pct}%"), trace: Arc::clone(&zipf), cap: share(pct, keys) });
        }
        for &pct in &caps {
            columns.push(Column {
                label: format!("zipf+scan {pct}%"),
                trace: Arc::clone(&scan),
                cap: share(pct, keys),
            });
        }
        for &pct in &caps {
            let cap = share(pct, keys);
            let span = (cap as f64 * 1.1).ceil() as usize;
            let trace = Arc::new(traces::looping(span.max(cap + 1), len));
            columns.push(Column { label: format!("loop {pct}%"), trace, cap });
        }
    }

    let mut contenders = vec![Contender::Capacity(None)];
    if policies {
        contenders.extend(POLICIES.map(|p| Contender::Capacity(Some(p))));
        contenders.extend(POLICIES.map(Contender::Manager));
    }
    contenders.extend([Contender::Moka, Contender::Quick]);

    let t = Instant::now();
    let mut ratios = vec![vec![0.0; columns.len()]; contenders.len()];
    let mut notes = Vec::new();
    for (ci, col) in columns.iter().enumerate() {
        for (ri, &who) in contenders.iter().enumerate() {
            let (hits, note) = replay(who, &col.trace, col.cap, &setup);
            ratios[ri][ci] = hits as f64 / col.trace.len() as f64;
            if !note.is_empty() {
                notes.push(format!("{} on {}: {note}", who.name(), col.label));
            }
        }
        eprintln!("  {} (C = {}) done, {:.0} s", col.label, col.cap, t.elapsed().as_secs_f64());
    }

    println!();
    let header: Vec<String> = columns.iter().map(|c| format!("{} (C={})", c.label, c.cap)).collect();
    println!("| cache | {} |", header.join(" | "));
    println!("|{}", " --- |".repeat(columns.len() + 1));
    for (ri, who) in contenders.iter().enumerate() {
        let cells: Vec<String> = ratios[ri].iter().map(|r| format!("{:.2} %", r * 100.0)).collect();
        println!("| {} | {} |", who.name(), cells.join(" | "));
    }
    let best: Vec<String> = (0..columns.len())
        .map(|ci| {
            let top = contenders.iter().enumerate().map(|(ri, _)| ratios[ri][ci]).fold(f64::MIN, f64::max);
            let names: Vec<String> = contenders
                .iter()
                .enumerate()
                .filter(|&(ri, _)| ratios[ri][ci] >= top - 1e-12)
                .map(|(_, w)| w.name())
                .collect();
            names.join(", ")
        })
        .collect();
    println!("| **best** | {} |", best.join(" | "));
    let ours_vs: Vec<String> = (0..columns.len())
        .map(|ci| {
            let ours = ratios[0][ci];
            let moka = ratios[contenders.len() - 2][ci];
            let quick = ratios[contenders.len() - 1][ci];
            format!("{:+.2} / {:+.2}", (ours - moka) * 100.0, (ours - quick) * 100.0)
        })
        .collect();
    println!("| ours - moka / ours - quick_cache (points) | {} |", ours_vs.join(" | "));
    for note in notes {
        println!("note: {note}");
    }
    println!("\n{:.0} s; load average {}", t.elapsed().as_secs_f64(), loadavg());
}
