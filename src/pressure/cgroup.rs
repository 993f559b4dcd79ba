//! The process's memory cgroups: where they are, their limits, their usage.
//!
//! Reads `/proc/self/cgroup` to find the group in each hierarchy, then, for
//! the group itself and each ancestor that has a limit of its own (a
//! parent's limit bounds the whole subtree, siblings included), a
//! [`Level`]: v1 `memory.limit_in_bytes` / `memory.usage_in_bytes` /
//! `memory.stat` under `/sys/fs/cgroup/memory`, or v2 `memory.high`,
//! `memory.max` / `memory.current` / `memory.stat` under `/sys/fs/cgroup`
//! (pure v2) or `/sys/fs/cgroup/unified` (hybrid). Usage counts inactive
//! file pages as headroom: the kernel reclaims them before it reclaims
//! anything of ours.
//!
//! Invariants:
//!
//! - INV-1: a [`Level`] exists only for a directory whose usage file could
//!   be read at discovery; later failures are recorded in
//!   [`Level::fault`], never returned as errors to the manager.
//! - INV-2: [`Level::sample`] allocates nothing: paths are prebuilt
//!   `CString`s, reads go through [`crate::os::read_file`] into the
//!   caller's buffer.
//!
//! Threads: the manager thread (and `cgroup_limit` at start-up).

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::signal::{FileFault, Signal};

/// Where each hierarchy is mounted, relative to the (configurable) root.
pub(crate) const V1_MOUNT: &str = "sys/fs/cgroup/memory";
/// cgroup2 mount points: pure v2 hosts, then hybrid hosts.
pub(crate) const V2_MOUNTS: [&str; 2] = ["sys/fs/cgroup", "sys/fs/cgroup/unified"];

/// Buffer size for one `memory.stat` read (a few KiB on current kernels).
pub(crate) const STAT_BUF: usize = 8192;

/// The cgroup hierarchy a [`Level`] lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

impl Version {
    pub(crate) fn signal(self) -> Signal {
        match self {
            Version::V1 => Signal::CgroupV1,
            Version::V2 => Signal::CgroupV2,
        }
    }

    fn usage_file(self) -> &'static str {
        match self {
            Version::V1 => "memory.usage_in_bytes",
            Version::V2 => "memory.current",
        }
    }

    /// Limit files in order; the smallest set one wins (`memory.high` is
    /// the v2 throttling point, normally below `memory.max`).
    fn limit_files(self) -> &'static [&'static str] {
        match self {
            Version::V1 => &["memory.limit_in_bytes"],
            Version::V2 => &["memory.high", "memory.max"],
        }
    }

    /// The `memory.stat` key of inactive file pages, hierarchical in both.
    fn inactive_key(self) -> &'static str {
        match self {
            Version::V1 => "total_inactive_file",
            Version::V2 => "inactive_file",
        }
    }
}

/// Parses a limit file: `Ok(Some(bytes))`, `Ok(None)` for no limit (v2
/// `"max"`, or v1's "unlimited", a page-rounded `i64::MAX`), `Err(())` for
/// anything else.
pub(crate) fn parse_limit(text: &str) -> Result<Option<usize>, ()> {
    let text = text.trim();
    if text == "max" {
        return Ok(None);
    }
    let value: u64 = text.parse().map_err(|_| ())?;
    if value >= 1 << 62 {
        return Ok(None);
    }
    Ok(usize::try_from(value).ok())
}

/// Parses a file holding one decimal number (`memory.current`,
/// `memory.usage_in_bytes`).
pub(crate) fn parse_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The value of `key` in a `memory.stat`-style file (`key value` lines).
pub(crate) fn parse_stat(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(' ')?;
        rest.trim().parse().ok()
    })
}

/// The cgroup paths of this process from `/proc/self/cgroup`:
/// (v2 path, v1 memory path).
pub(crate) fn parse_proc_cgroup(text: &str) -> (Option<&str>, Option<&str>) {
    let mut v2 = None;
    let mut v1 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path);
        } else if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path);
        }
    }
    (v2, v1)
}

/// Reads `path` into `buf` as text (INV-2: no allocation).
pub(crate) fn read_text<'b>(path: &CStr, file: &'static str, buf: &'b mut [u8]) -> Result<&'b str, FileFault> {
    let n = crate::os::read_file(path, buf).map_err(|e| FileFault::os(file, e))?;
    core::str::from_utf8(&buf[..n]).map_err(|_| FileFault::format(file))
}

/// `dir/name` as a C string (paths from the kernel never hold NUL; a fake
/// root with one is reported as a format fault).
pub(crate) fn c_path(dir: &Path, name: &str) -> Option<CString> {
    CString::new(dir.join(name).as_os_str().as_bytes()).ok()
}

/// One cgroup directory the pressure layer watches.
#[derive(Debug)]
pub(crate) struct Level {
    pub(crate) version: Version,
    pub(crate) dir: PathBuf,
    usage_path: CString,
    stat_path: CString,
    limit_paths: Vec<(CString, &'static str)>,
    /// Last usage file value, bytes.
    pub(crate) raw: usize,
    /// Last inactive file pages from `memory.stat`, bytes.
    pub(crate) inactive: usize,
    /// Last limit; `None` when unlimited or unreadable.
    pub(crate) limit: Option<usize>,
    /// The first problem of the last sample, if any.
    pub(crate) fault: Option<FileFault>,
}

impl Level {
    /// A level for `dir`, read once; `Err` when its usage file is not
    /// readable (INV-1).
    pub(crate) fn open(version: Version, dir: PathBuf, buf: &mut [u8]) -> Result<Level, FileFault> {
        let bad = || FileFault::format("path with NUL");
        let usage_path = c_path(&dir, version.usage_file()).ok_or_else(bad)?;
        let stat_path = c_path(&dir, "memory.stat").ok_or_else(bad)?;
        let limit_paths = version
            .limit_files()
            .iter()
            .map(|f| Ok((c_path(&dir, f).ok_or_else(bad)?, *f)))
            .collect::<Result<Vec<_>, FileFault>>()?;
        let mut level =
            Level { version, dir, usage_path, stat_path, limit_paths, raw: 0, inactive: 0, limit: None, fault: None };
        level.sample(buf)?;
        Ok(level)
    }

    /// Usage net of inactive file pages, bytes.
    pub(crate) fn usage(&self) -> usize {
        self.raw.saturating_sub(self.inactive)
    }

    /// `(usage, limit)` when the level has a limit.
    pub(crate) fn usage_and_limit(&self) -> Option<(usize, usize)> {
        Some((self.usage(), self.limit?))
    }

    /// Re-reads usage, limit and inactive file pages (INV-2). `Err` only
    /// when the usage file failed (the level then has no limit until a
    /// later sample succeeds); other failures leave a [`Self::fault`] and a
    /// conservative value (no limit known, no inactive pages).
    pub(crate) fn sample(&mut self, buf: &mut [u8]) -> Result<(), FileFault> {
        self.fault = None;
        let usage_file = self.version.usage_file();
        let raw = match read_text(&self.usage_path, usage_file, buf) {
            Ok(text) => parse_u64(text).ok_or(FileFault::format(usage_file)),
            Err(f) => Err(f),
        };
        let raw = raw.inspect_err(|f| {
            self.fault = Some(*f);
            // Without a usage the limit is meaningless: leave the decision.
            self.limit = None;
        })?;
        self.raw = usize::try_from(raw).unwrap_or(usize::MAX);

        let mut limit: Option<usize> = None;
        let mut read_any = false;
        let mut first_fault = None;
        for (path, file) in &self.limit_paths {
            match read_text(path, file, buf).and_then(|t| parse_limit(t).map_err(|()| FileFault::format(file))) {
                Ok(value) => {
                    read_any = true;
                    limit = match (limit, value) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                Err(f) => {
                    first_fault.get_or_insert(f);
                }
            }
        }
        self.limit = limit;
        // A v2 group may lack `memory.high` (older kernels, fake trees):
        // only complain when no limit file could be read at all, or one was
        // garbled.
        if let Some(f) = first_fault {
            if !read_any || matches!(f.kind, super::signal::FaultKind::Format) {
                self.fault.get_or_insert(f);
            }
        }

        let key = self.version.inactive_key();
        self.inactive = match read_text(&self.stat_path, "memory.stat", buf) {
            Ok(text) => parse_stat(text, key).map_or(0, |v| usize::try_from(v).unwrap_or(usize::MAX)),
            Err(f) => {
                self.fault.get_or_insert(f);
                0
            }
        };
        Ok(())
    }

    /// `dir/name`.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// What discovery found in one hierarchy.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// The group itself first, then its ancestors that have a limit.
    pub(crate) levels: Vec<Level>,
    /// When nothing was found: where it looked and why it failed.
    pub(crate) fault: Option<(PathBuf, FileFault)>,
    /// The process's path in this hierarchy, from `/proc/self/cgroup`.
    pub(crate) path: Option<String>,
}

/// Candidate directories for `path` under `mount`: the path itself, then
/// shorter and shorter suffixes of it (inside a container without a cgroup
/// namespace, `/proc/self/cgroup` names the host's path while the mount
/// shows only the container's own subtree).
fn candidates(mount: &Path, path: &str) -> Vec<PathBuf> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    (0..=parts.len()).map(|skip| parts[skip..].iter().fold(mount.to_path_buf(), |d, p| d.join(p))).collect()
}

/// Finds the group at `path` under `mount` and its limited ancestors.
pub(crate) fn find(version: Version, mount: &Path, path: &str, buf: &mut [u8]) -> Found {
    let mut found = Found::default();
    for dir in candidates(mount, path) {
        match Level::open(version, dir.clone(), buf) {
            Ok(own) => {
                found.levels.push(own);
                break;
            }
            Err(f) => {
                found.fault.get_or_insert((dir, f));
            }
        }
    }
    let Some(own) = found.levels.first() else { return found };
    found.fault = None;
    let mut dir = own.dir.clone();
    while dir.pop() && dir.starts_with(mount) {
        if let Ok(level) = Level::open(version, dir.clone(), buf) {
            if level.limit.is_some() {
                found.levels.push(level);
            }
        }
    }
    found
}

/// The process's cgroups under `root` (`/` normally): v1 memory levels and
/// v2 levels. `Err` when `/proc/self/cgroup` itself is unreadable.
pub(crate) fn discover(root: &Path) -> Result<(Found, Found), FileFault> {
    let mut buf = vec![0u8; STAT_BUF];
    let proc_cgroup = c_path(root, "proc/self/cgroup").ok_or(FileFault::format("path with NUL"))?;
    let text = read_text(&proc_cgroup, "/proc/self/cgroup", &mut buf)?.to_owned();
    let (v2_path, v1_path) = parse_proc_cgroup(&text);
    let mut v1 = match v1_path {
        Some(path) => find(Version::V1, &root.join(V1_MOUNT), path, &mut buf),
        None => Found::default(),
    };
    v1.path = v1_path.map(str::to_owned);
    let mut v2 = Found::default();
    if let Some(path) = v2_path {
        for mount in V2_MOUNTS {
            let found = find(Version::V2, &root.join(mount), path, &mut buf);
            let done = !found.levels.is_empty();
            if done || v2.fault.is_none() {
                v2 = found;
            }
            if done {
                break;
            }
        }
    }
    v2.path = v2_path.map(str::to_owned);
    Ok((v1, v2))
}

/// Whether the process `pid` (as `root/proc/<pid>/cgroup` names its
/// cgroups) is inside the cgroup that is `up` levels above `own`, this
/// process's own `version` cgroup path from `/proc/self/cgroup`: so that
/// a limit on that cgroup is its limit too. `None` when its file cannot be
/// read or names no such cgroup (it exited, or lives in another pid or
/// cgroup namespace). Both paths come from one namespace's view, so
/// comparing them needs no mount point.
#[cfg_attr(loom, allow(dead_code))] // groups (not under loom) ask
pub(crate) fn shares_cgroup(root: &Path, pid: u64, version: Version, own: &str, up: usize) -> Option<bool> {
    let mut buf = [0u8; 4096];
    let file = c_path(root, &format!("proc/{pid}/cgroup"))?;
    let text = read_text(&file, "/proc/<pid>/cgroup", &mut buf).ok()?;
    let (v2, v1) = parse_proc_cgroup(text);
    let theirs = match version {
        Version::V1 => v1,
        Version::V2 => v2,
    }?;
    let own: Vec<&str> = own.split('/').filter(|p| !p.is_empty()).collect();
    let scope = &own[..own.len().saturating_sub(up)];
    let mut theirs = theirs.split('/').filter(|p| !p.is_empty());
    Some(scope.iter().all(|part| theirs.next() == Some(*part)))
}

/// The smallest memory limit of this process's cgroups, if any is set.
pub(crate) fn cgroup_limit() -> Option<usize> {
    let (v1, v2) = discover(Path::new("/")).ok()?;
    v1.levels.iter().chain(&v2.levels).filter_map(|l| l.limit).min()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_and_v2_lines() {
        let text = "12:memory:/docker/abc\n5:cpu,cpuacct:/x\n0::/user.slice/session-1.scope\n";
        assert_eq!(parse_proc_cgroup(text), (Some("/user.slice/session-1.scope"), Some("/docker/abc")));
        assert_eq!(parse_proc_cgroup("4:cpu,memory:/a\n"), (None, Some("/a")));
        assert_eq!(parse_proc_cgroup("0::/\n"), (Some("/"), None), "pure v2");
        assert_eq!(parse_proc_cgroup("1:name=systemd:/\n"), (None, None));
        assert_eq!(parse_proc_cgroup("garbage\n"), (None, None));
    }

    #[test]
    fn parses_limits() {
        assert_eq!(parse_limit("max\n"), Ok(None));
        assert_eq!(parse_limit("9223372036854771712\n"), Ok(None), "v1 unlimited");
        assert_eq!(parse_limit("1073741824\n"), Ok(Some(1 << 30)));
        assert_eq!(parse_limit("0\n"), Ok(Some(0)));
        assert_eq!(parse_limit("nonsense"), Err(()));
        assert_eq!(parse_limit(""), Err(()));
    }

    #[test]
    fn parses_usage_files() {
        assert_eq!(parse_u64("4308992\n"), Some(4308992));
        assert_eq!(parse_u64("x\n"), None);
    }

    #[test]
    fn parses_v1_stat() {
        let text = "cache 1400832\nrss 1650688\ninactive_file 917504\nactive_file 483328\n\
                    hierarchical_memory_limit 9223372036854771712\ntotal_cache 1400832\n\
                    total_inactive_file 1017504\ntotal_active_file 483328\n";
        assert_eq!(parse_stat(text, Version::V1.inactive_key()), Some(1017504));
        assert_eq!(parse_stat(text, "inactive_file"), Some(917504), "a key is never matched as a suffix");
        assert_eq!(parse_stat(text, "total_unevictable"), None);
    }

    #[test]
    fn parses_v2_stat() {
        let text = "anon 1000\nfile 5000\nkernel 77\nactive_anon 900\ninactive_anon 100\n\
                    active_file 3000\ninactive_file 2000\nworkingset_refault_file 4\n";
        assert_eq!(parse_stat(text, Version::V2.inactive_key()), Some(2000));
        assert_eq!(parse_stat(text, "file"), Some(5000));
        assert_eq!(parse_stat("inactive_file x\n", "inactive_file"), None);
    }

    #[test]
    fn candidate_dirs_strip_leading_components() {
        let m = Path::new("/m");
        assert_eq!(candidates(m, "/docker/abc"), [PathBuf::from("/m/docker/abc"), "/m/abc".into(), "/m".into()]);
        assert_eq!(candidates(m, "/"), [PathBuf::from("/m")]);
    }

    #[test]
    fn cgroup_limit_on_this_machine_does_not_panic() {
        if let Some(limit) = cgroup_limit() {
            assert!(limit > 0);
        }
    }

    #[test]
    fn default_limit_is_positive_and_bounded() {
        let l = crate::pressure::default_limit();
        assert!(l > 0);
        if let Some(p) = crate::os::physical_memory() {
            assert!(l <= p / 4);
        }
    }
}
