"""COLO as users deploy it, on one machine: block replication and the COLO
proxy, a Linux guest with a NIC and a disk, a TCP service in it and a
client outside that holds one connection.

The hosts are network namespaces that this module creates and deletes
(root only); nothing leaves them:

    primary host (ns ...p)          secondary host (ns ...s)
      br0: tap0 + lan0                br0: tap0 + lan0
      colo0 10.77.0.1  ------------  colo0 10.77.0.2      the COLO link:
            |                                |            migration, NBD,
            +---------- LAN switch ----------+            the proxy's sockets
                       (ns ...n, bridge)
                              |
                    client (ns ...c) 10.78.0.100

The guest (scripts/linux-guest.sh, guest/colo-init.c with colo_service)
answers on 10.78.0.10:7000; both QEMUs give it the same MAC. The setup is
qemu/docs/COLO-FT.txt's, over QMP alone: colo-compare, filter-mirror and
filter-redirectors on the primary, filter-redirectors and filter-rewriter
on the secondary, quorum + replication over NBD for the disk.
"""

import ctypes
import datetime
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time

import colo
import colo_qmp
from figures import percentile
import tls_certs
from tls_certs import ROGUES, tls_refused

COLO_NET = ("10.77.0.1", "10.77.0.2")
GUEST_IP = "10.78.0.10"
CLIENT_IP = "10.78.0.100"
GUEST_MAC = "52:54:00:c0:10:01"
SERVICE_PORT = 7000
# busybox httpd's, with Stack(httpd=True)
HTTP_PORT = 80
# The client's own service, that the guest's calls for "o N"
PEER_PORT = 7001
MIGRATE_PORT, NBD_PORT = colo_qmp.PORTS["migrate"], colo_qmp.PORTS["nbd"]
# Each host's address on the COLO link, and the raw image of its disk
HOST_IP = {"p": COLO_NET[0], "s": COLO_NET[1]}
DISK = {"p": "primary.raw", "s": "secondary.raw"}
DISK_MB = 24
# What a guest's console must never show
BAD_CONSOLE = ("MISMATCH", "Oops", "BUG:", "Kernel panic", "WARNING:",
               "service failed", "cannot ")


def run(*args, check=True):
    return subprocess.run(args, check=check, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)


class WindowMissed(AssertionError):
    """The loss came outside the moment the run is for (a harness that
    waited too long on a loaded host): the run tested nothing, and may be
    run again"""


class Hosts:
    """The namespaces and links of the picture above. With LAN_ADDRESSES
    (a cluster's nodes: scripts/cluster.py), each host's br0 also gets an
    address on the LAN, and the LAN switch one of a gateway."""

    def __init__(self, lan_addresses=None, gateway=None):
        tag = f"cf{os.getpid() % 100000}"
        self.tag = tag
        self.ns = {h: tag + h for h in "pscn"}
        self.made = []
        try:
            self._build()
            for host, addr in (lan_addresses or {}).items():
                self.ip(host, "addr", "add", addr + "/24", "dev", "br0")
            if gateway:
                self.ip("n", "addr", "add", gateway + "/24", "dev", "lan")
        except BaseException:
            self.close()
            raise

    def ip(self, host, *args):
        run("ip", "-n", self.ns[host], *args)

    def _veth(self, a, a_name, b, b_name):
        tmp = (self.tag + "x" + a_name[-1], self.tag + "y" + b_name[-1])
        run("ip", "link", "add", tmp[0], "type", "veth", "peer", "name",
            tmp[1])
        for host, t, name in ((a, tmp[0], a_name), (b, tmp[1], b_name)):
            run("ip", "link", "set", t, "netns", self.ns[host])
            self.ip(host, "link", "set", t, "name", name)
            self.ip(host, "link", "set", name, "up")

    def _build(self):
        for host, ns in self.ns.items():
            run("ip", "netns", "add", ns)
            self.made.append(ns)
            run("ip", "netns", "exec", ns, "sysctl", "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1")
            self.ip(host, "link", "set", "lo", "up")
        self._veth("p", "colo0", "s", "colo0")
        self.ip("p", "addr", "add", COLO_NET[0] + "/24", "dev", "colo0")
        self.ip("s", "addr", "add", COLO_NET[1] + "/24", "dev", "colo0")
        self.ip("n", "link", "add", "lan", "type", "bridge", "stp_state",
                "0")
        self.ip("n", "link", "set", "lan", "up")
        for host in "psc":
            self._veth(host, "lan0", "n", "port" + host)
            self.ip("n", "link", "set", "port" + host, "master", "lan")
        self.ip("c", "addr", "add", CLIENT_IP + "/24", "dev", "lan0")
        for host in "ps":
            self.ip(host, "link", "add", "br0", "type", "bridge",
                    "stp_state", "0")
            self.ip(host, "tuntap", "add", "dev", "tap0", "mode", "tap")
            for dev in ("tap0", "lan0"):
                self.ip(host, "link", "set", dev, "master", "br0")
            for dev in ("tap0", "br0"):
                self.ip(host, "link", "set", dev, "up")

    def prefix(self, host):
        return ["ip", "netns", "exec", self.ns[host]]

    def enter(self, host):
        """Move the calling thread into HOST's network namespace."""
        libc = ctypes.CDLL(None, use_errno=True)
        with open(f"/run/netns/{self.ns[host]}") as f:
            if libc.setns(f.fileno(), 0x40000000) != 0:   # CLONE_NEWNET
                raise OSError(ctypes.get_errno(), "setns")

    def close(self):
        while self.made:
            subprocess.run(["ip", "netns", "del", self.made.pop()],
                           stderr=subprocess.DEVNULL)


def tls_dn(host):
    """The distinguished name of HOST's certificate"""
    return f"CN=colo-host-{host}"


def closed_by_peer(sock, timeout):
    """Whether the peer closes SOCK within TIMEOUT (what it sends before,
    a TLS alert say, is read and dropped)"""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except ConnectionError:
        pass
    except TimeoutError:
        return False
    return True


def guest_args(linux_dir, nic="e1000", machine="pc", httpd=False):
    """The guest's QEMU options, the same on both sides: the Linux guest
    with the TCP service (and with HTTPD busybox httpd), its NIC on
    netdev hn0 (e1000 or virtio), its disk on drive colo-disk0"""
    datadir = os.environ.get("COLO_FT_DATADIR")
    model = "e1000" if nic == "e1000" else "virtio-net-pci"
    return [*(["-L", datadir] if datadir else []),
            "-machine", machine, "-accel", "tcg", "-m", "256M",
            "-no-reboot",
            "-kernel", os.path.join(linux_dir, "vmlinuz"),
            "-initrd", os.path.join(linux_dir, "initrd"),
            "-append", f"console=ttyS0 quiet ipv6.disable=1 "
                       f"colo_service={SERVICE_PORT} "
                       f"colo_ip={GUEST_IP}/24 "
                       f"colo_peer={CLIENT_IP}:{PEER_PORT}"
                       f"{' colo_httpd=%d' % HTTP_PORT if httpd else ''}",
            "-device", f"{model},id=e0,netdev=hn0,mac={GUEST_MAC}",
            "-device", "virtio-blk-pci,drive=colo-disk0"]


class Peer(threading.Thread):
    """A service in the client's namespace that the guest calls: for each
    connection the guest opens, "hello N" gets "ack N". Counts them."""

    def __init__(self, hosts):
        super().__init__(daemon=True)
        self.hosts, self.served, self.error = hosts, 0, None
        self.ready = threading.Event()
        self.start()

    def run(self):
        try:
            self.hosts.enter("c")
            srv = socket.create_server((CLIENT_IP, PEER_PORT))
            self.ready.set()
            while True:
                conn, _ = srv.accept()
                with conn:
                    conn.settimeout(15)
                    line = conn.makefile().readline().split()
                    if len(line) == 2 and line[0] == "hello":
                        conn.sendall(f"ack {line[1]}\n".encode())
                        self.served += 1
        except Exception as e:      # reported by the client's errors
            self.error = f"{type(e).__name__}: {e}"
            self.ready.set()


class Client(threading.Thread):
    """One TCP connection to the guest's service, from the client's
    namespace: "w N" every INTERVAL seconds, N = 1, 2, ..., each waiting
    for its "ok N"; with OUTGOING_EVERY, every that many-th request is
    "o N" instead (the guest calls the Peer first). Records when each
    request left and its reply came; a reset, a wrong or missing reply
    ends it with an error."""

    def __init__(self, hosts, interval=0.05, timeout=15, outgoing_every=0):
        super().__init__(daemon=True)
        self.hosts, self.interval, self.timeout = hosts, interval, timeout
        self.outgoing_every = outgoing_every
        self.sent = []          # (n, time sent, time replied)
        self.pending = None     # (n, time sent) of the request in flight
        self.error = None
        self.tcp_state = None   # the socket's, from ss, once it failed
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.sock = None
        self.start()

    def _connect(self):
        deadline = time.monotonic() + 60
        while True:
            try:
                self.sock = socket.create_connection((GUEST_IP,
                                                      SERVICE_PORT), 2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(self.timeout)
        self.file = self.sock.makefile("rw")
        self.connected.set()

    def request(self, line):
        self.file.write(line + "\n")
        self.file.flush()
        reply = self.file.readline()
        if not reply:
            raise ConnectionError("the service closed the connection")
        return reply.strip()

    def run(self):
        try:
            self.hosts.enter("c")
            self._connect()
            n = 0
            while not self.stopping.is_set():
                n += 1
                t = time.monotonic()
                op = "o" if self.outgoing_every and \
                    n % self.outgoing_every == 0 else "w"
                self.pending = (n, t)
                reply = self.request(f"{op} {n}")
                if reply != f"ok {n}":
                    raise RuntimeError(f"request {n}: reply {reply!r}")
                self.sent.append((n, t, time.monotonic()))
                time.sleep(max(0.0, t + self.interval - time.monotonic()))
        except Exception as e:      # reported by finish()
            self.error = f"{type(e).__name__}: {e}"
            self.tcp_state = self._socket_state()
        finally:
            self.connected.set()

    def _socket_state(self):
        """What the kernel says of the connection (retransmissions, RTO,
        bytes sent, acknowledged and received), run from this thread, in
        the client's namespace"""
        try:
            return " ".join(subprocess.run(
                ["ss", "-t", "-i", "-n", "-H", "dst", GUEST_IP],
                capture_output=True, text=True, timeout=5).stdout.split())
        except (OSError, subprocess.SubprocessError) as e:
            return f"ss: {e}"

    def stall(self, since):
        """Which request got no reply, sent how long after SINCE (a
        time.monotonic()), and the socket's state then"""
        if not self.pending:
            return "no request sent"
        n, t = self.pending
        return (f"request {n} sent {t - since:+.2f} s from the loss; "
                f"the socket: {self.tcp_state}")

    def finish(self):
        """Stop, then have the guest check every record it acknowledged.
        Returns the check's reply."""
        self.stopping.set()
        self.join(self.timeout + 5)
        if self.error:
            raise RuntimeError(f"client: {self.error}")
        return self.request(f"c {len(self.sent)}")

    def close(self):
        self.stopping.set()
        if self.sock:
            self.sock.close()

    def max_gap(self):
        """The longest time without a reply, from the first reply on"""
        times = [r for _, _, r in self.sent]
        return max((b - a for a, b in zip(times, times[1:])), default=None)

    def latencies(self, start, end):
        return [(r - s) * 1000 for _, s, r in self.sent if start <= s < end]


class Stack:
    """A primary and a secondary with the whole COLO stack (see above)."""

    def __init__(self, qemu, linux_dir, nic="e1000", machine="pc",
                 background=False, early_resume=True, return_path=True,
                 checkpoint_delay=1000, img=None, httpd=False, colo=True,
                 resume_before_ram=False, trace=None, tls=False):
        """With HTTPD, the guest also runs busybox httpd on port 80; without
        COLO, the primary runs alone, without the proxy and the secondary
        (the client benchmark's floor). TRACE: QEMU's trace events to
        enable (-trace's enable=, a pattern), as COLO_STACK_TRACE does.
        With TLS, x509 TLS on every link between the hosts (colo_qmp.Tls):
        a CA and a certificate per host, made in the stack's directory."""
        self.trace = trace
        self.qemu, self.nic, self.machine = qemu, nic, machine
        self.httpd, self.colo = httpd, colo
        self.resume_before_ram = resume_before_ram
        self.background, self.early_resume = background, early_resume
        self.return_path = return_path
        self.checkpoint_delay = checkpoint_delay
        self.img = img or os.path.join(os.path.dirname(qemu), "qemu-img")
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.workdir = tempfile.mkdtemp(prefix="colo-stack-", dir=base)
        self.linux_dir = linux_dir
        self.hosts = Hosts()
        self.primary = self.secondary = None
        # Every QEMU started, the lost ones included
        self.vms = []
        # Secondaries started so far
        self.secondaries = 1
        # The side the last failover lost
        self.lost = None
        self.tls = {}
        try:
            self._images()
            if tls:
                self._certificates()
            if not colo:
                self.primary = self._start("primary", "p",
                                           self._solo_args("p"))
                return
            self.secondary = self._start("secondary", "s",
                                         self._secondary_args("s", "p"))
            self.primary = self._start("primary", "p",
                                       self._primary_args("p"))
        except BaseException:
            self.close()
            raise

    # --- command lines ---------------------------------------------------

    def trace_lines(self, vm, event):
        """(wall-clock time, the rest) of each line of VM's trace for EVENT"""
        try:
            with open(self._path(vm.name + ".trace"), errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            stamp, _, rest = line.partition(" ")
            if not rest.startswith(event + " "):
                continue
            try:
                t = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
            except ValueError:
                continue
            t = t.replace(tzinfo=datetime.timezone.utc).timestamp()
            out.append((t, rest[len(event) + 1:]))
        return out

    def _path(self, name):
        return os.path.join(self.workdir, name)

    def _images(self, names=("primary.raw", "secondary.raw",
                             "active-s.qcow2", "hidden-s.qcow2")):
        for name in names:
            run(self.img, "create", "-q", "-f", name.split(".")[-1],
                self._path(name), f"{DISK_MB}M")

    def _certificates(self):
        """The pair's CA, each host's certificate, and the rogues'
        (tls_certs.py)"""
        ca = tls_certs.make_ca(self._path("tls-ca"))
        for host, peer in (("p", "s"), ("s", "p")):
            self.tls[host] = colo_qmp.Tls(
                tls_certs.make_host_certificate(self._path(f"tls-{host}"),
                                                ca, tls_dn(host),
                                                HOST_IP[host]),
                tls_dn(peer))
        self.rogues = tls_certs.make_rogues(self._path("tls-rogues"), ca,
                                            tls_dn("p"), HOST_IP["p"])

    def _tls(self, host):
        """HOST's colo_qmp.Tls, or None without TLS"""
        return self.tls.get(host)

    def tls_refusals(self, server, ports):
        """Each of ROGUES connects from the other host to SERVER's PORTS
        (names in colo_qmp.PORTS: "migrate" and "nbd" of a secondary,
        "mirror" and "compare" of a primary). Returns what SERVER did not
        refuse, or refused without a word in its log."""
        peer = "p" if server.host == "s" else "s"
        ip = HOST_IP[server.host]
        problems = []

        def attempt(port, rogue, certdir):
            said = self._log_size(server)
            if port == "nbd":
                refused = self._nbd_refused(ip, certdir)
            else:
                refused = tls_refused((ip, colo_qmp.PORTS[port]), certdir)
            if not refused:
                return "taken"
            if not self._log_grows(server, said, 3):
                return "refused without a word in its log"
            return None

        def attempts():
            self.hosts.enter(peer)
            for port in ports:
                for rogue, certdir in self.rogues.items():
                    try:
                        what = attempt(port, rogue, certdir)
                    except Exception as e:
                        what = f"{type(e).__name__}: {e}"
                    if what:
                        problems.append(f"{server.name}'s {port} port, "
                                        f"{ROGUES[rogue]}: {what}")

        t = threading.Thread(target=attempts)
        t.start()
        t.join()
        return problems

    @staticmethod
    def _log_size(vm):
        try:
            return os.path.getsize(vm.log)
        except OSError:
            return 0

    def _log_grows(self, vm, size, timeout):
        deadline = time.monotonic() + timeout
        while self._log_size(vm) <= size:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _nbd_refused(self, ip, certdir):
        """NBD negotiates TLS inside its own protocol: qemu-img is the
        rogue client there"""
        r = subprocess.run(
            [self.img, "info", "--object",
             f"tls-creds-x509,id=rogue,dir={certdir},endpoint=client,"
             "verify-peer=off",
             "--image-opts", f"driver=nbd,server.type=inet,"
             f"server.host={ip},server.port={NBD_PORT},export=parent0,"
             "tls-creds=rogue"], capture_output=True, text=True, timeout=30)
        return r.returncode != 0

    def _common(self, host):
        tls = self._tls(host)
        return guest_args(self.linux_dir, self.nic, self.machine,
                          self.httpd) + \
            ["-netdev", "tap,id=hn0,ifname=tap0,script=no,downscript=no,"
                        "vhost=off"] + (tls.args() if tls else [])

    def _primary_args(self, host):
        return self._common(host) + \
            colo_qmp.primary_proxy_args(HOST_IP[host], self.nic != "e1000",
                                        tls=self._tls(host)) + \
            colo_qmp.primary_disk_args(self._path(DISK[host]))

    def _solo_args(self, host):
        return self._common(host) + [
            "-drive", "if=none,id=colo-disk0,driver=raw,"
                      f"file.filename={self._path(DISK[host])}"]

    def _secondary_args(self, host, primary_host):
        return self._common(host) + \
            colo_qmp.secondary_proxy_args(HOST_IP[primary_host],
                                          self.nic != "e1000",
                                          tls=self._tls(host)) + \
            colo_qmp.secondary_disk_args(
                self._path(DISK[host]),
                self._path(f"active-{host}.qcow2"),
                self._path(f"hidden-{host}.qcow2")) + \
            ["-incoming", f"tcp:{HOST_IP[host]}:{MIGRATE_PORT}"]

    def _start(self, name, host, args):
        # COLO_STACK_TRACE="enable=PATTERN" or "events=FILE": QEMU's trace
        # events (-trace), with timestamps, to NAME.trace
        pattern = os.environ.get("COLO_STACK_TRACE") or \
            (f"enable={self.trace}" if self.trace else None)
        if pattern:
            args = args + ["-msg", "timestamp=on",
                           "-trace", f"{pattern},"
                           f"file={self._path(name + '.trace')}"]
        vm = colo.Vm(name, self.qemu, self.workdir, args,
                     self.hosts.prefix(host))
        vm.host = host
        self.vms.append(vm)
        return vm

    # --- COLO ------------------------------------------------------------

    def wait_console(self, vm, text, timeout=120):
        deadline = time.monotonic() + timeout
        while text not in self.console(vm):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{vm.name}: no {text!r} on the console")
            if not vm.alive():
                raise RuntimeError(f"{vm.name} exited: {vm.tail_log()}")
            time.sleep(0.2)

    @staticmethod
    def console(vm):
        try:
            with open(vm.serial, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def caps(self, primary=True):
        caps = {"x-colo": True, "events": True,
                "return-path": self.return_path}
        # Only what is on: a baseline QEMU has none of the series' own
        for cap, on in (("x-colo-early-resume", self.early_resume),
                        ("x-colo-background-ram", self.background),
                        ("x-colo-resume-before-ram",
                         self.resume_before_ram and primary)):
            if on:
                caps[cap] = True
        return [{"capability": c, "state": s} for c, s in caps.items()]

    def _export_secondary_disk(self):
        colo_qmp.export_disk(self.secondary, HOST_IP[self.secondary.host],
                             tls=self._tls(self.secondary.host))

    def _add_replication_child(self):
        self.replication_child = colo_qmp.add_replication_child(
            self.primary, HOST_IP[self.secondary.host],
            tls=self._tls(self.primary.host))

    def start_replication(self):
        """Block replication, over QMP alone"""
        self._export_secondary_disk()
        self._add_replication_child()

    def _migrate(self, timeout):
        for vm in (self.secondary, self.primary):
            vm.cmd("migrate-set-capabilities",
                   capabilities=self.caps(vm is self.primary))
            if self.tls:
                vm.cmd("migrate-set-parameters", **colo_qmp.migration_tls(
                    self._tls(vm.host), vm is self.primary))
        self.primary.cmd("migrate-set-parameters",
                         **{"x-checkpoint-delay": self.checkpoint_delay})
        self.primary.cmd("migrate", uri=f"tcp:{HOST_IP[self.secondary.host]}"
                                        f":{MIGRATE_PORT}")
        for vm in (self.primary, self.secondary):
            vm.wait_event("MIGRATION", timeout, match={"status": "colo"})

    def start(self, timeout=180, strays=False):
        """Boot the primary's guest, then start COLO. The guest writes
        nothing to its disk before a client asks it to, so the two disks
        are still the same when the replication child is added. With
        STRAYS, stray connections reach the secondary first."""
        self.wait_console(self.primary, "colo-guest: service on port")
        if not self.colo:
            return
        self.start_replication()
        if not strays:
            self._migrate(timeout)
            return
        if self.tls:
            # Its migration port speaks TLS from now on
            self.secondary.cmd("migrate-set-parameters",
                               **colo_qmp.migration_tls(
                                   self._tls(self.secondary.host), False))
        said = self._log_size(self.secondary)
        silent = self._stray_connections()
        try:
            self._assert_strays_refused(said)
            if self.tls:
                self._assert_tls_refusals(self.secondary, ("migrate", "nbd"))
            self._migrate(timeout)
        finally:
            silent.close()

    # What the secondary says of a connection that is not its primary's
    REFUSED = "refused the connection from"

    def _stray_connections(self):
        """Before its primary connects, three connections reach the
        secondary's migration port over the COLO link, as a port scan
        would: one closed at once, one with 64 zero bytes, and one that
        sends nothing (returned, open). The secondary must refuse them and
        go on waiting for its primary."""
        result = {}

        def connect():
            self.hosts.enter(self.primary.host)
            addr = (HOST_IP[self.secondary.host], MIGRATE_PORT)
            socket.create_connection(addr, 5).close()
            with socket.create_connection(addr, 5) as zeros:
                zeros.sendall(bytes(64))
                result["zeros"] = closed_by_peer(zeros, 5)
            result["silent"] = socket.create_connection(addr, 5)

        t = threading.Thread(target=connect)
        t.start()
        t.join()
        if "silent" not in result or not result["zeros"]:
            raise AssertionError(f"stray connections to the secondary: "
                                 f"{result}")
        return result["silent"]

    def _assert_strays_refused(self, said):
        """The secondary said so of the two it could judge: without TLS,
        that it refused them (migration/socket.c); with TLS, that their
        handshake failed"""
        deadline = time.monotonic() + 5
        while True:
            with open(self.secondary.log, errors="replace") as f:
                f.seek(said)
                lines = f.read().splitlines()
            if self.tls:
                refused = sum("TLS" in line for line in lines)
            else:
                refused = sum(self.REFUSED in line for line in lines)
            if refused >= 2:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the secondary refused {refused} of "
                                     "the stray connections, not 2: "
                                     f"{lines}")
            time.sleep(0.1)

    def _assert_tls_refusals(self, server, ports):
        problems = self.tls_refusals(server, ports)
        if problems:
            raise AssertionError("; ".join(problems))

    def _wait_job(self, job, ready, timeout=120):
        """Wait until block job JOB is ready (READY) or gone"""
        deadline = time.monotonic() + timeout
        while True:
            jobs = {j["device"]: j for j in
                    self.primary.cmd("query-block-jobs")}
            if (ready and jobs.get(job, {}).get("ready")) or \
               (not ready and job not in jobs):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"block job {job}: {jobs.get(job)}")
            time.sleep(0.1)

    def _resync_disk(self):
        """Copy the primary's disk to the new secondary's while the guest
        runs (blockdev-mirror); then, with the guest stopped for a moment,
        end the copy and add the secondary's disk as the replication
        child: from then on the primary's writes reach both (patch 8),
        and the guest runs on."""
        peer = HOST_IP[self.secondary.host]
        tls = self._tls(self.primary.host)
        colo_qmp.start_resync(self.primary, peer, tls=tls)
        self._wait_job("resync", ready=True)
        self.replication_child = colo_qmp.end_resync(self.primary, peer,
                                                     tls=tls)

    def reprotect(self, timeout=180):
        """After a failover: a fresh secondary, with the first one's
        command line (the survivor's address in it) and fresh active and
        hidden disks, on the lost host, joins the survivor. A primary
        keeps its proxy: the new secondary connects to the same sockets,
        and colo-compare compares again once COLO starts. A secondary
        that took over gets a primary's proxy first."""
        lost = self.lost
        survivor = self.secondary if lost is self.primary else self.primary
        lost.kill()
        if survivor is self.secondary:
            colo_qmp.become_primary(survivor, HOST_IP[survivor.host],
                                    self.nic != "e1000",
                                    tls=self._tls(survivor.host))
        if self.tls:
            # The proxy's sockets wait for the next secondary: nobody else
            self._assert_tls_refusals(survivor, ("mirror", "compare"))
        host = lost.host
        self._images((f"active-{host}.qcow2", f"hidden-{host}.qcow2"))
        self.secondaries += 1
        self.primary = survivor
        self.secondary = self._start(f"secondary{self.secondaries}", host,
                                     self._secondary_args(host,
                                                          survivor.host))
        self._export_secondary_disk()
        self._resync_disk()
        self._migrate(timeout)

    def checkpoints(self):
        return self._colo(self.primary).get("checkpoints", 0)

    def _colo(self, vm):
        return vm.cmd("query-migrate").get("colo", {})

    def _wait_commit_after_held_writes(self, timeout=30):
        """With x-colo-resume-before-ram, wait until the primary sends the
        disk writes it held during a checkpoint's stream: the secondary has
        committed that checkpoint, and the next one is an interval away.
        Returns the primary's count of checkpoints then, the one the
        secondary must take over with."""
        held = self._colo(self.primary)["held-disk-writes"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            colo = self._colo(self.primary)
            if colo["held-disk-writes"] > held:
                return colo["checkpoints"]
            time.sleep(0.002)
        raise AssertionError(f"no disk write held in {timeout} s")

    def fail_over(self, kill, hang=False, mid_stream=False,
                  after_commit=False):
        """Kill KILL ("primary" or "secondary"), or with HANG stop it
        (SIGSTOP: a host that hangs, its sockets open), and fail over to
        the other side: x-colo-lost-heartbeat and the block steps only.
        With MID_STREAM, the primary is killed as it resumes from a
        checkpoint, while that checkpoint's RAM is still on its way with
        x-colo-resume-before-ram (self.cut_mid_stream then says whether
        the secondary never had it). With AFTER_COMMIT, it is killed once
        the secondary has committed a checkpoint during whose stream the
        guest wrote, before the next one: the secondary's disk must then
        have none of those writes, or its guest finds a sector written
        that its memory never wrote ("err ahead N"; self.cut_after_commit
        says whether the secondary took over with that checkpoint).
        Returns the survivor."""
        victim = getattr(self, kill)
        survivor = self.secondary if kill == "primary" else self.primary
        self.lost = victim
        if mid_stream:
            done = self.checkpoints()
            self.primary.wait_event("RESUME", 10, after=time.time())
            victim.kill()
        elif after_commit:
            committed = self._wait_commit_after_held_writes()
            victim.kill()
        elif hang:
            os.killpg(victim.proc.pid, signal.SIGSTOP)
        else:
            victim.kill()
        # The failover's time counts from here, not from the wait above
        self.lost_at = time.monotonic()
        lost = [{"type": "migration"}]
        if survivor is self.primary:
            # A secondary host that hangs keeps its sockets open: the
            # guest's writes wait for its NBD server (and the next
            # checkpoint's stop waits for them, with the main loop
            # blocked), and the mirror's writes would block once its
            # socket's buffer is full. Cut both, out of band.
            lost += [{"type": "block-node", "node-name": "nbd0"},
                     {"type": "chardev", "id": "mirror0"}]
        survivor.cmd_oob("yank", instances=lost)
        if survivor is self.secondary:
            survivor.cmd("nbd-server-stop")
        survivor.cmd("x-colo-lost-heartbeat")
        survivor.wait_event("COLO_EXIT", 30)
        if survivor is self.secondary:
            # The LAN still sends the guest's frames to the lost host
            # until the guest sends one; one that has nothing to send
            # (its client's next request went to the lost primary alone)
            # would never get the client's retransmissions
            colo_qmp.announce(survivor)
        if mid_stream:
            self.cut_mid_stream = self._colo(survivor)["checkpoints"] == done
        if after_commit:
            self.cut_after_commit = \
                self._colo(survivor)["checkpoints"] == committed
        if survivor is self.primary:
            survivor.cmd("x-blockdev-change", parent="colo-disk0",
                         child=self.replication_child)
            survivor.cmd("blockdev-del", **{"node-name": "replication0"})
        return survivor

    # A filter's send may fail as its peer dies, before its chardev has
    # seen the peer go: that many such lines per QEMU are the loss itself
    SEND_FAILURES_AT_LOSS = 2

    def _link_packets(self, host, dev):
        """(received, sent) packets of DEV in HOST's namespace"""
        out = subprocess.run(["ip", "-n", self.hosts.ns[host], "-s", "-j",
                              "link", "show", dev], capture_output=True,
                             text=True).stdout
        try:
            stats = json.loads(out)[0]["stats64"]
            return stats["rx"]["packets"], stats["tx"]["packets"]
        except (ValueError, LookupError):
            return None

    def _disk_ops(self, vm):
        """The guest disk's (writes, flushes) done, as QEMU counts them"""
        for dev in vm.cmd("query-blockstats"):
            if dev.get("device") == "colo-disk0":
                return (dev["stats"]["wr_operations"],
                        dev["stats"]["flush_operations"])
        return None

    def stall_report(self):
        """What a client's stall looks like from outside the guest, twice,
        2 s apart: where the LAN switch sends the guest's frames, the
        packets the guest sent (its tap's received) and got, the client's
        packets, the guest disk's operations, the block jobs"""
        fdb = subprocess.run(
            ["bridge", "-n", self.hosts.ns["n"], "fdb", "show", "br", "lan"],
            capture_output=True, text=True).stdout.splitlines()
        port = [line.split()[2] for line in fdb
                if line.startswith(GUEST_MAC)]
        report = [f"the LAN sends the guest's MAC to {port or 'nobody'}"]
        for sample in (1, 2):
            if sample == 2:
                time.sleep(2)
            for vm in self.vms:
                if not vm.alive() or vm is self.lost:
                    continue
                report.append(
                    f"{vm.name} {vm.cmd('query-status')['status']}, COLO "
                    f"{vm.cmd('query-colo-status')['mode']}, tap (from, to "
                    f"the guest) {self._link_packets(vm.host, 'tap0')}, disk "
                    f"(writes, flushes) {self._disk_ops(vm)}, jobs "
                    f"{[j['id'] for j in vm.cmd('query-block-jobs')]}")
            report.append(f"client (received, sent) "
                          f"{self._link_packets('c', 'lan0')}")
        return "; ".join(report)

    def log_problems(self):
        """Errors in the QEMUs' own output (a filter that cannot send: a
        survivor's filter-mirror that still sends to the lost secondary,
        say, which fails on every packet), each different line once"""
        bad = []
        for vm in self.vms:
            try:
                with open(vm.log, errors="replace") as f:
                    lines = f.read().splitlines()
            except OSError:
                continue
            failed = [line for line in lines if "send failed" in line]
            if len(failed) > self.SEND_FAILURES_AT_LOSS:
                bad += [f"{vm.name}'s QEMU ({len(failed)} times): {line}"
                        for line in failed]
        return list(dict.fromkeys(bad))

    def console_problems(self):
        """Lines of either guest's console that show something wrong, and
        a guest that booted again (a reset)"""
        bad = []
        for vm in self.vms:
            text = self.console(vm)
            bad += [f"{vm.name}: {line}" for line in text.splitlines()
                    if any(b in line for b in BAD_CONSOLE)]
            boots = text.count("colo-guest: start")
            # The first primary's guest boots once; the others are copies
            if boots > (1 if vm.name == "primary" else 0):
                bad.append(f"{vm.name}: the guest booted {boots} times")
        return bad

    def close(self):
        for vm in self.vms:
            vm.kill()
        self.hosts.close()
        # COLO_STACK_KEEP=1: keep the logs, consoles and traces
        if os.environ.get("COLO_STACK_KEEP"):
            print(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def run_scenario(qemu, linux_dir, kill, colo_seconds=8, after_seconds=4,
                 log=print, hang=False, reprotect=False, outgoing_every=0,
                 max_gap=2.0, max_checkpoints=None, mid_stream=False,
                 after_commit=False, **stack_args):
    """One run: COLO with the client's requests, KILL killed (or, with
    HANG, stopped), failover, more requests, and the checks. With
    REPROTECT, a fresh secondary then joins the survivor, the new pair
    runs COLO as long, and its primary is killed for the newest secondary
    to take over. With OUTGOING_EVERY, every
    that many-th request makes the guest open a connection to the Peer
    (not in check-fullstack.py yet: see docs/colo.md); MAX_CHECKPOINTS
    bounds the checkpoints in COLO, MAX_GAP the longest wait for a reply;
    MID_STREAM kills the primary as it resumes from a checkpoint, and
    AFTER_COMMIT once the secondary committed a checkpoint during whose
    stream the guest wrote (see Stack.fail_over()).
    Returns a dict of figures; raises AssertionError with what went
    wrong."""
    stack = Stack(qemu, linux_dir, **stack_args)
    client = None
    try:
        t0 = time.monotonic()
        stack.start(strays=True)
        log(f"COLO running after {time.monotonic() - t0:.1f} s")
        peer = Peer(stack.hosts)
        peer.ready.wait(10)
        client = Client(stack.hosts, outgoing_every=outgoing_every)
        if not client.connected.wait(60) or client.error:
            raise AssertionError(f"client: {client.error or 'no connection'}")
        t_colo = time.monotonic()
        cp0 = stack.checkpoints()
        time.sleep(colo_seconds)
        cps = stack.checkpoints() - cp0
        colo = stack.primary.cmd("query-migrate")["colo"]
        survivor = stack.fail_over(kill, hang, mid_stream, after_commit)
        t_kill, t_failed = stack.lost_at, time.monotonic()
        time.sleep(after_seconds)
        t_reprotect = None
        if reprotect:
            t = time.monotonic()
            stack.reprotect()
            t_reprotect = time.monotonic() - t
            cp1 = stack.checkpoints()
            time.sleep(colo_seconds)
            cps += stack.checkpoints() - cp1
            survivor = stack.fail_over("primary")
            t_kill, t_failed = stack.lost_at, time.monotonic()
            time.sleep(after_seconds)
        try:
            check = client.finish()
        except RuntimeError as e:
            try:
                report = stack.stall_report()
            except Exception as r:      # the stall matters more
                report = f"no stall report: {type(r).__name__}: {r}"
            raise AssertionError(f"{e}; {client.stall(t_kill)}; "
                                 f"{report}") from e
        acked = len(client.sent)
        figures = {
            "kill": kill, "hang": hang, "reprotect_s": t_reprotect,
            "acked": acked, "checkpoints": cps,
            "failover_s": t_failed - t_kill,
            "gap_s": client.max_gap(),
            "rtt_ms": client.latencies(t_colo, t_kill),
            "after": sum(1 for _, s, _ in client.sent if s > t_failed),
            "disk_check": check,
            "outgoing": peer.served,
            "cut_mid_stream": stack.cut_mid_stream if mid_stream else None,
            "cut_after_commit": stack.cut_after_commit if after_commit
            else None,
            "pause_avg_ms": colo.get("average-pause", 0) / 1000,
            "pause_max_ms": colo.get("max-pause", 0) / 1000,
            "fallbacks": colo.get("capture-fallbacks"),
            "held_disk_writes": colo.get("held-disk-writes"),
        }
        problems = stack.console_problems() + stack.log_problems()
        if check != f"good {acked}":
            problems.append(f"the survivor's disk: {check!r} for {acked} "
                            "acknowledged records")
        if figures["gap_s"] is None or figures["gap_s"] > max_gap:
            problems.append(f"service gap {figures['gap_s']} s")
        if not figures["rtt_ms"] or figures["after"] == 0:
            problems.append("no replies during COLO or after the failover")
        if cps == 0:
            problems.append("no checkpoint while the client ran")
        # With block replication no checkpoint may fall back to sending
        # its RAM in the pause. Whether the guest wrote during a stream is
        # up to chance (2-6 writes held in most runs, none in some): the
        # after-commit run waits for held writes, the others report them.
        if stack.resume_before_ram and figures["fallbacks"]:
            problems.append(f"resume before RAM: {figures['fallbacks']} "
                            "checkpoints fell back")
        if max_checkpoints is not None and cps > max_checkpoints:
            problems.append(f"{cps} checkpoints in COLO, more than "
                            f"{max_checkpoints}: the guests' output "
                            "differed")
        if outgoing_every and peer.served < acked // outgoing_every:
            problems.append(f"the guest's calls: {peer.served} of "
                            f"{acked // outgoing_every} ({peer.error})")
        if not survivor.alive():
            problems.append("the survivor is gone")
        if problems:
            raise AssertionError("; ".join(problems))
        if after_commit and not stack.cut_after_commit:
            raise WindowMissed("the secondary took over with a later "
                               "checkpoint than the one the guest wrote "
                               "during: the loss came too late")
        return figures
    finally:
        if client:
            client.close()
        stack.close()


def describe(f):
    rtt = f["rtt_ms"]
    return (f"{'hang' if f.get('hang') else 'kill'} {f['kill']}"
            f"{', re-protect (%.1f s), kill the primary' % f['reprotect_s'] if f.get('reprotect_s') else ''}: "
            f"{f['acked']} requests, {f['checkpoints']} "
            f"checkpoints in COLO (pause average {f['pause_avg_ms']:.1f}, "
            f"max {f['pause_max_ms']:.1f} ms), RTT median {statistics.median(rtt):.1f} "
            f"p99 {percentile(rtt, 99):.1f} max {max(rtt):.1f} ms, failover "
            f"{f['failover_s']:.2f} s, service gap {f['gap_s']:.2f} s, "
            f"{f['after']} after, disk {f['disk_check']}"
            f"{'' if f.get('held_disk_writes') is None else ', %d disk writes held' % f['held_disk_writes']}"
            f"{'' if f.get('cut_mid_stream') is None else ', lost mid-stream' if f['cut_mid_stream'] else ', lost after the stream'}"
            f"{'' if f.get('cut_after_commit') is None else ', lost after the commit' if f['cut_after_commit'] else ', lost after the next checkpoint'}"
            f"{', %d calls of the guest' % f['outgoing'] if f.get('outgoing') else ''}")
