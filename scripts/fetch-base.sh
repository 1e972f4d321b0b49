#!/bin/bash
# Fetch the pinned Debian source package into the cache, verify its checksums
# and unpack it (Debian's patches applied) into $CACHE/tree-VERSION.
# Idempotent; prints the unpacked tree's path.
set -euo pipefail
. "$(dirname "$0")/common.sh"

dl=$CACHE/src
tree=$CACHE/tree-${BASE_VERSION#*:}
mkdir -p "$dl"

verify() {
    (cd "$dl" && sha256sum --quiet -c "$BASE_SUMS")
}

files=$(awk '{print $2}' "$BASE_SUMS")
have=yes
for f in $files; do [ -f "$dl/$f" ] || have=; done
if [ -z "$have" ]; then
    say "downloading source package $BASE_PKG=$BASE_VERSION into $dl"
    # stdout carries only the tree's path: apt's chatter goes to stderr.
    (cd "$dl" && apt-get source --download-only -q "$BASE_PKG=$BASE_VERSION") >&2 ||
        die "apt-get source failed: is the deb-src entry in place? run scripts/deps.sh (make deps)"
fi
for f in $files; do
    [ -f "$dl/$f" ] || die "$f is missing from $dl after download; is $BASE_PKG $BASE_VERSION still in the archive?"
done
if ! verify; then
    die "checksum mismatch in $dl (see above): the cached file is corrupt or not the pinned base; delete it and run again"
fi

if [ -f "$tree.ok" ]; then
    echo "$tree"
    exit 0
fi
say "unpacking into $tree"
tmp=$(mktemp -d "$CACHE/unpack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dsc=$(awk '/\.dsc$/ {print $2}' "$BASE_SUMS")
dpkg-source --no-check -x "$dl/$dsc" "$tmp/qemu" >/dev/null
# Debian's packaging is not part of QEMU's tree: drop it and quilt's state.
rm -rf "$tmp/qemu/debian" "$tmp/qemu/.pc"
rm -rf "$tree" "$tree.ok"
mv "$tmp/qemu" "$tree"
touch "$tree.ok"
echo "$tree"
