//! A small bounded memo for the Cedar inputs a decision builds: entity stores and
//! contexts. Both are pure functions of their key (the key holds every input that goes
//! into them), so a remembered value is exactly what building it again would give; they
//! do not depend on the policies, so a reload need not clear them.
//!
//! Why: Cedar spends more time building a three-entity store (transitive closure over
//! hashed entity ids) and a twelve-attribute context than evaluating the built-in policies
//! for a read, and callers repeat themselves (an agent asks about the same tables, with
//! the same token, many times).
//!
//! Bounded by clearing: when full, the next insertion starts over. Crude, but it keeps
//! memory bounded without bookkeeping on the hot path, and a cleared memo only costs the
//! next few decisions their build time.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

pub(super) struct Memo<K, V> {
    /// A std `Mutex`: it is held only for a lookup or an insertion, never while building.
    map: Mutex<HashMap<K, V>>,
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> Memo<K, V> {
    pub(super) fn new(capacity: usize) -> Memo<K, V> {
        Memo {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The remembered value for `key`, or the one `build` makes from it (remembered when
    /// it succeeds). Two threads missing the same key both build; the later insertion wins,
    /// and both values are equal.
    pub(super) fn get_or_build<E>(
        &self,
        key: K,
        build: impl FnOnce(&K) -> Result<V, E>,
    ) -> Result<V, E> {
        // A panic while the lock was held cannot leave the map half-updated in a way that
        // matters: every entry is a complete value for its key.
        if let Some(value) = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Ok(value.clone());
        }
        let value = build(&key)?;
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(key, value.clone());
        Ok(value)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}
