#!/usr/bin/python3
"""COLO soak: a pair for many checkpoints, watching both sides' memory.

Runs a memory-only COLO pair (scripts/colo.py) with background RAM on, on
a guest that sweeps its memory and keeps a set of pages hot (the
benchmark's "mixed" workload), for --checkpoints checkpoints. Every
--sample checkpoints it records the resident set size (VmRSS) of both
QEMU processes and their COLO statistics; the pair must stay in COLO
throughout. At the end it fails the primary over to the secondary and
checks the secondary's memory is one consistent state of the guest.

RSS growth is measured from the end of the warm-up (--warmup checkpoints,
while caches and the RAM cache fill) to the end, on each side; the run
fails if either grows by --max-growth percent or more, or on any error.
Writes results/soak-<date>-<commit>.json (every sample) and prints a table.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import colo  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kib(vm):
    with open(f"/proc/{vm.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"{vm.name}: no VmRSS")


def colo_stats(vm):
    info = vm.cmd("query-migrate")
    if info.get("status") != "colo":
        raise RuntimeError(f"{vm.name} left COLO: {info.get('status')}")
    return info.get("colo", {})


def growth(samples, side, warmup):
    after = [s for s in samples if s["checkpoint"] >= warmup]
    start, end = after[0][side], after[-1][side]
    return start, end, 100.0 * (end - start) / start


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--checkpoints", type=int, default=1000)
    ap.add_argument("--delay", type=int, default=200,
                    help="x-checkpoint-delay in ms (default 200)")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--sample", type=int, default=25,
                    help="record RSS every this many checkpoints")
    ap.add_argument("--mem", type=int, default=256,
                    help="MiB the guest sweeps (default 256)")
    ap.add_argument("--sweep-delay", type=int, default=40000)
    ap.add_argument("--hot-pages", type=int, default=256)
    ap.add_argument("--no-background", action="store_true")
    ap.add_argument("--flush-threads", type=int, default=2,
                    help="x-colo-flush-threads on the secondary")
    ap.add_argument("--early-resume", action="store_true",
                    help="x-colo-early-resume on both sides")
    ap.add_argument("--max-growth", type=float, default=1.0,
                    help="fail at this RSS growth in percent (default 1)")
    ap.add_argument("--out", default=os.path.join(TOP, "results"))
    args = ap.parse_args()

    mem_end = (args.mem + 1) << 20
    background = None if args.no_background else {
        "x-colo-background-interval": 100,
        "x-colo-background-threshold": 1 << 20,
        "max-bandwidth": 1000 * 1000 * 1000}
    pair = colo.ColoPair(args.qemu, checkpoint_delay=args.delay,
                         mem=f"{args.mem + 51}M", sweep_delay=args.sweep_delay,
                         mem_end=mem_end, hot_pages=args.hot_pages,
                         background=background,
                         flush_threads=args.flush_threads,
                         early_resume=args.early_resume)
    samples = []
    ok = False
    t0 = time.monotonic()
    try:
        pair.start()
        p, s = pair.primary, pair.secondary
        seen = colo_stats(p)["checkpoints"]
        first = seen
        print(f"{'ckpt':>6} {'time s':>7} {'primary RSS MiB':>16}"
              f" {'secondary RSS MiB':>18} {'bg MiB':>8}")
        while seen - first < args.checkpoints:
            p.wait_event("RESUME", max(30, 10 * args.delay / 1000))
            st = colo_stats(p)
            if st["checkpoints"] == seen:
                continue
            seen = st["checkpoints"]
            n = seen - first
            if n % args.sample and n < args.checkpoints:
                continue
            sst = colo_stats(s)
            rec = {"checkpoint": n, "time_s": time.monotonic() - t0,
                   "primary_rss_kib": rss_kib(p),
                   "secondary_rss_kib": rss_kib(s),
                   "primary": st, "secondary": sst}
            samples.append(rec)
            print(f"{n:>6} {rec['time_s']:>7.0f}"
                  f" {rec['primary_rss_kib'] / 1024:>16.1f}"
                  f" {rec['secondary_rss_kib'] / 1024:>18.1f}"
                  f" {st.get('background-bytes', 0) / 2**20:>8.0f}",
                  flush=True)
        pair.failover_to_secondary()
        consistent = colo.guest_ram_consistent(pair.secondary, mem_end,
                                               args.hot_pages)
        print(f"\nfailover: secondary "
              f"{pair.secondary.cmd('query-status')['status']}, memory "
              f"{'consistent' if consistent else 'INCONSISTENT'}")
        ok = consistent
    except Exception as e:
        print(f"error: {type(e).__name__}: {e}")
    finally:
        pair.close()

    result = {"args": vars(args), "samples": samples, "passed": False}
    if samples and samples[-1]["checkpoint"] >= args.checkpoints:
        for side in ("primary_rss_kib", "secondary_rss_kib"):
            start, end, pct = growth(samples, side, args.warmup)
            result[side.replace("_kib", "_growth_percent")] = pct
            print(f"{side.split('_')[0]:>9}: RSS {start / 1024:.1f} MiB after"
                  f" {args.warmup} checkpoints, {end / 1024:.1f} MiB after"
                  f" {args.checkpoints}: {pct:+.2f}%")
            ok = ok and pct < args.max_growth
        print(f"{args.checkpoints} checkpoints in "
              f"{samples[-1]['time_s']:.0f} s")
    else:
        ok = False
    result["passed"] = ok
    commit = subprocess.run(["git", "-C", TOP, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "soak-" + datetime.datetime.now(
        datetime.timezone.utc).strftime("%Y-%m-%d-%H%M") + f"-{commit}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"{'PASS' if ok else 'FAIL'}; wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
