//! The database: the schema, the profile page's query, writes, a dataset generator, and the
//! counters the tests and the load generator read.
//!
//! SQLite (embedded, through `rusqlite` with its bundled library) is the default; with the
//! `postgres` cargo feature a `postgres://` URL selects PostgreSQL (see [`crate::pg`]).

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// A database failure (the connection, the query, or an injected failure). It is mapped to a
/// 5xx response and never cached.
#[derive(Debug, Clone)]
pub struct DbError(pub String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "database error: {}", self.0)
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError(e.to_string())
    }
}

/// The profile page: one user's row and aggregates over their orders.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Profile {
    /// User id.
    pub id: u64,
    /// The row's version: 1 when created, incremented by every write.
    pub version: u64,
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// Two-letter country code.
    pub country: String,
    /// Number of orders.
    pub orders: u64,
    /// Total spent, in cents.
    pub spent_cents: i64,
    /// Time of the last order (seconds since the epoch), if any.
    pub last_order_at: Option<i64>,
    /// The categories the user spent most in (best first, at most 3).
    pub top_categories: Vec<CategorySpend>,
    /// The five latest orders.
    pub recent_orders: Vec<OrderLine>,
    /// Best sellers of the last 30 days in the user's favourite category (at most 3).
    pub trending: Vec<Trending>,
}

/// Spend in one category.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CategorySpend {
    /// Category name.
    pub category: String,
    /// Number of orders in it.
    pub orders: u64,
    /// Spend in it, in cents.
    pub spent_cents: i64,
}

/// One order on the profile page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderLine {
    /// Order id.
    pub id: u64,
    /// Product name.
    pub product: String,
    /// Quantity.
    pub quantity: i64,
    /// Line total, in cents.
    pub total_cents: i64,
    /// Order time (seconds since the epoch).
    pub at: i64,
}

/// A best-selling product.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Trending {
    /// Product id.
    pub id: u64,
    /// Product name.
    pub name: String,
    /// Units sold in the window.
    pub sold: i64,
}

/// A partial update of a user (the fields that are `Some` are written).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserPatch {
    /// New display name.
    pub name: Option<String>,
    /// New e-mail address.
    pub email: Option<String>,
    /// New country code.
    pub country: Option<String>,
}

/// Counters shared by every database backend.
#[derive(Debug, Default)]
pub struct DbCounters {
    /// Profile reads run (one read is one read transaction of five SQL statements).
    pub reads: AtomicU64,
    /// Profile reads that failed (including injected failures).
    pub read_errors: AtomicU64,
    /// Writes run.
    pub writes: AtomicU64,
    /// Failures still to inject: each read or write takes one and fails while it is positive.
    pub fail_next: AtomicU64,
}

impl DbCounters {
    /// Takes one injected failure, if any is pending.
    fn take_injected(&self) -> Result<(), DbError> {
        let took = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if took {
            Err(DbError("injected failure (POST /admin/fail-next)".into()))
        } else {
            Ok(())
        }
    }
}

/// The database the service reads profiles from and writes users to.
#[derive(Clone)]
pub enum Database {
    /// Embedded SQLite.
    Sqlite(Sqlite),
    /// PostgreSQL (the `postgres` cargo feature).
    #[cfg(feature = "postgres")]
    Postgres(crate::pg::Postgres),
}

impl Database {
    /// Opens `url`: a file path (SQLite) or, with the `postgres` feature, a `postgres://` URL.
    /// `pool` is the number of connections.
    pub async fn open(url: &str, pool: usize) -> Result<Database, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            return Ok(Database::Postgres(
                crate::pg::Postgres::connect(url, pool).await?,
            ));
            #[cfg(not(feature = "postgres"))]
            return Err(DbError(
                "PostgreSQL support is not compiled in: build with `--features postgres`".into(),
            ));
        }
        Ok(Database::Sqlite(Sqlite::open(Path::new(url), pool)?))
    }

    /// The counters.
    pub fn counters(&self) -> &DbCounters {
        match self {
            Database::Sqlite(s) => &s.counters,
            #[cfg(feature = "postgres")]
            Database::Postgres(p) => p.counters(),
        }
    }

    /// Reads user `id`'s profile page; `Ok(None)` if there is no such user.
    pub async fn load_profile(&self, id: u64) -> Result<Option<Profile>, DbError> {
        let c = self.counters();
        c.reads.fetch_add(1, Ordering::Relaxed);
        let r = match c.take_injected() {
            Err(e) => Err(e),
            Ok(()) => match self {
                Database::Sqlite(s) => s.with_conn(move |conn| read_profile(conn, id)).await,
                #[cfg(feature = "postgres")]
                Database::Postgres(p) => p.load_profile(id).await,
            },
        };
        if r.is_err() {
            c.read_errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// Applies `patch` to user `id` and increments its version, in one transaction; returns
    /// the new profile, or `Ok(None)` if there is no such user.
    pub async fn update_user(&self, id: u64, patch: UserPatch) -> Result<Option<Profile>, DbError> {
        let c = self.counters();
        c.writes.fetch_add(1, Ordering::Relaxed);
        c.take_injected()?;
        match self {
            Database::Sqlite(s) => s.with_conn(move |conn| write_user(conn, id, &patch)).await,
            #[cfg(feature = "postgres")]
            Database::Postgres(p) => p.update_user(id, patch).await,
        }
    }
}

/// A small pool of SQLite connections used from blocking threads.
#[derive(Clone)]
pub struct Sqlite {
    conns: Arc<Mutex<Vec<rusqlite::Connection>>>,
    permits: Arc<Semaphore>,
    counters: Arc<DbCounters>,
}

impl Sqlite {
    /// Opens `pool` connections to the database file at `path` (which must exist: create it
    /// with `profile-service gen`).
    pub fn open(path: &Path, pool: usize) -> Result<Sqlite, DbError> {
        if !path.exists() {
            return Err(DbError(format!(
                "{} does not exist: generate it with `profile-service gen --db {}`",
                path.display(),
                path.display()
            )));
        }
        let pool = pool.max(1);
        let mut conns = Vec::with_capacity(pool);
        for _ in 0..pool {
            conns.push(open_conn(path)?);
        }
        Ok(Sqlite {
            conns: Arc::new(Mutex::new(conns)),
            permits: Arc::new(Semaphore::new(pool)),
            counters: Arc::new(DbCounters::default()),
        })
    }

    /// Runs `f` with a pooled connection on a blocking thread.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DbError("connection pool closed".into()))?;
        let conn = self
            .conns
            .lock()
            .map_err(|_| DbError("connection pool poisoned".into()))?
            .pop()
            .ok_or_else(|| DbError("connection pool empty".into()))?;
        let conns = Arc::clone(&self.conns);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn;
            let r = f(&mut conn);
            if let Ok(mut pool) = conns.lock() {
                pool.push(conn);
            }
            r
        })
        .await
        .map_err(|e| DbError(format!("database task failed: {e}")))?
    }
}

fn open_conn(path: &Path) -> Result<rusqlite::Connection, DbError> {
    let conn = rusqlite::Connection::open(path)?;
    // Several instances share the file: WAL lets readers run beside a writer, and a writer
    // waits for another instead of failing at once.
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// Seconds in the 30-day window (ending at [`DATA_END`], when the generated orders end) of the "trending" query.
const TRENDING_WINDOW: i64 = 30 * 86_400;

/// The profile query: one read transaction (so the version and the aggregates agree) of five
/// statements. The last one is the expensive part, a join and aggregation over every order of
/// the user's favourite category in the last 30 days.
fn read_profile(conn: &mut rusqlite::Connection, id: u64) -> Result<Option<Profile>, DbError> {
    use rusqlite::OptionalExtension;
    let tx = conn.transaction()?;
    let Some((name, email, country, version)) = tx
        .prepare_cached("SELECT name, email, country, version FROM users WHERE id = ?1")?
        .query_row([id as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?
    else {
        return Ok(None);
    };
    let (orders, spent_cents, last_order_at) = tx
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(o.quantity * p.price_cents), 0), MAX(o.created_at)
             FROM orders o JOIN products p ON p.id = o.product_id WHERE o.user_id = ?1",
        )?
        .query_row([id as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?;
    let top_categories = tx
        .prepare_cached(
            "SELECT p.category, COUNT(*), SUM(o.quantity * p.price_cents) AS spent
             FROM orders o JOIN products p ON p.id = o.product_id WHERE o.user_id = ?1
             GROUP BY p.category ORDER BY spent DESC, p.category LIMIT 3",
        )?
        .query_map([id as i64], |r| {
            Ok(CategorySpend {
                category: r.get(0)?,
                orders: r.get::<_, i64>(1)? as u64,
                spent_cents: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let recent_orders = tx
        .prepare_cached(
            "SELECT o.id, p.name, o.quantity, o.quantity * p.price_cents, o.created_at
             FROM orders o JOIN products p ON p.id = o.product_id WHERE o.user_id = ?1
             ORDER BY o.created_at DESC, o.id DESC LIMIT 5",
        )?
        .query_map([id as i64], |r| {
            Ok(OrderLine {
                id: r.get::<_, i64>(0)? as u64,
                product: r.get(1)?,
                quantity: r.get(2)?,
                total_cents: r.get(3)?,
                at: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let trending = match (top_categories.first(), last_order_at) {
        (Some(fav), Some(_)) => tx
            .prepare_cached(
                "SELECT p.id, p.name, SUM(o.quantity) AS sold
                 FROM products p JOIN orders o ON o.product_id = p.id
                 WHERE p.category = ?1 AND o.created_at >= ?2
                 GROUP BY p.id ORDER BY sold DESC, p.id LIMIT 3",
            )?
            .query_map(
                rusqlite::params![fav.category, DATA_END - TRENDING_WINDOW],
                |r| {
                    Ok(Trending {
                        id: r.get::<_, i64>(0)? as u64,
                        name: r.get(1)?,
                        sold: r.get(2)?,
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    tx.commit()?;
    Ok(Some(Profile {
        id,
        version: version as u64,
        name,
        email,
        country,
        orders: orders as u64,
        spent_cents,
        last_order_at,
        top_categories,
        recent_orders,
        trending,
    }))
}

fn write_user(
    conn: &mut rusqlite::Connection,
    id: u64,
    patch: &UserPatch,
) -> Result<Option<Profile>, DbError> {
    use rusqlite::OptionalExtension;
    // IMMEDIATE: take the write lock first, so the version increment and the read-back of
    // the new profile see the same row.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let updated = tx
        .prepare_cached(
            "UPDATE users SET name = COALESCE(?2, name), email = COALESCE(?3, email),
             country = COALESCE(?4, country), version = version + 1 WHERE id = ?1
             RETURNING version",
        )?
        .query_row(
            rusqlite::params![id as i64, patch.name, patch.email, patch.country],
            |r| r.get::<_, i64>(0),
        )
        .optional()?;
    if updated.is_none() {
        return Ok(None);
    }
    tx.commit()?;
    read_profile(conn, id)
}

/// The size of a generated dataset.
#[derive(Debug, Clone, Copy)]
pub struct DatasetSize {
    /// Users (ids 1..=users).
    pub users: u64,
    /// Orders, spread over the users and over three years.
    pub orders: u64,
    /// Products, spread over [`CATEGORIES`].
    pub products: u64,
    /// Seed of the generator (the same seed gives the same data).
    pub seed: u64,
}

impl DatasetSize {
    /// The benchmark dataset: 100,000 users, 3,000,000 orders, 2,000 products.
    pub const LARGE: DatasetSize = DatasetSize {
        users: 100_000,
        orders: 3_000_000,
        products: 2_000,
        seed: 7,
    };
    /// The tests' dataset: 2,000 users, 50,000 orders, 200 products.
    pub const SMALL: DatasetSize = DatasetSize {
        users: 2_000,
        orders: 50_000,
        products: 200,
        seed: 7,
    };
}

/// Product categories of the generated data.
pub const CATEGORIES: [&str; 20] = [
    "books",
    "music",
    "film",
    "games",
    "toys",
    "garden",
    "kitchen",
    "tools",
    "sports",
    "outdoor",
    "fashion",
    "shoes",
    "beauty",
    "health",
    "baby",
    "pets",
    "office",
    "computers",
    "phones",
    "audio",
];

const COUNTRIES: [&str; 12] = [
    "DE", "FR", "GB", "US", "ES", "IT", "NL", "SE", "PL", "BR", "JP", "IN",
];

/// A small deterministic generator (SplitMix64), so datasets need no dependency and the
/// same seed gives the same file.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The time the generated orders end at (2026-01-01T00:00:00Z); they span three years.
pub const DATA_END: i64 = 1_767_225_600;

/// Creates a SQLite database at `path` (replacing any file there) with `size` rows:
/// `users`, `products` and `orders` with the indexes the profile query uses.
pub fn generate_sqlite(path: &Path, size: DatasetSize) -> Result<(), DbError> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(&p);
    }
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.execute_batch(SCHEMA)?;
    let tx = conn.transaction()?;
    let mut rng = SplitMix(size.seed);
    {
        let mut ins = tx.prepare(
            "INSERT INTO users (id, name, email, country, created_at, version)
             VALUES (?1, ?2, ?3, ?4, ?5, 1)",
        )?;
        for id in 1..=size.users {
            let country = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
            let created = DATA_END - 4 * 365 * 86_400 + rng.below(365 * 86_400) as i64;
            ins.execute(rusqlite::params![
                id as i64,
                format!("User {id}"),
                format!("user{id}@example.com"),
                country,
                created
            ])?;
        }
        let mut ins = tx.prepare(
            "INSERT INTO products (id, name, category, price_cents) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for id in 1..=size.products {
            let category = CATEGORIES[(id % CATEGORIES.len() as u64) as usize];
            let price = 199 + rng.below(20_000) as i64;
            ins.execute(rusqlite::params![
                id as i64,
                format!("{category} item {id}"),
                category,
                price
            ])?;
        }
        // Orders in time order (as a real table fills), so one user's orders are scattered
        // over the table; a user's share is uneven (some customers buy far more).
        let mut ins = tx.prepare(
            "INSERT INTO orders (id, user_id, product_id, quantity, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let span = 3 * 365 * 86_400;
        for id in 1..=size.orders {
            let a = rng.below(size.users);
            let user = if rng.below(2) == 0 {
                a
            } else {
                a.min(rng.below(size.users))
            } + 1;
            // Products: a few are popular in every category.
            let product = if rng.below(4) == 0 {
                rng.below(size.products.min(100)) + 1
            } else {
                rng.below(size.products) + 1
            };
            let at = DATA_END - span + (id as i64 * span / size.orders.max(1) as i64);
            ins.execute(rusqlite::params![
                id as i64,
                user as i64,
                product as i64,
                1 + rng.below(3) as i64,
                at
            ])?;
        }
    }
    tx.commit()?;
    conn.execute_batch(INDEXES)?;
    conn.execute_batch("ANALYZE")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// The schema (also valid PostgreSQL).
pub const SCHEMA: &str = "
CREATE TABLE users (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    country TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    version BIGINT NOT NULL
);
CREATE TABLE products (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price_cents BIGINT NOT NULL
);
CREATE TABLE orders (
    id BIGINT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    product_id BIGINT NOT NULL,
    quantity BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
";

/// The indexes, created after the bulk load.
pub const INDEXES: &str = "
CREATE INDEX orders_by_user ON orders (user_id);
CREATE INDEX orders_by_product_time ON orders (product_id, created_at);
CREATE INDEX products_by_category ON products (category);
";
