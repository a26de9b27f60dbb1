// SPDX-License-Identifier: GPL-2.0
/*
 * A parent and three workers, each talking over its own socketpair
 * (worker 0 SOCK_STREAM, worker 1 SOCK_SEQPACKET, worker 2 SOCK_DGRAM). Both
 * sides send faster than they read (up to 4 messages sent, 1 read per
 * round, a pause of --delay-ms between rounds), so both receive queues hold
 * messages most of the time. Besides:
 *   - a zombie: a child that exits with status 42 at once; the parent reaps
 *     it only at the very end and prints its status;
 *   - worker 1 is in its own process group (setpgid), worker 2 in its own
 *     session (setsid); everyone checks at the end that its PID, PGID and
 *     SID are what they were;
 *   - the parent and worker 0 write 16-byte records through one file
 *     description (opened before the fork, no O_APPEND): with one shared
 *     offset, none overwrites another;
 *   - a MAP_SHARED|MAP_ANONYMOUS page that every process updates.
 *
 * Usage: family --file PATH [--rounds R] [--delay-ms D] [--pids FILE]
 * Prints `family ready`, `progress K` as the parent receives messages, then
 * deterministic result lines and PASS (or FAIL). --pids FILE gets
 * `PARENT W0 W1 W2 ZOMBIE` once everything is set up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NW 3
#define MSG 64
#define REC 16

struct msg {
	uint32_t seq;
	uint32_t from;
	uint64_t val;
	char pad[MSG - 16];
};

struct slot {
	uint64_t received, sum;
	int ok;
	int ids_same;
	int records;
};

struct shared {
	uint64_t counter;	/* every process adds to it */
	struct slot w[NW];
};

static int rounds = 300, delay_ms = 10;
static struct shared *shm;
static int rec_fd = -1;

static const int types[NW] = { SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM };
static const char *const tname[NW] = { "stream", "seqpacket", "dgram" };

static uint64_t value(uint32_t from, uint32_t seq)
{
	uint64_t x = (from + 1) * 0x9e3779b97f4a7c15ULL + seq * 0xbf58476d1ce4e5b9ULL;

	x ^= x >> 31;
	return x;
}

static void pause_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* One end of a conversation: sent and received counts, partial stream message. */
struct end {
	int fd, type;
	uint32_t me, peer;
	uint32_t sent, got;
	uint64_t sum;
	int ok;
	char part[MSG];
	size_t have;
};

static void end_init(struct end *e, int fd, int type, uint32_t me, uint32_t peer)
{
	memset(e, 0, sizeof(*e));
	e->fd = fd;
	e->type = type;
	e->me = me;
	e->peer = peer;
	e->ok = 1;
}

/* Send up to 4, read at most 1. Returns 1 when it received one. */
static int end_round(struct end *e)
{
	struct msg m;
	int k;
	ssize_t n;

	for (k = 0; k < 4 && e->sent < (uint32_t)rounds; k++) {
		memset(&m, 0, sizeof(m));
		m.seq = e->sent;
		m.from = e->me;
		m.val = value(e->me, e->sent);
		memset(m.pad, 'a' + e->sent % 26, sizeof(m.pad));
		n = send(e->fd, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR || errno == ENOBUFS))
			break;
		if (n != sizeof(m)) {
			/* a partial stream write would desynchronise: treat as failure */
			e->ok = 0;
			e->sent = rounds;
			break;
		}
		e->sent++;
	}
	if (e->got >= (uint32_t)rounds)
		return 0;
	n = recv(e->fd, e->part + e->have, MSG - e->have, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		e->ok = 0;
		e->got = rounds;
		return 0;
	}
	e->have += n;
	if (e->type != SOCK_STREAM && e->have != MSG)
		e->ok = 0;
	if (e->have < MSG && e->type == SOCK_STREAM)
		return 0;
	e->have = 0;
	memcpy(&m, e->part, sizeof(m));
	if (m.seq != e->got || m.from != e->peer || m.val != value(e->peer, e->got))
		e->ok = 0;
	e->sum += m.val;
	e->got++;
	__atomic_add_fetch(&shm->counter, m.val & 0xffff, __ATOMIC_SEQ_CST);
	return 1;
}

static void write_record(char who, int seq)
{
	char rec[REC + 1];

	snprintf(rec, sizeof(rec), "%c%014d\n", who, seq);
	if (write(rec_fd, rec, REC) != REC)
		shm->w[0].ok = 0;
}

static void ids(pid_t v[3])
{
	v[0] = getpid();
	v[1] = getpgid(0);
	v[2] = getsid(0);
}

static int worker(int k, int fd)
{
	struct end e;
	pid_t before[3], after[3];
	int recs = 0;

	if (k == 1 && setpgid(0, 0))
		return 1;
	if (k == 2 && setsid() < 0)
		return 1;
	ids(before);
	end_init(&e, fd, types[k], k + 1, 0);
	while (e.got < (uint32_t)rounds || e.sent < (uint32_t)rounds) {
		end_round(&e);
		if (k == 0 && recs < rounds)
			write_record('w', recs++);
		pause_ms(delay_ms);
	}
	ids(after);
	shm->w[k].received = e.got;
	shm->w[k].sum = e.sum;
	shm->w[k].ok = e.ok;
	shm->w[k].records = recs;
	shm->w[k].ids_same = !memcmp(before, after, sizeof(before));
	/* What we sent stays queued at the parent's end after we exit. */
	return 0;
}

/* The records file: every record intact, each writer's numbers 0, 1, 2... in order. */
static int check_records(const char *path, int *np, int *nw)
{
	char rec[REC + 1];
	int fd = open(path, O_RDONLY), ok = 1;
	ssize_t n;

	*np = *nw = 0;
	if (fd < 0)
		return 0;
	while ((n = read(fd, rec, REC)) == REC) {
		int *cnt = rec[0] == 'p' ? np : rec[0] == 'w' ? nw : NULL;

		rec[REC] = 0;
		if (!cnt || rec[REC - 1] != '\n' || atoi(rec + 1) != *cnt) {
			ok = 0;
			break;
		}
		(*cnt)++;
	}
	if (n != 0)
		ok = 0;
	close(fd);
	return ok;
}

int main(int argc, char **argv)
{
	const char *path = NULL, *pids_file = NULL;
	struct end e[NW];
	pid_t w[NW], zombie, before[3], after[3];
	int i, k, fds[2], bad = 0, recs = 0, got = 0, np, nw, st;
	siginfo_t si;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--file"))
			path = argv[i + 1];
		else if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--delay-ms"))
			delay_ms = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--pids"))
			pids_file = argv[i + 1];
		else
			break;
	}
	if (!path || i != argc || rounds < 1) {
		fprintf(stderr, "usage: family --file PATH [--rounds R] [--delay-ms D] "
			"[--pids FILE]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	shm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	rec_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (shm == MAP_FAILED || rec_fd < 0)
		return 1;
	ids(before);

	zombie = fork();
	if (zombie == 0)
		_exit(42);
	if (zombie < 0 || waitid(P_PID, zombie, &si, WEXITED | WNOWAIT))
		return 1;

	for (k = 0; k < NW; k++) {
		if (socketpair(AF_UNIX, types[k] | SOCK_CLOEXEC, 0, fds))
			return 1;
		w[k] = fork();
		if (w[k] < 0)
			return 1;
		if (w[k] == 0) {
			close(fds[0]);
			for (i = 0; i < k; i++)
				close(e[i].fd);
			_exit(worker(k, fds[1]));
		}
		close(fds[1]);
		end_init(&e[k], fds[0], types[k], 0, k + 1);
	}
	/* Wait until worker 1 and 2 have their own group / session. */
	while (getpgid(w[1]) != w[1] || getsid(w[2]) != w[2])
		pause_ms(1);
	if (pids_file) {
		FILE *f = fopen(pids_file, "w");

		if (f) {
			fprintf(f, "%d %d %d %d %d\n", getpid(), w[0], w[1], w[2], zombie);
			fclose(f);
		}
	}
	printf("family ready\n");

	for (;;) {
		int busy = 0;

		for (k = 0; k < NW; k++) {
			got += end_round(&e[k]);
			busy |= e[k].got < (uint32_t)rounds || e[k].sent < (uint32_t)rounds;
		}
		while (got >= 100) {
			static int progress;

			printf("progress %d\n", ++progress);
			got -= 100;
		}
		if (recs < rounds)
			write_record('p', recs++);
		if (!busy && recs >= rounds)
			break;
		pause_ms(delay_ms);
	}
	for (k = 0; k < NW; k++) {
		close(e[k].fd);
		if (waitpid(w[k], &st, 0) != w[k] || !WIFEXITED(st) || WEXITSTATUS(st)) {
			printf("worker %d: wait failed (%s) status %#x\n", k, strerror(errno), st);
			bad = 1;
		}
	}
	ids(after);
	for (k = 0; k < NW; k++) {
		struct slot *s = &shm->w[k];

		printf("worker %d (%s): received %llu sum %016llx %s, ids %s; parent received "
		       "%u sum %016llx %s\n", k, tname[k], (unsigned long long)s->received,
		       (unsigned long long)s->sum, s->ok ? "ok" : "BAD",
		       s->ids_same ? "same" : "CHANGED", e[k].got,
		       (unsigned long long)e[k].sum, e[k].ok ? "ok" : "BAD");
		bad |= !s->ok || !s->ids_same || !e[k].ok || s->received != (uint64_t)rounds ||
		       e[k].got != (uint32_t)rounds;
	}
	i = check_records(path, &np, &nw);
	printf("shared fd: %d parent records, %d worker records, %s\n", np, nw,
	       i ? "intact" : "BROKEN");
	bad |= !i || np != rounds || nw != rounds;
	printf("shared memory: %llu\n", (unsigned long long)shm->counter);
	if (waitpid(zombie, &st, 0) != zombie) {
		printf("zombie: waitpid: %s\n", strerror(errno));
		bad = 1;
	} else {
		printf("zombie reaped status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 42;
	}
	printf("parent pid/pgid/sid %s\n", memcmp(before, after, sizeof(before)) ? "CHANGED" :
	       "same");
	bad |= !!memcmp(before, after, sizeof(before));
	printf("%s\n", bad ? "FAIL" : "PASS");
	return bad;
}
