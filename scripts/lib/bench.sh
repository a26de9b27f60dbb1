# shellcheck shell=bash
# Shared by scripts/bench-tree and scripts/bench-cow (sourced after their options are parsed).
# They set: top (the repository), name (tree, cow: results in build/bench/NAME.txt and .log,
# guest work dir /tmp/bench-NAME), workload (in $wl), ko, wl, amber, criu, mem, timeout, lock.

# On the host: checks the files, takes the VM lock (unless --no-lock), boots one guest running
# scripts/bench-$name --in-guest "$@" (with AMBER_KO, AMBER_WORKLOADS_DIR and --amber added),
# prints the table. Exits with the guest's status.
bench_host() {
	local out=$top/build/bench f rc=0 args
	args=$(printf ' %q' "$@")
	amber=$(realpath -m "$amber")
	[[ $amber == "$top"/* ]] || { echo "bench-$name: $amber is not in $top" >&2; exit 2; }
	amber=${amber#"$top"/}
	for f in "$ko" "$amber" "$wl/$workload"; do
		[ -e "$top/$f" ] || { echo "bench-$name: $f missing: run make" >&2; exit 2; }
	done
	mkdir -p "$out"
	rm -f "$out/$name.log" "$out/$name.txt"
	if ((lock)); then
		exec 9>/tmp/amber-vm.lock
		flock -n 9 || { echo "bench-$name: waiting for the VM lock /tmp/amber-vm.lock" >&2; flock 9; }
	fi
	"$top/scripts/vm-run" --mem "$mem" --timeout "$timeout" -- \
		"AMBER_KO='$ko' AMBER_WORKLOADS_DIR='$wl' scripts/bench-$name --in-guest$args --amber '$amber'$( ((criu)) || echo ' --no-criu')" || rc=$?
	[ -s "$out/$name.txt" ] || { echo "bench-$name: no results (status $rc)" >&2; exit $((rc ? rc : 1)); }
	echo
	cat "$out/$name.txt"
	echo "log: $out/$name.log"
	exit "$rc"
}

# stamp VAR: the wall-clock time in ms into VAR, with no fork. `$(date +%s%N)` forked and
# executed date(1), which in the TCG guest takes 60-140 ms and landed inside every interval it
# closed (a restore measured that way looked about 100 ms longer than it was).
stamp() {
	printf -v "$1" '%s' $((${EPOCHREALTIME/./} / 1000))
}

# In the guest: touches nearly all free memory once, so that what is measured next runs on
# guest RAM that QEMU has already backed with host memory. Guest RAM is backed on first touch:
# the first run to allocate a page after boot pays a host page fault for it, which made
# whichever of amber and CRIU ran first (amber, at every size) pay about 4 ms per MiB more
# for its image in tmpfs (a 1 GiB checkpoint took 7.6 s on fresh memory, 3.5 s after this).
warm_guest_memory() {
	local mib t0 t1
	mib=$(($(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo) / 1024 - 320))
	((mib > 0)) || return 0
	stamp t0
	dd if=/dev/zero of=/dev/null bs="${mib}M" count=1 iflag=fullblock status=none || true
	stamp t1
	echo "warmed $mib MiB of guest memory in $((t1 - t0)) ms" >&2
}

# In the guest: a fresh work dir $work with copies of the CLI ($amber from now on) and of the
# workload, amber.ko loaded, loopback up, the log $log started; say() prints and logs a line.
bench_guest_setup() {
	trap 'echo "bench-$name: failed at line $LINENO (status $?)" >&2' ERR
	cd "$top"
	work=/tmp/bench-$name
	rm -rf "$work"
	mkdir -p "$work"
	grep -q '^amber ' /proc/modules || insmod "$ko"
	cp "$amber" "$work/amber"
	cp "$wl/$workload" "$work/$workload"
	amber=$work/amber
	ip link set lo up 2>/dev/null || true
	warm_guest_memory
	log=$work/$name.log
	: >"$log"
	say "guest: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo)," \
		"$( ((criu)) && criu --version | head -1 || echo 'no CRIU')"
}

say() { echo "$*" | tee -a "$log" >&2; }

# The median of the numbers on stdin (separated by spaces).
median() {
	tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Copies the table and the log to build/bench/ (the repository is shared with the host).
bench_guest_done() {
	mkdir -p "$top/build/bench"
	cp "$log" "$work/$name.txt" "$top/build/bench/"
}
