#!/usr/bin/env bash
# amber demo: installs what is missing, builds, boots the test VM and in it checkpoints a running
# program (build/workloads/counter), kills it with SIGKILL, restores it from the image and shows
# it carrying on to exactly the output an uninterrupted run gives.
# Usage: scripts/demo.sh [--no-build]  (as root; `sudo make demo` runs it)
set -euo pipefail

top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
cd "$top"

if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (sudo make demo): it installs packages and boots a VM" >&2
	exit 1
fi

if [ "${1:-}" != --no-build ]; then
	echo "=== setup and build"
	scripts/setup.sh
	make all
fi
for f in kmod/amber.ko build/amber build/workloads/counter; do
	[ -e "$f" ] || { echo "demo: $f was not built" >&2; exit 1; }
done

echo "=== booting the test VM (QEMU, software emulation: takes a few seconds)"
# The part that runs inside the VM, as root, cwd = this repository.
read -r -d '' guest <<'GUEST' || true
set -euo pipefail
steps=60
out=/tmp/out.txt
store=/tmp/store
say() { printf '\n>>> %s\n' "$*"; }

say "insmod kmod/amber.ko"
insmod kmod/amber.ko
build/amber version

say "start build/workloads/counter $steps (one line per 200 ms) in the background, output to $out"
setsid build/workloads/counter "$steps" 200 </dev/null >"$out" 2>&1 &
pid=$!
echo "counter is pid $pid"
sleep 2

say "build/amber checkpoint $pid -D $store   (the program keeps running)"
build/amber checkpoint "$pid" -D "$store"
sleep 1

say "kill -9 $pid"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true # reap it, so that its PID is free again
echo "$out so far: $(wc -l <"$out") lines, ending with:"
tail -n 3 "$out"

say "build/amber inspect -D $store"
build/amber inspect -D "$store" | tee /tmp/inspect.txt | head -n 60
# Where stdout stood at the checkpoint, from the image's fd table.
pos=$(sed -nE 's/^ +1 +regular file .*\(pos ([0-9]+),.*/\1/p' /tmp/inspect.txt | head -n1)

say "build/amber restore -D $store   (same PID $pid; waits for the program to finish)"
rc=0
timeout 120 build/amber restore -D "$store" || rc=$?
echo "restore exited with status $rc"

say "$out after the restore: the counter carried on from where it was checkpointed"
if [ -n "$pos" ] && [ "$(head -c "$pos" "$out" | wc -l)" -gt 0 ]; then
	k=$(head -c "$pos" "$out" | wc -l)
	sed "${k}a\\
      ---- checkpoint taken here; below: written by the restored process ----" "$out"
else
	cat "$out"
fi

say "compare with an uninterrupted run"
build/workloads/counter "$steps" 0 >/tmp/expected.txt
if [ "$rc" = 0 ] && cmp -s /tmp/expected.txt "$out"; then
	echo "PASS: identical to an uninterrupted run ($(wc -l <"$out") lines)"
else
	diff /tmp/expected.txt "$out" || true
	echo "FAIL: the output differs from an uninterrupted run (restore status $rc)"
	exit 1
fi
rmmod amber
GUEST

scripts/vm-run --timeout 300 -- "$guest"
