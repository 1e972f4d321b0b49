#!/bin/bash
# make bench [ARGS="--full ..."]: set everything up, build the baseline (the
# series up to its '# baseline:' marker in patches/series) and the full
# series side by side, and run scripts/bench.py on both. Quick by default.
# make bench ARGS="--net ...": the client benchmark, scripts/netbench.py,
# on the same two builds (root: it makes network namespaces).
set -euo pipefail
. "$(dirname "$0")/common.sh"

bash "$TOP/scripts/deps.sh" --bench
bash "$TOP/scripts/worktree.sh"
bash "$TOP/scripts/build.sh"

git -C "$SRC" rev-parse -q --verify baseline >/dev/null ||
    die "no 'baseline' tag: mark the baseline in $SERIES ('# baseline:')"
wt=$TOP/.bench-baseline
if [ ! -e "$wt/.git" ]; then
    git -C "$SRC" worktree prune
    git -C "$SRC" worktree add -q --detach "$wt" baseline
fi
git -C "$wt" checkout -q --detach baseline
SRC=$wt COLO_FT_SRC=$wt BUILD_DIR=$TOP/build-baseline \
    BUILD_TARGETS=qemu-system-x86_64 bash "$TOP/scripts/build.sh"

if [ "${1:-}" = "--net" ]; then
    shift
    exec "$PYTHON" "$TOP/scripts/netbench.py" \
        --baseline "$TOP/build-baseline/qemu-system-x86_64" \
        --candidate "$BUILD/qemu-system-x86_64" \
        --linux-dir "$(bash "$TOP/scripts/linux-guest.sh")" "$@"
fi
# The guest comes from the full series' tree (it has the knobs); each QEMU
# finds its firmware in its own build tree.
exec "$PYTHON" "$TOP/scripts/bench.py" \
    --baseline "$TOP/build-baseline/qemu-system-x86_64" \
    --candidate "$BUILD/qemu-system-x86_64" "$@"
