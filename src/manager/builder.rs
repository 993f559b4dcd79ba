//! Configuration of a [`Manager`]: a builder that validates and returns
//! `Result`.

use std::time::Duration;

use super::Manager;
use crate::error::Error;
use crate::policy::Policy;
use crate::pressure::{self, Watermarks};

/// How the manager gives discardable pages back.
///
/// On hosts with swap, prefer [`ReclaimMode::Lazy`]: pages handed to the
/// kernel with `MADV_FREE` are dropped, never written to swap, whereas a
/// managed allocation that waits unpinned may be swapped out before the
/// manager discards it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ReclaimMode {
    /// The manager decides: discard is `MADV_DONTNEED` plus the state mark.
    /// Deterministic and budget-driven.
    #[default]
    Managed,
    /// As managed, and allocations that own whole pages are also handed to
    /// the kernel with `MADV_FREE` once they stayed unpinned for the lazy
    /// delay, so the kernel can drop them the instant memory runs short.
    /// Re-pinning checks each page and reports a discard if one is gone.
    /// Offered pages still count as held (resident memory is not trusted).
    Lazy,
}

/// How the manager thread asks the scheduler for a CPU. On a busy host its
/// reaction to a memory spike is mostly waiting for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ThreadPriority {
    /// As spawned.
    Normal,
    /// nice −10. Needs `CAP_SYS_NICE` (or root), else [`Normal`](Self::Normal).
    /// With the kernel's autogroup scheduling (`kernel.sched_autogroup_enabled`,
    /// on in most desktop distributions) nice only counts against threads of
    /// the same session, so it does not help against a build in another
    /// terminal.
    #[default]
    Raised,
    /// `SCHED_RR` at real-time priority 1: the kernel runs the manager
    /// thread ahead of every ordinary thread the moment it wakes, whatever
    /// the load or the session. Needs `CAP_SYS_NICE` or an `RLIMIT_RTPRIO`
    /// of at least 1, else [`Raised`](Self::Raised). Each wake-up does one
    /// bounded pass and the thread sleeps between them (with a back-off
    /// while pins keep it over its limit), and the kernel's real-time
    /// throttling (`sched_rt_runtime_us`) caps it in any case.
    Realtime,
}

/// Default lazy delay: an unpinned allocation is offered within 100 ms.
const LAZY_DELAY: Duration = Duration::from_millis(100);

/// Configures and starts a [`Manager`].
///
/// ```
/// use discardable::{Manager, Policy};
/// let m = Manager::builder().policy(Policy::S3Fifo).limit(256 << 20).start()?;
/// assert_eq!(m.stats().limit, 256 << 20);
/// assert!(Manager::builder().limit(0).start().is_err());
/// # Ok::<(), discardable::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ManagerBuilder {
    pub(super) policy: Policy,
    limit: Option<usize>,
    pub(super) process_limit: Option<usize>,
    pub(super) watermarks: Option<Watermarks>,
    pub(super) mode: ReclaimMode,
    pub(super) lazy_delay: Duration,
    pub(super) lock_pages: bool,
    pub(super) priority: ThreadPriority,
    pub(super) group: Option<String>,
    pub(super) weight: u32,
}

impl Default for ManagerBuilder {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            limit: None,
            process_limit: None,
            watermarks: None,
            mode: ReclaimMode::default(),
            lazy_delay: LAZY_DELAY,
            lock_pages: false,
            priority: ThreadPriority::default(),
            group: None,
            weight: 1,
        }
    }
}

impl ManagerBuilder {
    /// The replacement policy (default [`Policy::Clock`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The most discardable bytes this manager keeps (counted as what the
    /// allocations cost the OS). Enforced asynchronously by the manager
    /// thread; when pins prevent meeting it, it is exceeded, never an error,
    /// and [`Stats::over_limit_bytes`](crate::Stats::over_limit_bytes) says
    /// by how much. Zero is rejected by [`start`](Self::start).
    ///
    /// Default: a quarter of physical memory or of the cgroup limit,
    /// whichever is smaller.
    pub fn limit(mut self, bytes: usize) -> Self {
        self.limit = Some(bytes);
        self
    }

    /// One budget for the whole process: keep strong plus discardable bytes
    /// under `bytes`. Strong memory is what [`DiscardAlloc`](crate::DiscardAlloc)
    /// serves when it is the global allocator; when it grows, discardable
    /// memory yields first, asynchronously, and, for the global manager
    /// (set through [`install_global`](Self::install_global)), by direct
    /// reclaim when the allocator maps memory past the limit. Strong
    /// allocations never fail because of this budget. Zero is rejected by
    /// [`start`](Self::start).
    pub fn process_limit(mut self, bytes: usize) -> Self {
        self.process_limit = Some(bytes);
        self
    }

    /// The watermarks on usage, as fractions of the effective limit: reclaim
    /// starts above `high` and continues until usage is below `low`.
    /// Default: [`Watermarks::DEFAULT`] (90 % / 87 %), and for the process
    /// limit [`Watermarks::PROCESS_LIMIT`] (97 % / 95 %); watermarks set here
    /// apply to every signal.
    pub fn watermarks(mut self, watermarks: Watermarks) -> Self {
        self.watermarks = Some(watermarks);
        self
    }

    /// How discardable pages go back (default [`ReclaimMode::Managed`]).
    pub fn reclaim_mode(mut self, mode: ReclaimMode) -> Self {
        self.mode = mode;
        self
    }

    /// Lazy mode: how long an allocation that owns whole pages stays
    /// unpinned before it is offered to the kernel (default 100 ms; at least
    /// 2 ms).
    pub fn lazy_delay(mut self, delay: Duration) -> Self {
        self.lazy_delay = delay.max(Duration::from_millis(2));
        self
    }

    /// Managed mode on hosts with swap: lock discardable pages in memory
    /// (`mlock`, within `RLIMIT_MEMLOCK`) so they are dropped by the manager,
    /// never written to swap. Pages are unlocked before they are discarded.
    /// Refusals are counted in [`Stats::lock_refusals`](crate::Stats::lock_refusals)
    /// (those pages stay swappable); never an error. Locked spans are not
    /// offered in lazy mode.
    pub fn lock_pages(mut self, lock: bool) -> Self {
        self.lock_pages = lock;
        self
    }

    /// How the manager thread asks the scheduler for a CPU (default
    /// [`ThreadPriority::Raised`]). The priority it got is in
    /// [`Stats::thread_priority`](crate::Stats::thread_priority).
    pub fn priority(mut self, priority: ThreadPriority) -> Self {
        self.priority = priority;
        self
    }

    /// Makes the manager a member of the group `name`: the managers, in
    /// any processes of this user that see the same `/dev/shm` (one host or
    /// one container), that give memory back by weighted fair share when a
    /// signal they all feel (their cgroup, the host's `MemAvailable`, PSI)
    /// asks for it. Its own [`limit`](Self::limit) and
    /// [`process_limit`](Self::process_limit) still apply to it alone.
    ///
    /// The group's registry is `/dev/shm/discardable-group-<name>`;
    /// [`start`](Self::start) fails with [`Error::InvalidGroupName`] for a
    /// name outside `[A-Za-z0-9._-]{1,200}` and with
    /// [`Error::ForeignGroupRegistry`] when another user owns that file. A
    /// registry that cannot be used (corrupt, truncated, another version)
    /// is no error: the manager acts alone meanwhile and counts it in
    /// [`Stats::group_faults`](crate::Stats::group_faults).
    ///
    /// ```
    /// use discardable::Manager;
    ///
    /// let name = format!("doc-builder-{}", std::process::id());
    /// let m = Manager::builder().limit(64 << 20).group(&name).weight(2).start()?;
    /// assert_eq!(m.stats().group_faults, 0);
    /// assert!(Manager::builder().group("no/slash").start().is_err());
    /// assert!(Manager::builder().group(&name).weight(0).start().is_err());
    /// # drop(m);
    /// # let _ = std::fs::remove_file(format!("/dev/shm/discardable-group-{name}"));
    /// # Ok::<(), discardable::Error>(())
    /// ```
    pub fn group(mut self, name: &str) -> Self {
        self.group = Some(name.to_owned());
        self
    }

    /// This member's weight in its [`group`](Self::group) (default 1): under
    /// shared pressure it keeps `weight / total weight` of what the group
    /// may keep, or all it wants if that is less. Zero is rejected by
    /// [`start`](Self::start) ([`Error::ZeroWeight`]); without a group it
    /// has no effect.
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Validates the configuration and spawns the manager thread.
    pub fn start(self) -> Result<Manager, Error> {
        if self.weight == 0 {
            return Err(Error::ZeroWeight);
        }
        if let Some(name) = &self.group {
            if !crate::group::valid_name(name) {
                return Err(Error::InvalidGroupName(name.clone()));
            }
        }
        let limit = match self.limit {
            Some(0) => return Err(Error::ZeroLimit),
            Some(limit) => limit,
            None => pressure::default_limit(),
        };
        if self.process_limit == Some(0) {
            return Err(Error::ZeroLimit);
        }
        Manager::start(&self, limit)
    }

    /// Starts this configuration as [`Manager::global`]. An error if the
    /// global manager already started (explicitly or by first use).
    pub fn install_global(self) -> Result<&'static Manager, Error> {
        let process_limit = self.process_limit;
        if Manager::is_global_set() {
            return Err(Error::AlreadyStarted);
        }
        Manager::set_global(self.start()?, process_limit)
    }
}
