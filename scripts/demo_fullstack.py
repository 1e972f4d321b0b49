"""make demo's default on a root machine: COLO as users deploy it.

A primary and a secondary with block replication and the COLO proxy
(scripts/fullstack.py: network namespaces, bridges and taps that it
creates and deletes), a TCP service with a disk in the Linux guest, and
a client outside that sends a numbered request every 50 ms over one
connection. It prints a table of the client's request latency per
second, kills the primary, fails over, and shows that the client's
connection carries on. Then it re-protects the survivor: a fresh
secondary joins it (its disk copied from the survivor's while the guest
runs), the new pair checkpoints, and its primary is killed in turn. Last,
the newest survivor's guest reads back every record it acknowledged.
"""

import statistics
import time

import fullstack


def show_seconds(client, stack, start, seconds, first_second):
    """Print one row per second for SECONDS seconds from START."""
    seen = len(client.sent)
    cps_seen = stack.checkpoints() if stack.primary.alive() else None
    for i in range(seconds):
        end = start + i + 1
        time.sleep(max(0.0, end - time.monotonic()))
        rows = client.sent[seen:]
        seen += len(rows)
        rtt = [(r - s) * 1000 for _, s, r in rows]
        cps = None
        if stack.primary.alive():
            total = stack.checkpoints()
            # A pair's statistics count from 0: a survivor that was a
            # secondary counted its checkpoints as one
            cps = total - cps_seen if total >= cps_seen else total
            cps_seen = total
        if rtt:
            print(f"{first_second + i:>4}  {len(rtt):>8}  "
                  f"{statistics.median(rtt):>7.1f}  {max(rtt):>7.1f}  "
                  f"{'-' if cps is None else cps:>11}", flush=True)
        else:
            print(f"{first_second + i:>4}  {0:>8}  {'-':>7}  {'-':>7}  "
                  f"{'-' if cps is None else cps:>11}", flush=True)
        if client.error:
            break


def fail_over(client, stack, start, first_second, after_seconds, what):
    """Kill the primary, fail over, and show AFTER_SECONDS more rows."""
    print(f"\nKilling the primary ({what}, SIGKILL); on the secondary: "
          "yank, nbd-server-stop, x-colo-lost-heartbeat...")
    t = time.monotonic()
    stack.fail_over("primary")
    print(f"The secondary runs the guest alone "
          f"({time.monotonic() - t:.2f} s).\n")
    show_seconds(client, stack, start, after_seconds, first_second)


def run(qemu, linux_dir, colo_seconds=10, after_seconds=6, nic="e1000",
        background=True, early_resume=True, reprotect_seconds=8):
    print(f"Starting the whole COLO stack: block replication and the COLO "
          f"proxy (colo-compare, filter-mirror, filter-redirector, "
          f"filter-rewriter), {nic}, TCG, a checkpoint a second at most"
          f"{', early resume' if early_resume else ''}"
          f"{', background RAM' if background else ''}; the hosts and "
          f"the client are network namespaces of this machine...")
    stack = fullstack.Stack(qemu, linux_dir, nic=nic, background=background,
                            early_resume=early_resume)
    client = None
    try:
        stack.start()
        print("Both sides are in the colo state. The client connects to "
              f"the guest's service ({fullstack.GUEST_IP}:"
              f"{fullstack.SERVICE_PORT}) and sends 'w N' every 50 ms: the "
              "guest writes record N to its disk, then replies.\n")
        client = fullstack.Client(stack.hosts)
        if not client.connected.wait(60) or client.error:
            raise RuntimeError(f"client: {client.error or 'no connection'}")
        print("Each second: the replies the client got, their round trip"
              " (median, max), and the checkpoints the pair took.")
        print(f"{'s':>4}  {'replies':>8}  {'median':>7}  {'max ms':>7}  "
              f"{'checkpoints':>11}")
        start = time.monotonic()
        show_seconds(client, stack, start, colo_seconds, 1)
        fail_over(client, stack, start + colo_seconds, colo_seconds + 1,
                  after_seconds, "the first one")
        second = colo_seconds + after_seconds
        if reprotect_seconds:
            print("\nRe-protecting the survivor: it gets a primary's proxy "
                  "over QMP, a fresh secondary starts on the lost host, "
                  "the survivor's disk is copied to it while the guest "
                  "runs, and COLO starts again...")
            t = time.monotonic()
            stack.reprotect()
            print(f"Both sides are in the colo state again "
                  f"({time.monotonic() - t:.1f} s).\n")
            # The client kept going meanwhile: rows from now on
            now = time.monotonic()
            show_seconds(client, stack, now, reprotect_seconds, second + 1)
            fail_over(client, stack, now + reprotect_seconds,
                      second + reprotect_seconds + 1, after_seconds,
                      "the former secondary")
        check = client.finish()
        gap = client.max_gap()
        acked = len(client.sent)
        problems = stack.console_problems()
        print(f"\nThe client's one connection carried on: {acked} requests,"
              f" each answered once and in order; the longest wait for a "
              f"reply was {gap:.2f} s.")
        print(f"The survivor's guest read back records 1-{acked} from its "
              f"disk: {check}.")
        for p in problems:
            print(f"guest console: {p}")
        ok = check == f"good {acked}" and not problems and gap <= 2
        print("Nothing the service acknowledged was lost." if ok else
              "FAILOVER FAILED")
        return 0 if ok else 1
    finally:
        if client:
            client.close()
        stack.close()
