//! linemap: a lock-free concurrent hash map built around the CPU's cache lines.
//!
//! Each bucket of the table is one 64-byte cache line: a control word of seven one-byte hash
//! tags and seven entry pointers. A lookup matches all seven tags at once and dereferences
//! only a matching slot, so a hit reads two lines (bucket and entry) and a miss usually one.
//! Reads and writes are lock-free; removed entries are reclaimed with crossbeam-epoch; the
//! table grows by a cooperative migration that a stalled thread cannot block.
//!
//! [`HashMap`] replaces `Mutex<HashMap<K, V>>`: change the type and replace
//! `.lock().unwrap()` with [`.pin()`](HashMap::pin).
//!
//! [`Cache`] is the bounded in-process cache on the same table: CLOCK eviction, per-entry
//! time-to-live, cache-aside loading where concurrent misses on a key run one load,
//! versioned inserts, an eviction listener and statistics (see the [`cache`] module).
//!
//! ```
//! use linemap::HashMap;
//! use std::sync::Arc;
//!
//! let map = Arc::new(HashMap::new());
//! let handles: Vec<_> = (0..4)
//!     .map(|t| {
//!         let map = Arc::clone(&map);
//!         std::thread::spawn(move || {
//!             for i in 0..1000 {
//!                 map.pin().update_or_insert(i % 10, |n| n + 1, 1);
//!             }
//!             t
//!         })
//!     })
//!     .collect();
//! for h in handles {
//!     h.join().unwrap();
//! }
//! assert_eq!(map.pin().values().sum::<u32>(), 4000);
//! ```
#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn)]

pub mod cache;
mod clock;
mod counter;
mod map;
mod reclaim;
mod sync;
#[cfg(loom)]
#[doc(hidden)]
pub use sync::__loom_knobs;
mod table;

pub use cache::Cache;
pub use map::{HashMap, HashMapRef, Iter, Keys, Values};

/// The default hasher: foldhash's fast hasher, seeded randomly per map.
///
/// See [`HashMap`]'s "Hashing" section for what it does and does not protect against.
///
/// ```
/// use std::hash::BuildHasher;
///
/// let a = linemap::DefaultHashBuilder::default();
/// let b = linemap::DefaultHashBuilder::default();
/// // Seeded per instance: the same key hashes differently in two maps (with overwhelming
/// // probability), so an attacker cannot precompute colliding keys for every map.
/// assert_ne!(a.hash_one(42u64), b.hash_one(42u64));
/// let map: linemap::HashMap<u64, u64, _> = linemap::HashMap::with_hasher(a);
/// map.insert(1, 2);
/// ```
pub type DefaultHashBuilder = foldhash::fast::RandomState;
