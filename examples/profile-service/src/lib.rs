//! A cache-aside profile service: `linemap::Cache` in front of a real database, several
//! instances kept consistent through Redis pub/sub. See `docs/cache-aside.md`.
//!
//! * [`db`]: SQLite (default) or PostgreSQL (`postgres` feature), the profile query, writes,
//!   a dataset generator.
//! * [`cache_layer`]: the cache and its versioned consistency rules.
//! * [`invalidation`]: notices over Redis, fallback to TTL expiry when Redis is away.
//! * [`http`]: the axum routes.
//! * [`client`], [`zipf`]: a minimal HTTP/1.1 client and a Zipf sampler, for the load
//!   generator and the tests.

pub mod cache_layer;
pub mod client;
pub mod db;
pub mod http;
pub mod invalidation;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod zipf;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

static INSTANCE: OnceLock<String> = OnceLock::new();

/// This process's instance name, as set by [`serve`] (for log lines).
pub fn instance_name() -> &'static str {
    INSTANCE
        .get()
        .map(String::as_str)
        .unwrap_or("profile-service")
}

/// Prints a log line to standard error, prefixed with the instance name.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        eprintln!("[{}] {}", $crate::instance_name(), format_args!($($arg)*))
    };
}

/// `url` with any password replaced by `***` (for log lines).
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            if let Some((user, _password)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    url.to_string()
}

/// How to run one instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (loopback only); port 0 picks a free port.
    pub listen: SocketAddr,
    /// SQLite file path, or a `postgres://` URL (`postgres` feature).
    pub database: String,
    /// Database connections.
    pub db_pool: usize,
    /// Redis URL for invalidation notices; `None` runs without (TTL expiry only).
    pub redis: Option<String>,
    /// Pub/sub channel.
    pub channel: String,
    /// Time-to-live of cached profiles (and of cached 404s).
    pub ttl: Duration,
    /// Cache capacity (profiles).
    pub capacity: usize,
    /// Whether reads go through the cache (`--no-cache` turns it off).
    pub cache: bool,
    /// Whether `/admin/*` (failure injection) is enabled.
    pub admin: bool,
    /// Instance name (logs, notices' origin).
    pub instance: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            database: "profile.sqlite".into(),
            db_pool: 4,
            redis: Some("redis://127.0.0.1:6399".into()),
            channel: invalidation::DEFAULT_CHANNEL.into(),
            ttl: Duration::from_secs(30),
            capacity: 50_000,
            cache: true,
            admin: false,
            instance: "profile-service".into(),
        }
    }
}

/// Runs one instance until Ctrl-C. Prints `listening on ADDR` on standard output once it
/// accepts connections (the tests and scripts wait for that line).
pub async fn serve(config: Config) -> Result<(), String> {
    let _ = INSTANCE.set(config.instance.clone());
    if !config.listen.ip().is_loopback() {
        return Err(format!(
            "refusing to listen on {}: this example serves loopback addresses only",
            config.listen
        ));
    }
    let database = db::Database::open(&config.database, config.db_pool)
        .await
        .map_err(|e| e.to_string())?;
    let profiles = Arc::new(cache_layer::ProfileCache::new(
        database,
        config.capacity,
        config.ttl,
        config.cache,
    ));
    let bus = match &config.redis {
        Some(url) => {
            let bus = Arc::new(invalidation::Bus::new(
                url,
                &config.channel,
                &config.instance,
            )?);
            Arc::clone(&bus).spawn_subscriber(Arc::clone(&profiles));
            Some(bus)
        }
        None => {
            log!("invalidation: no Redis configured; cached profiles expire by TTL only");
            None
        }
    };
    let state = Arc::new(http::AppState {
        instance: config.instance.clone(),
        profiles,
        bus,
        admin: config.admin,
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    log!(
        "database {}, cache {}, ttl {} ms, capacity {}",
        redact(&config.database),
        if config.cache { "on" } else { "OFF" },
        config.ttl.as_millis(),
        config.capacity
    );
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {addr}");
        let _ = out.flush();
    }
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            super::redact("postgres://app:secret@127.0.0.1/profiles"),
            "postgres://app:***@127.0.0.1/profiles"
        );
        assert_eq!(
            super::redact("redis://:secret@127.0.0.1:6399"),
            "redis://:***@127.0.0.1:6399"
        );
        assert_eq!(
            super::redact("postgres://app@127.0.0.1/p"),
            "postgres://app@127.0.0.1/p"
        );
        assert_eq!(super::redact("profile.sqlite"), "profile.sqlite");
    }
}
