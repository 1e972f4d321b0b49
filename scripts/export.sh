#!/bin/bash
# Write the work tree's branch back to patches/: one format-patch file per
# commit since $BASE_TAG, and patches/series listing them in order. A commit
# tagged 'baseline' marks the end of the minimal prefix that makes COLO run,
# and keeps its secondary a replica (the benchmark's baseline); the series
# file records it as a comment line.
#
#   --check   only compare; exit 1 if patches/ differs from the branch
set -euo pipefail
. "$(dirname "$0")/common.sh"

check=
[ "${1:-}" = --check ] && check=yes
[ -d "$SRC/.git" ] || die "no work tree at $SRC: run 'make worktree' first"
[ -z "$(qgit status --porcelain --untracked-files=no)" ] ||
    die "$SRC has uncommitted changes: commit them first"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Options chosen so that import + export reproduces the files byte for byte.
qgit format-patch -q --no-numbered --zero-commit --no-signature \
    -O"$SRC/scripts/git.orderfile" -o "$out" "$BASE_TAG..$BRANCH" >/dev/null

baseline=$(qgit rev-parse -q --verify 'refs/tags/baseline^{commit}' || true)
{
    echo "# COLO-FT patch series on Debian qemu $BASE_VERSION, applied in order."
    [ "$baseline" = "$(qgit rev-parse "$BASE_TAG")" ] &&
        echo "# baseline: the patches above make COLO run at all, and correctly (benchmark baseline)"
    i=0
    for c in $(qgit rev-list --reverse "$BASE_TAG..$BRANCH"); do
        i=$((i + 1))
        ls "$out" | sed -n "${i}p"
        [ "$c" = "$baseline" ] &&
            echo "# baseline: the patches above make COLO run at all, and correctly (benchmark baseline)"
    done
} > "$out/series"

if [ -n "$check" ]; then
    diff -r "$out" "$PATCHES" && exit 0
    exit 1
fi
mkdir -p "$PATCHES"
rm -f "$PATCHES"/*.patch "$SERIES"
cp "$out"/* "$PATCHES/"
qgit update-ref refs/colo-ft/synced HEAD
say "exported $(grep -vcE '^(#|$)' "$PATCHES/series") patches to $PATCHES"
