#!/bin/bash
# The COLO tests' Linux guest: Debian's kernel (apt-get download and dpkg -x,
# nothing installed), and an initrd made here whose init is guest/colo-init.c,
# built static, with one module of that kernel (e1000) for it to load.
# Prints the directory that holds vmlinuz and initrd.
set -euo pipefail
. "$(dirname "$0")/common.sh"

kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
       sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
[ -n "$kpkg" ] || die "no linux-image-amd64 in the package lists: run apt-get update"
out=$CACHE/linux-guest/$kpkg
init_src=$TOP/guest/colo-init.c
stamp=$out/.colo-ft-initrd
want=$(sha256sum "$init_src" "$0" | sha256sum | cut -d' ' -f1)
if [ -f "$out/vmlinuz" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$out"
    exit 0
fi

mkdir -p "$out"
if [ ! -f "$out/vmlinuz" ]; then
    say "downloading $kpkg"
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -q "$kpkg" >/dev/null 2>&1) ||
        die "apt-get download $kpkg failed"
    dpkg -x "$tmp"/"$kpkg"_*.deb "$tmp/x"
    kver=${kpkg#linux-image-}
    cp "$tmp/x/boot/vmlinuz-$kver" "$out/vmlinuz.new"
    cp "$(find "$tmp/x/lib/modules" -name e1000.ko | head -1)" "$out/e1000.ko"
    mv "$out/vmlinuz.new" "$out/vmlinuz"
    rm -rf "$tmp"
fi

say "building the guest's initrd"
gcc -static -O2 -Wall -Werror -o "$out/init" "$init_src"
# An uncompressed newc cpio archive: /init, /e1000.ko and /dev.
"$PYTHON" - "$out" <<'PY'
import os, sys
out = sys.argv[1]
def entry(f, ino, name, mode, data=b""):
    hdr = "070701" + "".join("%08x" % v for v in (
        ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0))
    f.write(hdr.encode() + name.encode() + b"\0")
    f.write(b"\0" * (-(110 + len(name) + 1) % 4))
    f.write(data)
    f.write(b"\0" * (-len(data) % 4))
with open(os.path.join(out, "initrd.new"), "wb") as f:
    entry(f, 1, "dev", 0o40755)
    entry(f, 2, "init", 0o100755, open(os.path.join(out, "init"), "rb").read())
    entry(f, 3, "e1000.ko", 0o100644,
          open(os.path.join(out, "e1000.ko"), "rb").read())
    entry(f, 4, "TRAILER!!!", 0)
os.rename(os.path.join(out, "initrd.new"), os.path.join(out, "initrd"))
PY
echo "$want" >"$stamp"
echo "$out"
