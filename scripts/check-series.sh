#!/bin/bash
# Bisectability: build every prefix of the series and run the quick checks
# (build, unit tests, migration-test subset) on each. Uses a second git work
# tree and build directory so the developer's own stay untouched.
set -euo pipefail
. "$(dirname "$0")/common.sh"

bash "$TOP/scripts/deps.sh"
bash "$TOP/scripts/worktree.sh"

wt=$TOP/.series-check
sbuild=$TOP/build-series
if [ ! -e "$wt/.git" ]; then
    git -C "$SRC" worktree prune
    git -C "$SRC" worktree add -q --detach "$wt" "$BASE_TAG"
fi

commits=$(git -C "$SRC" rev-list --reverse "$BASE_TAG..$BRANCH")
# Each prefix runs the quick checks of check.sh: the build, the unit
# tests, precopy/tcp/plain, and of the pc COLO tests the smoke set and
# those the prefix adds (the first prefix checked runs them all).
# --all-tests: every pc COLO test on every prefix (about twice as long).
# --from N: start at prefix N (while iterating on the last patches).
# --skip-tip: leave out the whole series, which `make check` has just
# built and tested with every test (CI does this).
from=1 skip_tip= all_tests=
while [ $# -gt 0 ]; do
    case $1 in
    --from) from=${2:?--from needs a prefix number}; shift 2 ;;
    --skip-tip) skip_tip=yes; shift ;;
    --all-tests) all_tests=yes; shift ;;
    *) die "usage: check-series.sh [--from N] [--skip-tip] [--all-tests]" ;;
    esac
done
# The tests of the last prefix checked, as check.sh listed them
prev=$sbuild/.colo-ft-previous-tests
rm -f "$prev" "$sbuild/.colo-ft-tests"
total=$(echo "$commits" | grep -c . || true)
[ "$total" -gt 0 ] || { say "the series is empty: nothing to check"; echo "0 passed, 0 failed"; exit 0; }
i=0 bad=()
for c in $commits; do
    i=$((i + 1))
    subj=$(git -C "$SRC" log -1 --format=%s "$c")
    if [ "$i" -lt "$from" ]; then
        echo "ok $i - prefix $i skipped (--from $from): $subj"
        continue
    fi
    if [ -n "$skip_tip" ] && [ "$i" = "$total" ]; then
        echo "ok $i - prefix $i skipped (--skip-tip: make check tests it): $subj"
        continue
    fi
    printf '\n==== prefix %d/%d: %s\n' "$i" "$total" "$subj"
    git -C "$wt" checkout -q --detach "$c"
    start=$SECONDS
    previous= colo_only=
    if [ -z "$all_tests" ] && [ -f "$sbuild/.colo-ft-tests" ]; then
        cp "$sbuild/.colo-ft-tests" "$prev"
        previous=$prev
    fi
    # A patch to the COLO tests or the docs alone changes neither QEMU nor
    # the code of the ordinary migration test: only COLO tests can change.
    if [ -n "$previous" ] &&
       ! git -C "$wt" diff-tree --no-commit-id --name-only -r "$c" |
         grep -qvE '^(docs/|tests/qtest/migration/colo-tests\.c$)'; then
        colo_only=yes
    fi
    if SRC=$wt BUILD_DIR=$sbuild COLO_FT_SRC=$wt PREVIOUS_TESTS=$previous \
       COLO_ONLY=$colo_only bash "$TOP/scripts/check.sh" --quick; then
        echo "ok $i - prefix $i builds and passes ($((SECONDS - start)) s): $subj"
    else
        echo "not ok $i - prefix $i fails: $subj"
        bad+=("$i")
    fi
done
echo
echo "check-series: $((total - ${#bad[@]})) of $total prefixes good${bad[*]:+; failing: ${bad[*]}}"
[ "$from" = 1 ] || echo "(prefixes 1 to $((from - 1)) were skipped, not checked)"
[ -z "$skip_tip" ] || echo "(prefix $total, the whole series, was left to make check)"
echo "$((total - ${#bad[@]})) passed, ${#bad[@]} failed"
[ "${#bad[@]}" = 0 ]
