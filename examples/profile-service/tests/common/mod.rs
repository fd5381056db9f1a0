//! Test harness: a small generated SQLite database in a temporary directory, service
//! instances started as child processes on loopback, and Redis servers started per test.

#![allow(dead_code)]

use profile_service::client::{Client, Response};
use profile_service::db::{generate_sqlite, DatasetSize};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Hang guard for every wait in these tests (a guard against a hang, not a timing claim).
pub const GUARD: Duration = Duration::from_secs(120);

/// A temporary directory with the small dataset, removed on drop.
pub struct Dataset {
    dir: PathBuf,
    pub db: PathBuf,
}

impl Dataset {
    pub fn small(name: &str) -> Dataset {
        let dir = std::env::temp_dir().join(format!(
            "profile-service-test-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let db = dir.join("profiles.sqlite");
        generate_sqlite(&db, DatasetSize::SMALL).expect("generate the small dataset");
        Dataset { dir, db }
    }

    /// Writes user `id` straight to the database (as another writer would, with no notice):
    /// sets the name and increments the version; returns the new version.
    pub fn write_directly(&self, id: u64, name: &str) -> u64 {
        let conn = rusqlite::Connection::open(&self.db).expect("open db");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn.query_row(
            "UPDATE users SET name = ?2, version = version + 1 WHERE id = ?1 RETURNING version",
            rusqlite::params![id as i64, name],
            |r| r.get::<_, i64>(0),
        )
        .expect("update user") as u64
    }
}

impl Drop for Dataset {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

const NO_REDIS: &str = "redis-server is not installed: run `bash .ci/service` first (it installs \
     Debian's redis-server and starts one on 127.0.0.1:6399); these tests start their own \
     redis-server processes and need it on PATH";

/// The process id of the Redis server answering on `port` (from `INFO server`), if any.
fn redis_pid(port: u16) -> Option<u32> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"INFO server\r\n").ok()?;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while text.len() < 1 << 16 {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(rest) = text.split("process_id:").nth(1) {
            if let Some((pid, _)) = rest.split_once("\r\n") {
                return pid.trim().parse().ok();
            }
        }
    }
    None
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// A redis-server process this test started on a free loopback port.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

impl Redis {
    /// Starts a redis-server (panics with instructions if it is not installed).
    pub fn start() -> Redis {
        assert!(on_path("redis-server"), "{NO_REDIS}");
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let mut r = Redis { child: None, port };
            if r.spawn() {
                return r;
            }
        }
        panic!("could not start redis-server on a free loopback port");
    }

    /// A redis-server of this test's own if `redis-server` is on PATH; otherwise the shared
    /// one at `PROFILE_SERVICE_REDIS_URL` (default `redis://127.0.0.1:6399`, started by
    /// `bash .ci/service`) if it answers; otherwise panics with instructions. (A shared
    /// server cannot be killed and restarted: tests that do that use [`Redis::start`].)
    pub fn start_or_shared() -> Redis {
        if on_path("redis-server") {
            return Redis::start();
        }
        let url = std::env::var("PROFILE_SERVICE_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6399".into());
        let port = url
            .strip_prefix("redis://127.0.0.1:")
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok());
        match port {
            Some(port) if ping(port) => Redis { child: None, port },
            _ => panic!("{NO_REDIS} (and nothing answers at PROFILE_SERVICE_REDIS_URL={url})"),
        }
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let start = Instant::now();
        let pid = self.child.as_ref().map(|c| c.id());
        while start.elapsed() < Duration::from_secs(20) {
            // Ours, not another test's server that took the port first.
            if ping(self.port) && redis_pid(self.port) == pid {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return false; // exited: the port was taken
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: it goes away without a goodbye).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    /// Publishes `payload` on `channel` (with the redis crate, as another service would).
    pub async fn publish(&self, channel: &str, payload: &str) {
        let client = redis::Client::open(self.url()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to redis");
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut conn)
            .await
            .expect("publish");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running service instance (a child process), killed on drop.
pub struct Service {
    child: Child,
    pub addr: SocketAddr,
    pub name: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Service {
    /// Starts `profile-service serve` on a free loopback port with `--admin` and `args`.
    pub fn start(name: &str, db: &Path, args: &[&str]) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_profile-service"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "--instance",
                name,
                "--db",
            ])
            .arg(db)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn profile-service");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let l = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("listening on ") {
                    let _ = tx.send(a.parse::<SocketAddr>().expect("address"));
                }
            }
        });
        let addr = match rx.recv_timeout(GUARD) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("{name} did not start: {:?}", log.lock().unwrap());
            }
        };
        Service {
            child,
            addr,
            name: name.to_string(),
            log,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client().get(path).await.expect("GET")
    }

    pub async fn metrics(&self) -> serde_json::Value {
        self.get("/metrics").await.json().expect("metrics JSON")
    }

    /// Database profile reads so far.
    pub async fn db_reads(&self) -> u64 {
        self.metrics().await["db"]["reads"]
            .as_u64()
            .expect("db.reads")
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a log line contains `text`.
    pub async fn wait_log(&self, text: &str) {
        let start = Instant::now();
        while !self.log_lines().iter().any(|l| l.contains(text)) {
            assert!(
                start.elapsed() < GUARD,
                "{}: no log line with {text:?} within the hang guard; log: {:#?}",
                self.name,
                self.log_lines()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `/metrics` satisfies `ok`.
    pub async fn wait_metrics(&self, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
        let start = Instant::now();
        loop {
            let m = self.metrics().await;
            if ok(&m) {
                return;
            }
            assert!(
                start.elapsed() < GUARD,
                "{}: {what} not reached within the hang guard; metrics: {m}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- log of {} ---", self.name);
            for l in self.log_lines() {
                eprintln!("{l}");
            }
        }
    }
}

/// The name field of a profile response.
pub fn name_of(r: &Response) -> String {
    r.json().expect("profile JSON")["name"]
        .as_str()
        .expect("name")
        .to_string()
}
