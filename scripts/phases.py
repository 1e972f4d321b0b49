#!/usr/bin/python3
"""Where a checkpoint's time goes, on each side: a memory-only pair with
the hot guest (99 MiB rewritten continuously), one checkpoint a second,
with early resume and with resume before RAM, both QEMUs tracing their
per-checkpoint phases (colo_checkpoint_phases on the primary,
colo_incoming_checkpoint_phases on the secondary). Prints each phase's
median, in ms, per mode and side.

    python3 scripts/phases.py --qemu build/qemu-system-x86_64

--vcpu-nice N runs the primary's vCPU threads at nice N once COLO runs:
with resume before RAM they share the cores with the stream.
"""
import argparse
import glob
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import colo  # noqa: E402

HOT_MIB = 99
PHASES = re.compile(r"checkpoint_phases checkpoint \d+ \(us\): (.*)")


def renice_vcpus(vm, nice):
    """Give VM's vCPU threads (named "CPU n/...": debug-threads) NICE"""
    for comm in glob.glob(f"/proc/{vm.proc.pid}/task/*/comm"):
        with open(comm) as f:
            if f.read().startswith("CPU "):
                os.setpriority(os.PRIO_PROCESS, int(comm.split("/")[4]),
                               nice)


def phases(vm, skip):
    """Each traced checkpoint of VM after the first SKIP: {phase: us}"""
    with open(vm.log, errors="replace") as f:
        rows = [dict((k, int(v)) for k, v in
                     re.findall(r"([a-z+-]+) (-?\d+)", m.group(1)))
                for m in map(PHASES.search, f) if m]
    return rows[skip:]


def run(qemu, resume_before_ram, checkpoints, warmup, nice):
    mem_end = (HOT_MIB + 1) << 20
    pair = colo.ColoPair(qemu, checkpoint_delay=1000,
                         mem=f"{HOT_MIB + 51}M", mem_end=mem_end,
                         early_resume=True,
                         resume_before_ram=resume_before_ram,
                         extra=["-trace", "enable=colo_*checkpoint_phases"])
    try:
        time.sleep(3)           # the guest's first pass over its range
        pair.start()
        if nice:
            renice_vcpus(pair.primary, nice)
        after = 0
        for _ in range(warmup + checkpoints):
            stop = pair.primary.wait_event("STOP", 30, after=after)
            after = colo.event_time(pair.primary.wait_event(
                "RESUME", 30, after=colo.event_time(stop)))
        time.sleep(1.5)         # the last one's trace on both sides
        return {vm.name: phases(vm, warmup)
                for vm in (pair.primary, pair.secondary)}
    finally:
        pair.close()


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--checkpoints", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2,
                    help="each mode this many times, interleaved")
    ap.add_argument("--vcpu-nice", type=int, default=0)
    args = ap.parse_args()
    for _ in range(args.rounds):
        for rbr in (False, True):
            out = run(args.qemu, rbr, args.checkpoints, args.warmup,
                      args.vcpu_nice)
            print("resume-before-ram" if rbr else "early-resume")
            for side, rows in out.items():
                if not rows:
                    print(f"  {side}: no trace")
                    continue
                med = {k: statistics.median(r[k] for r in rows) / 1000
                       for k in rows[0]}
                print(f"  {side} ({len(rows)}): " +
                      ", ".join(f"{k} {v:.1f}" for k, v in med.items()) +
                      f"; sum {sum(med.values()):.1f} ms", flush=True)


if __name__ == "__main__":
    main()
