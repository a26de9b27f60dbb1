# amber: transparent checkpoint/restart for unmodified Linux processes.
#
#   make          build kmod/amber.ko, build/amber, build/amber-lease, build/unit-tests, build/tests/*, build/workloads/*
#   make check    install what is missing (scripts/setup.sh), build, run every test on 6.1,
#                 a subset on 6.12 and the cross-kernel image test (scripts/run-tests; ends
#                 with `N passed, N failed, N skipped`)
#   make check-6.12   every test on Debian's 6.12
#   make demo     checkpoint, kill and restore a running program inside the test VM
#   make clean    remove build outputs
#   make vm-selftest   check scripts/vm-run itself
#
# Each part has its own Makefile; a part that does not exist yet is skipped with a note.
# KERNEL=6.1|6.12 (default 6.1) picks the target kernel for every part (kmod/Makefile, scripts/vm-run,
# scripts/run-tests): `make check KERNEL=6.12` builds build/kmod-6.12/amber.ko and runs the tests on
# Debian's 6.12. KVER=<uname -r> names an exact kernel for the module build.

SUBDIRS := kmod userspace tests
KSELFTEST := build/kselftest/kselftest_harness.h

.PHONY: all check check-6.12 demo clean setup vm-selftest kmod-6.12 $(SUBDIRS)

all: $(SUBDIRS)

$(SUBDIRS):
	@if [ -f $@/Makefile ]; then \
		$(MAKE) -C $@; \
	else \
		echo "note: $@/Makefile does not exist yet, skipping $@"; \
	fi

# The module for the second kernel too (build/kmod-6.12/amber.ko; make check runs a subset of
# the tests on it), when its headers are installed (scripts/setup.sh installs them).
all: kmod-6.12
kmod-6.12: | kmod
	@if scripts/lib/kver 6.12 >/dev/null 2>&1; then \
		$(MAKE) -C kmod modules KERNEL=6.12; \
	else \
		echo "note: no Linux 6.12 headers installed (scripts/setup.sh), skipping the 6.12 module"; \
	fi

# The tests need the kselftest headers (extracted by setup.sh) and the uapi header only.
tests: $(KSELFTEST) | kmod userspace
userspace: | kmod

$(KSELFTEST):
	scripts/setup.sh

setup:
	scripts/setup.sh

# A build failure still runs what was built and is counted as one failed test. The build uses
# every CPU (CI has 2): serial, it took 8.5 of the 34 minutes of a clean-clone run.
NPROC := $(shell nproc 2>/dev/null || echo 1)
check: setup
	@rc=0; $(MAKE) -j$(NPROC) all || rc=$$?; \
	if [ $$rc -ne 0 ]; then echo "make check: the build failed (status $$rc)"; fi; \
	AMBER_BUILD_FAILED=$$rc scripts/run-tests

# Every test on Debian's 6.12 (make check runs the e2e, tree, incremental and bad-input tests
# on it; this runs the rest too).
check-6.12: setup
	@rc=0; $(MAKE) -j$(NPROC) all || rc=$$?; \
	if [ $$rc -ne 0 ]; then echo "make check-6.12: the build failed (status $$rc)"; fi; \
	KERNEL=6.12 AMBER_BUILD_FAILED=$$rc scripts/run-tests

demo:
	scripts/demo.sh

# Checks the VM runner itself (about a minute).
vm-selftest:
	scripts/vm-selftest

clean:
	@for d in $(SUBDIRS); do \
		if [ -f $$d/Makefile ]; then $(MAKE) -C $$d clean || exit 1; fi; \
	done
	@# Keep build/kselftest and build/checkpatch: setup.sh extracts them, nothing builds them.
	@if [ -d build ]; then \
		find build -mindepth 1 -maxdepth 1 ! -name kselftest ! -name checkpatch -exec rm -rf {} +; \
	fi
