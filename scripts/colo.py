"""A memory-only COLO pair on this machine, driven over QMP.

Used by the demo and the benchmark. Uses QEMU's own Python QMP library from
the work tree (python/qemu), so no protocol is hand-rolled here.

The guest is the migration-test boot sector (tests/qtest/migration/i386):
it increments the first byte of every page from 1 MiB to 100 MiB, forever,
and prints 'B' on the serial port every 64 passes.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.environ.get("COLO_FT_SRC",
                                               os.path.join(TOP, "qemu")),
                                "python"))
from qemu.qmp import ConnectError  # noqa: E402
from qemu.qmp.legacy import QEMUMonitorProtocol  # noqa: E402

import colo_qmp  # noqa: E402
import tls_certs  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_bootsect(src, path, sweep_delay=0, mem_end=None, hot_pages=0):
    """Write the migration-test x86 boot sector, taken from QEMU's source.

    SWEEP_DELAY: spins of the guest after each page it writes, 0: as fast as
    it can. MEM_END: end of the range it writes (default 100 MiB).
    HOT_PAGES: pages at the start of the range it rewrites after each page.
    All need the series' guest (its sweep_delay, mem_end, hot_pages words).
    """
    hdr = os.path.join(src, "tests/qtest/migration/i386/a-b-bootblock.h")
    with open(hdr) as f:
        text = f.read()
    body = text[text.index("{") + 1:text.index("}")]
    data = bytearray(int(x, 16)
                     for x in re.findall(r"0x[0-9a-fA-F]{2}", body))
    assert len(data) == 512, "unexpected boot sector size"
    for sym, value in (("sweep_delay", sweep_delay), ("mem_end", mem_end),
                       ("hot_pages", hot_pages)):
        if not value:
            continue
        m = re.search(rf"#define SYM_{sym} 0x([0-9a-f]+)", text)
        if not m:
            raise RuntimeError(f"this guest has no {sym}")
        off = int(m.group(1), 16) - 0x7c00
        data[off:off + 4] = value.to_bytes(4, "little")
    with open(path, "wb") as f:
        f.write(data)


def event_time(ev):
    ts = ev["timestamp"]
    return ts["seconds"] + ts["microseconds"] / 1e6


class Link:
    """Two hosts on this machine: two network namespaces joined by a veth
    pair whose both ends are shaped to RATE (tc tbf, e.g. "1gbit"). The
    primary runs in the first, the secondary in the second. Needs root.
    """

    ADDR = ("10.77.0.1", "10.77.0.2")

    def __init__(self, rate):
        tag = f"colo{os.getpid()}"
        self.ns = (tag + "p", tag + "s")
        self.dev = (tag + "a", tag + "b")
        self.made = []
        try:
            for ns in self.ns:
                self._ip("netns", "add", ns)
                self.made.append(ns)
            self._ip("link", "add", self.dev[0], "type", "veth", "peer",
                     "name", self.dev[1])
            for ns, dev, addr in zip(self.ns, self.dev, self.ADDR):
                self._ip("link", "set", dev, "netns", ns)
                self._ip("-n", ns, "addr", "add", addr + "/24", "dev", dev)
                self._ip("-n", ns, "link", "set", dev, "up")
                self._ip("-n", ns, "link", "set", "lo", "up")
                subprocess.run(["tc", "-n", ns, "qdisc", "add", "dev", dev,
                                "root", "tbf", "rate", rate, "burst", "256kb",
                                "latency", "50ms"], check=True)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _ip(*args):
        subprocess.run(["ip", *args], check=True)

    def prefix(self, side):
        return ["ip", "netns", "exec", self.ns[side]]

    def close(self):
        while self.made:
            subprocess.run(["ip", "netns", "del", self.made.pop()])


class Vm:
    def __init__(self, name, qemu, workdir, args, prefix=()):
        self.name = name
        self.sock = os.path.join(workdir, name + ".qmp")
        self.log = os.path.join(workdir, name + ".log")
        self.serial = os.path.join(workdir, name + ".serial")
        cmd = [*prefix, qemu, "-name", f"{name},debug-threads=on", "-display", "none", "-nodefaults",
               "-qmp", f"unix:{self.sock},server=on,wait=off",
               "-serial", f"file:{self.serial}"] + args
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.qmp = None
        for _ in range(500):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {self.tail_log()}")
            if os.path.exists(self.sock):
                try:
                    self.qmp = QEMUMonitorProtocol(self.sock)
                    self.qmp.connect()
                    break
                # The socket file exists a moment before QEMU listens on
                # it: qemu.qmp then raises ConnectError, not OSError.
                except (OSError, ConnectError):
                    self.qmp = None
            time.sleep(0.02)
        if self.qmp is None:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"{name}: no QMP socket")
        self.events = []

    def tail_log(self, n=20):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def cmd(self, command, /, **args):
        return self.qmp.cmd(command, **args)

    def cmd_oob(self, command, /, **args):
        """COMMAND out of band (exec-oob): it runs while the main loop is
        blocked, as on a primary whose secondary's host hangs"""
        self.oob_id = getattr(self, "oob_id", 0) + 1
        resp = self.qmp.cmd_obj({"exec-oob": command, "arguments": args,
                                 "id": f"oob-{self.oob_id}"})
        if "error" in resp:
            raise RuntimeError(f"{self.name}: {command}: "
                               f"{resp['error']['desc']}")
        return resp["return"]

    def poll_events(self, wait=False):
        try:
            evs = self.qmp.get_events(wait=wait)
        except TimeoutError:
            evs = []
        # What came while get_events() waited for the first: clearing the
        # queue here instead would lose it (STOP and RESUME a fraction of
        # a millisecond apart lost the RESUME)
        evs += self.qmp.get_events(wait=False)
        self.events.extend(evs)
        return evs

    def wait_event(self, name, timeout=60, match=None, after=None):
        """Wait for event NAME, optionally with data matching MATCH and
        emitted no earlier than the QEMU timestamp AFTER; events of that
        name emitted before AFTER are dropped."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in list(self.events):
                if ev["event"] != name:
                    continue
                if after is not None and event_time(ev) < after:
                    self.events.remove(ev)
                    continue
                if match is None or all(ev.get("data", {}).get(k) == v
                                        for k, v in match.items()):
                    self.events.remove(ev)
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no {name} event")
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.tail_log()}")
            self.poll_events(wait=min(left, 0.5))

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.qmp:
            try:
                self.qmp.close()
            except Exception:
                pass
            self.qmp = None

    def read_guest(self, addr, size):
        """Read guest-physical memory through a temporary pmemsave file."""
        fd, path = tempfile.mkstemp(dir=os.path.dirname(self.sock))
        os.close(fd)
        try:
            self.cmd("pmemsave", val=addr, size=size, filename=path)
            with open(path, "rb") as f:
                return f.read()
        finally:
            os.unlink(path)


# The boot-sector guest touches byte 0 of every page in [1 MiB, 100 MiB).
TEST_MEM_START = 1 << 20
TEST_MEM_END = 100 << 20
PAGE = 4096


def guest_ram_consistent(vm, end=TEST_MEM_END, hot_pages=0):
    """True if the guest's test range is one consistent snapshot.

    The guest increments byte 0 of each page in order, so a consistent
    state has every counter equal to some value N from the start up to a
    point, and N-1 after it: at most one step down. Anything else (two
    steps, a step up) mixes pages from different moments. The first
    HOT_PAGES pages, which the guest also rewrites after every page, are
    not checked. The VM is stopped while its memory is read.
    """
    running = vm.cmd("query-status")["running"]
    if running:
        vm.cmd("stop")
    start = TEST_MEM_START + hot_pages * PAGE
    try:
        data = vm.read_guest(start, end - start)
    finally:
        if running:
            vm.cmd("cont")
    vals = data[::PAGE]
    steps = 0
    for a, b in zip(vals, vals[1:]):
        if a == b:
            continue
        if (a - b) & 0xff == 1:
            steps += 1
            if steps > 1:
                return False
        else:
            return False
    return True


class ColoPair:
    """A primary and a secondary QEMU on this machine, memory-only COLO."""

    def __init__(self, qemu, machine="pc", mem="150M", accel="tcg",
                 return_path=True, checkpoint_delay=1000, extra=(),
                 workdir=None, src=None, sweep_delay=0, mem_end=None,
                 hot_pages=0, background=None, link=None,
                 xbzrle=False, flush_threads=None, early_resume=False,
                 resume_before_ram=False, tls=False):
        self.src = src or os.environ.get("COLO_FT_SRC",
                                         os.path.join(TOP, "qemu"))
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="colo-")
        self.qemu = qemu
        self.return_path = return_path
        self.checkpoint_delay = checkpoint_delay
        # None: x-colo-background-ram off, else migrate-set-parameters
        self.background = background
        # None: the secondary's default x-colo-flush-threads
        self.flush_threads = flush_threads
        # x-colo-early-resume on both sides
        self.early_resume = early_resume
        # x-colo-resume-before-ram (with early resume)
        self.resume_before_ram = resume_before_ram
        boot = os.path.join(self.workdir, "bootsect")
        self.mem_end = mem_end or TEST_MEM_END
        # xbzrle on the primary, with a cache (a power of two) that holds
        # every page the guest writes; None: xbzrle off
        size = (self.mem_end - TEST_MEM_START) >> 20
        self.xbzrle_cache = (1 << size.bit_length()) << 20 if xbzrle else None
        write_bootsect(self.src, boot, sweep_delay, mem_end, hot_pages)
        datadir = os.environ.get("COLO_FT_DATADIR")
        common = ["-L", datadir] if datadir else []
        common += ["-machine", f"{machine}", "-accel", accel,
                  "-m", mem,
                  "-drive", f"if=none,id=d0,file={boot},format=raw,"
                            "file.locking=off",
                  "-device", "ide-hd,drive=d0,secs=1,cyls=1,heads=1",
                  *extra]
        self.common = common
        # With a link, each side in its own namespace: two hosts
        self.link = Link(link) if link else None
        # With TLS, x509 on the migration stream: {host: colo_qmp.Tls}
        self.tls = self._certificates() if tls else {}
        # Secondaries started so far, to name the next one's files
        self.secondaries = 0
        self.secondary = self._incoming("secondary", 1)
        self.primary = Vm("primary", qemu, self.workdir,
                          common + self._tls_args(0),
                          self.link.prefix(0) if link else ())
        self.primary.host = 0

    def _address(self, host):
        return Link.ADDR[host] if self.link else "127.0.0.1"

    def _certificates(self):
        """One CA and a certificate per host (tls_certs.py); each host
        takes only the other's"""
        ca = tls_certs.make_ca(os.path.join(self.workdir, "tls-ca"))
        certs = {host: tls_certs.make_host_certificate(
            os.path.join(self.workdir, f"tls-{host}"), ca,
            f"CN=colo-host-{host}", self._address(host)) for host in (0, 1)}
        return {host: colo_qmp.Tls(certs[host], f"CN=colo-host-{1 - host}")
                for host in (0, 1)}

    def _tls_args(self, host):
        return self.tls[host].args() if self.tls else []

    def _incoming(self, name, host):
        """A QEMU on HOST (0 or 1: the link's namespace, if there is a
        link) that waits for the primary's migration."""
        uri = f"tcp:{self._address(host)}:{free_port()}"
        vm = Vm(name, self.qemu, self.workdir,
                self.common + self._tls_args(host) + ["-incoming", uri],
                self.link.prefix(host) if self.link else ())
        vm.host, vm.uri = host, uri
        self.secondaries += 1
        return vm

    def caps(self):
        caps = [{"capability": "x-colo", "state": True},
                {"capability": "events", "state": True}]
        if self.return_path:
            caps.append({"capability": "return-path", "state": True})
        if self.background is not None:
            caps.append({"capability": "x-colo-background-ram",
                         "state": True})
        if self.xbzrle_cache:
            caps.append({"capability": "xbzrle", "state": True})
        if self.early_resume or self.resume_before_ram:
            caps.append({"capability": "x-colo-early-resume", "state": True})
        if self.resume_before_ram:
            caps.append({"capability": "x-colo-resume-before-ram",
                         "state": True})
        return caps

    def start(self, timeout=120):
        """Migrate the primary to the secondary and wait for COLO."""
        for vm in (self.secondary, self.primary):
            vm.cmd("migrate-set-capabilities", capabilities=self.caps())
            if self.tls:
                vm.cmd("migrate-set-parameters", **colo_qmp.migration_tls(
                    self.tls[vm.host], vm is self.primary))
        if self.flush_threads:
            self.secondary.cmd("migrate-set-parameters",
                               **{"x-colo-flush-threads":
                                  self.flush_threads})
        if self.xbzrle_cache:
            self.primary.cmd("migrate-set-parameters",
                             **{"xbzrle-cache-size": self.xbzrle_cache})
        # Let the first migration converge whatever the guest dirties, as
        # the qtests do, then go back to the defaults
        self.primary.cmd("migrate-set-parameters",
                         **{"x-checkpoint-delay": self.checkpoint_delay,
                            "max-bandwidth": 1000 * 1000 * 1000,
                            "downtime-limit": 30 * 1000})
        self.primary.cmd("migrate", uri=self.secondary.uri)
        self.primary.wait_event("MIGRATION", timeout,
                                match={"status": "colo"})
        self.secondary.wait_event("MIGRATION", timeout,
                                  match={"status": "colo"})
        self.primary.cmd("migrate-set-parameters",
                         **{"max-bandwidth": 128 << 20,
                            "downtime-limit": 300})
        if self.background:
            self.primary.cmd("migrate-set-parameters", **self.background)
        # The switch-over's own STOP/RESUME is not a checkpoint.
        self.primary.poll_events()
        self.primary.events = [e for e in self.primary.events
                               if e["event"] != "STOP"]

    def checkpoint_pauses(self, count, timeout_each=None):
        """Yield (pause_seconds, query-migrate) for COUNT checkpoints.

        A checkpoint's primary pause is its STOP -> RESUME interval. QEMU
        reports it in query-migrate's 'colo' statistics; with a QEMU that
        lacks them, it is taken from the timestamps of the STOP and RESUME
        events instead.
        """
        t = timeout_each or max(30, 10 * self.checkpoint_delay / 1000)
        info = self.primary.cmd("query-migrate")
        if "colo" not in info:
            for _ in range(count):
                stop = self.primary.wait_event("STOP", t)
                resume = self.primary.wait_event("RESUME", t,
                                                 after=event_time(stop))
                info = self.primary.cmd("query-migrate")
                yield event_time(resume) - event_time(stop), info
            return
        # Sleep on the RESUME event that ends each checkpoint and query
        # once: polling query-migrate would take the primary's BQL and a
        # CPU from the checkpoint it measures.
        seen = info["colo"]["checkpoints"]
        for _ in range(count):
            deadline = time.monotonic() + t
            while True:
                self.primary.wait_event("RESUME", deadline - time.monotonic())
                info = self.primary.cmd("query-migrate")
                if info.get("status") != "colo":
                    raise RuntimeError(f"primary left COLO: {info}")
                if info["colo"]["checkpoints"] > seen:
                    break
            seen = info["colo"]["checkpoints"]
            yield info["colo"]["last-pause"] / 1e6, info

    def failover_to_secondary(self):
        """The primary died: make the secondary take over."""
        self.primary.kill()
        self.secondary.cmd("yank", instances=[{"type": "migration"}])
        self.secondary.cmd("x-colo-lost-heartbeat")
        self.secondary.wait_event("COLO_EXIT", 30)

    def failover_to_primary(self):
        """The secondary died: the primary carries on alone."""
        self.secondary.kill()
        self.primary.cmd("yank", instances=[{"type": "migration"}])
        self.primary.cmd("x-colo-lost-heartbeat")
        self.primary.wait_event("COLO_EXIT", 30)

    def reprotect(self, timeout=120):
        """After a failover: a fresh secondary, with the first one's
        command line, on the lost side's host, joins the survivor, which
        is the new pair's primary. Wait for COLO, as start() does."""
        survivor = self.primary if self.primary.alive() else self.secondary
        lost = self.secondary if survivor is self.primary else self.primary
        lost.kill()
        # What the survivor reported as a secondary, or of the old pair
        survivor.poll_events()
        survivor.events = []
        self.primary = survivor
        self.secondary = self._incoming(f"secondary{self.secondaries + 1}",
                                        lost.host)
        self.start(timeout)

    def close(self):
        for vm in (getattr(self, "primary", None),
                   getattr(self, "secondary", None)):
            if vm:
                vm.kill()
        if getattr(self, "link", None):
            self.link.close()
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
