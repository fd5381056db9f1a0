//! [`HashMap`]: the unbounded concurrent map, and [`HashMapRef`], its pinned handle.

mod iter;
mod traits;

pub use iter::{Iter, Keys, Values};

use crate::sync::{pin, Guard};
use crate::table::{Entry, Op, RawTable};
use crate::DefaultHashBuilder;
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

/// A lock-free concurrent hash map, the drop-in replacement for `Mutex<HashMap<K, V>>`.
///
/// Every bucket of the table is one 64-byte cache line holding seven hash tags and seven
/// entry pointers, so a lookup that hits reads two lines (the bucket and the entry) and a
/// miss usually reads one. Lookups, inserts and removes never lock: a thread stalled in the
/// middle of any operation cannot stop the others. The table grows by a cooperative
/// migration; readers keep reading through it, and writers help finish it (any of them can
/// finish all of it) before they continue. Removed entries are reclaimed by epoch-based reclamation
/// (crossbeam-epoch).
///
/// # Two ways to call it
///
/// * Through a pinned handle, [`HashMap::pin`]: the replacement for `.lock().unwrap()`. The
///   handle holds one epoch guard, so its methods return references (`&V`) that stay valid
///   while the handle lives, and a whole batch of operations pays for pinning once.
/// * Directly on the map: each call pins internally and returns owned values (clones) where
///   a reference could not outlive the call. Use this form across `.await` points: a
///   [`HashMapRef`] is not `Send`, and holding one delays the reclamation of everything
///   removed meanwhile.
///
/// ```
/// use linemap::HashMap;
///
/// let map = HashMap::new();
/// let m = map.pin();
/// m.insert("apples", 3);
/// m.insert("pears", 5);
/// assert_eq!(m.get("apples"), Some(&3));
/// m.update_or_insert("apples", |n| n + 1, 1);
/// assert_eq!(m.get("apples"), Some(&4));
/// drop(m);
/// assert_eq!(map.remove("pears"), Some(5));
/// ```
///
/// # Hashing
///
/// The default hasher is foldhash's fast hasher with a random seed per map (as hashbrown's
/// default). It is not a cryptographic hash: it resists casual collisions and keeps an
/// attacker who cannot observe the map's iteration order or timing from choosing colliding
/// keys cheaply, but it makes no HashDoS promise against an adaptive attacker. For untrusted
/// keys at a network edge, use [`HashMap::with_hasher`] with `std::hash::RandomState`
/// (SipHash-1-3), as std's HashMap does by default.
///
/// # Bounds
///
/// Keys and values must be `'static`: removed entries are dropped by the epoch collector,
/// possibly after the map itself is gone. The map is `Send` when `K`, `V` and `S` are `Send`
/// and `Sync` when they are also `Sync` (unlike `Mutex<HashMap>`, several threads read the
/// same `&V` at once, so `V: Sync` is required for soundness).
pub struct HashMap<K, V, S = DefaultHashBuilder> {
    raw: RawTable<K, V>,
    hasher: S,
}

/// A pinned handle to a [`HashMap`]: the map's methods with references as results.
///
/// Created by [`HashMap::pin`]. It holds an epoch guard: references it returns are valid
/// until it is dropped, and entries removed while it lives are not freed until then. It is
/// neither `Send` nor `Sync`; drop it before an `.await` (or use the map's own methods).
///
/// ```
/// let map = linemap::HashMap::new();
/// let m = map.pin(); // was: let m = mutex.lock().unwrap();
/// m.insert("a", 1);
/// let first: &i32 = m.get_or_insert("hits", 0); // valid while `m` lives
/// assert_eq!(*first, 0);
/// m.update("hits", |n| n + 1);
/// assert_eq!(m.get("hits"), Some(&1));
/// drop(m); // before an `.await`
/// ```
pub struct HashMapRef<'m, K, V, S = DefaultHashBuilder> {
    map: &'m HashMap<K, V, S>,
    guard: Guard,
}

impl<K, V> HashMap<K, V, DefaultHashBuilder> {
    /// Creates an empty map. It allocates one bucket (a cache line) and grows as needed.
    ///
    /// ```
    /// let map: linemap::HashMap<u64, String> = linemap::HashMap::new();
    /// assert!(map.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_capacity_and_hasher(0, DefaultHashBuilder::default())
    }

    /// Creates an empty map that holds at least `capacity` entries before it grows.
    ///
    /// # Panics
    /// Panics with "capacity overflow" if the table for `capacity` cannot be addressed.
    ///
    /// ```
    /// let map: linemap::HashMap<u64, u64> = linemap::HashMap::with_capacity(1000);
    /// assert!(map.capacity() >= 1000);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_and_hasher(capacity, DefaultHashBuilder::default())
    }
}

impl<K, V, S> HashMap<K, V, S> {
    /// Creates an empty map that hashes with `hasher`.
    ///
    /// ```
    /// use std::hash::RandomState;
    /// let map: linemap::HashMap<String, u32, RandomState> =
    ///     linemap::HashMap::with_hasher(RandomState::new());
    /// map.pin().insert("k".to_string(), 1);
    /// ```
    pub fn with_hasher(hasher: S) -> Self {
        Self::with_capacity_and_hasher(0, hasher)
    }

    /// Creates an empty map with room for `capacity` entries that hashes with `hasher`.
    ///
    /// # Panics
    /// Panics with "capacity overflow" if the table for `capacity` cannot be addressed.
    ///
    /// ```
    /// use std::hash::RandomState;
    /// let map: linemap::HashMap<u32, u32, RandomState> =
    ///     linemap::HashMap::with_capacity_and_hasher(64, RandomState::new());
    /// assert!(map.capacity() >= 64);
    /// ```
    pub fn with_capacity_and_hasher(capacity: usize, hasher: S) -> Self {
        HashMap {
            raw: RawTable::with_capacity(capacity),
            hasher,
        }
    }

    /// Pins the current thread and returns a handle whose methods return references.
    ///
    /// This is what replaces `.lock().unwrap()`; unlike a lock it never blocks anyone.
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// let m = map.pin();
    /// m.insert(1, "one");
    /// assert_eq!(m.get(&1), Some(&"one"));
    /// ```
    #[inline]
    pub fn pin(&self) -> HashMapRef<'_, K, V, S> {
        HashMapRef {
            map: self,
            guard: pin(),
        }
    }

    /// The number of entries. Under concurrent writes it is a value the count held or passed
    /// through recently.
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// map.insert(1, 1);
    /// assert_eq!(map.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the map has no entries (see [`len`](Self::len) under concurrency).
    ///
    /// ```
    /// let map: linemap::HashMap<u8, u8> = linemap::HashMap::new();
    /// assert!(map.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries the current table is sized for. Growth is triggered by probe
    /// overflows, not by this number, and with well-spread hashes starts a little above it.
    ///
    /// ```
    /// let map: linemap::HashMap<u8, u8> = linemap::HashMap::with_capacity(100);
    /// assert!(map.capacity() >= 100);
    /// ```
    pub fn capacity(&self) -> usize {
        self.raw.capacity(&pin())
    }

    /// The map's hasher.
    ///
    /// ```
    /// let map: linemap::HashMap<u8, u8> = linemap::HashMap::new();
    /// let _h = map.hasher();
    /// ```
    pub fn hasher(&self) -> &S {
        &self.hasher
    }
}

impl<K, V, S> HashMap<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    /// Inserts `key -> value`, returning a clone of the value it replaced.
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// assert_eq!(map.insert("a", 1), None);
    /// assert_eq!(map.insert("a", 2), Some(1));
    /// ```
    pub fn insert(&self, key: K, value: V) -> Option<V>
    where
        V: Clone,
    {
        self.pin().insert(key, value).cloned()
    }

    /// A clone of the value for `key`.
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// map.insert(7, "seven".to_string());
    /// assert_eq!(map.get(&7).as_deref(), Some("seven"));
    /// ```
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.pin().get(key).cloned()
    }

    /// Whether the map holds `key`.
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// map.insert(1, ());
    /// assert!(map.contains_key(&1));
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.pin().contains_key(key)
    }

    /// Removes `key`, returning a clone of its value.
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// map.insert(1, 10);
    /// assert_eq!(map.remove(&1), Some(10));
    /// assert_eq!(map.remove(&1), None);
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.pin().remove(key).cloned()
    }

    /// Returns a clone of the value for `key`, inserting `make()` first if it is absent.
    /// `make` runs at most once, and only when the key was absent when it was called.
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// assert_eq!(map.get_or_insert_with("k", || 1), 1);
    /// assert_eq!(map.get_or_insert_with("k", || 2), 1);
    /// ```
    pub fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> V
    where
        V: Clone,
    {
        self.pin().get_or_insert_with(key, make).clone()
    }

    /// Atomically replaces the value for `key` with `f(&old)`, returning a clone of the new
    /// value, or `None` if the key is absent. `f` may run more than once under contention.
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// map.insert("n", 1);
    /// assert_eq!(map.update("n", |n| n * 10), Some(10));
    /// assert_eq!(map.update("missing", |n| n * 10), None);
    /// ```
    pub fn update<Q>(&self, key: &Q, f: impl Fn(&V) -> V) -> Option<V>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.pin().update(key, f).cloned()
    }

    /// Atomically sets `key` to `f(&old)` if present, or to `default` if absent; returns a
    /// clone of the new value. The lock-free form of `*entry(k).or_insert(d) = f(..)`.
    ///
    /// ```
    /// let counts = linemap::HashMap::new();
    /// for word in ["a", "b", "a"] {
    ///     counts.update_or_insert(word, |n| n + 1, 1);
    /// }
    /// assert_eq!(counts.get("a"), Some(2));
    /// ```
    pub fn update_or_insert(&self, key: K, f: impl Fn(&V) -> V, default: V) -> V
    where
        K: Clone,
        V: Clone,
    {
        self.pin().update_or_insert(key, f, default).clone()
    }

    /// Keeps only the entries for which `keep` returns true (see [`HashMapRef::retain`]).
    ///
    /// ```
    /// let map: linemap::HashMap<u32, u32> = (0..10).map(|i| (i, i)).collect();
    /// map.retain(|_, v| v % 2 == 0);
    /// assert_eq!(map.len(), 5);
    /// ```
    pub fn retain(&self, keep: impl FnMut(&K, &V) -> bool) {
        self.pin().retain(keep)
    }

    /// Removes every entry (see [`HashMapRef::clear`]).
    ///
    /// ```
    /// let map: linemap::HashMap<u32, u32> = (0..10).map(|i| (i, i)).collect();
    /// map.clear();
    /// assert!(map.is_empty());
    /// ```
    pub fn clear(&self) {
        self.pin().clear()
    }
}

impl<'m, K, V, S> HashMapRef<'m, K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    #[inline(always)]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.map.hasher.hash_one(key)
    }

    /// The map this handle pins.
    ///
    /// ```
    /// let map: linemap::HashMap<u8, u8> = linemap::HashMap::new();
    /// assert!(std::ptr::eq(map.pin().map(), &map));
    /// ```
    pub fn map(&self) -> &'m HashMap<K, V, S> {
        self.map
    }

    /// The value for `key`.
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// let m = map.pin();
    /// m.insert("k".to_string(), 1);
    /// assert_eq!(m.get("k"), Some(&1)); // &str looks up String keys, as in std
    /// ```
    #[inline(always)]
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value(key).map(|(_, v)| v)
    }

    /// The stored key and value for `key`.
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// let m = map.pin();
    /// m.insert(1, 'a');
    /// assert_eq!(m.get_key_value(&1), Some((&1, &'a')));
    /// ```
    #[inline(always)]
    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.map
            .raw
            .find(hash, |k| k.borrow() == key, &self.guard)
            .map(|e| (&e.key, &e.value))
    }

    /// Whether the map holds `key`.
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// let m = map.pin();
    /// m.insert(1, ());
    /// assert!(m.contains_key(&1) && !m.contains_key(&2));
    /// ```
    #[inline]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value(key).is_some()
    }

    /// Inserts `key -> value`; returns the value it replaced.
    ///
    /// The whole entry is replaced atomically, so the stored key becomes `key` (std keeps
    /// the old key object; for keys whose equal values are interchangeable this is the same).
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// let m = map.pin();
    /// assert_eq!(m.insert(1, "a"), None);
    /// assert_eq!(m.insert(1, "b"), Some(&"a"));
    /// ```
    pub fn insert(&self, key: K, value: V) -> Option<&V> {
        let hash = self.hash(&key);
        let mut fresh = Some(crate::reclaim::boxed(Entry { key, value }));
        let kp: *const K = &fresh.as_ref().expect("entry").key;
        let (old, _) = self.map.raw.rmw(
            hash,
            // SAFETY: the entry's heap allocation does not move: it is owned by `fresh`, by
            // `rmw` (as `spare`), or installed in the table, which returns at once; it is
            // freed only after our guard is dropped.
            |k| k == unsafe { &*kp },
            |_, spare| Op::Put(spare.or_else(|| fresh.take()).expect("entry")),
            &|k: &K| self.hash(k),
            &self.guard,
        );
        old.map(|e| &e.value)
    }

    /// Removes `key`; returns its value (valid while this handle lives).
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// let m = map.pin();
    /// m.insert(1, "a");
    /// assert_eq!(m.remove(&1), Some(&"a"));
    /// assert_eq!(m.remove(&1), None);
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_entry(key).map(|(_, v)| v)
    }

    /// Removes `key`; returns the stored key and value.
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// let m = map.pin();
    /// m.insert(1, "a");
    /// assert_eq!(m.remove_entry(&1), Some((&1, &"a")));
    /// ```
    pub fn remove_entry<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let (old, _) = self.map.raw.rmw(
            hash,
            |k| k.borrow() == key,
            |cur, _| if cur.is_some() { Op::Remove } else { Op::Keep },
            &|k: &K| self.hash(k),
            &self.guard,
        );
        old.map(|e| (&e.key, &e.value))
    }

    /// The value for `key`, inserting `value` first if the key is absent.
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// let m = map.pin();
    /// assert_eq!(m.get_or_insert(1, 10), &10);
    /// assert_eq!(m.get_or_insert(1, 20), &10);
    /// ```
    pub fn get_or_insert(&self, key: K, value: V) -> &V {
        self.get_or_insert_with(key, || value)
    }

    /// The value for `key`, inserting `make()` first if the key is absent. `make` runs at
    /// most once, and only if the key was absent when it was called (another thread may
    /// still insert first, in which case its value is returned and ours dropped).
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// let m = map.pin();
    /// assert_eq!(m.get_or_insert_with("k", || vec![1]), &vec![1]);
    /// ```
    pub fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> &V {
        let hash = self.hash(&key);
        if let Some(e) = self.map.raw.find(hash, |k| *k == key, &self.guard) {
            return &e.value;
        }
        let mut make = Some(make);
        let mut key = Some(key);
        // Where the key lives now: in `key`, then inside the entry built from it.
        let kp = std::cell::Cell::new(key.as_ref().expect("key") as *const K);
        let (_, new) = self.map.raw.rmw(
            hash,
            // SAFETY: `kp` points at the key in `key` or, once moved, in the entry's heap
            // allocation, which stays put until the table frees it after our guard drops.
            |k| k == unsafe { &*kp.get() },
            |cur, spare| match cur {
                Some(_) => Op::Keep,
                None => Op::Put(spare.unwrap_or_else(|| {
                    let value = (make.take().expect("make runs once"))();
                    let entry = crate::reclaim::boxed(Entry {
                        key: key.take().expect("key"),
                        value,
                    });
                    kp.set(&entry.key);
                    entry
                })),
            },
            &|k: &K| self.hash(k),
            &self.guard,
        );
        &new.expect("present after get_or_insert").value
    }

    /// Atomically replaces the value for `key` with `f(&old)`; returns the new value, or
    /// `None` if the key is absent. `f` may run more than once if other threads write the
    /// same key at the same time; only one result is installed.
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// let m = map.pin();
    /// m.insert("n", 1);
    /// assert_eq!(m.update("n", |n| n + 1), Some(&2));
    /// ```
    pub fn update<Q>(&self, key: &Q, f: impl Fn(&V) -> V) -> Option<&V>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let (_, new) = self.map.raw.rmw(
            hash,
            |k| k.borrow() == key,
            |cur, _spare| match cur {
                // The stored key is cloned into the new entry: `update` never inserts, so
                // it can take the key by reference.
                Some(e) => Op::Put(crate::reclaim::boxed(Entry {
                    key: e.key.clone(),
                    value: f(&e.value),
                })),
                None => Op::Keep,
            },
            &|k: &K| self.hash(k),
            &self.guard,
        );
        new.map(|e| &e.value)
    }

    /// Atomically sets `key` to `f(&old)` if present, or to `default` if absent; returns the
    /// new value.
    ///
    /// This is the one-line lock-free form of `*m.lock().unwrap().entry(k).or_insert(0) += 1`:
    ///
    /// ```
    /// let counts = linemap::HashMap::new();
    /// let m = counts.pin();
    /// m.update_or_insert("word", |n| n + 1, 1);
    /// m.update_or_insert("word", |n| n + 1, 1);
    /// assert_eq!(m.get("word"), Some(&2));
    /// ```
    pub fn update_or_insert(&self, key: K, f: impl Fn(&V) -> V, default: V) -> &V
    where
        K: Clone,
    {
        let hash = self.hash(&key);
        let mut default = Some(default);
        let mut spare_holds_default = false;
        let (_, new) = self.map.raw.rmw(
            hash,
            |k| *k == key,
            |cur, spare| {
                // A failed attempt hands back its entry: recover the default if it was in it.
                if let (true, Some(entry)) = (spare_holds_default, spare) {
                    default = Some(entry.value);
                }
                spare_holds_default = cur.is_none();
                let value = match cur {
                    Some(e) => f(&e.value),
                    None => default
                        .take()
                        .expect("default recovered after each attempt"),
                };
                Op::Put(crate::reclaim::boxed(Entry {
                    key: key.clone(),
                    value,
                }))
            },
            &|k: &K| self.hash(k),
            &self.guard,
        );
        &new.expect("present after update_or_insert").value
    }

    /// Atomically computes the new state of `key` from its current value: `f` returns
    /// `Some(v)` to store `v` or `None` to remove (or keep absent). Returns the value stored
    /// afterwards. `f` may run more than once if other threads write the same key at the
    /// same time; only the result computed from the value actually replaced is installed.
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// let m = map.pin();
    /// m.compute(1, |_| Some(5));
    /// assert_eq!(m.compute(1, |v| v.map(|v| v * 2)), Some(&10));
    /// assert_eq!(m.compute(1, |_| None), None);
    /// assert!(m.is_empty());
    /// ```
    pub fn compute(&self, key: K, mut f: impl FnMut(Option<&V>) -> Option<V>) -> Option<&V>
    where
        K: Clone,
    {
        let hash = self.hash(&key);
        let (_, new) = self.map.raw.rmw(
            hash,
            |k| *k == key,
            |cur, _spare| match f(cur.map(|e| &e.value)) {
                Some(value) => Op::Put(crate::reclaim::boxed(Entry {
                    key: key.clone(),
                    value,
                })),
                None if cur.is_some() => Op::Remove,
                None => Op::Keep,
            },
            &|k: &K| self.hash(k),
            &self.guard,
        );
        new.map(|e| &e.value)
    }

    /// Keeps only the entries for which `keep` returns true.
    ///
    /// Not atomic as a whole: each entry is tested and removed on its own, so entries
    /// inserted concurrently may or may not be visited. An entry replaced between the test
    /// and the removal is kept (the new value was not tested).
    ///
    /// ```
    /// let map: linemap::HashMap<u32, u32> = (0..6).map(|i| (i, i)).collect();
    /// let m = map.pin();
    /// m.retain(|k, _| k % 3 == 0);
    /// assert_eq!(m.len(), 2);
    /// ```
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        let mut doomed = Vec::new();
        self.map.raw.for_each(&self.guard, |e| {
            if !keep(&e.key, &e.value) {
                doomed.push(e as *const Entry<K, V>);
            }
        });
        for p in doomed {
            // SAFETY: p was reachable while we stay pinned, so it is still allocated.
            let e = unsafe { &*p };
            self.map.raw.rmw(
                self.hash(&e.key),
                |k| *k == e.key,
                |cur, _| match cur {
                    Some(c) if std::ptr::eq(c, e) => Op::Remove,
                    _ => Op::Keep,
                },
                &|k: &K| self.hash(k),
                &self.guard,
            );
        }
    }

    /// Removes every entry present when the call began.
    ///
    /// Not atomic as a whole: entries inserted during the call may survive it. With `&mut`
    /// access, [`HashMap::clear_mut`] drops everything at once.
    ///
    /// ```
    /// let map: linemap::HashMap<u32, u32> = (0..6).map(|i| (i, i)).collect();
    /// map.pin().clear();
    /// assert!(map.is_empty());
    /// ```
    pub fn clear(&self) {
        self.retain(|_, _| false);
        // The removed entries go to the global garbage queue now (see `crate::sync::pin`).
        crate::sync::flush_local();
    }

    /// An iterator over the entries (weakly consistent: entries written during the walk may
    /// or may not appear; no entry appears twice, but a key removed and inserted again during
    /// the walk can appear once per entry it had).
    ///
    /// ```
    /// let map: linemap::HashMap<u32, u32> = (0..3).map(|i| (i, i * i)).collect();
    /// let mut pairs: Vec<_> = map.pin().iter().map(|(k, v)| (*k, *v)).collect();
    /// pairs.sort();
    /// assert_eq!(pairs, vec![(0, 0), (1, 1), (2, 4)]);
    /// ```
    pub fn iter(&self) -> Iter<'_, K, V> {
        let mut entries = Vec::new();
        self.map
            .raw
            .for_each(&self.guard, |e| entries.push(e as *const Entry<K, V>));
        Iter::new(entries)
    }

    /// An iterator over the keys.
    ///
    /// ```
    /// let map: linemap::HashMap<u32, ()> = (0..3).map(|i| (i, ())).collect();
    /// assert_eq!(map.pin().keys().count(), 3);
    /// ```
    pub fn keys(&self) -> Keys<'_, K, V> {
        Keys(self.iter())
    }

    /// An iterator over the values.
    ///
    /// ```
    /// let map: linemap::HashMap<u32, u32> = (1..4).map(|i| (i, i)).collect();
    /// assert_eq!(map.pin().values().sum::<u32>(), 6);
    /// ```
    pub fn values(&self) -> Values<'_, K, V> {
        Values(self.iter())
    }

    /// The number of entries (see [`HashMap::len`]).
    ///
    /// ```
    /// let map = linemap::HashMap::new();
    /// let m = map.pin();
    /// m.insert(1, 1);
    /// assert_eq!(m.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty (see [`HashMap::len`]).
    ///
    /// ```
    /// let map: linemap::HashMap<u8, u8> = linemap::HashMap::new();
    /// assert!(map.pin().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<K, V, S> HashMap<K, V, S> {
    /// Removes every entry at once, with exclusive access; keeps the capacity.
    ///
    /// ```
    /// let mut map: linemap::HashMap<u32, u32> = (0..6).map(|i| (i, i)).collect();
    /// map.clear_mut();
    /// assert!(map.is_empty());
    /// ```
    pub fn clear_mut(&mut self) {
        self.raw.clear_mut();
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
