// SPDX-License-Identifier: GPL-2.0
/*
 * The interval timers (setitimer(2), alarm(2)) and the POSIX timers
 * (timer_create(2)) of current's process, captured by its leader while the
 * group is parked. The restore stub recreates them with the same system
 * calls (see the restore tools); nothing here runs on restore.
 *
 * Times are captured as the time left, as getitimer(2) and timer_gettime(2)
 * report it (do_getitimer() and common_timer_get() are not exported; this
 * reads the same fields under the same locks, without forwarding a timer's
 * expiry as common_timer_get() does). The time between the checkpoint and
 * the restore does not count, as with CRIU.
 */
#include <linux/hrtimer.h>
#include <linux/pid.h>
#include <linux/posix-timers.h>
#include <linux/sched.h>
#include <linux/sched/cputime.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/time.h>
#include <linux/timekeeping.h>

#include <linux/amber.h>

#include "timers.h"

/* PROCESS_CLOCK of posix-cpu-timers: it_clock of a CLOCK_PROCESS_CPUTIME_ID timer. */
#define AMBER_PROCESS_CLOCK	make_process_cpuclock(0, CPUCLOCK_SCHED)

/* The group's CPU clocks, as thread_group_sample_cputime(); under siglock. */
static bool amber_group_cputime(u64 samples[CPUCLOCK_MAX])
{
	struct task_cputime_atomic *at = &current->signal->cputimer.cputime_atomic;
	u64 utime, stime;

	lockdep_assert_held(&current->sighand->siglock);
	if (!READ_ONCE(current->signal->posix_cputimers.timers_active))
		return false;
	utime = atomic64_read(&at->utime);
	stime = atomic64_read(&at->stime);
	samples[CPUCLOCK_PROF] = utime + stime;
	samples[CPUCLOCK_VIRT] = utime;
	samples[CPUCLOCK_SCHED] = atomic64_read(&at->sum_exec_runtime);
	return true;
}

/* do_getitimer(), under siglock: ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF. */
static int amber_itimers_capture(struct amber_timers_state *st, pid_t pid,
				 struct amber_err *e)
{
	struct signal_struct *sig = current->signal;
	struct hrtimer *real = &sig->real_timer;
	struct {
		struct amber_itimer *out;
		int clk;
		const char *name;
	} cpu[] = {
		{ &st->virt, CPUCLOCK_VIRT, "ITIMER_VIRTUAL" },
		{ &st->prof, CPUCLOCK_PROF, "ITIMER_PROF" },
	};
	u64 samples[CPUCLOCK_MAX];
	const char *bad = NULL;
	unsigned int i;

	spin_lock_irq(&current->sighand->siglock);
	st->real.interval = ktime_to_ns(sig->it_real_incr);
	st->real.value = 0;
	if (hrtimer_active(real)) {
		s64 rem = ktime_to_ns(ktime_sub(hrtimer_get_expires(real), ktime_get()));

		/* itimer_get_remtime(): an expired timer reports 1 us. */
		st->real.value = rem > 0 ? rem : NSEC_PER_USEC;
	} else if (st->real.interval) {
		/* Fired, SIGALRM pending: dequeue_signal() re-arms it. */
		st->real.value = st->real.interval;
	}
	for (i = 0; i < ARRAY_SIZE(cpu); i++) {
		struct cpu_itimer *it = &sig->it[cpu[i].clk];

		cpu[i].out->interval = it->incr;
		cpu[i].out->value = 0;
		if (!it->expires)
			continue;
		if (!amber_group_cputime(samples)) {
			bad = cpu[i].name;
			break;
		}
		/* get_cpu_itimer(): an expired timer reports one tick. */
		cpu[i].out->value = it->expires > samples[cpu[i].clk] ?
				    it->expires - samples[cpu[i].clk] : TICK_NSEC;
	}
	st->next_id = sig->next_posix_timer_id;
	spin_unlock_irq(&current->sighand->siglock);
	if (bad)
		return amber_fail(e, -EBUSY,
				  amber_msg("pid %d: %s is armed but the process CPU clock is not running",
					    pid, bad));
	return 0;
}

/* common_timer_get() without moving the expiry: ns left, 0 if disarmed. */
static u64 amber_hrtimer_left(struct k_itimer *timr)
{
	bool sig_none = timr->it_sigev_notify == SIGEV_NONE;
	s64 iv = ktime_to_ns(timr->it_interval);
	s64 now, exp;

	if (!iv && !timr->it_active && !sig_none)
		return 0;
	/*
	 * The hrtimer's own base: a relative CLOCK_REALTIME timer runs on
	 * CLOCK_MONOTONIC (__hrtimer_init()).
	 */
	now = ktime_to_ns(hrtimer_cb_get_time(&timr->it.real.timer));
	exp = ktime_to_ns(hrtimer_get_expires(&timr->it.real.timer));
	/* A requeue pending or SIGEV_NONE: the next expiry after now. */
	if (iv && ((timr->it_requeue_pending & REQUEUE_PENDING) || sig_none) &&
	    exp <= now)
		exp += (div64_u64(now - exp, iv) + 1) * iv;
	if (exp > now)
		return exp - now;
	return sig_none ? 0 : 1;
}

/* posix_cpu_timer_get() of a CLOCK_PROCESS_CPUTIME_ID timer; -EBUSY: no clock. */
static int amber_cputimer_left(struct k_itimer *timr, u64 *left)
{
	u64 exp = cpu_timer_getexpires(&timr->it.cpu);
	u64 samples[CPUCLOCK_MAX];
	bool ok;

	*left = 0;
	if (!exp)
		return 0;
	spin_lock(&current->sighand->siglock);
	ok = amber_group_cputime(samples);
	spin_unlock(&current->sighand->siglock);
	if (!ok)
		return -EBUSY;
	*left = exp > samples[CPUCLOCK_SCHED] ? exp - samples[CPUCLOCK_SCHED] : 1;
	return 0;
}

static bool amber_clock_supported(clockid_t clock)
{
	return clock == CLOCK_REALTIME || clock == CLOCK_MONOTONIC ||
	       clock == CLOCK_BOOTTIME || clock == CLOCK_TAI ||
	       clock == AMBER_PROCESS_CLOCK;
}

/* Under the timer's it_lock (the lock timer_gettime() takes). */
static const char *amber_ptimer_fill(struct k_itimer *timr, struct amber_ptimer *t,
				     struct pid_namespace *ns)
{
	int notify = timr->it_sigev_notify;
	struct task_struct *target;

	t->id = timr->it_id;
	t->notify = notify;
	t->signo = timr->sigq->info.si_signo;
	t->sigval = (unsigned long)timr->sigq->info.si_value.sival_ptr;
	t->interval = ktime_to_ns(timr->it_interval);
	/* timer_overrun_to_int() */
	t->overrun = clamp_t(s64, timr->it_overrun_last, 0, INT_MAX);
	if (!amber_clock_supported(timr->it_clock) && timr->it_clock < 0)
		return "is on the CPU clock of a thread or of another process";
	if (!amber_clock_supported(timr->it_clock))
		return "is on a clock that cannot be restored";
	t->clock = timr->it_clock == AMBER_PROCESS_CLOCK ? CLOCK_PROCESS_CPUTIME_ID :
							   timr->it_clock;
	switch (notify) {
	case SIGEV_SIGNAL:
	case SIGEV_NONE:
	case SIGEV_THREAD:
		break;
	case SIGEV_SIGNAL | SIGEV_THREAD_ID:
		rcu_read_lock();
		target = pid_task(timr->it_pid, PIDTYPE_PID);
		if (!target || !same_thread_group(target, current)) {
			rcu_read_unlock();
			return "targets (SIGEV_THREAD_ID) a thread outside the process";
		}
		t->tid = pid_nr_ns(timr->it_pid, ns);
		rcu_read_unlock();
		if (!t->tid)
			return "targets (SIGEV_THREAD_ID) a thread not visible to the caller";
		break;
	default:
		return "has a notification (sigev_notify) that cannot be restored";
	}
	if (timr->it_clock == AMBER_PROCESS_CLOCK) {
		if (amber_cputimer_left(timr, &t->value))
			return "is armed but the process CPU clock is not running";
	} else {
		t->value = amber_hrtimer_left(timr);
	}
	return NULL;
}

static int amber_ptimer_cmp(const void *a, const void *b)
{
	const struct amber_ptimer *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * Only the process's own threads create and delete its timers (all parked
 * or capturing, this one included), and exit_itimers() only runs when the
 * group is dead: the list cannot change. timer_create() adds to it under
 * siglock, taken for counting. Each timer is read under its it_lock, which
 * comes before siglock (posix_timer_fn() sends its signal holding it).
 */
int amber_timers_capture(struct amber_timers_state *st, pid_t pid,
			 struct pid_namespace *ns, struct amber_err *e)
{
	struct signal_struct *sig = current->signal;
	struct k_itimer *timr;
	unsigned int n = 0;
	int err;

	err = amber_itimers_capture(st, pid, e);
	if (err)
		return err;

	spin_lock_irq(&current->sighand->siglock);
	amber_for_each_posix_timer(timr, sig)
		n++;
	spin_unlock_irq(&current->sighand->siglock);
	if (!n)
		return 0;
	if (n > AMBER_MAX_POSIX_TIMERS)
		return amber_fail(e, -E2BIG,
				  amber_msg("pid %d: %u POSIX timers, at most %d are supported",
					    pid, n, AMBER_MAX_POSIX_TIMERS));
	st->timers = kcalloc(n, sizeof(*st->timers), GFP_KERNEL);
	if (!st->timers)
		return amber_fail(e, -ENOMEM, "out of memory for the POSIX timers");

	amber_for_each_posix_timer(timr, sig) {
		struct amber_ptimer *t = &st->timers[st->nr];
		unsigned long flags;
		const char *why;

		if (WARN_ON_ONCE(st->nr >= n))
			return amber_fail(e, -EAGAIN, "the POSIX timers changed during the checkpoint");
		spin_lock_irqsave(&timr->it_lock, flags);
		why = amber_ptimer_fill(timr, t, ns);
		spin_unlock_irqrestore(&timr->it_lock, flags);
		if (why)
			return amber_fail(e, -EOPNOTSUPP,
					  amber_msg("pid %d: POSIX timer %u (clock %d) %s",
						    pid, t->id, (int)timr->it_clock, why));
		if (t->id > AMBER_MAX_POSIX_TIMER_ID)
			return amber_fail(e, -EOPNOTSUPP,
					  amber_msg("pid %d: POSIX timer %u: ids above %d cannot be restored",
						    pid, t->id, AMBER_MAX_POSIX_TIMER_ID));
		st->nr++;
	}
	sort(st->timers, st->nr, sizeof(*st->timers), amber_ptimer_cmp, NULL);
	return 0;
}

bool amber_timers_empty(const struct amber_timers_state *st)
{
	return !st->nr && !st->real.value && !st->real.interval &&
	       !st->virt.value && !st->virt.interval &&
	       !st->prof.value && !st->prof.interval;
}

void amber_timers_free(struct amber_timers_state *st)
{
	kfree(st->timers);
	st->timers = NULL;
	st->nr = 0;
}
