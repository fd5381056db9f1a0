#!/usr/bin/env python3
"""Renders docs/benchmarks/<arch>.md from the raw outputs of bench-tools/report.sh.

Python 3 standard library only; the plots are SVG written by hand. Inputs, all in --raw
(target/benchreport/<arch>/), each optional (a missing stage is reported as not run):

* map.txt, criterion-map/     `cargo bench --bench map` stdout and CRITERION_HOME
* cache.txt, criterion-cache/ `cargo bench --bench cache` stdout and CRITERION_HOME
* locality-*.txt              bench-tools/lookup_cost.sh tables
* replay.txt                  cachesim's `replay` example (markdown)
* <stage>.seconds             wall time of each stage
"""

import argparse
import datetime
import glob
import html
import json
import os
import platform
import re
import subprocess
import sys

PALETTE = [
    "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939",
]


# ------------------------------------------------------------------------------------------
# Machine facts
# ------------------------------------------------------------------------------------------

def run(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def cpu_model():
    lscpu = run(["lscpu"])
    if lscpu:
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                name = line.split(":", 1)[1].strip()
                vendor = next((x.split(":", 1)[1].strip() for x in lscpu.splitlines()
                               if x.startswith("Vendor ID:")), None)
                return f"{name} ({vendor})" if vendor and vendor not in name else name
    info = read("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware"):
        for line in info.splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    impl = re.search(r"CPU implementer\s*:\s*(\S+)", info)
    part = re.search(r"CPU part\s*:\s*(\S+)", info)
    if impl and part:
        return f"Arm CPU implementer {impl.group(1)}, part {part.group(1)}"
    return run(["sysctl", "-n", "machdep.cpu.brand_string"]) or platform.processor() or "unknown"


def caches():
    """[(level, type, size, line, ways, shared_by)] from sysfs (Linux) or sysctl (macOS)."""
    rows = []
    for d in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        shared = read(os.path.join(d, "shared_cpu_list")) or "?"
        rows.append((
            read(os.path.join(d, "level")) or "?",
            read(os.path.join(d, "type")) or "?",
            read(os.path.join(d, "size")) or "?",
            read(os.path.join(d, "coherency_line_size")) or "?",
            read(os.path.join(d, "ways_of_associativity")) or "?",
            shared,
        ))
    if not rows and platform.system() == "Darwin":
        line = run(["sysctl", "-n", "hw.cachelinesize"]) or "?"
        for lvl, typ, key in (("1", "Data", "hw.l1dcachesize"), ("1", "Instruction",
                                                               "hw.l1icachesize"),
                              ("2", "Unified", "hw.l2cachesize"), ("3", "Unified",
                                                                   "hw.l3cachesize")):
            v = run(["sysctl", "-n", key])
            if v and v != "0":
                rows.append((lvl, typ, f"{int(v) // 1024}K", line, "?", "?"))
    return rows


def line_size():
    v = read("/sys/devices/system/cpu/cpu0/cache/index0/coherency_line_size")
    return v or run(["getconf", "LEVEL1_DCACHE_LINESIZE"]) or run(
        ["sysctl", "-n", "hw.cachelinesize"]) or "?"


def lock_versions(names):
    """The versions of `names` that linemap itself uses, from Cargo.lock: linemap's own
    dependency list names the version when the lock holds several."""
    text = read("Cargo.lock") or ""
    found, direct = {}, {}
    for block in text.split("[[package]]"):
        n = re.search(r'^name = "([^"]+)"', block, re.M)
        v = re.search(r'^version = "([^"]+)"', block, re.M)
        if not (n and v):
            continue
        found.setdefault(n.group(1), []).append(v.group(1))
        if n.group(1) == "linemap":
            deps = re.search(r"^dependencies = \[(.*?)\]", block, re.M | re.S)
            for d in re.findall(r'"([^"]+)"', deps.group(1) if deps else ""):
                parts = d.split(" ")
                if len(parts) > 1:
                    direct[parts[0]] = parts[1]
    out = []
    for n in names:
        if n in direct:
            out.append((n, direct[n]))
        elif n in found:
            out.append((n, ", ".join(found[n])))
    return out


# ------------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------------

def md_tables(text):
    """Yields (title, header cells, rows of cells) for every markdown table, the title being the
    nearest heading above it."""
    title = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("#"):
            title = line.lstrip("#").strip()
        if line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-:| ]+\|$",
                                                                    lines[i + 1].strip()):
            header = cells(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(cells(lines[i].strip()))
                i += 1
            yield title, header, rows
            continue
        i += 1


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def num(s):
    m = re.match(r"^[-+]?\d+(\.\d+)?", s.replace(",", "").strip())
    return float(m.group(0)) if m else None


def criterion_results(root):
    """{group: {peer: {threads: Mops/s}}} from criterion's new/benchmark.json + estimates.json
    (median time per iteration; throughput in elements)."""
    out = {}
    for bj in glob.glob(os.path.join(root, "**", "new", "benchmark.json"), recursive=True):
        try:
            with open(bj) as f:
                b = json.load(f)
            with open(os.path.join(os.path.dirname(bj), "estimates.json")) as f:
                e = json.load(f)
        except (OSError, ValueError):
            continue
        tp = (b.get("throughput") or {})
        elems = tp.get("Elements") or tp.get("elements")
        ns = e["median"]["point_estimate"]
        if not elems or not ns:
            continue
        m = re.match(r"^(\d+)T$", b.get("value_str") or "")
        if not m:
            continue
        out.setdefault(b["group_id"], {}).setdefault(b["function_id"], {})[int(m.group(1))] = (
            elems / ns * 1e3)
    return out


# ------------------------------------------------------------------------------------------
# SVG
# ------------------------------------------------------------------------------------------

def nice_max(v):
    if v <= 0:
        return 1.0
    e = 10 ** int(f"{v:e}".split("e")[1])
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * e >= v:
            return m * e
    return 10 * e


def fmt_x(x):
    if x >= 1e6 and x % 1e6 == 0:
        return f"{x / 1e6:g}M"
    if x >= 1e3 and x % 1e3 == 0:
        return f"{x / 1e3:g}K"
    return f"{x:g}"


def line_chart(path, title, xlabel, ylabel, series, y_min=None):
    """series: [(name, {x: y})]. x values are placed evenly, in sorted order, labelled with
    their values (thread counts, capacities)."""
    xs = sorted({x for _, pts in series for x in pts})
    ys = [y for _, pts in series for y in pts.values() if y is not None]
    if not xs or not ys:
        return False
    w, h = 720, 400
    left, right, top, bottom = 70, 190, 40, 55
    pw, ph = w - left - right, h - top - bottom
    lo = 0.0 if y_min is None else y_min
    hi = nice_max(max(ys)) if y_min is None else max(ys) + (max(ys) - lo) * 0.05
    if hi <= lo:
        hi = lo + 1

    def px(x):
        i = xs.index(x)
        return left + (pw * (i + 0.5) / len(xs))

    def py(y):
        return top + ph - (y - lo) / (hi - lo) * ph

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
         f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">',
         f'<rect width="{w}" height="{h}" fill="white"/>',
         f'<text x="{left + pw / 2}" y="22" text-anchor="middle" font-size="14" '
         f'font-weight="bold">{html.escape(title)}</text>']
    for k in range(6):
        y = lo + (hi - lo) * k / 5
        o.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
                 f'stroke="#ddd"/>')
        o.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.4g}</text>')
    for x in xs:
        o.append(f'<text x="{px(x):.1f}" y="{top + ph + 18}" text-anchor="middle">'
                 f'{html.escape(fmt_x(x))}</text>')
    o.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
             f'stroke="#333"/>')
    o.append(f'<text x="{left + pw / 2}" y="{h - 12}" text-anchor="middle">'
             f'{html.escape(xlabel)}</text>')
    o.append(f'<text transform="translate(16 {top + ph / 2}) rotate(-90)" '
             f'text-anchor="middle">{html.escape(ylabel)}</text>')
    for i, (name, pts) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        width = 3 if name.startswith("linemap") else 1.6
        dash = ' stroke-dasharray="5 3"' if re.search(r"\b[2-9]\d*T\b", name) else ""
        p = [(px(x), py(y)) for x, y in sorted(pts.items()) if y is not None]
        if len(p) > 1:
            o.append(f'<polyline fill="none" stroke="{color}" stroke-width="{width}"{dash} '
                     f'points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in p)}"/>')
        for a, b in p:
            o.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"/>')
        ly = top + 8 + i * 18
        o.append(f'<line x1="{left + pw + 12}" x2="{left + pw + 36}" y1="{ly}" y2="{ly}" '
                 f'stroke="{color}" stroke-width="{width}"{dash}/>')
        o.append(f'<text x="{left + pw + 42}" y="{ly + 4}">{html.escape(name)}</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")
    return True


def slug(s):
    return re.sub(r"[^A-Za-z0-9.]+", "-", s).strip("-")


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------

class Report:
    def __init__(self, args):
        self.a = args
        self.lines = []
        self.plots = []

    def p(self, s=""):
        self.lines.append(s)

    def plot(self, name, title, xlabel, ylabel, series, y_min=None):
        fname = f"{self.a.arch}-{slug(name)}.svg"
        if line_chart(os.path.join(self.a.out, fname), title, xlabel, ylabel, series, y_min):
            self.plots.append(fname)
            self.p(f"![{title}]({fname})")
            self.p()

    def raw(self, name):
        return read(os.path.join(self.a.raw, name))

    def seconds(self, stage):
        s = self.raw(f"{stage}.seconds")
        return f"{int(s) // 60} min {int(s) % 60} s" if s else "not recorded"

    def verbatim(self, text, demote=2):
        """Markdown output of a bench, headings demoted by `demote` levels, log lines dropped."""
        for line in text.splitlines():
            if line.startswith("#"):
                self.p("#" * demote + line)
            elif line.startswith("|") or not line.strip():
                self.p(line)
            elif re.match(r"^(rep \d|  s = |cost |Gnuplot|Benchmarking|WARNING|Warning)", line):
                continue
            elif (re.match(r"^\S+/\S+/\d+T\b", line) or re.match(r"^Found \d+ outliers", line)
                  or re.search(r"\b(time|thrpt|change): ", line) or line.startswith(" ")):
                continue  # criterion's console output: its numbers are in the tables below
            else:
                self.p(line)
        self.p()


def machine(r, a):
    r.p("## Machine")
    r.p()
    r.p("| | |")
    r.p("|---|---|")
    r.p(f"| CPU | {cpu_model()} |")
    cores = os.cpu_count()
    try:
        avail = len(os.sched_getaffinity(0))
    except AttributeError:
        avail = cores
    r.p(f"| cores | {cores} logical CPUs ({avail} available to this process); thread counts "
        f"measured: {a.threads} |")
    cs = caches()
    for lvl, typ, size, line, ways, shared in cs:
        r.p(f"| L{lvl} {typ.lower()} | {size}, {ways}-way, {line}-byte lines, shared by CPUs "
            f"{shared} |")
    r.p(f"| cache line (cpu0 L1d coherency_line_size) | {line_size()} bytes |")
    mem = read("/proc/meminfo")
    if mem:
        kb = int(re.search(r"MemTotal:\s+(\d+)", mem).group(1))
        r.p(f"| memory | {kb / 1024 / 1024:.1f} GiB |")
    r.p(f"| OS | {platform.system()} {platform.release()} ({platform.machine()}) |")
    load = read(os.path.join(a.raw, "loadavg-start.txt"))
    if load:
        r.p(f"| load average at the start / at rendering | {load} / "
            f"{' '.join((read('/proc/loadavg') or '? ? ?').split()[:3])} |")
    r.p(f"| rustc | {run(['rustc', '-V']) or '?'} |")
    r.p(f"| cargo | {run(['cargo', '-V']) or '?'} |")
    vg = run(["valgrind", "--version"])
    r.p(f"| valgrind | {vg or 'not installed'} |")
    commit = run(["git", "rev-parse", "--short=12", "HEAD"])
    dirty = run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src", "benches",
                 "examples", "cachesim", "Cargo.toml", "Cargo.lock"])
    ver = re.search(r'^version = "([^"]+)"', read("Cargo.toml") or "", re.M)
    r.p(f"| linemap | {ver.group(1) if ver else '?'} at commit {commit or '?'}"
        f"{' (with uncommitted changes)' if dirty else ''} |")
    vers = lock_versions(["criterion", "dashmap", "papaya", "scc", "hashbrown", "quick_cache",
                          "moka", "mini-moka", "foldhash", "crossbeam-epoch", "crossbeam-utils"])
    r.p(f"| crates (Cargo.lock) | {'; '.join(f'{n} {v}' for n, v in vers)} |")
    now = datetime.datetime.now(datetime.timezone.utc)
    done = []
    for f in sorted(glob.glob(os.path.join(a.raw, "*.txt")), key=os.path.getmtime):
        name = os.path.basename(f)[:-4]
        if name.endswith("skipped") or name == "loadavg-start":
            continue
        t = datetime.datetime.fromtimestamp(os.path.getmtime(f), datetime.timezone.utc)
        done.append(f"{name} {t:%Y-%m-%d %H:%M}")
    r.p(f"| date | stages finished (UTC): {'; '.join(done) or 'none'}; rendered "
        f"{now:%Y-%m-%d %H:%M} UTC |")
    r.p(f"| command | `{a.command}` |")
    r.p()


def map_section(r, a):
    r.p("## Map: linemap::HashMap against its peers (`cargo bench --bench map`)")
    r.p()
    text = r.raw("map.txt")
    if not text:
        r.p("Not run.")
        r.p()
        return
    r.p(f"Stage time {r.seconds('map')}. Every peer runs in the same process with the same "
        "hasher; see [benchmarks.md](../benchmarks.md#what-the-harness-does) for the workloads. "
        "Wall-clock numbers on a shared machine are noisy: compare the peers within one table.")
    r.p()
    for title, header, rows in md_tables(text):
        if title.startswith("Wall-clock throughput (ops / wall time), median"):
            peers = header[2:]
            for mix in dict.fromkeys(row[0] for row in rows):
                series = []
                for j, peer in enumerate(peers):
                    pts = {int(row[1]): num(row[2 + j]) for row in rows
                           if row[0] == mix and num(row[2 + j]) is not None}
                    if pts:
                        series.append((peer, pts))
                r.plot(f"map-mix-{mix}", f"{mix}: {title.split(',')[0]} (median)", "threads",
                       "Mops/s", series)
    r.p("### conc-map-bench mixes (custom-timed, medians over the repetitions)")
    r.p()
    r.verbatim(text.split("Benchmarking")[0], demote=1)
    crit = criterion_results(os.path.join(a.raw, "criterion-map"))
    criterion_groups(r, crit, "Micro workloads (criterion, median time per iteration)")


def criterion_groups(r, crit, heading):
    if not crit:
        return
    r.p(f"### {heading}")
    r.p()
    order = ["linemap-handle", "linemap-oneshot", "Mutex<std>", "RwLock<std>", "dashmap",
             "papaya", "scc", "hashbrown(1T)", "linemap", "linemap-get-insert", "quick_cache",
             "moka", "mini-moka"]
    for group in sorted(crit):
        peers = dict(sorted(crit[group].items(),
                            key=lambda kv: (order.index(kv[0]) if kv[0] in order else 99, kv[0])))
        threads = sorted({t for p in peers.values() for t in p})
        r.p(f"#### {group}, Mops/s")
        r.p()
        r.p("| peer | " + " | ".join(f"{t}T" for t in threads) + " |")
        r.p("|---|" + "---:|" * len(threads))
        for peer, pts in peers.items():
            r.p(f"| {peer} | " + " | ".join(f"{pts[t]:.2f}" if t in pts else "–"
                                             for t in threads) + " |")
        r.p()
        r.plot(f"criterion-{group}", f"{group} (criterion median)", "threads", "Mops/s",
               list(peers.items()))


def cache_section(r, a):
    r.p("## Cache: linemap::Cache against quick_cache, moka, mini-moka (`cargo bench --bench cache`)")
    r.p()
    text = r.raw("cache.txt")
    if not text:
        r.p("Not run.")
        r.p()
        return
    r.p(f"Stage time {r.seconds('cache')}. Workloads: "
        "[cache-benchmarks.md](../cache-benchmarks.md).")
    r.p()
    for title, header, rows in md_tables(text):
        if title.startswith("Throughput (ops / wall time"):
            peers = [h[:-len(" Mops/s")] for h in header if h.endswith(" Mops/s")]
            configs = dict.fromkeys((row[0], row[1]) for row in rows)
            for s, cap in configs:
                series = []
                for peer in peers:
                    j = header.index(f"{peer} Mops/s")
                    pts = {int(row[2]): num(row[j]) for row in rows
                           if (row[0], row[1]) == (s, cap) and num(row[j]) is not None}
                    if pts:
                        series.append((peer, pts))
                capl = cap.split(" (")[0].replace(" ", "")
                r.plot(f"cache-zipf-s{s}-cap{capl}",
                       f"get_or_insert_with, zipf {s}, capacity {cap}: wall Mops/s (median)",
                       "threads", "Mops/s", series)
    r.p("### zipf get_or_insert_with (custom-timed)")
    r.p()
    r.verbatim(text.split("Benchmarking")[0], demote=1)
    crit = criterion_results(os.path.join(a.raw, "criterion-cache"))
    criterion_groups(r, crit, "Hit and miss paths (criterion, median time per iteration)")


def locality_section(r, a):
    r.p("## Locality: instructions and cache misses per get (cachegrind)")
    r.p()
    rows = []
    head = None
    for f in sorted(glob.glob(os.path.join(a.raw, "locality-*.txt")),
                    key=lambda p: int(re.sub(r"\D", "", os.path.basename(p)) or 0)):
        text = read(f) or ""
        for line in text.splitlines():
            if line.startswith("cachegrind "):
                head = line
        for _, header, trs in md_tables(text):
            if header[:3] == ["size", "dist", "map"]:
                rows += trs
    if not rows:
        skipped = r.raw("locality-skipped.txt")
        r.p(f"Not run{': ' + skipped if skipped else '.'}")
        r.p()
        return
    r.p("`valgrind --tool=cachegrind --cache-sim=yes` over `examples/lookup_cost.rs` "
        "(bench-tools/lookup_cost.sh): every map is built with the same keys and hasher, then "
        "looked up N and 2N times (all hits); the difference of the two runs' totals is the cost "
        "of N gets with the setup subtracted, and the `loop-only` row (key computation and driver "
        "loop, no map) is subtracted from every map. Counts are exact for the simulated caches, "
        "independent of the machine's load. " + (f"`{head}`." if head else ""))
    r.p()
    r.p(f"Stage time {r.seconds('locality-1024')} (1K), {r.seconds('locality-100000')} (100K), "
        f"{r.seconds('locality-4194304')} (4M).")
    r.p()
    r.p("| entries | keys | map | instructions / get | D1 misses / get | LL misses / get |")
    r.p("|---:|---|---|---:|---:|---:|")
    for row in rows:
        if row[2] == "loop-only":
            continue
        name = f"**{row[2]}**" if row[2].startswith("linemap") else row[2]
        r.p(f"| {int(row[0]):,} | {'zipf(0.99)' if row[1] == 'zipf' else row[1]} | {name} | "
            f"{row[3]} | {row[4]} | {row[5]} |")
    r.p()
    r.p("Loop-only baseline (subtracted above), instructions per get: " + "; ".join(
        f"{int(row[0]):,} {row[1]} {float(row[6]):.1f}" for row in rows if row[2] == "loop-only")
        + ".")
    r.p()
    r.p("### Targets")
    r.p()
    r.p("| entries | keys | fewest D1 misses per hit | linemap (pinned handle) | "
        "linemap has the fewest? |")
    r.p("|---:|---|---|---:|---|")
    for key in dict.fromkeys((row[0], row[1]) for row in rows):
        peers = [(row[2], float(row[4])) for row in rows if (row[0], row[1]) == key
                 and row[2] != "loop-only"]
        lm = dict(peers).get("linemap-pinned-handle")
        others = [(n, d) for n, d in peers if not n.startswith("linemap")]
        if lm is None or not others:
            continue
        best = min(others, key=lambda t: t[1])
        verdict = "yes" if lm <= best[1] else f"**no** ({lm - best[1]:+.2f})"
        r.p(f"| {int(key[0]):,} | {key[1]} | {best[0]} {best[1]:.2f} (best peer) | {lm:.2f} | "
            f"{verdict} |")
    r.p()
    u4 = [float(row[4]) for row in rows if row[0] == "4194304" and row[1] == "uniform"
          and row[2] == "linemap-pinned-handle"]
    if u4:
        r.p(f"4M entries, uniform keys: linemap takes **{u4[0]:.2f}** D1 misses per hit against "
            f"the target of at most 2.0 (bucket line plus entry line): "
            f"**{'met' if u4[0] <= 2.0 else 'not met'}**.")
        r.p()
    small = [(row[1], float(row[4]), row[2]) for row in rows if row[0] == "1024"
             and row[2] in ("linemap-pinned-handle", "hashbrown")]
    if small:
        r.p("1,024 entries, the hot-set case (the whole table is hot; the target is close to zero "
            "D1 misses per hit): " + "; ".join(f"{m} {d:.2f} with {k} keys" for k, d, m in small)
            + ". Whether the table fits depends on each map's layout against the 32 KiB "
            "simulated D1.")
        r.p()
    sizes = sorted({int(row[0]) for row in rows})
    for dist in ("uniform", "zipf"):
        series = []
        for m in dict.fromkeys(row[2] for row in rows if row[2] != "loop-only"):
            pts = {int(row[0]): float(row[4]) for row in rows if row[1] == dist and row[2] == m}
            if pts:
                series.append((m, pts))
        if series and len(sizes) > 0:
            r.plot(f"locality-d1-{dist}", f"D1 misses per get, {dist} keys (cachegrind)",
                   "entries", "D1 misses / get", series)


def replay_section(r, a):
    r.p("## Hit ratios on real traces (cachesim `replay`)")
    r.p()
    text = r.raw("replay.txt")
    if not text:
        skipped = r.raw("replay-skipped.txt")
        r.p(f"Not run{': ' + skipped if skipped else '.'} The crate ships no trace data.")
        r.p()
        return
    prefix = " --prefix 200000" if "(prefix)" in text else ""
    r.p(f"`cargo run --release -p linemap-cachesim --example replay -- {a.traces}{prefix}`, "
        f"stage time {r.seconds('replay')}. "
        "Capacities are the sizes of each trace's table in the trace directory's README. "
        "Requests are issued as `get`, then `insert` on a miss; the 2-thread columns share one "
        "request index between the threads. linemap's cells show the difference from exact LRU "
        "in points.")
    r.p()
    for title, header, rows in md_tables(text):
        if not header or header[0] != "capacity":
            continue
        trace = title
        cols = [h for h in header[1:] if h not in ("forced",) and "split" not in h
                and "target" not in h]
        series = []
        for h in cols:
            j = header.index(h)
            pts = {int(num(row[0])): num(row[j]) for row in rows if num(row[j]) is not None}
            if pts:
                series.append((h, pts))
        r.plot(f"replay-{trace}", f"{trace}: request hit ratio", "capacity (entries)",
               "hit ratio %", series)
    r.verbatim(text, demote=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", required=True)
    ap.add_argument("--quick", default="0")
    ap.add_argument("--command", required=True)
    ap.add_argument("--threads", default="")
    ap.add_argument("--traces", default="../shared/traces")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for old in glob.glob(os.path.join(a.out, f"{a.arch}-*.svg")):
        os.remove(old)
    r = Report(a)
    quick = a.quick == "1"
    r.p(f"# linemap benchmarks on {a.arch}{' (QUICK MODE: smoke-test sizes, not for quoting)' if quick else ''}")
    r.p()
    r.p(f"Generated by `{a.command}` (see [benchmarks.md](../benchmarks.md)). On a shared or "
        "busy machine wall-clock numbers are noisy: compare peers within one table and quote "
        "ratios and medians; the cachegrind counts are exact.")
    if quick:
        r.p()
        r.p("**This is a quick run** (`LINEMAP_REPORT_QUICK=1`): criterion measures 0.5 s per "
            "benchmark after 0.2 s of warm-up, the mixes run at 2^18 with one repetition, the "
            "cache's zipf part at 100,000 keys and operations with one repetition, the trace "
            "replays use the first 200,000 requests of each trace unless a full replay was kept, "
            "and the locality stage runs "
            "only the 100K table with 20,000 gets unless a full locality result was kept (its "
            "section says which sizes and how many gets it has). The throughput numbers show "
            "that the suite runs; the full `bench-tools/report.sh` gives the numbers to quote.")
    r.p()
    machine(r, a)
    map_section(r, a)
    cache_section(r, a)
    locality_section(r, a)
    replay_section(r, a)
    path = os.path.join(a.out, f"{a.arch}.md")
    text = "\n".join(r.lines)
    text = re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"
    with open(path, "w") as f:
        f.write(text)
    print(f"{path}: {len(r.plots)} plots", file=sys.stderr)


if __name__ == "__main__":
    main()
