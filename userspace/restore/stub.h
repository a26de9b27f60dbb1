// SPDX-License-Identifier: GPL-2.0
// The restore stub: the child that `amber restore` creates with clone3() and
// the checkpointed PID. Everything it does is decided by the parent before
// clone3() and stored in a StubPlan; the child only reads the plan and makes
// system calls (no allocation, no locks, no vDSO once it has moved the vDSO),
// then sends the prepared AMBER_CMD_RESTORE request. On success the kernel
// turns it into the checkpointed program and it never returns; on failure it
// writes one StubReport to the report pipe and exits.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <sys/types.h>

#include "common/attr.h"
#include "image/image.h"
#include "common/result.h"

namespace amber {

// A half-open address range [start, end).
struct Range {
	uint64_t start = 0;
	uint64_t end = 0;

	uint64_t size() const { return end - start; }
	bool empty() const { return end <= start; }
	bool overlaps(const Range &o) const
	{
		return !empty() && !o.empty() && start < o.end && o.start < end;
	}
};

// "0x1000-0x2000", for messages.
std::string range_str(const Range &r);

// One line of /proc/PID/maps.
struct MapEntry {
	Range range;
	std::string name;	// path, "[vdso]", "[stack]", ... or empty
};

Result<std::vector<MapEntry>> parse_maps(std::string_view text);
Result<std::vector<MapEntry>> read_own_maps();

// Moving the stub's [vvar] and [vdso] to the image's addresses.
struct VdsoPlan {
	enum class Action { None, Move, Unmap };
	Action action = Action::None;
	Range cur_vvar, cur_vdso;	// the stub's (same as the parent's)
	Range img_vvar, img_vdso;	// where the image had them
};

// Plans the move from the parent's own mappings and the image's VMAs:
// sizes must match (same kernel) and the image's ranges must not cover any
// other mapping of ours, which the stub still runs on until the kernel call.
Result<VdsoPlan> plan_vdso(const std::vector<MapEntry> &own, const std::vector<Vma> &img);

// The stub moves vvar+vDSO through a scratch area of 5 * span bytes: returns
// the index (0-4) of a span-sized chunk of [base, base + 5 * span) that
// overlaps neither target range. At least one always exists when both
// targets are at most span long.
int pick_scratch_chunk(uint64_t base, uint64_t span, const Range &a, const Range &b);

// Private anonymous memory that the stubs map, fill and check themselves
// and hand to the kernel as AMBER_VMA_F_PREFILLED. In a tree, a child may
// inherit its parent's copy-on-write (filled before the children are
// created) and rewrite only the pages where its image differs, so pages a
// parent and its child shared at checkpoint time stay shared instead of
// being copied once per process.
struct PrefillPick {
	size_t vma = 0;			// index into the process's VMAs
	bool inherited = false;		// its parent prefills the same range
};

// Picks, for every process of a tree, the VMAs it prefills. vmas[i] are
// process i's VMAs (nullptr for a zombie), parent[i] its parent's index
// (-1 for the root), busy the ranges no stub may map over (the tool's own
// mappings, every image's vvar and vDSO). Eligible: private anonymous
// memory (the heap included, nothing else special) with some protection,
// clear of busy. Prefilled: an eligible VMA whose exact range the parent
// prefills (inherited) or some child has as an eligible VMA; with all,
// every eligible VMA (a single process's restore: the stub fills its memory
// from the pages files faster than the kernel does, and checks the
// checksums as it goes).
std::vector<std::vector<PrefillPick>> plan_prefill(const std::vector<const std::vector<Vma> *> &vmas,
						   const std::vector<int> &parent,
						   const std::vector<Range> &busy, bool all = false);

// Page data of a prefilled range, from a pages file.
struct PrefillSeg {
	uint64_t addr = 0;
	uint64_t len = 0;
	int fd = -1;			// the pages file (the tool's fd number)
	uint64_t off = 0;		// of addr's data in it
};

// The segments of range r in a process's resolved chain (link_fds[k]: the
// fd of link k's pages file), in address order. Pages of r that none
// covers are zero.
std::vector<PrefillSeg> prefill_segs(const std::vector<PageSource> &sources, Range r,
				     uint64_t page_size, const std::vector<int> &link_fds);

// A run of a pages file whose XXH64 the stub checks on the memory it
// filled (the tool did not hash it): [addr, addr + len) lies in one
// prefilled range.
struct StubPageCheck {
	uint64_t addr = 0;
	uint64_t len = 0;
	uint64_t xxh64 = 0;
	uint32_t number = 0;		// its checkpoint, for the message
	uint32_t run = 0;		// its index in that checkpoint's pagemap
};

struct StubPrefill {
	Range range;
	int prot = 0;			// PROT_*, set once filled and checked
	bool inherited = false;
	std::vector<PrefillSeg> segs;
	std::vector<StubPageCheck> checks;	// checked once filled (or fixed up)
	// A child inherits it: filled before the stub creates its children,
	// checked after (concurrently with theirs).
	bool before_fork = false;
};

// Gaps between sorted, distinct kept fds, as close_range() arguments.
std::vector<std::pair<unsigned, unsigned>> close_ranges(const std::vector<int> &keep);

// struct sigaction as the x86-64 rt_sigaction system call takes it.
struct KernelSigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

// struct clone_args of clone3(2), up to set_tid_size (CLONE_ARGS_SIZE_VER1).
struct StubCloneArgs {
	uint64_t flags;
	uint64_t pidfd;
	uint64_t child_tid;
	uint64_t parent_tid;
	uint64_t exit_signal;
	uint64_t stack;
	uint64_t stack_size;
	uint64_t tls;
	uint64_t set_tid;
	uint64_t set_tid_size;
};

// One image fd as the stub recreates it.
struct StubFd {
	int num = -1;
	bool inherit = false;	// keep `amber restore`'s own fd num (stdio)
	std::string path;
	int flags = 0;		// for open(2), O_CLOEXEC included when saved
	bool seek = false;
	off_t pos = 0;
	// A description the tool created (plan.h): index into the
	// caller's shared files; src is the stub's fd holding it (after the
	// helper moves), dup3()ed to num.
	int shared = -1;
	int src = -1;
};

// Decides how each image fd is recreated: regular files, directories and
// character devices by path with the saved flags minus O_CREAT, O_TRUNC and
// O_EXCL; fds 0-2 that were a terminal or a pipe are inherited from
// `amber restore`. Anything else is refused, naming the fd.
// shared: fd number -> shared description (plan.h SharedPlan::fd_file),
// whose path (shared_names) names it; such fds are neither opened by path
// nor refused.
Result<std::vector<StubFd>> plan_fds(const std::vector<FdInfo> &fds,
				     const std::map<uint32_t, int> &shared = {},
				     const std::vector<std::string> &shared_names = {});

// A helper fd of the parent and the number it gets in the stub.
struct FdMove {
	int from = -1;
	int to = -1;
};

// Helper fds go to consecutive numbers above both the highest image fd and
// the highest fd open in the parent, so moving them clobbers nothing.
std::vector<FdMove> plan_helper_moves(const std::vector<int> &helpers, int max_image_fd,
				      int max_open_fd);

struct StubSigaction {
	int signo = 0;
	KernelSigaction act{};
};

struct StubSiginfo {
	int signo = 0;
	bool shared = false;
	uint8_t info[128] = {};
};

struct StubRlimit {
	int resource = 0;
	struct rlimit lim {};
};

// A thread-directed pending signal. The kernel lets only the thread itself
// queue a signal with a kill()/tgkill() si_code to itself, so each new
// thread queues its own (rt_tgsigqueueinfo) before it parks, and writes the
// result (0 or -errno) into `result` (kPending until then). Fixed layout:
// the thread's assembly entry reads it.
struct StubThreadSig {
	static constexpr int32_t kPending = 1;
	int32_t tid = 0;
	int32_t signo = 0;
	int32_t result = kPending;
	int32_t pad = 0;
	uint8_t info[128] = {};
};
static_assert(sizeof(StubThreadSig) == 144);

// A POSIX timer the stub recreates (timers.cc): the kernel's struct
// sigevent and the itimerspec to arm it with (zero: left disarmed).
struct StubTimer {
	int32_t id = 0;			// the id timer_create() must hand out
	int32_t clock = 0;
	struct {
		uint64_t value;
		int32_t signo;
		int32_t notify;
		int32_t tid;
		int32_t pad[11];
	} ev = {};
	struct itimerspec its = {};
};

// setitimer() arguments, by ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF.
struct StubTimers {
	struct itimerval itimer[3] = {};
	std::vector<StubTimer> timers;	// ascending id
	int32_t next_id = 0;		// fillers up to it after the last timer
};

struct StubPlan;

// Processes sharing one fd table (clone CLONE_FILES) set it up once: the
// owner's stub moves every member's helper fds (disjoint numbers), closes
// the rest and installs the image's fds, once every member has passed the
// barrier (and stopped using the tool's fd numbers); the others wait until
// it is done. In memory every stub shares (MAP_SHARED, the tool's).
struct StubFilesSync {
	int32_t passed = 0;	// members past the barrier
	int32_t ready = 0;	// 1: the owner has set the table up
};

// What a stub of a tree restore does besides restoring itself.
struct StubTree {
	bool active = false;
	bool setsid = false;		// before creating children
	bool setpgid_self = false;	// before creating children
	bool join = false;		// after the barrier
	uint64_t clone_flags = 0;	// CLONE_FILES / CLONE_FS: its parent's clone3()
	pid_t join_pgid = 0;		// the tool's own group for join_tool_group
	pid_t outside_pgid = 0;		// tried first after the barrier (plan.h)
	std::vector<std::pair<pid_t, const StubPlan *>> children;	// creation order
	std::vector<pid_t> zombie_children;	// waited for (not reaped) before RESTORE
	bool zombie = false;		// exit after the barrier with:
	bool exit_signaled = false;
	int exit_code = 0;		// exit code or signal number
	int ready_fd = -1;		// the tool's numbers (before any move)
	int go_fd = -1;			// read 1 byte: every process exists
	int go_w_fd = -1;		// the tool's write end: closed at once
};

struct StubPlan {
	pid_t pid = 0;				// the process this plan restores
	std::vector<FdMove> helpers;
	std::vector<std::pair<unsigned, unsigned>> close;	// after the moves
	std::vector<StubFd> fds;
	std::optional<std::string> cwd;
	bool cwd_ghost = false;			// rmdir(cwd) once in it (GhostDirs)
	std::optional<mode_t> umask;
	std::string comm;
	std::vector<StubSigaction> actions;
	std::vector<StubSiginfo> pending;
	VdsoPlan vdso;
	std::vector<StubRlimit> rlimits;	// RLIMIT_NOFILE last
	StubTimers timers;
	int nl_fd = -1;				// stub's numbers, after the moves
	int report_fd = -1;
	int early_report_fd = -1;		// before the moves (-1: report_fd)
	std::vector<int> close_after;		// moved shared fds, once dup3()ed
	std::vector<pid_t> threads;		// TIDs to create, ascending
	// By thread, in the order of threads; written by the threads.
	mutable std::vector<StubThreadSig> thread_pending;
	uint64_t thread_stack = 0;		// shared by the parked threads
	uint64_t thread_stack_size = 0;
	StubTree tree;
	// A shared fd table (tree restores): nullptr when not shared.
	StubFilesSync *files_sync = nullptr;
	int files_members = 0;			// the owner: members, itself included
	bool files_follower = false;		// not the owner: skips steps 2 and 3
	// Private memory the stub maps, fills and checks itself (in a tree,
	// what a child inherits before the children are created), with a
	// scratch buffer of the tool's for fixing up inherited pages.
	std::vector<StubPrefill> prefill;
	// Lazy restore (lazy.h): prefill maps the memory without filling it
	// and registers it with a userfaultfd, reports LazyReady with the
	// userfaultfd's number, then waits for one byte on lazy_go_fd (the
	// tool's number) and closes the userfaultfd; the tool took a copy.
	bool lazy = false;
	int lazy_go_fd = -1;
	int lazy_go_w_fd = -1;			// the tool's write end: closed at once
	uint64_t scratch = 0;
	uint64_t scratch_size = 0;
	std::string pages_prefix;		// of pages.img in messages: "proc/PID/" in a tree
	Bytes msg;				// complete netlink message
};

// What the stub was doing when it failed.
enum class StubStep : uint32_t {
	SigMask = 1,
	MoveFd,		// index: helpers[]
	CloseFds,
	OpenFd,		// index: fds[]
	DupFd,		// index: fds[]
	SeekFd,		// index: fds[]
	Chdir,
	Comm,
	Sigaction,	// index: signal number
	SigQueue,	// index: signal number
	VdsoScratch,
	VdsoMove,
	Rlimit,		// index: resource
	Send,
	Returned,	// the kernel refused the request: read the ACK
	Setsid,
	Setpgid,	// index: the group
	Fork,		// index: the child's pid
	Barrier,
	JoinGroup,	// index: the group
	ZombieWait,	// index: the zombie child's pid
	Thread,		// index: the TID
	ThreadSig,	// index: the TID
	Ready,		// not a failure: the process and its children exist
	ZombieExit,	// index: code or signal
	Prefill,	// index: prefill[]
	ITimer,		// index: ITIMER_*
	Timer,		// index: the POSIX timer id
	TimerId,	// index: the id wanted (timer_create handed out another)
	PagesChecksum,	// index: of the check, counted over every prefill[]'s
	Userfaultfd,	// index: prefill[] being registered, -1 creating it
	LazyReady,	// not a failure: index is the userfaultfd's number
};

// Fixed-size record written to the report pipe (atomic: < PIPE_BUF).
struct StubReport {
	uint32_t step = 0;
	int32_t index = 0;
	int32_t err = 0;
	int32_t pid = 0;	// the stub's own pid
};

// "fd 3: /tmp/data.bin: open" etc. for a report of the stub (without the
// strerror part, which Error::str() adds).
std::string describe_step(const StubPlan &plan, const StubReport &r);

// A file-backed VMA, mapped on restore through an fd the stub passes.
bool vma_has_file(const Vma &v);
// Its fd must be open for writing (MAP_SHARED that may become writable).
bool vma_needs_write(const Vma &v);

// The stub's fd numbers that AMBER_CMD_RESTORE names.
struct RequestFds {
	std::vector<int> pages;					// oldest first
	int exe = -1;
	std::map<std::pair<std::string, bool>, int> files;	// (path, rw) -> fd
	std::vector<int> close;					// every helper fd
	std::map<int, int> shmem;	// VMA index -> memfd (tree restores)
	std::vector<bool> prefilled;	// by VMA index: AMBER_VMA_F_PREFILLED
	bool hold = false;		// AMBER_A_FLAGS has AMBER_RESTORE_F_HOLD
	bool lazy = false;		// AMBER_A_FLAGS has AMBER_RESTORE_F_LAZY
};

// Payload of AMBER_CMD_RESTORE: TASK, MM, REGS, FPU and SIGNALS copied from
// the image's CORE section, the VMAs with VMA_FILE_FD, PAGE_FDS, CLOSE_FDS
// and EXE_FD, THREADS (Checkpoint::threads' raw attributes) when the
// process had more than one, FLAGS with HOLD when asked.
Result<Bytes> build_restore_attrs(const Checkpoint &c, const RequestFds &fds);

// The kernel's extack names the stub's fd numbers ("exe fd 16: ..."):
// " [fd 16 is /usr/bin/prog]" for those of them found in names, else "".
std::string fd_legend(const std::string &msg, const std::map<int, std::string> &names);

// Thread-directed pending signals of the image's threads, checked.
Result<std::vector<StubThreadSig>> plan_thread_signals(const Checkpoint &c);

// Maps and fills plan.prefill[i], or fixes it up where inherited (pages
// that differ from the image rewritten, resident pages that must be zero
// dropped), checks plan.prefill[i].checks on that memory, then sets its
// protection. The stub's own step, without allocation; false with errno
// set on failure, EBADMSG and *bad_check the index of the check for a
// checksum mismatch (-1 otherwise).
bool prefill_one(const StubPlan &plan, size_t i, int *bad_check = nullptr);

// Runs in the child after clone3(): never returns.
[[noreturn]] void run_stub(const StubPlan &plan);

} // namespace amber
