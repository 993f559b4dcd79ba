//! The registry file and a member's life in it: creating the file
//! exclusively or opening a creator's (waiting up to 1 s for it to be
//! initialised), refusing one that another user owns, claiming a slot,
//! publishing, asking for this member's share, and giving the slot up.
//!
//! Truncation: a page of a `MAP_SHARED` mapping that lies beyond the
//! file's end raises `SIGBUS` when touched, so every use of the mapping is
//! preceded by an `fstat` that checks the size ([`Fault::Truncated`]
//! otherwise). What is left is the window between that `fstat` and the
//! reads, a few microseconds, in which another process of the same user
//! would have to shrink the file on purpose; the same user can kill us
//! outright, so the registry does not defend that window further.

use core::ptr::NonNull;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::share::{give_back, shares, Claimant};
use super::slot::{tag, Figures, Hold, Layout, BYTES, LEASE_MS, MAGIC, SLOTS, SLOT_WORDS, VERSION};
use super::view::{self, Fault, MemberView};
use crate::os::{self, OsError};
use crate::sync::Ordering;

/// Where registries live: the tmpfs every process of a host (or of a
/// container) sees.
pub(crate) const DIR: &str = "/dev/shm";
/// How long a member waits for a creator to initialise the file.
const INIT_WAIT: Duration = Duration::from_secs(1);
/// How long "lately" is for demand: bytes discarded in the last 5 s
/// still count as wanted.
const DEMAND_WINDOW_MS: u64 = 5000;
/// Samples of the discard counter kept for demand (one a second).
const HISTORY: usize = 6;

/// The registry file of group `name` (a valid name) under `dir`.
pub(crate) fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("discardable-group-{name}"))
}

/// Why a registry could not be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// It belongs to user `uid`: refused, never opened.
    Foreign { path: PathBuf, uid: u32 },
    /// Anything else: the member acts alone.
    Fault(Fault),
}

/// A mapped registry file.
#[derive(Debug)]
pub(crate) struct Registry {
    fd: OwnedFd,
    base: NonNull<u8>,
}

// SAFETY: the mapping is only reached through atomics (`Layout`), which any
// thread may use; the descriptor is an owned fd.
unsafe impl Send for Registry {}

impl Registry {
    /// Creates the registry at `path` (`O_EXCL`, mode 0600) if `create`
    /// and there is none, or opens the one there, refusing one another
    /// user owns (before opening it).
    pub(crate) fn open(path: &Path, create: bool) -> Result<Registry, OpenError> {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| OpenError::Fault(Fault::Os(OsError { op: "open", errno: libc::EINVAL })))?;
        let fault = |e| OpenError::Fault(Fault::Os(e));
        let me = os::user_id();
        match os::stat_path(&c) {
            Ok(info) if info.uid != me => return Err(OpenError::Foreign { path: path.into(), uid: info.uid }),
            Ok(info) if !info.regular => return Err(OpenError::Fault(Fault::NotRegular)),
            Ok(_) => {}
            Err(e) if e.errno == libc::ENOENT && create => match os::open_shared(&c, true) {
                Ok(fd) => return Registry::create(fd).map_err(fault),
                Err(e) if e.errno == libc::EEXIST => {}
                Err(e) => return Err(fault(e)),
            },
            Err(e) if e.errno == libc::ENOENT => return Err(OpenError::Fault(Fault::Missing)),
            Err(e) => return Err(fault(e)),
        }
        let fd = os::open_shared(&c, false).map_err(fault)?;
        // Checked again on the descriptor: the path may have changed hands.
        let info = os::stat_fd(&fd).map_err(fault)?;
        if info.uid != me {
            return Err(OpenError::Foreign { path: path.into(), uid: info.uid });
        }
        if !info.regular {
            return Err(OpenError::Fault(Fault::NotRegular));
        }
        let base = os::map_shared(&fd, BYTES).map_err(fault)?;
        let registry = Registry { fd, base };
        // A creator that is still initialising is not a corrupt file: wait
        // for its size and its version word, up to 1 s.
        let deadline = Instant::now() + INIT_WAIT;
        while Instant::now() < deadline {
            match registry.layout() {
                Ok(l) if l.header.words[1].load(Ordering::Acquire) != 0 => break,
                Ok(_) | Err(Fault::Truncated { .. }) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => break,
            }
        }
        Ok(registry)
    }

    /// Sizes, maps and initialises a file we just created; the version is
    /// published last.
    fn create(fd: OwnedFd) -> Result<Registry, OsError> {
        os::set_len(&fd, BYTES as u64)?;
        let base = os::map_shared(&fd, BYTES)?;
        let registry = Registry { fd, base };
        let Ok(layout) = registry.layout() else { return Err(OsError { op: "ftruncate", errno: libc::EIO }) };
        let words = [MAGIC, 0, SLOTS as u64, SLOT_WORDS as u64, LEASE_MS, 0, 0, 0];
        for (cell, w) in layout.header.words.iter().zip(words).filter(|(_, w)| *w != 0) {
            cell.store(w, Ordering::Relaxed);
        }
        // Release: pairs with the Acquire load in `view::header_words`, so
        // a member that sees the version sees the header.
        layout.header.words[1].store(VERSION, Ordering::Release);
        Ok(registry)
    }

    /// The mapping as the layout, after checking that the file still
    /// covers it (module docs, "Truncation").
    pub(crate) fn layout(&self) -> Result<&Layout, Fault> {
        let info = os::stat_fd(&self.fd).map_err(Fault::Os)?;
        if info.size < BYTES as u64 {
            return Err(Fault::Truncated { size: info.size });
        }
        // SAFETY: `base` is a live shared mapping of BYTES bytes (unmapped
        // only in drop), the file covers all of it (just checked), it is
        // page aligned, and `Layout` is `repr(C)` of `AtomicU64`s only
        // (size BYTES, align 8); every access goes through those atomics,
        // so other processes' writes are never a data race on our side.
        Ok(unsafe { &*self.base.as_ptr().cast::<Layout>() })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // SAFETY: `base` is our one mapping of BYTES bytes; no reference
        // into it outlives `&self` (every `layout()` borrow has ended).
        unsafe { os::unmap_shared(self.base, BYTES) };
    }
}

/// This manager's membership of a group: the registry, its slot, what it
/// last published, and the discard history demand is computed from.
#[derive(Debug)]
pub(crate) struct Member {
    path: PathBuf,
    weight: u32,
    serial: u32,
    pid: u32,
    registry: Option<Registry>,
    hold: Option<(usize, Hold)>,
    /// When opening last failed (retried every lease).
    open_failed_at: Option<u64>,
    /// (ms, discarded bytes so far), one sample a second.
    history: [(u64, u64); HISTORY],
    share: u64,
    reclaims: u64,
}

static SERIAL: AtomicU32 = AtomicU32::new(1);

impl Member {
    /// Joins the group whose registry is at `path` with `weight`. Only a
    /// registry owned by another user is an error; any other trouble is a
    /// fault and the member acts alone until it clears.
    /// The error is the registry's owner: `(path, uid)`.
    pub(crate) fn join(path: PathBuf, weight: u32) -> Result<Member, (PathBuf, u32)> {
        let registry = match Registry::open(&path, true) {
            Ok(r) => Some(r),
            Err(OpenError::Fault(_)) => None,
            Err(OpenError::Foreign { path, uid }) => return Err((path, uid)),
        };
        let now = os::monotonic_ms();
        Ok(Member {
            path,
            weight,
            serial: SERIAL.fetch_add(1, Relaxed),
            pid: os::process_id(),
            open_failed_at: registry.is_none().then_some(now),
            registry,
            hold: None,
            history: [(now, 0); HISTORY],
            share: 0,
            reclaims: 0,
        })
    }

    /// In a forked child, forgets the parent's slot and takes the child's
    /// pid, so the next publication claims a slot of the child's own. Runs
    /// first in `publish` and `give_back`, before they read the pid or the
    /// slot: checked any later, the child's first publication would go
    /// into the parent's slot under the parent's pid (`tests/fork.rs`).
    fn note_fork(&mut self) {
        if os::process_id() != self.pid {
            self.pid = os::process_id();
            self.hold = None;
        }
    }

    /// The registry, reopened at most once a lease after a failure.
    fn registry(&mut self, now: u64) -> Result<&Registry, Fault> {
        if self.registry.is_none() && self.open_failed_at.is_none_or(|t| now.saturating_sub(t) >= LEASE_MS) {
            match Registry::open(&self.path, true) {
                Ok(r) => self.registry = Some(r),
                Err(OpenError::Foreign { .. }) => self.open_failed_at = Some(now),
                Err(OpenError::Fault(f)) => {
                    self.open_failed_at = Some(now);
                    return Err(f);
                }
            }
        }
        self.registry.as_ref().ok_or(Fault::Os(OsError { op: "open", errno: libc::EPERM }))
    }

    /// Demand: `held` plus the bytes discarded in the last
    /// [`DEMAND_WINDOW_MS`], from the running total `discarded`.
    fn demand(&mut self, now: u64, held: u64, discarded: u64) -> u64 {
        let newest = self.history.iter().map(|h| h.0).max().unwrap_or(0);
        if now.saturating_sub(newest) >= 1000 {
            let oldest = (0..HISTORY).min_by_key(|&i| self.history[i].0).unwrap_or(0);
            self.history[oldest] = (now, discarded);
        }
        let base = self
            .history
            .iter()
            .filter(|h| now.saturating_sub(h.0) <= DEMAND_WINDOW_MS)
            .map(|h| h.1)
            .min()
            .unwrap_or(discarded);
        held.saturating_add(discarded.saturating_sub(base))
    }

    /// Publishes this member's figures at `now` (its heartbeat), claiming
    /// a slot first if it has none.
    pub(crate) fn publish(&mut self, now: u64, held: u64, pinned: u64, discarded: u64) -> Result<(), Fault> {
        self.note_fork();
        let demand = self.demand(now, held, discarded);
        let figures = Figures {
            pid: u64::from(self.pid),
            weight: u64::from(self.weight),
            held,
            pinned,
            demand,
            share: self.share,
            reclaims: self.reclaims,
        };
        let tag = tag(self.pid, self.serial);
        let held_slot = self.hold;
        let layout = self.registry(now)?.layout()?;
        view::check_header(&view::header_words(layout))?;
        let (index, mut hold) = match held_slot {
            Some(h) => h,
            None => {
                let claimed = layout.slots.iter().enumerate().find_map(|(i, s)| Some((i, s.try_claim(tag, now)?)));
                claimed.ok_or(Fault::Full)?
            }
        };
        let ok = layout.slots[index].publish(&mut hold, &figures, now);
        self.hold = ok.then_some((index, hold));
        if ok {
            Ok(())
        } else {
            Err(Fault::Lost)
        }
    }

    /// How many of the `shed` bytes the group must give back are this
    /// member's, holding `held` now; the rest is the others' (module docs of
    /// `share.rs`). Only the members whose process `feels` the signal (a
    /// cgroup they are in, the host) take part: a signal only this member
    /// feels, such as a cgroup only it is in, is its alone. Needs a
    /// published slot.
    pub(crate) fn give_back(
        &mut self,
        now: u64,
        shed: u64,
        held: u64,
        feels: &dyn Fn(u32) -> bool,
    ) -> Result<u64, Fault> {
        self.note_fork();
        let Some((mine, _)) = self.hold else { return Err(Fault::Lost) };
        let layout = self.registry(now)?.layout()?;
        let mut members: Vec<MemberView> = view::members(layout, now)?;
        members.retain(|m| m.slot == mine || feels(m.pid));
        let me = members.iter().position(|m| m.slot == mine).ok_or(Fault::Lost)?;
        // Our own figures are fresher than what we last published.
        members[me].held = held;
        members[me].demand = members[me].demand.max(held);
        members[me].pinned = members[me].pinned.min(held);
        let total: u64 = members.iter().map(|m| m.held).fold(0, u64::saturating_add);
        let keep = total.saturating_sub(shed);
        let claimants: Vec<Claimant> = members
            .iter()
            .map(|m| Claimant { weight: u64::from(m.weight), demand: m.demand, floor: m.pinned })
            .collect();
        let share = shares(keep, &claimants);
        let held: Vec<u64> = members.iter().map(|m| m.held).collect();
        let mine = give_back(shed, &held, &share)[me];
        self.share = share[me];
        self.reclaims += u64::from(mine > 0);
        Ok(mine)
    }
}

/// The live members of the registry at `path`, read without joining (for
/// `discardable-top` and tests); never creates the file.
pub(crate) fn read(path: &Path) -> Result<Vec<MemberView>, OpenError> {
    let registry = Registry::open(path, false)?;
    let now = os::monotonic_ms();
    registry.layout().and_then(|l| view::members(l, now)).map_err(OpenError::Fault)
}

impl Drop for Member {
    fn drop(&mut self) {
        if os::process_id() != self.pid {
            return; // a forked child never held the parent's slot
        }
        if let (Some((index, hold)), Some(registry)) = (self.hold, &self.registry) {
            if let Ok(layout) = registry.layout() {
                layout.slots[index].release(hold);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn temp(name: &str) -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!("dg-{name}-{}-{}", std::process::id(), N.fetch_add(1, Relaxed)));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn creates_with_mode_0600_and_a_published_version() {
        let p = temp("create");
        let r = Registry::open(&p, true).unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), BYTES as u64);
        assert_eq!(view::members(r.layout().unwrap(), 0), Ok(vec![]));
        let missing = temp("missing");
        assert!(matches!(read(&missing), Err(OpenError::Fault(Fault::Missing))));
        assert!(!missing.exists(), "a reader never creates the file");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn two_members_split_by_weight() {
        let p = temp("split");
        let mut a = Member::join(p.clone(), 1).unwrap();
        let mut b = Member::join(p.clone(), 3).unwrap();
        let now = os::monotonic_ms();
        a.publish(now, 400, 0, 0).unwrap();
        b.publish(now, 400, 0, 0).unwrap();
        // Keep 400 of 800: shares 100 and 300, so a gives 300 and b 100.
        assert_eq!(a.give_back(now, 400, 400, &|_| true), Ok(300));
        assert_eq!(b.give_back(now, 400, 400, &|_| true), Ok(100));
        assert_eq!((a.share, b.share), (100, 300));
        let seen = read(&p).unwrap();
        assert_eq!(seen.iter().map(|m| (m.weight, m.held)).collect::<Vec<_>>(), vec![(1, 400), (3, 400)]);
        // A signal b does not feel (a cgroup only a is in) is a's alone.
        assert_eq!(a.give_back(now, 400, 400, &|_| false), Ok(400));
        drop(b);
        // b's slot is free at once; a alone gives back everything asked.
        assert_eq!(a.give_back(now, 400, 400, &|_| true), Ok(400));
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_member_below_its_share_gives_nothing() {
        let p = temp("below");
        let mut small = Member::join(p.clone(), 1).unwrap();
        let mut big = Member::join(p.clone(), 1).unwrap();
        let now = os::monotonic_ms();
        small.publish(now, 50, 0, 0).unwrap();
        big.publish(now, 500, 0, 0).unwrap();
        assert_eq!(small.give_back(now, 200, 50, &|_| true), Ok(0));
        assert_eq!(big.give_back(now, 200, 500, &|_| true), Ok(200));
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn demand_counts_recent_discards() {
        let p = temp("demand");
        let mut m = Member::join(p.clone(), 1).unwrap();
        let t = os::monotonic_ms();
        assert_eq!(m.demand(t, 100, 0), 100);
        assert_eq!(m.demand(t + 1000, 60, 40), 100, "40 discarded within the window");
        assert_eq!(m.demand(t + 7000, 60, 40), 60, "outside the window");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_corrupt_or_truncated_registry_is_a_fault_never_a_crash() {
        let p = temp("corrupt");
        let mut m = Member::join(p.clone(), 1).unwrap();
        let now = os::monotonic_ms();
        m.publish(now, 10, 0, 0).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[8] = 9; // version 9
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(m.publish(now, 10, 0, 0), Err(Fault::Version(9)));
        assert_eq!(m.give_back(now, 5, 10, &|_| true), Err(Fault::Version(9)));
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(100).unwrap();
        assert_eq!(m.publish(now, 10, 0, 0), Err(Fault::Truncated { size: 100 }));
        assert_eq!(m.give_back(now, 5, 10, &|_| true), Err(Fault::Truncated { size: 100 }));
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_link_is_never_followed() {
        let target = temp("target");
        std::fs::write(&target, b"not a registry").unwrap();
        let link = temp("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(Registry::open(&link, true), Err(OpenError::Fault(Fault::NotRegular))));
        assert_eq!(std::fs::read(&target).unwrap(), b"not a registry");
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_file(&target).unwrap();
    }

    #[test]
    fn another_users_registry_is_refused() {
        if os::user_id() != 0 {
            return; // chown needs root; tests/group.rs checks it end to end too
        }
        let p = temp("foreign");
        std::fs::write(&p, vec![0u8; BYTES]).unwrap();
        std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
        assert!(matches!(Member::join(p.clone(), 1), Err((_, 65534))));
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_registry_being_initialised_is_waited_for() {
        let p = temp("init");
        // A creator that sized the file but has not published the version.
        std::fs::write(&p, vec![0u8; BYTES]).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let creator = std::thread::spawn({
            let p = p.clone();
            move || {
                std::thread::sleep(Duration::from_millis(200));
                let mut bytes = std::fs::read(&p).unwrap();
                let header = [MAGIC, VERSION, SLOTS as u64, SLOT_WORDS as u64, LEASE_MS];
                for (i, w) in header.iter().enumerate() {
                    bytes[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
                }
                std::fs::write(&p, &bytes).unwrap();
            }
        });
        let started = Instant::now();
        let mut m = Member::join(p.clone(), 1).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(150), "joined before the version was published");
        creator.join().unwrap();
        assert_eq!(m.publish(os::monotonic_ms(), 1, 0, 0), Ok(()));
        std::fs::remove_file(&p).unwrap();
    }
}
