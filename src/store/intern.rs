//! One shared copy of every label string, and the tuples they are gathered in.
//!
//! cAdvisor series repeat the same namespace, pod, image and label names thousands of times;
//! each distinct string is stored once and shared by reference count. Strings no series uses
//! any more are released by `purge_unused`, run by the housekeeping thread.

use std::fmt;
use std::hash::BuildHasher;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashTable};
use triomphe::ThinArc;

use crate::base::bytes;
use crate::base::locks::lock;

const SHARDS: usize = 16;

/// An interned string: one allocation holding the count and the text, so that matching a
/// request against stored labels follows one pointer per label value, not two.
#[derive(Clone)]
pub struct Atom(Arc<str>);

impl Atom {
    /// An atom outside any interner, for tests and one-off values.
    pub fn new(text: &str) -> Atom {
        Atom(Arc::from(text))
    }

    fn is_shared(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }
}

impl Deref for Atom {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Atom) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || **self == **other
    }
}

impl Eq for Atom {}

impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Atom) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Atom {
    /// The order of `str`, spelled out by [`bytes::order`]: `str`'s own calls the C library's
    /// `memcmp`, which musl walks a byte at a time, and a scrape sorts thousands of tuples.
    fn cmp(&self, other: &Atom) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        bytes::order(self.as_bytes(), other.as_bytes())
    }
}

impl fmt::Debug for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

/// Atoms in order, shared by reference count: the label values of the series of one container
/// (or the label names of a schema). The pointer is one word, with the length kept in the
/// allocation, where `Arc<[Atom]>` takes two: every series holds a tuple, in the store and in
/// each scrape's list of views, so the word counts a hundred thousand times over. The
/// allocation also keeps the store's hash of the atoms, so that a growing table finds it
/// there instead of hashing the strings again, and a series need not keep its own.
#[derive(Clone)]
pub struct Tuple(ThinArc<u64, Atom>);

impl Tuple {
    /// A tuple of exactly these atoms, in one allocation, with their hash.
    pub fn new(hash: u64, atoms: impl ExactSizeIterator<Item = Atom>) -> Tuple {
        Tuple(ThinArc::from_header_and_iter(hash, atoms))
    }

    /// The hash it was made with.
    pub fn hash(&self) -> u64 {
        self.0.header.header
    }

    /// Where the tuple lives: equal for two handles of the same tuple, and only then.
    pub fn address(&self) -> usize {
        self.0.ptr() as usize
    }

    /// Whether anything but the caller holds the tuple.
    pub fn is_shared(&self) -> bool {
        ThinArc::strong_count(&self.0) > 1
    }
}

impl Deref for Tuple {
    type Target = [Atom];
    fn deref(&self) -> &[Atom] {
        &self.0.slice
    }
}

impl PartialEq for Tuple {
    fn eq(&self, other: &Tuple) -> bool {
        self.address() == other.address() || **self == **other
    }
}

impl Eq for Tuple {}

impl fmt::Debug for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

pub struct Interner {
    hasher: DefaultHashBuilder,
    shards: Box<[Mutex<HashTable<Atom>>]>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner::with_room(0)
    }
}

impl Interner {
    /// An interner with room for `strings` before any table grows.
    pub fn with_room(strings: usize) -> Interner {
        let room = strings.div_ceil(SHARDS);
        Interner {
            hasher: DefaultHashBuilder::default(),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashTable::with_capacity(room)))
                .collect(),
        }
    }

    /// The shared copy of `text`, made on first use; `None` when it is not UTF-8. Only a
    /// string met for the first time is checked: one already held is equal to checked text.
    pub fn intern(&self, text: &[u8]) -> Option<Atom> {
        let hash = self.hasher.hash_one(text);
        // The table takes the low and top bits of the hash; the shard takes middle ones.
        let mut strings = lock(&self.shards[(hash >> 32) as usize % SHARDS]);
        let rehash = |atom: &Atom| self.hasher.hash_one(atom.as_bytes());
        match strings.entry(hash, |atom| bytes::same(atom.as_bytes(), text), rehash) {
            Entry::Occupied(entry) => Some(entry.get().clone()),
            Entry::Vacant(entry) => {
                let shared = Atom::new(std::str::from_utf8(text).ok()?);
                entry.insert(shared.clone());
                Some(shared)
            }
        }
    }

    /// Drops every string that only the interner still holds; returns how many.
    pub fn purge_unused(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let mut strings = lock(shard);
                let before = strings.len();
                strings.retain(|atom| atom.is_shared());
                before - strings.len()
            })
            .sum()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    #[cfg(test)]
    pub(crate) fn capacities(&self) -> Vec<usize> {
        self.shards
            .iter()
            .map(|shard| lock(shard).capacity())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_copy() {
        let interner = Interner::default();
        let a = interner.intern(b"kube-system").unwrap();
        let b = interner
            .intern(String::from("kube-system").as_bytes())
            .unwrap();
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(interner.len(), 1);
    }

    #[test]
    fn unused_strings_are_purged_and_used_ones_kept() {
        let interner = Interner::default();
        let kept = interner.intern(b"namespace").unwrap();
        drop(interner.intern(b"pod-1234"));
        assert_eq!(interner.purge_unused(), 1);
        assert_eq!(interner.len(), 1);
        assert!(Arc::ptr_eq(
            &kept.0,
            &interner.intern(b"namespace").unwrap().0
        ));
    }

    #[test]
    fn only_utf8_is_interned() {
        let interner = Interner::default();
        assert!(interner.intern(b"caf\xc3\xa9").is_some());
        assert!(interner.intern(b"caf\xe9").is_none());
        assert!(
            interner.intern(b"\xed\xa0\x80").is_none(),
            "a surrogate is not UTF-8"
        );
        assert_eq!(interner.len(), 1);
    }
}
