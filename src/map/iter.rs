//! Iterators over a pinned map.

use crate::table::Entry;
use std::marker::PhantomData;

/// An iterator over `(&K, &V)`, created by [`HashMapRef::iter`](crate::HashMapRef::iter).
///
/// It walks a snapshot of the entry pointers taken when it was created; the entries stay
/// valid because the handle that created it is pinned.
///
/// ```
/// let map: linemap::HashMap<u32, u32> = (0..3).map(|i| (i, i * 10)).collect();
/// let m = map.pin();
/// let mut pairs: Vec<(u32, u32)> = m.iter().map(|(k, v)| (*k, *v)).collect();
/// pairs.sort();
/// assert_eq!(pairs, [(0, 0), (1, 10), (2, 20)]);
/// ```
pub struct Iter<'g, K, V> {
    entries: std::vec::IntoIter<*const Entry<K, V>>,
    _guard: PhantomData<&'g (K, V)>,
}

impl<K, V> Iter<'_, K, V> {
    pub(crate) fn new(entries: Vec<*const Entry<K, V>>) -> Self {
        Iter {
            entries: entries.into_iter(),
            _guard: PhantomData,
        }
    }
}

impl<'g, K, V> Iterator for Iter<'g, K, V> {
    type Item = (&'g K, &'g V);

    fn next(&mut self) -> Option<Self::Item> {
        let p = self.entries.next()?;
        // SAFETY: the pointer was read from the table under the handle's guard, which
        // outlives 'g; entries are freed only after that guard is dropped.
        let e = unsafe { &*p };
        Some((&e.key, &e.value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {}

/// An iterator over `&K`, created by [`HashMapRef::keys`](crate::HashMapRef::keys).
///
/// ```
/// let map: linemap::HashMap<u32, &str> = [(2, "b"), (1, "a")].into_iter().collect();
/// let mut keys: Vec<u32> = map.pin().keys().copied().collect();
/// keys.sort();
/// assert_eq!(keys, [1, 2]);
/// ```
pub struct Keys<'g, K, V>(pub(crate) Iter<'g, K, V>);

impl<'g, K, V> Iterator for Keys<'g, K, V> {
    type Item = &'g K;
    fn next(&mut self) -> Option<&'g K> {
        self.0.next().map(|(k, _)| k)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

/// An iterator over `&V`, created by [`HashMapRef::values`](crate::HashMapRef::values).
///
/// ```
/// let map: linemap::HashMap<u32, u64> = (1..=4).map(|i| (i, u64::from(i))).collect();
/// assert_eq!(map.pin().values().sum::<u64>(), 10);
/// ```
pub struct Values<'g, K, V>(pub(crate) Iter<'g, K, V>);

impl<'g, K, V> Iterator for Values<'g, K, V> {
    type Item = &'g V;
    fn next(&mut self) -> Option<&'g V> {
        self.0.next().map(|(_, v)| v)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}
