#!/bin/bash
# stress.sh [--cores] [--minutes M] [--workers W] [PATH...]: run COLO qtests
# over and over, each bounded (60 s, a hang report at 40 s), and report how
# many failed and min/median/p90/max of their times. By default the six
# Linux-guest failover tests (pc/linux/*/failover-*) in turn, for 30
# minutes, two workers. --cores pins each worker to a core of its own
# (taskset -c N): each test's two QEMUs then share one core.
#
# The stress of the hang of 2026-12-01 (docs/timings.md). Logs of failed
# runs are kept in build/stress/.
set -euo pipefail
. "$(dirname "$0")/common.sh"

minutes=30 workers=2 cores=
while [ $# -gt 0 ]; do
    case $1 in
    --minutes) minutes=${2:?}; shift 2 ;;
    --workers) workers=${2:?}; shift 2 ;;
    --cores) cores=yes; shift ;;
    -*) die "usage: stress.sh [--cores] [--minutes M] [--workers W] [PATH...]" ;;
    *) break ;;
    esac
done
mt=$BUILD/tests/qtest/migration-test
[ -x "$mt" ] || die "no $mt: make build first"
export QTEST_QEMU_BINARY=$BUILD/qemu-system-x86_64
export QTEST_QEMU_IMG=$BUILD/qemu-img
COLO_TEST_LINUX_DIR=$(bash "$TOP/scripts/linux-guest.sh")
export COLO_TEST_LINUX_DIR
if [ $# -gt 0 ]; then
    tests=("$@")
else
    mapfile -t tests < <("$mt" --full -l | grep -E '/colo/pc/linux/.*/failover-')
fi
out=$BUILD/stress
rm -rf "$out" && mkdir -p "$out"
end=$((SECONDS + minutes * 60))

worker() {      # number
    local w=$1 i=0 t start rc pin=()
    [ -z "$cores" ] || pin=(taskset -c "$((w % $(nproc)))")
    while [ "$SECONDS" -lt "$end" ]; do
        t=${tests[$(((i * workers + w) % ${#tests[@]}))]}
        i=$((i + 1))
        start=$SECONDS rc=0
        timeout -k 10 60 "${pin[@]}" "$TOP/scripts/tcg-only.sh" "$mt" \
            --full --tap -p "$t" >"$out/$w.log" 2>&1 &
        local test_pid=$! report
        bash "$TOP/scripts/hang-report.sh" "$test_pid" 40 >>"$out/$w.log" 2>&1 &
        report=$!
        wait "$test_pid" || rc=$?
        kill "$report" 2>/dev/null || true
        wait "$report" 2>/dev/null || true
        echo "$rc $((SECONDS - start)) $t" >>"$out/results"
        if [ "$rc" != 0 ]; then
            mv "$out/$w.log" "$out/failed-$w-$i.log"
            echo "not ok - $t (exit $rc, $((SECONDS - start)) s)"
        fi
    done
}

say "${#tests[@]} tests, $workers workers${cores:+, each on one core}, $minutes min"
for ((w = 0; w < workers; w++)); do
    worker "$w" &
done
wait
"$PYTHON" - "$out/results" <<'EOF'
import statistics
import sys
runs = [line.split(None, 2) for line in open(sys.argv[1])]
times = sorted(int(t) for _, t, _ in runs)
failed = [r for r in runs if r[0] != "0"]
p90 = times[min(len(times) - 1, int(0.9 * len(times)))]
print(f"stress: {len(runs)} runs, {len(failed)} failed; time min / median "
      f"/ p90 / max: {times[0]} / {statistics.median(times):.0f} / {p90} "
      f"/ {times[-1]} s")
sys.exit(1 if failed else 0)
EOF
