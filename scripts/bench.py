#!/usr/bin/python3
"""COLO checkpoint downtime benchmark: the baseline and the series, one run.

Runs memory-only COLO pairs (scripts/colo.py) of two builds of QEMU on this
machine, interleaved, on four guest workloads at three checkpoint
intervals, and records for every checkpoint the primary's pause (QMP STOP
to RESUME), the secondary's stop, what the pause carried and what went in
the background, and the guest's progress. Writes results/<date>-<commit>.json
(raw samples and environment), .md (tables, ratios) and .png (plots).

The guest is the migration-test boot sector with the series' knobs (see
tests/qtest/migration/i386/a-b-bootblock.S): it increments byte 0 of each
page of its range in turn, spinning SWEEP_DELAY times after each page,
rewriting its first HOT_PAGES pages after each page, and counts the pages
it writes at guest address 0x6000 (its progress, in pages per second).

It reports; it does not judge: no result makes it fail.
"""

import argparse
import datetime
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import colo  # noqa: E402
from figures import dist, median_cell, percentile  # noqa: E402

TOP = colo.TOP
PROGRESS_ADDR = 0x6000
INTERVALS = (200, 1000, 3000)

# Guest behaviour, the independent variable (documented in docs/colo.md)
WORKLOADS = {
    # one page every few seconds: what a checkpoint costs with no RAM
    "idle": dict(sweep_delay=0xffffffff, mem=99, hot_pages=0),
    # 99 MiB rewritten continuously: every page dirty at every checkpoint
    "hot": dict(sweep_delay=0, mem=99, hot_pages=0),
    # 512 MiB written once per pass, a pass of several seconds
    "sweep": dict(sweep_delay=None, mem=512, hot_pages=0),
    # the sweep, plus 1 MiB (256 pages) rewritten after every page
    "mixed": dict(sweep_delay=None, mem=512, hot_pages=256),
}


def progress(vm):
    return int.from_bytes(vm.read_guest(PROGRESS_ADDR, 4), "little")


def progress_rate(vm, seconds):
    """Pages per second the guest writes, over SECONDS."""
    p0, t0 = progress(vm), time.monotonic()
    time.sleep(seconds)
    p1, t1 = progress(vm), time.monotonic()
    return ((p1 - p0) & 0xffffffff) / (t1 - t0)


# The guest alone: ALONE_SAMPLES windows before COLO and as many after it
# (the survivor of a failover, alone again), each as long as a checkpoint
# interval (1 s at least, 3 s at most), so that "alone" and "under COLO"
# are measured over comparable spans of the same process, and their
# spread shows how far the figure can be trusted.
ALONE_SAMPLES = 3


def alone_rates(vm, interval):
    window = min(3.0, max(1.0, interval / 1000))
    return [progress_rate(vm, window) for _ in range(ALONE_SAMPLES)]


def colo_stats(vm):
    return vm.cmd("query-migrate").get("colo", {})


def run_one(cfg, workload, interval, args):
    """One COLO pair, one configuration: returns the run's record."""
    w = dict(WORKLOADS[workload])
    if w["sweep_delay"] is None:
        w["sweep_delay"] = args.sweep_delay
    mem_end = (w["mem"] + 1) << 20
    background = None
    if cfg["background"]:
        background = {"x-colo-background-interval": args.bg_interval,
                      "x-colo-background-threshold": args.bg_threshold,
                      "max-bandwidth": args.bg_max_bandwidth}
    rec = {"config": cfg["name"], "workload": workload,
           "interval_ms": interval, "checkpoints": []}
    pair = colo.ColoPair(cfg["qemu"], checkpoint_delay=interval,
                         mem=f"{(mem_end >> 20) + 50}M",
                         sweep_delay=w["sweep_delay"], mem_end=mem_end,
                         hot_pages=w["hot_pages"], background=background,
                         link=args.link, xbzrle=cfg.get("xbzrle", False),
                         flush_threads=cfg.get("flush_threads"),
                         early_resume=cfg.get("early_resume", False),
                         resume_before_ram=cfg.get("resume_before_ram",
                                                   False),
                         tls=cfg.get("tls", False))
    try:
        # The guest's own loop alone, once it has written its whole range
        # once (the first pass also faults the host pages in); the idle
        # guest writes a page every few seconds, no rate to measure
        if workload != "idle":
            pages = (mem_end >> 12) - 256
            deadline = time.monotonic() + 20
            while (progress(pair.primary) < pages and
                   time.monotonic() < deadline):
                time.sleep(0.1)
            time.sleep(1.0)
            rec["alone_before"] = alone_rates(pair.primary, interval)
        pair.start()
        timeout = max(30, 10 * interval / 1000)
        p, s = pair.primary, pair.secondary
        s.poll_events()
        s.events.clear()
        after_p = after_s = 0
        t_start = p_start = None
        for i in range(args.warmup + args.checkpoints):
            stop = p.wait_event("STOP", timeout, after=after_p)
            resume = p.wait_event("RESUME", timeout,
                                  after=colo.event_time(stop))
            after_p = colo.event_time(resume)
            sstop = s.wait_event("STOP", timeout, after=after_s)
            sresume = s.wait_event("RESUME", timeout,
                                   after=colo.event_time(sstop))
            after_s = colo.event_time(sresume)
            if i < args.warmup:
                continue
            if t_start is None:
                t_start, p_start = time.monotonic(), progress(p)
                t_last, p_last = t_start, p_start
            elif workload != "idle":
                # the guest's rate over each checkpoint interval
                now, pages = time.monotonic(), progress(p)
                rec.setdefault("colo_intervals", []).append(
                    ((pages - p_last) & 0xffffffff) / (now - t_last))
                t_last, p_last = now, pages
            c = {"pause_ms": (after_p - colo.event_time(stop)) * 1000,
                 "secondary_stop_ms":
                     (after_s - colo.event_time(sstop)) * 1000,
                 # the checkpoint is on its way while the primary runs:
                 # until the secondary resumes from it, loaded
                 "stream_ms": (after_s - after_p) * 1000}
            st = colo_stats(p)
            for k in ("last-pause", "last-bytes", "last-pages",
                      "last-device-bytes",
                      "background-bytes", "background-wasted-bytes"):
                if k in st:
                    c[k] = st[k]
            sst = colo_stats(s)
            if "last-flush" in sst:
                c["secondary_flush_us"] = sst["last-flush"]
            rec["checkpoints"].append(c)
        rec["colo_pages_per_s"] = (((progress(p) - p_start) & 0xffffffff) /
                                   (time.monotonic() - t_start))
        if workload != "idle":
            pair.failover_to_primary()
            rec["alone_after"] = alone_rates(p, interval)
            rec["native_pages_per_s"] = statistics.median(
                rec["alone_before"] + rec["alone_after"])
    except Exception as e:  # a failed run is reported, not fatal
        rec["error"] = f"{type(e).__name__}: {e}"
    finally:
        pair.close()
    # background and wasted bytes per checkpoint, from the running totals
    prev = {}
    for c in rec["checkpoints"]:
        for k in ("background-bytes", "background-wasted-bytes"):
            if k in c:
                c[k + "-delta"] = c[k] - prev.get(k, c[k])
                prev[k] = c[k]
    return rec


def environment(args, configs):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def git(*a):
        try:
            return subprocess.run(["git", "-C", os.path.join(TOP, "qemu"),
                                   *a], capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "host": platform.node(), "cpu": cpu, "cpus": os.cpu_count(),
            "kernel": platform.release(), "accel": "tcg", "machine": "pc",
            "link": args.link or "loopback",
            "candidate_commit": git("rev-parse", "HEAD"),
            "baseline_commit": git("rev-parse", "baseline"),
            "project_commit": subprocess.run(
                ["git", "-C", TOP, "rev-parse", "--short", "HEAD"],
                capture_output=True, text=True).stdout.strip() or None,
            "configs": [{k: v for k, v in c.items()} for c in configs],
            "params": vars(args)}


def summarize(runs, configs):
    """{(workload, interval, config): summary} over all runs."""
    out = {}
    for r in runs:
        key = (r["workload"], r["interval_ms"], r["config"])
        s = out.setdefault(key, {"pause": [], "sstop": [], "stream": [],
                                 "bytes": [],
                                 "bg": [], "wasted": [], "native": [],
                                 "colo": [], "errors": 0})
        if "error" in r:
            s["errors"] += 1
        for c in r["checkpoints"]:
            s["pause"].append(c["pause_ms"])
            s["sstop"].append(c["secondary_stop_ms"])
            if "stream_ms" in c:
                s["stream"].append(c["stream_ms"])
            if "last-bytes" in c:
                s["bytes"].append(c["last-bytes"])
            if "background-bytes-delta" in c:
                s["bg"].append(c["background-bytes-delta"])
                s["wasted"].append(c["background-wasted-bytes-delta"])
        if "native_pages_per_s" in r:
            s["native"].append(r["native_pages_per_s"])
            s.setdefault("alone", []).extend(r["alone_before"] +
                                             r["alone_after"])
            s.setdefault("intervals", []).extend(r.get("colo_intervals", []))
        if "colo_pages_per_s" in r:
            s["colo"].append(r["colo_pages_per_s"])
    return out


def med(values, scale=1.0):
    """A median cell: n/a where the build has no such figure"""
    return median_cell(values, scale, empty="n/a")


def progress_cell(s):
    """Progress under COLO as % of alone, with the spread of both: the
    alone windows (min-max) and the checkpoint intervals (p10-p90)."""
    alone = statistics.median(s["native"])
    cell = f"{100 * statistics.median(s['colo']) / alone:.0f}%"
    a = s.get("alone", [])
    if a:
        cell += (f" (alone {100 * min(a) / alone:.0f}-"
                 f"{100 * max(a) / alone:.0f}%")
        iv = s.get("intervals", [])
        if iv:
            cell += (f", intervals {100 * percentile(iv, 10) / alone:.0f}-"
                     f"{100 * percentile(iv, 90) / alone:.0f}%")
        cell += ")"
    return cell


def markdown(env, summ, configs, args):
    names = [c["name"] for c in configs]
    base = names[0]
    lines = [f"# COLO downtime benchmark, {env['date'][:16]} UTC", "",
             f"Machine: {env['cpu']}, {env['cpus']} CPUs, TCG, pc; link: "
             f"{env['link']}. Candidate {str(env['candidate_commit'])[:12]} "
             f"(full series), baseline {str(env['baseline_commit'])[:12]} "
             "(base + the crash fixes). "
             f"{args.reps} run(s) of {args.checkpoints} checkpoints per "
             f"line after {args.warmup} warm-up checkpoints. Background RAM "
             f"(candidate): interval {args.bg_interval} ms, threshold "
             f"{args.bg_threshold} bytes, max-bandwidth "
             f"{args.bg_max_bandwidth} B/s. x-colo-flush-threads "
             f"(candidate): {getattr(args, 'flush_threads', 1)}.", "",
             f"Command: `{env['command']}`", "",
             "Pause: primary STOP to RESUME, ms. Floor: median pause on the "
             "idle guest, same build and interval. Secondary stop: the "
             "secondary's STOP to RESUME, ms (median). Stream: the "
             "primary's RESUME to the secondary's, ms (median): how long "
             "the checkpoint is still on its way, or being loaded, while "
             "the primary runs (negative where the primary waits for the "
             "secondary). Carried: RAM and device "
             "state sent during the pause (MiB, median; n/a on the "
             "baseline, which has no COLO statistics). Background, wasted: "
             "MiB per checkpoint sent between checkpoints, and of that what "
             "the guest dirtied again. Progress: guest pages written per "
             "second under COLO, as % of the same guest alone (not for "
             "idle, which writes a page every few seconds); alone is the "
             f"median of {ALONE_SAMPLES} windows before COLO and "
             f"{ALONE_SAMPLES} after it (the primary alone after a "
             "failover), each one checkpoint interval long (1-3 s); in "
             "brackets the range of those windows and the p10-p90 of the "
             "guest's rate over single checkpoint intervals under COLO, "
             "both as % of alone.", "",
             "| workload | interval | build | n | min | median | p90 | max "
             "| x floor | secondary stop | stream | carried | background "
             "| wasted | progress | median vs baseline | p90 vs baseline |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
             "---|---|"]
    for wl in WORKLOADS:
        for iv in INTERVALS:
            for name in names:
                s = summ.get((wl, iv, name))
                if not s or not s["pause"]:
                    if s and s["errors"]:
                        lines.append(f"| {wl} | {iv} | {name} | failed "
                                     "||||||||||||||")
                    continue
                d = dist(s["pause"])
                floor = summ.get(("idle", iv, name))
                fl = (f"{d['median'] / statistics.median(floor['pause']):.1f}"
                      if floor and floor["pause"] else "n/a")
                prog = "n/a"
                if wl == "idle":
                    prog = "-"  # a page every few seconds: no rate to tell
                elif s["colo"] and s["native"] and statistics.median(s["native"]):
                    prog = progress_cell(s)
                b = summ.get((wl, iv, base))
                r_med = r_p90 = ""
                if name != base and b and b["pause"]:
                    db = dist(b["pause"])
                    r_med = f"{d['median'] / db['median']:.2f}"
                    r_p90 = f"{d['p90'] / db['p90']:.2f}"
                lines.append(
                    f"| {wl} | {iv} | {name} | {d['n']} | {d['min']:.1f} | "
                    f"{d['median']:.1f} | {d['p90']:.1f} | {d['max']:.1f} | "
                    f"{fl} | {med(s['sstop'])} | {med(s['stream'])} | "
                    f"{med(s['bytes'], 2**20)} | "
                    f"{med(s['bg'], 2**20)} | {med(s['wasted'], 2**20)} | "
                    f"{prog} | {r_med} | {r_p90} |")
    lines += ["", f"Ratios are the build's / {base}'s (below 1: the build "
              "pauses less)." if len(names) > 1 else ""]
    return "\n".join(lines) + "\n"


def plot(summ, configs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [c["name"] for c in configs]
    palette = ["#888888", "#4c72b0", "#dd8452", "#55a868", "#c44e52",
               "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
    colors = [palette[k % len(palette)] for k in range(len(names))]
    # Only the workloads the run measured
    workloads = [wl for wl in WORKLOADS if any(k[0] == wl for k in summ)]
    fig, axes = plt.subplots(len(workloads) + 1, len(INTERVALS),
                             figsize=(4.2 * len(INTERVALS),
                                      2.8 * (len(workloads) + 1)),
                             squeeze=False)
    for i, wl in enumerate(workloads):
        for j, iv in enumerate(INTERVALS):
            ax = axes[i][j]
            data = [summ.get((wl, iv, n), {}).get("pause") or [float("nan")]
                    for n in names]
            bp = ax.boxplot(data, labels=names, whis=(0, 100),
                            patch_artist=True, widths=0.6)
            for patch, c in zip(bp["boxes"], colors):
                patch.set_facecolor(c)
            ax.set_yscale("log")
            ax.set_title(f"{wl}, {iv} ms", fontsize=10)
            ax.tick_params(labelsize=8)
            if j == 0:
                ax.set_ylabel("primary pause (ms)")
    for j, iv in enumerate(INTERVALS):
        ax = axes[-1][j]
        busy = [wl for wl in workloads if wl != "idle"]
        x = range(len(busy))
        width = 0.8 / len(names)
        for k, n in enumerate(names):
            vals = []
            for wl in busy:
                s = summ.get((wl, iv, n))
                vals.append(100 * statistics.median(s["colo"]) /
                            statistics.median(s["native"])
                            if s and s["colo"] and s["native"] and
                            statistics.median(s["native"]) else 0)
            ax.bar([xi + k * width for xi in x], vals, width,
                   color=colors[k], label=n)
        ax.set_xticks([xi + width * (len(names) - 1) / 2 for xi in x])
        ax.set_xticklabels(busy, fontsize=8)
        ax.set_title(f"guest progress under COLO, {iv} ms", fontsize=10)
        ax.set_ylabel("% of alone")
        if j == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    global INTERVALS
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--baseline", help="baseline QEMU binary")
    ap.add_argument("--candidate", help="candidate binary")
    ap.add_argument("--report", metavar="JSON",
                    help="only write the .md and .png of an earlier run")
    ap.add_argument("--full", action="store_true",
                    help="full mode: 6 configurations, 2 runs x 12"
                    " checkpoints each (default: quick, 1 run x 5)")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--checkpoints", type=int)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--intervals", default=",".join(map(str, INTERVALS)))
    ap.add_argument("--sweep-delay", type=int, default=40000,
                    help="guest spins per page of the sweep (its rate)")
    ap.add_argument("--bg-interval", type=int, default=100)
    ap.add_argument("--bg-threshold", type=int, default=1 << 20)
    ap.add_argument("--bg-max-bandwidth", type=int, default=1000 * 1000 * 1000)
    ap.add_argument("--link", help="e.g. 1gbit: two network namespaces"
                    " joined by a shaped link (needs root)")
    ap.add_argument("--flush-threads", type=int, default=2,
                    help="x-colo-flush-threads on the secondary of the"
                    " series (default 2)")
    ap.add_argument("--xbzrle", action="store_true",
                    help="also measure the series with XBZRLE (always in"
                    " --full)")
    ap.add_argument("--early-resume", action="store_true",
                    help="also measure the series with x-colo-early-resume"
                    " (always in --full)")
    ap.add_argument("--resume-before-ram", action="store_true",
                    help="also measure the series with early resume and"
                    " x-colo-resume-before-ram (always in --full)")
    ap.add_argument("--tls", action="store_true",
                    help="also measure series, series-early and series-rbr"
                    " with x509 TLS on the migration stream (series-tls,"
                    " series-early-tls, series-rbr-tls; with their"
                    " flags)")
    ap.add_argument("--only", help="comma-separated configurations to run"
                    " (of baseline, series-nobg, series, series-xbzrle,"
                    " series-early, series-rbr, and with --tls their -tls"
                    " twins)")
    ap.add_argument("--out", default=os.path.join(TOP, "results"))
    args = ap.parse_args()
    if args.report:
        return report(args.report)
    if not (args.baseline and args.candidate):
        ap.error("--baseline and --candidate are required")
    args.reps = args.reps or (2 if args.full else 1)
    args.checkpoints = args.checkpoints or (12 if args.full else 5)
    INTERVALS = tuple(int(x) for x in args.intervals.split(","))
    workloads = args.workloads.split(",")

    configs = [{"name": "baseline", "qemu": args.baseline,
                "background": False}]
    if args.full:
        configs.append({"name": "series-nobg", "qemu": args.candidate,
                        "background": False,
                        "flush_threads": args.flush_threads})
    configs.append({"name": "series", "qemu": args.candidate,
                    "background": True, "flush_threads": args.flush_threads})
    if args.full or args.xbzrle:
        configs.append({"name": "series-xbzrle", "qemu": args.candidate,
                        "background": True, "xbzrle": True,
                        "flush_threads": args.flush_threads})
    if args.full or args.early_resume:
        configs.append({"name": "series-early", "qemu": args.candidate,
                        "background": True, "early_resume": True,
                        "flush_threads": args.flush_threads})
    if args.full or args.resume_before_ram:
        configs.append({"name": "series-rbr", "qemu": args.candidate,
                        "background": True, "early_resume": True,
                        "resume_before_ram": True,
                        "flush_threads": args.flush_threads})

    if args.tls:
        configs += [{**c, "name": c["name"] + "-tls", "tls": True}
                    for c in configs if c["name"] in
                    ("series", "series-early", "series-rbr")]
    if args.only:
        keep = args.only.split(",")
        configs = [c for c in configs if c["name"] in keep]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    env = environment(args, configs)
    env["command"] = " ".join(["scripts/bench.py"] + sys.argv[1:])
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")
    base = os.path.join(args.out, f"{stamp}-{env['project_commit']}")
    os.makedirs(args.out, exist_ok=True)

    plan = [(rep, wl, iv) for rep in range(args.reps) for wl in workloads
            for iv in INTERVALS]
    total = len(plan) * len(configs)
    runs, n, t0 = [], 0, time.monotonic()
    rng = random.Random(1)
    for rep, wl, iv in plan:
        order = list(configs)
        rng.shuffle(order)  # interleaved, in no fixed order
        for cfg in order:
            n += 1
            rec = run_one(cfg, wl, iv, args)
            rec["rep"] = rep
            runs.append(rec)
            p = [c["pause_ms"] for c in rec["checkpoints"]]
            eta = (time.monotonic() - t0) / n * (total - n)
            print(f"[{n}/{total}] {wl:5} {iv:4} ms {cfg['name']:11} "
                  + (f"pause median {statistics.median(p):7.1f} ms"
                     if p else "") + (f"  ERROR {rec['error']}"
                                      if "error" in rec else "")
                  + f"  (about {eta / 60:.0f} min left)", flush=True)
            with open(base + ".json", "w") as f:
                json.dump({"environment": env, "runs": runs}, f, indent=1)

    write_report(base, env, runs, configs, args)
    return 0


def write_report(base, env, runs, configs, args):
    summ = summarize(runs, configs)
    with open(base + ".md", "w") as f:
        f.write(markdown(env, summ, configs, args))
    written = ".json, .md"
    try:
        plot(summ, configs, base + ".png")
        written += ", .png"
    except ImportError:
        print("no matplotlib: no plot (apt-get install python3-matplotlib)")
    print(f"\nwrote {base}{written}")
    with open(base + ".md") as f:
        print(f.read())


def report(path):
    """The .md and .png of the run recorded in PATH."""
    global INTERVALS
    with open(path) as f:
        data = json.load(f)
    env = data["environment"]
    args = argparse.Namespace(**env["params"])
    INTERVALS = tuple(int(x) for x in args.intervals.split(","))
    write_report(path[:-len(".json")], env, data["runs"], env["configs"],
                 args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
