//! Invalidation notices between instances, over Redis pub/sub.
//!
//! The instance that wrote a user publishes `{"id":..,"version":..,"origin":..}` on one
//! channel; every instance subscribes and applies the notices of the others with a versioned
//! remove ([`ProfileCache::apply_notice`]). Pub/sub delivers at most once: a notice sent
//! while an instance is disconnected is lost. So when Redis goes away an instance logs that it
//! falls back to TTL expiry (a profile is then at most one TTL stale), keeps serving, retries
//! the connection, and empties its cache when it is back.

use crate::cache_layer::ProfileCache;
use crate::log;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// An invalidation notice: user `id` was written and is now at `version`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Notice {
    /// User id.
    pub id: u64,
    /// The row's version after the write.
    pub version: u64,
    /// The instance that wrote it (it does not apply its own notices). Empty for notices from
    /// elsewhere (a batch job, a test).
    #[serde(default)]
    pub origin: String,
}

/// The default channel.
pub const DEFAULT_CHANNEL: &str = "profile-service:invalidations";

/// How long a publish may take before the write gives up on notifying (the write itself
/// has committed; the other instances then rely on the TTL).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// Counters of the invalidation channel.
#[derive(Debug, Default)]
pub struct BusCounters {
    /// Notices published.
    pub published: AtomicU64,
    /// Notices that could not be published (Redis unreachable).
    pub publish_errors: AtomicU64,
    /// Notices received from other instances.
    pub received: AtomicU64,
    /// Times the subscription was (re)established.
    pub connects: AtomicU64,
}

/// The link to Redis: a publisher and a subscriber task.
pub struct Bus {
    client: redis::Client,
    url: String,
    channel: String,
    origin: String,
    publisher: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    connected: AtomicBool,
    counters: BusCounters,
}

impl Bus {
    /// A bus on Redis at `url` (not connected yet), for the instance named `origin`.
    pub fn new(url: &str, channel: &str, origin: &str) -> Result<Bus, String> {
        let client = redis::Client::open(url).map_err(|e| format!("bad Redis URL {url:?}: {e}"))?;
        Ok(Bus {
            client,
            url: crate::redact(url),
            channel: channel.to_string(),
            origin: origin.to_string(),
            publisher: tokio::sync::Mutex::new(None),
            connected: AtomicBool::new(false),
            counters: BusCounters::default(),
        })
    }

    /// Whether the subscription is up.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// The counters.
    pub fn counters(&self) -> &BusCounters {
        &self.counters
    }

    /// Publishes that user `id` is now at `version`. An error means the other instances
    /// will see the write only when their entry expires.
    pub async fn publish(&self, id: u64, version: u64) -> Result<(), String> {
        let payload = serde_json::to_string(&Notice {
            id,
            version,
            origin: self.origin.clone(),
        })
        .map_err(|e| e.to_string())?;
        let r = tokio::time::timeout(PUBLISH_TIMEOUT, self.publish_raw(&payload))
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
        match &r {
            Ok(()) => self.counters.published.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.counters.publish_errors.fetch_add(1, Ordering::Relaxed),
        };
        r
    }

    async fn publish_raw(&self, payload: &str) -> Result<(), String> {
        let mut slot = self.publisher.lock().await;
        // A kept connection may have died with a Redis restart: then try once more on a
        // fresh one.
        let mut kept = slot.take();
        loop {
            let fresh = kept.is_none();
            let mut conn = match kept.take() {
                Some(c) => c,
                None => self
                    .client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| e.to_string())?,
            };
            let r: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(payload)
                .query_async(&mut conn)
                .await;
            match r {
                Ok(_) => {
                    *slot = Some(conn);
                    return Ok(());
                }
                // The connection is dropped: the next attempt reconnects.
                Err(e) if fresh => return Err(e.to_string()),
                Err(_) => {}
            }
        }
    }

    /// Runs the subscriber until the process ends: applies other instances' notices to
    /// `cache`, and reconnects (with backoff) whenever the connection is lost.
    pub fn spawn_subscriber(self: Arc<Self>, cache: Arc<ProfileCache>) {
        tokio::spawn(async move { self.subscribe_forever(&cache).await });
    }

    async fn subscribe_forever(&self, cache: &ProfileCache) {
        let ttl = cache.ttl();
        // Whether notices may have been missed since the last connection (or since start,
        // when the first attempts failed).
        let mut missed = false;
        let mut said_down = false;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.subscribe_once().await {
                Ok(mut pubsub) => {
                    backoff = Duration::from_millis(100);
                    self.connected.store(true, Ordering::SeqCst);
                    self.counters.connects.fetch_add(1, Ordering::Relaxed);
                    if missed {
                        cache.clear();
                        log!(
                            "invalidation: reconnected to Redis at {}; cache cleared (notices sent while it was away are lost); invalidation by notice resumed",
                            self.url
                        );
                    } else {
                        log!(
                            "invalidation: subscribed to {} on Redis at {}",
                            self.channel,
                            self.url
                        );
                    }
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        self.handle(cache, msg.get_payload_bytes());
                    }
                    self.connected.store(false, Ordering::SeqCst);
                    missed = true;
                    said_down = true;
                    log!(
                        "invalidation: lost the connection to Redis at {}; falling back to TTL expiry (cached profiles may be up to {} ms stale) until it is back",
                        self.url,
                        ttl.as_millis()
                    );
                }
                Err(e) => {
                    missed = true;
                    if !said_down {
                        said_down = true;
                        log!(
                            "invalidation: cannot reach Redis at {} ({e}); falling back to TTL expiry (cached profiles may be up to {} ms stale); retrying",
                            self.url,
                            ttl.as_millis()
                        );
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn subscribe_once(&self) -> Result<redis::aio::PubSub, String> {
        let connect = async {
            let mut pubsub = self
                .client
                .get_async_pubsub()
                .await
                .map_err(|e| e.to_string())?;
            pubsub
                .subscribe(&self.channel)
                .await
                .map_err(|e| e.to_string())?;
            Ok(pubsub)
        };
        tokio::time::timeout(Duration::from_secs(2), connect)
            .await
            .unwrap_or_else(|_| Err("timed out".into()))
    }

    fn handle(&self, cache: &ProfileCache, payload: &[u8]) {
        let notice: Notice = match serde_json::from_slice(payload) {
            Ok(n) => n,
            Err(e) => {
                log!("invalidation: ignored a malformed notice ({e})");
                return;
            }
        };
        if notice.origin == self.origin {
            return; // this instance stored its own write already
        }
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        cache.apply_notice(notice.id, notice.version);
    }
}
