//! Load generator for the profile service: Zipf-distributed user ids over keep-alive
//! connections to one or more instances on loopback, for a bounded time and request count.
//! Prints requests per second, p50 and p99 latency, and the database reads per second the
//! instances report (their `/metrics`), and can append the figures to a file and draw them
//! as an SVG bar chart.
//!
//! ```text
//! loadgen --target 127.0.0.1:8081,127.0.0.1:8082 --users 100000 --zipf 1.0 \
//!         --concurrency 64 --duration 20 --label cache-on --record results.tsv
//! loadgen --chart results.tsv --svg docs/cache-aside.svg
//! ```

use profile_service::client::Client;
use profile_service::zipf::{Rng, Zipf};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage:
  loadgen [--target 127.0.0.1:8081[,127.0.0.1:8082...]] [--users 100000] [--zipf 1.0]
          [--concurrency 64] [--duration 20] [--requests 2000000] [--writes-per-mille 0]
          [--seed N] [--label NAME] [--record FILE]
  loadgen --chart FILE --svg OUT";

struct Args {
    targets: Vec<SocketAddr>,
    users: u64,
    zipf: f64,
    concurrency: usize,
    duration: Duration,
    requests: u64,
    writes_per_mille: u64,
    seed: u64,
    label: String,
    record: Option<String>,
    chart: Option<String>,
    svg: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        targets: vec![SocketAddr::from(([127, 0, 0, 1], 8081))],
        users: 100_000,
        zipf: 1.0,
        concurrency: 64,
        duration: Duration::from_secs(20),
        requests: 2_000_000,
        writes_per_mille: 0,
        // A new key sequence each run (a fixed one would replay the previous run's keys,
        // which are still cached), unless --seed fixes it.
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        label: "run".into(),
        record: None,
        chart: None,
        svg: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut v = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let bad = |v: &str| format!("bad value {v:?} for {flag}\n{USAGE}");
        match flag.as_str() {
            "--target" => {
                let v = v()?;
                a.targets = v
                    .split(',')
                    .map(|t| t.parse::<SocketAddr>().map_err(|_| bad(t)))
                    .collect::<Result<_, _>>()?;
            }
            "--users" => a.users = v()?.parse().map_err(|_| bad("--users"))?,
            "--zipf" => a.zipf = v()?.parse().map_err(|_| bad("--zipf"))?,
            "--concurrency" => a.concurrency = v()?.parse().map_err(|_| bad("--concurrency"))?,
            "--duration" => {
                a.duration = Duration::from_secs_f64(v()?.parse().map_err(|_| bad("--duration"))?)
            }
            "--requests" => a.requests = v()?.parse().map_err(|_| bad("--requests"))?,
            "--writes-per-mille" => {
                a.writes_per_mille = v()?.parse().map_err(|_| bad("--writes-per-mille"))?
            }
            "--seed" => a.seed = v()?.parse().map_err(|_| bad("--seed"))?,
            "--label" => a.label = v()?,
            "--record" => a.record = Some(v()?),
            "--chart" => a.chart = Some(v()?),
            "--svg" => a.svg = Some(v()?),
            _ => return Err(format!("unknown argument {flag:?}\n{USAGE}")),
        }
    }
    if let Some(t) = a.targets.iter().find(|t| !t.ip().is_loopback()) {
        return Err(format!(
            "{t} is not a loopback address: loadgen targets loopback only"
        ));
    }
    // A hard bound whatever the flags say: at most 10 minutes.
    a.duration = a.duration.min(Duration::from_secs(600));
    a.concurrency = a.concurrency.clamp(1, 4096);
    Ok(a)
}

fn main() {
    let r = parse().and_then(|a| {
        if let Some(chart) = &a.chart {
            let out = a.svg.clone().unwrap_or_else(|| "cache-aside.svg".into());
            return chart_svg(chart, &out);
        }
        let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
        rt.block_on(run(a))
    });
    if let Err(e) = r {
        eprintln!("loadgen: {e}");
        std::process::exit(2);
    }
}

async fn db_reads(targets: &[SocketAddr]) -> Result<(u64, u64, u64), String> {
    let (mut reads, mut hits, mut misses) = (0, 0, 0);
    for t in targets {
        let m = Client::new(*t)
            .get("/metrics")
            .await
            .map_err(|e| format!("{t}: {e}"))?
            .json()?;
        reads += m["db"]["reads"].as_u64().unwrap_or(0);
        hits += m["cache"]["hits"].as_u64().unwrap_or(0);
        misses += m["cache"]["misses"].as_u64().unwrap_or(0);
    }
    Ok((reads, hits, misses))
}

async fn run(a: Args) -> Result<(), String> {
    let zipf = Arc::new(Zipf::new(a.users, a.zipf));
    let issued = Arc::new(AtomicU64::new(0));
    let before = db_reads(&a.targets).await?;
    let start = Instant::now();
    let deadline = start + a.duration;
    let mut tasks = Vec::new();
    for w in 0..a.concurrency {
        let target = a.targets[w % a.targets.len()];
        let (zipf, issued) = (Arc::clone(&zipf), Arc::clone(&issued));
        let (limit, writes, seed) = (a.requests, a.writes_per_mille, a.seed);
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(target);
            let mut rng = Rng::new(seed ^ (w as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut lat = Vec::with_capacity(1 << 14);
            let (mut errors, mut not_found) = (0u64, 0u64);
            while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < limit {
                let id = zipf.sample(rng.next_f64());
                let t = Instant::now();
                let r = if rng.next_u64() % 1000 < writes {
                    let body = format!("{{\"name\":\"User {id} r{}\"}}", rng.next_u64() % 1000);
                    client.put_json(&format!("/users/{id}"), &body).await
                } else {
                    client.get(&format!("/users/{id}")).await
                };
                let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                match r {
                    Ok(r) if r.status == 200 => lat.push(us),
                    Ok(r) if r.status == 404 => {
                        not_found += 1;
                        lat.push(us)
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors, not_found)
        }));
    }
    let mut lat = Vec::new();
    let (mut errors, mut not_found) = (0, 0);
    for t in tasks {
        let (l, e, n) = t.await.map_err(|e| e.to_string())?;
        lat.extend(l);
        errors += e;
        not_found += n;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = db_reads(&a.targets).await?;
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
        }
    };
    let ok = lat.len() as u64;
    let rps = ok as f64 / elapsed;
    let (p50, p99) = (pct(0.50), pct(0.99));
    let dbqps = (after.0 - before.0) as f64 / elapsed;
    let (hits, misses) = (after.1 - before.1, after.2 - before.2);
    let hit_ratio = if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    };
    println!(
        "{}: {} requests in {:.1} s over {} connections to {} instance(s), zipf s={} over {} users, seed {}",
        a.label,
        ok,
        elapsed,
        a.concurrency,
        a.targets.len(),
        a.zipf,
        a.users,
        a.seed
    );
    println!(
        "  rps {rps:.0}  p50 {p50:.2} ms  p99 {p99:.2} ms  db reads/s {dbqps:.0}  hit ratio {:.3}  404s {not_found}  errors {errors}",
        hit_ratio
    );
    if let Some(file) = &a.record {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| format!("{file}: {e}"))?;
        writeln!(
            f,
            "{}\t{rps:.0}\t{p50:.3}\t{p99:.3}\t{dbqps:.0}\t{hit_ratio:.3}\t{errors}",
            a.label
        )
        .map_err(|e| e.to_string())?;
    }
    if errors > 0 {
        eprintln!("loadgen: {errors} requests failed");
    }
    Ok(())
}

/// Draws the recorded runs (label, rps, p50, p99, db reads/s, hit ratio per line) as bar
/// panels.
fn chart_svg(input: &str, out: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(input).map_err(|e| format!("{input}: {e}"))?;
    let rows: Vec<(String, [f64; 5])> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            (f[0].to_string(), [num(1), num(2), num(3), num(4), num(5)])
        })
        .collect();
    if rows.is_empty() {
        return Err(format!("{input} has no runs"));
    }
    let panels = [
        ("requests per second", 0usize, ""),
        ("p50 latency", 1, " ms"),
        ("p99 latency", 2, " ms"),
        ("database reads per second", 3, ""),
        ("cache hit ratio", 4, ""),
    ];
    let colors = [
        "#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b7791f", "#9b2c2c",
    ];
    let (pw, ph, bar_h, gap) = (440.0, 0.0, 22.0, 6.0);
    let panel_h = 40.0 + rows.len() as f64 * (bar_h + gap) + 10.0;
    let width = pw * 2.0 + 40.0;
    let height = panel_h * panels.len().div_ceil(2) as f64 + 20.0 + ph;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (i, (title, col, unit)) in panels.iter().enumerate() {
        let x0 = 20.0 + (i % 2) as f64 * (pw + 10.0);
        let y0 = 10.0 + (i / 2) as f64 * panel_h;
        s += &format!(
            "<text x=\"{x0}\" y=\"{}\" font-weight=\"bold\" font-size=\"14\">{title}</text>\n",
            y0 + 18.0
        );
        let max = rows
            .iter()
            .map(|r| r.1[*col])
            .fold(0.0f64, f64::max)
            .max(1e-9);
        let label_w = 150.0;
        let bar_max = pw - label_w - 90.0;
        for (j, (label, v)) in rows.iter().enumerate() {
            let y = y0 + 32.0 + j as f64 * (bar_h + gap);
            let w = (v[*col] / max * bar_max).max(1.0);
            let value = if *col == 4 {
                format!("{:.2}", v[*col])
            } else if v[*col] >= 100.0 || unit.is_empty() {
                format!("{:.0}{unit}", v[*col])
            } else {
                format!("{:.2}{unit}", v[*col])
            };
            s += &format!(
                "<text x=\"{x0}\" y=\"{:.1}\">{}</text>\n<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bar_h}\" fill=\"{}\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">{value}</text>\n",
                y + 15.0,
                escape(label),
                x0 + label_w,
                colors[j % colors.len()],
                x0 + label_w + w + 5.0,
                y + 15.0
            );
        }
    }
    s += "</svg>\n";
    std::fs::write(out, s).map_err(|e| format!("{out}: {e}"))?;
    println!("wrote {out}");
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
