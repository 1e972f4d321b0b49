# The test runner of check.sh and check-sanitizers.sh; sourced, not run.
# shellcheck shell=bash
#
# Each test runs bounded in time, in a process of its own, TEST_JOBS at a
# time (default 2). A test's output is printed whole, in the order the
# tests were started, then its result. Set before sourcing, or default:
#   TEST_TIMEOUT    seconds, the limit of a test without a usual time
#   BUDGET_FACTOR   a test's limit in times its usual time (3)
#   MIN_BUDGET      seconds, the least limit of a test (60)
#   times_file      where the tests' times go, for scripts/test-times

# The COLO qtests wait on timers and on their peer most of their time: two
# at a time take about half as long. Two of them side by side lost a guest
# write once (CI, 2026-12-07): TCG's dirty logging had a window that the
# contention made likelier, closed by the series' patch 89
# (docs/timings.md).
TEST_JOBS=${TEST_JOBS:-2}
BUDGET_FACTOR=${BUDGET_FACTOR:-3}
MIN_BUDGET=${MIN_BUDGET:-60}

# Each test's time budget: BUDGET_FACTOR times its usual time here (and at
# least MIN_BUDGET s), so that a test that hangs fails with its hang
# report instead of waiting for TEST_TIMEOUT. The usual times are
# scripts/test-times ("SECONDS NAME" lines, from a make check of the tip
# on the 2-core machine; each full make check writes its own as
# $BUILD/test-times, to copy there when the tests change). A test without
# an entry gets TEST_TIMEOUT.
declare -A usual=()
while read -r secs name; do
    if [[ $secs =~ ^[0-9]+$ ]]; then usual[$name]=$secs; fi
done < <(grep -v '^#' "$TOP/scripts/test-times" 2>/dev/null || true)
budget() {      # name, the limit without an entry: seconds
    local u=${usual[$1]:-} b
    if [ -z "$u" ]; then echo "$2"; return; fi
    b=$((BUDGET_FACTOR * u))
    [ "$b" -ge "$MIN_BUDGET" ] || b=$MIN_BUDGET
    [ "$b" -le "$2" ] || b=$2
    echo "$b"
}
took() {        # name, seconds: the time a test took, also for test-times
    echo "# $1: $2 s"
    [ -z "${times_file:-}" ] || echo "$2 $1" >>"$times_file"
}

passed=0 failed=0 failures=()
result() {      # name, exit status
    if [ "$2" = 0 ]; then
        passed=$((passed + 1)); echo "ok - $1"
    else
        failed=$((failed + 1)); failures+=("$1"); echo "not ok - $1 (exit $2)"
    fi
}
stage() { printf '\n== %s\n' "$*"; }

# NAME LIMIT COMMAND...: COMMAND, killed after LIMIT s; 20 s before (or
# half-way, for a short limit), a hang report says where it stands
bounded() {
    local name=$1 limit=$2 rc=0 test_pid report_pid at
    shift 2
    at=$((limit - 20))
    [ "$at" -ge $((limit / 2)) ] || at=$((limit / 2))
    timeout -k 10 "$limit" "$@" &
    test_pid=$!
    bash "$TOP/scripts/hang-report.sh" "$test_pid" "$at" &
    report_pid=$!
    wait "$test_pid" || rc=$?
    # The report of a test that ran into its limit is out by then
    if [ "$rc" = 124 ]; then
        echo "# $name: over its budget of $limit s" \
             "(usual: ${usual[$name]:-unknown} s)"
    else
        kill "$report_pid" 2>/dev/null || true
    fi
    wait "$report_pid" 2>/dev/null || true
    return "$rc"
}

# The migration-test binary MT whose paths run_tests runs
qtests_init() {     # MT
    mt=$1
    mapfile -t all < <("$mt" --full -l 2>/dev/null | grep '^/' || true)
}

# One migration-test path, in a process of its own; prints the test's
# output and its time, returns its exit status.
run_test() {
    local t=$1 u start=$SECONDS rc=0 skip=() limit
    # GLib's -p also runs the tests below the path (precopy/tcp/plain
    # would run precopy/tcp/plain/switchover-ack too): skip those.
    for u in "${all[@]}"; do
        [[ $u == "$t"/* ]] && skip+=(-s "$u")
    done
    limit=$(budget "$t" "$TEST_TIMEOUT")
    bounded "$t" "$limit" "$TOP/scripts/tcg-only.sh" "$mt" --full --tap -p "$t" "${skip[@]}" || rc=$?
    took "$t" "$((SECONDS - start))"
    return "$rc"
}

# Each migration-test path given, TEST_JOBS at a time, with its result
run_tests() {       # path...
    local -a tests=("$@")
    local n=${#tests[@]} started=0 next=0 dir
    [ "$n" -gt 0 ] || return 0
    dir=$(mktemp -d)
    while [ "$next" -lt "$n" ]; do
        while [ "$started" -lt "$n" ] &&
              [ $((started - $(ls "$dir" | grep -c '\.rc$' || true))) -lt "$TEST_JOBS" ]; do
            (rc=0; run_test "${tests[started]}" >"$dir/$started.out" 2>&1 || rc=$?
             echo "$rc" >"$dir/$started.rc") &
            started=$((started + 1))
        done
        [ -f "$dir/$next.rc" ] || wait -n || true
        while [ "$next" -lt "$n" ] && [ -f "$dir/$next.rc" ]; do
            cat "$dir/$next.out"
            result "${tests[next]}" "$(cat "$dir/$next.rc")"
            next=$((next + 1))
        done
    done
    rm -rf "$dir"
}
