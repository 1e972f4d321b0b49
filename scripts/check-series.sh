#!/bin/bash
# Bisectability: every prefix of the series builds, and every prefix that
# changes QEMU itself passes the quick checks.
#
# The prefixes are checked out, one after the other, in the work tree and
# build that make check uses (qemu/ and build/), so that CI builds QEMU once
# for both: after make check, going back to the first prefix rebuilds only
# what the series changes, and each later prefix is an incremental build.
# The last prefix is the tip, so build/ ends up built for the tip, and the
# work tree is put back on the branch.
#
# What a prefix runs is decided here, from the files its commit changes
# (nothing else is trusted):
#   code   a file outside tests/ and docs/ (MAINTAINERS aside): the build,
#          the unit tests, precopy/tcp/plain and the COLO smoke set (pc,
#          both failovers, with and without return path) where the prefix
#          has the COLO tests
#   colo   code, but only files that an ordinary migration does not run
#          (COLO's own, migration/colo* and include/migration/colo.h, and
#          block replication's) besides those of build: the same without
#          precopy/tcp/plain
#   build  tests or docs only, or the network filters (net/) besides: the
#          build; the tests the prefix adds or changes run on the whole
#          series, in make check (the smoke set is memory-only: it runs
#          no code in net/)
#
#   --all-tests  every pc COLO test on every code prefix
#   --from N     start at prefix N (the skipped ones are reported as skipped)
#   --skip-tip   build the whole series but leave its tests to make check,
#                which runs every test on it (CI does this)
set -euo pipefail
. "$(dirname "$0")/common.sh"

from=1 skip_tip= all_tests=
while [ $# -gt 0 ]; do
    case $1 in
    --from) from=${2:?--from needs a prefix number}; shift 2 ;;
    --skip-tip) skip_tip=yes; shift ;;
    --all-tests) all_tests=yes; shift ;;
    *) die "usage: check-series.sh [--from N] [--skip-tip] [--all-tests]" ;;
    esac
done

bash "$TOP/scripts/deps.sh"
# An earlier run that was killed may have left a prefix checked out.
if [ -d "$SRC/.git" ] && ! qgit symbolic-ref -q HEAD >/dev/null &&
   qgit merge-base --is-ancestor HEAD "$BRANCH" &&
   [ -z "$(qgit status --porcelain --untracked-files=no)" ]; then
    qgit checkout -q "$BRANCH"
fi
# Refuses a work tree with uncommitted changes or unexported commits, so
# that checking out the prefixes cannot lose anything.
bash "$TOP/scripts/worktree.sh"

back_to_tip() {
    qgit checkout -q "$BRANCH" || say "could not check out $BRANCH in $SRC"
}
trap back_to_tip EXIT

# The class of a commit: "code", "colo" or "build" (see above).
prefix_class() {
    local files
    files=$(qgit diff-tree --no-commit-id --name-only -r "$1")
    if ! grep -qvE '^(docs/|tests/|net/|MAINTAINERS$)' <<<"$files"; then
        echo build
    elif ! grep -qvE '^(docs/|tests/|net/|MAINTAINERS$|migration/colo[^/]*$|include/migration/colo\.h$|(block/)?replication\.c$|include/block/replication\.h$)' <<<"$files"; then
        echo colo
    else
        echo code
    fi
}

commits=$(qgit rev-list --reverse "$BASE_TAG..$BRANCH")
total=$(echo "$commits" | grep -c . || true)
[ "$total" -gt 0 ] || { say "the series is empty: nothing to check"; echo "0 passed, 0 failed"; exit 0; }
i=0 good=0 skipped=0 bad=()
for c in $commits; do
    i=$((i + 1))
    subj=$(qgit log -1 --format=%s "$c")
    if [ "$i" -lt "$from" ]; then
        echo "ok $i - prefix $i # SKIP (--from $from): $subj"
        skipped=$((skipped + 1))
        continue
    fi
    class=$(prefix_class "$c")
    level=$class
    [ "$class" = build ] || [ -z "$all_tests" ] || level=all
    if [ -n "$skip_tip" ] && [ "$i" = "$total" ]; then
        level=build
    fi
    printf '\n==== prefix %d/%d (%s): %s\n' "$i" "$total" "$level" "$subj"
    qgit checkout -q --detach "$c"
    start=$SECONDS
    if CHECK_LEVEL=$level bash "$TOP/scripts/check.sh" --quick; then
        echo "ok $i - prefix $i ($level) passes ($((SECONDS - start)) s): $subj"
        good=$((good + 1))
    else
        echo "not ok $i - prefix $i ($level) fails ($((SECONDS - start)) s): $subj"
        bad+=("$i")
    fi
done
qgit checkout -q "$BRANCH"
trap - EXIT

echo
checked=$((total - skipped))
echo "check-series: $good of $checked prefixes checked are good${bad[*]:+; failing: ${bad[*]}}"
[ "$skipped" = 0 ] || echo "(prefixes 1 to $skipped were skipped, not checked)"
[ -z "$skip_tip" ] || echo "(prefix $total, the whole series, was built; its tests are left to make check)"
echo "$good passed, ${#bad[@]} failed"
[ "${#bad[@]}" = 0 ]
