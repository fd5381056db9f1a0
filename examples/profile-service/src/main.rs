//! `profile-service`: runs an instance (`serve`) or generates a SQLite dataset (`gen`).

use profile_service::db::{generate_sqlite, DatasetSize};
use profile_service::{serve, Config};
use std::time::{Duration, Instant};

const USAGE: &str = "usage:
  profile-service gen   [--db profile.sqlite] [--small] [--users N] [--orders N] [--products N] [--seed N]
  profile-service serve [--listen 127.0.0.1:8081] [--db profile.sqlite | --db postgres://...]
                        [--redis redis://127.0.0.1:6399 | --no-redis] [--channel NAME]
                        [--ttl-ms 30000] [--capacity 50000] [--no-cache] [--db-pool 4]
                        [--instance NAME] [--admin]";

fn main() {
    if let Err(e) = run() {
        eprintln!("profile-service: {e}");
        std::process::exit(2);
    }
}

fn value<T: std::str::FromStr>(
    args: &mut impl Iterator<Item = String>,
    flag: &str,
) -> Result<T, String> {
    let v = args
        .next()
        .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
    v.parse()
        .map_err(|_| format!("bad value {v:?} for {flag}\n{USAGE}"))
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("gen") => {
            let mut path = "profile.sqlite".to_string();
            let mut size = DatasetSize::LARGE;
            while let Some(a) = args.next() {
                match a.as_str() {
                    "--db" => path = value(&mut args, &a)?,
                    "--small" => size = DatasetSize::SMALL,
                    "--users" => size.users = value(&mut args, &a)?,
                    "--orders" => size.orders = value(&mut args, &a)?,
                    "--products" => size.products = value(&mut args, &a)?,
                    "--seed" => size.seed = value(&mut args, &a)?,
                    _ => return Err(format!("unknown argument {a:?}\n{USAGE}")),
                }
            }
            let t = Instant::now();
            if path.starts_with("postgres://") || path.starts_with("postgresql://") {
                #[cfg(feature = "postgres")]
                {
                    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
                    rt.block_on(profile_service::pg::generate(&path, size))
                        .map_err(|e| e.to_string())?;
                }
                #[cfg(not(feature = "postgres"))]
                return Err(
                    "PostgreSQL support is not compiled in: build with `--features postgres`"
                        .into(),
                );
            } else {
                generate_sqlite(std::path::Path::new(&path), size).map_err(|e| e.to_string())?;
            }
            println!(
                "wrote {path}: {} users, {} orders, {} products in {:.1} s",
                size.users,
                size.orders,
                size.products,
                t.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Some("serve") => {
            let mut c = Config::default();
            while let Some(a) = args.next() {
                match a.as_str() {
                    "--listen" => c.listen = value(&mut args, &a)?,
                    "--db" => c.database = value(&mut args, &a)?,
                    "--db-pool" => c.db_pool = value(&mut args, &a)?,
                    "--redis" => c.redis = Some(value(&mut args, &a)?),
                    "--no-redis" => c.redis = None,
                    "--channel" => c.channel = value(&mut args, &a)?,
                    "--ttl-ms" => c.ttl = Duration::from_millis(value(&mut args, &a)?),
                    "--capacity" => c.capacity = value(&mut args, &a)?,
                    "--no-cache" => c.cache = false,
                    "--instance" => c.instance = value(&mut args, &a)?,
                    "--admin" => c.admin = true,
                    _ => return Err(format!("unknown argument {a:?}\n{USAGE}")),
                }
            }
            let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            rt.block_on(serve(c))
        }
        _ => Err(USAGE.to_string()),
    }
}
