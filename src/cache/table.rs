//! The open-addressing table behind one shard: linear probing over a
//! power-of-two array, backward-shift deletion (no tombstones), items that
//! carry their own hash.
//!
//! Owns: the placement of items. It is plain, single-threaded data (the
//! shard's lock guards it) and written in safe code. The cache needs what
//! `std::collections::HashMap` does not give on stable: finding items by a
//! hash alone (a discard notification carries the key's hash, not the key),
//! and visiting slots by index (the capacity sweep's clock hand).
//!
//! Must never: hash keys itself (callers pass the hash), or hold more than
//! 7/8 of its slots.

/// An item that knows its hash.
pub(crate) trait Hashed {
    /// The full 64-bit hash the item was placed by.
    fn hash(&self) -> u64;
}

/// The table. See the module docs.
#[derive(Debug)]
pub(crate) struct RawTable<T> {
    slots: Box<[Option<T>]>,
    len: usize,
}

impl<T: Hashed> RawTable<T> {
    /// An empty table (allocates nothing until the first insert).
    pub(crate) fn new() -> Self {
        Self { slots: Box::new([]), len: 0 }
    }

    /// Items held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Slots (a power of two, or zero).
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Bytes of the slot array.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.len() * size_of::<Option<T>>()
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The slot of the first item with `hash` for which `eq` holds.
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(&T) -> bool) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            match &self.slots[i] {
                None => return None,
                Some(item) if item.hash() == hash && eq(item) => return Some(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    /// The item in slot `i`, if any.
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        self.slots.get(i)?.as_ref()
    }

    /// The item in slot `i`, mutably.
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.slots.get_mut(i)?.as_mut()
    }

    /// Inserts an item whose key is not in the table; returns its slot.
    pub(crate) fn insert(&mut self, item: T) -> usize {
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            self.grow();
        }
        self.len += 1;
        self.place(item)
    }

    fn place(&mut self, item: T) -> usize {
        let mask = self.mask();
        let mut i = item.hash() as usize & mask;
        while self.slots[i].is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = Some(item);
        i
    }

    fn grow(&mut self) {
        let new = (self.slots.len() * 2).max(8);
        let old = core::mem::replace(&mut self.slots, (0..new).map(|_| None).collect());
        for item in old.into_vec().into_iter().flatten() {
            self.place(item);
        }
    }

    /// Removes and returns the item in slot `i`, shifting later items of
    /// the same probe run back so no tombstone is left.
    pub(crate) fn remove(&mut self, i: usize) -> Option<T> {
        let item = self.slots.get_mut(i)?.take()?;
        self.len -= 1;
        let mask = self.mask();
        let mut hole = i;
        let mut j = (i + 1) & mask;
        while let Some(next) = &self.slots[j] {
            let ideal = next.hash() as usize & mask;
            // Move `next` into the hole if the hole lies on its probe path
            // (between its ideal slot and where it sits now, cyclically).
            if (j.wrapping_sub(ideal) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
            j = (j + 1) & mask;
        }
        Some(item)
    }

    /// Removes every item, keeping the slot array.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.len = 0;
        self.slots.iter_mut().filter_map(Option::take)
    }

    /// Every item.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Item(u64, u32);

    impl Hashed for Item {
        fn hash(&self) -> u64 {
            self.0
        }
    }

    proptest! {
        /// Inserts and removes against a `HashMap` model, with hashes drawn
        /// from a small range so probe runs collide and wrap.
        #[test]
        fn matches_a_hashmap(ops in proptest::collection::vec((any::<bool>(), 0u64..64, any::<u32>()), 0..400)) {
            let mut table = RawTable::new();
            let mut model: HashMap<(u64, u32), ()> = HashMap::new();
            for (insert, hash, key) in ops {
                let key = key % 4;
                let found = table.find(hash, |it: &Item| it.1 == key);
                prop_assert_eq!(found.is_some(), model.contains_key(&(hash, key)));
                if insert {
                    if found.is_none() {
                        table.insert(Item(hash, key));
                        model.insert((hash, key), ());
                    }
                } else if let Some(i) = found {
                    prop_assert_eq!(table.remove(i), Some(Item(hash, key)));
                    model.remove(&(hash, key));
                }
                prop_assert_eq!(table.len(), model.len());
                prop_assert!(table.len() * 8 <= table.slots() * 7);
            }
            for &(hash, key) in model.keys() {
                prop_assert!(table.find(hash, |it| it.1 == key).is_some());
            }
            prop_assert_eq!(table.iter().count(), model.len());
            prop_assert_eq!(table.drain().count(), model.len());
            prop_assert_eq!(table.len(), 0);
        }
    }
}
