#!/usr/bin/python3
"""The main job: a COLO pair on this machine.

As root, with --linux-dir (demo.sh gives it), the whole stack under
Pacemaker and corosync: see scripts/demo_cluster.py (with --scripted,
without a cluster manager: scripts/demo_fullstack.py). Otherwise, or with
--memory-only, this:
starts a primary and a secondary QEMU (memory-only COLO: no block
replication, no colo-compare) running a guest that rewrites 99 MiB of its
memory continuously, lets them checkpoint, prints the primary's pause at
every checkpoint and what each carried, then kills the primary and fails
over to the secondary, which carries on from the last checkpoint. Then it
re-protects the survivor: a fresh secondary joins it, the new pair
checkpoints, and the survivor is lost in turn, to the newest secondary.
"""

import argparse
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import colo  # noqa: E402
from figures import percentile  # noqa: E402


def summary(name, values, unit="ms"):
    return (f"{name:<14} min {min(values):7.1f}  median "
            f"{statistics.median(values):7.1f}  p90 {percentile(values, 90):7.1f}"
            f"  max {max(values):7.1f} {unit}")


def guest_counters(vm, end):
    """The guest's counters, one per test page."""
    return vm.read_guest(colo.TEST_MEM_START,
                         end - colo.TEST_MEM_START)[::colo.PAGE]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--linux-dir",
                    help="the Linux guest (scripts/linux-guest.sh): show"
                    " the whole COLO stack with a client (needs root)")
    ap.add_argument("--memory-only", action="store_true",
                    help="a memory-only pair (no disk, no network) with a"
                    " guest that rewrites its RAM, and its checkpoints")
    ap.add_argument("--scripted", action="store_true",
                    help="the whole stack without a cluster manager: the"
                    " demo itself kills the primary and sends the"
                    " failover and re-protection commands")
    ap.add_argument("--machine", default="pc")
    ap.add_argument("--checkpoints", type=int, default=30)
    ap.add_argument("--delay", type=int, default=1000,
                    help="x-checkpoint-delay in ms")
    ap.add_argument("--no-return-path", action="store_true")
    ap.add_argument("--sweep-delay", type=int, default=0,
                    help="make the guest spin this much after each page it"
                    " writes: a slow sweep instead of a hot range")
    ap.add_argument("--mem", type=int, default=0,
                    help="MiB of RAM the guest writes (default 99);"
                    " the VM gets 50 MiB more")
    ap.add_argument("--link",
                    help="two hosts: run each side in its own network"
                    " namespace, joined by a link shaped to this rate"
                    " (e.g. 1gbit; needs root)")
    ap.add_argument("--max-bandwidth", type=int,
                    help="max-bandwidth in bytes/s (for background RAM)")
    ap.add_argument("--background", action="store_true",
                    help="send dirty RAM between checkpoints"
                    " (x-colo-background-ram)")
    ap.add_argument("--interval", type=int,
                    help="x-colo-background-interval in ms")
    ap.add_argument("--threshold", type=int,
                    help="x-colo-background-threshold in bytes (0: auto)")
    ap.add_argument("--downtime-limit", type=int,
                    help="downtime-limit in ms (for the auto threshold)")
    ap.add_argument("--flush-threads", type=int, default=2,
                    help="x-colo-flush-threads on the secondary (default 2:"
                    " both VMs are stopped while it copies a checkpoint)")
    ap.add_argument("--xbzrle", action="store_true",
                    help="send only what changed in each page (the xbzrle"
                    " capability, with a cache for every page the guest"
                    " writes)")
    ap.add_argument("--no-early-resume", action="store_true",
                    help="keep the primary stopped until the secondary has"
                    " loaded each checkpoint (default: x-colo-early-resume,"
                    " it resumes once the secondary has received it)")
    ap.add_argument("--reprotect-checkpoints", type=int, default=10,
                    help="after the failover, checkpoints of the survivor"
                    " with a fresh secondary, before it is lost in turn"
                    " (0: end with the first failover)")
    ap.add_argument("--reprotect-seconds", type=int, default=8,
                    help="the whole stack: after the failover, seconds of"
                    " COLO of the survivor with a fresh secondary, before"
                    " it is lost in turn (0: end with the first failover)")
    args = ap.parse_args()
    if args.linux_dir and not args.memory_only:
        if os.geteuid() == 0 and not args.scripted:
            import demo_cluster
            return demo_cluster.run(os.path.abspath(args.qemu),
                                    os.path.abspath(args.linux_dir))
        if os.geteuid() == 0:
            import demo_fullstack
            return demo_fullstack.run(
                args.qemu, args.linux_dir,
                reprotect_seconds=args.reprotect_seconds)
        print("The whole COLO stack needs root (network namespaces, "
              "bridges, taps): showing a memory-only pair instead.\n")
    background = None
    if args.background:
        background = {k: v for k, v in (
            ("x-colo-background-interval", args.interval),
            ("x-colo-background-threshold", args.threshold),
            ("downtime-limit", args.downtime_limit),
            ("max-bandwidth", args.max_bandwidth)) if v is not None}
    mem_end = (args.mem + 1) << 20 if args.mem else colo.TEST_MEM_END

    # Ctrl-C and SIGTERM both end up in the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))

    size = (mem_end - colo.TEST_MEM_START) >> 20
    guest = (f"sweeps {size} MiB of RAM slowly (delay {args.sweep_delay})"
             if args.sweep_delay else
             f"rewrites {size} MiB of RAM continuously")
    print(f"Starting a COLO pair ({args.machine}, TCG, checkpoint every "
          f"{args.delay} ms{', link ' + args.link if args.link else ''}{', background RAM' if background is not None else ''}{', XBZRLE' if args.xbzrle else ''}{'' if args.no_early_resume else ', early resume'})"
          f" with a guest that {guest}...")
    pair = colo.ColoPair(args.qemu, machine=args.machine,
                         return_path=not args.no_return_path,
                         checkpoint_delay=args.delay,
                         sweep_delay=args.sweep_delay, background=background,
                         mem=f"{(mem_end >> 20) + 50}M",
                         mem_end=mem_end if args.mem else None,
                         link=args.link, xbzrle=args.xbzrle,
                         flush_threads=args.flush_threads,
                         early_resume=not args.no_early_resume)
    try:
        pair.start()
        print("Both sides are in the colo state.\n")
        show_checkpoints(pair, args.checkpoints)
        ok = fail_over(pair, mem_end)
        if ok and args.reprotect_checkpoints:
            print("\nRe-protecting the survivor: a fresh secondary with the "
                  "first one's command line joins it...")
            pair.reprotect()
            print("Both sides are in the colo state again, the survivor is "
                  "the new primary.\n")
            show_checkpoints(pair, args.reprotect_checkpoints)
            ok = fail_over(pair, mem_end)
        return 0 if ok else 1
    finally:
        pair.close()


def show_checkpoints(pair, count):
    """Print COUNT checkpoints of PAIR, then their summary."""
    print(f"{'ckpt':>4}  {'pause ms':>8}  {'pages':>7}  {'sent MiB':>8}"
          f"  {'device KiB':>10}  {'bg MiB':>7}  {'wasted MiB':>10}")
    pauses = []
    sent = []
    # COLO's statistics start from 0 with each pair
    bg_prev = wasted_prev = 0
    for i, (pause, info) in enumerate(pair.checkpoint_pauses(count), 1):
        c = info.get("colo", {})
        pauses.append(pause * 1000)
        sent.append(c.get("last-bytes", 0) / 2**20)
        bg = c.get("background-bytes", 0)
        wasted = c.get("background-wasted-bytes", 0)
        print(f"{i:>4}  {pause * 1000:>8.1f}  {c.get('last-pages', 0):>7}"
              f"  {sent[-1]:>8.1f}"
              f"  {c.get('last-device-bytes', 0) / 1024:>10.1f}"
              f"  {(bg - bg_prev) / 2**20:>7.1f}"
              f"  {(wasted - wasted_prev) / 2**20:>10.1f}",
              flush=True)
        bg_prev, wasted_prev = bg, wasted
    print()
    print(summary("primary pause", pauses))
    print(summary("sent in pause", sent, "MiB"))
    sec = pair.secondary.cmd("query-migrate").get("colo", {})
    # With early resume the secondary may still be loading the last one
    done = info.get("colo", {}).get("checkpoints", 0)
    for _ in range(100):
        if not sec or sec["checkpoints"] >= done:
            break
        time.sleep(0.02)
        sec = pair.secondary.cmd("query-migrate").get("colo", {})
    if sec:
        print(f"secondary:     {sec['checkpoints']} checkpoints, "
              f"average pause {sec['average-pause'] / 1000:.1f} ms, "
              f"last cache flush {sec['last-flush'] / 1000:.1f} ms")


def fail_over(pair, mem_end):
    """Kill PAIR's primary, fail over to its secondary, and say whether
    the secondary's guest runs on from one consistent state."""
    print(f"\nKilling the primary (started as '{pair.primary.name}', "
          f"SIGKILL) and failing over to the secondary (started as "
          f"'{pair.secondary.name}')...")
    pair.failover_to_secondary()
    status = pair.secondary.cmd("query-status")
    before = guest_counters(pair.secondary, mem_end)
    time.sleep(1)
    after = guest_counters(pair.secondary, mem_end)
    written = sum(a != b for a, b in zip(before, after))
    consistent = colo.guest_ram_consistent(pair.secondary, mem_end)
    print(f"{pair.secondary.name}: {status['status']}, the guest wrote "
          f"{written} pages in 1 s, memory "
          f"{'consistent' if consistent else 'INCONSISTENT'}")
    ok = status["running"] and written and consistent
    print("The secondary carries on." if ok else "FAILOVER FAILED")
    return ok


if __name__ == "__main__":
    sys.exit(main())
