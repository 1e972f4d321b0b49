#!/bin/bash
# make demo: set everything up, then run scripts/demo.py: as root, the whole
# COLO stack with a client (the Linux guest, made by linux-guest.sh) under
# Pacemaker and corosync (the COLO resource agent, installed here), which
# fail over and re-protect by themselves (ARGS=--scripted: the same stack
# driven by the demo itself); otherwise, or with ARGS=--memory-only, a
# memory-only pair, its checkpoint pauses, a failover and a re-protection.
set -euo pipefail
. "$(dirname "$0")/common.sh"

bash "$TOP/scripts/deps.sh"
bash "$TOP/scripts/worktree.sh"
bash "$TOP/scripts/build.sh"
linux=()
if [ "$(id -u)" = 0 ] && [[ " $* " != *" --memory-only "* ]]; then
    linux=(--linux-dir "$(bash "$TOP/scripts/linux-guest.sh")")
    [[ " $* " == *" --scripted "* ]] ||
        bash "$TOP/scripts/install-agent.sh" --lab-fence
fi
exec "$PYTHON" "$TOP/scripts/demo.py" --qemu "$BUILD/qemu-system-x86_64" "${linux[@]}" "$@"
