//! The HTTP API (axum).
//!
//! | route | |
//! | --- | --- |
//! | `GET /users/{id}` | the profile page as JSON; `x-cache: hit\|miss\|off`, `x-version` |
//! | `PUT /users/{id}` | JSON `{"name":..,"email":..,"country":..}` (any subset): writes, stores the new profile here, publishes `(id, version)`; answers the new profile with `x-cache: write` |
//! | `GET /metrics` | counters as JSON: database reads, cache statistics, notices |
//! | `GET /health` | `ok` |
//! | `POST /admin/fail-next?count=N` | with `--admin` only: the next N database calls fail |

use crate::cache_layer::{Cached, ProfileCache};
use crate::db::{DbError, UserPatch};
use crate::invalidation::Bus;
use crate::log;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What the handlers share.
pub struct AppState {
    /// This instance's name (in logs and notices).
    pub instance: String,
    /// The read path.
    pub profiles: Arc<ProfileCache>,
    /// The invalidation bus, if Redis is configured.
    pub bus: Option<Arc<Bus>>,
    /// Whether `/admin/*` is enabled.
    pub admin: bool,
}

/// An error response.
#[derive(Debug)]
pub enum ApiError {
    /// The database failed: 503, not cached.
    Db(DbError),
    /// No such user: 404.
    NotFound,
    /// The admin API is disabled: 403.
    AdminDisabled,
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        ApiError::Db(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Db(e) => {
                log!("request failed: {e}");
                (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            ApiError::NotFound => (StatusCode::NOT_FOUND, "no such user".to_string()),
            ApiError::AdminDisabled => (
                StatusCode::FORBIDDEN,
                "the admin API is off (start with --admin)".to_string(),
            ),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// The router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/users/{id}", get(get_user).put(put_user))
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok" }))
        .route("/admin/fail-next", post(fail_next))
        .with_state(state)
}

fn profile_response(value: Cached, cache: &'static str) -> Result<Response, ApiError> {
    match value {
        Cached::Missing => Err(ApiError::NotFound),
        Cached::Found(p) => {
            let mut r =
                ([(header::CONTENT_TYPE, "application/json")], p.body.clone()).into_response();
            r.headers_mut()
                .insert("x-cache", HeaderValue::from_static(cache));
            r.headers_mut()
                .insert("x-version", HeaderValue::from(p.version));
            Ok(r)
        }
    }
}

async fn get_user(
    State(s): State<Arc<AppState>>,
    Path(id): Path<u64>,
) -> Result<Response, ApiError> {
    let (value, source) = s.profiles.get(id).await?;
    profile_response(value, source.as_str())
}

async fn put_user(
    State(s): State<Arc<AppState>>,
    Path(id): Path<u64>,
    Json(patch): Json<UserPatch>,
) -> Result<Response, ApiError> {
    let profile = s
        .profiles
        .db()
        .update_user(id, patch)
        .await?
        .ok_or(ApiError::NotFound)?;
    let version = profile.version;
    let value = s.profiles.store_written(profile)?;
    if let Some(bus) = &s.bus {
        if let Err(e) = bus.publish(id, version).await {
            log!(
                "invalidation: could not publish ({id}, {version}): {e}; other instances see this write when their entry expires (TTL)"
            );
        }
    }
    profile_response(value, "write")
}

#[derive(Deserialize)]
struct FailNext {
    count: Option<u64>,
}

async fn fail_next(
    State(s): State<Arc<AppState>>,
    Query(q): Query<FailNext>,
) -> Result<Response, ApiError> {
    if !s.admin {
        return Err(ApiError::AdminDisabled);
    }
    let n = q.count.unwrap_or(1);
    s.profiles
        .db()
        .counters()
        .fail_next
        .store(n, Ordering::SeqCst);
    log!("admin: the next {n} database calls will fail");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn metrics(State(s): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let db = s.profiles.db().counters();
    let l = s.profiles.counters();
    let cache = s.profiles.cache().map(|c| {
        let st = c.stats();
        serde_json::json!({
            "entries": c.len(),
            "capacity": c.capacity(),
            "ttl_ms": s.profiles.ttl().as_millis() as u64,
            "hits": st.hits,
            "misses": st.misses,
            "loads": st.loads,
            "load_errors": st.load_errors,
            "hit_ratio": st.hit_ratio(),
        })
    });
    let bus = s.bus.as_ref().map(|b| {
        let c = b.counters();
        serde_json::json!({
            "connected": b.connected(),
            "connects": c.connects.load(Ordering::Relaxed),
            "published": c.published.load(Ordering::Relaxed),
            "publish_errors": c.publish_errors.load(Ordering::Relaxed),
            "received": c.received.load(Ordering::Relaxed),
        })
    });
    Json(serde_json::json!({
        "instance": s.instance,
        "db": {
            "reads": db.reads.load(Ordering::Relaxed),
            "read_errors": db.read_errors.load(Ordering::Relaxed),
            "writes": db.writes.load(Ordering::Relaxed),
        },
        "cache": cache,
        "notices": {
            "applied": l.notices_applied.load(Ordering::Relaxed),
            "stale": l.notices_stale.load(Ordering::Relaxed),
            "loads_superseded": l.loads_superseded.load(Ordering::Relaxed),
        },
        "redis": bus,
    }))
}
