// SPDX-License-Identifier: GPL-2.0
// Inside the restore: what its files share. restore.cc is the core (one
// process: its helper fds, its request, its stub, the kernel's answer),
// tree.cc runs a tree of stubs, shared.cc groups the open file descriptions
// the tool creates, and one file per resource kind plans and creates that
// kind: files.cc, pipes.cc, unix.cc, mm.cc (VMAs, vDSO, shared and
// prefilled memory), signals.cc, task.cc, threads.cc. The pure planning
// they build on is in plan.h and stub.h (unit-tested); nothing here is
// used outside restore/.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <sys/mman.h>
#include <sys/types.h>

#include "common/result.h"
#include "image/image.h"
#include "image/store.h"
#include "netlink/netlink.h"
#include "restore/plan.h"
#include "restore/restore.h"
#include "restore/stub.h"

namespace amber {

// ---- Shared objects (plan.h), created once by the tool: shared.cc. ----

// A UNIX socket queue whose messages carry credentials or files: sent
// once the processes whose pids they name exist (every stub of the tree is
// Ready), before any of them runs, or, with files only, once every
// description exists (the end of create_shared()) (unix.cc).
struct DeferredQueue {
	UniqueFd from;			// the tool's own copy of the sender
	uint32_t type = 0;
	std::vector<Bytes> msgs;
	std::vector<MsgCred> creds;	// per msgs
	std::vector<std::vector<int>> rights;	// per msgs: SharedFds::files passed
	bool to_name = false;		// sent to `to` (a socket from is not connected to)
	Bytes to;
	std::string name;		// "pid 12: socket:[34]", for messages
};

// Set after the deferred queues: a shutdown() or SO_PASSCRED now would
// refuse them or attach the tool's credentials to the messages without.
struct DeferredSetup {
	UniqueFd fd;
	int shutdown = -1;		// SHUT_*, or -1
	bool passcred = false;
	std::string name;
};

// The descriptions of a SharedPlan, by index.
struct SharedFds {
	std::vector<UniqueFd> files;	// per SharedPlan::files
	std::vector<UniqueFd> shmem;	// per SharedPlan::shmem
	std::vector<std::string> names;	// per files: "pipe:[12]" etc.
	std::vector<DeferredQueue> deferred;
	std::vector<DeferredSetup> deferred_setup;
};

// Sends the deferred queues, then their sockets' late shutdowns and
// SO_PASSCRED; closes the tool's copies.
Result<void> send_deferred(SharedFds &fds);
// Whether a message of a queue carries credentials (SCM_CREDENTIALS).
bool has_creds(const std::vector<MsgCred> &creds);

// One live process's pages, for filling shared memory objects.
struct PageInput {
	std::string name;				// "pid 12"
	const Checkpoint *ckpt = nullptr;
	const std::vector<Checkpoint> *chain = nullptr;
	const std::vector<PageSource> *sources = nullptr;
};

// fcntl(F_SETFL) of the status flags in flags; errors name name.
Result<void> set_fl(int fd, int flags, const std::string &name);
// Writes all of data without blocking (a full pipe or socket is an error).
Result<void> write_queue(int fd, ByteView data, bool sock, const std::string &name);
// Every description of sp: files, pipes, sockets, then shared memory
// filled from procs' pages.
Result<SharedFds> create_shared(const SharedPlan &sp, const std::vector<PageInput> &procs);
// The path of each description ("pipe:[12]", ...), for plan_fds().
std::vector<std::string> shared_names(const SharedPlan &sp);

// While plan_shared() runs: what each kind keeps by inode.
struct InoUse {
	bool read = false, write = false;
	bool above_stdio = false;	// some fd > 2 uses it
	// Pipes: at capture nothing anywhere read / wrote it (an end the
	// checkpoint lacks was closed, not held outside).
	bool no_readers = false, no_writers = false;
};
struct SharedBuild {
	SharedPlan sp;
	std::map<uint64_t, InoUse> pipe_use, sock_use;
	std::map<uint64_t, int> pipe_by_ino;			// -> sp.pipes
	std::map<uint64_t, int> sock_file;			// socket ino -> sp.files
	std::map<uint64_t, std::pair<int, int>> sock_side;	// ino -> (sp.sockets, side)
	std::map<uint64_t, Bytes> partial;			// unterminated socket message
	std::map<std::pair<int, int>, Bytes> stream_part;	// (sp.sockets, side) -> unended bytes
	std::map<std::pair<uint64_t, uint32_t>, int> embryo_sock;	// (listener ino, N) -> sp.sockets
	std::map<std::pair<uint64_t, uint64_t>, int> ghost_by_ino;	// (dev, ino) -> ghosts
	std::map<uint64_t, int> outside_fd;			// file id -> fd (stdio outside)
	std::map<uint64_t, int> inet_by_ino;			// -> sp.inets
	std::map<uint64_t, int> file_by_id;			// file id -> sp.files
};

// ---- TCP and UDP sockets: inet.cc. ----

// Description idx (s) of TCP/UDP socket f; refuses what cannot be rebuilt.
Result<void> plan_inet(SharedBuild &b, const FdInfo &f, int idx, const std::string &name,
		       SharedFile &s);
// Appends the chunk to its TCP socket's receive or send queue; false if it
// is no inet socket's.
bool queue_inet(SharedBuild &b, const QueueChunk &q);
// Each connection's queues match its sequence numbers.
Result<void> check_inet_queues(const SharedBuild &b);
// Rebuilds every socket, then releases the connections the checkpoint held.
Result<void> create_inets(const SharedPlan &sp, SharedFds &out);

// ---- Regular files, directories, devices: files.cc. ----

// How a file, directory or device is opened again by path: its saved
// flags but O_CREAT, O_TRUNC, O_EXCL and O_CLOEXEC, O_NOCTTY for a device,
// and for a regular file the offset. Refusals carry errno err.
struct Reopen {
	int flags = 0;
	bool seek = false;
	off_t pos = 0;
};
Result<Reopen> plan_reopen(const FdInfo &f, const std::string &name, int err);

// A description opened by path (SharedKind::File); name: "pid 12: fd 5: PATH".
Result<void> plan_file(const FdInfo &f, const std::string &name, SharedFile &s);
// The ghost of deleted file f (saved by one of procs' images): its index
// in b.sp.ghosts; refused when no image holds it.
Result<int> plan_ghost(SharedBuild &b, const std::vector<ProcImage> &procs, const FdInfo &f,
		       const std::string &name);
// Opens every File description: ghosts are recreated in their directory
// first (at their old name when it is free), opened, then unlinked.
Result<void> create_files(const SharedPlan &sp, SharedFds &out);
// Every file the image needs, checked before anything is created. A
// deleted cwd is not a file it needs: GhostDirs recreates it.
Result<void> check_files(const Checkpoint &c, const std::vector<StubFd> &fds);

// Deleted working directories ("ghost" directories): a deleted directory
// holds nothing but its being empty, so restore makes an empty directory at
// its old path (and the parents that are missing) for the stubs to chdir
// into, and removes them again before the processes run: their cwd is then
// an empty deleted directory of the same name, as at the checkpoint. When
// that path cannot be made (it exists again, a read-only parent, ...) the
// directory is made in a private one (mkdtemp() under /tmp) instead.
class GhostDirs {
public:
	GhostDirs() = default;
	GhostDirs(const GhostDirs &) = delete;
	GhostDirs &operator=(const GhostDirs &) = delete;
	~GhostDirs() { remove(); }

	// deleted: a cwd as the kernel reported it ("/x/y (deleted)"). Returns
	// the directory to chdir into (one per distinct path).
	Result<std::string> add(const std::string &deleted);
	// Removes every directory made, deepest first (idempotent).
	void remove();

private:
	std::map<std::string, std::string> by_path_;	// deleted path -> made
	std::vector<std::string> made_;			// in creation order
};

// ---- Pipes and FIFOs: pipes.cc. ----

void note_pipe_use(SharedBuild &b, const FdInfo &f);
// An fd 0-2 on a pipe of which the checkpoint holds only one direction,
// only on fds 0-2, and whose other direction was still open somewhere at
// capture: stdio to the outside, inherited. (When nothing held the other
// end, e.g. a reader whose writer exited, the pipe is the checkpoint's own.)
bool pipe_is_outside(const SharedBuild &b, const FdInfo &f);
// Description idx (s) of pipe f.ino.
void plan_pipe(SharedBuild &b, const FdInfo &f, int idx, SharedFile &s);
// Appends the chunk to its pipe's queue; false if it is no pipe's.
bool queue_pipe(SharedBuild &b, const QueueChunk &q);
Result<void> create_pipes(const SharedPlan &sp, SharedFds &out);

// ---- UNIX sockets: unix.cc. ----

// inos: every socket inode of the checkpoint.
void note_socket_use(SharedBuild &b, const FdInfo &f, const std::set<uint64_t> &inos);
// An fd 0-2 on a socket whose peer is not in the checkpoint, only on fds
// 0-2: stdio to the outside, inherited.
bool socket_is_outside(const SharedBuild &b, const FdInfo &f);
// Description idx of socket f.ino: refuses what cannot be recreated.
Result<void> plan_socket(SharedBuild &b, const FdInfo &f, int idx, const std::string &name);
// Socketpairs: both sides when both are in the checkpoint.
Result<void> pair_sockets(SharedBuild &b, const std::vector<ProcImage> &procs);
// Appends the chunk to its socket's queue; false if it is no socket's.
bool queue_socket(SharedBuild &b, const QueueChunk &q);
// Every datagram / record ended; a stream's unended bytes become its one
// message.
Result<void> check_socket_queues(SharedBuild &b);
Result<void> create_sockets(const SharedPlan &sp, SharedFds &out);

// ---- eventfd: eventfd.cc. ----

// Description s of eventfd f: its count and mode.
void plan_eventfd(const FdInfo &f, SharedFile &s);
// eventfd(), then the count written in, O_NONBLOCK set.
Result<void> create_eventfds(const SharedPlan &sp, SharedFds &out);

// ---- epoll: epoll.cc. ----

// Description s of epoll f: its interest list, targets not yet resolved.
void plan_epoll(const FdInfo &f, SharedFile &s);
// Resolves every registration's target to a description (or stdio from
// outside); refuses one whose file the restore does not create.
Result<void> plan_epoll_targets(SharedBuild &b);
// epoll_create1(), then every registration added again under its fd
// number, inner epolls before the epolls that watch them; needs every other
// description created.
Result<void> create_epolls(const SharedPlan &sp, SharedFds &out);
// ---- timerfd: timerfd.cc. ----

// Description s of timerfd f: clock, settime flags, timer, unread ticks.
// Refuses an *_ALARM clock without CAP_WAKE_ALARM, and a clock or flags
// timerfd_create()/timerfd_settime() would refuse (name: "pid 12: fd 5").
Result<void> plan_timerfd(const FdInfo &f, const std::string &name, SharedFile &s);
// timerfd_create(), timerfd_settime() (a relative timer counts from now),
// TFD_IOC_SET_TICKS, O_NONBLOCK set.
Result<void> create_timerfds(const SharedPlan &sp, SharedFds &out);

// ---- signalfd: signalfd.cc. ----

// Description s of signalfd f: its mask.
void plan_signalfd(const FdInfo &f, SharedFile &s);
// signalfd(-1, mask), O_NONBLOCK set.
Result<void> create_signalfds(const SharedPlan &sp, SharedFds &out);

// ---- inotify: inotify.cc. ----

// Description s of inotify f: its watches. Refuses (name: "pid 12: fd 5")
// a watch whose inode cannot be opened by its file handle here, or is
// deleted.
Result<void> plan_inotify(const FdInfo &f, const std::string &name, SharedFile &s);
// inotify_init1(), every watch added again under its descriptor, O_NONBLOCK
// set.
Result<void> create_inotifies(const SharedPlan &sp, SharedFds &out);

// ---- Memory: mm.cc. ----

// SHMEM VMAs grouped by dev/ino (tree restores).
void plan_shmem(SharedPlan &sp, const std::vector<ProcImage> &procs);
Result<void> create_shmem(const SharedPlan &sp, const std::vector<PageInput> &procs,
			  SharedFds &out);

// Anonymous memory of the tool that the stubs inherit: the parked threads'
// stack (they never use it, but clone3() gets one), the prefill scratch.
struct AnonMapping {
	void *addr = MAP_FAILED;
	size_t size = 0;
	AnonMapping() = default;
	AnonMapping(const AnonMapping &) = delete;
	AnonMapping &operator=(const AnonMapping &) = delete;
	~AnonMapping()
	{
		if (addr != MAP_FAILED)
			munmap(addr, size);
	}
};

using ThreadStack = AnonMapping;

// shared: MAP_SHARED, so that the stubs forked from us share it.
Result<void> map_anon(AnonMapping &m, size_t size, const std::string &what, bool shared = false);

// PROT_NONE placeholders over the ranges the stubs prefill: no mapping of
// the tool can land there before the stubs exist, and a stub's MAP_FIXED
// replaces only a placeholder or what its parent's stub prefilled.
struct Reservation {
	std::vector<Range> ranges;
	Reservation() = default;
	Reservation(const Reservation &) = delete;
	Reservation &operator=(const Reservation &) = delete;
	~Reservation() { clear(); }
	void clear()
	{
		for (const Range &r : ranges)
			munmap(reinterpret_cast<void *>(r.start), r.size());
		ranges.clear();
	}
};

// Which VMAs each process of a tree prefills (plan_prefill()), their
// ranges reserved: vmas[i] process i's (nullptr for a zombie), parent[i]
// its parent's index. A range the tool cannot reserve is left out (its
// pages are then copied). all: see plan_prefill().
Result<std::vector<std::vector<PrefillPick>>> reserve_prefill(
	const std::vector<const std::vector<Vma> *> &vmas, const std::vector<int> &parent,
	Reservation &res, bool all = false);

// Whether range r of a child, the exact range of a VMA its parent prefills,
// is worth inheriting copy-on-write: at least half of a sample of its pages
// (32, evenly spread, read from both images) are equal in both. Memory a
// child allocated after the fork at its parent's address, with contents of
// its own, is filled afresh instead of inherited and rewritten page by
// page (and then its parent need not fill it before creating the child).
bool mostly_shared(const PageInput &parent, const PageInput &child, Range r);

// The runs of c (the newest link of a chain, page_size set) that lie wholly
// in one of the picked VMAs, by pick (picks in address order): the stub
// checks their XXH64 on the memory it filled. *unhashed marks them by
// pagemap index, for verify_pages_except().
std::vector<std::vector<StubPageCheck>> plan_page_checks(const Checkpoint &c,
							 const std::vector<PrefillPick> &picks,
							 std::vector<bool> *unhashed);

// The stub's prefill of c's picked VMAs: their page data in the resolved
// chain (link_fds[k]: the fd of link k's pages file) and their checks from
// plan_page_checks().
std::vector<StubPrefill> plan_stub_prefill(const Checkpoint &c,
					   const std::vector<PageSource> &sources,
					   const std::vector<PrefillPick> &picks,
					   const std::vector<int> &link_fds,
					   std::vector<std::vector<StubPageCheck>> checks);

// ---- Signals: signals.cc; the task: task.cc; threads: threads.cc. ----

// Signal state the stub installs with raw system calls.
Result<void> plan_signals(const Checkpoint &c, StubPlan &p);
// Interval and POSIX timers the stub recreates (timers.cc).
Result<void> plan_timers(const Checkpoint &c, StubPlan &p);
// cwd, umask, comm, rlimits.
void plan_task(const Checkpoint &c, StubPlan &p);
// "" if it cannot be read.
std::string read_comm(pid_t pid);
// "pid 42 is in use (by comm 'x')" unless free.
Result<void> check_pid_free(pid_t pid);
// Every TID of a process must be free too.
Result<void> check_threads(const Checkpoint &c, pid_t pid);
Result<void> map_thread_stack(ThreadStack &s);

// ---- One process's stub: restore.cc. ----

// Files the stub hands to the kernel.
struct Helpers {
	std::vector<UniqueFd> pages;	// oldest first
	UniqueFd exe;
	std::map<std::pair<std::string, bool>, UniqueFd> files;	// (path, rw)
};

struct Prepared {
	StubPlan plan;
	Helpers helpers;
	std::map<int, std::string> fd_names;	// stub's helper fd -> what it is
	uint32_t seq = 0;
};

// What the second half needs besides the image.
struct ProcFds {
	int report_w = -1;
	int max_open = 2;			// highest fd open in the tool
	const SharedFds *shared = nullptr;
	const std::map<int, int> *vma_shmem = nullptr;	// VMA -> shmem
	const std::vector<PrefillPick> *prefill = nullptr;
	bool hold = false;
	bool lazy = false;		// AMBER_RESTORE_F_LAZY (lazy.h)
	bool fault_refused = false;	// AMBER_FAULT (fault_pid())
};

// The highest fd open in the tool.
Result<int> max_open_fd();
// The stub places fds up to about max_fd: raise our soft RLIMIT_NOFILE.
void raise_nofile(int max_fd);
// First half: the plan's content and the files it needs (opened now).
Result<Prepared> prepare_open(const Checkpoint &c, const std::vector<Checkpoint> &chain,
			      std::vector<StubFd> fds, const ThreadStack &stack);
// AMBER_FAULT=what:PID, for the tests: PID, else 0.
pid_t fault_pid(const char *what);
// Second half, once every fd of the tool is open: helper moves, the fds to
// close and the request.
Result<void> prepare_request(Prepared &pr, const Checkpoint &c,
			     const std::vector<std::string> &pages, NetlinkClient &nl,
			     const ProcFds &in);
// clone3(set_tid = {pid}) running plan in the child.
Result<std::pair<pid_t, UniqueFd>> spawn_stub(pid_t pid, const StubPlan &plan);
bool readable_now(int fd);
// "amber.ko refused the restore: MSG [fd 16 is ...] [pages file 1 is ...]".
Error kernel_error(const Error &e, const std::map<int, std::string> &names,
		   const std::vector<uint32_t> &links);

// ---- Trees: tree.cc. ----

// root: the root's meta.img only; every chain is loaded and verified here.
Result<RestoredProcess> restore_tree(const RestoreRequest &req, const Store &store,
				     const Checkpoint &root);

} // namespace amber
