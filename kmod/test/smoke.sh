#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Smoke test of amber.ko's checkpoint side, run as root inside the guest:
#   make -C kmod && make -C kmod/test && scripts/vm-run -- kmod/test/smoke.sh
# Talks raw netlink through build/ktest/nltest; exits non-zero on any failure.

HERE=$(cd "$(dirname "$0")" && pwd)
T=${T:-/work/main/build/ktest}
KO=${KO:-/work/main/kmod/amber.ko}
pass=0 fail=0

ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
# expect NAME PATTERN OUTPUT
expect() { if grep -qE -- "$2" <<<"$3"; then ok "$1"; else bad "$1"; echo "$3" | sed 's/^/     /' | head -20; fi; }
wait_file() { for _ in $(seq 300); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
alive() { kill -0 "$1" 2>/dev/null; }

cd /tmp || exit 1
insmod "$KO" || { echo "FAIL insmod"; exit 1; }

out=$($T/nltest version); expect "GET_VERSION" '^\[1\] len 6 "0.2.0"' "$out"
out=$($T/nltest version x 2>&1); expect "GET_VERSION rejects attributes" 'err -' "$out"

# Memory, registers: compare the pages file with /proc/PID/mem while held.
$T/wl >/tmp/wl.out & W=$!
wait_file /tmp/wl.out ready
out=$($T/nltest ckpt $W /tmp/w.img verify 2>&1)
expect "checkpoint with hold" 'checkpoint err 0' "$out"
expect "pages match memory" 'verify: [0-9]+ runs .*, [0-9]+ pages compared, 0 mismatches, 0 missing' "$out"
expect "restart normalised (ip at syscall, orig_rax -1)" 'orig_rax -1 .*bytes at rip 0f 05' "$out"
expect "release" 'release err 0' "$out"
out=$($T/nltest ckpt $W /tmp/w2.img 2>&1)
expect "checkpoint without hold" 'checkpoint err 0' "$out"
alive $W && grep -q 'State:.*S' /proc/$W/status && ok "target runs on" || bad "target runs on"
kill $W

# Shared anonymous memory written by another process only is saved.
$T/shm >/tmp/shm.out & SH=$!
wait_file /tmp/shm.out ready
C=$(awk '{print $2}' /tmp/shm.out)
out=$(VERBOSE=1 $T/nltest ckpt $C /tmp/shm.img verify 2>&1)
expect "shared anon: pages match" '0 mismatches' "$out"
expect "shared anon: 10 pages from the page cache" '\[5\] len 4 = 263' "$out"
grep -A6 '\[5\] len 4 = 263' <<<"$out" | grep -q '\[10\] len 8 = 0xa$' && ok "shared anon: page count" ||
	{ bad "shared anon: page count"; grep -A6 '\[5\] len 4 = 263' <<<"$out"; }
kill $C $SH

# A reader blocked in read() is restarted and gets its data.
rm -f /tmp/fifo; mkfifo /tmp/fifo
(read -r x </tmp/fifo; echo "got $x" >/tmp/reader.out) & R=$!
sleep 0.5
out=$($T/nltest ckpt $R /tmp/r.img 2>&1); expect "checkpoint a reader" 'checkpoint err 0' "$out"
echo hello >/tmp/fifo; wait $R
expect "reader resumed" 'got hello' "$(cat /tmp/reader.out)"

# Refusals, each with errno and message.
sleep 1000 & S=$!
out=$($T/nltest ckpt 4000000 /tmp/x.img 2>&1); expect "no such pid" 'no such process' "$out"
out=$($T/nltest ckpt 2 /tmp/x.img 2>&1); expect "kernel thread" 'kernel thread' "$out"
out=$($T/nltest self 2>&1); expect "caller itself" 'calling process' "$out"
# Multi-threaded processes are no longer refused (issue 5): see threads.sh.
$T/thr >/tmp/thr.out & P=$!; wait_file /tmp/thr.out ready
out=$($T/nltest ckpt $P /tmp/x.img 2>&1); expect "multi-threaded: checkpointed" 'checkpoint err 0' "$out"
expect "multi-threaded: 2 threads" "^proc pid $P .* threads 2\$" "$out"
out=$($T/nltest ckpt $(ls /proc/$P/task | grep -v "^$P\$" | head -1) /tmp/x.img 2>&1)
expect "a thread's TID is refused" "a thread's, not a process's" "$out"
kill $P
touch /tmp/ro.img
out=$(RDONLY=1 $T/nltest ckpt $S /tmp/ro.img 2>&1); expect "read-only PAGES_FD" 'open for writing' "$out"
out=$(RDONLY=1 $T/nltest ckpt $S /tmp 2>&1); expect "directory PAGES_FD" 'regular file' "$out"
out=$($T/nltest raw 2 3=$S 2>&1); expect "missing PAGES_FD" 'missing PAGES_FD' "$out"
out=$($T/nltest raw 2 3=$S 4=0 5=2 2>&1); expect "unknown flag" 'err -' "$out"
touch /tmp/np.img; chmod 666 /tmp/np.img
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups $T/nltest ckpt $S /tmp/np.img 2>&1)
expect "unprivileged" 'needs CAP_CHECKPOINT_RESTORE' "$out"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=+checkpoint_restore \
	--ambient-caps=+checkpoint_restore $T/nltest ckpt $S /tmp/np.img 2>&1)
expect "no ptrace access" 'no ptrace access' "$out"
out=$($T/nltest raw 3 3=$S 7=1 2>&1); expect "release of nothing held" 'holds no process' "$out"

# Hold: the socket closing resumes the target; RELEASE KILL kills it.
rm -f /tmp/closenow
$T/nltest ckpt $S /tmp/h.img holdclose >/tmp/h.out & N=$!
wait_file /tmp/h.out 'checkpoint err 0'
grep -q 'State:.*D' /proc/$S/status && ok "held" || bad "held"
out=$($T/nltest version); expect "one session" '^\[25\] len 4 = 1$' "$out"
out=$($T/nltest ckpt $S /tmp/h2.img 2>&1); expect "busy while held" 'already in progress' "$out"
rmmod amber 2>/dev/null && bad "rmmod refused while held" || ok "rmmod refused while held"
touch /tmp/closenow; wait $N; sleep 0.3
alive $S && grep -q 'State:.*S' /proc/$S/status && ok "resumed on socket close" || bad "resumed on socket close"
out=$($T/nltest ckpt $S /tmp/k.img kill 2>&1); expect "hold + release kill" 'release err 0' "$out"
wait $S; st=$?
[ $st = 137 ] && ok "killed by SIGKILL" || bad "killed by SIGKILL (status $st)"

# A stopped target times out; the cancelled work later returns harmlessly.
sleep 1000 & S=$!; sleep 0.3; kill -STOP $S
out=$($T/nltest ckpt $S /tmp/st.img "" 1000 2>&1); expect "stopped target times out" 'did not stop within 1000 ms' "$out"
kill -CONT $S; sleep 0.5
alive $S && ok "alive after CONT" || bad "alive after CONT"
out=$($T/nltest ckpt $S /tmp/st.img 2>&1); expect "checkpoint after cancel" 'checkpoint err 0' "$out"
kill $S

# Long lists are split over several nests.
ulimit -n 4096
$T/wl2 1500 1200 >/tmp/wl2.out & W=$!
wait_file /tmp/wl2.out ready
out=$($T/nltest ckpt $W /tmp/w2.img nohold 2>&1)
expect "1500 VMAs, 1200 fds" 'checkpoint err 0' "$out"
[ "$(grep -c '^\[13\]' <<<"$out")" -ge 2 ] && ok "VMAS split" || bad "VMAS split"
[ "$(grep -c '^\[18\]' <<<"$out")" -ge 2 ] && ok "FDS split" || bad "FDS split"
kill $W

# Dirty tracking, incremental pages files (track.sh).
. "$HERE/track.sh"

# Threads and trees (threads.sh).
. "$HERE/threads.sh"

out=$($T/nltest version); expect "no sessions left" '^\[25\] len 4 = 0$' "$out"
rmmod amber && ok "rmmod" || bad "rmmod"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
