//! Helpers shared by `tests/pressure_cgroup.rs` and `benches/reaction.rs`
//! (included with `#[path]`): a child group of the cgroup v1 memory
//! controller, joining it between `fork` and `exec`, a buffer from the
//! system allocator, and the clock every process shares.

#![allow(dead_code)] // each includer uses its own subset

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where the v1 memory controller is mounted on this machine.
pub const V1_ROOT: &str = "/sys/fs/cgroup/memory";

/// A child group of the v1 memory controller with a memory limit, removed
/// on drop.
pub struct Group {
    pub dir: PathBuf,
}

impl Group {
    /// Makes `discardable-<tag>-<pid>-<n>` with `limit` bytes, or says why it
    /// cannot (not root, no v1 controller, the limit not taken).
    pub fn create(tag: &str, limit: usize) -> Result<Group, String> {
        static GROUPS: AtomicUsize = AtomicUsize::new(0);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root: making a memory cgroup needs root".into());
        }
        let root = Path::new(V1_ROOT);
        if !root.join("cgroup.procs").exists() || !root.join("memory.limit_in_bytes").exists() {
            return Err(format!("no cgroup v1 memory controller at {V1_ROOT}"));
        }
        let n = GROUPS.fetch_add(1, Ordering::Relaxed);
        let dir = root.join(format!("discardable-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let group = Group { dir };
        let file = group.dir.join("memory.limit_in_bytes");
        std::fs::write(&file, limit.to_string()).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        let read = read_u64(&file);
        if read != Some(limit as u64) {
            return Err(format!("{} reads {read:?} after writing {limit}", file.display()));
        }
        Ok(group)
    }

    /// `oom_kill` of `memory.oom_control`.
    pub fn oom_kills(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.dir.join("memory.oom_control")).ok()?;
        text.lines().find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // The children were waited for (or killed and waited for) before
        // this runs; the kernel may take a moment to let the group go.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    eprintln!("warning: could not remove {}: {e}", self.dir.display());
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// Moves the calling process into the group whose `cgroup.procs` is
/// `procs` (`0` means "the writer"). Runs between `fork` and `exec`.
pub fn join_group(procs: &CStr) -> std::io::Result<()> {
    // SAFETY: `procs` is a valid C string; open is async-signal-safe.
    let fd = unsafe { libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is open; the buffer is one readable byte.
    let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    let err = std::io::Error::last_os_error();
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
    if n == 1 {
        Ok(())
    } else {
        Err(err)
    }
}

/// Memory from the system allocator, not ours: the owner cannot see it.
pub struct SysBuf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl SysBuf {
    /// `len` zeroed bytes.
    pub fn new(len: usize) -> SysBuf {
        // Alignment 16: `System` then calls `calloc`, which leaves fresh
        // pages untouched (a larger alignment would `memset` them all here),
        // so the writer is what faults them in.
        let layout = std::alloc::Layout::from_size_align(len, 16).expect("layout");
        // SAFETY: a non-zero-size layout. Zeroed, so the bytes are
        // initialised.
        let ptr = unsafe { std::alloc::GlobalAlloc::alloc_zeroed(&std::alloc::System, layout) };
        assert!(!ptr.is_null(), "the system allocator refused {len} bytes");
        SysBuf { ptr, layout }
    }
}

impl AsMut<[u8]> for SysBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live, initialised (zeroed) allocation of
        // `layout.size()` bytes that only this value uses.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for SysBuf {
    fn drop(&mut self) {
        // SAFETY: allocated by `System` with this layout, freed once.
        unsafe { std::alloc::GlobalAlloc::dealloc(&std::alloc::System, self.ptr, self.layout) };
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock every process shares.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A small file holding one number.
pub fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
