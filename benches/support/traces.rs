//! Key traces for the cache benches (`cache_hit`, `hit_ratio`): a committed, dependency-free
//! generator with fixed seeds, so every run (and every peer in a run) sees the same keys.
//!
//! Not a bench of its own: the bench binaries include it with `#[path = "support/traces.rs"] mod
//! traces;`, and cargo does not build `benches/support/` as a target (it has no `main.rs`).
//!
//! - [`Rng`]: SplitMix64 (Steele, Lea, Flood 2014), the 64-bit generator that seeds xoshiro.
//! - [`Zipf`]: ranks `0..n` with `P(k) ∝ 1 / (k + 1)^s`, drawn by binary search over the exact CDF.
//! - The traces map ranks to keys through a fixed permutation of `0..n` ([`permutation`]), so the
//!   hottest keys are not the first ones inserted (whose values would sit next to each other).
//! - [`read_file`] reads a trace of one key per line (decimal `u64`, or any text, hashed).

// Each bench binary uses only part of this module.
#![allow(dead_code)]

/// The seed of every generated trace unless a bench is told otherwise.
pub const SEED: u64 = 0x5eed_cace_2024_0001;

/// SplitMix64: tiny, fast, and good enough to drive trace generation.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (Lemire's multiply-high; the bias is below 2^-40 for the `n` used here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// A Zipf distribution over ranks `0..n` with exponent `s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    /// `cdf[k]` = P(rank <= k); the last entry is 1.
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks (`n > 0`) with exponent `s`.
    pub fn new(n: usize, s: f64) -> Self {
        assert!(n > 0, "a Zipf distribution needs at least one rank");
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 0..n {
            sum += 1.0 / ((k + 1) as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        *cdf.last_mut().expect("n > 0") = 1.0;
        Self { cdf }
    }

    /// One rank.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.next_f64();
        self.cdf.partition_point(|&c| c <= u).min(self.cdf.len() - 1)
    }
}

/// A random permutation of `0..n` (Fisher-Yates): rank `i` becomes key `perm[i]`.
pub fn permutation(n: usize, seed: u64) -> Vec<u64> {
    let mut rng = Rng::new(seed ^ 0x7065_726d);
    let mut perm: Vec<u64> = (0..n as u64).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        perm.swap(i, j);
    }
    perm
}

/// `len` keys drawn uniformly from `0..n`.
pub fn uniform(n: usize, len: usize, seed: u64) -> Vec<u64> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.below(n as u64)).collect()
}

/// `len` keys from `0..n`, Zipf-distributed with exponent `s` over a fixed permutation of the keys.
pub fn zipf(n: usize, s: f64, len: usize, seed: u64) -> Vec<u64> {
    let dist = Zipf::new(n, s);
    let perm = permutation(n, seed);
    let mut rng = Rng::new(seed);
    (0..len).map(|_| perm[dist.sample(&mut rng)]).collect()
}

/// [`zipf`], with a one-pass scan spliced in at the middle: `scan` fresh keys `n..n + scan`, each
/// accessed once, in order. The trace is `len + scan` keys long.
pub fn zipf_with_scan(n: usize, s: f64, len: usize, scan: usize, seed: u64) -> Vec<u64> {
    let mut trace = zipf(n, s, len, seed);
    let mid = len / 2;
    let tail = trace.split_off(mid);
    trace.extend(n as u64..(n + scan) as u64);
    trace.extend(tail);
    trace
}

/// `len` keys cycling through `0..span` in order (a loop: LRU's worst case once `span` exceeds
/// the cache).
pub fn looping(span: usize, len: usize) -> Vec<u64> {
    (0..len).map(|i| (i % span) as u64).collect()
}

/// FNV-1a of a line that is not a decimal `u64`.
fn hash_line(line: &str) -> u64 {
    line.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A trace file: one key per line, a decimal `u64` or any other text (hashed with FNV-1a). Blank
/// lines are skipped; only the first whitespace-separated field of a line is read.
pub fn read_file(path: &str) -> std::io::Result<Vec<u64>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(|field| field.parse::<u64>().unwrap_or_else(|_| hash_line(field)))
        .collect())
}

/// How many distinct keys `trace` holds.
pub fn distinct(trace: &[u64]) -> usize {
    let mut keys = trace.to_vec();
    keys.sort_unstable();
    keys.dedup();
    keys.len()
}

/// An environment variable as a number, or `default` if unset (panics on a malformed value, so
/// a typo is not silently ignored).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a valid number")),
        Err(_) => default,
    }
}
