//! The cache in front of the database: `linemap::Cache` with a TTL, read through its async
//! cache-aside loader, kept consistent by versions.
//!
//! * A read misses into [`linemap::Cache::get_or_try_insert_async`]: concurrent misses on one
//!   user run one query, a database error goes back to the caller (a 5xx) and is not cached,
//!   and a missing user is cached as [`Cached::Missing`] (a 404) for the same TTL.
//! * Every profile carries its row's version (incremented by each write). After a load, the
//!   loaded value is re-stored with [`linemap::Cache::insert_versioned`] at its row version.
//! * A write stores the new profile with `insert_versioned` on the instance that wrote it;
//!   a notice `(id, version)` from another instance is applied with
//!   [`linemap::Cache::remove_versioned`]: it removes only what is older, so notices that
//!   arrive late or out of order never remove a newer value and never leave an older one.
//! * The loader stores what it read with version 0 (the async loader has no versioned
//!   form), and a notice may come while a query is running (the query read the row before the
//!   write committed). So the layer remembers the highest version each notice announced
//!   ([`Announced`]) and, after a load, drops a value older than that and loads again.

use crate::db::{Database, DbError, Profile};
use axum::body::Bytes;
use linemap::Cache;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A profile as cached: the row version and the JSON body served for it.
#[derive(Debug)]
pub struct CachedProfile {
    /// The row's version.
    pub version: u64,
    /// The response body (serialized once, when loaded).
    pub body: Bytes,
}

/// A cache entry: a profile, or the knowledge that the user does not exist.
#[derive(Debug, Clone)]
pub enum Cached {
    /// The user exists.
    Found(Arc<CachedProfile>),
    /// No such user (a 404; cached like a profile, for the same TTL).
    Missing,
}

impl Cached {
    /// The version of the row this entry was read from (0 for [`Cached::Missing`]).
    pub fn version(&self) -> u64 {
        match self {
            Cached::Found(p) => p.version,
            Cached::Missing => 0,
        }
    }

    fn from_row(row: Option<Profile>) -> Result<Cached, DbError> {
        match row {
            None => Ok(Cached::Missing),
            Some(p) => {
                let body = serde_json::to_vec(&p)
                    .map_err(|e| DbError(format!("cannot serialize profile: {e}")))?;
                Ok(Cached::Found(Arc::new(CachedProfile {
                    version: p.version,
                    body: Bytes::from(body),
                })))
            }
        }
    }
}

/// How a read was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From the cache.
    Hit,
    /// This request ran the query (or waited for another request's query for the same key).
    Loaded,
    /// The cache is off (`--no-cache`).
    Uncached,
}

impl Source {
    /// The `x-cache` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Hit => "hit",
            Source::Loaded => "miss",
            Source::Uncached => "off",
        }
    }
}

/// The highest version announced by a notice or a write, per user.
///
/// Grows with the number of distinct users written (16 bytes each); a service with a huge
/// write set would age these out after the TTL, since a load that starts after a notice's
/// TTL has passed reads a committed row anyway.
#[derive(Default)]
pub struct Announced {
    shards: [Mutex<HashMap<u64, u64>>; 16],
}

impl Announced {
    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, u64>> {
        &self.shards[(id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize]
    }

    /// The highest version announced for `id` (0 if none).
    pub fn get(&self, id: u64) -> u64 {
        match self.shard(id).lock() {
            Ok(m) => m.get(&id).copied().unwrap_or(0),
            Err(p) => p.into_inner().get(&id).copied().unwrap_or(0),
        }
    }

    /// Raises the version announced for `id` to at least `version`.
    pub fn raise(&self, id: u64, version: u64) {
        let mut m = match self.shard(id).lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let v = m.entry(id).or_insert(0);
        *v = (*v).max(version);
    }
}

/// Counters of the cache layer (besides `linemap`'s own [`linemap::cache::CacheStats`]).
#[derive(Debug, Default)]
pub struct LayerCounters {
    /// Notices applied (they removed an older entry or found none).
    pub notices_applied: AtomicU64,
    /// Notices that found a newer entry and left it (out-of-order or duplicate notices).
    pub notices_stale: AtomicU64,
    /// Loaded values dropped because a newer version was announced during the load.
    pub loads_superseded: AtomicU64,
}

/// The read path's cache, or none (`--no-cache`).
pub struct ProfileCache {
    db: Database,
    cache: Option<Cache<u64, Cached>>,
    ttl: Duration,
    announced: Announced,
    counters: LayerCounters,
}

/// How many times a read loads again when a newer version was announced during its load
/// before it serves a direct database read instead.
const MAX_RELOADS: usize = 3;

impl ProfileCache {
    /// A cache of `capacity` profiles expiring `ttl` after they are stored, in front of `db`;
    /// `enabled: false` sends every read to the database.
    pub fn new(db: Database, capacity: usize, ttl: Duration, enabled: bool) -> ProfileCache {
        let cache = enabled.then(|| Cache::builder(capacity).time_to_live(ttl).build());
        ProfileCache {
            db,
            cache,
            ttl,
            announced: Announced::default(),
            counters: LayerCounters::default(),
        }
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The underlying cache (None with `--no-cache`).
    pub fn cache(&self) -> Option<&Cache<u64, Cached>> {
        self.cache.as_ref()
    }

    /// The layer's counters.
    pub fn counters(&self) -> &LayerCounters {
        &self.counters
    }

    /// User `id`'s profile, through the cache.
    pub async fn get(&self, id: u64) -> Result<(Cached, Source), DbError> {
        let Some(cache) = &self.cache else {
            let row = self.db.load_profile(id).await?;
            return Ok((Cached::from_row(row)?, Source::Uncached));
        };
        for _ in 0..MAX_RELOADS {
            let loaded = AtomicBool::new(false);
            let value = cache
                .get_or_try_insert_async(id, async {
                    loaded.store(true, Ordering::Relaxed);
                    Cached::from_row(self.db.load_profile(id).await?)
                })
                .await?;
            if !loaded.load(Ordering::Relaxed) {
                // A hit, or the value another request's load produced.
                return Ok((value, Source::Hit));
            }
            if self.settle(cache, id, &value) {
                return Ok((value, Source::Loaded));
            }
            self.counters
                .loads_superseded
                .fetch_add(1, Ordering::Relaxed);
        }
        let row = self.db.load_profile(id).await?;
        Ok((Cached::from_row(row)?, Source::Loaded))
    }

    /// After this request loaded `value` for `id` (the loader stored it with version 0):
    /// stores it at its row version, or drops it if a newer version was announced while it
    /// loaded. Returns whether it is current.
    fn settle(&self, cache: &Cache<u64, Cached>, id: u64, value: &Cached) -> bool {
        let v = value.version();
        if self.announced.get(id) > v {
            cache.remove_versioned(&id, v);
            return false;
        }
        if v > 0 {
            cache.insert_versioned(id, value.clone(), v);
        }
        // A notice that announced a newer version after the check above either is seen here,
        // or removes what was just stored (it raises `announced` before it removes).
        if self.announced.get(id) > v {
            cache.remove_versioned(&id, v);
            return false;
        }
        true
    }

    /// Stores `profile`, which this instance just wrote, at its version (so this instance
    /// reads its own write at once), and returns the cache value for it.
    pub fn store_written(&self, profile: Profile) -> Result<Cached, DbError> {
        let (id, v) = (profile.id, profile.version);
        let value = Cached::from_row(Some(profile))?;
        self.announced.raise(id, v);
        if let Some(cache) = &self.cache {
            cache.insert_versioned(id, value.clone(), v);
        }
        Ok(value)
    }

    /// Applies another instance's notice that user `id` was written at `version`: removes
    /// an entry older than `version`, keeps a newer one. Returns whether it was applied
    /// (false: a newer entry was kept, the notice was stale).
    pub fn apply_notice(&self, id: u64, version: u64) -> bool {
        self.announced.raise(id, version);
        let Some(cache) = &self.cache else {
            return true;
        };
        let removed = cache.remove_versioned(&id, version);
        // Not removed: either nothing was cached (applied, nothing to do) or a version newer
        // than the notice is cached (stale notice).
        let stale = !removed && cache.contains_key(&id);
        if stale {
            self.counters.notices_stale.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters
                .notices_applied
                .fetch_add(1, Ordering::Relaxed);
        }
        !stale
    }

    /// Empties the cache (after Redis came back: notices sent while it was away are lost).
    pub fn clear(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{generate_sqlite, DatasetSize, UserPatch};

    /// A notice that arrives while a load of the same key is running (the load read the row
    /// before the write committed) must not leave the loaded, older value in the cache.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_notice_during_a_load_does_not_leave_the_older_value() {
        let dir = std::env::temp_dir().join(format!("profile-service-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("p.sqlite");
        generate_sqlite(&path, DatasetSize::SMALL).expect("dataset");
        let db = Database::open(path.to_str().expect("utf-8 path"), 2)
            .await
            .expect("open");
        let layer = ProfileCache::new(db.clone(), 100, Duration::from_secs(600), true);
        let cache = layer.cache().expect("cache on");

        let old = db.load_profile(5).await.expect("read").expect("user 5");
        assert_eq!(old.version, 1);
        let patch = UserPatch {
            name: Some("New".into()),
            ..UserPatch::default()
        };
        let new = db
            .update_user(5, patch)
            .await
            .expect("write")
            .expect("user 5");
        assert_eq!(new.version, 2);

        // The racing load: it read version 1; version 2's notice arrives before it stores.
        let loaded = cache
            .get_or_try_insert_async(5, async {
                layer.apply_notice(5, 2);
                Cached::from_row(Some(old.clone()))
            })
            .await
            .expect("load");
        // The caller gets what it read, but the cache does not keep it: the notice's
        // `remove_versioned` marked the load in flight stale (linemap keeps a value loaded
        // across a removal out of the cache) ...
        assert_eq!(loaded.version(), 1);
        assert!(cache.get(&5).is_none());
        // ... and the layer's settle step, which also covers notices that arrive after the
        // load stored its value, agrees.
        assert!(!layer.settle(cache, 5, &loaded));
        assert!(cache.get(&5).is_none());
        // The next read loads version 2 and keeps it.
        let (v, source) = layer.get(5).await.expect("get");
        assert_eq!((v.version(), source), (2, Source::Loaded));
        let (v, source) = layer.get(5).await.expect("get");
        assert_eq!((v.version(), source), (2, Source::Hit));
        // A late duplicate of the old notice leaves version 2.
        assert!(!layer.apply_notice(5, 1));
        assert_eq!(cache.get(&5).map(|c| c.version()), Some(2));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
