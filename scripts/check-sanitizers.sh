#!/bin/bash
# make check-sanitizers: the COLO tests on a build with AddressSanitizer and
# UndefinedBehaviorSanitizer. Fails on a failed test or on any sanitizer
# report, from either QEMU of a pair (the tests hide QEMU's stderr, so the
# reports go to files, one per process, which are printed here).
#
# Builds only what the COLO tests need, in build-sanitizers/, from a work
# tree of its own (.sanitizers-src/, the tip of the branch, detached), so
# that the build can run while check-series checks prefixes out in qemu/.
#   check-sanitizers.sh               every COLO test but the Linux
#                                     guest's and five re-protections
#   check-sanitizers.sh -p PATH       every COLO test under PATH
#   check-sanitizers.sh --setup-only  dependencies and the two work trees
#   check-sanitizers.sh --build-only  the build, no test (--no-setup: after
#                                     --setup-only; CI runs it beside the
#                                     other checks, at the lowest priority)
set -euo pipefail
. "$(dirname "$0")/common.sh"

filter=/x86_64/migration/colo/
# Of the re-protection tests (17-19 s each here), the one that fails over
# both ways: the others differ only in the order and the return path
reprotect_default=/x86_64/migration/colo/pc/reprotect/plain/failover-alternate
setup=yes build=yes tests=yes
while [ $# -gt 0 ]; do
    case $1 in
    -p) filter=${2:?-p needs a test path}; reprotect_default=
        shift 2 ;;
    --setup-only) build= tests=; shift ;;
    --build-only) tests=; shift ;;
    --no-setup) setup=; shift ;;
    *) die "usage: check-sanitizers.sh [-p PATH] [--setup-only|--build-only [--no-setup]]" ;;
    esac
done
BUILD=$TOP/build-sanitizers
SAN_SRC=$TOP/.sanitizers-src
TEST_TIMEOUT=${TEST_TIMEOUT:-600}

if [ -n "$setup" ]; then
    bash "$TOP/scripts/deps.sh"
    bash "$TOP/scripts/worktree.sh"
    tip=$(qgit rev-parse "$BRANCH")
    if [ ! -e "$SAN_SRC/.git" ]; then
        qgit worktree prune
        qgit worktree add -q --detach "$SAN_SRC" "$tip"
    elif [ "$(git -C "$SAN_SRC" rev-parse HEAD)" != "$tip" ]; then
        git -C "$SAN_SRC" checkout -q --detach "$tip"
    fi
fi
if [ -n "$build" ]; then
    [ -e "$SAN_SRC/.git" ] || die "no $SAN_SRC: run without --no-setup first"
    COLO_FT_SRC=$SAN_SRC BUILD_DIR=$BUILD \
        EXTRA_CONFIGURE_ARGS="--enable-asan --enable-ubsan" \
        BUILD_TARGETS="qemu-system-x86_64 qemu-img tests/qtest/migration-test" \
        bash "$TOP/scripts/build.sh"
fi
[ -n "$tests" ] || exit 0

logs=$BUILD/sanitizer-logs
rm -rf "$logs"
mkdir -p "$logs"
# Leaks are not checked: QEMU does not free everything at exit, and a
# killed side (the tests' host failure) never exits at all.
# verify_asan_link_order=0: the clock-step tests preload libfaketime into
# the primary, before the ASan runtime
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:verify_asan_link_order=0:log_path=$logs/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1:log_path=$logs/ubsan"
export QTEST_QEMU_BINARY=$BUILD/qemu-system-x86_64
# The block replication tests make and read their images with it
export QTEST_QEMU_IMG=$BUILD/qemu-img
mt=$BUILD/tests/qtest/migration-test

# The Linux guest tests boot a kernel under TCG (15-19 s a test on the
# normal build, several times that here): they run in make check only.
mapfile -t tests < <("$mt" --full -l 2>/dev/null | grep -F "$filter" |
                     grep -v '/colo/pc/linux/' |
                     awk -v rp="$reprotect_default" \
                         'rp == "" || !/\/reprotect\// || $0 == rp' || true)
[ "${#tests[@]}" -gt 0 ] || die "no test matches $filter"
# The tests' usual times are the normal build's: allow twice the margin
BUDGET_FACTOR=6
. "$TOP/scripts/runner.sh"
qtests_init "$mt"
run_tests "${tests[@]}"

# ASan warns that it does not fully support QEMU's coroutines
# (makecontext/swapcontext), and that it ignores __asan_handle_no_return
# when a coroutine leaves its stack: both are warnings printed before any
# error, with three lines of advice, and not reports. Anything else in a
# log file is a report.
benign='WARNING: ASan doesn.t fully support makecontext/swapcontext'
benign+='|WARNING: ASan is ignoring requested __asan_handle_no_return'
benign+='|^False positive error reports may follow$'
benign+='|^For details see https://github.com/google/sanitizers/issues/189$'
reports=0
for r in $(find "$logs" -name 'asan.*' -o -name 'ubsan.*'); do
    if grep -Ev "$benign" "$r" | grep -q . ||
       grep -Eq 'ERROR: |runtime error:|^SUMMARY: ' "$r"; then
        echo "== $r"
        cat "$r"
        reports=$((reports + 1))
    fi
done
[ "$reports" = 0 ] || failures+=("$reports sanitizer reports")
echo
if [ "${#failures[@]}" -gt 0 ]; then
    echo "check-sanitizers: FAILED: ${failures[*]}"
    exit 1
fi
echo "check-sanitizers: ${#tests[@]} COLO tests passed, no sanitizer report"
