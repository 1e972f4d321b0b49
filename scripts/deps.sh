#!/bin/bash
# Install what the pipeline needs from Debian's archive, idempotently:
#  - a deb-src entry for unstable (the pinned qemu source package lives there)
#  - bookworm-backports (meson >= 1.5, python3-pycotap)
#  - QEMU's build and test dependencies and the firmware the +ds repack lacks
#  - iproute2, for the namespaces, bridges and taps of the full-stack test
#    and demo
#  - lld, which links QEMU faster than ld.bfd (scripts/build.sh)
#  - gdb, for the backtraces of a test that hangs (scripts/hang-report.sh)
#  - libfaketime, which steps a COLO primary's wall clock in the qtests
#    pc/clock-step and pc/compare/clock-step
#  - corosync and Pacemaker (with resource-agents' shell functions and
#    ping, for the ping resource), for the COLO resource agent's cluster
#    test and demo (scripts/check-cluster.py); Debian 12's packages start
#    no service where nothing runs systemd, and the test runs its own
#    nodes in namespaces
#  - GnuTLS (QEMU's TLS, and certtool for the certificates of the COLO
#    links' TLS in the full-stack and cluster tests)
#  - with --bench, also what the benchmarks need (matplotlib; wrk, the
#    client benchmark's load generator)
set -euo pipefail

SUDO=
if [ "$(id -u)" != 0 ]; then
    echo "deps: not root, using sudo for apt" >&2
    SUDO=sudo
fi

PKGS=(build-essential dpkg-dev git make pkg-config flex bison ninja-build
      python3 python3-venv python3-setuptools libglib2.0-dev libpixman-1-dev
      zlib1g-dev libslirp-dev libfdt-dev ipxe-qemu xz-utils perl
      iproute2 gdb corosync pacemaker pacemaker-cli-utils resource-agents
      iputils-ping libfaketime libgnutls28-dev gnutls-bin lld)
BPO_PKGS=(meson python3-pycotap)
if [ "${1:-}" = "--bench" ]; then
    PKGS+=(python3-matplotlib wrk)
fi

LIST=/etc/apt/sources.list.d/colo-ft.sources
want=$(cat <<'SRC'
# Added by colo-ft scripts/deps.sh
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
)

missing() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"
    done
}

meson_ok() {
    command -v meson >/dev/null &&
        dpkg --compare-versions "$(meson --version)" ge 1.5
}

updated=
if [ ! -f "$LIST" ] || [ "$(cat "$LIST")" != "$want" ]; then
    echo "deps: writing $LIST (deb-src sid, bookworm-backports)"
    printf '%s\n' "$want" | $SUDO tee "$LIST" >/dev/null
    updated=no
fi
# Need fresh indexes if the entries are new or the source index is absent.
if [ -n "$updated" ] || ! ls /var/lib/apt/lists/*sid_main_source_Sources* >/dev/null 2>&1; then
    echo "deps: apt-get update"
    $SUDO apt-get update -q
fi

need=$(missing "${PKGS[@]}")
if [ -n "$need" ]; then
    echo "deps: installing" $need
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need
fi
if [ -n "$(missing "${BPO_PKGS[@]}")" ] || ! meson_ok; then
    echo "deps: installing ${BPO_PKGS[*]} from bookworm-backports"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -t bookworm-backports "${BPO_PKGS[@]}"
fi
meson_ok || { echo "deps: meson >= 1.5 is required, found $(meson --version 2>&1)" >&2; exit 1; }
echo "deps: ok (meson $(meson --version))"
