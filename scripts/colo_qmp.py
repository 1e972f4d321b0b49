"""The COLO stack's parts and sequences, in QMP and command-line terms,
as docs/full-stack.md gives them: the COLO proxy of each side, the disks
of block replication, the failover of each side and the re-protection.

Shared by the one-machine stack (fullstack.py) and the cluster's resource
agent (cluster/colo). It speaks to QEMU through any object with
cmd(name, **args) and cmd_oob(name, **args): Connection below, or
colo.Vm. Only Connection needs QEMU's QMP library (python/qemu/qmp).
"""

import asyncio
import time


class Connection:
    """A QMP connection of its own event loop (one per thread), each
    command bounded in time: for callers that must not hang on a QEMU
    that stopped answering"""

    def __init__(self, sock, timeout=5.0):
        from qemu.qmp import QMPClient
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self.client = QMPClient("colo-ft")
        try:
            self._run(self.client.connect(sock))
        except BaseException:
            self.loop.close()
            raise

    def _run(self, coro, timeout=None):
        return self.loop.run_until_complete(
            asyncio.wait_for(coro, timeout or self.timeout))

    def cmd(self, name, /, **args):
        return self._run(self.client.execute(name, args or None))

    def cmd_oob(self, name, /, **args):
        return self._run(self.client.execute(name, args or None, oob=True))

    def close(self):
        try:
            self._run(self.client.disconnect(), 2)
        except Exception:
            pass
        # What the client's own tasks left, ended before the loop goes
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        try:
            self.loop.run_until_complete(
                asyncio.wait_for(asyncio.gather(*tasks,
                                                return_exceptions=True), 2))
        except Exception:
            pass
        self.loop.close()

PORTS = {"migrate": 9998, "nbd": 9999, "mirror": 9003, "compare": 9004,
         "compare-in": 9001, "compare-out": 9005}


def option(props):
    """QOM properties as a command line's option string"""
    return ",".join(f"{k}={'on' if v is True else v}"
                    for k, v in props.items())


# The ids of the TLS objects on each host of a pair with TLS
TLS_SERVER, TLS_CLIENT, TLS_AUTHZ = ("colo-tls-server", "colo-tls-client",
                                     "colo-tls-authz")


class Tls:
    """x509 TLS on every link between the two hosts: the migration stream
    (with its return path), NBD, and the proxy's two sockets. DIRECTORY
    holds the pair's CA (ca-cert.pem) and this host's certificate and key
    for both ends of a link (server-cert.pem, server-key.pem,
    client-cert.pem, client-key.pem: the same certificate, made for both
    uses, naming the host's address on the COLO link). PEER is the
    distinguished name that the peer's certificate must have: the
    servers (the secondary's migration port and NBD export, the
    primary's proxy sockets) take a client only with a certificate from
    the CA (verify-peer) and with that name (tls-authz)."""

    def __init__(self, directory, peer):
        self.directory = directory
        self.peer = peer

    def args(self):
        """The objects, on the command line"""
        return ["-object", f"tls-creds-x509,id={TLS_SERVER},"
                           f"dir={self.directory},endpoint=server,"
                           "verify-peer=on",
                "-object", f"tls-creds-x509,id={TLS_CLIENT},"
                           f"dir={self.directory},endpoint=client",
                "-object", f"authz-simple,id={TLS_AUTHZ},"
                           f"identity={self.peer}"]

    @staticmethod
    def server():
        return {"tls-creds": TLS_SERVER, "tls-authz": TLS_AUTHZ}

    @staticmethod
    def client():
        return {"tls-creds": TLS_CLIENT}


def tls_server(tls):
    return tls.server() if tls else {}


def tls_client(tls):
    return tls.client() if tls else {}


def primary_proxy(own_ip, vnet, ports=PORTS, tls=None):
    """The primary's half of the COLO proxy: (chardev id, host, port,
    server, TLS properties) of each socket, then (QOM type, properties) of
    the filters and of the compare. OWN_IP: the address the secondary
    connects to; the other sockets are the primary's own, on loopback."""
    here = "127.0.0.1"
    link = tls_server(tls)
    chardevs = [("mirror0", own_ip, ports["mirror"], True, link),
                ("compare1", own_ip, ports["compare"], True, link),
                ("compare0", here, ports["compare-in"], True, {}),
                ("compare0-0", here, ports["compare-in"], False, {}),
                ("compare_out", here, ports["compare-out"], True, {}),
                ("compare_out0", here, ports["compare-out"], False, {})]
    extra = {"vnet_hdr_support": True} if vnet else {}
    filters = [("filter-mirror", {"id": "m0", "netdev": "hn0",
                                  "queue": "tx", "outdev": "mirror0"}),
               ("filter-redirector", {"id": "redire0", "netdev": "hn0",
                                      "queue": "rx",
                                      "indev": "compare_out"}),
               ("filter-redirector", {"id": "redire1", "netdev": "hn0",
                                      "queue": "rx",
                                      "outdev": "compare0"})]
    compare = [("iothread", {"id": "iothread1"}),
               ("colo-compare", {"id": "comp0",
                                 "primary_in": "compare0-0",
                                 "secondary_in": "compare1",
                                 "outdev": "compare_out0",
                                 "iothread": "iothread1", **extra})]
    return chardevs, [(t, {**p, **extra}) for t, p in filters], compare


def primary_proxy_args(own_ip, vnet, ports=PORTS, tls=None):
    chardevs, filters, compare = primary_proxy(own_ip, vnet, ports, tls)
    args = []
    for cid, addr, port, server, link in chardevs:
        args += ["-chardev", f"socket,id={cid},host={addr},port={port}"
                 + (",server=on,wait=off" if server else "")
                 + "".join(f",{k}={v}" for k, v in link.items())]
    for qom_type, props in filters + compare:
        args += ["-object", f"{qom_type},{option(props)}"]
    return args


def secondary_proxy_args(peer_ip, vnet, ports=PORTS, tls=None):
    """The secondary's half: two redirectors to and from the primary at
    PEER_IP, and the rewriter"""
    v = ",vnet_hdr_support=on" if vnet else ""
    link = "".join(f",{k}={v}" for k, v in tls_client(tls).items())
    return [
        "-chardev", f"socket,id=red0,host={peer_ip},port={ports['mirror']},"
                    f"reconnect-ms=1000{link}",
        "-chardev", f"socket,id=red1,host={peer_ip},"
                    f"port={ports['compare']},reconnect-ms=1000{link}",
        "-object", f"filter-redirector,id=f1,netdev=hn0,queue=tx,"
                   f"indev=red0{v}",
        "-object", f"filter-redirector,id=f2,netdev=hn0,queue=rx,"
                   f"outdev=red1{v}",
        "-object", f"filter-rewriter,id=rew0,netdev=hn0,queue=all{v}",
    ]


def primary_disk_args(image):
    return ["-drive", "if=none,id=colo-disk0,driver=quorum,"
                      "read-pattern=fifo,vote-threshold=1,"
                      f"children.0.driver=raw,children.0.file.filename={image}"]


def secondary_disk_args(image, active, hidden):
    return [
        "-drive", "if=none,id=parent0,node-name=parent0-node,driver=raw,"
                  f"file.filename={image}",
        "-drive", "if=none,id=childs0,driver=replication,mode=secondary,"
                  f"top-id=colo-disk0,file.driver=qcow2,"
                  f"file.file.filename={active},file.backing.driver=qcow2,"
                  f"file.backing.file.filename={hidden},"
                  "file.backing.backing=parent0",
        "-drive", "if=none,id=colo-disk0,driver=quorum,"
                  "read-pattern=fifo,vote-threshold=1,children.0=childs0",
    ]


def become_primary(vm, own_ip, vnet, ports=PORTS, tls=None):
    """Give a secondary that took over a primary's proxy: its redirectors
    go, the primary's filters come in before its filter-rewriter, then
    the compare"""
    for obj in ("f2", "f1"):
        vm.cmd("object-del", id=obj)
    for cid in ("red1", "red0"):
        vm.cmd("chardev-remove", id=cid)
    chardevs, filters, compare = primary_proxy(own_ip, vnet, ports, tls)
    for cid, addr, port, server, link in chardevs:
        vm.cmd("chardev-add", id=cid, backend={
            "type": "socket",
            "data": {"addr": {"type": "inet",
                              "data": {"host": addr, "port": str(port)}},
                     "server": server, **link,
                     **({"wait": False} if server else {})}})
    for qom_type, props in filters:
        vm.cmd("object-add", **{"qom-type": qom_type, **props,
                                "insert": "before", "position": "id=rew0"})
    for qom_type, props in compare:
        vm.cmd("object-add", **{"qom-type": qom_type, **props})


def has_primary_proxy(vm):
    return any(o["name"] == "comp0"
               for o in vm.cmd("qom-list", path="/objects"))


def export_disk(vm, own_ip, ports=PORTS, tls=None):
    """The secondary exports the disk replication starts from"""
    vm.cmd("nbd-server-start", addr={
        "type": "inet", "data": {"host": own_ip, "port": str(ports["nbd"])}},
        **tls_server(tls))
    vm.cmd("block-export-add", type="nbd", id="parent0",
           **{"node-name": "parent0-node"}, name="parent0", writable=True)


def nbd_node(node_name, peer_ip, ports=PORTS, tls=None):
    return {"driver": "nbd", "node-name": node_name, "export": "parent0",
            "server": {"type": "inet", "host": peer_ip,
                       "port": str(ports["nbd"])}, **tls_client(tls)}


def add_replication_child(vm, peer_ip, ports=PORTS, tls=None):
    """The primary adds the secondary's disk to its quorum as a
    replication child; returns the child's name in the quorum"""
    vm.cmd("blockdev-add", driver="replication",
           **{"node-name": "replication0"}, mode="primary",
           file=nbd_node("nbd0", peer_ip, ports, tls))
    vm.cmd("x-blockdev-change", parent="colo-disk0", node="replication0")
    return replication_child(vm)


def replication_child(vm):
    """The name the quorum gave the replication child, from the block
    graph, or None"""
    graph = vm.cmd("x-debug-query-block-graph")
    ids = {n["id"]: n["name"] for n in graph["nodes"]}
    for edge in graph["edges"]:
        if ids.get(edge["child"]) == "replication0":
            return edge["name"]
    return None


def remove_replication_child(vm):
    child = replication_child(vm)
    if child:
        vm.cmd("x-blockdev-change", parent="colo-disk0", child=child)
    if any(n.get("node-name") == "replication0"
           for n in vm.cmd("query-named-block-nodes")):
        vm.cmd("blockdev-del", **{"node-name": "replication0"})


def yank_secondary(vm):
    """Out of band, on a primary: cut every link to its secondary. A host
    that hangs keeps its sockets open; the guest's writes would wait for
    its NBD server (and the next checkpoint's stop for them, with the
    main loop blocked), the mirror's writes once its buffer is full."""
    vm.cmd_oob("yank", instances=[{"type": "migration"},
                                  {"type": "block-node", "node-name": "nbd0"},
                                  {"type": "chardev", "id": "mirror0"}])


def wait_colo_mode(vm, mode, timeout):
    deadline = time.monotonic() + timeout
    while vm.cmd("query-colo-status")["mode"] != mode:
        if time.monotonic() > deadline:
            raise TimeoutError(f"COLO mode is not {mode!r} after "
                               f"{timeout} s")
        time.sleep(0.05)


def secondary_takes_over(vm, timeout=30):
    """The primary is lost: the secondary runs on from its last
    checkpoint"""
    vm.cmd_oob("yank", instances=[{"type": "migration"}])
    vm.cmd("nbd-server-stop")
    vm.cmd("x-colo-lost-heartbeat")
    wait_colo_mode(vm, "none", timeout)


def announce(vm):
    """The guest's NIC announces its MAC (RARP, as after a migration), so
    that the LAN's switches learn the survivor's port now, not at the
    guest's next frame: until then they send the clients' frames to the
    lost host"""
    vm.cmd("announce-self", initial=50, max=550, rounds=5, step=100)


def primary_drops_secondary(vm, timeout=30):
    """The secondary is lost: the primary carries on alone"""
    yank_secondary(vm)
    vm.cmd("x-colo-lost-heartbeat")
    wait_colo_mode(vm, "none", timeout)
    remove_replication_child(vm)


def start_resync(vm, peer_ip, ports=PORTS, tls=None):
    """Re-protection, first step: copy the primary's disk to the new
    secondary's while the guest runs"""
    vm.cmd("blockdev-add", **nbd_node("resync0", peer_ip, ports, tls))
    vm.cmd("blockdev-mirror", **{"job-id": "resync"}, device="colo-disk0",
           target="resync0", sync="full")


def resync_job(vm):
    for job in vm.cmd("query-block-jobs"):
        if job["device"] == "resync":
            return job
    return None


def end_resync(vm, peer_ip, ports=PORTS, timeout=60, tls=None):
    """Re-protection, second step, once the copy is ready: with the guest
    stopped for a moment (no write may fall between the end of the copy
    and the replication child), end the copy and add the replication
    child; from then on every write reaches both disks. Returns the
    child's name."""
    vm.cmd("stop")
    try:
        vm.cmd("block-job-cancel", device="resync")
        deadline = time.monotonic() + timeout
        while resync_job(vm):
            if time.monotonic() > deadline:
                raise TimeoutError("the disk copy did not end")
            time.sleep(0.02)
        vm.cmd("blockdev-del", **{"node-name": "resync0"})
        return add_replication_child(vm, peer_ip, ports, tls)
    finally:
        vm.cmd("cont")


def abort_resync(vm):
    """Undo a re-protection that did not finish"""
    if resync_job(vm):
        vm.cmd("block-job-cancel", device="resync", force=True)
        deadline = time.monotonic() + 30
        while resync_job(vm) and time.monotonic() < deadline:
            time.sleep(0.05)
    if any(n.get("node-name") == "resync0"
           for n in vm.cmd("query-named-block-nodes")):
        vm.cmd("blockdev-del", **{"node-name": "resync0"})
    remove_replication_child(vm)


def caps(names, primary):
    """migrate-set-capabilities' list: x-colo, events and NAMES; the
    primary's own (x-colo-resume-before-ram) only on the primary"""
    on = ["x-colo", "events", *names]
    if not primary:
        on = [c for c in on if c != "x-colo-resume-before-ram"]
    return [{"capability": c, "state": True} for c in dict.fromkeys(on)]


def migration_tls(tls, primary):
    """migrate-set-parameters' TLS parameters: the client's end on a
    primary, the server's (with its tls-authz) on a secondary; empty
    strings without TLS"""
    if tls is None:
        return {"tls-creds": "", "tls-authz": ""}
    return tls.client() | {"tls-authz": ""} if primary else tls.server()


def start_colo(primary, secondary_ip, cap_names, checkpoint_delay,
               ports=PORTS, tls=None):
    """The primary starts COLO to the secondary at SECONDARY_IP (which has
    set its capabilities and, with TLS, its parameters): the first
    migration, then checkpoints"""
    primary.cmd("migrate-set-capabilities", capabilities=caps(cap_names,
                                                              True))
    primary.cmd("migrate-set-parameters",
                **{"x-checkpoint-delay": checkpoint_delay},
                **migration_tls(tls, True))
    primary.cmd("migrate", uri=f"tcp:{secondary_ip}:{ports['migrate']}")
