/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the amber kselftest tests: running the CLI and the
 * workloads as subprocesses, polling their output, parsing the CLI's
 * output and the image files, and raw generic netlink requests.
 *
 * Nothing here includes kselftest_harness.h (it defines globals); functions
 * report failure with a negative value or NULL and the tests ASSERT on that.
 */
#ifndef AMBER_TEST_H
#define AMBER_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Paths relative to the repository root (the tests run with cwd there). */
/* build/amber, or $AMBER_BIN when set (a copy that a rebuild cannot replace). */
#define AMBER_BIN	amber_bin()
#define WORKLOAD_DIR	"build/workloads"
#define TEST_TMP	"/tmp/amber-tests"

/* A finished command: raw wait status and its captured output. */
struct cmd_result {
	int status;		/* from waitpid(), or -1 if it timed out */
	char *out;		/* NUL-terminated stdout */
	char *err;		/* NUL-terminated stderr */
};

char *amber_bin(void);

/* An argument vector built piece by piece (at most 63 arguments). */
struct args {
	const char *v[64];
	int n;
};

/* Appends the NULL-terminated arguments after a. */
void args_add(struct args *a, ...);
/* Appends a NULL-terminated vector (v may be NULL). */
void args_addv(struct args *a, const char *const *v);
#define ARGV(a)	((char *const *)(a)->v)

/* Exit code as a shell shows it: 128 + signal for a killed process. */
int exit_code(int status);

/*
 * Run argv (argv[0] is a path) to completion, capturing stdout and stderr.
 * A command still running after timeout_ms is SIGKILLed (status -1).
 * stdin is /dev/null. Returns 0 when the command ran (whatever its status).
 */
int run_cmd(char *const argv[], int timeout_ms, struct cmd_result *r);
/* Same, with the argument vector given as a NULL-terminated list. */
int run_cmdl(int timeout_ms, struct cmd_result *r, const char *arg0, ...);
void cmd_result_free(struct cmd_result *r);

/* How a background child is connected. */
struct spawn_opts {
	const char *out_path;	/* stdout (and stderr unless err_path) */
	const char *err_path;	/* NULL: same file as stdout */
	bool append;		/* open out_path with O_APPEND */
	bool stdin_pipe;	/* stdin from a pipe: *stdin_fd gets its write end */
	bool stdout_pipe;	/* stdout into a pipe: *stdout_fd gets its read end */
	bool new_session;	/* setsid() before exec */
	bool pdeathsig;		/* die with the test process (workloads only) */
	int *stdin_fd;
	int *stdout_fd;
};

/* fork + exec argv in the background; returns its pid or -1. */
pid_t spawn(char *const argv[], const struct spawn_opts *o);
/* A workload: own session, output to out_path, killed if the test dies. */
pid_t spawn_workload(char *const argv[], const char *out_path);

/*
 * Wait up to timeout_ms for a child to exit and reap it (status may be NULL).
 * Returns 0 when it exited, -1 on timeout.
 */
int wait_child(pid_t pid, int timeout_ms, int *status);
/* Wait for any process (not necessarily a child) to disappear. */
int wait_gone(pid_t pid, int timeout_ms);
/* The process exists and is not a zombie. */
bool pid_alive(pid_t pid);
/* /proc/PID/stat state letter, or 0 if there is no such process. */
char pid_state(pid_t pid);
/* SIGKILL pid (if > 0) and reap it if it is our child. */
void kill_and_reap(pid_t pid);

/* Become a child subreaper so detached restored processes are reaped here. */
int become_subreaper(void);

/* Poll a file until it contains needle; returns 0 when found, -1 on timeout. */
int wait_for_text(const char *path, const char *needle, int timeout_ms);
/* Poll a file until it is at least size bytes long. */
int wait_for_size(const char *path, off_t size, int timeout_ms);
/* Number of occurrences of needle in the file (0 if unreadable). */
int count_text(const char *path, const char *needle);

/* Read a whole file (NUL-terminated, length in *len if len). NULL on error. */
char *slurp(const char *path, size_t *len);
int write_file(const char *path, const void *buf, size_t len);
/* 0 if both files exist with the same bytes, else the first differing offset + 1, or -1. */
long long files_differ(const char *a, const char *b);
off_t file_size(const char *path);
/* rm -rf path (uses /bin/rm). */
void rm_rf(const char *path);
/* mkdir -p a fresh directory (removed first). Returns 0 on success. */
int fresh_dir(const char *path);

/* Case-insensitive substring search. */
bool contains_ci(const char *hay, const char *needle);
long long now_ms(void);
void sleep_ms(int ms);

/*
 * `checkpoint N: pid P, stopped S ms, total T ms, B bytes written`, then
 * optionally a second line saying what kind of checkpoint it was:
 *   `  incremental on checkpoint M: D pages saved, U pages unchanged`
 *   `  full: D pages saved`   or   `  full (REASON): D pages saved`
 */
struct ckpt_line {
	unsigned int number;
	pid_t pid;
	double stopped_ms;
	double total_ms;
	unsigned long long bytes;
	bool has_kind;		/* the second line was there */
	bool incremental;
	unsigned int parent;	/* M, when incremental */
	unsigned long long saved;	/* D */
	unsigned long long unchanged;	/* U, when incremental */
	char reason[256];	/* REASON of a full one, "" if none */
};
/* Parse the CLI's stdout: exactly the first line, and the second if any. 0 on success. */
int parse_ckpt_line(const char *out, struct ckpt_line *c);
/* `restored pid P` */
int parse_restored_line(const char *out, pid_t *pid);

/* amber checkpoint PID -D dir [--kill]; parses the line when it succeeds. */
int amber_checkpoint(pid_t pid, const char *dir, bool kill, struct cmd_result *r,
		     struct ckpt_line *c);
/* amber checkpoint PID -D dir EXTRA... (extra: NULL-terminated, may be NULL). */
int amber_checkpoint_args(pid_t pid, const char *dir, const char *const extra[],
			  struct cmd_result *r, struct ckpt_line *c);

/* meta.img, parsed just enough to corrupt it on purpose. */
struct image_section {
	uint32_t type;
	uint64_t offset;
	uint64_t size;
};
#define MAX_SECTIONS 32
struct image_meta {
	uint32_t nr_sections;
	struct image_section sec[MAX_SECTIONS];
};
int read_meta(const char *path, struct image_meta *m);
/* The bytes of the first section of that type (malloc'ed), NULL if none. */
void *read_section(const char *path, uint32_t type, size_t *len);
const char *section_name(uint32_t type);
/* XOR one byte of a file with 0xff. */
int flip_byte(const char *path, off_t off);
/* First page run of pages.img holding data: offset of its data and its size. */
int first_page_run(const char *path, off_t *data_off, uint64_t *bytes);
/* The same for the largest run with data. */
int largest_page_run(const char *path, off_t *data_off, uint64_t *bytes);
/* Pages of pages.img in data runs and in AMBER_RUN_F_PARENT runs. 0 on success. */
int count_page_runs(const char *path, uint64_t *data_pages, uint64_t *parent_pages);

/* Raw generic netlink (no libnl): enough to send hand-made requests. */
struct nlbuf {
	char buf[1 << 16];
	size_t len;
	size_t nest[8];
	int depth;
};
struct nl_reply {
	int error;		/* 0 = ACK or data, else negative errno */
	char msg[512];		/* extack message, "" if none */
	uint32_t bad_attr_off;	/* NLMSGERR_ATTR_OFFS, 0 if none */
};
int nl_open(void);		/* NETLINK_GENERIC socket with extack on */
int nl_family(int sk);		/* amber's family id, or -errno */
void nl_start(struct nlbuf *b, uint16_t family, uint8_t cmd, uint16_t flags);
void nl_put(struct nlbuf *b, uint16_t type, const void *data, size_t len);
void nl_put_raw(struct nlbuf *b, const void *data, size_t len);
void nl_put_u32(struct nlbuf *b, uint16_t type, uint32_t v);
void nl_put_u64(struct nlbuf *b, uint16_t type, uint64_t v);
void nl_nest_start(struct nlbuf *b, uint16_t type);
void nl_nest_end(struct nlbuf *b);
/* Send b and read until the ACK/error for it; -1 on a socket error. */
int nl_transact(int sk, struct nlbuf *b, struct nl_reply *r, int timeout_ms);

/* --- process trees (tree_test) --- */

/* $AMBER_WORKLOADS_DIR/NAME, or build/workloads/NAME (malloc'ed). */
char *workload_path(const char *name);
/* Parent, process group and session of pid from /proc/PID/stat; -1 if gone. */
int proc_ids(pid_t pid, pid_t *ppid, pid_t *pgid, pid_t *sid);
/*
 * root and all its descendants (zombies too), parents before children, at
 * most max. Returns how many, -1 if root is gone.
 */
int tree_pids(pid_t root, pid_t *out, int max);
/* SIGKILL every process of tree_pids(root), root first. Returns how many. */
int kill_tree(pid_t root);
/*
 * Wait until /proc/PID is gone altogether (not even a zombie), reaping it
 * and any other dead child of ours (we may be their subreaper). 0 when gone.
 */
int reap_gone(pid_t pid, int timeout_ms);
/* Threads of pid (/proc/PID/task), sorted, at most max; -1 if gone. */
int thread_ids(pid_t pid, pid_t *out, int max);

/*
 * The number after the line "FIELD" of /proc/PID/FILE (field with its
 * colon: "VmRSS:" of status, "Pss:" of smaps_rollup), in kB; -1 if unknown.
 */
long proc_kb(pid_t pid, const char *file, const char *field);
/* A u32 (or the low half of a u64) attribute of meta.img's INFO section. 0 if found. */
int read_info_u32(const char *meta, uint16_t attr, uint32_t *v);
/* Total bytes of the sections of that type in meta.img; -1 if unreadable, 0 if none. */
long long section_bytes(const char *meta, uint32_t type);

/* Inside a kselftest TEST: skip unless the module is loaded and the CLI is built. */
#define REQUIRE_AMBER() do {						\
	if (access("/sys/module/amber", F_OK) || access(AMBER_BIN, X_OK))	\
		SKIP(return, "amber.ko is not loaded or build/amber is missing"); \
} while (0)

#endif /* AMBER_TEST_H */
