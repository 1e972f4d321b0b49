"""make demo's default on a root machine: COLO under Pacemaker and corosync.

Two cluster nodes on this machine (scripts/cluster.py), the COLO resource
agent (cluster/colo) as a promotable clone, the lab fence device, the
whole stack (block replication, the COLO proxy, the Linux guest's TCP
service with a disk) and a client that sends a numbered request every
50 ms over one connection. Nobody but the cluster sends a recovery
command: the demo kills every process of the primary's node, and prints
per second the client's replies and who serves, while the cluster fences
the node, promotes the secondary, and, once the node is powered on
again, re-protects the guest on it. Last, the survivor's guest reads
back every record it acknowledged.
"""

import statistics
import time

import cluster
import fullstack


class Timeline:
    def __init__(self, c, client):
        self.c, self.client = c, client
        self.t0 = time.monotonic()
        self.seen = 0
        self.events = []

    def event(self, text):
        t = time.monotonic() - self.t0
        self.events.append((t, text))
        print(f"      {t:6.1f} s  {text}", flush=True)

    def role(self):
        roles = self.c.roles()
        p = self.c.primary()
        if p is None:
            return "nobody"
        peer = roles.get(self.c.peer(p).name)
        mode = roles[p.name][1]
        return (f"{p.name} (COLO primary, {roles[p.name][2]} checkpoints)"
                if mode == "primary" else f"{p.name} alone") + \
            (f"; {self.c.peer(p).name} secondary"
             if peer and peer[1] == "secondary" else "")

    def rows(self, seconds, until=None):
        """One row per second, for SECONDS or until UNTIL() holds"""
        start = time.monotonic()
        for i in range(seconds):
            time.sleep(max(0.0, start + i + 1 - time.monotonic()))
            rows = self.client.sent[self.seen:]
            self.seen += len(rows)
            rtt = [(r - s) * 1000 for _, s, r in rows]
            t = time.monotonic() - self.t0
            if rtt:
                print(f"{t:6.0f}  {len(rtt):>7}  {statistics.median(rtt):>7.1f}"
                      f"  {max(rtt):>7.1f}  {self.role()}", flush=True)
            else:
                print(f"{t:6.0f}  {0:>7}  {'-':>7}  {'-':>7}  {self.role()}",
                      flush=True)
            if self.client.error or (until and until()):
                return


def run(qemu, linux_dir, protected_seconds=8):
    print("Two cluster nodes (corosync 3, Pacemaker 2.1, one machine: "
          "network, mount and UTS namespaces), the COLO resource agent "
          "as a promotable clone, a lab fence device, the whole stack "
          "(block replication, the COLO proxy), a Linux guest's TCP "
          "service, one client.\n", flush=True)
    c = cluster.Cluster(qemu, linux_dir)
    client = None
    try:
        c.start()
        t0 = time.monotonic()
        p, _ = c.wait_protected(240)
        print(f"The cluster promoted {p.name}; it re-protected the guest "
              f"on {c.peer(p).name} ({time.monotonic() - t0:.0f} s).\n")
        client = fullstack.Client(c.hosts, timeout=40)
        if not client.connected.wait(90) or client.error:
            raise RuntimeError(f"client: {client.error or 'no connection'}")
        tl = Timeline(c, client)
        print("per second: the client's replies, their round trip "
              "(median, max, ms), who serves")
        print("     s  replies   median      max  who serves")
        tl.rows(protected_seconds)
        p, s = c.wait_protected(120)
        fenced_before = c.last_fenced(p, s)
        tl.event(f"every process of {p.name} (the primary's node) killed")
        c.power_off(p)
        t_loss = time.monotonic()
        tl.rows(20, until=lambda: c.primary() is s and any(
            sent > t_loss for _, sent, _ in client.sent))
        first = [r for _, sent, r in client.sent if sent > t_loss]
        if first:
            tl.event(f"{s.name} serves: first reply "
                     f"{first[0] - t_loss:.2f} s after the loss")
        c.wait(lambda: c.last_fenced(p, s) not in (fenced_before, None),
               60, f"{p.name} fenced")
        tl.event(f"the cluster fenced {p.name}: {c.last_fenced(p, s)}")
        tl.event(f"{p.name} powered on again")
        c.power_on(p, wait=False)
        t_back = time.monotonic()
        tl.rows(60, until=c.protected)
        tl.event(f"protected again, {p.name} the secondary "
                 f"({time.monotonic() - t_back:.1f} s after it came back)")
        tl.rows(protected_seconds)
        check = client.finish()
        gap = client.max_gap()
        print(f"\n{len(client.sent)} requests over one connection, the "
              f"longest wait for a reply {gap:.2f} s; {s.name}'s guest "
              f"reads back its disk: {check}")
        problems = c.observer.violations + c.console_problems()
        if check != f"good {len(client.sent)}":
            problems.append(f"the disk check: {check}")
        if problems:
            print("PROBLEMS: " + "; ".join(problems[:5]))
            return 1
        print("Never two guests served (checked every 0.1 s, and the LAN's "
              "learning of the guest's MAC).")
        return 0
    finally:
        if client:
            client.close()
        c.close()
