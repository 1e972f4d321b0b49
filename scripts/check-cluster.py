#!/usr/bin/python3
"""The COLO resource agent under Pacemaker and corosync, end to end (make
check runs it as root).

Two cluster nodes on this machine (scripts/cluster.py), the full stack on
them (block replication and the COLO proxy, the Linux guest's TCP
service), the COLO resource as a promotable clone, the lab fence device,
a ping resource that keeps the primary where the LAN is. Nobody sends a
recovery command: the test only causes each loss, and powers the lost
node on again. One client connection runs through all of it, a request
every 50 ms, each writing a record to the guest's disk.

The losses, one after the other, each the second loss of the pair that
the previous one's re-protection made:
  kill-primary      every process of the primary's node killed
  kill-secondary    the same for the secondary's node
  hang-primary      every process of the primary's node stopped (SIGSTOP)
  cut-colo-link     the COLO link alone cut (corosync keeps the LAN link):
                    the primary serves on, the secondary is dropped until
                    the link is back
  cut-primary-lan   the primary's LAN link alone cut: the secondary takes
                    over
  hang-primary-qemu the primary's QEMU alone stopped (SIGSTOP), its node
                    up: the agent's monitor fails on it within its QMP
                    timeout, Pacemaker demotes it (the agent kills it) and
                    promotes the secondary
  hang-secondary-flush  the secondary's QEMU stopped (SIGSTOP) just as
                    the primary's checkpoint, its guest stopped and the
                    BQL held, flushes the disk to it: the primary's main
                    loop waits for that flush and its QMP does not
                    answer; the agent cuts its COLO links and drops the
                    secondary, Pacemaker restarts the secondary as a
                    fresh one (--losses hang-secondary-qemu: the
                    secondary's QEMU stopped at any moment, which ends
                    the same way and, rarely, in this one)
  kill-primary      once more, after the re-protection of the last one
After each: the lost node returns (or the link is back, or Pacemaker
restarts the instance whose QEMU hung), and the cluster re-protects the
guest by itself. Each re-protection by a survivor that the test could
prepare (one whose peer returns when the test says so) waits at its
switchover (the migration capability pause-before-switchover) for
HOLD_S: the agent must take that for a migration on its way, not for a
failed one. The capability stays set until that migration ends, so any
re-protection of that node may wait there: the observer lets each go
on.

The agent runs with TLS on every link between the nodes (tls_dir: one CA,
a certificate per node; --no-tls without).

It fails unless, all along:
  - never two guests served: at no moment (checked every 0.1 s) do both
    QEMUs run their guest outside COLO, and the LAN never learns the
    guest's MAC from both hosts' ports within one second;
  - the client's connection carried on: no reset, every reply right;
  - the expected node served after each loss;
  - every acknowledged record is on the last survivor's disk (its guest
    reads them back);
  - a COLO primary writes its disk through to its secondary (the
    replication child), and a re-protection held at its switchover
    keeps it;
  - no guest Oops, panic or reset.
It reports, for each loss, the time from the loss to the moment the
survivor's guest runs outside COLO (the cluster's part), the time from
the loss to the first reply to a request sent after it (that plus the
client's TCP retransmission), and the time from the node's return to a
protected pair. --no-fencing runs hang-primary with fencing disabled
(the hung node resumes after 10 s): that run must fail the never-two-
guests check, and does.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402
import colo_qmp  # noqa: E402
import fullstack  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Failed(Exception):
    pass


def link(node, dev, up):
    subprocess.run(["ip", "-n", node.ns, "link", "set", dev,
                    "up" if up else "down"], check=True)


def kill(c, p, s):
    c.power_off(p)
    return p


def hang(c, p, s):
    p.signal_all(signal.SIGSTOP)
    return p


def hang_qemu(c, p, s):
    """QEMU alone stops answering (its node and the cluster run on):
    the agent's monitor fails on it, and Pacemaker recovers"""
    for pid in p.qemu_pids():
        os.kill(pid, signal.SIGSTOP)
    return p


GDB_HOLD_AT_FLUSH = """set pagination off
set confirm off
break nbd_client_co_flush if current_run_state != RUN_STATE_RUNNING
commands
silent
shell kill -STOP {pids}
detach
quit
end
continue
"""


def hang_in_flush(c, s, p):
    """The secondary's QEMU stops at the worst moment for its primary:
    gdb holds the primary's QEMU at its NBD client's flush while its
    guest is stopped (a checkpoint's vm_stop(), the BQL held), stops the
    secondary, and lets the primary go on into a flush that no one will
    answer"""
    pids = " ".join(map(str, s.qemu_pids()))
    script = os.path.join(c.workdir, "hold-at-flush.gdb")
    with open(script, "w") as f:
        f.write(GDB_HOLD_AT_FLUSH.format(pids=pids))
    # gdb reads QEMU's symbols before it attaches: the primary stops only
    # at the breakpoint
    r = subprocess.run(["gdb", "-batch", "-nx", "-x", script, c.qemu,
                        str(p.qemu_pids()[0])], capture_output=True,
                       text=True, timeout=120)
    stopped = all(cluster.process_stopped(pid) for pid in s.qemu_pids())
    if r.returncode != 0 or not stopped:
        raise Failed(f"gdb did not stop the secondary in the primary's "
                     f"flush: {r.stdout[-500:]} {r.stderr[-500:]}")
    return s


# name: (whom it hits, how, who serves after it, how it is undone)
SCENARIOS = {
    "kill-primary": ("primary", kill, "secondary", "power-on"),
    "kill-secondary": ("secondary", kill, "primary", "power-on"),
    "hang-primary": ("primary", hang, "secondary", "power-on"),
    "cut-colo-link": ("primary", "colo0", "primary", "link-up"),
    "cut-primary-lan": ("primary", "lan0", "secondary", "link-up"),
    "hang-primary-qemu": ("primary", hang_qemu, "secondary", "recovered"),
    "hang-secondary-qemu": ("secondary", hang_qemu, "primary", "recovered"),
    "hang-secondary-flush": ("secondary", hang_in_flush, "primary",
                             "recovered"),
}
SEQUENCE = ["kill-primary", "kill-secondary", "hang-primary",
            "cut-colo-link", "cut-primary-lan", "hang-primary-qemu",
            "hang-secondary-flush", "kill-primary"]


def hold_switchover(node):
    """The survivor's next re-protection, if it has not begun yet, waits
    at its switchover (pause-before-switchover) until the observer lets
    it go on, HOLD_S later, after checking that the agent kept the disk's
    replication meanwhile. A primary cut from the LAN is demoted at once,
    and waits as a secondary on the COLO link before the test restores
    its LAN: its migration is on its way already."""
    qmp = colo_qmp.Connection(node.path(cluster.CONTROL), 5)
    try:
        qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": "pause-before-switchover", "state": True}])
    except Exception as e:
        if "migration process in progress" not in str(e):
            raise
    finally:
        qmp.close()


def first_reply_after(client, t, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.error:
            raise Failed(f"client: {client.error}")
        after = [r for _, s, r in list(client.sent) if s > t]
        if after:
            return after[0] - t
        time.sleep(0.05)
    raise Failed(f"no reply within {timeout} s of the loss "
                 f"(the QEMUs: {client.roles_at_failure()})")


def run_loss(c, client, name, log, no_fencing=False, show=False):
    target, how, server, undo = SCENARIOS[name]
    c.wait_protected(180)
    # The protected pair serves the client for a while first
    n = len(client.sent)
    c.wait(lambda: len(client.sent) >= n + 40 or client.error, 60,
           "replies from the protected pair")
    p, s = c.wait_protected(180)
    victim = p if target == "primary" else s
    survivor_expected = p if server == "primary" else s
    survivor = c.peer(victim)
    fenced_before = c.last_fenced(victim, survivor)
    if callable(how):
        how(c, victim, c.peer(victim))
    else:
        link(victim, how, False)
    # The loss is complete (a node's processes killed or stopped, a link
    # down): what the client sends from now on, only the survivor answers
    t0 = time.monotonic()
    first = first_reply_after(client, t0, 40)
    c.wait(lambda: c.primary() is survivor_expected, 30,
           f"{survivor_expected.name} serving")
    if show:
        time.sleep(3)
        log(f"{name}: crm_mon on {survivor_expected.name} after the loss:\n"
            + c.crm_mon(survivor_expected))
    # After every loss the survivor runs its guest alone, outside COLO
    c.wait(lambda: c.observer.alone_since(survivor_expected.name, t0), 30,
           f"{survivor_expected.name} alone")
    alone = c.observer.alone_since(survivor_expected.name, t0)
    if name == "cut-colo-link":
        # The link stays cut a while after the primary dropped its
        # secondary
        time.sleep(3)
    if no_fencing and how is hang:
        time.sleep(10)
        victim.signal_all(signal.SIGCONT)
        time.sleep(10)
        return {"loss": name, "first_reply_s": first}
    if undo != "recovered":
        hold_switchover(survivor_expected)
    figures = undo_loss(c, victim, survivor, how, undo, t0, fenced_before)
    figures.update(loss=name, first_reply_s=round(first, 2),
                   alone_s=alone and round(alone - t0, 2),
                   serving=survivor_expected.name)
    since = {"power-on": "the node came back", "link-up": "the link came "
             "back", "recovered": "the loss"}[undo]
    log(f"{name}: {survivor_expected.name} serves alone "
        f"{figures['alone_s']} s after the loss, its first reply "
        f"{first:.2f} s after it; protected again "
        f"{figures['reprotect_s']} s after {since}"
        + (", held at its switchover" if figures["held"] else ""))
    return figures


def undo_loss(c, victim, survivor, how, undo, t0, fenced_before):
    """The lost node or link returns (or Pacemaker restarts the hung
    QEMU) and the pair is protected again: the re-protection's figures.
    It counts from the node's or the link's return, or, where Pacemaker
    restarts the hung QEMU, from the loss."""
    t1 = t0 if undo == "recovered" else time.monotonic()
    if undo == "power-on":
        # The node returns once the cluster has fenced it (powering it on
        # before would have the fencing power it off again)
        c.wait(lambda: c.last_fenced(victim, survivor) not in
               (fenced_before, None) and not victim.running(), 60,
               f"{victim.name} fenced (powered off)")
        c.power_on(victim, wait=False)
    elif undo == "link-up":
        link(victim, how, True)
    # else Pacemaker itself restarts the instance whose QEMU hung
    held = c.observer.held_count(survivor.name)
    c.wait(lambda: c.observer.violations or c.protected(), 180,
           "protected pair again")
    if c.observer.violations:
        raise Failed(c.observer.violations[-1])
    return {"reprotect_s": round(time.monotonic() - t1, 1),
            "held": c.observer.held_count(survivor.name) - held}


def check_tls(p, s, tls):
    """The pair's migration runs with the TLS the agent was given: the
    primary as the client, the secondary as the server with tls-authz"""
    want = {p: ("colo-tls-client", ""),
            s: ("colo-tls-server", "colo-tls-authz")}
    for node, creds in want.items():
        qmp = colo_qmp.Connection(node.path(cluster.CONTROL), 5)
        try:
            params = qmp.cmd("query-migrate-parameters")
        finally:
            qmp.close()
        have = (params.get("tls-creds"), params.get("tls-authz"))
        if have != (creds if tls else ("", "")):
            raise Failed(f"{node.name}'s migration TLS parameters: {have}")


AGENT = "/usr/lib/ocf/resource.d/colo-ft/colo"
# (what is wrong, the parameters, the OCF code the agent must return)
BAD_INPUT = [
    ("no qemu_args", {"qemu_args": None}, 6),
    ("no such qemu", {"qemu": "/nonexistent/qemu"}, 5),
    ("no such image", {"image": "/nonexistent.raw"}, 6),
    ("one node", {"nodes": "nodea=10.77.0.1"}, 6),
    ("a node without address", {"nodes": "nodea=10.77.0.1 nodeb"}, 6),
    ("checkpoint_delay 0", {"checkpoint_delay": "0"}, 6),
    ("a port that is no number", {"nbd_port": "nbd"}, 6),
    ("an unknown capability", {"capabilities": "x-colo-early-resum"}, 6),
    ("vnet_hdr neither true nor false", {"vnet_hdr": "yes"}, 6),
    ("a tls_dir without certificates", {"tls_dir": "/nonexistent"}, 6),
]


def check_bad_input(qemu):
    """validate-all and start refuse each bad parameter with the right
    OCF code and a message that names it; meta-data is valid XML"""
    import xml.dom.minidom
    problems = []
    good = {"qemu": qemu, "qemu_args": "-machine pc", "image": qemu,
            "nodes": "nodea=10.77.0.1 nodeb=10.77.0.2"}
    for what, change, want in BAD_INPUT:
        params = {**good, **change}
        env = {"PATH": os.environ["PATH"],
               "OCF_RESOURCE_INSTANCE": "colo-badinput",
               "OCF_RESKEY_state_dir": "/nonexistent-colo-state",
               **{f"OCF_RESKEY_{k}": v for k, v in params.items()
                  if v is not None}}
        for action in ("validate-all", "start"):
            r = subprocess.run([AGENT, action], env=env,
                               capture_output=True, text=True, timeout=30)
            key = next(iter(change))
            if r.returncode != want or key not in r.stderr:
                problems.append(f"{action} with {what}: exit "
                                f"{r.returncode} (want {want}), "
                                f"{r.stderr.strip()!r}")
    r = subprocess.run([AGENT, "meta-data"], capture_output=True, text=True)
    try:
        xml.dom.minidom.parseString(r.stdout)
    except Exception as e:
        problems.append(f"meta-data: {e}")
    r = subprocess.run([AGENT, "migrate_to"], capture_output=True)
    if r.returncode != 3:
        problems.append(f"an unknown action: exit {r.returncode}, not 3")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--linux-dir", required=True)
    ap.add_argument("--losses", default=",".join(SEQUENCE),
                    help="comma-separated losses, in order")
    ap.add_argument("--no-fencing", action="store_true",
                    help="fencing disabled, hang-primary only: shows the "
                    "split brain that fencing prevents")
    ap.add_argument("--no-tls", action="store_true",
                    help="the COLO links without TLS (the agent's tls_dir "
                    "empty)")
    ap.add_argument("--crm-mon", action="store_true",
                    help="print crm_mon after each loss")
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("check-cluster: needs root (namespaces, corosync, "
              "Pacemaker); skipped")
        print("1 passed, 0 failed")
        return 0
    subprocess.run(["bash", os.path.join(TOP, "scripts/install-agent.sh"),
                    "--lab-fence"], check=True)
    losses = ["hang-primary"] if args.no_fencing else \
        args.losses.split(",")

    def log(msg):
        print(f"# {time.strftime('%T')} {msg}", flush=True)

    bad = check_bad_input(os.path.abspath(args.qemu))
    print(f"{'not ok' if bad else 'ok'} - the agent's bad input: "
          f"{len(BAD_INPUT) * 2} refusals" + (": " + "; ".join(bad)
                                               if bad else ""))
    if bad:
        print("0 passed, 1 failed")
        return 1
    t_start = time.monotonic()
    c = cluster.Cluster(os.path.abspath(args.qemu),
                        os.path.abspath(args.linux_dir),
                        fencing=not args.no_fencing, tls=not args.no_tls)
    client = None
    results, problems = [], []
    try:
        c.start()
        c.wait(c.protected, 240, "protected pair")
        log(f"protected after {time.monotonic() - t_start:.0f} s")
        check_tls(*c.wait_protected(10), tls=not args.no_tls)
        client = fullstack.Client(c.hosts, timeout=40)
        client.roles_at_failure = c.roles
        if not client.connected.wait(90) or client.error:
            raise Failed(f"client: {client.error or 'no connection'}")
        for name in losses:
            results.append(run_loss(c, client, name, log, args.no_fencing,
                                    args.crm_mon))
        time.sleep(2)
        check = client.finish()
        acked = len(client.sent)
        if check != f"good {acked}":
            problems.append(f"the survivor's disk: {check!r} for {acked} "
                            "acknowledged records")
        log(f"{acked} requests, the survivor's disk: {check}")
    except Exception as e:
        problems.append(f"{type(e).__name__}: {e}")
        print(c.crm_mon())
    finally:
        if client:
            client.close()
        if c.observer:
            problems += c.observer.violations[:10]
            if problems:
                print("\n".join(c.observer.backtraces))
        problems += c.console_problems()
        if problems and os.environ.get("COLO_STACK_KEEP") is None:
            for node in c.nodes:
                print(f"--- {node.name}: pacemaker's log, the agent's lines")
                text = node.log("/var/log/pacemaker/pacemaker.log")
                print("\n".join([ln for ln in text.splitlines()
                                 if "colo(" in ln][-25:]))
        c.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"losses": results, "problems": problems}, f,
                      indent=1)
    name = "no-fencing/hang-primary" if args.no_fencing else "cluster"
    if problems:
        print(f"not ok - {name}: " + "; ".join(problems))
        print("0 passed, 1 failed")
        return 1
    print(f"ok - {name}: {len(results)} losses "
          f"({time.monotonic() - t_start:.0f} s)")
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    # check.sh ends a run over its time budget with SIGTERM: clean up
    # (namespaces, QEMUs, cluster nodes) as after any failure
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    sys.exit(main())
