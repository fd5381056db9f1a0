//! End-to-end tests: the service binary on loopback, a real SQLite database (the small
//! generated dataset), real Redis servers (started per test; `bash .ci/service` installs
//! redis-server). Assertions are on behaviour (query counts, versions, log lines), never on
//! time; every wait has a hang guard of minutes.

mod common;

use common::{name_of, Dataset, Redis, Service, GUARD};
use std::time::{Duration, Instant};

/// 1,000 concurrent requests for one cold key run exactly one database query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stampede_on_a_cold_key_runs_one_query() {
    let data = Dataset::small("stampede");
    let svc = Service::start("stampede", &data.db, &["--no-redis"]);
    // Open the 1,000 connections first, then fire every request at once.
    let mut clients = Vec::new();
    for _ in 0..1000 {
        let mut c = svc.client();
        c.connect().await.expect("connect");
        clients.push(c);
    }
    let go = std::sync::Arc::new(tokio::sync::Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let go = go.clone();
            tokio::spawn(async move {
                go.wait().await;
                c.get("/users/42").await.expect("GET")
            })
        })
        .collect();
    let mut bodies = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 200);
        bodies.insert(r.body);
    }
    assert_eq!(bodies.len(), 1, "every request got the same profile");
    let m = svc.metrics().await;
    assert_eq!(m["db"]["reads"], 1, "one query for the stampede: {m}");
    assert_eq!(m["cache"]["loads"], 1, "{m}");
    println!(
        "stampede: 1000 requests, 1 query; {} of them missed and waited for it, the rest hit",
        m["cache"]["misses"].as_u64().unwrap_or(0).saturating_sub(1)
    );
}

/// A cached profile is served until its TTL passes, then read again from the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_refresh_after_the_ttl() {
    let data = Dataset::small("ttl");
    let ttl = Duration::from_millis(1500);
    let svc = Service::start("ttl", &data.db, &["--no-redis", "--ttl-ms", "1500"]);
    // Taken before the entry is stored, so "less than the TTL since then" implies the entry
    // is still live.
    let cached_at = Instant::now();
    let first = svc.get("/users/7").await;
    assert_eq!((first.status, name_of(&first)), (200, "User 7".to_string()));
    assert_eq!(first.header("x-version"), Some("1"));
    // Another writer changes the row; no notice is sent (this instance has no Redis).
    assert_eq!(data.write_directly(7, "Renamed"), 2);
    let again = svc.get("/users/7").await;
    if cached_at.elapsed() < ttl {
        // Still within the TTL: the cached value, no second query.
        assert_eq!(name_of(&again), "User 7");
        assert_eq!(again.header("x-cache"), Some("hit"));
        assert_eq!(svc.db_reads().await, 1);
    }
    // After the TTL the next read queries again and sees the new row.
    let start = Instant::now();
    loop {
        let r = svc.get("/users/7").await;
        if name_of(&r) == "Renamed" {
            assert_eq!(r.header("x-version"), Some("2"));
            break;
        }
        assert!(start.elapsed() < GUARD, "never refreshed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        svc.db_reads().await,
        2,
        "exactly one more query after expiry"
    );
}

/// A database error is a 5xx and is not cached; a missing user is a cached 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_not_cached_and_missing_users_are_404() {
    let data = Dataset::small("errors");
    let svc = Service::start("errors", &data.db, &["--no-redis"]);
    let r = svc
        .client()
        .post("/admin/fail-next?count=1")
        .await
        .expect("admin");
    assert_eq!(r.status, 204);
    let failed = svc.get("/users/9").await;
    assert_eq!(
        failed.status, 503,
        "a database error reaches the client as a 5xx"
    );
    let m = svc.metrics().await;
    assert_eq!(
        (
            &m["db"]["reads"],
            &m["db"]["read_errors"],
            &m["cache"]["load_errors"]
        ),
        (&1.into(), &1.into(), &1.into()),
        "{m}"
    );
    // Not cached: the next request queries again and succeeds, the one after hits.
    let ok = svc.get("/users/9").await;
    assert_eq!((ok.status, ok.header("x-cache")), (200, Some("miss")));
    assert_eq!(svc.db_reads().await, 2);
    let hit = svc.get("/users/9").await;
    assert_eq!((hit.status, hit.header("x-cache")), (200, Some("hit")));
    assert_eq!(svc.db_reads().await, 2);

    // A missing user: 404, and the negative answer is cached (for the TTL).
    let missing = svc.get("/users/999999").await;
    assert_eq!(missing.status, 404);
    assert_eq!(svc.db_reads().await, 3);
    assert_eq!(svc.get("/users/999999").await.status, 404);
    assert_eq!(svc.db_reads().await, 3, "the 404 was served from the cache");
}

fn notice(id: u64, version: u64) -> String {
    format!("{{\"id\":{id},\"version\":{version}}}")
}

/// Notices that arrive out of order leave the newest version on every instance, and a write
/// through one instance reaches the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_notices_are_resolved_by_version() {
    let data = Dataset::small("versions");
    let redis = Redis::start_or_shared();
    let url = redis.url();
    let channel = &format!("versions-test-{}", std::process::id());
    let args = ["--redis", url.as_str(), "--channel", channel];
    let a = Service::start("A", &data.db, &args);
    let b = Service::start("B", &data.db, &args);
    for s in [&a, &b] {
        s.wait_log("subscribed to").await;
    }

    // Both instances cache user 11 at version 1.
    for s in [&a, &b] {
        assert_eq!(s.get("/users/11").await.header("x-version"), Some("1"));
    }
    // The row moves to version 2 elsewhere; its notices arrive in the wrong order: 2, then 1.
    assert_eq!(data.write_directly(11, "Eleven v2"), 2);
    redis.publish(channel, &notice(11, 2)).await;
    redis.publish(channel, &notice(11, 1)).await;
    for s in [&a, &b] {
        s.wait_metrics("2 notices received", |m| m["redis"]["received"] == 2)
            .await;
        let r = s.get("/users/11").await;
        assert_eq!(
            (name_of(&r), r.header("x-version")),
            ("Eleven v2".to_string(), Some("2")),
            "{}",
            s.name
        );
    }
    // A late duplicate of the old notice now meets version 2 in the cache and leaves it.
    let reads: Vec<u64> = vec![a.db_reads().await, b.db_reads().await];
    redis.publish(channel, &notice(11, 1)).await;
    for (s, before) in [&a, &b].into_iter().zip(reads) {
        s.wait_metrics("3 notices received", |m| m["redis"]["received"] == 3)
            .await;
        let r = s.get("/users/11").await;
        assert_eq!(
            (name_of(&r), r.header("x-cache")),
            ("Eleven v2".to_string(), Some("hit"))
        );
        assert_eq!(
            s.db_reads().await,
            before,
            "the stale notice evicted nothing"
        );
        let m = s.metrics().await;
        assert!(m["notices"]["stale"].as_u64() >= Some(1), "{m}");
    }

    // The right order works too: user 12 at version 2, notices 1 then 2.
    for s in [&a, &b] {
        assert_eq!(s.get("/users/12").await.header("x-version"), Some("1"));
    }
    assert_eq!(data.write_directly(12, "Twelve v2"), 2);
    redis.publish(channel, &notice(12, 1)).await;
    redis.publish(channel, &notice(12, 2)).await;
    for s in [&a, &b] {
        s.wait_metrics("5 notices received", |m| m["redis"]["received"] == 5)
            .await;
        assert_eq!(name_of(&s.get("/users/12").await), "Twelve v2");
    }

    // A write through A: A serves it at once, B after A's notice.
    assert_eq!(name_of(&b.get("/users/13").await), "User 13");
    let w = a
        .client()
        .put_json("/users/13", r#"{"name":"Written via A"}"#)
        .await
        .expect("PUT");
    assert_eq!((w.status, w.header("x-version")), (200, Some("2")));
    assert_eq!(name_of(&a.get("/users/13").await), "Written via A");
    b.wait_metrics("A's notice received", |m| m["redis"]["received"] == 6)
        .await;
    let r = b.get("/users/13").await;
    assert_eq!(
        (name_of(&r), r.header("x-version")),
        ("Written via A".to_string(), Some("2"))
    );
}

/// When Redis goes away the service keeps serving, says it falls back to TTL expiry, and
/// picks notices up again when Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_survives_redis_going_away() {
    let data = Dataset::small("redis-down");
    let mut redis = Redis::start();
    let url = redis.url();
    let channel = &format!("redis-down-test-{}", std::process::id());
    let args = ["--redis", url.as_str(), "--channel", channel];
    let a = Service::start("A", &data.db, &args);
    let b = Service::start("B", &data.db, &args);
    for s in [&a, &b] {
        s.wait_log("subscribed to").await;
    }
    assert_eq!(a.get("/users/21").await.status, 200);

    redis.kill();
    a.wait_log("falling back to TTL expiry").await;
    a.wait_metrics("redis disconnected", |m| m["redis"]["connected"] == false)
        .await;
    // Still serving: a cached profile, a cold one from the database, and a write.
    let hit = a.get("/users/21").await;
    assert_eq!((hit.status, hit.header("x-cache")), (200, Some("hit")));
    let cold = a.get("/users/22").await;
    assert_eq!((cold.status, cold.header("x-cache")), (200, Some("miss")));
    let w = a
        .client()
        .put_json("/users/23", r#"{"name":"Written while Redis was down"}"#)
        .await
        .expect("PUT");
    assert_eq!(
        w.status, 200,
        "writes go on: the database is the source of truth"
    );
    a.wait_log("could not publish").await;

    // Redis comes back: both reconnect, clear their caches, and notices flow again.
    redis.restart();
    for s in [&a, &b] {
        s.wait_log("reconnected to Redis").await;
        s.wait_metrics("redis connected", |m| m["redis"]["connected"] == true)
            .await;
    }
    assert_eq!(name_of(&a.get("/users/24").await), "User 24");
    let received = a.metrics().await["redis"]["received"].as_u64().unwrap_or(0);
    let w = b
        .client()
        .put_json("/users/24", r#"{"name":"After the outage"}"#)
        .await
        .expect("PUT");
    assert_eq!(w.status, 200);
    a.wait_metrics("B's notice received", |m| {
        m["redis"]["received"].as_u64() > Some(received)
    })
    .await;
    assert_eq!(name_of(&a.get("/users/24").await), "After the outage");
}
