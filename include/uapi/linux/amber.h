/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * amber: transparent checkpoint/restart of unmodified Linux processes.
 *
 * This header is the single source of truth for
 *   - the generic netlink protocol between amber.ko and the amber tools, and
 *   - the on-disk image format written by the tools (pages file and meta file).
 *
 * Netlink rules: commands and attributes start at 1, new values are added at
 * the end of an enum and nothing is ever renumbered. Flags enums carry an
 * __AMBER_*_F_ALL mask; unknown bits are rejected by the kernel.
 *
 * See Documentation/design.md and Documentation/image-format.md.
 */
#ifndef _UAPI_LINUX_AMBER_H
#define _UAPI_LINUX_AMBER_H

#include <linux/types.h>

#define AMBER_FAMILY_NAME	"amber"
#define AMBER_FAMILY_VERSION	2

/* Version of the tools/module pair, printed by `amber version`. */
#define AMBER_VERSION_STRING	"0.2.0"

enum amber_cmd {
	/* -> MODULE_VERSION, PROTO_VERSION, SESSIONS */
	AMBER_CMD_GET_VERSION = 1,
	/*
	 * PID, PAGES_FD [, FLAGS, TIMEOUT_MS] -> TASK, MM, VMAS, REGS, FPU,
	 * SIGNALS, FDS, STOPPED_NS, PAGES_BYTES, PAGES_NR.
	 * The target is stopped in its own context (task_work), captures itself,
	 * writes its page data to PAGES_FD (see struct amber_pages_hdr) and is
	 * resumed before the reply is sent, unless FLAGS has AMBER_CKPT_F_HOLD,
	 * in which case it stays stopped until AMBER_CMD_RELEASE, the requesting
	 * socket closes, the hold times out or the module is unloaded.
	 *
	 * Every thread is captured (THREADS). With AMBER_CKPT_F_TREE the
	 * descendants are too, and the reply is one message per process
	 * (before the ACK, same sequence number), PID first, parents before
	 * children; each has PROC, and a live one the attributes above plus
	 * PAGES_INDEX (not PID's: its pages go to PAGES_FD), QUEUE chunks;
	 * a zombie has PROC only. Without TREE there is one message, with PROC.
	 * The caller needs a receive buffer big enough for all of them.
	 */
	AMBER_CMD_CHECKPOINT,
	/* PID, ACTION: resume or SIGKILL a target held by AMBER_CMD_CHECKPOINT. */
	AMBER_CMD_RELEASE,
	/*
	 * Sent by the restore stub about itself (current becomes the restored
	 * process): TASK, MM, VMAS (with VMA_FILE_FD), REGS, FPU, SIGNALS,
	 * PAGE_FDS, CLOSE_FDS [, EXE_FD, THREADS, FLAGS]. THREADS: the stub
	 * created its other threads (clone3 set_tid) first; they must be
	 * blocked (all signals blocked, waiting in a system call) and are
	 * parked and given their state by the module. A SHMEM VMA given a
	 * VMA_FILE_FD (a shmem file, e.g. memfd) is mapped shared from that
	 * file and its pages are not filled from the pages files (the tool
	 * filled the file). On success the stub never sees the
	 * reply: it returns to user mode as the checkpointed program. The ACK
	 * (or extack error) is read by whoever shares the socket.
	 */
	AMBER_CMD_RESTORE,
	/*
	 * PID: stop tracking the dirty pages of a process (see
	 * AMBER_CKPT_F_TRACK). Needs the same access as AMBER_CMD_CHECKPOINT.
	 * ENOENT if it was not tracked.
	 */
	AMBER_CMD_UNTRACK,
	/*
	 * SOCK_FDS: the caller's restored TCP sockets. Ends the hold on their
	 * connections (and listening ports) that a held CHECKPOINT put on them
	 * (see AMBER_CKPT_F_HOLD and kmod/nethold.c): packets of those
	 * 4-tuples flow again. A socket with no hold is no error.
	 * Needs CAP_NET_ADMIN.
	 */
	AMBER_CMD_NET_RELEASE,
	/*
	 * SOCK_FD: the caller's TCP socket, being rebuilt in repair mode
	 * (TCP_REPAIR) in state ESTABLISHED or FIN_WAIT1, takes its peer's FIN
	 * as received after the bytes of its receive queue: CLOSE_WAIT, or
	 * CLOSING. Linux has no repair option for that. Needs CAP_NET_ADMIN.
	 */
	AMBER_CMD_TCP_PEER_FIN,
	/*
	 * SOCK_FD: the caller's TCP listening socket; TCP_CHILD_FD: the
	 * caller's TCP socket rebuilt in repair mode (TCP_REPAIR), ESTABLISHED,
	 * on the listener's port and family, a connection that was waiting in
	 * the listener's accept queue. The module leaves repair mode on the
	 * connection (as TCP_REPAIR off does, window probe included), takes it
	 * from the caller's socket (the fd is left with a fresh unconnected
	 * TCP socket, which closing does not affect the connection) and
	 * appends it to the listener's accept queue: the program's accept()
	 * returns it, after the ones grafted before. Ends the hold on its
	 * connection (see NET_RELEASE). Needs CAP_NET_ADMIN.
	 */
	AMBER_CMD_TCP_GRAFT,
	/*
	 * PID, UFFD_FD: the caller fills PID's memory lazily through that
	 * userfaultfd (`amber restore --lazy`, AMBER_RESTORE_F_LAZY). The
	 * module keeps a reference on the userfaultfd, so that the process
	 * never sees its missing pages as zero (as it would once the last
	 * reference went away), and SIGKILLs the process and its descendants
	 * if the caller's socket closes before it says the fill is complete.
	 * Sent again with the userfaultfd of a child the process forked
	 * during the fill, under the same PID. PID alone, from the same
	 * socket: the fill is complete (or the process is gone); every
	 * reference held for PID is dropped. ENOENT if this socket holds no
	 * fill of that pid. Needs CAP_CHECKPOINT_RESTORE and ptrace access to
	 * the process.
	 */
	AMBER_CMD_LAZY_FILL,

	__AMBER_CMD_MAX,
	AMBER_CMD_MAX = __AMBER_CMD_MAX - 1
};

/* Top-level attributes. */
enum amber_attr {
	AMBER_A_MODULE_VERSION = 1,	/* string */
	AMBER_A_PROTO_VERSION,		/* u32: AMBER_FAMILY_VERSION */
	AMBER_A_PID,			/* u32: pid in the caller's pid namespace */
	AMBER_A_PAGES_FD,		/* u32: fd open for writing (checkpoint) */
	AMBER_A_FLAGS,			/* u32: enum amber_ckpt_flags */
	AMBER_A_TIMEOUT_MS,		/* u32: how long to wait for the target */
	AMBER_A_ACTION,			/* u32: enum amber_release_action */
	AMBER_A_STOPPED_NS,		/* u64: time the target was stopped */
	AMBER_A_PAGES_BYTES,		/* u64: bytes written to PAGES_FD */
	AMBER_A_PAGES_NR,		/* u64: pages written to PAGES_FD */
	AMBER_A_TASK,			/* nest: enum amber_task_attr */
	AMBER_A_MM,			/* nest: enum amber_mm_attr */
	AMBER_A_VMAS,			/* nest of AMBER_A_VMA */
	AMBER_A_VMA,			/* nest: enum amber_vma_attr */
	AMBER_A_REGS,			/* nest: enum amber_reg (u64 each) */
	AMBER_A_FPU,			/* binary: XSAVE area, ptrace (UABI) layout */
	AMBER_A_SIGNALS,		/* nest: enum amber_sig_attr */
	AMBER_A_FDS,			/* nest of AMBER_A_FD */
	AMBER_A_FD,			/* nest: enum amber_fd_attr */
	AMBER_A_PAGE_FDS,		/* nest of AMBER_A_PAGE_FD, oldest first */
	AMBER_A_PAGE_FD,		/* u32: fd of a pages file (restore) */
	AMBER_A_CLOSE_FDS,		/* nest of AMBER_A_CLOSE_FD */
	AMBER_A_CLOSE_FD,		/* u32: stub fd closed when restore succeeds */
	AMBER_A_EXE_FD,			/* u32: fd of the executable (restore) */
	AMBER_A_SESSIONS,		/* u32: targets currently stopped or held */
	AMBER_A_PAD,
	/*
	 * u64. Reply to CHECKPOINT with AMBER_CKPT_F_TRACK: the tracking id of
	 * this checkpoint, to be passed as PARENT_ID by the next one. Ids are
	 * random 64-bit values, unique across processes and module loads.
	 */
	AMBER_A_TRACK_ID,
	/*
	 * u64. CHECKPOINT request: the TRACK_ID of the checkpoint this one
	 * should be incremental to. If it is still the target's current
	 * tracking id, the pages file is incremental (AMBER_RUN_F_PARENT runs
	 * for pages unchanged since) and the reply echoes PARENT_ID; otherwise
	 * the pages file is full, the reply has no PARENT_ID and FULL_REASON
	 * says why.
	 */
	AMBER_A_PARENT_ID,
	AMBER_A_PAGES_PARENT_NR,	/* u64: pages in AMBER_RUN_F_PARENT runs */
	AMBER_A_FULL_REASON,		/* string: why a PARENT_ID was not used */
	AMBER_A_TRACKED,		/* u32: GET_VERSION: processes tracked */
	/*
	 * CHECKPOINT with AMBER_CKPT_F_TREE: nest of AMBER_A_PAGE_FD, the
	 * pages files for the processes other than PID, used in the order the
	 * reply lists the processes. Too few: -EAGAIN, and the extack cookie
	 * has AMBER_ERR_PAGES_FILES, how many the tree needs (the tool retries
	 * with more; see enum amber_err_attr).
	 */
	AMBER_A_PAGES_FDS,
	/* u32, reply: index into PAGES_FDS of this process's pages file. */
	AMBER_A_PAGES_INDEX,
	/*
	 * CHECKPOINT with AMBER_CKPT_F_TREE: nest of AMBER_A_PARENT_ENTRY, the
	 * PARENT_ID to use for each process other than PID (PID's own is
	 * AMBER_A_PARENT_ID). A process not listed is checkpointed full.
	 */
	AMBER_A_PARENTS,
	AMBER_A_PARENT_ENTRY,		/* nest: enum amber_parent_attr */
	/*
	 * Reply: nest, enum amber_proc_attr: the process's place in the tree.
	 * Every reply message of a CHECKPOINT has one (see AMBER_CMD_CHECKPOINT).
	 */
	AMBER_A_PROC,
	/*
	 * Nest of AMBER_A_THREAD: the threads of the process other than its
	 * thread group leader, ascending by TID. The leader's own state stays
	 * in TASK, REGS, FPU and SIGNALS. CHECKPOINT reply, and RESTORE (the
	 * stub's other threads, which must be exactly these TIDs).
	 */
	AMBER_A_THREADS,
	AMBER_A_THREAD,			/* nest: enum amber_thread_attr */
	/*
	 * Reply, repeated: nest, enum amber_queue_attr: one chunk of the bytes
	 * queued in a pipe, FIFO or UNIX socket that an fd of the checkpoint
	 * refers to. Chunks of one inode come in read order, all in the message
	 * of one process (the first that captured an fd of that inode).
	 */
	AMBER_A_QUEUE,
	/*
	 * Reply: nest, enum amber_timers_attr: the process's interval timers
	 * (setitimer, alarm) and POSIX timers (timer_create). Absent: none
	 * armed or created. Kept in the image's CORE section; the restore stub
	 * recreates them with system calls, it is never sent to RESTORE.
	 */
	AMBER_A_TIMERS,
	/*
	 * Image only (section GHOSTS), never sent: nest, enum
	 * amber_ghost_attr: one chunk of the content of a regular file that was
	 * open but deleted (unlinked) at the checkpoint, read by the tool
	 * through /proc/PID/fd/N. Every chunk repeats DEV, INO, MODE, SIZE and
	 * PATH; the chunks of one inode are contiguous and in file order (a nest
	 * holds at most 64 KiB). Restore recreates the file in its old
	 * directory, opens every description of that inode from it, then
	 * unlinks it.
	 */
	AMBER_A_GHOST,
	/* NET_RELEASE: nest of AMBER_A_SOCK_FD. */
	AMBER_A_SOCK_FDS,
	AMBER_A_SOCK_FD,		/* u32: fd of a socket of the caller */
	AMBER_A_TCP_CHILD_FD,		/* u32: TCP_GRAFT: the connection's fd */
	AMBER_A_UFFD_FD,		/* u32: LAZY_FILL: the caller's userfaultfd */

	__AMBER_A_MAX,
	AMBER_A_MAX = __AMBER_A_MAX - 1
};

enum amber_ckpt_flags {
	/* Keep the target stopped after capture until AMBER_CMD_RELEASE. */
	AMBER_CKPT_F_HOLD = 1 << 0,
	/*
	 * Track the target's dirty pages from this checkpoint on (write-protect
	 * and soft-dirty bits, cleared while the target is stopped), so that a
	 * later checkpoint with PARENT_ID = this reply's TRACK_ID saves only
	 * what changed. Tracking ends when the process exits or executes a
	 * program, on AMBER_CMD_UNTRACK, or when the module is unloaded.
	 */
	AMBER_CKPT_F_TRACK = 1 << 1,
	/*
	 * Capture PID and all its descendants (children, their children, ...,
	 * zombies included) as one consistent cut: every thread of every
	 * process is stopped before any memory is captured, and resumed after
	 * the last capture. HOLD holds (and RELEASE releases) the whole tree.
	 */
	AMBER_CKPT_F_TREE = 1 << 2,

	__AMBER_CKPT_F_ALL = AMBER_CKPT_F_HOLD | AMBER_CKPT_F_TRACK |
			     AMBER_CKPT_F_TREE,
};

/*
 * AMBER_A_FLAGS of RESTORE. HOLD: once restored, the process (all its
 * threads) waits before its first user instruction until AMBER_CMD_RELEASE
 * of its PID from the same socket: RESUME runs it, KILL kills it. A process
 * still held when that socket closes, or after AMBER_RESTORE_HOLD_MAX_MS, or
 * at module unload, is killed: a tree restore is all or nothing.
 */
enum amber_restore_flags {
	AMBER_RESTORE_F_HOLD = 1 << 0,
	/*
	 * The PREFILLED VMAs may be registered with a userfaultfd
	 * (UFFDIO_REGISTER_MODE_MISSING) by the stub: their pages are filled
	 * on first touch by whoever holds it (see AMBER_CMD_LAZY_FILL).
	 */
	AMBER_RESTORE_F_LAZY = 1 << 1,

	__AMBER_RESTORE_F_ALL = AMBER_RESTORE_F_HOLD | AMBER_RESTORE_F_LAZY,
};

#define AMBER_RESTORE_HOLD_MAX_MS	120000

/* AMBER_A_PARENT_ENTRY */
enum amber_parent_attr {
	AMBER_PARENT_PID = 1,		/* u32 */
	AMBER_PARENT_ID,		/* u64: as AMBER_A_PARENT_ID */

	__AMBER_PARENT_MAX,
	AMBER_PARENT_MAX = __AMBER_PARENT_MAX - 1
};

/* AMBER_A_PROC */
enum amber_proc_attr {
	AMBER_PROC_PID = 1,		/* u32, in the caller's pid namespace */
	AMBER_PROC_PPID,		/* u32: real parent's tgid, 0 if not visible */
	AMBER_PROC_PGID,		/* u32: 0 if not visible in the caller's ns */
	AMBER_PROC_SID,			/* u32: 0 if not visible in the caller's ns */
	AMBER_PROC_ZOMBIE,		/* flag: exited, not yet reaped */
	AMBER_PROC_EXIT_CODE,		/* u32: zombie's wait status (as waitpid) */
	AMBER_PROC_NR_THREADS,		/* u32: live threads, leader included */
	/*
	 * u32: the PID of the first process of the request (parents come
	 * first) whose fd table (files_struct, clone(CLONE_FILES)) this
	 * process shares; absent when it shares it with no other process
	 * of the request. A table shared with a process outside the
	 * request is refused at the cut.
	 */
	AMBER_PROC_FILES_WITH,
	/* u32: the same for cwd, root and umask (fs_struct, CLONE_FS). */
	AMBER_PROC_FS_WITH,

	__AMBER_PROC_MAX,
	AMBER_PROC_MAX = __AMBER_PROC_MAX - 1
};

/* AMBER_A_THREAD: per-thread state of a thread other than the leader. */
enum amber_thread_attr {
	AMBER_THREAD_TID = 1,		/* u32, in the caller's pid namespace */
	AMBER_THREAD_REGS,		/* nest: enum amber_reg, as AMBER_A_REGS */
	AMBER_THREAD_FPU,		/* binary: as AMBER_A_FPU */
	AMBER_THREAD_BLOCKED,		/* u64: blocked mask, bit (signo - 1) */
	/* nest, repeated: enum amber_sigpending_attr (thread-directed, never SHARED) */
	AMBER_THREAD_PENDING,
	AMBER_THREAD_CLEAR_CHILD_TID,	/* u64 */
	AMBER_THREAD_ROBUST_LIST,	/* u64 */
	AMBER_THREAD_ROBUST_LIST_LEN,	/* u64 */
	AMBER_THREAD_SAS_SP,		/* u64: sigaltstack */
	AMBER_THREAD_SAS_SIZE,		/* u64 */
	AMBER_THREAD_SAS_FLAGS,		/* u32 */
	AMBER_THREAD_RSEQ,		/* u64: registered struct rseq, 0 if none */
	AMBER_THREAD_RSEQ_LEN,		/* u32 */
	AMBER_THREAD_RSEQ_SIG,		/* u32 */
	AMBER_THREAD_COMM,		/* string, at most 15 chars */

	__AMBER_THREAD_MAX,
	AMBER_THREAD_MAX = __AMBER_THREAD_MAX - 1
};

/* AMBER_A_QUEUE */
enum amber_queue_attr {
	AMBER_QUEUE_INO = 1,		/* u64: inode of the pipe/FIFO/socket */
	AMBER_QUEUE_DATA,		/* binary: at most AMBER_QUEUE_CHUNK bytes */
	/*
	 * flag: the last chunk of a message of a SOCK_DGRAM or SOCK_SEQPACKET
	 * socket (every message ends with one); never set for pipes and FIFOs.
	 * A SOCK_STREAM socket's bytes simply concatenate, unless one of its
	 * queued buffers carries credentials (AMBER_QUEUE_CRED_PID): then each
	 * buffer is a message of its own, ended by EOR.
	 */
	AMBER_QUEUE_EOR,
	/*
	 * u32, UNIX and TCP listeners: the chunk is the queue of the N-th
	 * (from 1) connection waiting in the accept backlog of the listener
	 * INO, the bytes its client sent before it was accepted.
	 */
	AMBER_QUEUE_EMBRYO,
	/*
	 * flag: the chunk is from a TCP socket's send queue (bytes written and
	 * not yet acknowledged by the peer, from snd_una on); without it,
	 * from its receive queue (not yet read, from copied_seq on). A
	 * socket's receive chunks come before its send chunks.
	 */
	AMBER_QUEUE_SEND,
	/*
	 * u32 each, on the last (EOR) chunk of a UNIX socket's message that
	 * carries credentials (SCM_CREDENTIALS, or attached because an end
	 * had SO_PASSCRED): the sender's pid, a live process of the
	 * checkpoint, in the caller's pid namespace (never 0), and its uid
	 * and gid in the target's user namespace. All three or none.
	 */
	AMBER_QUEUE_CRED_PID,
	AMBER_QUEUE_CRED_UID,
	AMBER_QUEUE_CRED_GID,
	/*
	 * nest, repeated, on the last (EOR) chunk of a UNIX socket's message
	 * that carries files in flight (SCM_RIGHTS), in the order the message
	 * passes them: each the description of one file, enum amber_fd_attr
	 * as in AMBER_A_FD but without NUM, always with FILE_ID (the id of
	 * its open file description in the request, shared with every fd and
	 * every file in flight of the request that refers to it). The module
	 * describes what it can of any kind (a pipe's queue is captured as
	 * for an fd); the tools decide what they can restore: a file that an
	 * fd of the checkpoint also refers to, or a regular file, directory
	 * or pipe on its own. A message carries at most
	 * AMBER_QUEUE_FILES_MSG_MAX bytes of them.
	 */
	AMBER_QUEUE_FILE,

	__AMBER_QUEUE_MAX,
	AMBER_QUEUE_MAX = __AMBER_QUEUE_MAX - 1
};

#define AMBER_QUEUE_CHUNK	32768
/* Most bytes queued in pipes and sockets one CHECKPOINT captures. */
#define AMBER_QUEUE_MAX_BYTES	(64U << 20)
/* Most files in flight one process's queues may carry at a CHECKPOINT. */
#define AMBER_QUEUE_FILES_MAX	1024
/* Most bytes of AMBER_QUEUE_FILE descriptions one queued message may carry. */
#define AMBER_QUEUE_FILES_MSG_MAX	24576

enum amber_release_action {
	AMBER_RELEASE_RESUME = 1,
	AMBER_RELEASE_KILL,		/* SIGKILL before any instruction runs */

	__AMBER_RELEASE_MAX,
	AMBER_RELEASE_MAX = __AMBER_RELEASE_MAX - 1
};

/* AMBER_A_TASK */
enum amber_task_attr {
	AMBER_TASK_PID = 1,		/* u32 */
	AMBER_TASK_COMM,		/* string, at most 15 chars */
	AMBER_TASK_UID,			/* u32, as seen from the caller's userns */
	AMBER_TASK_EUID,
	AMBER_TASK_SUID,
	AMBER_TASK_FSUID,
	AMBER_TASK_GID,
	AMBER_TASK_EGID,
	AMBER_TASK_SGID,
	AMBER_TASK_FSGID,
	AMBER_TASK_GROUPS,		/* nest of AMBER_TASK_GROUP */
	AMBER_TASK_GROUP,		/* u32 */
	AMBER_TASK_CAP_INH,		/* u64 each */
	AMBER_TASK_CAP_PRM,
	AMBER_TASK_CAP_EFF,
	AMBER_TASK_CAP_BND,
	AMBER_TASK_CAP_AMB,
	AMBER_TASK_UMASK,		/* u32 */
	AMBER_TASK_PERSONALITY,		/* u32 */
	AMBER_TASK_CWD,			/* string: absolute path */
	AMBER_TASK_RLIMITS,		/* nest of AMBER_TASK_RLIMIT */
	AMBER_TASK_RLIMIT,		/* nest: enum amber_rlimit_attr */
	AMBER_TASK_RSEQ,		/* u64: registered struct rseq, 0 if none */
	AMBER_TASK_RSEQ_LEN,		/* u32 */
	AMBER_TASK_RSEQ_SIG,		/* u32 */
	AMBER_TASK_CLEAR_CHILD_TID,	/* u64 */
	AMBER_TASK_ROBUST_LIST,		/* u64 */
	AMBER_TASK_ROBUST_LIST_LEN,	/* u64 */
	AMBER_TASK_SAS_SP,		/* u64: sigaltstack */
	AMBER_TASK_SAS_SIZE,		/* u64 */
	AMBER_TASK_SAS_FLAGS,		/* u32 */
	AMBER_TASK_EXE,			/* string: path of mm->exe_file */
	AMBER_TASK_START_TIME_NS,	/* u64: boottime start, tells PID reuse */
	AMBER_TASK_DUMPABLE,		/* u32: SUID_DUMP_* of the mm (0, 1 or 2) */
	AMBER_TASK_NO_NEW_PRIVS,	/* u32: 1 if no_new_privs is set */

	__AMBER_TASK_MAX,
	AMBER_TASK_MAX = __AMBER_TASK_MAX - 1
};

enum amber_rlimit_attr {
	AMBER_RLIMIT_RESOURCE = 1,	/* u32: RLIMIT_* */
	AMBER_RLIMIT_CUR,		/* u64 */
	AMBER_RLIMIT_MAX,		/* u64 */

	__AMBER_RLIMIT_MAX,
	AMBER_RLIMIT_MAX_ATTR = __AMBER_RLIMIT_MAX - 1
};

/* AMBER_A_MM: the mm layout fields prctl(PR_SET_MM_MAP) knows, plus vDSO. */
enum amber_mm_attr {
	AMBER_MM_START_CODE = 1,	/* u64 each */
	AMBER_MM_END_CODE,
	AMBER_MM_START_DATA,
	AMBER_MM_END_DATA,
	AMBER_MM_START_BRK,
	AMBER_MM_BRK,
	AMBER_MM_START_STACK,
	AMBER_MM_ARG_START,
	AMBER_MM_ARG_END,
	AMBER_MM_ENV_START,
	AMBER_MM_ENV_END,
	AMBER_MM_AUXV,			/* binary: u64 pairs, ends with AT_NULL */
	AMBER_MM_VDSO,			/* u64: mm->context.vdso */

	__AMBER_MM_MAX,
	AMBER_MM_MAX = __AMBER_MM_MAX - 1
};

enum amber_vma_flags {
	AMBER_VMA_F_SHARED	= 1 << 0,	/* MAP_SHARED (VM_SHARED/VM_MAYSHARE) */
	AMBER_VMA_F_ANON	= 1 << 1,	/* no file */
	AMBER_VMA_F_SHMEM	= 1 << 2,	/* shared anonymous (shmem) */
	AMBER_VMA_F_GROWSDOWN	= 1 << 3,
	AMBER_VMA_F_STACK	= 1 << 4,	/* holds mm->start_stack */
	AMBER_VMA_F_HEAP	= 1 << 5,	/* [start_brk, brk) */
	AMBER_VMA_F_VDSO	= 1 << 6,
	AMBER_VMA_F_VVAR	= 1 << 7,
	AMBER_VMA_F_MAYWRITE	= 1 << 8,	/* VM_MAYWRITE (file opened rw) */
	AMBER_VMA_F_DONTFORK	= 1 << 9,
	AMBER_VMA_F_DONTDUMP	= 1 << 10,
	AMBER_VMA_F_LOCKED	= 1 << 11,
	AMBER_VMA_F_HUGEPAGE	= 1 << 12,	/* MADV_HUGEPAGE */
	AMBER_VMA_F_NOHUGEPAGE	= 1 << 13,
	/*
	 * Restore only: the caller has already mapped [start, end) as private
	 * anonymous memory with the VMA's prot and filled it (a tree restore
	 * does so before forking, so that pages a parent and its child shared
	 * copy-on-write stay shared). The kernel checks the mapping and keeps
	 * it, contents included; the VMA's pages in the pages files are skipped.
	 * Only with AMBER_VMA_F_ANON, optionally AMBER_VMA_F_HEAP and _MAYWRITE.
	 */
	AMBER_VMA_F_PREFILLED	= 1 << 14,
	/*
	 * More of the VMA's advice, as /proc/PID/smaps VmFlags shows it:
	 * MADV_SEQUENTIAL (VM_SEQ_READ, "sr") and MADV_RANDOM (VM_RAND_READ,
	 * "rr"), at most one of them; MADV_WIPEONFORK ("wf"), only on private
	 * anonymous memory; MADV_MERGEABLE (KSM, "mg"), not on shared memory;
	 * mlock2(MLOCK_ONFAULT) or mlockall(MCL_ONFAULT) (VM_LOCKONFAULT),
	 * only with AMBER_VMA_F_LOCKED; MAP_NORESERVE ("nr"). Restore sets
	 * each as madvise(), mlock2() or mmap() would (a LOCKONFAULT VMA is
	 * populated as a LOCKED one is).
	 */
	AMBER_VMA_F_SEQ_READ	= 1 << 15,
	AMBER_VMA_F_RAND_READ	= 1 << 16,
	AMBER_VMA_F_WIPEONFORK	= 1 << 17,
	AMBER_VMA_F_MERGEABLE	= 1 << 18,
	AMBER_VMA_F_LOCKONFAULT	= 1 << 19,
	AMBER_VMA_F_NORESERVE	= 1 << 20,
	/*
	 * VM_ACCOUNT ("ac"): the private mapping is charged to the commit
	 * limit. mmap() sets it on a private writable mapping; mprotect()
	 * keeps it when the mapping becomes read-only (RELRO), and then it
	 * sets the VMA apart from a read-only neighbour of the same file.
	 * Restore charges and sets it as that mmap() and mprotect() would.
	 * Only on private mappings.
	 */
	AMBER_VMA_F_ACCOUNT	= 1 << 21,

	__AMBER_VMA_F_ALL	= (1 << 22) - 1,
};

/*
 * The VMA flags restore sets with madvise() semantics once the VMA is
 * mapped (so it maps these VMAs first, and the tool keeps prefilled
 * memory from touching them: a neighbour could merge before the flags
 * are set).
 */
#define AMBER_VMA_F_ADVICE	(AMBER_VMA_F_DONTFORK | AMBER_VMA_F_DONTDUMP | \
				 AMBER_VMA_F_HUGEPAGE | AMBER_VMA_F_NOHUGEPAGE | \
				 AMBER_VMA_F_SEQ_READ | AMBER_VMA_F_RAND_READ | \
				 AMBER_VMA_F_WIPEONFORK | AMBER_VMA_F_MERGEABLE | \
				 AMBER_VMA_F_LOCKONFAULT)

/* AMBER_A_VMA */
enum amber_vma_attr {
	AMBER_VMA_START = 1,		/* u64 */
	AMBER_VMA_END,			/* u64 */
	AMBER_VMA_PGOFF,		/* u64: file offset in pages */
	AMBER_VMA_PROT,			/* u32: PROT_READ|PROT_WRITE|PROT_EXEC */
	AMBER_VMA_FLAGS,		/* u32: enum amber_vma_flags */
	AMBER_VMA_PATH,			/* string: mapped file */
	AMBER_VMA_DEV,			/* u64: st_dev of the mapped file */
	AMBER_VMA_INO,			/* u64 */
	AMBER_VMA_FILE_SIZE,		/* u64: i_size when captured */
	AMBER_VMA_PAGES,		/* u64: pages of this VMA in the pages file */
	AMBER_VMA_FILE_FD,		/* u32: restore: fd of the file to map */

	__AMBER_VMA_MAX,
	AMBER_VMA_MAX = __AMBER_VMA_MAX - 1
};

/* AMBER_A_REGS: one u64 attribute per register, struct user_regs_struct order. */
enum amber_reg {
	AMBER_REG_R15 = 1,
	AMBER_REG_R14,
	AMBER_REG_R13,
	AMBER_REG_R12,
	AMBER_REG_RBP,
	AMBER_REG_RBX,
	AMBER_REG_R11,
	AMBER_REG_R10,
	AMBER_REG_R9,
	AMBER_REG_R8,
	AMBER_REG_RAX,
	AMBER_REG_RCX,
	AMBER_REG_RDX,
	AMBER_REG_RSI,
	AMBER_REG_RDI,
	AMBER_REG_ORIG_RAX,
	AMBER_REG_RIP,
	AMBER_REG_CS,
	AMBER_REG_EFLAGS,
	AMBER_REG_RSP,
	AMBER_REG_SS,
	AMBER_REG_FS_BASE,
	AMBER_REG_GS_BASE,
	AMBER_REG_DS,
	AMBER_REG_ES,
	AMBER_REG_FS,
	AMBER_REG_GS,

	__AMBER_REG_MAX,
	AMBER_REG_MAX = __AMBER_REG_MAX - 1
};

/* AMBER_A_SIGNALS */
enum amber_sig_attr {
	AMBER_SIG_BLOCKED = 1,		/* u64: blocked mask, bit (signo - 1) */
	AMBER_SIG_ACTION,		/* nest: enum amber_sigaction_attr */
	AMBER_SIG_PENDING,		/* nest: enum amber_sigpending_attr */

	__AMBER_SIG_MAX,
	AMBER_SIG_MAX = __AMBER_SIG_MAX - 1
};

enum amber_sigaction_attr {
	AMBER_SIGACTION_SIGNO = 1,	/* u32 */
	AMBER_SIGACTION_HANDLER,	/* u64: SIG_DFL = 0, SIG_IGN = 1, or address */
	AMBER_SIGACTION_FLAGS,		/* u64: SA_* */
	AMBER_SIGACTION_RESTORER,	/* u64 */
	AMBER_SIGACTION_MASK,		/* u64 */

	__AMBER_SIGACTION_MAX,
	AMBER_SIGACTION_MAX = __AMBER_SIGACTION_MAX - 1
};

enum amber_sigpending_attr {
	AMBER_SIGPENDING_SIGINFO = 1,	/* binary: 128-byte siginfo_t */
	AMBER_SIGPENDING_SHARED,	/* flag: process-wide (not thread) queue */

	__AMBER_SIGPENDING_MAX,
	AMBER_SIGPENDING_MAX = __AMBER_SIGPENDING_MAX - 1
};

/*
 * AMBER_A_TIMERS. Times in nanoseconds; a value is the time left at the
 * checkpoint (0: disarmed), relative to the timer's clock (ITIMER_VIRTUAL
 * and ITIMER_PROF: the process's user / user+system CPU time).
 */
enum amber_timers_attr {
	AMBER_TIMERS_REAL_VALUE = 1,	/* u64: ITIMER_REAL (and alarm()) */
	AMBER_TIMERS_REAL_INTERVAL,	/* u64 */
	AMBER_TIMERS_VIRT_VALUE,	/* u64: ITIMER_VIRTUAL */
	AMBER_TIMERS_VIRT_INTERVAL,	/* u64 */
	AMBER_TIMERS_PROF_VALUE,	/* u64: ITIMER_PROF */
	AMBER_TIMERS_PROF_INTERVAL,	/* u64 */
	AMBER_TIMERS_NEXT_ID,		/* u32: id the next timer_create() would try */
	AMBER_TIMERS_TIMER,		/* nest, repeated, ascending id: enum amber_timer_attr */

	__AMBER_TIMERS_MAX,
	AMBER_TIMERS_MAX = __AMBER_TIMERS_MAX - 1
};

/* At most this many POSIX timers per process (refused above). */
#define AMBER_MAX_POSIX_TIMERS	256
/* Highest POSIX timer id restored (the stub creates fillers up to it). */
#define AMBER_MAX_POSIX_TIMER_ID	65535

/* AMBER_TIMERS_TIMER: one POSIX timer. */
enum amber_timer_attr {
	AMBER_TIMER_ID = 1,		/* u32: timer_t */
	AMBER_TIMER_CLOCK,		/* u32: clockid_t */
	AMBER_TIMER_NOTIFY,		/* u32: SIGEV_SIGNAL, SIGEV_NONE or SIGEV_THREAD_ID */
	AMBER_TIMER_SIGNO,		/* u32: sigev_signo */
	AMBER_TIMER_SIGVAL,		/* u64: sigev_value */
	AMBER_TIMER_TID,		/* u32: SIGEV_THREAD_ID target, a thread of the process */
	AMBER_TIMER_VALUE,		/* u64: ns left, 0: disarmed */
	AMBER_TIMER_INTERVAL,		/* u64: ns */
	AMBER_TIMER_OVERRUN,		/* u32: timer_getoverrun(), not restored */

	__AMBER_TIMER_MAX,
	AMBER_TIMER_MAX = __AMBER_TIMER_MAX - 1
};

enum amber_fd_type {
	AMBER_FD_REG = 1,		/* regular file */
	AMBER_FD_DIR,
	AMBER_FD_CHR,			/* character device (incl. /dev/null, ttys) */
	AMBER_FD_BLK,
	AMBER_FD_FIFO,			/* pipe or FIFO */
	AMBER_FD_SOCK,
	AMBER_FD_OTHER,			/* anon inodes (eventfd, epoll, ...) */

	__AMBER_FD_MAX,
	AMBER_FD_TYPE_MAX = __AMBER_FD_MAX - 1
};

/* AMBER_A_GHOST (image section GHOSTS) */
enum amber_ghost_attr {
	AMBER_GHOST_DEV = 1,		/* u64: st_dev, as AMBER_FD_DEV */
	AMBER_GHOST_INO,		/* u64: as AMBER_FD_INO */
	AMBER_GHOST_MODE,		/* u32: st_mode */
	AMBER_GHOST_SIZE,		/* u64: bytes; the DATA chunks add up to it */
	AMBER_GHOST_PATH,		/* string: its path, without " (deleted)" */
	AMBER_GHOST_DATA,		/* binary: at most AMBER_GHOST_CHUNK bytes */

	__AMBER_GHOST_MAX,
	AMBER_GHOST_MAX = __AMBER_GHOST_MAX - 1
};

#define AMBER_GHOST_CHUNK	32768

/* AMBER_A_FD */
enum amber_fd_attr {
	AMBER_FD_NUM = 1,		/* u32 */
	AMBER_FD_TYPE,			/* u32: enum amber_fd_type */
	AMBER_FD_FLAGS,			/* u32: f_flags (O_*) as open(2) sees them */
	AMBER_FD_POS,			/* u64: f_pos */
	AMBER_FD_CLOEXEC,		/* flag */
	AMBER_FD_PATH,			/* string: path, or "pipe:[ino]" etc. */
	AMBER_FD_DEV,			/* u64: st_dev */
	AMBER_FD_INO,			/* u64 */
	AMBER_FD_RDEV,			/* u64: st_rdev (devices) */
	AMBER_FD_MODE,			/* u32: st_mode */
	AMBER_FD_SIZE,			/* u64: i_size */
	AMBER_FD_TTY,			/* flag: the file is a terminal */
	/*
	 * u64: the open file description. Equal for every fd, in every process
	 * of one CHECKPOINT reply, that refers to the same struct file (dup(),
	 * fork()); ids start at 1 and mean nothing across checkpoints.
	 */
	AMBER_FD_FILE_ID,
	AMBER_FD_SOCK_FAMILY,		/* u32: AF_* (sockets) */
	AMBER_FD_SOCK_TYPE,		/* u32: SOCK_STREAM, SOCK_DGRAM, ... */
	/* u64: inode of the connected peer (UNIX sockets), absent if none */
	AMBER_FD_PEER_INO,
	AMBER_FD_SHUTDOWN,		/* u32: sk_shutdown (1 RCV, 2 SEND) */
	AMBER_FD_PIPE_SIZE,		/* u32: pipe/FIFO capacity in bytes */
	/*
	 * flags, pipes and FIFOs: at capture no open file anywhere reads
	 * (NO_READERS) or writes (NO_WRITERS) the pipe. An end that no fd of
	 * the checkpoint holds was then closed by everyone, not held outside
	 * it: restore recreates the pipe with that end closed.
	 */
	AMBER_FD_PIPE_NO_READERS,
	AMBER_FD_PIPE_NO_WRITERS,
	/* u64: an eventfd's count; present for every eventfd, and only then */
	AMBER_FD_EVENTFD_COUNT,
	AMBER_FD_EVENTFD_SEMAPHORE,	/* flag: the eventfd has EFD_SEMAPHORE */
	/* flag: an epoll instance; present for every epoll, and only then */
	AMBER_FD_EPOLL,
	/*
	 * nested (enum amber_epoll_attr), epoll only: one registration of its
	 * interest list, one attribute each, in the kernel's order.
	 */
	AMBER_FD_EPOLL_TFD,
	/*
	 * timerfd (kmod/timerfd.c), from its own fdinfo. CLOCKID (u32) is
	 * present for every timerfd, and only then. SETTIME_FLAGS (u32):
	 * TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET as last passed to
	 * timerfd_settime(). TICKS (u64): expirations not yet read. VALUE
	 * (u64, ns): 0 = not armed; else the time left at capture, or with
	 * TFD_TIMER_ABSTIME the absolute expiry on the timer's clock; with an
	 * INTERVAL and TICKS, a VALUE at or before capture means expired and
	 * not yet re-armed (re-armed by the next read). INTERVAL (u64, ns).
	 */
	AMBER_FD_TIMERFD_CLOCKID,
	AMBER_FD_TIMERFD_SETTIME_FLAGS,
	AMBER_FD_TIMERFD_TICKS,
	AMBER_FD_TIMERFD_VALUE,
	AMBER_FD_TIMERFD_INTERVAL,
	/*
	 * u64: a signalfd's mask (kmod/signalfd.c), bit N-1 for signal N, as
	 * its fdinfo "sigmask" prints it; present for every signalfd, and
	 * only then.
	 */
	AMBER_FD_SIGNALFD_MASK,
	/* flag: an inotify instance; present for every inotify, and only then */
	AMBER_FD_INOTIFY,
	/*
	 * nested (enum amber_inotify_attr), inotify only: one watch, one
	 * attribute each, in the kernel's order. Events queued and not yet
	 * read are not reported (restore drops them, as CRIU does).
	 */
	AMBER_FD_INOTIFY_WATCH,
	/*
	 * UNIX sockets (kmod/unix.c). UNIX_NAME (binary, at most 108 bytes):
	 * the socket's address, sun_path as getsockname() returns it (an
	 * abstract name starts with a NUL byte; autobound names are abstract),
	 * absent when unnamed. UNIX_ACCEPTED (flag): the name is its
	 * listener's, inherited from accept(), not bound. For a name in the
	 * file system bound by this socket: UNIX_PATH (string) the socket
	 * file's absolute path, UNIX_FILE_MODE, _UID, _GID (u32) its inode's
	 * st_mode, owner and group. UNIX_BACKLOG (u32): a listening socket's
	 * listen() backlog, present only then. UNIX_NO_PEER (flag): never
	 * connected (no peer at all, not even a closed one). UNIX_PEER_NAME
	 * (binary): the name of the connected peer, when it has one.
	 */
	AMBER_FD_UNIX_NAME,
	AMBER_FD_UNIX_ACCEPTED,
	AMBER_FD_UNIX_PATH,
	AMBER_FD_UNIX_FILE_MODE,
	AMBER_FD_UNIX_FILE_UID,
	AMBER_FD_UNIX_FILE_GID,
	AMBER_FD_UNIX_BACKLOG,
	AMBER_FD_UNIX_NO_PEER,
	AMBER_FD_UNIX_PEER_NAME,
	/*
	 * Socket options, every socket the kernel describes: SOCK_RCVBUF,
	 * SOCK_SNDBUF (u32, sk_rcvbuf / sk_sndbuf: what getsockopt() returns,
	 * already doubled), SOCK_USERLOCKS (u32, sk_userlocks: SOCK_SNDBUF_LOCK
	 * 1 and SOCK_RCVBUF_LOCK 2 when the program set them), SOCK_RCVLOWAT
	 * (u32), SOCK_RCVTIMEO, SOCK_SNDTIMEO (u64, microseconds as
	 * getsockopt() reports them, 0 = none), SOCK_PASSCRED, SOCK_PASSSEC
	 * (flags).
	 */
	AMBER_FD_SOCK_RCVBUF,
	AMBER_FD_SOCK_SNDBUF,
	AMBER_FD_SOCK_USERLOCKS,
	AMBER_FD_SOCK_RCVLOWAT,
	AMBER_FD_SOCK_RCVTIMEO,
	AMBER_FD_SOCK_SNDTIMEO,
	AMBER_FD_SOCK_PASSCRED,
	AMBER_FD_SOCK_PASSSEC,
	/*
	 * u64, UNIX listeners, one per connection waiting in the accept
	 * backlog, in accept() order: the inode of its client socket, 0 when
	 * the client was closed. Their queues are AMBER_QUEUE_EMBRYO chunks.
	 */
	AMBER_FD_UNIX_EMBRYO,
	/*
	 * nest (enum amber_inet_attr): an AF_INET/AF_INET6 TCP or UDP socket
	 * (kmod/inet.c); present for every such socket, and only then.
	 */
	AMBER_FD_INET,

	__AMBER_FD_MAX_ATTR,
	AMBER_FD_MAX = __AMBER_FD_MAX_ATTR - 1
};

/*
 * AMBER_FD_INET. Addresses are in network byte order, 4 bytes for AF_INET
 * sockets and 16 for AF_INET6 ones (v4-mapped for IPv4 peers); ports in
 * host byte order. TCP sequence numbers and window fields are those of
 * struct tcp_sock at capture (as TCP_REPAIR_WINDOW and TCP_QUEUE_SEQ take
 * them). Flags are present when set; SNDBUF/RCVBUF only when the program
 * set them (SO_SNDBUF/SO_RCVBUF lock them), LINGER only with SO_LINGER on.
 */
enum amber_inet_attr {
	AMBER_INET_PROTO = 1,		/* u32: IPPROTO_TCP or IPPROTO_UDP */
	/*
	 * u32: sk_state: TCP_LISTEN, TCP_ESTABLISHED (TCP, or a connected
	 * UDP socket), TCP_CLOSE (unconnected), or a half-closed TCP state
	 */
	AMBER_INET_STATE,
	AMBER_INET_SRC,			/* binary: local address */
	AMBER_INET_SPORT,		/* u32: local port, 0: not bound */
	AMBER_INET_DST,			/* binary: peer address */
	AMBER_INET_DPORT,		/* u32: peer port, 0: not connected */
	AMBER_INET_BOUND_ADDR,		/* flag: bind() named the address */
	AMBER_INET_BACKLOG,		/* u32: listen() backlog */
	AMBER_INET_REUSEADDR,		/* flag */
	AMBER_INET_REUSEPORT,		/* flag */
	AMBER_INET_V6ONLY,		/* flag */
	AMBER_INET_MARK,		/* u32: SO_MARK */
	AMBER_INET_PRIORITY,		/* u32: SO_PRIORITY */
	AMBER_INET_SNDBUF,		/* u32: sk_sndbuf (SO_SNDBUF set) */
	AMBER_INET_RCVBUF,		/* u32: sk_rcvbuf (SO_RCVBUF set) */
	AMBER_INET_LINGER,		/* u32: seconds (SO_LINGER on) */
	AMBER_INET_KEEPALIVE,		/* flag: SO_KEEPALIVE */
	AMBER_INET_KEEPIDLE,		/* u32: seconds, 0: the default */
	AMBER_INET_KEEPINTVL,		/* u32: seconds, 0: the default */
	AMBER_INET_KEEPCNT,		/* u32: 0: the default */
	AMBER_INET_NODELAY,		/* flag: TCP_NODELAY */
	AMBER_INET_CORK,		/* flag: TCP_CORK */
	AMBER_INET_USER_TIMEOUT,	/* u32: TCP_USER_TIMEOUT, ms */
	/* TCP connections (not LISTEN or CLOSE): */
	AMBER_INET_SND_UNA,		/* u32 */
	AMBER_INET_SND_NXT,		/* u32 */
	AMBER_INET_WRITE_SEQ,		/* u32 */
	AMBER_INET_RCV_NXT,		/* u32 */
	AMBER_INET_COPIED_SEQ,		/* u32 */
	AMBER_INET_MSS,			/* u32: mss_clamp */
	AMBER_INET_SND_WSCALE,		/* u32 */
	AMBER_INET_RCV_WSCALE,		/* u32 */
	AMBER_INET_SACK,		/* flag: SACK permitted */
	AMBER_INET_WSCALE_OK,		/* flag: window scaling on */
	AMBER_INET_TSTAMP,		/* flag: timestamps on */
	AMBER_INET_TIMESTAMP,		/* u32: TCP_TIMESTAMP (clock + tsoffset) */
	AMBER_INET_SND_WL1,		/* u32 */
	AMBER_INET_SND_WND,		/* u32 */
	AMBER_INET_MAX_WINDOW,		/* u32 */
	AMBER_INET_RCV_WND,		/* u32 */
	AMBER_INET_RCV_WUP,		/* u32 */
	/* flag: the connection is held (kmod/nethold.c) until NET_RELEASE */
	AMBER_INET_HELD,
	AMBER_INET_CONGESTION,		/* string: TCP_CONGESTION (TCP) */
	/*
	 * nest, repeated, TCP listeners only (enum amber_inet_attr again, no
	 * CHILD inside): a connection waiting in the accept queue, completed
	 * but not yet accepted, in accept() order, at most
	 * AMBER_INET_CHILDREN_MAX. Always ESTABLISHED, with the connection
	 * attributes; its received bytes travel as AMBER_A_QUEUE chunks of
	 * the listener's INO with AMBER_QUEUE_EMBRYO = its place (from 1).
	 */
	AMBER_INET_CHILD,

	__AMBER_INET_MAX,
	AMBER_INET_MAX = __AMBER_INET_MAX - 1
};

/* Most connections a TCP listener's accept queue may hold at a checkpoint. */
#define AMBER_INET_CHILDREN_MAX	64

/*
 * AMBER_FD_EPOLL_TFD: one registration (EPOLL_CTL_ADD) of an epoll's
 * interest list, keyed by the target's open file description and the fd
 * number it was added under. The target is open, under that number or
 * another (the fd may have been dup'ed and closed since), in the process
 * that reported the epoll; the module refuses registrations whose file is
 * open in no fd of it.
 */
enum amber_epoll_attr {
	AMBER_EPOLL_TFD = 1,		/* u32: the fd number it was added under */
	/*
	 * u32: its events mask, EPOLLET, EPOLLONESHOT, EPOLLEXCLUSIVE and
	 * EPOLLWAKEUP included; a ONESHOT registration that fired has only
	 * those four bits left (disarmed).
	 */
	AMBER_EPOLL_EVENTS,
	AMBER_EPOLL_DATA,		/* u64: epoll_event.data */
	AMBER_EPOLL_FILE_ID,		/* u64: the target's AMBER_FD_FILE_ID */

	__AMBER_EPOLL_MAX,
	AMBER_EPOLL_MAX = __AMBER_EPOLL_MAX - 1
};

#define AMBER_EPOLL_MAX_TFDS	1024	/* registrations per epoll */

/*
 * AMBER_FD_INOTIFY_WATCH: one watch of an inotify instance, on the inode
 * (DEV, INO) that its file handle (HANDLE_TYPE, HANDLE: as
 * name_to_handle_at() returns them) opens with open_by_handle_at() on a
 * mount of that file system. All are present in every watch.
 */
enum amber_inotify_attr {
	AMBER_INOTIFY_WD = 1,		/* u32: the watch descriptor, >= 1 */
	/* u32: IN_* events, IN_ONESHOT and IN_EXCL_UNLINK included */
	AMBER_INOTIFY_MASK,
	AMBER_INOTIFY_DEV,		/* u64: st_dev of the inode */
	AMBER_INOTIFY_INO,		/* u64 */
	AMBER_INOTIFY_HANDLE_TYPE,	/* u32: file_handle.handle_type */
	/* binary: file_handle.f_handle, 1 to AMBER_INOTIFY_HANDLE_MAX bytes */
	AMBER_INOTIFY_HANDLE,

	__AMBER_INOTIFY_MAX,
	AMBER_INOTIFY_MAX = __AMBER_INOTIFY_MAX - 1
};

#define AMBER_INOTIFY_MAX_WATCHES	1024	/* watches per inotify */
#define AMBER_INOTIFY_MAX_WD		0x100000	/* largest watch descriptor */
#define AMBER_INOTIFY_HANDLE_MAX	128	/* MAX_HANDLE_SZ */

/*
 * Pages file, written by the kernel to AMBER_A_PAGES_FD: one header, then
 * records until end of file. Each record is a struct amber_page_run followed
 * by nr_pages * page_size bytes of page contents (none for a run with
 * AMBER_RUN_F_PARENT), in ascending address order, never overlapping.
 *
 * The runs list every page that holds data at the checkpoint (present or
 * swapped out; for private file mappings only pages that were copied on
 * write). A page not in any run reads as zeros (or from its file) after
 * restore. A full pages file has no AMBER_RUN_F_PARENT runs. An incremental
 * one has them for pages unchanged since its parent checkpoint: restoring it
 * takes each such page from the newest older link of the chain that holds
 * its data (following that link's own parent runs); a page that no link of
 * the chain holds makes the chain invalid.
 */
#define AMBER_PAGES_MAGIC	0x5345474150424d41ULL	/* "AMBPAGES" */
#define AMBER_PAGES_VERSION	2

struct amber_pages_hdr {
	__u64 magic;
	__u32 version;
	__u32 page_size;
};

enum amber_run_flags {
	AMBER_RUN_F_PARENT	= 1 << 0,	/* no data: unchanged since the parent */

	__AMBER_RUN_F_ALL	= AMBER_RUN_F_PARENT,
};

struct amber_page_run {
	__u64 addr;
	__u32 nr_pages;		/* at least 1 */
	__u32 flags;		/* enum amber_run_flags */
};

/*
 * Meta file (written by the tools): a header, a section table, then the
 * sections. Every section and every page run of the pages file carries an
 * XXH64 (seed 0) checksum. Sections holding attributes are streams of
 * netlink attributes (struct nlattr, 4-byte aligned) as above.
 */
#define AMBER_IMAGE_MAGIC	"AMBERIMG"
/*
 * 4: TCP listeners carry their waiting connections (AMBER_INET_CHILD).
 * 5: queued UNIX messages carry their files in flight (AMBER_QUEUE_FILE).
 * 6: the pages file may be compressed (AMBER_INFO_PAGES_ZSTD).
 */
#define AMBER_IMAGE_VERSION	6
/* Oldest meta.img version the tools still read (2: issue 4, single-threaded). */
#define AMBER_IMAGE_VERSION_MIN	2

enum amber_section_type {
	AMBER_SEC_INFO = 1,	/* attrs: enum amber_info_attr */
	AMBER_SEC_CORE,		/* attrs: AMBER_A_TASK, MM, REGS, FPU, SIGNALS[, TIMERS] */
	AMBER_SEC_VMAS,		/* attrs: AMBER_A_VMA ... */
	AMBER_SEC_FDS,		/* attrs: AMBER_A_FD ... */
	AMBER_SEC_PAGEMAP,	/* array of struct amber_pagemap_entry */
	AMBER_SEC_THREADS,	/* attrs: AMBER_A_THREAD ... (not the leader) */
	/*
	 * attrs: AMBER_A_PROC ..., every process of a tree checkpoint, parents
	 * before children, the root first. Only in the root's meta.img; a
	 * checkpoint without it is of one process.
	 */
	AMBER_SEC_TREE,
	AMBER_SEC_QUEUES,	/* attrs: AMBER_A_QUEUE ..., as in the reply */
	/*
	 * attrs: AMBER_A_GHOST ..., one per deleted regular file an fd of
	 * this process refers to (in a tree, in the first process's image
	 * that has an fd on it).
	 */
	AMBER_SEC_GHOSTS,

	__AMBER_SEC_MAX,
	AMBER_SEC_MAX = __AMBER_SEC_MAX - 1
};

struct amber_image_hdr {
	char magic[8];		/* AMBER_IMAGE_MAGIC, not NUL-terminated */
	__u32 version;		/* AMBER_IMAGE_VERSION */
	__u32 nr_sections;
	__u64 hdr_xxh64;	/* of this header (with this field 0) + table */
};

struct amber_section {
	__u32 type;		/* enum amber_section_type */
	__u32 reserved;		/* 0 */
	__u64 offset;		/* from the start of the meta file */
	__u64 size;
	__u64 xxh64;		/* of the section's bytes */
};

/* One record of the pages file, as indexed by the tools. */
struct amber_pagemap_entry {
	__u64 addr;
	__u32 nr_pages;
	__u32 flags;		/* enum amber_run_flags, as in the run */
	__u64 offset;		/* of the page data (just after the run header) */
	__u64 xxh64;		/* of the page data (0 for AMBER_RUN_F_PARENT) */
};

enum amber_info_attr {
	AMBER_INFO_NUMBER = 1,		/* u32: checkpoint number in the store */
	AMBER_INFO_PARENT,		/* u32: previous link in a chain, 0 = full */
	AMBER_INFO_TIME_NS,		/* u64: CLOCK_REALTIME at capture */
	AMBER_INFO_STOPPED_NS,		/* u64 */
	AMBER_INFO_PAGES_BYTES,		/* u64 */
	AMBER_INFO_TOOL_VERSION,	/* string */
	AMBER_INFO_PID,			/* u32 */
	AMBER_INFO_HOSTNAME,		/* string */
	AMBER_INFO_TRACK_ID,		/* u64: AMBER_A_TRACK_ID, 0 = not tracked */
	AMBER_INFO_PAGES_NR,		/* u64: pages with data in this link */
	AMBER_INFO_PARENT_PAGES_NR,	/* u64: pages taken from the parent */
	AMBER_INFO_FULL_REASON,		/* string: why a full checkpoint, if asked incremental */
	/*
	 * The kernel the process ran on: its release (uname -r) and the XXH64
	 * of its 64-bit vDSO's bytes. The restored process keeps calling the
	 * vDSO through addresses it resolved on that kernel, so restore
	 * refuses a vDSO that differs (a different kernel build).
	 */
	AMBER_INFO_KERNEL,		/* string */
	AMBER_INFO_VDSO_XXH64,		/* u64 */
	/*
	 * u64: the pages file is pages.img.zst, one zstd frame that
	 * decompresses to exactly this many bytes: the pages file the PAGEMAP
	 * indexes (its checksums are of the uncompressed bytes). Absent: the
	 * pages file is pages.img, uncompressed. Since image version 6.
	 */
	AMBER_INFO_PAGES_ZSTD,

	__AMBER_INFO_MAX,
	AMBER_INFO_MAX = __AMBER_INFO_MAX - 1
};

/*
 * Facts about a failed request that the tool acts on, carried as netlink
 * attributes inside the extack cookie (NLMSGERR_ATTR_COOKIE, at most
 * NETLINK_MAX_COOKIE_LEN = 20 bytes) of the error reply, never inside the
 * message text, which is for people and may change. Absent: nothing to act
 * on beyond errno.
 */
enum amber_err_attr {
	/*
	 * flag: the failure was transient (the target exec'ed, exited, was
	 * caught inside a system call...); the same request may succeed if
	 * sent again.
	 */
	AMBER_ERR_RETRY = 1,
	/*
	 * u32, with -EAGAIN from CHECKPOINT with AMBER_CKPT_F_TREE: the number
	 * of pages files (AMBER_A_PAGES_FDS) the tree needs.
	 */
	AMBER_ERR_PAGES_FILES,

	__AMBER_ERR_MAX,
	AMBER_ERR_MAX = __AMBER_ERR_MAX - 1
};

#endif /* _UAPI_LINUX_AMBER_H */
