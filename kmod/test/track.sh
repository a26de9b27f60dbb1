#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Dirty tracking and incremental pages files, through raw netlink. Sourced by
# smoke.sh (module loaded; T, ok, bad, expect, wait_file, alive defined).
# Every incremental pages file is checked against the held target's memory:
# each page it lists is resolved through the chain (data from the newest
# file that holds it) and compared with /proc/PID/mem; pages of the
# workload's region that no run lists must read as zeros.

tid() { sed -n 's/^track_id 0x//p' <<<"$1"; }
field() { sed -n "s/^$1 //p" <<<"$2"; }

sleep 1000 & TS=$!
out=$($T/nltest ckpt $TS /tmp/tf.img nohold 2>&1)
expect "untracked checkpoint" 'checkpoint err 0' "$out"
grep -q '^track_id' <<<"$out" && bad "no TRACK_ID without F_TRACK" || ok "no TRACK_ID without F_TRACK"
out=$($T/nltest pages /tmp/tf.img 2>&1); expect "pages v2, full" ' 0 parent pages' "$out"
out=$(PARENT=1234 $T/nltest ckpt $TS /tmp/x.img 2>&1)
expect "PARENT_ID without TRACK" 'err -22 .*|extack: PARENT_ID needs FLAGS with AMBER_CKPT_F_TRACK' "$out"
expect "PARENT_ID without TRACK says why" 'PARENT_ID needs' "$out"
out=$(TRACK=1 PARENT=0 $T/nltest ckpt $TS /tmp/x.img 2>&1); expect "PARENT_ID 0" 'PARENT_ID 0 is not' "$out"
out=$($T/nltest untrack $TS 2>&1); expect "UNTRACK of an untracked process" 'not tracked.*|untrack err -2' "$out"
expect "UNTRACK ENOENT" 'untrack err -2 ' "$out"
out=$($T/nltest untrack 4000000 2>&1); expect "UNTRACK of no process" 'no such process' "$out"
out=$(TRACK=1 PARENT=1234 $T/nltest ckpt $TS /tmp/tf.img nohold 2>&1)
expect "first tracked checkpoint is full" 'full_reason: the process is not tracked' "$out"
expect "first tracked checkpoint has TRACK_ID" '^track_id 0x[0-9a-f]+$' "$out"
grep -q '^parent_id' <<<"$out" && bad "no PARENT_ID echo when full" || ok "no PARENT_ID echo when full"
t=$(tid "$out")
out=$(TRACK=1 PARENT=$t $T/nltest ckpt $TS /tmp/ti.img nohold 2>&1)
expect "second checkpoint is incremental" "^parent_id 0x$t\$" "$out"
out=$(INCR=1 $T/nltest pages /tmp/ti.img 2>&1)
expect "idle process: (almost) nothing saved" 'pages: [0-9]+ runs, [0-9] data pages, [0-9]+ parent pages' "$out"
out=$($T/nltest version); expect "TRACKED counts it" '^\[31\] len 4 = 1$' "$out"
out=$($T/nltest untrack $TS 2>&1); expect "UNTRACK" 'untrack err 0 ' "$out"
out=$($T/nltest version); expect "TRACKED after UNTRACK" '^\[31\] len 4 = 0$' "$out"
kill $TS

# The workload writes known pages from both CPUs between checkpoints.
rm -rf /tmp/dw; mkdir -p /tmp/dw
$T/dirty /tmp/dw >/tmp/dw.out & D=$!
wait_file /tmp/dw.out ready
read -r _ _ base npages < <(grep ready /tmp/dw.out)
echo "     dirty: $(grep AnonHugePages /proc/$D/smaps_rollup)"
export REGION="$base:$npages"
out=$(TRACK=1 $T/nltest ckpt $D /tmp/d0.img verify 2>&1)
expect "dirty: full tracked checkpoint matches memory" ', 0 mismatches, 0 missing' "$out"
t=$(tid "$out") t0=$t chain=/tmp/d0.img
[ -n "$t" ] && ok "dirty: TRACK_ID" || bad "dirty: TRACK_ID"
for r in 1 2 3 4 5 6; do
	kill -USR1 $D
	wait_file /tmp/dw.out "round $r" || bad "dirty: round $r ran"
	out=$(TRACK=1 PARENT=$t CHAIN=$chain $T/nltest ckpt $D /tmp/d$r.img verify 2>&1)
	expect "dirty $r: incremental" "^parent_id 0x$t\$" "$out"
	expect "dirty $r: chain matches memory" ', 0 mismatches, 0 missing' "$out"
	data=$(field pages_nr "$out") parent=$(field parent_nr "$out")
	[ "${data:-0}" -gt 0 ] && [ "${parent:-0}" -gt 1500 ] && ok "dirty $r: fewer data pages ($data data, $parent parent)" ||
		bad "dirty $r: fewer data pages ($data data, $parent parent)"
	out2=$($T/nltest covers /tmp/d$r.img /tmp/dw/written.$r 2>&1)
	expect "dirty $r: every written page is in a data run" ' 0 not in a data run' "$out2"
	t=$(tid "$out") chain=$chain:/tmp/d$r.img
done

# Written by another process while the target is held after a tracked
# checkpoint (bits already cleared): the next checkpoint saves it.
rm -f /tmp/closenow
TRACK=1 PARENT=$t $T/nltest ckpt $D /tmp/dh.img holdclose >/tmp/dh.out 2>&1 &
N=$!
wait_file /tmp/dh.out 'checkpoint err 0'
page=$(printf '%x' $((0x$base + 3 * 4096)))
printf 'HELD' | dd of=/proc/$D/mem bs=1 seek=$((0x$page + 100)) conv=notrunc status=none
touch /tmp/closenow; wait $N
echo "$page" >/tmp/dw/held
t=$(tid "$(cat /tmp/dh.out)") chain=$chain:/tmp/dh.img
out=$(TRACK=1 PARENT=$t CHAIN=$chain $T/nltest ckpt $D /tmp/dh2.img verify 2>&1)
expect "written while held: chain matches memory" ', 0 mismatches, 0 missing' "$out"
out=$($T/nltest covers /tmp/dh2.img /tmp/dw/held 2>&1)
expect "written while held: saved next time" ' 0 not in a data run' "$out"
unset REGION

# A target writing without pause: every page is dirty in every checkpoint.
$T/dirty spin >/tmp/ds.out & DS=$!
wait_file /tmp/ds.out ready
out=$(TRACK=1 $T/nltest ckpt $DS /tmp/s0.img verify 2>&1); ts=$(tid "$out") chain=/tmp/s0.img
for r in 1 2 3 4; do
	sleep 0.2
	out=$(TRACK=1 PARENT=$ts CHAIN=$chain $T/nltest ckpt $DS /tmp/s$r.img verify 2>&1)
	expect "spin $r: incremental, chain matches memory" ', 0 mismatches, 0 missing' "$out"
	grep -q "^parent_id 0x$ts\$" <<<"$out" || bad "spin $r: incremental"
	ts=$(tid "$out") chain=$chain:/tmp/s$r.img
done
kill $DS

out=$(TRACK=1 PARENT=$t0 $T/nltest ckpt $D /tmp/dw.img nohold 2>&1)
expect "wrong PARENT_ID: full with reason" 'full_reason: another checkpoint of this process was taken since' "$out"
grep -q '^parent_id' <<<"$out" && bad "wrong PARENT_ID: no echo" || ok "wrong PARENT_ID: no echo"
expect "wrong PARENT_ID: no parent pages" '^parent_nr 0$' "$out"
out=$(INCR=0 $T/nltest pages /tmp/dw.img 2>&1); expect "wrong PARENT_ID: full file" ' 0 parent pages' "$out"
out=$($T/nltest version); expect "TRACKED before exit" '^\[31\] len 4 = 1$' "$out"
kill $D; wait $D 2>/dev/null
out=$($T/nltest version); expect "TRACKED drops after exit" '^\[31\] len 4 = 0$' "$out"

# An exec makes the next checkpoint full.
rm -f /tmp/ex.go
(exec 3</dev/null; while [ ! -e /tmp/ex.go ]; do sleep 0.1; done; exec sleep 1000) & E=$!
sleep 0.3
out=$(TRACK=1 $T/nltest ckpt $E /tmp/e.img nohold 2>&1); t=$(tid "$out")
touch /tmp/ex.go
for _ in $(seq 100); do [ "$(cat /proc/$E/comm 2>/dev/null)" = sleep ] && break; sleep 0.1; done
out=$(TRACK=1 PARENT=$t $T/nltest ckpt $E /tmp/e.img nohold 2>&1)
expect "exec: full with reason" 'full_reason: the process executed a new program' "$out"
kill $E
