//! Discard notifications: who hears that the manager discarded an
//! allocation, so that a map holding it can forget its key without waiting
//! for a failed `upgrade`.
//!
//! Owns: the registry of sinks (ids handed out by the manager, each a weak
//! reference to something above the manager, such as a cache) and the
//! batching of notices. A header names its sink by id and carries a tag
//! (`Header::sink`, `Header::tag`), both fixed at birth.
//!
//! A pass collects `(sink, tag)` for every victim it released, and after
//! releasing them (no table lock held, no epoch needed: the notice is plain
//! data) delivers each sink its tags in one call. A sink dropped meanwhile
//! is skipped.
//!
//! Must never: call a sink while holding the table lock or the registry
//! lock, or let a sink block the manager (sinks promise not to block).

use std::sync::Weak;

/// Something above the manager that wants to hear of discards.
pub(crate) trait DiscardSink: Send + Sync {
    /// `tags` were discarded by the manager (one call per pass and sink).
    /// Runs on whichever thread reclaimed (often the manager thread); must
    /// not block, in particular not on a lock the reclaiming thread may
    /// hold. Returns `true` if some of the work is left for
    /// [`flush`](Self::flush).
    fn discarded(&self, tags: &[u64]) -> bool;

    /// Retries what [`discarded`](Self::discarded) left; `true` if work is
    /// still left. The manager thread calls it at least every 10 ms while
    /// work is left.
    fn flush(&self) -> bool;
}

/// The registry. Id `0` means "no sink".
#[derive(Default)]
#[cfg_attr(loom, allow(dead_code))] // the cache (not built under loom) registers sinks
pub(crate) struct Sinks {
    next: u32,
    live: Vec<(u32, Weak<dyn DiscardSink>)>,
}

impl core::fmt::Debug for Sinks {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sinks").field("live", &self.live.len()).finish()
    }
}

#[cfg_attr(loom, allow(dead_code))]
impl Sinks {
    /// Registers `sink`; returns its id (never `0`).
    pub(crate) fn add(&mut self, sink: Weak<dyn DiscardSink>) -> u32 {
        self.next = self.next.checked_add(1).expect("discardable: 2^32 discard sinks");
        self.live.push((self.next, sink));
        self.next
    }

    /// Forgets the sink `id`.
    pub(crate) fn remove(&mut self, id: u32) {
        self.live.retain(|(i, _)| *i != id);
    }

    fn find(&self, id: u32) -> Option<Weak<dyn DiscardSink>> {
        self.live.iter().find(|(i, _)| *i == id).map(|(_, s)| Weak::clone(s))
    }

    /// Every live sink (for a flush).
    fn all(&self) -> Vec<Weak<dyn DiscardSink>> {
        self.live.iter().map(|(_, s)| Weak::clone(s)).collect()
    }
}

/// Flushes every sink (registry locked only to list them); `true` if some
/// work is still left.
pub(crate) fn flush(sinks: &parking_lot::Mutex<Sinks>) -> bool {
    let all = sinks.lock().all();
    let mut left = false;
    for sink in all.iter().filter_map(Weak::upgrade) {
        left |= sink.flush();
    }
    left
}

/// The notices of one pass: `(sink, tag)` pairs.
#[derive(Debug, Default)]
pub(crate) struct Notices(Vec<(u32, u64)>);

impl Notices {
    /// Notes a released victim (ignored for sink `0`).
    #[inline]
    pub(crate) fn push(&mut self, sink: u32, tag: u64) {
        if sink != 0 {
            self.0.push((sink, tag));
        }
    }

    /// Delivers every notice, one call per sink, looking sinks up in
    /// `sinks` (locked briefly per sink, never across a call). Returns
    /// whether a sink left work for a flush.
    pub(crate) fn deliver(mut self, sinks: &parking_lot::Mutex<Sinks>) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let mut left = false;
        self.0.sort_unstable_by_key(|&(sink, _)| sink);
        let mut tags = Vec::new();
        for group in self.0.chunk_by(|a, b| a.0 == b.0) {
            let found = sinks.lock().find(group[0].0);
            let Some(sink) = found.and_then(|w| w.upgrade()) else { continue };
            tags.clear();
            tags.extend(group.iter().map(|&(_, tag)| tag));
            left |= sink.discarded(&tags);
        }
        left
    }
}
