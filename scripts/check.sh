#!/bin/bash
# The test command: checkpatch on every patch, build, migration unit tests,
# and the migration-test subset (plus every COLO test), all under TCG and
# each bounded in time. Exit 0 only if everything passed.
#
#   check.sh            the full check of the exported series (make check)
#   check.sh --quick    build, unit tests, precopy/tcp/plain and the pc COLO
#                       tests, on $SRC/$BUILD as given in the environment
#                       (used by check-series for each prefix); with
#                       PREVIOUS_TESTS (a file listing the tests of the
#                       previous prefix), of the pc COLO tests only the
#                       smoke set and those that are new; with COLO_ONLY,
#                       no ordinary migration test
set -euo pipefail
. "$(dirname "$0")/common.sh"

quick=
[ "${1:-}" = --quick ] && quick=yes
BUILD=${BUILD_DIR:-$BUILD}

# The migration-test paths that run in a few minutes under TCG on 2 cores
# (ordinary precopy; precopy and postcopy with a return path, which the
# COLO patches touch; precopy through a file, whose reads go through the
# QEMUFile buffer the series resizes); every COLO test is added
# automatically. Each test runs in its own process, killed after
# TEST_TIMEOUT seconds.
MIGRATION_TESTS=(/x86_64/migration/precopy/tcp/plain
                 /x86_64/migration/precopy/tcp/plain/switchover-ack
                 /x86_64/migration/postcopy/plain
                 /x86_64/migration/precopy/file)
TEST_TIMEOUT=${TEST_TIMEOUT:-300}

passed=0 failed=0 failures=()
result() {      # name, exit status
    if [ "$2" = 0 ]; then
        passed=$((passed + 1)); echo "ok - $1"
    else
        failed=$((failed + 1)); failures+=("$1"); echo "not ok - $1 (exit $2)"
    fi
}
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
stage() { printf '\n== %s\n' "$*"; }

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
    [ "$failed" = 0 ] || { summary; exit 1; }
fi

stage "build"
if BUILD_DIR=$BUILD bash "$TOP/scripts/build.sh"; then
    result build 0
else
    result build 1; summary; exit 1
fi

stage "migration unit tests"
for t in "${UNIT_TESTS[@]}"; do
    rc=0
    timeout -k 10 "$TEST_TIMEOUT" "$BUILD/tests/unit/$t" --tap || rc=$?
    result "unit/$t" "$rc"
done

stage "migration-test (TCG)"
mt=$BUILD/tests/qtest/migration-test
export QTEST_QEMU_BINARY=$BUILD/qemu-system-x86_64
export QTEST_QEMU_IMG=$BUILD/qemu-img
mapfile -t all < <("$mt" --full -l 2>/dev/null | grep '^/' || true)
# check-series tells the next prefix's new tests from these
printf '%s\n' "${all[@]}" >"$BUILD/.colo-ft-tests"
mapfile -t colo < <(printf '%s\n' "${all[@]}" | grep '/migration/colo/' || true)
if [ -n "$quick" ]; then
    # Per prefix of the series: one ordinary migration and the COLO tests
    # on pc (q35's firmware alone takes 30 s to boot under TCG here).
    MIGRATION_TESTS=("${MIGRATION_TESTS[0]}")
    [ -z "${COLO_ONLY:-}" ] || MIGRATION_TESTS=()
    mapfile -t colo < <(printf '%s\n' "${colo[@]}" | grep '/colo/pc/' || true)
    if [ -n "${PREVIOUS_TESTS:-}" ]; then
        # Both failovers, with and without a return path, and what this
        # prefix adds: the whole series runs them all (make check).
        smoke='/colo/pc/(plain|return-path)/failover-(primary|secondary)$'
        keep=()
        for t in "${colo[@]}"; do
            if [[ $t =~ $smoke ]] || ! grep -qFx -- "$t" "$PREVIOUS_TESTS"; then
                keep+=("$t")
            fi
        done
        colo=("${keep[@]}")
    fi
fi
for t in "${MIGRATION_TESTS[@]}" "${colo[@]}"; do
    # GLib's -p also runs the tests below the path (precopy/tcp/plain
    # would run precopy/tcp/plain/switchover-ack too): skip those, each
    # test runs once, in a process of its own.
    skip=()
    for u in "${all[@]}"; do
        [[ $u == "$t"/* ]] && skip+=(-s "$u")
    done
    rc=0
    start=$SECONDS
    timeout -k 10 "$TEST_TIMEOUT" "$TOP/scripts/tcg-only.sh" "$mt" --full --tap -p "$t" "${skip[@]}" || rc=$?
    echo "# $t: $((SECONDS - start)) s"
    result "$t" "$rc"
done

summary
