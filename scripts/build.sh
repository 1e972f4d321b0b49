#!/bin/bash
# Configure (once) and build QEMU out of tree in $BUILD: qemu-system-x86_64,
# migration-test and the migration unit tests. Incremental on rebuild.
set -euo pipefail
. "$(dirname "$0")/common.sh"

[ -e "$SRC/.git" ] || bash "$TOP/scripts/worktree.sh"

# Only what the tests, the demo and the benchmarks use, whatever else the
# machine has installed: the features named here, and the devices of
# scripts/devices.mak (a path relative to QEMU's configs/devices/ARCH/,
# without its .mak). lld links in a fraction of ld.bfd's time, which
# counts where check-series links every prefix of the series.
devices=$(realpath -m --relative-to="$SRC/configs/devices/x86_64-softmmu" \
          "$TOP/scripts/devices")
CONFIGURE_ARGS=(--target-list=x86_64-softmmu
    --without-default-features --enable-kvm --enable-tools
    --enable-replication --enable-colo-proxy --enable-gnutls
    --enable-pixman --enable-slirp --enable-malloc-trim
    --enable-stack-protector
    --without-default-devices "--with-devices-x86_64=$devices"
    --disable-download --disable-install-blobs --extra-ldflags=-fuse-ld=lld
    --enable-debug-info --enable-werror "--python=$PYTHON"
    ${EXTRA_CONFIGURE_ARGS:-})
BUILD=${BUILD_DIR:-$BUILD}
if [ -n "${BUILD_TARGETS:-}" ]; then
    read -r -a TARGETS <<<"$BUILD_TARGETS"
else
    TARGETS=(qemu-system-x86_64 qemu-img tests/qtest/migration-test
             "${UNIT_TESTS[@]/#/tests/unit/}")
fi

# A build directory belongs to one source tree and one set of options.
stamp=$BUILD/.colo-ft-configure
config="$SRC ${CONFIGURE_ARGS[*]}"
if [ ! -f "$BUILD/build.ninja" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$config" ]; then
    say "configuring $BUILD"
    rm -rf "$BUILD"
    mkdir -p "$BUILD"
    (cd "$BUILD" && "$SRC/configure" "${CONFIGURE_ARGS[@]}" >configure.log 2>&1) || {
        tail -30 "$BUILD/configure.log"; die "configure failed, see $BUILD/configure.log"; }
    echo "$config" >"$stamp"
fi

say "building in $BUILD"
if ! ninja -C "$BUILD" "${TARGETS[@]}" >"$BUILD/ninja.log" 2>&1; then
    grep -v '^\[[0-9]*/[0-9]*\] ' "$BUILD/ninja.log" | tail -40
    die "build failed, see $BUILD/ninja.log"
fi

# The +ds repack drops the firmware blobs. They come from Debian, unpacked
# into the cache, not installed: SeaBIOS and the x86 option ROMs
# (kvmvapic, linuxboot_dma, pvh) from $QEMU_DATA_SUITE's seabios and
# arch-independent qemu-system-data, iPXE from Debian 12's ipxe-qemu.
# Debian 12's own SeaBIOS (1.16.2) does not go with QEMU 10.2's AHCI: on
# q35 it waits out a 32 s command timeout at every boot (1.16.3 boots the
# migration tests' guest in 0.3 s).
unpack_deb() {      # package: its files, into $CACHE/package
    local pkg=$1 dir=$CACHE/$1 tmp
    [ ! -f "$dir.ok" ] || return 0
    say "unpacking Debian's $pkg ($QEMU_DATA_SUITE) into the cache"
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -q "$pkg/$QEMU_DATA_SUITE" >/dev/null 2>&1) ||
        die "apt-get download $pkg/$QEMU_DATA_SUITE failed: run scripts/deps.sh"
    rm -rf "$dir" && dpkg -x "$tmp/${pkg}_"*.deb "$dir" && rm -rf "$tmp"
    touch "$dir.ok"
}
unpack_deb qemu-system-data
unpack_deb seabios
data=$BUILD/qemu-bundle/usr/local/share/qemu
mkdir -p "$data"
for f in "$CACHE"/seabios/usr/share/seabios/*.bin /usr/lib/ipxe/qemu/*.rom; do
    [ -e "$f" ] && ln -sf "$f" "$data/"
done
for f in kvmvapic.bin linuxboot.bin linuxboot_dma.bin multiboot.bin multiboot_dma.bin pvh.bin; do
    f=$CACHE/qemu-system-data/usr/share/qemu/$f
    [ -e "$f" ] && ln -sf "$f" "$data/"
done
[ -e "$data/bios-256k.bin" ] || die "bios-256k.bin not found in $CACHE/seabios"
say "built $BUILD/qemu-system-x86_64"
