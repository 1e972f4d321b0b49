#!/usr/bin/python3
"""What a client sees: a real server in a COLO guest, a real load generator
outside it, through the whole COLO stack (scripts/fullstack.py: block
replication, colo-compare, filter-mirror, filter-redirector and
filter-rewriter, one machine, network namespaces), against the same guest
without COLO. make bench ARGS=--net runs it.

The guest is the full-stack test's Linux guest, which also runs Debian's
busybox httpd (guest/www). Each request of the load is its CGI
/cgi-bin/rec: a shell, a record appended to a log in the guest's tmpfs and
a 4 KiB record written through to its disk, a reply that is the same on
both sides. Its divergence runs ask for /cgi-bin/time instead, which
replies with the guest's clock: colo-compare finds every reply different,
and each asks for a checkpoint.

Two clients run at once, in the client's namespace:
 - the load: wrk (Debian's), CONNECTIONS connections on one thread, each
   sending its next request when the last one's reply came (closed loop:
   a request that a checkpoint holds up delays the ones that would have
   followed, which are never sent, so that wrk's percentiles understate
   the stalls: coordinated omission; Debian 12 has no wrk2, and an
   open-loop generator is still to try). busybox httpd closes every
   connection after its reply, so each request is a TCP connection of its
   own, through the proxy.
 - an interactive user: fullstack.Client, one connection to the guest's
   own service, a request (a record written to disk) every
   CLIENT_INTERVAL ms, or at once when the last reply came later (closed
   loop too, with one request out); the latency of each, and how long the
   primary was paused for a checkpoint while it was out.

Configurations, interleaved: the guest without COLO (its floor, once per
interval round), the baseline (10.2.2 with the crash fixes), the series
with x-colo-early-resume, with x-colo-background-ram, with
x-colo-resume-before-ram (whose primary holds its disk writes until the
secondary has the checkpoint: see docs/colo.md), at each interval; the divergence runs and a
run with no checkpoint due in it (the proxy's cost alone) at 1000 ms.

After the load, each run measures the guest's disk as its application
sees it: the guest's service writes 4 KiB blocks, then 1 MiB blocks, one
after the other, each on the disk before the next (O_DIRECT | O_DSYNC),
for DISK_MS each (its "b" request, guest/colo-init.c), and reports the
writes' latency percentiles and the throughput; checkpoints go on at the
run's interval meanwhile.

Writes results/<date>-<commit>-net.{json,md,png}. Reports; judges nothing.
"""

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import colo  # noqa: E402
import fullstack  # noqa: E402
import figures  # noqa: E402
from figures import median_cell as med  # noqa: E402

TOP = colo.TOP
INTERVALS = (200, 1000, 3000)
# No checkpoint is due within a run: what the proxy costs by itself
NO_CHECKPOINT_MS = 600000

# name: (build, Stack's arguments)
CONFIGS = {
    "no-colo": ("candidate", {"colo": False}),
    "baseline": ("baseline", {"early_resume": False}),
    "series-early": ("candidate", {"early_resume": True}),
    "series-background": ("candidate", {"early_resume": True,
                                        "background": True}),
    "series-rbr": ("candidate", {"early_resume": True,
                                 "resume_before_ram": True}),
}
# With TLS on every COLO link (fullstack.Stack's tls): --tls adds them
TLS_CONFIGS = {f"{name}-tls": (build, {**kwargs, "tls": True})
               for name, (build, kwargs) in CONFIGS.items()
               if name.startswith("series-")}
DEFAULT_CONFIGS = list(CONFIGS)
CONFIGS.update(TLS_CONFIGS)
# Where /cgi-bin/rec writes its records (guest/www/cgi-bin/rec)
DISK_RECORDS_AT = 2048 * 4096
URLS = {"periodic": "/cgi-bin/rec", "divergence": "/cgi-bin/time"}


def dist(values):
    return figures.dist(values, (90, 99))


def pauses(vm, start, end):
    """(stop, resume) wall-clock times of VM's stops that began within
    [START, END), from its QMP events"""
    vm.poll_events()
    out, stop = [], None
    for ev in vm.events:
        t = colo.event_time(ev)
        if ev["event"] == "STOP":
            stop = t
        elif ev["event"] == "RESUME" and stop is not None:
            if start <= stop < end:
                out.append((stop, t))
            stop = None
    return out


def overlap(a, b, spans):
    return sum(max(0.0, min(b, e) - max(a, s)) for s, e in spans)


def wrk(stack, url, seconds, connections):
    cmd = stack.hosts.prefix("c") + [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", os.path.join(TOP, "scripts", "netbench.lua"),
        f"http://{fullstack.GUEST_IP}:{fullstack.HTTP_PORT}{url}"]
    out = subprocess.run(cmd, capture_output=True, text=True,
                         timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("NETBENCH "):
            return json.loads(line[len("NETBENCH "):])
    raise RuntimeError(f"wrk: {out.stdout[-500:]} {out.stderr[-500:]}")


def compare_waits(stack, start, end):
    """How long each of the primary's packets with data (a TCP payload)
    waited in colo-compare (patch 74's trace; none from a baseline QEMU),
    by why it went out: "compared" or "flushed" (by a checkpoint)"""
    waits = {}
    pattern = re.compile(r"(\w+) after (\d+) us, TCP payload (\d+)$")
    for t, rest in stack.trace_lines(stack.primary, "colo_compare_release"):
        m = pattern.match(rest)
        if m and start <= t < end and int(m.group(3)) > 0:
            waits.setdefault(m.group(1), []).append(int(m.group(2)))
    return waits


def checkpoint_reasons(stops, interval):
    """Checkpoints the timer started and those colo-compare asked for: a
    stop that comes sooner than 90 % of the interval after the last one
    was asked for"""
    timer = asked = 0
    for a, b in zip(stops, stops[1:]):
        if b - a < 0.9 * interval / 1000:
            asked += 1
        else:
            timer += 1
    return {"timer": timer, "divergence": asked}


def run_one(qemu, linux_dir, name, interval, mode, args, log):
    _, stack_args = CONFIGS[name]
    delay = NO_CHECKPOINT_MS if mode == "no-checkpoint" else interval
    # The baseline's build has no qemu-img: the candidate's makes the images
    img = os.path.join(os.path.dirname(args.candidate), "qemu-img")
    stack = fullstack.Stack(qemu, linux_dir, httpd=True, img=img,
                            checkpoint_delay=delay,
                            trace="colo_compare_release", **stack_args)
    client = None
    try:
        t = time.monotonic()
        stack.start()
        boot = time.monotonic() - t
        client = fullstack.Client(stack.hosts,
                                  interval=args.client_interval / 1000)
        if not client.connected.wait(60) or client.error:
            raise RuntimeError(f"client: {client.error or 'no connection'}")
        time.sleep(args.warmup)
        wall = time.time() - time.monotonic()
        t0 = time.monotonic()
        load = wrk(stack, URLS["divergence" if mode == "divergence"
                               else "periodic"], args.seconds,
                   args.connections)
        t1 = time.monotonic()
        check = client.finish()
        disk = disk_phase(stack, client, args.disk_ms, wall) \
            if args.disk_ms else {}
        sent = [(s, r) for _, s, r in client.sent if t0 <= s < t1]
        rec = {"config": name, "interval": interval, "mode": mode,
               "boot_s": boot, "seconds": t1 - t0, "wrk": load,
               "client_check": check, "checkpoints": 0, "disk": disk}
        spans = []
        if stack.colo:
            spans = pauses(stack.primary, t0 + wall, t1 + wall)
            sspans = pauses(stack.secondary, t0 + wall, t1 + wall)
            # From the events: a baseline QEMU has no COLO statistics
            rec["checkpoints"] = len(spans)
            rec["primary_pause_ms"] = [(e - s) * 1000 for s, e in spans]
            rec["secondary_pause_ms"] = [(e - s) * 1000 for s, e in sspans]
            rec["reasons"] = checkpoint_reasons([s for s, _ in spans],
                                                delay)
            rec["compare_wait_us"] = compare_waits(stack, t0 + wall,
                                                   t1 + wall)
            rec["colo"] = stack.primary.cmd("query-migrate").get("colo", {})
            rec["problems"] = stack.log_problems()
        rec["problems"] = rec.get("problems", []) + stack.console_problems()
        if check != f"good {len(client.sent)}":
            rec["problems"].append(f"the guest's disk: {check!r}")
        rec["disk_records"] = disk_records(stack)
        if load["requests"] and mode != "divergence" and \
           not rec["disk_records"]:
            rec["problems"].append("no record of the load on the disk")
        # The interactive client's requests, and the pause each overlapped
        rec["client"] = [{"ms": (r - s) * 1000,
                          "paused_ms": overlap(s + wall, r + wall,
                                               spans) * 1000}
                         for s, r in sent]
        log(f"{name} {interval} ms {mode}: {describe(rec)}")
        return rec
    finally:
        if client:
            client.close()
        stack.close()


def disk_bench(client, ms, kib):
    """The guest's synchronous writes of KIB KiB for MS ms: their count,
    latency percentiles (us) and throughput (MB/s)"""
    reply = client.request(f"b {ms} {kib}")
    words = reply.split()
    if len(words) != 8 or words[0] != "bench":
        raise RuntimeError(f"the guest's disk bench: {reply!r}")
    n, p50, p90, p99, top, nbytes, us = map(int, words[1:])
    return {"writes": n, "p50_us": p50, "p90_us": p90, "p99_us": p99,
            "max_us": top, "mb_s": nbytes / us}


def disk_phase(stack, client, ms, wall):
    """disk_bench() with 4 KiB and 1 MiB blocks, and the checkpoints
    meanwhile"""
    t = time.monotonic()
    out = {str(kib): disk_bench(client, ms, kib) for kib in (4, 1024)}
    if stack.colo:
        out["checkpoints"] = len(pauses(stack.primary, t + wall,
                                        time.monotonic() + wall))
    return out


def disk_records(stack):
    """The records /cgi-bin/rec wrote to the primary's disk image"""
    with open(stack._path(fullstack.DISK["p"]), "rb") as f:
        f.seek(DISK_RECORDS_AT)
        data = f.read()
    return sum(1 for i in range(0, len(data), 4096)
               if data[i:i + 7] == b"record ")


def wrk_quantile(load, q):
    for p, us in load["quantiles"]:
        if p >= q:
            return us / 1000
    return load["max_us"] / 1000


def summary(rec):
    load, cl = rec["wrk"], rec["client"]
    s = {"rps": load["requests"] / (load["duration_us"] / 1e6),
         "errors": sum(load["errors"].values()),
         "p50": wrk_quantile(load, 50), "p90": wrk_quantile(load, 90),
         "p99": wrk_quantile(load, 99), "p999": wrk_quantile(load, 99.9),
         "max": load["max_us"] / 1000,
         "client": dist([c["ms"] for c in cl]),
         "client_paused": dist([c["ms"] for c in cl if c["paused_ms"] > 0]),
         "client_running": dist([c["ms"] for c in cl
                                 if c["paused_ms"] == 0]),
         "client_mean": statistics.mean([c["ms"] for c in cl]) if cl else 0,
         "client_pause_mean": (statistics.mean([c["paused_ms"] for c in cl])
                               if cl else 0),
         "cps": rec["checkpoints"] / rec["seconds"]}
    if "primary_pause_ms" in rec:
        s["pause"] = dist(rec["primary_pause_ms"])
        s["secondary_pause"] = dist(rec["secondary_pause_ms"])
    waits = rec.get("compare_wait_us", {})
    disk = rec.get("disk") or {}
    s["disk_p50_us"] = (disk.get("4") or {}).get("p50_us")
    s["disk_p99_us"] = (disk.get("4") or {}).get("p99_us")
    s["disk_mb_s"] = (disk.get("1024") or {}).get("mb_s")
    s["compared"] = dist([us / 1000 for us in waits.get("compared", [])])
    s["flushed"] = dist([us / 1000 for us in waits.get("flushed", [])])
    return s


def describe(rec):
    s = summary(rec)
    c = s["client"] or {"median": 0, "p99": 0, "max": 0}
    return (f"{s['rps']:.1f} req/s, wrk p50 {s['p50']:.1f} p99 "
            f"{s['p99']:.1f} max {s['max']:.1f} ms, {s['errors']} errors; "
            f"client p50 {c['median']:.1f} p99 {c['p99']:.1f} max "
            f"{c['max']:.1f} ms; {rec['checkpoints']} checkpoints"
            f"{'; PROBLEMS: ' + '; '.join(rec['problems']) if rec['problems'] else ''}")


def fmt(d, key="median"):
    return "-" if not d else f"{d[key]:.1f}"


def groups(runs):
    """The runs by (configuration, interval, mode), in the order they ran"""
    out = {}
    for r in runs:
        out.setdefault((r["config"], r["interval"], r["mode"]), []).append(r)
    return out


def floor_of(runs):
    f = [summary(r) for r in runs if r["config"] == "no-colo"]
    return (statistics.median(x["client_mean"] for x in f) if f else 0,
            statistics.median(x["p50"] for x in f) if f else 0)


def summary_table(runs):
    """One line per configuration, interval and mode: the medians over its
    repetitions (max: the largest)"""
    floor_mean, _ = floor_of(runs)
    lines = ["| config | interval | mode | runs | req/s | wrk p50 | p99 | "
             "p99.9 | max | errors | client p50 | p99 | max | client "
             "added mean | of which in pauses | compare wait p50/p90 "
             "(flushed) | ckpt/s | pause p50 (secondary) | disk 4 KiB "
             "p50/p99 us | disk 1 MiB MB/s |",
             "|" + "---|" * 20]
    for (name, interval, mode), rs in groups(runs).items():
        ss = [summary(r) for r in rs]

        def m(key, sub=None):
            return med([(x.get(key) or {}).get(sub) if sub else x[key]
                        for x in ss])
        added = [x["client_mean"] - floor_mean for x in ss]
        lines.append(
            f"| {name} | {interval} | {mode} | {len(rs)} | {m('rps')} | "
            f"{m('p50')} | {m('p99')} | {m('p999')} | "
            f"{max(x['max'] for x in ss):.1f} | "
            f"{sum(x['errors'] for x in ss)} | {m('client', 'median')} | "
            f"{m('client', 'p99')} | "
            f"{max((x['client'] or {}).get('max', 0) for x in ss):.1f} | "
            f"{med(added, fmt='{:+.1f}')} | {m('client_pause_mean')} | "
            f"{m('compared', 'median')}/{m('compared', 'p90')} "
            f"({med([(x['flushed'] or {}).get('n', 0) for x in ss], fmt='{:.0f}')}) | "
            f"{m('cps')} | {m('pause', 'median')} "
            f"({m('secondary_pause', 'median')}) | "
            f"{m('disk_p50_us')}/{m('disk_p99_us')} | {m('disk_mb_s')} |")
    return lines


def runs_table(runs):
    floor_mean, _ = floor_of(runs)
    lines = ["| config | interval | mode | req/s | wrk p50 | p90 | p99 | "
             "p99.9 | max | errors | client p50/p99/max | in a pause: "
             "n, p50/max | outside: p50/p99 | ckpt/s (timer+asked) | "
             "pause med/max (secondary) | client: added mean, of which "
             "pause | disk 4 KiB p50/p90/p99/max us, 1 MiB MB/s "
             "(checkpoints) |",
             "|" + "---|" * 17]
    for r in runs:
        s = summary(r)
        c, cp, cr = s["client"], s["client_paused"], s["client_running"]
        reasons = r.get("reasons", {})
        pause = s.get("pause")
        added = s["client_mean"] - floor_mean
        lines.append(
            f"| {r['config']} | {r['interval']} | {r['mode']} | "
            f"{s['rps']:.1f} | {s['p50']:.1f} | {s['p90']:.1f} | "
            f"{s['p99']:.1f} | {s['p999']:.1f} | {s['max']:.1f} | "
            f"{s['errors']} | {fmt(c)}/{fmt(c, 'p99')}/{fmt(c, 'max')} | "
            f"{cp['n'] if cp else 0}, {fmt(cp)}/{fmt(cp, 'max')} | "
            f"{fmt(cr)}/{fmt(cr, 'p99')} | {s['cps']:.2f} "
            f"({reasons.get('timer', 0)}+{reasons.get('divergence', 0)}) | "
            + (f"{fmt(pause)}/{fmt(pause, 'max')} "
               f"({fmt(s['secondary_pause'])}/"
               f"{fmt(s['secondary_pause'], 'max')})" if pause else "-")
            + f" | {added:+.1f}, {s['client_pause_mean']:.1f} | "
            + disk_cell(r.get("disk")) + " |")
    return lines


def disk_cell(disk):
    if not disk:
        return "-"
    d4, d1 = disk["4"], disk["1024"]
    return (f"{d4['p50_us']}/{d4['p90_us']}/{d4['p99_us']}/{d4['max_us']}, "
            f"{d1['mb_s']:.1f} ({disk.get('checkpoints', '-')})")


def markdown(env, runs):
    floor_mean, floor_p50 = floor_of(runs)
    p = env["params"]
    lines = [f"# Client benchmark, {env['date']}", "",
             f"Command: `{env['command']}`", "",
             f"QEMU: candidate {env['commit']} (series), baseline: "
             "10.2.2 + the crash fixes. Host: "
             f"{env['host']}. Load: wrk, {p['connections']} connections, "
             f"{p['seconds']} s a run, closed loop (see "
             "scripts/netbench.py); interactive client: one request every "
             f"{p['client_interval']} ms. {p['reps']} repetitions, "
             f"interleaved. Took {env['elapsed_s'] / 60:.1f} min.", "",
             "Latency in ms. wrk: its requests' quantiles. client: the "
             "interactive client's requests; added mean: their mean latency "
             "less the no-COLO runs' (median), and how much of it, on "
             "average, the primary spent paused for checkpoints while they "
             "were out. Compare wait: how long the primary's packets with "
             "data waited in colo-compare for the secondary's (patch 74's "
             "trace; the baseline has none), and how many a checkpoint "
             "released instead. ckpt/s: checkpoints per second. Pause: "
             "the primary's STOP to RESUME (the secondary's). Disk: the "
             "guest's own synchronous writes after the load, 4 KiB and "
             "1 MiB blocks, for "
             f"{p.get('disk_ms', 0)} ms each (its service's \"b\" "
             "request).", "",
             "## Summary", ""] + summary_table(runs) + [
             "", "## Every run", "",
             "in a pause / outside: the interactive client's requests "
             "during which the primary paused, and the others. timer + "
             "asked: checkpoints that came an interval after the last one, "
             "and those colo-compare asked for sooner.", ""]
    lines += runs_table(runs)
    lines += ["", f"Floor (no COLO): wrk p50 {floor_p50:.1f} ms, "
              f"interactive client mean {floor_mean:.1f} ms.", ""]
    problems = [f"{r['config']} {r['interval']} {r['mode']}: {p}"
                for r in runs for p in r["problems"]]
    lines += ["Problems: " + ("none" if not problems else ""), ""]
    lines += [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n"


COLORS = {"no-colo": "0.6", "baseline": "tab:red",
          "series-early": "tab:blue", "series-background": "tab:green",
          "series-rbr": "tab:purple"}
STYLES = {"periodic": "-", "divergence": "--", "no-checkpoint": ":"}


def plot(runs, path):
    """Latency CDFs: one color a configuration (every repetition drawn,
    labelled once), the floor in grey in every panel"""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [("periodic", i) for i in INTERVALS] + [("other", 1000)]
    fig, axes = plt.subplots(2, len(panels), figsize=(5 * len(panels), 8),
                             squeeze=False)
    for col, (mode, interval) in enumerate(panels):
        labelled = set()
        for r in runs:
            if r["config"] != "no-colo" and (
                    (mode == "periodic") != (r["mode"] == "periodic") or
                    (mode == "periodic" and r["interval"] != interval)):
                continue
            label = r["config"] + ("" if r["mode"] == "periodic"
                                   else f" ({r['mode']})")
            tls = r["config"].endswith("-tls")
            style = {"color": COLORS.get(r["config"].removesuffix("-tls"),
                                         "k"),
                     # the same configuration with TLS: dotted
                     "linestyle": ":" if tls else STYLES.get(r["mode"], "-"),
                     "linewidth": 1,
                     "label": None if label in labelled else label}
            labelled.add(label)
            q = r["wrk"]["quantiles"]
            axes[0][col].plot([us / 1000 for _, us in q],
                              [p / 100 for p, _ in q], **style)
            ms = sorted(c["ms"] for c in r["client"])
            axes[1][col].plot(ms, [(i + 1) / len(ms)
                                   for i in range(len(ms))], **style)
        title = (f"checkpoints every {interval} ms" if mode == "periodic"
                 else "1000 ms: divergence, no checkpoint")
        for row, what in enumerate(("wrk (load)", "interactive client")):
            ax = axes[row][col]
            ax.set_xscale("log")
            ax.set_title(f"{what}, {title}", fontsize=9)
            ax.set_xlabel("latency, ms (log)")
            ax.set_ylabel("fraction of requests")
            ax.grid(True, which="both", alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def plan(args):
    """The runs, interleaved: each interval round has every configuration
    (the floor once); then the 1000 ms divergence and no-checkpoint runs;
    all that REPS times"""
    configs = [c for c in args.configs if c != "no-colo"]
    runs = []
    for _ in range(args.reps):
        for interval in args.intervals:
            if "no-colo" in args.configs:
                runs.append(("no-colo", interval, "periodic"))
            runs += [(c, interval, "periodic") for c in configs]
        if args.extra:
            runs += [(c, 1000, "divergence") for c in ("baseline",
                                                       "series-early")
                     if c in configs]
            if "series-early" in configs:
                runs.append(("series-early", 1000, "no-checkpoint"))
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--baseline", help="baseline QEMU")
    ap.add_argument("--candidate", help="the series' QEMU")
    ap.add_argument("--linux-dir", help="scripts/linux-guest.sh's directory")
    ap.add_argument("--report", metavar="JSON",
                    help="only write the .md and .png of an earlier run")
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                    help="of: " + ", ".join(CONFIGS))
    ap.add_argument("--tls", action="store_true",
                    help="with each series configuration, the same with "
                    "TLS on every COLO link (-tls)")
    ap.add_argument("--intervals", default=",".join(map(str, INTERVALS)))
    ap.add_argument("--no-extra", dest="extra", action="store_false",
                    help="without the divergence and no-checkpoint runs")
    ap.add_argument("--reps", type=int, default=2,
                    help="repetitions of the whole plan, one after the other")
    ap.add_argument("--seconds", type=int, default=15,
                    help="the load's length, per run")
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--client-interval", type=int, default=50,
                    help="the interactive client's, in ms")
    ap.add_argument("--disk-ms", type=int, default=3000,
                    help="the guest's disk writes after the load, per block"
                    " size (0: none)")
    ap.add_argument("--out", default=os.path.join(TOP, "results"))
    args = ap.parse_args()
    if args.report:
        with open(args.report) as f:
            data = json.load(f)
        base = args.report[:-len(".json")]
        with open(base + ".md", "w") as f:
            f.write(markdown(data["env"], data["runs"]))
        plot(data["runs"], base + ".png")
        return
    if not (args.baseline and args.candidate and args.linux_dir):
        ap.error("--baseline, --candidate and --linux-dir are needed")
    args.configs = args.configs.split(",")
    if args.tls:
        args.configs = [n for c in args.configs
                        for n in (c, f"{c}-tls") if n in CONFIGS]
    args.intervals = [int(i) for i in args.intervals.split(",")]
    bad = set(args.configs) - set(CONFIGS)
    if bad:
        ap.error(f"unknown configurations: {', '.join(sorted(bad))}")
    if os.geteuid() != 0:
        ap.error("needs root: network namespaces, taps, bridges")
    qemu = {"baseline": args.baseline, "candidate": args.candidate}
    start = time.monotonic()
    runs = []
    todo = plan(args)
    for i, (name, interval, mode) in enumerate(todo):
        print(f"[{i + 1}/{len(todo)}] {name}, {interval} ms, {mode}",
              flush=True)
        runs.append(run_one(qemu[CONFIGS[name][0]], args.linux_dir, name,
                            interval, mode, args,
                            lambda m: print("  " + m, flush=True)))
    env = bench_env(args, start)
    base = os.path.join(args.out, f"{env['stamp']}-{env['commit']}-net")
    os.makedirs(args.out, exist_ok=True)
    with open(base + ".json", "w") as f:
        json.dump({"env": env, "runs": runs}, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(markdown(env, runs))
    plot(runs, base + ".png")
    print(f"wrote {base}.{{json,md,png}}")


def bench_env(args, start):
    now = datetime.datetime.now(datetime.timezone.utc)
    commit = subprocess.run(["git", "-C", TOP, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True,
                                 text=True).stdout.splitlines()[:1]
    return {"date": now.strftime("%Y-%m-%d %H:%M UTC"),
            "stamp": now.strftime("%Y-%m-%d-%H%M"), "commit": commit,
            "command": "make bench ARGS=\"--net " + " ".join(
                a for a in sys.argv[1:] if not a.startswith(
                    ("--baseline", "--candidate", "--linux-dir", "/"))) +
                "\"",
            "host": f"{platform.node()}, {os.cpu_count()} CPUs, "
                    f"{platform.release()}",
            "wrk": wrk_version, "params": vars(args),
            "elapsed_s": time.monotonic() - start}


if __name__ == "__main__":
    main()
