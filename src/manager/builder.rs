//! Configuration of a [`Manager`]: a builder that validates and returns
//! `Result`.

use super::Manager;
use crate::error::Error;
use crate::policy::Policy;
use crate::pressure;

/// Configures and starts a [`Manager`].
///
/// ```
/// use discardable::{Manager, Policy};
/// let m = Manager::builder().policy(Policy::S3Fifo).limit(256 << 20).start()?;
/// assert_eq!(m.stats().limit, 256 << 20);
/// assert!(Manager::builder().limit(0).start().is_err());
/// # Ok::<(), discardable::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManagerBuilder {
    pub(super) policy: Policy,
    limit: Option<usize>,
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

    /// Validates the configuration and spawns the manager thread.
    pub fn start(self) -> Result<Manager, Error> {
        let limit = match self.limit {
            Some(0) => return Err(Error::ZeroLimit),
            Some(limit) => limit,
            None => pressure::default_limit(),
        };
        Manager::start(&self, limit)
    }

    /// Starts this configuration as [`Manager::global`]. An error if the
    /// global manager already started (explicitly or by first use).
    pub fn install_global(self) -> Result<&'static Manager, Error> {
        Manager::set_global(self.start()?)
    }
}
