//! The names of the pressure signals, what a report on one says, and how a
//! failed read is recorded without allocating.
//!
//! Threads: values only; built by the manager thread, copied out to whoever
//! asks for `Manager::signals()`.

use core::fmt;

use crate::os::OsError;

/// A source of memory-pressure information.
///
/// Each signal in use yields a usage and a limit on every sample; the one
/// with the least relative headroom decides (see DESIGN.md, "Pressure
/// signals"). The units of [`SignalReport::last_reading`] are given per
/// variant.
///
/// ```
/// use discardable::Signal;
///
/// assert_eq!(Signal::CgroupV2.to_string(), "cgroup v2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// The process's own limit on strong + discardable bytes, when one is
    /// configured. Reading: the process's bytes.
    ProcessLimit,
    /// A cgroup v1 memory controller group: `memory.limit_in_bytes` against
    /// `memory.usage_in_bytes` minus `total_inactive_file` from
    /// `memory.stat`. Reading: that usage, in bytes.
    CgroupV1,
    /// A cgroup v2 group: `memory.high` (else `memory.max`) against
    /// `memory.current` minus `inactive_file` from `memory.stat`. Reading:
    /// that usage, in bytes.
    CgroupV2,
    /// The host: `MemTotal - MemAvailable` against `MemTotal`, from
    /// `/proc/meminfo`. Reading: `MemAvailable`, in bytes.
    MemAvailable,
    /// Pressure stall information (`memory.pressure` of the cgroup v2 group,
    /// else `/proc/pressure/memory`): a stall makes the process shed part of
    /// its own footprint even when every byte limit looks fine. Reading: the
    /// `some avg10` percentage in hundredths (7.53 % reads 753).
    Psi,
}

impl Signal {
    /// Every signal, in the order reports list them and ties are broken.
    pub(crate) const ALL: [Signal; 5] =
        [Signal::ProcessLimit, Signal::CgroupV1, Signal::CgroupV2, Signal::MemAvailable, Signal::Psi];

    /// A dense index into [`Signal::ALL`], for per-signal counters.
    pub(crate) const fn index(self) -> usize {
        match self {
            Signal::ProcessLimit => 0,
            Signal::CgroupV1 => 1,
            Signal::CgroupV2 => 2,
            Signal::MemAvailable => 3,
            Signal::Psi => 4,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::ProcessLimit => "process limit",
            Signal::CgroupV1 => "cgroup v1",
            Signal::CgroupV2 => "cgroup v2",
            Signal::MemAvailable => "MemAvailable",
            Signal::Psi => "PSI",
        })
    }
}

/// What the manager knows about one signal: where it reads it, its last
/// reading, and what went wrong, if anything. A missing or unreadable file
/// is never fatal; it shows up here instead.
///
/// ```
/// use discardable::Manager;
///
/// let manager = Manager::builder().limit(64 << 20).start()?;
/// for report in manager.signals() {
///     println!("{}: {} = {:?} (error: {:?})", report.signal, report.source, report.last_reading, report.error);
/// }
/// # Ok::<(), discardable::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignalReport {
    /// Which signal.
    pub signal: Signal,
    /// Where it is read: a file or directory path, or a description.
    pub source: String,
    /// The last value read, in the unit [`Signal`] gives for this variant
    /// (bytes, or hundredths of a percent for [`Signal::Psi`]); `None` until
    /// a read succeeded.
    pub last_reading: Option<u64>,
    /// The limit the reading is measured against, in bytes; `None` when
    /// there is none (an unlimited cgroup, PSI).
    pub limit: Option<u64>,
    /// Whether a kernel notification (cgroup v1 threshold or pressure level,
    /// PSI trigger, cgroup v2 `memory.events`) is armed for this signal, so
    /// the manager need not poll it while headroom is ample.
    pub notified: bool,
    /// Why the signal, or its kernel notification, is not fully working: a
    /// missing or unreadable file, an unexpected format, a refused trigger.
    pub error: Option<String>,
}

impl SignalReport {
    pub(crate) fn new(signal: Signal, source: String) -> Self {
        SignalReport { signal, source, last_reading: None, limit: None, notified: false, error: None }
    }

    /// Appends `problem` to [`error`](Self::error).
    pub(crate) fn add_error(&mut self, problem: impl fmt::Display) {
        self.error = Some(match self.error.take() {
            None => problem.to_string(),
            Some(before) => format!("{before}; {problem}"),
        });
    }
}

/// Why one file gave no usable value. `Copy` and heap-free, so the sample
/// path can record it; turned into text only for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileFault {
    /// The file's name (e.g. `"memory.stat"`) or a short description.
    pub(crate) file: &'static str,
    pub(crate) kind: FaultKind,
}

/// The two ways a file can fail us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// A system call failed (missing file, permission, unsupported).
    Os(OsError),
    /// The file was read but did not hold what its format promises.
    Format,
}

impl FileFault {
    pub(crate) fn os(file: &'static str, e: OsError) -> Self {
        FileFault { file, kind: FaultKind::Os(e) }
    }

    pub(crate) fn format(file: &'static str) -> Self {
        FileFault { file, kind: FaultKind::Format }
    }
}

impl fmt::Display for FileFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FaultKind::Os(e) => write!(f, "{}: {e}", self.file),
            FaultKind::Format => write!(f, "{}: unexpected format", self.file),
        }
    }
}

/// `a` has less relative headroom than `b` (`a.usage / a.limit >
/// b.usage / b.limit`), compared exactly in integers. A zero limit counts
/// as fully used.
pub(crate) fn tighter(a: (usize, usize), b: (usize, usize)) -> bool {
    let (au, al) = (a.0 as u128, a.1 as u128);
    let (bu, bl) = (b.0 as u128, b.1 as u128);
    au * bl > bu * al
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn tighter_compares_ratios_exactly() {
        assert!(tighter((95, 100), (9, 10)));
        assert!(!tighter((90, 100), (9, 10)), "equal ratios are not tighter");
        assert!(tighter((usize::MAX, usize::MAX), (usize::MAX - 1, usize::MAX)));
        assert!(tighter((1, 0), (5, 10)), "a zero limit is fully used");
    }

    #[test]
    fn indices_match_all() {
        for (i, s) in Signal::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
    }

    #[test]
    fn faults_and_reports_render() {
        let f = FileFault::os("memory.stat", OsError { op: "open", errno: libc::ENOENT });
        assert!(f.to_string().starts_with("memory.stat: open failed"), "{f}");
        assert_eq!(FileFault::format("memory.max").to_string(), "memory.max: unexpected format");
        let mut r = SignalReport::new(Signal::Psi, "x".into());
        r.add_error("a");
        r.add_error("b");
        assert_eq!(r.error.as_deref(), Some("a; b"));
        assert_eq!(Signal::MemAvailable.to_string(), "MemAvailable");
    }
}
