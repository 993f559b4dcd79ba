//! The public, read-only view of a group: what `discardable-top` and
//! tests show, read from the registry without joining it (and never
//! creating it).

use std::path::Path;
use std::time::Duration;

use super::registry::{self, OpenError};
use super::view::MemberView;
use crate::error::Error;

/// One live member of a group, as the group's registry says (every figure
/// validated, see [`group_members`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupMember {
    /// The registry slot it holds.
    pub slot: usize,
    /// Its process.
    pub pid: u32,
    /// Its weight ([`ManagerBuilder::weight`](crate::ManagerBuilder::weight)).
    pub weight: u32,
    /// Discardable bytes it held at its last heartbeat.
    pub held: u64,
    /// Its share at its last reclaim for the group (0 before any).
    pub share: u64,
    /// What it would hold if unconstrained: held plus what it discarded in
    /// the last 5 s.
    pub demand: u64,
    /// Bytes pinned at its last scan.
    pub pinned: u64,
    /// Reclaims in which it gave bytes back for the group.
    pub reclaims: u64,
    /// How long ago it last renewed its heartbeat (a member whose
    /// heartbeat is older than 3 s has lost its slot and is not listed).
    pub heartbeat_age: Duration,
}

impl From<MemberView> for GroupMember {
    fn from(m: MemberView) -> Self {
        GroupMember {
            slot: m.slot,
            pid: m.pid,
            weight: m.weight,
            held: m.held,
            share: m.share,
            demand: m.demand,
            pinned: m.pinned,
            reclaims: m.reclaims,
            heartbeat_age: Duration::from_millis(m.age_ms),
        }
    }
}

/// The live members of the group `name` (in slot order), read from its
/// registry under `/dev/shm` without joining the group.
///
/// # Errors
///
/// [`Error::InvalidGroupName`] for a name outside `[A-Za-z0-9._-]{1,200}`,
/// [`Error::ForeignGroupRegistry`] when another user owns the registry,
/// and [`Error::GroupRegistry`] when there is none or it cannot be trusted
/// (truncated, corrupt, another version, a slot no member could write).
///
/// ```
/// use discardable::{group_members, Manager};
///
/// let name = format!("doc-members-{}", std::process::id());
/// let m = Manager::builder().limit(64 << 20).group(&name).weight(3).start()?;
/// # let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
/// # while group_members(&name).map_or(true, |v| v.is_empty()) && std::time::Instant::now() < deadline {
/// #     std::thread::sleep(std::time::Duration::from_millis(10));
/// # }
/// let members = group_members(&name)?;
/// assert_eq!((members[0].pid, members[0].weight), (std::process::id(), 3));
/// # drop(m);
/// # let _ = std::fs::remove_file(format!("/dev/shm/discardable-group-{name}"));
/// # Ok::<(), discardable::Error>(())
/// ```
pub fn group_members(name: &str) -> Result<Vec<GroupMember>, Error> {
    if !super::valid_name(name) {
        return Err(Error::InvalidGroupName(name.to_owned()));
    }
    let path = registry::path(Path::new(registry::DIR), name);
    match registry::read(&path) {
        Ok(members) => Ok(members.into_iter().map(GroupMember::from).collect()),
        Err(OpenError::Foreign { path, uid }) => Err(Error::ForeignGroupRegistry { path, uid }),
        Err(OpenError::Fault(fault)) => Err(Error::GroupRegistry { path, reason: fault.to_string() }),
    }
}
