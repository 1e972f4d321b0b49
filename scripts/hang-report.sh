#!/bin/bash
# hang-report.sh PID SECONDS: if the process PID still runs after SECONDS,
# print where it and every process below it stand (the process tree, and
# each thread's backtrace from gdb), so that a test that hangs until its
# timeout says where it hangs. Returns at once when PID ends. check.sh
# starts it beside each test, a little before the test's timeout.
set -uo pipefail
pid=$1 after=$2

for ((i = 0; i < after; i++)); do
    kill -0 "$pid" 2>/dev/null || exit 0
    sleep 1
done
kill -0 "$pid" 2>/dev/null || exit 0

below() {       # pid: it and its descendants, parents first
    local p c
    echo "$1"
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        below "$c"
    done
}

echo "# hang-report: still running after $after s; where it stands:"
mapfile -t procs < <(below "$pid")
ps -o pid,ppid,stat,etime,time,args -p "$(IFS=,; echo "${procs[*]}")" |
    cut -c1-240 | sed 's/^/# /'
if ! command -v gdb >/dev/null; then
    echo "# hang-report: no gdb for the backtraces"
    exit 0
fi
for p in "${procs[@]}"; do
    case $(cat /proc/"$p"/comm 2>/dev/null) in
    qemu-system-*|migration-test) ;;
    *) continue ;;
    esac
    echo "# hang-report: $p: $(tr '\0' ' ' </proc/"$p"/cmdline | grep -o -- '-name [a-z]*' || cat /proc/"$p"/comm)"
    timeout 60 gdb -p "$p" -batch -nx -ex 'set pagination off' \
        -ex 'thread apply all bt 25' 2>/dev/null |
        grep -E '^(Thread|#)' | sed 's/^/# /'
done
