//! What the side-by-side benches share: timing a batch, summarising rounds,
//! knobs from the environment and the load average they report. Included
//! with `#[path]` (benches of other workspace members too), so each bench
//! uses what it needs.

#![allow(dead_code)]

use std::time::Instant;

/// ns per operation of one batch of `n` operations.
pub fn time(n: usize, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e9 / n as f64
}

/// Median, minimum and maximum.
pub fn summary(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    let median = if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 };
    (median, xs[0], xs[n - 1])
}

/// The number in the environment variable `name`, or `default`; a value
/// that is not a number is a panic that names it.
pub fn env_or(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a valid number")),
        Err(_) => default,
    }
}

/// `/proc/loadavg`, for the report.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|_| "?".into(), |s| s.trim().to_string())
}
