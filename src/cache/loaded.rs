//! [`Loaded`]: what a loader hands back when its value needs its own time-to-live or version.

use std::time::Duration;

/// A loaded value and how to store it, returned by the loader of
/// [`Cache::get_or_try_load`](crate::Cache::get_or_try_load) (and its async form).
///
/// * `ttl`: the value's own time-to-live, as [`Cache::insert_with_ttl`](crate::Cache::insert_with_ttl)
///   takes it (`None`: the cache's default, if it has one).
/// * `version`: the version of the source the value was read at. With a version the value is
///   stored over an absent (or expired) entry **or one of a lower version**, as
///   [`Cache::insert_versioned`](crate::Cache::insert_versioned) would store it; so a slow load
///   of version 5 never replaces version 6 that a write stored meanwhile, and a load of version
///   6 does replace a stale version 5. Without a version it is stored only over an absent
///   (or expired) entry: a value written while the load ran is taken to be newer.
///
/// Either way the loading caller and the callers waiting on its load get the value, stored
/// or not, and a removal of the key during the load keeps it out of the cache (see the
/// cache-aside section of the [`cache`](crate::cache) guide).
///
/// ```
/// use linemap::cache::Loaded;
/// use std::time::Duration;
///
/// let cache: linemap::Cache<u32, String> = linemap::Cache::new(100);
/// let v = cache.get_or_try_load(7, || {
///     // While the row is read (at version 5), a writer stores version 6:
///     cache.insert_versioned(7, "written at v6".to_string(), 6);
///     Ok::<_, ()>(Loaded::new("read at v5".to_string()).with_version(5))
/// });
/// assert_eq!(v.as_deref(), Ok("read at v5")); // the caller gets what it read
/// assert_eq!(cache.get(&7).as_deref(), Some("written at v6")); // the cache keeps the newer
///
/// // A value with its own time-to-live (e.g. from an upstream Cache-Control header):
/// let v = cache.get_or_try_load(8, || {
///     Ok::<_, ()>(Loaded::new("short-lived".to_string()).with_ttl(Duration::from_secs(5)))
/// });
/// assert!(v.is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded<V> {
    /// The value.
    pub value: V,
    /// Its own time-to-live; `None` for the cache's default.
    pub ttl: Option<Duration>,
    /// The source version it was read at; `None` for an unversioned value.
    pub version: Option<u64>,
}

impl<V> Loaded<V> {
    /// `value`, with the cache's default time-to-live and no version.
    ///
    /// ```
    /// use linemap::cache::Loaded;
    ///
    /// let l = Loaded::new("row");
    /// assert_eq!((l.value, l.ttl, l.version), ("row", None, None));
    /// ```
    pub fn new(value: V) -> Self {
        Loaded {
            value,
            ttl: None,
            version: None,
        }
    }

    /// Gives the value its own time-to-live.
    ///
    /// ```
    /// use linemap::cache::{Loaded, ManualClock};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let clock = Arc::new(ManualClock::new());
    /// let cache = linemap::Cache::builder(10).clock(Arc::clone(&clock)).build();
    /// let token = cache.get_or_try_load("token", || {
    ///     Ok::<_, ()>(Loaded::new(7).with_ttl(Duration::from_secs(30)))
    /// });
    /// assert_eq!(token, Ok(7));
    /// clock.advance(Duration::from_secs(30));
    /// assert_eq!(cache.get("token"), None); // expired with its own time-to-live
    /// ```
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Records the source version the value was read at.
    ///
    /// ```
    /// use linemap::cache::Loaded;
    ///
    /// let cache = linemap::Cache::new(10);
    /// cache.insert_versioned(1, "written at v5", 5);
    /// cache.remove(&1);
    /// // A load that read the source at v4 is stored with its version...
    /// let v = cache.get_or_try_load(1, || Ok::<_, ()>(Loaded::new("read at v4").with_version(4)));
    /// assert_eq!(v, Ok("read at v4"));
    /// // ...so that a late notice of an older write cannot replace it.
    /// assert!(!cache.insert_versioned(1, "written at v3", 3));
    /// ```
    pub fn with_version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }
}

impl<V> From<V> for Loaded<V> {
    fn from(value: V) -> Self {
        Loaded::new(value)
    }
}
