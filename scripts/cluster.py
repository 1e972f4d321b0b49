"""Two Pacemaker nodes on this machine, for the COLO resource agent's test
and demo (root only).

Each node is a network namespace of fullstack.Hosts (the primary's and the
secondary's host of the full stack, with their LAN bridge, tap and COLO
link), in which corosync and pacemakerd run in a mount and UTS namespace
of their own: private /etc/corosync, /var/lib/corosync, /var/lib/pacemaker,
/var/log/{corosync,pacemaker} and /var/lib/colo-ft (bound from the node's
directory here, so that they outlive a power-off as a disk does), and a
fresh tmpfs on /run and /dev/shm (libqb's IPC) at every boot. corosync
runs on two knet links, the LAN (link 0) and the COLO link (link 1), so
that losing one of them alone keeps the membership whole.

Nothing here decides anything: corosync sees the nodes, Pacemaker decides,
the agent (cluster/colo) carries the decisions out over QMP, and the lab
fence device (cluster/fence_colo_netns) powers a node off by killing every
process in its network namespace. A namespace is not a PID namespace:
this module ends processes only through that fence device, by the
namespace they are in, and never by name.
"""

import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time

import colo_qmp
import tls_certs
import fullstack

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODES = {"p": "nodea", "s": "nodeb"}
# Each node's address on the LAN (corosync link 0, and where the guest's
# clients are) and the LAN's "gateway", which each node's ping resource
# watches: a node that cannot reach it must not be the primary
LAN_IP = {"p": "10.78.0.1", "s": "10.78.0.2"}
GATEWAY_IP = "10.78.0.254"
# The paths a node keeps private, and the files of the agent and the
# fence device in it
PRIVATE = ("etc/corosync", "var/lib/corosync", "var/lib/pacemaker",
           "var/log/corosync", "var/log/pacemaker", "var/lib/colo-ft")
PCMK_DIRS = ("cib", "pengine", "blackbox", "cores")
COLO_DIR = "/var/lib/colo-ft"

COROSYNC_CONF = """\
totem {{
    version: 2
    cluster_name: colo
    transport: knet
    crypto_cipher: none
    crypto_hash: none
    token: {token}
}}
nodelist {{
{nodes}
}}
quorum {{
    provider: corosync_votequorum
    two_node: 1
}}
logging {{
    to_logfile: yes
    logfile: /var/log/corosync/corosync.log
    to_stderr: no
    to_syslog: no
    timestamp: on
}}
"""

NODE_CONF = """\
    node {{
        name: {name}
        nodeid: {nodeid}
        ring0_addr: {lan}
        ring1_addr: {colo}
    }}"""

# Run in the node's network namespace: its own mount and UTS namespace,
# the private directories, then corosync and pacemakerd
BOOT = r"""
set -e
mount --make-rprivate /
hostname "$NODE"
for d in $PRIVATE; do mount --bind "$ROOT/$d" "/$d"; done
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/crm /run/corosync /run/lock
chown hacluster:haclient /run/crm
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
corosync -f >/var/log/corosync/stdout.log 2>&1 &
for i in $(seq 100); do
    corosync-cfgtool -s >/dev/null 2>&1 && break
    sleep 0.1
done
exec pacemakerd -f >/var/log/pacemaker/stdout.log 2>&1
"""


def netns_inode(ns):
    return os.stat(f"/run/netns/{ns}").st_ino


def process_stopped(pid):
    """Whether process PID is stopped (SIGSTOP), or None when it is gone"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return None


class Node:
    """One cluster node: its namespace, its private directories, and the
    commands to power it on and to run a command inside it"""

    def __init__(self, hosts, host, workdir, token_ms):
        self.hosts, self.host = hosts, host
        self.name = NODES[host]
        self.ns = hosts.ns[host]
        self.root = os.path.join(workdir, self.name)
        self.boot_proc = None
        for d in PRIVATE:
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
            # The mount point (the packages make all but the agent's)
            os.makedirs("/" + d, exist_ok=True)
        for d in PCMK_DIRS:
            path = os.path.join(self.root, "var/lib/pacemaker", d)
            os.makedirs(path, exist_ok=True)
            shutil.chown(path, "hacluster", "haclient")
        for d in ("var/lib/pacemaker", "var/log/pacemaker"):
            shutil.chown(os.path.join(self.root, d), "hacluster",
                         "haclient")
        nodes = "\n".join(NODE_CONF.format(name=NODES[h], nodeid=i + 1,
                                           lan=LAN_IP[h],
                                           colo=fullstack.HOST_IP[h])
                          for i, h in enumerate("ps"))
        with open(os.path.join(self.root, "etc/corosync/corosync.conf"),
                  "w") as f:
            f.write(COROSYNC_CONF.format(token=token_ms, nodes=nodes))

    def path(self, rel):
        """The host's path of REL (absolute inside the node) when REL is
        in one of the node's private directories"""
        return os.path.join(self.root, rel.lstrip("/"))

    def power_on(self):
        env = {**os.environ, "NODE": self.name, "ROOT": self.root,
               "PRIVATE": " ".join(PRIVATE)}
        log = open(os.path.join(self.root, "boot.log"), "a")
        self.boot_proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "--mount", "--uts",
             "--propagation", "private", "bash", "-c", BOOT],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)
        log.close()

    def pids(self):
        """Every process in the node's network namespace: the node"""
        want = f"net:[{netns_inode(self.ns)}]"
        out = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{pid}/ns/net") == want:
                    out.append(int(pid))
            except OSError:
                pass
        return out

    def running(self):
        return bool(self.pids())

    def first_pid(self):
        """A process of the node whose mount namespace is the node's:
        pacemakerd's (nsenter's target)"""
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "pacemakerd":
                        return pid
            except OSError:
                pass
        return None

    def run(self, *args, check=True, timeout=30, input=None):
        """ARGS inside the node (its network, mount and UTS namespaces)"""
        pid = self.first_pid()
        if pid is None:
            raise RuntimeError(f"{self.name} is not running")
        r = subprocess.run(["nsenter", "-t", str(pid), "-m", "-n", "-u",
                            *args], timeout=timeout, capture_output=True,
                           text=True, input=input)
        if check and r.returncode != 0:
            raise RuntimeError(f"{self.name}: {args[0]}: exit "
                               f"{r.returncode}: {r.stderr.strip()}")
        return r

    def qemu_pids(self):
        """The node's QEMU processes"""
        out = []
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().startswith("qemu-system"):
                        out.append(pid)
            except OSError:
                pass
        return out

    def signal_all(self, sig):
        """SIGSTOP (a hang) or SIGCONT to every process of the node"""
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def log(self, rel):
        try:
            with open(self.path(rel), errors="replace") as f:
                return f.read()
        except OSError:
            return ""


# --- the cluster: two nodes, the CIB, the COLO resource --------------------

GUEST_DISK = COLO_DIR + "/disk.raw"
# Each node's certificates (the agent's tls_dir): CN=its name
TLS_DIR = COLO_DIR + "/tls"
CONSOLE = COLO_DIR + "/console.log"
OBSERVE = COLO_DIR + "/observe.sock"
# How long a migration that reached pre-switchover waits there before the
# observer lets it go on: two or more runs of the primary's monitor
# (every second)
HOLD_S = 2.5
# How long a running QEMU may leave its observer without an answer before
# the observer takes its backtraces: the agent's monitor fails on it
# after 5 s
UNANSWERED_S = 2.5
# The tests' own QMP monitor (the observer's is its thread's)
CONTROL = COLO_DIR + "/control.sock"
# What the agent logs when the guest boots from a node's disk
COLD_START = "promoted: the guest boots from this node's disk"
OUTSIDE_COLO = "an unpromoted guest outside COLO"

CIB_RESOURCES = """\
<resources>
  <primitive id="fence-lab" class="stonith" type="fence_colo_netns">
    <instance_attributes id="fence-lab-params">
      <nvpair id="fence-lab-map" name="netns_map" value="{netns_map}"/>
      <nvpair id="fence-lab-hosts" name="pcmk_host_list" value="nodea nodeb"/>
      <nvpair id="fence-lab-check" name="pcmk_host_check" value="static-list"/>
    </instance_attributes>
    <operations>
      <op id="fence-lab-monitor" name="monitor" interval="30s"/>
    </operations>
  </primitive>
  <clone id="lan-clone">
    <primitive id="lan" class="ocf" provider="pacemaker" type="ping">
      <instance_attributes id="lan-params">
        <nvpair id="lan-hosts" name="host_list" value="{gateway}"/>
        <nvpair id="lan-multiplier" name="multiplier" value="1000"/>
        <nvpair id="lan-dampen" name="dampen" value="0s"/>
        <nvpair id="lan-attempts" name="attempts" value="1"/>
        <nvpair id="lan-timeout" name="timeout" value="1"/>
      </instance_attributes>
      <operations>
        <op id="lan-monitor" name="monitor" interval="1s" timeout="10s"/>
      </operations>
    </primitive>
  </clone>
  <clone id="colo-clone">
    <meta_attributes id="colo-clone-meta">
      <nvpair id="colo-promotable" name="promotable" value="true"/>
      <nvpair id="colo-promoted-max" name="promoted-max" value="1"/>
      <nvpair id="colo-promoted-node-max" name="promoted-node-max" value="1"/>
      <nvpair id="colo-clone-max" name="clone-max" value="2"/>
      <nvpair id="colo-clone-node-max" name="clone-node-max" value="1"/>
      <nvpair id="colo-notify" name="notify" value="true"/>
    </meta_attributes>
    <primitive id="colo" class="ocf" provider="colo-ft" type="colo">
      <instance_attributes id="colo-params">
{params}
      </instance_attributes>
      <operations>
        <op id="colo-start" name="start" interval="0s" timeout="60s"/>
        <op id="colo-stop" name="stop" interval="0s" timeout="30s"/>
        <op id="colo-promote" name="promote" interval="0s" timeout="60s"/>
        <op id="colo-demote" name="demote" interval="0s" timeout="60s"/>
        <op id="colo-notify-op" name="notify" interval="0s" timeout="30s"/>
        <op id="colo-monitor-promoted" name="monitor" interval="1s" role="Promoted" timeout="20s"/>
        <op id="colo-monitor-unpromoted" name="monitor" interval="2s" role="Unpromoted" timeout="20s"/>
      </operations>
    </primitive>
  </clone>
</resources>"""

# The primary needs the LAN: where the ping resource cannot reach the
# gateway, the guest must not be served
CIB_CONSTRAINTS = """\
<constraints>
  <rsc_location id="colo-needs-lan" rsc="colo-clone">
    <rule id="colo-needs-lan-rule" role="Promoted" score="-INFINITY" boolean-op="or">
      <expression id="colo-needs-lan-undefined" attribute="pingd" operation="not_defined"/>
      <expression id="colo-needs-lan-zero" attribute="pingd" operation="lte" value="0" type="number"/>
    </rule>
  </rsc_location>
</constraints>"""

CLUSTER_OPTIONS = {"stonith-action": "off", "no-quorum-policy": "stop",
                   "start-failure-is-fatal": "false",
                   "cluster-recheck-interval": "30s"}


class Observer(threading.Thread):
    """Watches, every 0.1 s, each node's QEMU through its second QMP
    monitor, and the LAN switch's learning of the guest's MAC. Records
    every moment at which two guests served: both QEMUs running outside
    COLO, or the MAC learnt from both hosts' ports within one second."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stopping = threading.Event()
        self.state = {}         # node: (running, mode, checkpoints,
                                # the disk replicated) or None
        self.alone = []         # (time, node) of each start of a node's
                                # guest running outside COLO
        self.violations = []
        self.fdb = []           # (time, port) of each learning of the MAC
        self.lock = threading.Lock()
        self.held = {}          # node: re-protections held at their
                                # switchover and let go on
        self.held_since = {}    # node: when its migration reached
                                # pre-switchover
        self.unanswered = {}    # node: since when its QEMU is silent
        self.traced = set()     # QEMU pids whose backtraces were taken
        self.backtraces = []
        self.fdb_proc = subprocess.Popen(
            ["ip", "netns", "exec", cluster.hosts.ns["n"], "bridge",
             "monitor", "fdb"], stdout=subprocess.PIPE, text=True,
            stderr=subprocess.DEVNULL)
        self.fdb_thread = threading.Thread(target=self._fdb, daemon=True)
        self.fdb_thread.start()
        self.start()

    def _fdb(self):
        for line in self.fdb_proc.stdout:
            words = line.split()
            if fullstack.GUEST_MAC not in words or "dev" not in words \
                    or line.startswith("Deleted"):
                continue
            port = words[words.index("dev") + 1]
            now = time.monotonic()
            with self.lock:
                for t, other in self.fdb:
                    if other != port and now - t < 1.0:
                        self.violations.append(
                            f"the LAN learnt the guest's MAC from {other} "
                            f"and {port} {now - t:.2f} s apart")
                self.fdb.append((now, port))

    def _query(self, node, conns):
        qmp = conns.get(node.name)
        try:
            if qmp is None:
                qmp = colo_qmp.Connection(node.path(OBSERVE), 0.5)
                conns[node.name] = qmp
            running = qmp.cmd("query-status")["running"]
            mode = qmp.cmd("query-colo-status")["mode"]
            migration = qmp.cmd("query-migrate")
            cps = migration.get("colo", {}).get("checkpoints", 0)
            replicated = mode == "primary" and \
                colo_qmp.replication_child(qmp) is not None
            self._release_switchover(node.name, qmp, migration)
            return running, mode, cps, replicated
        except Exception:
            if qmp is not None:
                qmp.close()
            conns.pop(node.name, None)
            return None

    def _release_switchover(self, name, qmp, migration):
        """A migration that waits at its switchover (check-cluster.py
        sets pause-before-switchover on a survivor) goes on once it
        waited HOLD_S, whichever re-protection it is: the capability
        stays set until that migration ends. The agent must keep the
        replication child meanwhile."""
        if migration.get("status") != "pre-switchover":
            self.held_since.pop(name, None)
            return
        now = time.monotonic()
        since = self.held_since.setdefault(name, now)
        if now - since < HOLD_S:
            return
        if colo_qmp.replication_child(qmp) is None:
            with self.lock:
                self.violations.append(
                    f"{time.strftime('%T')}: {name}'s agent undid the "
                    "re-protection while it waited at its switchover")
        qmp.cmd("migrate-continue", state="pre-switchover")
        self.held_since.pop(name)
        with self.lock:
            self.held[name] = self.held.get(name, 0) + 1

    def _watch_unanswered(self, node, answered):
        """A QEMU that runs (not stopped by the test) but has not answered
        its observer for UNANSWERED_S: its threads' backtraces, once per
        process, before the agent's monitor fails on it and Pacemaker
        kills it (a test failure says where it hung)"""
        if answered:
            self.unanswered.pop(node.name, None)
            return
        now = time.monotonic()
        since = self.unanswered.setdefault(node.name, now)
        if now - since < UNANSWERED_S:
            return
        for pid in node.qemu_pids():
            stopped = process_stopped(pid)
            if stopped is None or stopped or pid in self.traced:
                continue
            self.traced.add(pid)
            threading.Thread(target=self._backtrace, daemon=True,
                             args=(node.name, pid, now - since)).start()

    def _backtrace(self, name, pid, silent):
        try:
            out = subprocess.run(
                ["gdb", "-p", str(pid), "-batch", "-nx", "-ex",
                 "thread apply all bt 12"], capture_output=True,
                text=True, timeout=60).stdout
        except (OSError, subprocess.TimeoutExpired) as e:
            out = str(e)
        frames = [ln for ln in out.splitlines()
                  if ln.startswith(("Thread ", "#"))]
        with self.lock:
            self.backtraces.append(
                f"{time.strftime('%T')}: {name}'s QEMU (pid {pid}) did not "
                f"answer QMP for {silent:.1f} s; its threads:\n"
                + "\n".join(frames))

    def held_count(self, name):
        with self.lock:
            return self.held.get(name, 0)

    def run(self):
        conns = {}
        while not self.stopping.wait(0.1):
            state = {n.name: self._query(n, conns)
                     for n in self.cluster.nodes}
            for n in self.cluster.nodes:
                try:
                    self._watch_unanswered(n, state[n.name] is not None)
                except OSError:
                    # The node's namespace is gone (powered off, or the
                    # test ends): nothing to trace
                    pass
            alone = [name for name, s in state.items()
                     if s and s[0] and s[1] == "none"]
            now = time.monotonic()
            with self.lock:
                old_state = self.state
                for name in alone:
                    old = old_state.get(name)
                    if not (old and old[0] and old[1] == "none"):
                        self.alone.append((now, name))
                self.state = state
                if len(alone) > 1:
                    self.violations.append(
                        f"{time.strftime('%T')}: two guests served "
                        f"outside COLO, on {' and '.join(alone)}")
                self._check_replicated(state, old_state)
        for qmp in conns.values():
            qmp.close()

    def _check_replicated(self, state, old_state):
        """A COLO primary writes its disk through to its secondary: a
        promotion of a secondary whose disk missed writes loses them"""
        for name, s in state.items():
            old = old_state.get(name)
            if s and s[1] == "primary" and not s[3] and \
                    not (old and old[1] == "primary" and not old[3]):
                self.violations.append(
                    f"{time.strftime('%T')}: {name} checkpoints without "
                    "the disk's replication")

    def get(self):
        with self.lock:
            return dict(self.state)

    def alone_since(self, name, t):
        """The first moment after T at which NAME's guest was seen
        running outside COLO, or None"""
        with self.lock:
            return next((when for when, who in self.alone
                         if who == name and when > t), None)

    def close(self):
        self.stopping.set()
        self.join(5)
        self.fdb_proc.kill()
        self.fdb_proc.wait()


class Cluster:
    """Two nodes (scripts/fullstack.py's hosts p and s, as nodea and
    nodeb), a LAN with a gateway and a client, Pacemaker with the lab
    fence device, the ping resource and the COLO resource. With TLS, the
    agent's tls_dir: one CA, and in each node's private directory its
    certificate."""

    def __init__(self, qemu, linux_dir, token_ms=1000, fencing=True,
                 caps=("return-path", "x-colo-early-resume",
                       "x-colo-check-ram"),
                 checkpoint_delay=1000, log=print, tls=False):
        self.qemu, self.linux_dir, self.log = qemu, linux_dir, log
        self.tls = tls
        self.fencing, self.caps = fencing, caps
        self.checkpoint_delay = checkpoint_delay
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.workdir = tempfile.mkdtemp(prefix="colo-cluster-", dir=base)
        self.hosts = fullstack.Hosts(lan_addresses=LAN_IP,
                                     gateway=GATEWAY_IP)
        self.observer = None
        try:
            self.nodes = [Node(self.hosts, h, self.workdir, token_ms)
                          for h in "ps"]
            self.by_name = {n.name: n for n in self.nodes}
            for node in self.nodes:
                subprocess.run([os.path.join(os.path.dirname(qemu),
                                             "qemu-img"), "create", "-q",
                                "-f", "raw", node.path(GUEST_DISK),
                                f"{fullstack.DISK_MB}M"], check=True)
            if tls:
                self._certificates()
        except BaseException:
            self.close()
            raise

    def _certificates(self):
        ca = tls_certs.make_ca(os.path.join(self.workdir, "tls-ca"))
        for host, name in NODES.items():
            node = self.by_name[name]
            tls_certs.make_host_certificate(node.path(TLS_DIR), ca,
                                            f"CN={name}",
                                            fullstack.HOST_IP[host])

    def qemu_args(self):
        return fullstack.guest_args(self.linux_dir) + [
            "-display", "none", "-nodefaults",
            "-chardev", f"file,id=console0,path={CONSOLE},append=on",
            "-serial", "chardev:console0",
            "-qmp", f"unix:{OBSERVE},server=on,wait=off",
            "-qmp", f"unix:{CONTROL},server=on,wait=off"]

    def colo_params(self):
        nodes = " ".join(f"{NODES[h]}={fullstack.HOST_IP[h]}" for h in "ps")
        params = {"qemu": self.qemu,
                  "qemu_args": shlex.join(self.qemu_args()),
                  "image": GUEST_DISK, "nodes": nodes,
                  "checkpoint_delay": str(self.checkpoint_delay),
                  "capabilities": " ".join(self.caps),
                  "tls_dir": TLS_DIR if self.tls else ""}
        return "\n".join(
            f'        <nvpair id="colo-{k}" name="{k}" value="{xml_attr(v)}"/>'
            for k, v in params.items())

    def power_on(self, node, wait=True, timeout=90):
        node.power_on()
        if wait:
            self.wait(lambda: self.online(node, node),
                      timeout, f"{node.name} online")

    def power_off(self, node):
        """The lab PDU: every process of NODE killed"""
        subprocess.run([os.path.join(TOP, "cluster", "fence_colo_netns"),
                        "-o", "off", "-n", node.name, "--netns-map",
                        self.netns_map()], check=True)
        if node.boot_proc:
            node.boot_proc.wait()

    def last_fenced(self, node, seen_by):
        """When SEEN_BY's fencer last fenced NODE, as it says it"""
        try:
            return seen_by.run("stonith_admin", "--last", node.name,
                               check=False, timeout=10).stdout.strip()
        except (RuntimeError, subprocess.TimeoutExpired):
            return None

    def netns_map(self):
        return " ".join(f"{n.name}={netns_inode(n.ns)}" for n in self.nodes)

    def online(self, node, seen_by):
        """NODE is online in SEEN_BY's view, with quorum"""
        try:
            out = seen_by.run("crm_mon", "-1", "-X", check=False,
                              timeout=10).stdout
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return (f'name="{node.name}"' in out and "with_quorum=\"true\"" in out
                and any(f'name="{node.name}"' in line
                        and 'online="true"' in line
                        for line in out.splitlines()))

    @staticmethod
    def wait(cond, timeout, what):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} after {timeout} s")
            time.sleep(0.2)

    def start(self):
        """Both nodes on, the cluster configured; returns once the guest
        is protected"""
        for node in self.nodes:
            self.power_on(node, wait=False)
        a, b = self.nodes
        self.wait(lambda: self.online(a, b) and self.online(b, a), 120,
                  "cluster of two")
        for name, value in {**CLUSTER_OPTIONS,
                            "stonith-enabled": str(self.fencing).lower()
                            }.items():
            a.run("crm_attribute", "-t", "crm_config", "-n", name, "-v",
                  value)
        a.run("cibadmin", "-R", "-o", "resources", "-X",
              CIB_RESOURCES.format(netns_map=self.netns_map(),
                                   gateway=GATEWAY_IP,
                                   params=self.colo_params()))
        a.run("cibadmin", "-R", "-o", "constraints", "-X", CIB_CONSTRAINTS)
        self.observer = Observer(self)

    def crm_mon(self, node=None):
        for n in ([node] if node else self.nodes):
            try:
                return n.run("crm_mon", "-1", "-r", check=False,
                             timeout=10).stdout
            except (RuntimeError, subprocess.TimeoutExpired):
                continue
        return "(no node answers)"

    def roles(self):
        """{node name: (running, COLO mode, checkpoints, the disk
        replicated) or None}"""
        return self.observer.get()

    def primary(self, roles=None):
        """The node whose QEMU is the COLO primary, or runs its guest
        alone (in ROLES, a snapshot of roles())"""
        for name, s in (roles or self.roles()).items():
            if s and s[0] and s[1] in ("primary", "none"):
                return self.by_name[name]
        return None

    def peer(self, node):
        return self.nodes[1] if node is self.nodes[0] else self.nodes[0]

    def score(self, node):
        try:
            r = node.run("crm_attribute", "-N", node.name, "-p", "colo",
                         "-G", "-q", check=False, timeout=10)
        except (RuntimeError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() or None

    def protected(self):
        """The primary checkpoints into a secondary that the cluster
        would promote, and writes its disk through to it"""
        return self.protected_pair() is not None

    def wait_protected(self, timeout, what="protected pair"):
        """Wait for protected(); returns (primary, secondary)"""
        pair = []
        self.wait(lambda: pair.append(self.protected_pair()) or pair[-1],
                  timeout, what)
        return pair[-1]

    def protected_pair(self):
        """(primary, secondary) when protected(), else None"""
        roles = self.roles()
        p = self.primary(roles)
        if p is None:
            return None
        s = self.peer(p)
        ps, ss = roles.get(p.name), roles.get(s.name)
        if ps and ss and ps[1] == "primary" and ss[1] == "secondary" and \
                ps[2] >= 2 and ps[3] and self.score(s) == "100":
            return p, s
        return None

    def console_problems(self):
        bad = []
        boots = 0
        for node in self.nodes:
            text = node.log(CONSOLE)
            bad += [f"{node.name}: {line}" for line in text.splitlines()
                    if any(b in line for b in fullstack.BAD_CONSOLE)]
            # A secondary's console may show a line twice (its guest runs
            # ahead of the primary's, then a checkpoint puts it back), so
            # the guest's boots are counted where the agent starts them:
            # once, the first primary's. A reset (-no-reboot: QEMU exits)
            # would end in another cold start.
            log = node.log("/var/log/pacemaker/pacemaker.log")
            boots += sum(1 for line in log.splitlines()
                         if "pacemaker-execd" in line and COLD_START in line)
            # x-colo-check-ram: a secondary whose RAM differed from the
            # primary's at a checkpoint leaves COLO with the agent's line
            bad += [f"{node.name}: {line.split('colo(', 1)[-1]}"
                    for line in log.splitlines()
                    if "pacemaker-execd" in line and OUTSIDE_COLO in line]
        if boots != 1:
            bad.append(f"the guest booted {boots} times")
        return bad

    def close(self):
        """Everything off and away, whatever failed before"""
        try:
            if self.observer:
                self.observer.close()
        finally:
            for node in getattr(self, "nodes", []):
                try:
                    if node.running():
                        self.power_off(node)
                except Exception as e:
                    print(f"cluster: powering {node.name} off: {e}")
            self.hosts.close()
        if os.environ.get("COLO_STACK_KEEP"):
            print(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def xml_attr(value):
    return (value.replace("&", "&amp;").replace('"', "&quot;")
            .replace("<", "&lt;").replace(">", "&gt;"))
