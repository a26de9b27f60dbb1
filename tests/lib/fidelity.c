// SPDX-License-Identifier: GPL-2.0
/*
 * The fidelity check (fidelity.h): /proc snapshots of processes and their
 * comparison. What is read and what is ignored is documented there.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amber_test.h"
#include "fidelity.h"

/* Inode names (pipe:[N], socket:[N]) renamed in order of first appearance. */
struct canon {
	char *key[512];
	int n;
};

static int add(struct fid_snap *s, const char *who, const char *file, const char *field,
	       const char *value)
{
	struct fid_item *it;

	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 256;
		struct fid_item *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	it = &s->v[s->n++];
	it->who = strdup(who);
	it->file = strdup(file);
	it->field = strdup(field);
	it->value = strdup(value);
	return 0;
}

static char *trim(char *p)
{
	char *e;

	while (isspace((unsigned char)*p))
		p++;
	e = p + strlen(p);
	while (e > p && isspace((unsigned char)e[-1]))
		*--e = 0;
	return p;
}

/* label of an inode name, "kind:#N" */
static const char *canon_name(struct canon *c, const char *name, char *buf, size_t len)
{
	const char *colon = strchr(name, ':');
	int i;

	for (i = 0; i < c->n; i++)
		if (!strcmp(c->key[i], name))
			break;
	if (i == c->n && c->n < 512)
		c->key[c->n++] = strdup(name);
	snprintf(buf, len, "%.*s:#%d", (int)(colon ? colon - name : 0), name, i + 1);
	return buf;
}

/* "pipe:[123]" -> is it a pipe/socket inode name */
static bool is_inode_name(const char *t)
{
	return (!strncmp(t, "pipe:[", 6) || !strncmp(t, "socket:[", 8));
}

/* The label of inode number ino when it is a known pipe or socket, else NULL. */
static const char *canon_ino(struct canon *c, unsigned long ino, char *buf, size_t len)
{
	char want1[64], want2[64];
	int i;

	snprintf(want1, sizeof(want1), "pipe:[%lu]", ino);
	snprintf(want2, sizeof(want2), "socket:[%lu]", ino);
	for (i = 0; i < c->n; i++)
		if (!strcmp(c->key[i], want1) || !strcmp(c->key[i], want2))
			return canon_name(c, c->key[i], buf, len);
	return NULL;
}

static char *readlink_s(const char *path, char *buf, size_t len)
{
	ssize_t n = readlink(path, buf, len - 1);

	if (n < 0)
		return NULL;
	buf[n] = 0;
	return buf;
}

static const char *const status_fields[] = {
	"Umask", "Uid", "Gid", "Groups", "NoNewPrivs", "Seccomp", "SigPnd", "ShdPnd",
	"SigBlk", "SigIgn", "SigCgt", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
	"Threads", NULL,
};
static const char *const thread_status_fields[] = { "SigBlk", "SigPnd", NULL };

/* fn(key, value, ctx) for each "key: value" line of a /proc file (both trimmed). */
static void each_kv(const char *path, void (*fn)(char *key, char *val, void *ctx), void *ctx)
{
	char *text = slurp(path, NULL), *line, *save = NULL;

	if (!text)
		return;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':');

		if (!colon)
			continue;
		*colon = 0;
		fn(trim(line), trim(colon + 1), ctx);
	}
	free(text);
}

struct kv_ctx {
	struct fid_snap *s;
	const char *who;
	const char *file;
	const char *const *fields;	/* NULL-terminated: the keys kept */
	char timer[64];			/* timers: "timers ID" of the current block */
};

static void kv_keep(char *key, char *val, void *p)
{
	struct kv_ctx *c = p;
	int i;

	for (i = 0; c->fields[i]; i++)
		if (!strcmp(key, c->fields[i]))
			add(c->s, c->who, c->file, key, val);
}

static void snap_status(struct fid_snap *s, const char *who, const char *path,
			const char *file, const char *const *fields)
{
	struct kv_ctx c = { .s = s, .who = who, .file = file, .fields = fields };

	each_kv(path, kv_keep, &c);
}

static void snap_line(struct fid_snap *s, const char *who, const char *path, const char *file)
{
	char *text = slurp(path, NULL);

	if (text)
		add(s, who, file, "value", trim(text));
	free(text);
}

/* stat: pgrp(5) session(6) tty_nr(7) priority(18) nice(19) num_threads(20) rt(40) policy(41) */
static void snap_stat(struct fid_snap *s, const char *who, const char *path)
{
	static const struct { int n; const char *name; } f[] = {
		{ 5, "pgrp" }, { 6, "session" }, { 7, "tty_nr" }, { 18, "priority" },
		{ 19, "nice" }, { 20, "num_threads" }, { 40, "rt_priority" }, { 41, "policy" },
	};
	char *text = slurp(path, NULL), *p, *tok, *save = NULL;
	int n = 3;	/* the next token is field 3 (state) */
	size_t i;

	if (!text)
		return;
	p = strrchr(text, ')');
	if (p) {
		for (tok = strtok_r(p + 1, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save), n++)
			for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
				if (f[i].n == n)
					add(s, who, "stat", f[i].name, tok);
	}
	free(text);
}

static void snap_sched(struct fid_snap *s, const char *who, const char *path)
{
	static const char *const fields[] = { "policy", "prio", NULL };

	snap_status(s, who, path, "sched", fields);
}

/* src with each run of blanks made one space. */
static void squeeze(char *dst, size_t len, const char *src)
{
	size_t n = 0;

	for (; *src && n + 1 < len; src++)
		if (!isspace((unsigned char)*src) || (n && dst[n - 1] != ' '))
			dst[n++] = isspace((unsigned char)*src) ? ' ' : *src;
	dst[n] = 0;
}

static void snap_limits(struct fid_snap *s, const char *who, const char *path)
{
	char *text = slurp(path, NULL), *line, *save = NULL;

	if (!text)
		return;
	line = strtok_r(text, "\n", &save);	/* header */
	while ((line = strtok_r(NULL, "\n", &save))) {
		char name[32], val[128];

		if (strlen(line) < 26)
			continue;
		/* "Max cpu time              unlimited            unlimited            seconds" */
		snprintf(name, sizeof(name), "%.25s", line);
		squeeze(val, sizeof(val), line + 25);
		add(s, who, "limits", trim(name), trim(val));
	}
	free(text);
}

static void kv_timer(char *key, char *val, void *p)
{
	struct kv_ctx *c = p;

	if (!strcmp(key, "ID"))
		snprintf(c->timer, sizeof(c->timer), "timers %s", val);
	add(c->s, c->who, c->timer, key, val);
}

static void snap_timers(struct fid_snap *s, const char *who, const char *path)
{
	struct kv_ctx c = { .s = s, .who = who, .timer = "timers" };

	each_kv(path, kv_timer, &c);
}

struct vma_row {
	unsigned long start, end;
	unsigned long long off;
	char perms[8], path[256], flags[256];
};

/*
 * Two neighbouring VMAs that mmap() would merge (same perms, path, VmFlags,
 * and for a file, contiguous offsets): the kernel can keep such a pair apart
 * only because their anon_vma differ (pages written before a split, a
 * thread stack carved out of one mapping), which a restore that maps each
 * VMA fresh cannot and need not reproduce. Both snapshots fold them into one.
 */
static bool vma_mergeable(const struct vma_row *a, const struct vma_row *b)
{
	return a->end == b->start && !strcmp(a->perms, b->perms) &&
	       !strcmp(a->path, b->path) && !strcmp(a->flags, b->flags) &&
	       (a->path[0] != '/' || a->off + (a->end - a->start) == b->off);
}

/*
 * A VMA is keyed by its range, but [heap] and [stack], which the program
 * grows by itself (malloc(), deeper calls): keyed by name, their start and
 * end are fields, so that a test can name the end it expects to move.
 */
static void add_vma(struct fid_snap *s, const char *who, const struct vma_row *v)
{
	char m[300], sm[300], off[32], num[32];
	bool named = !strcmp(v->path, "[heap]") || !strcmp(v->path, "[stack]");

	snprintf(off, sizeof(off), "%08llx", v->off);
	if (named) {
		snprintf(m, sizeof(m), "maps %s", v->path);
		snprintf(sm, sizeof(sm), "smaps %s", v->path);
		snprintf(num, sizeof(num), "%lx", v->start);
		add(s, who, m, "start", num);
		snprintf(num, sizeof(num), "%lx", v->end);
		add(s, who, m, "end", num);
	} else {
		snprintf(m, sizeof(m), "maps %lx-%lx", v->start, v->end);
		snprintf(sm, sizeof(sm), "smaps %lx-%lx", v->start, v->end);
	}
	add(s, who, m, "perms", v->perms);
	add(s, who, m, "offset", off);
	add(s, who, m, "path", v->path);
	add(s, who, sm, "VmFlags", v->flags);
}

/* maps and smaps: perms, offset, path, VmFlags (without sd) per VMA. */
static void snap_smaps(struct fid_snap *s, const char *who, const char *path)
{
	char *text = slurp(path, NULL), *line, *save = NULL;
	struct vma_row prev = { 0 }, cur = { 0 };
	bool have_prev = false, have_cur = false;

	if (!text)
		return;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char range[64], perms[8], off[32], dev[32];
		unsigned long ino;
		int pos = 0;

		if (sscanf(line, "%63s %7s %31s %31s %lu %n", range, perms, off, dev, &ino, &pos) >= 5 &&
		    strchr(range, '-')) {
			memset(&cur, 0, sizeof(cur));
			sscanf(range, "%lx-%lx", &cur.start, &cur.end);
			cur.off = strtoull(off, NULL, 16);
			snprintf(cur.perms, sizeof(cur.perms), "%s", perms);
			snprintf(cur.path, sizeof(cur.path), "%s", pos ? trim(line + pos) : "");
			have_cur = true;
			continue;
		}
		if (have_cur && !strncmp(line, "VmFlags:", 8)) {
			char *tok, *save2 = NULL;

			for (tok = strtok_r(line + 8, " ", &save2); tok;
			     tok = strtok_r(NULL, " ", &save2)) {
				if (!strcmp(tok, "sd"))
					continue;
				if (cur.flags[0])
					strcat(cur.flags, " ");
				strncat(cur.flags, tok, sizeof(cur.flags) - strlen(cur.flags) - 4);
			}
			have_cur = false;
			if (have_prev && vma_mergeable(&prev, &cur)) {
				prev.end = cur.end;
				continue;
			}
			if (have_prev)
				add_vma(s, who, &prev);
			prev = cur;
			have_prev = true;
		}
	}
	if (have_prev)
		add_vma(s, who, &prev);
	free(text);
}

/* fdinfo of one fd; link is its (canonical) target. */
static void snap_fdinfo(struct fid_snap *s, struct canon *c, const char *who, const char *path,
			const char *file, bool inode_fd, bool deleted)
{
	char *text = slurp(path, NULL), *line, *save = NULL, buf[64];

	if (!text)
		return;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':'), *key, *val;
		unsigned long ino;
		int tfd, wd;

		if (!colon)
			continue;
		if (sscanf(line, "tfd: %d", &tfd) == 1) {
			char key2[32], out[512], *p;

			/* "tfd: 5 events: 19 data: 5  pos:0 ino:3 sdev:d": rename ino */
			snprintf(key2, sizeof(key2), "tfd %d", tfd);
			snprintf(out, sizeof(out), "%s", trim(colon + 1));
			p = strstr(out, "ino:");
			if (p && sscanf(p, "ino:%lx", &ino) == 1) {
				const char *l = canon_ino(c, ino, buf, sizeof(buf));

				if (l) {
					char *end = strchr(p, ' ');
					char rest[256];

					snprintf(rest, sizeof(rest), "%s", end ? end : "");
					snprintf(p, out + sizeof(out) - p, "ino:%s%s", l, rest);
				}
			}
			add(s, who, file, key2, out);
			continue;
		}
		if (sscanf(line, "inotify wd:%d", &wd) == 1) {
			char key2[32];

			snprintf(key2, sizeof(key2), "inotify wd %d", wd);
			add(s, who, file, key2, trim(line));
			continue;
		}
		*colon = 0;
		key = trim(line);
		val = trim(colon + 1);
		if (!strcmp(key, "lock") || !strcmp(key, "ticks"))
			continue;
		if (!strcmp(key, "ino") && inode_fd && sscanf(val, "%lu", &ino) == 1) {
			const char *l = canon_ino(c, ino, buf, sizeof(buf));

			add(s, who, file, key, l ? l : "?");
			continue;
		}
		if (!strcmp(key, "eventfd-id")) {
			/* a new id on restore: compare which fds share one */
			char name[64];

			snprintf(name, sizeof(name), "eventfd:[%s]", val);
			add(s, who, file, key, canon_name(c, name, buf, sizeof(buf)));
			continue;
		}
		if (!strcmp(key, "ino") && deleted) {
			/* a memfd or an unlinked file: a new inode on restore, the same sharing */
			char name[64];

			snprintf(name, sizeof(name), "deleted:[%s]", val);
			add(s, who, file, key, canon_name(c, name, buf, sizeof(buf)));
			continue;
		}
		if (!strcmp(key, "it_value")) {
			add(s, who, file, "it_value armed",
			    strstr(val, "(0, 0)") ? "no" : "yes");
			continue;
		}
		add(s, who, file, key, val);
	}
	free(text);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Numeric entries of a /proc directory, sorted; how many (at most max). */
static int list_dir(const char *path, int *out, int max)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max)
		if (isdigit((unsigned char)e->d_name[0]))
			out[n++] = atoi(e->d_name);
	closedir(d);
	qsort(out, n, sizeof(*out), cmp_int);
	return n;
}

static void snap_fds(struct fid_snap *s, struct canon *c, pid_t pid, const char *who)
{
	char path[96], file[32], link[512], buf[64];
	static int fds[4096];
	int n, i;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	n = list_dir(path, fds, 4096);
	for (i = 0; i < n; i++) {
		const char *t;
		bool inode_fd;

		snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fds[i]);
		if (!readlink_s(path, link, sizeof(link)))
			continue;
		inode_fd = is_inode_name(link);
		t = inode_fd ? canon_name(c, link, buf, sizeof(buf)) : link;
		snprintf(file, sizeof(file), "fd %d", fds[i]);
		add(s, who, file, "target", t);
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fds[i]);
		snprintf(file, sizeof(file), "fdinfo %d", fds[i]);
		snap_fdinfo(s, c, who, path, file, inode_fd, strstr(link, " (deleted)") != NULL);
	}
}

static void snap_one(struct fid_snap *s, struct canon *c, pid_t pid)
{
	char who[64], path[96], link[512], file[64];
	static int tids[4096];
	static const char *const links[] = { "cwd", "root", "exe", NULL };
	int n, i;

	snprintf(who, sizeof(who), "pid %d", pid);
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (access(path, F_OK)) {
		add(s, who, "proc", "exists", "no");
		return;
	}
	add(s, who, "proc", "exists", "yes");
	if (pid_state(pid) == 'Z') {
		/* A zombie has no mm, fds, cwd...: only the ids and the end are compared. */
		add(s, who, "proc", "zombie", "yes");
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		snap_stat(s, who, path);
		return;
	}
	add(s, who, "proc", "zombie", "no");
	snap_status(s, who, path, "status", status_fields);
	for (i = 0; links[i]; i++) {
		snprintf(path, sizeof(path), "/proc/%d/%s", pid, links[i]);
		if (readlink_s(path, link, sizeof(link)))
			add(s, who, links[i], "target", link);
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	snap_stat(s, who, path);
	snprintf(path, sizeof(path), "/proc/%d/sched", pid);
	snap_sched(s, who, path);
	snprintf(path, sizeof(path), "/proc/%d/limits", pid);
	snap_limits(s, who, path);
	snprintf(path, sizeof(path), "/proc/%d/personality", pid);
	snap_line(s, who, path, "personality");
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	snap_line(s, who, path, "comm");
	snprintf(path, sizeof(path), "/proc/%d/timers", pid);
	snap_timers(s, who, path);
	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	snap_smaps(s, who, path);
	snap_fds(s, c, pid, who);

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	n = list_dir(path, tids, 4096);
	for (i = 0; i < n; i++) {
		char twho[96];

		snprintf(twho, sizeof(twho), "pid %d tid %d", pid, tids[i]);
		snprintf(file, sizeof(file), "task/%d/status", tids[i]);
		snprintf(path, sizeof(path), "/proc/%d/task/%d/status", pid, tids[i]);
		snap_status(s, twho, path, file, thread_status_fields);
		snprintf(file, sizeof(file), "task/%d/comm", tids[i]);
		snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tids[i]);
		snap_line(s, twho, path, file);
	}
}

struct fid_snap *fid_snap_pids(const pid_t *pids, int n)
{
	struct fid_snap *s = calloc(1, sizeof(*s));
	struct canon c = { .n = 0 };
	int i;

	if (!s)
		return NULL;
	/* Two passes over the fds would name epoll targets seen later; one is enough here. */
	for (i = 0; i < n && i < FID_MAXP; i++) {
		s->pids[s->npids++] = pids[i];
		snap_one(s, &c, pids[i]);
	}
	for (i = 0; i < c.n; i++)
		free(c.key[i]);
	return s;
}

struct fid_snap *fid_snap_tree(pid_t root)
{
	pid_t pids[FID_MAXP];
	int n = tree_pids(root, pids, FID_MAXP);

	if (n < 0)
		n = 0;
	return fid_snap_pids(pids, n);
}

struct fid_snap *fid_resnap(const struct fid_snap *s)
{
	return fid_snap_pids(s->pids, s->npids);
}

void fid_free(struct fid_snap *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->n; i++) {
		free(s->v[i].who);
		free(s->v[i].file);
		free(s->v[i].field);
		free(s->v[i].value);
	}
	free(s->v);
	free(s);
}

const char *fid_value(const struct fid_snap *s, pid_t pid, const char *file, const char *field)
{
	char who[64];
	size_t i;

	snprintf(who, sizeof(who), "pid %d", pid);
	for (i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].who, who) && !strcmp(s->v[i].file, file) &&
		    !strcmp(s->v[i].field, field))
			return s->v[i].value;
	return NULL;
}

static int cmp_item(const struct fid_item *a, const struct fid_item *b)
{
	int r = strcmp(a->who, b->who);

	if (!r)
		r = strcmp(a->file, b->file);
	return r ? r : strcmp(a->field, b->field);
}

static int cmp_pitem(const void *a, const void *b)
{
	return cmp_item(*(const struct fid_item *const *)a, *(const struct fid_item *const *)b);
}

static const struct fid_item **sorted(const struct fid_snap *s)
{
	const struct fid_item **v = calloc(s->n + 1, sizeof(*v));
	size_t i;

	if (!v)
		return NULL;
	for (i = 0; i < s->n; i++)
		v[i] = &s->v[i];
	qsort(v, s->n, sizeof(*v), cmp_pitem);
	return v;
}

/* Append a formatted line to a growing string. */
static void appendf(char **buf, size_t *len, const char *fmt, ...)
{
	va_list ap;
	char *line = NULL, *nb;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	nb = realloc(*buf, *len + n + 1);
	if (nb) {
		memcpy(nb + *len, line, n + 1);
		*buf = nb;
		*len += n;
	}
	free(line);
}

static const char *expected_reason(const struct fid_expect *exp, const struct fid_item *it)
{
	char name[512];

	snprintf(name, sizeof(name), "%s: %s", it->file, it->field);
	for (; exp && exp->what; exp++)
		if (!fnmatch(exp->what, name, 0))
			return exp->reason ? exp->reason : "(no reason given)";
	return NULL;
}

/*
 * Is it->who a process that is gone or a zombie in snapshot x (so it is
 * reported once, as "proc: exists" or "proc: zombie", not field by field)?
 */
static bool gone(const struct fid_snap *x, const struct fid_item *it)
{
	pid_t pid;
	size_t i;

	if ((!strcmp(it->file, "proc") && !strcmp(it->field, "exists")) ||
	    sscanf(it->who, "pid %d", &pid) != 1)
		return false;
	for (i = 0; i < x->n; i++)
		if (!strcmp(x->v[i].file, "proc") && atoi(x->v[i].who + 4) == pid &&
		    ((!strcmp(x->v[i].field, "exists") && !strcmp(x->v[i].value, "no")) ||
		     (!strcmp(x->v[i].field, "zombie") && !strcmp(x->v[i].value, "yes"))))
			return true;
	return false;
}

/* Items of s about pid in file (a prefix), field. */
static int count(const struct fid_snap *s, pid_t pid, const char *file, const char *field)
{
	size_t i;
	int n = 0;

	for (i = 0; i < s->n; i++)
		n += atoi(s->v[i].who + 4) == pid && !strncmp(s->v[i].file, file, strlen(file)) &&
		     !strcmp(s->v[i].field, field);
	return n;
}

/*
 * Has a process of before ended in after, or begun to: gone, a zombie, its
 * mm gone (no exe: exiting), or fewer threads. Such a snapshot says nothing
 * about the restore.
 */
static bool ended(const struct fid_snap *before, const struct fid_snap *after)
{
	int i;

	for (i = 0; i < before->npids; i++) {
		pid_t p = before->pids[i];

		if (count(after, p, "exe", "target") < count(before, p, "exe", "target") ||
		    count(after, p, "task/", "value") < count(before, p, "task/", "value"))
			return true;
	}
	for (i = 0; i < before->npids; i++) {
		struct fid_item it = { .file = "x", .field = "x" };
		char who[32];

		snprintf(who, sizeof(who), "pid %d", before->pids[i]);
		it.who = who;
		if (gone(after, &it) && !gone(before, &it))
			return true;
	}
	return false;
}

static void report(char **d, size_t *dl, char **e, size_t *el, const struct fid_expect *exp,
		   const struct fid_item *it, const char *before, const char *after)
{
	const char *why = expected_reason(exp, it);
	char b[600], a[600];

	if (before)
		snprintf(b, sizeof(b), "\"%s\"", before);
	else
		snprintf(b, sizeof(b), "(none)");
	if (after)
		snprintf(a, sizeof(a), "\"%s\"", after);
	else
		snprintf(a, sizeof(a), "(none)");
	if (why)
		appendf(e, el, "%s: %s: %s: before %s, after %s (expected: %s)\n", it->who,
			it->file, it->field, b, a, why);
	else
		appendf(d, dl, "%s: %s: %s: before %s, after %s\n", it->who, it->file,
			it->field, b, a);
}

char *fid_diff(const struct fid_snap *before, const struct fid_snap *after,
	       const struct fid_expect *exp, char **expected)
{
	const struct fid_item **b = sorted(before), **a = sorted(after);
	char *d = NULL, *e = NULL;
	size_t dl = 0, el = 0, i = 0, j = 0;

	if (!b || !a) {
		free(b);
		free(a);
		return strdup("fidelity: out of memory\n");
	}
	while (i < before->n || j < after->n) {
		int r = i == before->n ? 1 : j == after->n ? -1 : cmp_item(b[i], a[j]);

		if (r < 0) {
			if (!gone(after, b[i]) || gone(before, b[i]))
				report(&d, &dl, &e, &el, exp, b[i], b[i]->value, NULL);
			i++;
		} else if (r > 0) {
			report(&d, &dl, &e, &el, exp, a[j], NULL, a[j]->value);
			j++;
		} else {
			if (strcmp(b[i]->value, a[j]->value))
				report(&d, &dl, &e, &el, exp, b[i], b[i]->value, a[j]->value);
			i++;
			j++;
		}
	}
	free(b);
	free(a);
	if (expected)
		*expected = e;
	else
		free(e);
	return d;
}

char *fid_wait_same(const struct fid_snap *before, const struct fid_expect *exp,
		    int timeout_ms, char **expected)
{
	long long end = now_ms() + timeout_ms;
	char *d = NULL, *live = NULL;

	if (expected)
		*expected = NULL;
	for (;;) {
		struct fid_snap *after = fid_resnap(before);
		char *e = NULL;
		bool end_seen;

		if (!after)
			return strdup("fidelity: out of memory\n");
		end_seen = ended(before, after);
		free(d);
		d = fid_diff(before, after, exp, &e);
		fid_free(after);
		if (end_seen && live) {
			/* It ended before it matched: what differed while it ran. */
			char *r = NULL;

			if (asprintf(&r, "%s(then: %s)", live, d ? d : "") < 0)
				r = NULL;
			free(d);
			free(live);
			free(e);
			return r;
		}
		if (!end_seen) {
			free(live);
			live = d ? strdup(d) : NULL;
			if (expected) {
				free(*expected);
				*expected = e;
				e = NULL;
			}
		}
		free(e);
		if (!d || end_seen || now_ms() >= end) {
			free(live);
			return d;
		}
		sleep_ms(20);
	}
}
