//! Watermarks on usage and the hysteresis between them.
//!
//! Invariants:
//!
//! - INV-1: a [`Watermarks`] value always satisfies `0 < low < high <= 1`
//!   (its fields are private; [`Watermarks::new`] is the only constructor
//!   besides the default).
//! - INV-2: [`Hysteresis`] starts reclaiming only when usage is strictly
//!   above the high mark, and once started keeps asking for bytes on every
//!   step until usage is at or below the low mark.
//!
//! Threads: the manager thread only.

use core::fmt;

/// When reclaim starts and stops, as fractions of the effective limit.
///
/// Reclaim starts when usage rises above `high × limit` and continues, on
/// every later sample, until usage is back at `low × limit`. The gap is the
/// hysteresis: without it the manager would discard a little on every
/// sample while usage hovers at one mark.
///
/// The defaults, high 0.90 and low 0.87 ([`Self::DEFAULT`]), are chosen
/// for the cost of being wrong. Too high a mark leaves too little room
/// between "start reclaiming" and the kernel's own reaction (direct
/// reclaim, throttling at `memory.high`, the OOM killer at the hard limit);
/// a fast allocation spike of a few hundred MiB can cross the last few
/// percent of a container limit faster than any poll, and the price is an
/// OOM kill. Too low a mark only discards cache that was still affordable,
/// the price of which is a recomputation. 10 % of the limit above the high
/// mark leaves room for a spike while the notification is delivered and
/// the first victims are discarded. Below it, reclaim goes only 3 % further:
/// a pass costs little now (victims are claimed in batches, their spans
/// reused by the allocations that follow, and released in coalesced
/// `madvise` calls), so small steps near the mark keep the cache large
/// instead of throwing a tenth of the limit away in every episode.
///
/// The process's own limit (`ManagerBuilder::process_limit`) defaults to
/// tighter marks, high 0.97 and low 0.95 ([`Self::PROCESS_LIMIT`]): that
/// limit is the process's own choice, set below any container limit, and
/// `DiscardAlloc` holds strong allocations that would cross it until the
/// manager made room, so no kernel reaction waits past it. Watermarks set
/// with `ManagerBuilder::watermarks` apply to every signal.
///
/// ```
/// use discardable::Watermarks;
///
/// let marks = Watermarks::new(0.95, 0.85)?;
/// assert_eq!((marks.high(), marks.low()), (0.95, 0.85));
/// assert_eq!(Watermarks::default().high(), 0.90);
/// assert!(Watermarks::new(0.8, 0.9).is_err());
/// # Ok::<(), discardable::PressureError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Watermarks {
    high: f64,
    low: f64,
}

impl Watermarks {
    /// High 0.90, low 0.87: the default for every signal but the process
    /// limit (see the type's documentation for why).
    pub const DEFAULT: Watermarks = Watermarks { high: 0.90, low: 0.87 };
    /// High 0.97, low 0.95: the default for the process limit (see the
    /// type's documentation for why).
    pub const PROCESS_LIMIT: Watermarks = Watermarks { high: 0.97, low: 0.95 };

    /// Watermarks at `high` and `low` fractions of the effective limit.
    ///
    /// # Errors
    ///
    /// [`PressureError::InvalidWatermarks`] unless `0 < low < high <= 1`
    /// (which also rejects NaN).
    pub const fn new(high: f64, low: f64) -> Result<Self, PressureError> {
        if 0.0 < low && low < high && high <= 1.0 {
            Ok(Watermarks { high, low })
        } else {
            Err(PressureError::InvalidWatermarks { high, low })
        }
    }

    /// The fraction of the limit above which reclaim starts.
    pub fn high(&self) -> f64 {
        self.high
    }

    /// The fraction of the limit at which reclaim stops.
    pub fn low(&self) -> f64 {
        self.low
    }

    /// `high × limit` in bytes, rounded down.
    pub(crate) fn high_mark(&self, limit: usize) -> usize {
        mark(self.high, limit)
    }

    /// `low × limit` in bytes, rounded down.
    pub(crate) fn low_mark(&self, limit: usize) -> usize {
        mark(self.low, limit)
    }
}

fn mark(fraction: f64, limit: usize) -> usize {
    // `as` saturates; fraction <= 1 (INV-1), so the result is <= limit up to
    // f64 rounding, which `min` removes.
    ((limit as f64 * fraction) as usize).min(limit)
}

impl Default for Watermarks {
    fn default() -> Self {
        Watermarks::DEFAULT
    }
}

/// A pressure configuration that cannot work.
///
/// ```
/// use discardable::{PressureError, Watermarks};
///
/// let err = Watermarks::new(1.5, 0.8).unwrap_err();
/// assert!(matches!(err, PressureError::InvalidWatermarks { .. }));
/// assert!(err.to_string().contains("0 < low < high <= 1"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum PressureError {
    /// Watermarks outside `0 < low < high <= 1`.
    InvalidWatermarks {
        /// The high fraction that was asked for.
        high: f64,
        /// The low fraction that was asked for.
        low: f64,
    },
}

impl fmt::Display for PressureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PressureError::InvalidWatermarks { high, low } => {
                write!(f, "watermarks must satisfy 0 < low < high <= 1 (got high {high}, low {low})")
            }
        }
    }
}

impl std::error::Error for PressureError {}

/// The reclaim decision's memory: whether the last step was reclaiming.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hysteresis {
    reclaiming: bool,
}

impl Hysteresis {
    /// One decision on `usage` against `limit` (INV-2): `Some(bytes)` to
    /// shed to get usage down to the low mark, or `None`.
    pub(crate) fn step(&mut self, marks: &Watermarks, usage: usize, limit: usize) -> Option<usize> {
        if usage > marks.high_mark(limit) {
            self.reclaiming = true;
        }
        let low = marks.low_mark(limit);
        if usage <= low {
            self.reclaiming = false;
        }
        self.reclaiming.then(|| usage - low)
    }

    /// Forgets an episode in progress (nothing left to measure).
    pub(crate) fn reset(&mut self) {
        self.reclaiming = false;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert!(Watermarks::new(0.9, 0.8).is_ok());
        assert!(Watermarks::new(1.0, 0.99).is_ok());
        for (h, l) in [(0.8, 0.9), (0.9, 0.9), (1.01, 0.5), (0.5, 0.0), (0.5, -0.1), (f64::NAN, 0.5), (0.9, f64::NAN)] {
            let e = Watermarks::new(h, l).unwrap_err();
            assert!(matches!(e, PressureError::InvalidWatermarks { .. }), "{h} {l}");
        }
        let text = Watermarks::new(0.5, 0.7).unwrap_err().to_string();
        assert_eq!(text, "watermarks must satisfy 0 < low < high <= 1 (got high 0.5, low 0.7)");
        assert_eq!(Watermarks::default(), Watermarks::new(0.9, 0.87).unwrap());
        assert_eq!(Watermarks::PROCESS_LIMIT, Watermarks::new(0.97, 0.95).unwrap());
    }

    #[test]
    fn marks_are_bounded_by_the_limit() {
        let m = Watermarks::new(0.9, 0.8).unwrap();
        assert_eq!(m.high_mark(1000), 900);
        assert_eq!(m.low_mark(1000), 800);
        assert_eq!(Watermarks::new(1.0, 0.5).unwrap().high_mark(usize::MAX), usize::MAX);
        assert_eq!(m.high_mark(0), 0);
    }

    #[test]
    fn hysteresis_over_a_sequence() {
        let m = Watermarks::new(0.9, 0.8).unwrap();
        let mut h = Hysteresis::default();
        // (usage, expected decision) with limit 1000: high mark 900, low 800.
        let steps = [
            (500, None),       // ample
            (850, None),       // inside the band, not started: wait
            (900, None),       // at the high mark is not above it
            (950, Some(150)),  // above: shed down to 800
            (920, Some(120)),  // still above low: keep going
            (850, Some(50)),   // inside the band while reclaiming: keep going
            (801, Some(1)),    // one byte over the low mark
            (800, None),       // at the low mark: stop
            (850, None),       // back in the band: no restart
            (899, None),       //
            (1200, Some(400)), // over the limit itself
            (790, None),       // a big drop ends the episode at once
            (901, Some(101)),  // and a new one starts above high again
        ];
        for (i, (usage, want)) in steps.into_iter().enumerate() {
            assert_eq!(h.step(&m, usage, 1000), want, "step {i}: usage {usage}");
        }
        // reset() forgets the episode: the band no longer keeps it going.
        assert_eq!(h.step(&m, 850, 1000), Some(50));
        h.reset();
        assert_eq!(h.step(&m, 850, 1000), None);
    }

    #[test]
    fn hysteresis_follows_a_moving_limit() {
        let m = Watermarks::new(0.9, 0.8).unwrap();
        let mut h = Hysteresis::default();
        assert_eq!(h.step(&m, 950, 1000), Some(150));
        // The limit doubles (e.g. a cgroup raised): 950 is below the new
        // low mark of 1600, so the episode ends.
        assert_eq!(h.step(&m, 950, 2000), None);
        // The limit halves: 950 is above the new high mark of 450.
        assert_eq!(h.step(&m, 950, 500), Some(550));
    }
}
