#!/bin/bash
# The test command: checkpatch on every patch, build, migration unit tests,
# and the migration-test subset (plus every COLO test), all under TCG and
# each bounded in time. Exit 0 only if everything passed.
#
#   check.sh            the full check of the exported series (make check)
#   check.sh --quick    the checks of one prefix of the series (used by
#                       check-series), as CHECK_LEVEL says:
#                         build  the build only
#                         code   the build, the unit tests, precopy/tcp/plain
#                                and the pc COLO smoke set (the primary
#                                survives without a return path, the
#                                secondary with one)
#                         colo   the same without precopy/tcp/plain, for
#                                a prefix that changes only COLO's own
#                                files (check-series.sh)
#                         all    the same with every pc COLO test
set -euo pipefail
. "$(dirname "$0")/common.sh"

quick= level=
if [ "${1:-}" = --quick ]; then
    quick=yes level=${CHECK_LEVEL:-code}
    case $level in build|code|colo|all) ;;
    *) die "CHECK_LEVEL: build, code, colo or all" ;;
    esac
fi
BUILD=${BUILD_DIR:-$BUILD}

# The migration-test paths that run in seconds under TCG on 2 cores
# (ordinary precopy; precopy and postcopy with a return path, which the
# COLO patches touch; precopy through a file, whose reads go through the
# QEMUFile buffer the series resizes; stray connections to the
# destination's port, which the series refuses, without and with TLS);
# every COLO test is added automatically. Each test runs in its own
# process, killed after TEST_TIMEOUT seconds. A path that a prefix of the
# series does not have yet runs nothing there.
MIGRATION_TESTS=(/x86_64/migration/precopy/tcp/plain
                 /x86_64/migration/precopy/tcp/plain/switchover-ack
                 /x86_64/migration/postcopy/plain
                 /x86_64/migration/precopy/file
                 /x86_64/migration/precopy/tcp/stray-connections
                 /x86_64/migration/precopy/tcp/tls/psk/stray-connections)
TEST_TIMEOUT=${TEST_TIMEOUT:-300}

. "$TOP/scripts/runner.sh"
summary() {
    echo
    if [ "$failed" = 0 ]; then
        echo "check: all passed"
    else
        echo "check: FAILED: ${failures[*]}"
    fi
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}

if [ -z "$quick" ]; then
    stage "dependencies"
    bash "$TOP/scripts/deps.sh"
    stage "work tree: base + patches/series"
    bash "$TOP/scripts/worktree.sh"

    stage "checkpatch"
    n=0
    for p in $(series_patches); do
        n=$((n + 1))
        out=$(cd "$SRC" && perl scripts/checkpatch.pl -q "$PATCHES/$p" 2>&1) && rc=0 || rc=$?
        # A warning is accepted only if the commit message explains it
        # in a line starting with "checkpatch:".
        if [ "$rc" = 0 ] && echo "$out" | grep -q '^WARNING' &&
           ! sed '/^---$/q' "$PATCHES/$p" | grep -qi '^checkpatch:'; then
            rc=1
        fi
        [ "$rc" = 0 ] || echo "$out"
        result "checkpatch $p" "$rc"
    done
    [ "$n" -gt 0 ] || echo "(no patches in the series yet)"

    stage "function sizes"
    "$PYTHON" "$TOP/scripts/function-sizes.py" --src "$SRC" && rc=0 || rc=$?
    result "function sizes" "$rc"
    [ "$failed" = 0 ] || { summary; exit 1; }
fi

stage "build"
start=$SECONDS
if BUILD_DIR=$BUILD bash "$TOP/scripts/build.sh"; then
    echo "# build: $((SECONDS - start)) s"
    result build 0
else
    result build 1; summary; exit 1
fi
[ "$level" != build ] || { summary; exit; }

times_file=
if [ -z "$quick" ]; then
    times_file=$BUILD/test-times.new
    : >"$times_file"
    # The Linux guest of the pc/linux COLO tests (Debian's kernel and an
    # initrd of guest/colo-init.c)
    stage "Linux guest"
    COLO_TEST_LINUX_DIR=$(bash "$TOP/scripts/linux-guest.sh")
    export COLO_TEST_LINUX_DIR
fi
export QTEST_QEMU_BINARY=$BUILD/qemu-system-x86_64
export QTEST_QEMU_IMG=$BUILD/qemu-img
qtests_init "$BUILD/tests/qtest/migration-test"
mapfile -t colo < <(printf '%s\n' "${all[@]}" | grep '/migration/colo/' || true)

if [ -n "$quick" ]; then
    # Per prefix of the series: one ordinary migration (none where the
    # prefix changes only COLO's own files, which an ordinary migration
    # does not run) and the COLO tests on pc, by default only the smoke
    # set: the loss of each side once, one without and one with a return
    # path. The whole series runs them all (make check), every pairing and
    # q35 included.
    smoke='/colo/pc/(plain/failover-primary|return-path/failover-secondary)$'
    [ "$level" = all ] && smoke='/colo/pc/'
    mapfile -t colo < <(printf '%s\n' "${colo[@]}" | grep -E "$smoke" || true)
    MIGRATION_TESTS=("${MIGRATION_TESTS[0]}")
    [ "$level" != colo ] || MIGRATION_TESTS=()
fi

stage "migration unit tests"
for t in "${UNIT_TESTS[@]}"; do
    rc=0
    timeout -k 10 "$TEST_TIMEOUT" "$BUILD/tests/unit/$t" --tap || rc=$?
    result "unit/$t" "$rc"
done

stage "migration-test (TCG), $TEST_JOBS at a time"
run_tests "${MIGRATION_TESTS[@]}" "${colo[@]}"

# One end-to-end check script (scripts/NAME), bounded in time, reported
# under LABEL: label, timeout in seconds, script, its arguments
run_check() {
    local label=$1 limit=$2 script=$3 start=$SECONDS rc=0
    shift 3
    bounded "$label" "$(budget "$label" "$limit")" "$PYTHON" \
        "$TOP/scripts/$script" --qemu "$BUILD/qemu-system-x86_64" "$@" ||
        rc=$?
    took "$label" "$((SECONDS - start))"
    result "$label" "$rc"
}

if [ -z "$quick" ]; then
    # The whole COLO stack end to end: block replication, the COLO proxy,
    # the Linux guest's TCP service and a client (scripts/fullstack.py).
    # Needs root for its namespaces, bridges and taps; says so otherwise.
    stage "full stack (block replication + COLO proxy, Linux guest, client)"
    run_check "full stack" 1200 check-fullstack.py \
        --linux-dir "$COLO_TEST_LINUX_DIR"

    # The same stack under Pacemaker and corosync: two cluster nodes in
    # namespaces, the COLO resource agent (cluster/colo), losses that
    # nobody recovers from but the cluster (scripts/check-cluster.py).
    # Needs root; says so otherwise.
    stage "cluster (Pacemaker + corosync, the COLO resource agent)"
    run_check cluster 600 check-cluster.py --linux-dir "$COLO_TEST_LINUX_DIR"

    # The qtests run under TCG; x-colo-resume-before-ram under KVM clears
    # a dirty log that TCG has not (scripts/check-kvm.py, patch 75).
    # Skips itself where /dev/kvm cannot be opened.
    stage "KVM (memory-only COLO, x-colo-resume-before-ram, RAM check)"
    run_check KVM 300 check-kvm.py
fi

# The times of a run in which everything passed, for scripts/test-times
if [ -n "$times_file" ] && [ "$failed" = 0 ]; then
    { echo "# seconds test: make check, $(date -u +%F), $(nproc) cores"
      sort -k2 "$times_file"; } >"$BUILD/test-times"
fi
[ -z "$times_file" ] || rm -f "$times_file"
summary
