//! One shared copy of every label string.
//!
//! cAdvisor series repeat the same namespace, pod, image and label names thousands of times;
//! each distinct string is stored once and shared by reference count. Strings no series uses
//! any more are released by `purge_unused`, run by the housekeeping thread.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use hashbrown::{DefaultHashBuilder, HashSet};

use crate::locks::lock;

const SHARDS: usize = 16;

pub struct Interner {
    hasher: DefaultHashBuilder,
    shards: Box<[Mutex<HashSet<Arc<str>>>]>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            hasher: DefaultHashBuilder::default(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Interner {
    /// The shared copy of `text`, made on first use.
    pub fn intern(&self, text: &str) -> Arc<str> {
        let shard = &self.shards[self.hasher.hash_one(text) as usize % SHARDS];
        let mut strings = lock(shard);
        if let Some(existing) = strings.get(text) {
            return Arc::clone(existing);
        }
        let shared: Arc<str> = Arc::from(text);
        strings.insert(Arc::clone(&shared));
        shared
    }

    /// Drops every string that only the interner still holds; returns how many.
    pub fn purge_unused(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let mut strings = lock(shard);
                let before = strings.len();
                strings.retain(|text| Arc::strong_count(text) > 1);
                before - strings.len()
            })
            .sum()
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_copy() {
        let interner = Interner::default();
        let a = interner.intern("kube-system");
        let b = interner.intern(&String::from("kube-system"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(interner.len(), 1);
    }

    #[test]
    fn unused_strings_are_purged_and_used_ones_kept() {
        let interner = Interner::default();
        let kept = interner.intern("namespace");
        drop(interner.intern("pod-1234"));
        assert_eq!(interner.purge_unused(), 1);
        assert_eq!(interner.len(), 1);
        assert!(Arc::ptr_eq(&kept, &interner.intern("namespace")));
    }
}
