/* SPDX-License-Identifier: GPL-2.0 */
/* Timers: interval timers (setitimer, alarm) and POSIX timers (timer_create). */
#ifndef _AMBER_TIMERS_H
#define _AMBER_TIMERS_H

#include <linux/types.h>

#include "msg.h"

struct pid_namespace;

/* One interval timer: ns left (0: disarmed) and interval. */
struct amber_itimer {
	u64 value;
	u64 interval;
};

/* One POSIX timer, as AMBER_TIMERS_TIMER. */
struct amber_ptimer {
	u32 id;
	u32 clock;
	u32 notify;
	u32 signo;
	u64 sigval;
	u32 tid;		/* SIGEV_THREAD_ID target, in the requester's namespace */
	u32 overrun;
	u64 value;		/* ns left, 0: disarmed */
	u64 interval;
};

struct amber_timers_state {
	struct amber_itimer real, virt, prof;
	u32 next_id;
	struct amber_ptimer *timers;	/* ascending id */
	unsigned int nr;
};

/* current's timers; refuses what the stub cannot recreate exactly. */
int amber_timers_capture(struct amber_timers_state *st, pid_t pid,
			 struct pid_namespace *ns, struct amber_err *e);
void amber_timers_free(struct amber_timers_state *st);
bool amber_timers_empty(const struct amber_timers_state *st);

#endif /* _AMBER_TIMERS_H */
