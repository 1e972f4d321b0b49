#!/bin/bash
# Run a command with /dev/kvm hidden, so that QEMU falls back to TCG. This
# machine's KVM is nested and slower than TCG, and stalls some migration tests.
set -euo pipefail
if [ -e /dev/kvm ] && [ -z "${COLO_FT_ALLOW_KVM:-}" ]; then
    if [ "$(id -u)" = 0 ]; then
        exec unshare -m sh -c 'mount --bind /dev/null /dev/kvm && exec "$@"' sh "$@"
    fi
    exec unshare -rm sh -c 'mount --bind /dev/null /dev/kvm && exec "$@"' sh "$@"
fi
exec "$@"
