//! Strong memory per entry of [`discardable::Cache`] against `quick_cache::sync::Cache` and
//! `moka::sync::Cache`, read from the allocator's own accounting rather than estimated.
//!
//! The binary's global allocator is [`DiscardAlloc`] behind a thin counting wrapper that keeps the
//! live requested bytes and blocks in two atomics. Each cache runs in a fresh child process of this
//! binary (`--child <side> <n>`), so no cache sees another's garbage or warmed-up heaps. The child
//! takes two readings before it builds its cache and after it has inserted `n` entries (`u64` keys
//! `0..n`, 64-byte values):
//! - *exact*: the wrapper's live requested bytes (what the program asked for, to the byte);
//! - *spans*: `DiscardAlloc::stats().in_use`, the bytes of the allocator's spans held for strong
//!   allocations (whole 64 KiB class spans and large spans, so it includes the size-class rounding
//!   and the unused tail of the last span of each class).
//!
//! Bytes per entry are (delta − value bytes held in strong memory) / n. The peers hold
//! `Arc<[u8]>` values: their 64 value bytes per entry are strong and are subtracted (the `Arc`'s
//! 16-byte header counts as overhead). Ours is a `Cache<u64, [u8]>` with `.capacity(n * 64 * 2)`
//! (a manager of its own, nothing is discarded); its values live in discardable memory, not in
//! strong memory, so its whole strong delta is overhead. Before the after-reading the child lets
//! our manager take in the new allocations (`manager().reclaim(0)`: one pass that drains the
//! intake into its table and policy and discards nothing), so the manager's per-entry slots are
//! counted; the figure before that pass is printed too. The peers use their default hashers and an
//! entry capacity of `2 n` (neither preallocates by capacity), and moka runs its pending tasks
//! before the reading. Every side checks that all `n` entries are present.
//!
//! Goals (issue): ours <= 96 B per entry plus the key's own size (8 B here); moonshot: ours <=
//! quick_cache. Published figures: quick_cache ~47 B, moka ~152 B per entry.
//!
//! Run: `cargo bench --bench cache_overhead` (a few seconds). Knob (environment):
//! `CACHE_OVERHEAD_N` (entries, 200000; whole spans make the span figure coarse for small n).
//! Without `--bench` (as under `cargo test --benches`) it runs a tiny smoke configuration (2000).

#[path = "support/measure.rs"]
mod measure;
use measure::loadavg;

use std::alloc::{GlobalAlloc, Layout};
use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use discardable::{Cache, DiscardAlloc};

/// Bytes of each value.
const VALUE: usize = 64;

/// Live bytes requested through the global allocator (layout sizes, not block sizes).
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Live blocks handed out by the global allocator.
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);

/// [`DiscardAlloc`], counting what passes through it.
struct Counting(DiscardAlloc);

// SAFETY: every method forwards to `DiscardAlloc`, which upholds the `GlobalAlloc` contract, with
// the caller's own arguments; the counters are plain relaxed atomics that neither allocate, lock
// nor panic, so the wrapper adds nothing the allocation path may not do.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded: the caller passes a layout of non-zero size.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Relaxed);
            LIVE_BLOCKS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded: the caller passes a layout of non-zero size.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Relaxed);
            LIVE_BLOCKS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: forwarded: `p` is a live block of this allocator (every block comes from the
        // inner one) allocated with `layout`.
        unsafe { self.0.dealloc(p, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded: `p` is a live block of the inner allocator allocated with `layout`,
        // and the caller passes a non-zero `new_size` that does not overflow at `layout.align()`.
        let q = unsafe { self.0.realloc(p, layout, new_size) };
        if !q.is_null() {
            // On failure the old block stays live with its old size.
            LIVE_BYTES.fetch_add(new_size, Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting(DiscardAlloc::new());

/// One reading of the allocator's accounting.
#[derive(Debug, Clone, Copy)]
struct Reading {
    exact: usize,
    blocks: usize,
    spans: usize,
}

impl Reading {
    fn now() -> Self {
        Self { exact: LIVE_BYTES.load(Relaxed), blocks: LIVE_BLOCKS.load(Relaxed), spans: DiscardAlloc::stats().in_use }
    }

    /// `self - before`, field by field, as signed byte counts.
    fn since(self, before: Self) -> [i64; 3] {
        let d = |a: usize, b: usize| a as i64 - b as i64;
        [d(self.exact, before.exact), d(self.blocks, before.blocks), d(self.spans, before.spans)]
    }
}

/// Which cache a child measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Quick,
    Moka,
}

const SIDES: [Side; 3] = [Side::Ours, Side::Quick, Side::Moka];

impl Side {
    fn arg(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Quick => "quick_cache",
            Side::Moka => "moka",
        }
    }

    fn parse(s: &str) -> Self {
        SIDES.into_iter().find(|side| side.arg() == s).unwrap_or_else(|| panic!("unknown side {s:?}"))
    }
}

/// The value of entry `k` (distinct per key, on the stack: only the caches allocate).
fn value(k: u64) -> [u8; VALUE] {
    [k as u8; VALUE]
}

/// The result line of a child: `RESULT key=value ...`, every value an integer.
fn report(fields: &[(&str, i64)]) {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT {}", body.join(" "));
}

/// Child side: measures one cache holding `n` entries and prints its result line.
fn child(side: Side, n: usize) {
    let before = Reading::now();
    match side {
        Side::Ours => {
            let cache: Cache<u64, [u8]> = Cache::builder().capacity(n * VALUE * 2).build().expect("building our cache");
            for k in 0..n as u64 {
                cache.insert(k, &value(k)).expect("inserting into our cache");
            }
            let undrained = Reading::now().since(before);
            cache.manager().reclaim(0);
            let [exact, blocks, spans] = Reading::now().since(before);
            let s = cache.stats();
            let m = cache.manager().stats();
            assert_eq!((s.entries, s.discarded, m.discarded_count), (n as u64, 0, 0), "ours lost entries");
            report(&[
                ("exact", exact),
                ("blocks", blocks),
                ("spans", spans),
                ("value_strong", 0),
                ("undrained_exact", undrained[0]),
                ("own_overhead", s.overhead_bytes as i64),
                ("discardable", m.discardable_bytes as i64),
                ("allocations", m.allocations as i64),
            ]);
            drop(cache);
        }
        Side::Quick => {
            let cache: quick_cache::sync::Cache<u64, Arc<[u8]>> = quick_cache::sync::Cache::new(2 * n);
            for k in 0..n as u64 {
                cache.insert(k, Arc::from(&value(k)[..]));
            }
            let [exact, blocks, spans] = Reading::now().since(before);
            assert_eq!(cache.len(), n, "quick_cache lost entries");
            report(&[("exact", exact), ("blocks", blocks), ("spans", spans), ("value_strong", (n * VALUE) as i64)]);
            drop(cache);
        }
        Side::Moka => {
            let cache: moka::sync::Cache<u64, Arc<[u8]>> =
                moka::sync::Cache::builder().max_capacity(2 * n as u64).build();
            for k in 0..n as u64 {
                cache.insert(k, Arc::from(&value(k)[..]));
            }
            cache.run_pending_tasks();
            let [exact, blocks, spans] = Reading::now().since(before);
            assert_eq!(cache.entry_count(), n as u64, "moka lost entries");
            report(&[("exact", exact), ("blocks", blocks), ("spans", spans), ("value_strong", (n * VALUE) as i64)]);
            drop(cache);
        }
    }
}

/// Parent side: runs `side` in a fresh child process and parses its result line.
fn measure(side: Side, n: usize) -> HashMap<String, i64> {
    let exe = std::env::current_exe().expect("finding this bench binary");
    let out = Command::new(exe)
        .args(["--child", side.arg(), &n.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("spawning the {} child: {e}", side.arg()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the {} child failed ({}):\n{stdout}{}",
        side.arg(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("the {} child printed no result:\n{stdout}", side.arg()));
    line.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("a key=value field");
            (k.to_string(), v.parse().expect("an integer field"))
        })
        .collect()
}

/// Per-entry figures of one side.
#[derive(Debug, Clone, Copy)]
struct PerEntry {
    /// Requested bytes (exact).
    exact: f64,
    /// Span bytes (`in_use`).
    spans: f64,
    /// Allocations.
    blocks: f64,
}

fn per_entry(r: &HashMap<String, i64>, n: usize) -> PerEntry {
    let get = |k: &str| *r.get(k).unwrap_or_else(|| panic!("missing field {k}")) as f64;
    let n = n as f64;
    let value = get("value_strong");
    PerEntry { exact: (get("exact") - value) / n, spans: (get("spans") - value) / n, blocks: get("blocks") / n }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let side = Side::parse(args.get(i + 1).expect("--child <side> <n>"));
        let n = args.get(i + 2).and_then(|s| s.parse().ok()).expect("--child <side> <n>");
        child(side, n);
        return;
    }
    let smoke = !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test");
    let n: usize = match std::env::var("CACHE_OVERHEAD_N") {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("CACHE_OVERHEAD_N={v:?} is not a valid number")),
        Err(_) if smoke => 2_000,
        Err(_) => 200_000,
    };
    assert!(n > 0, "CACHE_OVERHEAD_N must be positive");
    println!(
        "cache_overhead: {n} entries, u64 keys, {VALUE}-byte values, one child process per cache; load average {}",
        loadavg()
    );

    let results: Vec<HashMap<String, i64>> = SIDES.iter().map(|&side| measure(side, n)).collect();
    let [ours, quick, moka] = [0, 1, 2].map(|i| per_entry(&results[i], n));
    let raw = &results[0];

    println!();
    println!("| cache | B/entry (exact) | B/entry (spans) | allocations/entry | own figure B/entry |");
    println!("| --- | --- | --- | --- | --- |");
    let own = raw["own_overhead"] as f64 / n as f64;
    for (side, e) in SIDES.iter().zip([ours, quick, moka]) {
        let own = if *side == Side::Ours { format!("{own:.1} (stats().overhead_bytes)") } else { "-".into() };
        println!("| {} | {:.1} | {:.1} | {:.2} | {own} |", side.arg(), e.exact, e.spans, e.blocks);
    }
    println!();
    println!("| ratio | exact | spans |");
    println!("| --- | --- | --- |");
    println!("| ours/quick_cache | {:.2} | {:.2} |", ours.exact / quick.exact, ours.spans / quick.spans);
    println!("| ours/moka | {:.2} | {:.2} |", ours.exact / moka.exact, ours.spans / moka.spans);
    println!();
    println!(
        "ours: {:.1} B/entry before the manager took the entries in (exact); not in stats().overhead_bytes: \
         {:.1} B/entry; manager: {} allocations, {} discardable bytes ({:.1} B/entry)",
        raw["undrained_exact"] as f64 / n as f64,
        ours.exact - own,
        raw["allocations"],
        raw["discardable"],
        raw["discardable"] as f64 / n as f64
    );
    let key = size_of::<u64>() as f64;
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!(
        "goal ours <= 96 B + key ({key} B) per entry: {} ({:.1} B exact); moonshot ours <= quick_cache: {} \
         ({:.1} vs {:.1} B exact). Published: quick_cache ~47 B, moka ~152 B.",
        verdict(ours.exact <= 96.0 + key),
        ours.exact,
        verdict(ours.exact <= quick.exact),
        ours.exact,
        quick.exact
    );
}
