# Shared settings for the pipeline scripts; sourced, not run.
# shellcheck shell=bash

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

BASE_PKG=qemu
BASE_VERSION=1:10.2.2+ds-1
BASE_TAG=base-10.2.2
BASE_SUMS=$TOP/base.sha256

CACHE=${COLO_FT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/colo-ft}
SRC=${COLO_FT_SRC:-$TOP/qemu}   # git work tree: base commit + one commit per patch
BUILD=$TOP/build           # out-of-tree build of $SRC
# SeaBIOS and the option ROMs the +ds repack removed come from this Debian
# suite's seabios and qemu-system-data (the closest versions to the base
# that Debian 12 has; see build.sh).
QEMU_DATA_SUITE=bookworm-backports
PATCHES=$TOP/patches
SERIES=$PATCHES/series
BRANCH=colo-ft

# Unit tests that exercise the migration code (built by build.sh, run by
# check.sh), in tests/unit/.
UNIT_TESTS=(test-vmstate test-xbzrle test-bitmap test-io-channel-buffer)

# The identity of every commit and Signed-off-by in the series.
PROJECT_NAME="COLO-FT series maintainers"
PROJECT_EMAIL="maintainers@users.noreply.b-seed-d48a6a50.example"

# Debian's interpreter, not whatever python3 is first on PATH.
PYTHON=/usr/bin/python3

export LC_ALL=C.UTF-8

say() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { say "$*"; exit 1; }

# git in the QEMU work tree, with the project identity and settings that keep
# format-patch output byte-for-byte reproducible.
qgit() {
    git -C "$SRC" \
        -c user.name="$PROJECT_NAME" -c user.email="$PROJECT_EMAIL" \
        -c core.abbrev=12 -c diff.noprefix=false -c diff.mnemonicPrefix=false \
        -c diff.renames=true -c diff.algorithm=default -c format.signature= \
        -c commit.gpgsign=false -c am.threeWay=false "$@"
}

# Patch file names listed in the series file, in order.
series_patches() {
    [ -f "$SERIES" ] || return 0
    grep -vE '^[[:space:]]*(#|$)' "$SERIES"
}
