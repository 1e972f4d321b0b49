#!/bin/bash
# make demo: set everything up, then run a COLO pair on this machine and
# show its checkpoint pauses and a failover (scripts/demo.py).
set -euo pipefail
. "$(dirname "$0")/common.sh"

bash "$TOP/scripts/deps.sh"
bash "$TOP/scripts/worktree.sh"
bash "$TOP/scripts/build.sh"
exec "$PYTHON" "$TOP/scripts/demo.py" --qemu "$BUILD/qemu-system-x86_64" "$@"
