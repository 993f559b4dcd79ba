//! Adaptive polling: how long the manager may sleep before the next sample.
//!
//! The policy, per signal with a limit (the manager sleeps for the shortest
//! interval any signal asks for, and until notified if none asks):
//!
//! | usage of the signal's limit | kernel notification covers it | interval |
//! | --- | --- | --- |
//! | above the low mark (inside the hysteresis band or beyond) | either | [`FAST`], 5 ms |
//! | at or below the low mark | yes | none: sleep until notified |
//! | at or below the low mark, headroom below [`AMPLE`] | no | [`STEADY`] (10 ms) at the low mark, growing geometrically to [`SLOW`] at [`AMPLE`] headroom |
//! | headroom at or above [`AMPLE`] (50 %) | no | [`SLOW`], 1 s |
//!
//! Why: the reaction goal is a first discard within 10 ms of crossing the
//! high mark, so anywhere the next 10 % of the limit could be crossed
//! between two samples the manager polls at 5–10 ms; where the remaining
//! headroom would take a large, sustained growth to use up, one sample a
//! second is plenty and costs about 0.005 % of a core (a sample reads a few
//! small files, tens of microseconds). "Covered" means a notification fires
//! before the signal's usage reaches its high mark: a cgroup v1 threshold
//! armed at the high mark on the raw usage (which includes the page cache,
//! so it fires no later than the usage net of inactive file pages would
//! cross). The host's `MemAvailable` has no such notification (PSI reports
//! stalls, which come after the shortage), so it keeps a heartbeat of at
//! most 1 s, as do cgroup v2 groups (`memory.events` changes at
//! `memory.high`, too late to count as cover).
//!
//! Threads: pure functions.

use core::time::Duration;

use super::watermark::Watermarks;

/// The interval while usage is above the low mark.
pub(crate) const FAST: Duration = Duration::from_millis(5);
/// The interval just below the low mark when nothing notifies.
pub(crate) const STEADY: Duration = Duration::from_millis(10);
/// The longest interval for a signal nothing notifies.
pub(crate) const SLOW: Duration = Duration::from_secs(1);
/// Relative headroom at and above which an uncovered signal is polled at
/// [`SLOW`].
pub(crate) const AMPLE: f64 = 0.5;

/// The interval one signal with `usage` of `limit` asks for; `None` to
/// sleep until notified.
pub(crate) fn interval(usage: usize, limit: usize, covered: bool, marks: &Watermarks) -> Option<Duration> {
    if usage > marks.low_mark(limit) {
        return Some(FAST);
    }
    if covered {
        return None;
    }
    let headroom = if limit == 0 { 0.0 } else { 1.0 - usage as f64 / limit as f64 };
    let at_low = 1.0 - marks.low();
    if headroom >= AMPLE || at_low >= AMPLE {
        return Some(SLOW);
    }
    // Geometric from STEADY at the low mark to SLOW at AMPLE headroom.
    let t = ((headroom - at_low) / (AMPLE - at_low)).clamp(0.0, 1.0);
    let ratio = SLOW.as_secs_f64() / STEADY.as_secs_f64();
    Some(Duration::from_secs_f64(STEADY.as_secs_f64() * ratio.powf(t)))
}

/// The shorter of two intervals, where `None` is "forever".
pub(crate) fn shorter(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn ms(d: Option<Duration>) -> Option<u128> {
        d.map(|d| d.as_millis())
    }

    #[test]
    fn the_table_holds() {
        let m = Watermarks::new(0.9, 0.8).unwrap();
        // Above the low mark: fast, covered or not.
        for covered in [false, true] {
            assert_eq!(interval(801, 1000, covered, &m), Some(FAST));
            assert_eq!(interval(950, 1000, covered, &m), Some(FAST));
            assert_eq!(interval(5000, 1000, covered, &m), Some(FAST), "over the limit");
        }
        // At or below the low mark and covered: sleep until notified.
        assert_eq!(interval(800, 1000, true, &m), None);
        assert_eq!(interval(0, 1000, true, &m), None);
        // Uncovered: 10 ms at the low mark, growing to 1 s at 50 % headroom.
        assert_eq!(ms(interval(800, 1000, false, &m)), Some(10));
        assert_eq!(ms(interval(650, 1000, false, &m)), Some(100), "half way, geometrically");
        assert_eq!(interval(500, 1000, false, &m), Some(SLOW));
        assert_eq!(interval(0, 1000, false, &m), Some(SLOW));
    }

    #[test]
    fn intervals_grow_with_headroom() {
        let m = Watermarks::new(0.9, 0.8).unwrap();
        let mut last = Duration::ZERO;
        for usage in (0..=1000).rev().step_by(10) {
            let d = interval(usage, 1000, false, &m).unwrap();
            assert!(d >= FAST && d <= SLOW);
            assert!(d >= last, "usage {usage}: {d:?} after {last:?}");
            last = d;
        }
    }

    #[test]
    fn low_watermarks_far_down_poll_slowly() {
        let m = Watermarks::new(0.6, 0.4).unwrap();
        assert_eq!(interval(400, 1000, false, &m), Some(SLOW));
        assert_eq!(interval(401, 1000, false, &m), Some(FAST));
    }

    #[test]
    fn zero_limit_is_fast() {
        assert_eq!(interval(1, 0, true, &Watermarks::default()), Some(FAST));
        assert_eq!(interval(0, 0, false, &Watermarks::default()), Some(STEADY), "0 of 0 sits at the low mark");
    }

    #[test]
    fn shorter_treats_none_as_forever() {
        let s = Some(Duration::from_millis(5));
        let l = Some(Duration::from_secs(1));
        assert_eq!(shorter(s, l), s);
        assert_eq!(shorter(None, l), l);
        assert_eq!(shorter(s, None), s);
        assert_eq!(shorter(None, None), None);
    }
}
