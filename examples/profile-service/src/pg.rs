//! PostgreSQL (the `postgres` cargo feature): the same schema, query and writes as the SQLite
//! backend, through `tokio-postgres` (no TLS: loopback only).
//!
//! ```text
//! cargo run --release -p profile-service --features postgres -- gen --db postgres://user@127.0.0.1/profiles
//! cargo run --release -p profile-service --features postgres -- serve --db postgres://user@127.0.0.1/profiles
//! ```

use crate::db::{
    CategorySpend, DatasetSize, DbCounters, DbError, OrderLine, Profile, Trending, UserPatch,
    CATEGORIES, DATA_END, INDEXES, SCHEMA,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Mutex;

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError(e.to_string())
    }
}

/// A fixed set of PostgreSQL connections, used round-robin.
#[derive(Clone)]
pub struct Postgres {
    conns: Arc<Vec<Mutex<tokio_postgres::Client>>>,
    next: Arc<AtomicUsize>,
    counters: Arc<DbCounters>,
}

async fn connect_one(url: &str) -> Result<tokio_postgres::Client, DbError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            crate::log!("postgres: connection ended: {e}");
        }
    });
    Ok(client)
}

impl Postgres {
    /// Opens `pool` connections to `url`.
    pub async fn connect(url: &str, pool: usize) -> Result<Postgres, DbError> {
        let mut conns = Vec::new();
        for _ in 0..pool.max(1) {
            conns.push(Mutex::new(connect_one(url).await?));
        }
        Ok(Postgres {
            conns: Arc::new(conns),
            next: Arc::new(AtomicUsize::new(0)),
            counters: Arc::new(DbCounters::default()),
        })
    }

    /// The counters.
    pub fn counters(&self) -> &DbCounters {
        &self.counters
    }

    fn conn(&self) -> &Mutex<tokio_postgres::Client> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        &self.conns[i]
    }

    /// The profile page of user `id` (one repeatable-read transaction).
    pub async fn load_profile(&self, id: u64) -> Result<Option<Profile>, DbError> {
        let mut client = self.conn().lock().await;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let p = read_profile(&tx, id).await?;
        tx.commit().await?;
        Ok(p)
    }

    /// Applies `patch` to user `id`, increments its version, returns the new profile.
    pub async fn update_user(&self, id: u64, patch: UserPatch) -> Result<Option<Profile>, DbError> {
        let mut client = self.conn().lock().await;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "UPDATE users SET name = COALESCE($2, name), email = COALESCE($3, email),
                 country = COALESCE($4, country), version = version + 1 WHERE id = $1
                 RETURNING version",
                &[&(id as i64), &patch.name, &patch.email, &patch.country],
            )
            .await?;
        if row.is_none() {
            return Ok(None);
        }
        let p = read_profile(&tx, id).await?;
        tx.commit().await?;
        Ok(p)
    }
}

async fn read_profile(
    tx: &tokio_postgres::Transaction<'_>,
    id: u64,
) -> Result<Option<Profile>, DbError> {
    let id = id as i64;
    let Some(user) = tx
        .query_opt(
            "SELECT name, email, country, version FROM users WHERE id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let agg = tx
        .query_one(
            "SELECT COUNT(*), COALESCE(SUM(o.quantity * p.price_cents), 0)::BIGINT, MAX(o.created_at)
             FROM orders o JOIN products p ON p.id = o.product_id WHERE o.user_id = $1",
            &[&id],
        )
        .await?;
    let top_categories: Vec<CategorySpend> = tx
        .query(
            "SELECT p.category, COUNT(*), SUM(o.quantity * p.price_cents)::BIGINT AS spent
             FROM orders o JOIN products p ON p.id = o.product_id WHERE o.user_id = $1
             GROUP BY p.category ORDER BY spent DESC, p.category LIMIT 3",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| CategorySpend {
            category: r.get(0),
            orders: r.get::<_, i64>(1) as u64,
            spent_cents: r.get(2),
        })
        .collect();
    let recent_orders = tx
        .query(
            "SELECT o.id, p.name, o.quantity, o.quantity * p.price_cents, o.created_at
             FROM orders o JOIN products p ON p.id = o.product_id WHERE o.user_id = $1
             ORDER BY o.created_at DESC, o.id DESC LIMIT 5",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| OrderLine {
            id: r.get::<_, i64>(0) as u64,
            product: r.get(1),
            quantity: r.get(2),
            total_cents: r.get(3),
            at: r.get(4),
        })
        .collect();
    let last_order_at: Option<i64> = agg.get(2);
    let trending = match (top_categories.first(), last_order_at) {
        (Some(fav), Some(_)) => tx
            .query(
                "SELECT p.id, p.name, SUM(o.quantity)::BIGINT AS sold
                 FROM products p JOIN orders o ON o.product_id = p.id
                 WHERE p.category = $1 AND o.created_at >= $2
                 GROUP BY p.id ORDER BY sold DESC, p.id LIMIT 3",
                &[&fav.category, &(DATA_END - 30 * 86_400)],
            )
            .await?
            .iter()
            .map(|r| Trending {
                id: r.get::<_, i64>(0) as u64,
                name: r.get(1),
                sold: r.get(2),
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Some(Profile {
        id: id as u64,
        version: user.get::<_, i64>(3) as u64,
        name: user.get(0),
        email: user.get(1),
        country: user.get(2),
        orders: agg.get::<_, i64>(0) as u64,
        spent_cents: agg.get(1),
        last_order_at,
        top_categories,
        recent_orders,
        trending,
    }))
}

/// Creates the tables at `url` (dropping existing ones of the same names) and fills them
/// with `size` rows generated in SQL (`generate_series`, `random()` seeded by `size.seed`):
/// the same shape as the SQLite generator, not the same rows.
pub async fn generate(url: &str, size: DatasetSize) -> Result<(), DbError> {
    let client = connect_one(url).await?;
    client
        .batch_execute("DROP TABLE IF EXISTS orders, products, users")
        .await?;
    client.batch_execute(SCHEMA).await?;
    let seed = (size.seed % 1000) as f64 / 1000.0;
    client.execute("SELECT setseed($1)", &[&seed]).await?;
    let categories = CATEGORIES.map(String::from).to_vec();
    client
        .execute(
            "INSERT INTO users (id, name, email, country, created_at, version)
             SELECT g, 'User ' || g, 'user' || g || '@example.com',
                    (ARRAY['DE','FR','GB','US','ES','IT','NL','SE','PL','BR','JP','IN'])[1 + floor(random() * 12)::int],
                    $2::bigint - 4 * 365 * 86400 + floor(random() * 365 * 86400)::bigint, 1
             FROM generate_series(1, $1::bigint) g",
            &[&(size.users as i64), &DATA_END],
        )
        .await?;
    client
        .execute(
            "INSERT INTO products (id, name, category, price_cents)
             SELECT g, ($2::text[])[1 + g % 20] || ' item ' || g, ($2::text[])[1 + g % 20],
                    199 + floor(random() * 20000)::bigint
             FROM generate_series(1, $1::bigint) g",
            &[&(size.products as i64), &categories],
        )
        .await?;
    client
        .execute(
            "INSERT INTO orders (id, user_id, product_id, quantity, created_at)
             SELECT g,
                    CASE WHEN random() < 0.5 THEN 1 + floor(random() * $2::bigint)::bigint
                         ELSE 1 + least(floor(random() * $2::bigint), floor(random() * $2::bigint))::bigint END,
                    CASE WHEN random() < 0.25 THEN 1 + floor(random() * least($3::bigint, 100))::bigint
                         ELSE 1 + floor(random() * $3::bigint)::bigint END,
                    1 + floor(random() * 3)::bigint,
                    $4::bigint - 3 * 365 * 86400 + g * (3 * 365 * 86400) / $1::bigint
             FROM generate_series(1, $1::bigint) g",
            &[
                &(size.orders as i64),
                &(size.users as i64),
                &(size.products as i64),
                &DATA_END,
            ],
        )
        .await?;
    client.batch_execute(INDEXES).await?;
    client.batch_execute("ANALYZE").await?;
    Ok(())
}
