# SPDX-License-Identifier: GPL-2.0
# Threads and process trees (issue 5); sourced by smoke.sh, uses its helpers.

state_of() { awk '/^State:/ {print $2}' /proc/$1/status 2>/dev/null; }

# Every thread: TID, registers, mask, thread-directed signals, comm.
$T/mt >/tmp/mt.out & M=$!
wait_file /tmp/mt.out ready
read -r _ _ SPIN FUT SIGT ADDR </tmp/mt.out
out=$($T/nltest ckpt $M /tmp/mt.img verify 2>&1)
expect "threads: checkpoint" 'checkpoint err 0' "$out"
expect "threads: NR_THREADS 4" "^proc pid $M ppid [0-9]+ pgid [0-9]+ sid [0-9]+ threads 4\$" "$out"
[ "$(grep -c '^thread tid' <<<"$out")" = 3 ] && ok "threads: 3 THREAD entries" || bad "threads: 3 THREAD entries"
tids=$(grep '^thread tid' <<<"$out" | awk '{print $3}' | tr '\n' ' ')
[ "$tids" = "$SPIN $FUT $SIGT " ] && ok "threads: TIDs ascending ($tids)" || bad "threads: TIDs ($tids, want $SPIN $FUT $SIGT)"
line=$(grep "^thread tid $SPIN " <<<"$out")
rip=$(awk '{print $5}' <<<"$line")
if [ -n "$rip" ] && [ $((0x$rip - 0x$ADDR)) -ge 0 ] && [ $((0x$rip - 0x$ADDR)) -lt 8 ]; then
	ok "threads: spinning thread's rip in its loop"
else
	bad "threads: spinning thread's rip $rip, loop at $ADDR"
fi
expect "threads: spinning thread's r12, no syscall" "^thread tid $SPIN .*orig_rax -1 r12 5a5a5a5a5a5a .*comm spin" "$out"
expect "threads: futex wait restarted (rax = SYS_futex, ip at syscall)" \
	"^thread tid $FUT rip [0-9a-f]+ rax 202 orig_rax -1 .*comm futex code 0f 05" "$out"
expect "threads: thread-directed SIGUSR2 pending, blocked" \
	"^thread tid $SIGT .*blocked 800 pending 1 sig 12 comm sig" "$out"
expect "threads: memory matches" ', 0 mismatches, 0 missing' "$out"
expect "threads: released" 'release err 0' "$out"
sleep 0.2
[ "$(state_of $SPIN 2>/dev/null || awk '{print $3}' /proc/$M/task/$SPIN/stat)" != "" ] &&
	[ "$(awk '{print $3}' /proc/$M/task/$SPIN/stat)" = R ] && ok "threads: spinner runs again" ||
	bad "threads: spinner runs again ($(awk '{print $3}' /proc/$M/task/$SPIN/stat))"
kill $M

# Threads created while the process is being stopped: the stop converges,
# and no thread escapes it (the count while held is the reported one).
$T/mt spawn >/tmp/mts.out & M=$!
wait_file /tmp/mts.out ready
sleep 0.01
rm -f /tmp/closenow
$T/nltest ckpt $M /tmp/mts.img holdclose >/tmp/mts.ck 2>&1 & N=$!
wait_file /tmp/mts.ck 'checkpoint err'
n=$(sed -n 's/^proc pid .* threads \([0-9]*\).*/\1/p' /tmp/mts.ck)
live=$(awk '/^Threads:/ {print $2}' /proc/$M/status)
nd=$(cat /proc/$M/task/*/stat | awk '$3 != "D"' | wc -l)
expect "spawning: checkpoint" 'checkpoint err 0' "$(cat /tmp/mts.ck)"
[ -n "$n" ] && [ "$n" = "$live" ] && [ "$n" -gt 5 ] && ok "spawning: converged ($n threads, $live live)" ||
	bad "spawning: converged (reported $n, live $live)"
[ "$nd" = 0 ] && ok "spawning: every thread held" || bad "spawning: $nd threads not held"
[ "$(grep -c '^thread tid' /tmp/mts.ck)" = $((n - 1)) ] && ok "spawning: THREADS lists them" ||
	bad "spawning: THREADS lists them"
touch /tmp/closenow; wait $N
kill $M

# A tree: process group, session, a zombie, a multi-threaded child.
$T/tree >/tmp/tree.out & R=$!
wait_file /tmp/tree.out ready
read -r _ _ A AA Z S </tmp/tree.out
SID=$(ps -o sid= $R | tr -d ' '); PG=$(ps -o pgid= $R | tr -d ' ')
out=$(TREE=1 POOL=1 $T/nltest ckpt $R /tmp/tr.img 2>&1)
expect "tree: pool too small is EAGAIN" 'checkpoint err -11' "$out"
expect "tree: extack says how many" "the tree of pid $R needs 3 pages files \\(PAGES_FDS has 1\\)" "$out"
sleep 0.2
[ "$(state_of $R)$(state_of $A)$(state_of $AA)$(state_of $S)" = SSSS ] && ok "tree: resumed after EAGAIN" ||
	bad "tree: resumed after EAGAIN ($(state_of $R)$(state_of $A)$(state_of $AA)$(state_of $S))"
rm -f /tmp/closenow
TREE=1 POOL=3 $T/nltest ckpt $R /tmp/tr.img holdrelease >/tmp/tr.ck 2>&1 & N=$!
wait_file /tmp/tr.ck 'checkpoint err'
out=$(cat /tmp/tr.ck)
expect "tree: checkpoint" 'checkpoint err 0' "$out"
expect "tree: 5 messages" '5 messages' "$out"
procs=$(grep '^proc pid' <<<"$out" | awk '{print $3}' | tr '\n' ' ')
[ "$procs" = "$R $A $Z $S $AA " ] && ok "tree: root first, parents before children" ||
	bad "tree: order $procs (want $R $A $Z $S $AA)"
expect "tree: root PROC" "^proc pid $R ppid $$ pgid $PG sid $SID threads 1\$" "$out"
expect "tree: process group" "^proc pid $A ppid $R pgid $A sid $SID threads 1 index 0\$" "$out"
expect "tree: grandchild" "^proc pid $AA ppid $A pgid $A sid $SID threads 1 index 2\$" "$out"
expect "tree: zombie (exit 7)" "^proc pid $Z ppid $R pgid $PG sid $SID threads 0 zombie exit 1792\$" "$out"
expect "tree: session, 2 threads" "^proc pid $S ppid $R pgid $S sid $S threads 2 index 1\$" "$out"
for f in /tmp/tr.img /tmp/tr.img.0 /tmp/tr.img.1 /tmp/tr.img.2; do
	$T/nltest pages $f >/dev/null || bad "tree: pages file $f"
done
st="$(state_of $R)$(state_of $A)$(state_of $AA)$(state_of $S)"
[ "$st" = DDDD ] && ok "tree: all held" || bad "tree: all held ($st)"
out=$($T/nltest version); expect "tree: sessions count every held thread" '^\[25\] len 4 = 5$' "$out"
touch /tmp/closenow; wait $N; sleep 0.2
expect "tree: RELEASE of the root" 'release err 0' "$(cat /tmp/tr.ck)"
st="$(state_of $R)$(state_of $A)$(state_of $AA)$(state_of $S)"
[ "$st" = SSSS ] && ok "tree: all resumed" || bad "tree: all resumed ($st)"
[ "$(state_of $Z)" = Z ] && ok "tree: zombie still a zombie" || bad "tree: zombie still a zombie"
kill -9 $A $AA $S $R 2>/dev/null; wait $R 2>/dev/null

# Dirty tracking with a writer thread on each CPU: a write that went
# through a TLB entry from before the write-protection would not be seen,
# and the chain would not match memory.
$T/mt dirty >/tmp/mtd.out & M=$!
wait_file /tmp/mtd.out ready
sleep 0.2
out=$(TRACK=1 $T/nltest ckpt $M /tmp/mtd.0 nohold 2>&1)
t=$(sed -n 's/^track_id 0x//p' <<<"$out")
chain=/tmp/mtd.0 fails=0
for r in 1 2 3 4 5 6 7 8; do
	sleep 0.0$r
	out=$(CHAIN=$chain TRACK=1 PARENT=$t $T/nltest ckpt $M /tmp/mtd.$r verify 2>&1)
	grep -q ', 0 mismatches, 0 missing' <<<"$out" && grep -q "^parent_id 0x$t\$" <<<"$out" ||
		{ fails=$((fails + 1)); grep -E 'verify|MISMATCH|full_reason' <<<"$out" | head -3; }
	t=$(sed -n 's/^track_id 0x//p' <<<"$out")
	chain=$chain:/tmp/mtd.$r
done
[ $fails = 0 ] && ok "threads on both CPUs: every incremental chain matches memory" ||
	bad "threads on both CPUs: $fails of 8 chains differ from memory"
kill $M

# A tree that forks and executes without pause: every checkpoint succeeds or
# fails with EAGAIN naming the pid that exited meanwhile; none hangs.
bash -c 'while :; do /bin/true; (sleep 0.01 &); done' & B=$!
sleep 0.3
n_ok=0 n_again=0 n_bad=0
for i in $(seq 10); do
	out=$(TREE=1 POOL=8 timeout 20 $T/nltest ckpt $B /tmp/ch.img nohold 2000 2>&1)
	case "$out" in
	*"checkpoint err 0"*) n_ok=$((n_ok + 1)) ;;
	*"checkpoint err -11"*"exited during the checkpoint"*|*"exited during the checkpoint"*"checkpoint err -11"*)
		n_again=$((n_again + 1)) ;;
	*) n_bad=$((n_bad + 1)); echo "$out" | grep -v '^ *\[' | head -3 ;;
	esac
done
kill $B; wait $B 2>/dev/null
[ $n_bad = 0 ] && [ $n_ok -gt 0 ] && ok "churning tree: $n_ok ok, $n_again EAGAIN (exited), 0 other" ||
	bad "churning tree: $n_ok ok, $n_again EAGAIN, $n_bad other"
