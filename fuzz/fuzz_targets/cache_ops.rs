//! Differential fuzzing of `Cache<u8, [u8]>` against a `HashMap` model, with
//! discards injected at random.
//!
//! # What is driven
//!
//! One manager per process (limit far above what an input allocates, so the
//! background thread never discards on its own) and a fresh cache on it per
//! input. Ops: `Insert`, `Get`, `GetOrInsert`, `Remove`, `Clear`,
//! `Contains`, `Hold` (keep a guard), `Release` (drop one), and `Reclaim`
//! (`Manager::reclaim`, the injected discards: the manager picks victims in
//! its policy's order, which the model does not predict).
//!
//! # What is checked
//!
//! - A lookup finds exactly the model's bytes, or nothing if the model has
//!   nothing; after a `Reclaim`, the keys it discarded are gone from the map
//!   at once (no dead entry remains), the model drops exactly those, and a
//!   reclaim that freed bytes took at least one key.
//! - A key with a live held guard is never discarded by `Reclaim`.
//! - Every held guard keeps its bytes through `Remove`, replacing `Insert`,
//!   `Clear` and `Reclaim`, until it is released.
//! - `len()` matches the model; `weighted_size()` is zero exactly when every
//!   value is empty; at the end, with the cache and every guard dropped and one sweep,
//!   the manager holds no byte and no allocation.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use discardable::{Cache, CacheGuard, Manager};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Op {
    Insert { key: u8, len: u16, byte: u8 },
    Get { key: u8 },
    GetOrInsert { key: u8, len: u16, byte: u8 },
    Remove { key: u8 },
    Clear,
    Contains { key: u8 },
    Hold { key: u8 },
    Release { index: u8 },
    Reclaim { kib: u16 },
}

fn manager() -> &'static Manager {
    static M: OnceLock<Manager> = OnceLock::new();
    M.get_or_init(|| Manager::builder().limit(1 << 40).start().expect("manager"))
}

fn value(len: u16, byte: u8) -> Vec<u8> {
    // Up to 12 KiB: small slots and multi-page spans alike.
    vec![byte; usize::from(len) % (12 << 10)]
}

fuzz_target!(|ops: Vec<Op>| {
    let m = manager();
    let cache: Cache<u8, [u8]> = Cache::builder().manager(m).shards(4).build().expect("cache");
    // Each stored value has a generation, so a held guard knows whether it
    // pins the key's current value or an older (removed, replaced) one.
    let mut model: HashMap<u8, (Vec<u8>, u32)> = HashMap::new();
    let mut held: Vec<(u8, u32, Vec<u8>, CacheGuard<[u8]>)> = Vec::new();
    let mut generation = 0u32;
    for op in ops.into_iter().take(256) {
        match op {
            Op::Insert { key, len, byte } => {
                let v = value(len, byte);
                cache.insert(key, &v).expect("insert");
                generation += 1;
                model.insert(key, (v, generation));
            }
            Op::Get { key } => {
                let got = cache.get(&key);
                assert_eq!(got.as_deref(), model.get(&key).map(|(v, _)| v.as_slice()), "get {key}");
            }
            Op::GetOrInsert { key, len, byte } => {
                let v = value(len, byte);
                let g = cache.get_or_insert_with(key, || v.clone()).expect("get_or_insert_with");
                generation += 1;
                let (want, _) = model.entry(key).or_insert((v, generation));
                assert_eq!(&*g, want.as_slice(), "get_or_insert_with {key}");
            }
            Op::Remove { key } => {
                assert_eq!(cache.remove(&key), model.remove(&key).is_some(), "remove {key}");
            }
            Op::Clear => {
                cache.clear();
                model.clear();
            }
            Op::Contains { key } => assert_eq!(cache.contains_key(&key), model.contains_key(&key)),
            Op::Hold { key } => {
                if let Some(g) = cache.get(&key) {
                    held.push((key, model[&key].1, g.to_vec(), g));
                }
            }
            Op::Release { index } => {
                if !held.is_empty() {
                    held.swap_remove(usize::from(index) % held.len());
                }
            }
            Op::Reclaim { kib } => {
                let freed = m.reclaim(usize::from(kib) << 10);
                let gone: Vec<u8> = model.keys().copied().filter(|k| !cache.contains_key(k)).collect();
                for k in &gone {
                    let current = model[k].1;
                    assert!(
                        !held.iter().any(|(hk, g, _, _)| hk == k && *g == current),
                        "a pinned value was discarded: {k}"
                    );
                    model.remove(k);
                }
                // The notices were applied before `reclaim` returned.
                assert_eq!(cache.stats().dead_entries, 0, "dead keys left after reclaim");
                assert!(freed == 0 || !gone.is_empty(), "freed {freed} bytes but no key went");
            }
        }
        assert_eq!(cache.len(), model.len());
        // Empty values cost nothing.
        assert_eq!(cache.weighted_size() == 0, model.values().all(|(v, _)| v.is_empty()));
        for (key, _, bytes, guard) in &held {
            assert_eq!(&**guard, bytes.as_slice(), "held guard of {key} changed");
        }
    }
    drop(cache);
    drop(held);
    m.reclaim(0);
    let s = m.stats();
    assert_eq!((s.discardable_bytes, s.allocations), (0, 0), "{s:?}");
});
