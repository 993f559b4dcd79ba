//! Memory-pressure signals turned into budgets and reclaim targets.
//!
//! Owns the knowledge of file formats: `/proc/self/cgroup`, cgroup v1 and
//! v2 limit files. At this stage it answers one question, the default
//! limit; watermarks, PSI and notifications come with the pressure issue.
//!
//! Must never: fail hard on a missing or unreadable file (every signal is
//! optional), or be reached from the allocator's path.

mod cgroup;

pub(crate) use cgroup::cgroup_limit;

/// The default discardable limit: a quarter of physical memory or of the
/// cgroup limit, whichever is smaller (64 MiB if neither is known).
pub(crate) fn default_limit() -> usize {
    let physical = crate::os::physical_memory();
    let cgroup = cgroup_limit();
    let base = match (physical, cgroup) {
        (Some(p), Some(c)) => p.min(c),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => 256 << 20,
    };
    (base / 4).max(1)
}
