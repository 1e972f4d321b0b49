#!/usr/bin/python3
"""The main job: a COLO pair on this machine.

Starts a primary and a secondary QEMU (memory-only COLO: no block
replication, no colo-compare) running a guest that rewrites 99 MiB of its
memory continuously, lets them checkpoint, prints the primary's pause at
every checkpoint and what each carried, then kills the primary and fails
over to the secondary, which carries on from the last checkpoint.
"""

import argparse
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import colo  # noqa: E402


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def summary(name, values, unit="ms"):
    return (f"{name:<14} min {min(values):7.1f}  median "
            f"{statistics.median(values):7.1f}  p90 {percentile(values, 90):7.1f}"
            f"  max {max(values):7.1f} {unit}")


def guest_counter(vm):
    """The guest's counter in its first test page."""
    return vm.read_guest(colo.TEST_MEM_START, 1)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--machine", default="pc")
    ap.add_argument("--checkpoints", type=int, default=30)
    ap.add_argument("--delay", type=int, default=1000,
                    help="x-checkpoint-delay in ms")
    ap.add_argument("--no-return-path", action="store_true")
    args = ap.parse_args()

    # Ctrl-C and SIGTERM both end up in the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))

    print(f"Starting a COLO pair ({args.machine}, TCG, checkpoint every "
          f"{args.delay} ms) with a guest that rewrites 99 MiB of RAM "
          "continuously...")
    pair = colo.ColoPair(args.qemu, machine=args.machine,
                         return_path=not args.no_return_path,
                         checkpoint_delay=args.delay)
    try:
        pair.start()
        print("Both sides are in the colo state.\n")
        print(f"{'ckpt':>4}  {'pause ms':>8}  {'pages':>7}  {'sent MiB':>8}"
              f"  {'device KiB':>10}")
        pauses = []
        for i, (pause, info) in enumerate(
                pair.checkpoint_pauses(args.checkpoints), 1):
            c = info.get("colo", {})
            pauses.append(pause * 1000)
            print(f"{i:>4}  {pause * 1000:>8.1f}  {c.get('last-pages', 0):>7}"
                  f"  {c.get('last-bytes', 0) / 2**20:>8.1f}"
                  f"  {c.get('last-device-bytes', 0) / 1024:>10.1f}",
                  flush=True)
        print()
        print(summary("primary pause", pauses))
        sec = pair.secondary.cmd("query-migrate").get("colo", {})
        if sec:
            print(f"secondary:     {sec['checkpoints']} checkpoints, "
                  f"average pause {sec['average-pause'] / 1000:.1f} ms, "
                  f"last cache flush {sec['last-flush'] / 1000:.1f} ms")

        print("\nKilling the primary (SIGKILL) and failing over to the "
              "secondary...")
        pair.failover_to_secondary()
        status = pair.secondary.cmd("query-status")
        before = guest_counter(pair.secondary)
        time.sleep(1)
        after = guest_counter(pair.secondary)
        consistent = colo.guest_ram_consistent(pair.secondary)
        print(f"secondary: {status['status']}, guest counter "
              f"{before} -> {after} in 1 s, memory "
              f"{'consistent' if consistent else 'INCONSISTENT'}")
        ok = status["running"] and before != after and consistent
        print("The secondary carries on." if ok else "FAILOVER FAILED")
        return 0 if ok else 1
    finally:
        pair.close()


if __name__ == "__main__":
    sys.exit(main())
