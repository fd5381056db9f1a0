//! Standard trait implementations for [`HashMap`].

use super::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};

impl<K, V, S: Default> Default for HashMap<K, V, S> {
    fn default() -> Self {
        HashMap::with_hasher(S::default())
    }
}

impl<K, V, S> fmt::Debug for HashMap<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static + fmt::Debug,
    V: Send + Sync + 'static + fmt::Debug,
    S: BuildHasher,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.pin().iter()).finish()
    }
}

impl<K, V, S> Clone for HashMap<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static + Clone,
    V: Send + Sync + 'static + Clone,
    S: BuildHasher + Clone,
{
    fn clone(&self) -> Self {
        let m = self.pin();
        let out = HashMap::with_capacity_and_hasher(m.len(), self.hasher.clone());
        {
            let o = out.pin();
            for (k, v) in m.iter() {
                o.insert(k.clone(), v.clone());
            }
        }
        out
    }
}

impl<K, V, S> PartialEq for HashMap<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static + PartialEq,
    S: BuildHasher,
{
    /// Equal when both hold the same keys with equal values (a snapshot comparison under
    /// concurrent writes).
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.pin(), other.pin());
        a.len() == b.len() && a.iter().all(|(k, v)| b.get(k) == Some(v))
    }
}

impl<K, V, S> Eq for HashMap<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static + Eq,
    S: BuildHasher,
{
}

impl<K, V, S> Extend<(K, V)> for HashMap<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        let mut shared: &Self = self;
        shared.extend(iter);
    }
}

impl<K, V, S> Extend<(K, V)> for &HashMap<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    /// Inserts through a shared reference, so several threads can extend one map.
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        let m = self.pin();
        for (k, v) in iter {
            m.insert(k, v);
        }
    }
}

impl<K, V, S> FromIterator<(K, V)> for HashMap<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher + Default,
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut map = HashMap::with_capacity_and_hasher(iter.size_hint().0, S::default());
        map.extend(iter);
        map
    }
}
