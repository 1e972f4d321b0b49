# COLO-FT: a patch series for QEMU's migration subsystem (COLO fault
# tolerance), kept as patches against Debian's QEMU 10.2.2. See README.md.
SHELL := /bin/bash
S := scripts

.PHONY: help deps base worktree export build qemu-path check check-series \
        check-sanitizers demo bench soak clean install-agent

help:
	@sed -n '/^## Commands/,/^## /p' README.md | sed '$$d'

deps:                 ## install build/test dependencies from Debian
	@bash $(S)/deps.sh

base: deps            ## fetch + verify the pinned Debian source package
	@bash $(S)/fetch-base.sh >/dev/null

worktree: base        ## QEMU git work tree: base commit + one per patch
	@bash $(S)/worktree.sh

export:               ## write the work tree's branch back to patches/
	@bash $(S)/export.sh

build: worktree       ## qemu-system-x86_64 and the test binaries
	@bash $(S)/build.sh

qemu-path:            ## absolute path of the built qemu-system-x86_64
	@test -x $(CURDIR)/build/qemu-system-x86_64 || \
	    { echo "not built yet: run 'make build'" >&2; exit 1; }
	@echo $(CURDIR)/build/qemu-system-x86_64

check:                ## everything: deps, base, series, checkpatch, build, tests
	@bash $(S)/check.sh

check-series:         ## build and test every prefix of the series
	@bash $(S)/check-series.sh $(ARGS)

check-sanitizers:     ## the COLO tests on an ASan + UBSan build
	@bash $(S)/check-sanitizers.sh $(ARGS)

demo:                 ## a COLO pair on this machine, its checkpoint pauses
	@bash $(S)/demo.sh $(ARGS)

bench:                ## baseline vs full series downtime benchmark
	@bash $(S)/bench.sh $(ARGS)

soak:                 ## 1000 checkpoints, RSS of both sides over time
	@bash $(S)/soak.sh $(ARGS)

install-agent: worktree ## install ocf:colo-ft:colo (the COLO resource agent)
	@bash $(S)/install-agent.sh

clean:                ## remove build directories (keeps the work tree)
	rm -rf build build-sanitizers
