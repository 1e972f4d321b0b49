#!/bin/bash
# Install the COLO resource agent where Pacemaker finds it (make
# install-agent): ocf:colo-ft:colo in $OCF_ROOT/resource.d/colo-ft/, its
# modules (scripts/colo_qmp.py and QEMU's own QMP library, python/qemu/qmp
# of the work tree) in $OCF_ROOT/lib/colo-ft/. With --lab-fence, also the
# one-machine test's fence device, /usr/sbin/fence_colo_netns (never on
# real hosts: docs/cluster.md).
#   install-agent.sh [--lab-fence] [DESTDIR]
set -euo pipefail
. "$(dirname "$0")/common.sh"

lab=
if [ "${1:-}" = --lab-fence ]; then lab=yes; shift; fi
dest=${1:-}
ocf=$dest${OCF_ROOT:-/usr/lib/ocf}
[ -d "$SRC/python/qemu/qmp" ] || die "no QEMU work tree: run 'make worktree'"

install -d "$ocf/resource.d/colo-ft" "$ocf/lib/colo-ft/qemu/qmp"
install -m 755 "$TOP/cluster/colo" "$ocf/resource.d/colo-ft/colo"
install -m 644 "$TOP/scripts/colo_qmp.py" "$ocf/lib/colo-ft/"
printf '' >"$ocf/lib/colo-ft/qemu/__init__.py"
install -m 644 "$SRC"/python/qemu/qmp/*.py "$ocf/lib/colo-ft/qemu/qmp/"
if [ -n "$lab" ]; then
    install -d "$dest/usr/sbin"
    install -m 755 "$TOP/cluster/fence_colo_netns" "$dest/usr/sbin/"
fi
say "installed ocf:colo-ft:colo${lab:+ and fence_colo_netns} under ${dest:-/}"
