#!/bin/bash
# make soak: set everything up, then run a COLO pair for 1000 checkpoints
# with background RAM and report both sides' RSS (scripts/soak.py).
set -euo pipefail
. "$(dirname "$0")/common.sh"

bash "$TOP/scripts/deps.sh"
bash "$TOP/scripts/worktree.sh"
bash "$TOP/scripts/build.sh"
exec "$PYTHON" "$TOP/scripts/soak.py" --qemu "$BUILD/qemu-system-x86_64" "$@"
