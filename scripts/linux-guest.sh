#!/bin/bash
# The COLO tests' Linux guest: Debian's kernel (apt-get download and dpkg -x,
# nothing installed), and an initrd made here whose init is guest/colo-init.c,
# built static, with the modules of that kernel it needs: e1000 (which the
# checks also load and unload), virtio-net and virtio-blk for the full-stack
# guest's NIC and disk. With them, for the client benchmark (netbench.py),
# Debian's busybox-static: its httpd serves guest/www, whose CGIs run in its
# sh (bin/ holds busybox and the applets they call).
# Prints the directory that holds vmlinuz and initrd.
set -euo pipefail
. "$(dirname "$0")/common.sh"

# In the order they load (each after what it needs)
MODULES=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev
         virtio_pci failover net_failover virtio_net virtio_blk e1000)

kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
       sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
[ -n "$kpkg" ] || die "no linux-image-amd64 in the package lists: run apt-get update"
out=$CACHE/linux-guest/$kpkg
bbpkg=busybox-static
bbver=$(apt-cache policy "$bbpkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
[ -n "$bbver" ] && [ "$bbver" != "(none)" ] ||
    die "no $bbpkg in the package lists: run apt-get update"
init_src=$TOP/guest/colo-init.c
www=$TOP/guest/www
stamp=$out/.colo-ft-initrd
# What the initrd is made of: the contents, not the paths they were named by
want=$( (cat "$init_src" "$0"; echo "$bbpkg $bbver";
         cd "$www" && find . -type f | sort | xargs sha256sum) |
       sha256sum | cut -d" " -f1)
if [ -f "$out/vmlinuz" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$out"
    exit 0
fi

have_modules() {
    for m in "${MODULES[@]}"; do
        [ -f "$out/modules/$m.ko" ] || return 1
    done
}

mkdir -p "$out"
if [ ! -f "$out/vmlinuz" ] || ! have_modules; then
    say "downloading $kpkg"
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -q "$kpkg" >/dev/null 2>&1) ||
        die "apt-get download $kpkg failed"
    dpkg -x "$tmp"/"$kpkg"_*.deb "$tmp/x"
    kver=${kpkg#linux-image-}
    mkdir -p "$out/modules"
    for m in "${MODULES[@]}"; do
        f=$(find "$tmp/x/lib/modules" -name "$m.ko" | head -1)
        [ -n "$f" ] || die "$kpkg has no $m.ko"
        cp "$f" "$out/modules/$m.ko"
    done
    cp "$tmp/x/boot/vmlinuz-$kver" "$out/vmlinuz.new"
    mv "$out/vmlinuz.new" "$out/vmlinuz"
    rm -rf "$tmp" "$out/e1000.ko"
fi

if [ "$(cat "$out/busybox.version" 2>/dev/null)" != "$bbver" ]; then
    say "downloading $bbpkg $bbver"
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -q "$bbpkg=$bbver" >/dev/null 2>&1) ||
        die "apt-get download $bbpkg failed"
    dpkg -x "$tmp"/"$bbpkg"_*.deb "$tmp/x"
    cp "$tmp/x/bin/busybox" "$out/busybox"
    echo "$bbver" >"$out/busybox.version"
    rm -rf "$tmp"
fi

say "building the guest's initrd"
gcc -static -O2 -Wall -Werror -o "$out/init" "$init_src"
# An uncompressed newc cpio archive: /init, /modules (the .ko files and
# their load order) and /dev.
"$PYTHON" - "$out" "$www" "${MODULES[@]}" <<'PY'
import os, sys
out, www, modules = sys.argv[1], sys.argv[2], sys.argv[3:]
# The applets guest/www's CGIs run, besides the sh builtins
APPLETS = ("sh", "cat", "date", "dd")
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
    entry(f, 3, "modules", 0o40755)
    entry(f, 4, "modules/order", 0o100644,
          "".join(m + "\n" for m in modules).encode())
    for i, m in enumerate(modules):
        path = os.path.join(out, "modules", m + ".ko")
        entry(f, 5 + i, f"modules/{m}.ko", 0o100644, open(path, "rb").read())
    ino = 5 + len(modules)
    files = [("tmp", 0o41777, b""), ("bin", 0o40755, b""),
             ("bin/busybox", 0o100755,
              open(os.path.join(out, "busybox"), "rb").read())]
    files += [(f"bin/{a}", 0o120777, b"busybox") for a in APPLETS]
    for top, dirs, names in sorted(os.walk(www)):
        rel = os.path.relpath(top, os.path.dirname(www))
        files.append((rel, 0o40755, b""))
        for n in sorted(names):
            path = os.path.join(top, n)
            mode = 0o100755 if os.access(path, os.X_OK) else 0o100644
            files.append((f"{rel}/{n}", mode, open(path, "rb").read()))
    for name, mode, data in files:
        entry(f, ino, name, mode, data)
        ino += 1
    entry(f, ino, "TRAILER!!!", 0)
os.rename(os.path.join(out, "initrd.new"), os.path.join(out, "initrd"))
PY
echo "$want" >"$stamp"
echo "$out"
