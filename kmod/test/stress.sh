#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Lifecycle stress of amber.ko, run as root inside the guest: 40 checkpoints
# of 5 targets, concurrent, some held and released, some held and dropped by
# the socket closing, some with the requester SIGKILLed mid-wait, half of
# them tracking dirty pages. Afterwards
# every target must be alive and sleeping, no session left, rmmod must work.
#   make -C kmod && make -C kmod/test && scripts/vm-run -- kmod/test/stress.sh

T=${T:-/work/main/build/ktest}
KO=${KO:-/work/main/kmod/amber.ko}
insmod "$KO" || exit 1
cd /tmp || exit 1
fail=0
pids=()
for _ in 1 2 3 4; do sleep 1000 & pids+=($!); done
$T/wl >/tmp/wl.out & pids+=($!)
sleep 1
touch /tmp/closenow	# holdclose closes its socket at once
jobs_=()
for round in $(seq 40); do
	t=${pids[$((RANDOM % ${#pids[@]}))]}
	# Half of them track dirty pages, some with a (mostly stale) parent id.
	tr=$((RANDOM % 2)) par=
	[ $((RANDOM % 3)) = 0 ] && par=$(printf '%x' $RANDOM)
	export TRACK=${tr#0} PARENT=${tr#0}
	[ "$tr" = 1 ] && PARENT=$par
	[ -z "$TRACK" ] && unset TRACK
	[ -z "$PARENT" ] && unset PARENT
	case $((RANDOM % 4)) in
	0) $T/nltest ckpt "$t" /tmp/s$round.img nohold >/dev/null 2>&1 & ;;
	1) $T/nltest ckpt "$t" /tmp/s$round.img resume >/dev/null 2>&1 & ;;
	2) $T/nltest ckpt "$t" /tmp/s$round.img holdclose >/dev/null 2>&1 & ;;
	3) $T/nltest ckpt "$t" /tmp/s$round.img nohold >/dev/null 2>&1 &
	   sleep 0.0$((RANDOM % 9)); kill -9 $! 2>/dev/null ;;
	esac
	jobs_+=($!)
	if [ $((round % 8)) = 0 ]; then wait "${jobs_[@]}" 2>/dev/null; jobs_=(); fi
done
[ ${#jobs_[@]} -gt 0 ] && wait "${jobs_[@]}" 2>/dev/null
sleep 1
$T/nltest version | grep -q '^\[25\] len 4 = 0$' || { echo "FAIL sessions left"; fail=1; }
for p in "${pids[@]}"; do
	grep -q 'State:.*S' /proc/$p/status 2>/dev/null || { echo "FAIL target $p not sleeping"; fail=1; }
done
unset TRACK PARENT
# A tracked chain still works after all that: full, then incremental.
out=$(TRACK=1 $T/nltest ckpt "${pids[4]}" /tmp/sc1.img nohold 2>&1)
id=$(sed -n 's/^track_id 0x//p' <<<"$out")
out=$(TRACK=1 PARENT=$id $T/nltest ckpt "${pids[4]}" /tmp/sc2.img nohold 2>&1)
grep -q "^parent_id 0x$id\$" <<<"$out" || { echo "FAIL incremental after stress"; echo "$out" | grep -av '^ *\['; fail=1; }
kill "${pids[@]}"
sleep 0.5
$T/nltest version | grep -q '^\[31\] len 4 = 0$' || { echo "FAIL tracked entries left"; fail=1; }
rmmod amber || { echo "FAIL rmmod"; fail=1; }
[ $fail = 0 ] && echo "stress: PASS" || echo "stress: FAIL"
exit $fail
