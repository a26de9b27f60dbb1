// SPDX-License-Identifier: GPL-2.0
// The amber image: meta.img (header, section table, sections, each XXH64
// checksummed) and pages.img (written by the kernel, indexed by the PAGEMAP
// section). See Documentation/image-format.md and include/uapi/linux/amber.h.
//
// Everything read from an image is untrusted: load_checkpoint() verifies
// every checksum and every page run before returning anything.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <linux/amber.h>

#include "common/attr.h"
#include "common/result.h"

namespace amber {

inline constexpr const char *kMetaFile = "meta.img";
inline constexpr const char *kPagesFile = "pages.img";

// Name of a section type for messages ("INFO", "CORE", "VMAS", ...).
std::string section_name(uint32_t type);

struct InfoSection {
	uint32_t number = 0;
	uint32_t parent = 0;
	uint64_t time_ns = 0;		// CLOCK_REALTIME at capture
	uint64_t stopped_ns = 0;
	uint64_t pages_bytes = 0;
	std::string tool_version;
	uint32_t pid = 0;
	std::string hostname;
	uint64_t track_id = 0;		// AMBER_A_TRACK_ID, 0: not tracked
	uint64_t pages_nr = 0;		// pages with data in this link
	uint64_t parent_pages_nr = 0;	// pages taken from the parent
	std::string full_reason;	// why full although a parent was asked
	std::string kernel;		// uname -r of the kernel it ran on ("" in older images)
	uint64_t vdso_xxh64 = 0;	// its vDSO's bytes (0: not recorded)
	// The pages file is pages.img.zst, decompressing to this many bytes
	// (0: pages.img, uncompressed). Version 6 on.
	uint64_t pages_zstd = 0;
};

struct Rlimit {
	uint32_t resource = 0;
	uint64_t cur = 0;
	uint64_t max = 0;
};

// The registrations a thread made with the kernel: rseq, the robust futex
// list, clear_child_tid, the sigaltstack. The leader's are in TASK, every
// other thread's in its THREAD (one amber_fill_regn() in the kernel).
struct Registrations {
	uint64_t rseq = 0;
	uint32_t rseq_len = 0;
	uint32_t rseq_sig = 0;
	uint64_t clear_child_tid = 0;
	uint64_t robust_list = 0;
	uint64_t robust_list_len = 0;
	uint64_t sas_sp = 0;
	uint64_t sas_size = 0;
	uint32_t sas_flags = 0;
};

struct TaskInfo : Registrations {
	uint32_t pid = 0;
	std::string comm;
	uint32_t uid = 0, euid = 0, suid = 0, fsuid = 0;
	uint32_t gid = 0, egid = 0, sgid = 0, fsgid = 0;
	std::vector<uint32_t> groups;
	uint64_t cap_inh = 0, cap_prm = 0, cap_eff = 0, cap_bnd = 0, cap_amb = 0;
	uint32_t umask = 0;
	uint32_t personality = 0;
	std::string cwd;
	std::vector<Rlimit> rlimits;
	std::string exe;
	uint64_t start_time_ns = 0;
};

struct MmInfo {
	uint64_t start_code = 0, end_code = 0, start_data = 0, end_data = 0;
	uint64_t start_brk = 0, brk = 0, start_stack = 0;
	uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
	std::vector<uint64_t> auxv;	// u64 pairs, ends with AT_NULL
	uint64_t vdso = 0;
};

struct Vma {
	uint64_t start = 0, end = 0;
	uint64_t pgoff = 0;
	uint32_t prot = 0;		// PROT_*
	uint32_t flags = 0;		// enum amber_vma_flags
	std::string path;		// empty for anonymous memory
	uint64_t dev = 0, ino = 0;
	uint64_t file_size = 0;
	uint64_t pages = 0;		// pages of this VMA in the pages file
};

// Issue 14: one registration of an epoll's interest list (AMBER_FD_EPOLL_TFD).
struct EpollTfd {
	uint32_t tfd = 0;		// the fd number it was added under
	uint32_t events = 0;		// EPOLL* mask, EPOLLET/ONESHOT/... included
	uint64_t data = 0;
	uint64_t file_id = 0;		// the target's FdInfo::file_id
};

// Issue 14: one watch of an inotify (AMBER_FD_INOTIFY_WATCH).
struct InotifyWatch {
	uint32_t wd = 0;		// watch descriptor, 1..AMBER_INOTIFY_MAX_WD
	uint32_t mask = 0;		// IN_*, IN_ONESHOT and IN_EXCL_UNLINK included
	uint64_t dev = 0, ino = 0;	// the watched inode
	uint32_t handle_type = 0;	// its file handle
	Bytes handle;
};

// A TCP or UDP socket over IPv4/IPv6 (AMBER_FD_INET, enum amber_inet_attr).
struct InetInfo {
	uint32_t proto = 0;		// IPPROTO_TCP or IPPROTO_UDP
	uint32_t state = 0;		// TCP_* (TCP_ESTABLISHED: connected)
	Bytes src, dst;			// 4 or 16 bytes, network order
	uint32_t sport = 0, dport = 0;	// host order
	bool bound_addr = false;
	uint32_t backlog = 0;
	bool reuseaddr = false, reuseport = false, v6only = false;
	uint32_t mark = 0, priority = 0;
	uint32_t sndbuf = 0, rcvbuf = 0;	// 0: not set by the program
	bool linger_on = false;
	uint32_t linger = 0;
	bool keepalive = false;
	uint32_t keepidle = 0, keepintvl = 0, keepcnt = 0;
	bool nodelay = false, cork = false;
	uint32_t user_timeout = 0;
	bool conn = false;		// SND_UNA present: a TCP connection's state
	uint32_t snd_una = 0, snd_nxt = 0, write_seq = 0, rcv_nxt = 0, copied_seq = 0;
	uint32_t mss = 0, snd_wscale = 0, rcv_wscale = 0;
	bool sack = false, wscale_ok = false, tstamp = false;
	uint32_t timestamp = 0;
	uint32_t snd_wl1 = 0, snd_wnd = 0, max_window = 0, rcv_wnd = 0, rcv_wup = 0;
	bool held = false;
	std::string congestion;		// TCP_CONGESTION, TCP only
	// TCP listeners: the connections waiting in the accept queue
	// (AMBER_INET_CHILD), in accept() order, each ESTABLISHED with its
	// connection state; their bytes are QUEUE chunks with EMBRYO = place.
	std::vector<InetInfo> children;
};

// FdInfo::num of a file in flight in a queued message (QueueChunk::files).
constexpr uint32_t kFlightFd = UINT32_MAX;
// Most files one UNIX message passes (the kernel's SCM_MAX_FD).
constexpr size_t kFlightPerMsgMax = 253;

struct FdInfo {
	uint32_t num = 0;
	uint32_t type = 0;		// enum amber_fd_type
	uint32_t flags = 0;		// O_*
	uint64_t pos = 0;
	bool cloexec = false;
	std::string path;
	uint64_t dev = 0, ino = 0, rdev = 0;
	uint32_t mode = 0;
	uint64_t size = 0;
	bool tty = false;
	// Issue 5 (see amber.h): 0 / absent when the kernel did not send it.
	uint64_t file_id = 0;		// open file description, per checkpoint
	uint32_t sock_family = 0;	// AF_*, sockets only
	uint32_t sock_type = 0;		// SOCK_*, sockets only
	uint64_t peer_ino = 0;		// connected UNIX peer's inode, 0: none
	uint32_t shutdown = 0;		// sk_shutdown: 1 RCV, 2 SEND
	uint32_t pipe_size = 0;		// pipe/FIFO capacity in bytes
	// Issue 13: nothing anywhere read / wrote the pipe at capture.
	bool pipe_no_readers = false;
	bool pipe_no_writers = false;
	// Issue 13: an eventfd (AMBER_FD_EVENTFD_COUNT present).
	bool eventfd = false;
	uint64_t eventfd_count = 0;
	bool eventfd_sem = false;	// EFD_SEMAPHORE
	// Issue 14: an epoll (AMBER_FD_EPOLL) and its interest list.
	bool epoll = false;
	std::vector<EpollTfd> epoll_tfds{};
	// Issue 14: a timerfd (AMBER_FD_TIMERFD_CLOCKID present).
	bool timerfd = false;
	uint32_t timerfd_clockid = 0;
	uint32_t timerfd_flags = 0;	// TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET
	uint64_t timerfd_ticks = 0;	// expirations not read
	uint64_t timerfd_value = 0;	// ns: left, or absolute (ABSTIME); 0 = disarmed
	uint64_t timerfd_interval = 0;	// ns
	// Issue 14: a signalfd (AMBER_FD_SIGNALFD_MASK present).
	bool signalfd = false;
	uint64_t signalfd_mask = 0;	// bit N-1: signal N
	// Issue 14: an inotify (AMBER_FD_INOTIFY) and its watches.
	bool inotify = false;
	std::vector<InotifyWatch> inotify_watches{};
	// Issue 14: UNIX socket names (AMBER_FD_UNIX_*), empty / false when
	// unnamed or from an older module.
	Bytes unix_name{};		// sun_path bytes; abstract: starts with NUL
	bool unix_accepted = false;	// the name is its listener's (accept())
	std::string unix_path{};	// bound file's absolute path
	uint32_t unix_file_mode = 0, unix_file_uid = 0, unix_file_gid = 0;
	bool unix_listening = false;	// AMBER_FD_UNIX_BACKLOG present
	uint32_t unix_backlog = 0;
	bool unix_no_peer = false;	// never connected
	Bytes unix_peer_name{};		// the connected peer's name
	// Listeners: the client inode (0: closed) of each connection waiting
	// in the backlog, in accept() order.
	std::vector<uint64_t> unix_embryos{};
	// Issue 14: socket options (AMBER_FD_SOCK_RCVBUF present: all of them).
	bool sock_opts = false;
	uint32_t sock_rcvbuf = 0, sock_sndbuf = 0, sock_userlocks = 0, sock_rcvlowat = 0;
	uint64_t sock_rcvtimeo = 0, sock_sndtimeo = 0;	// us, 0 = none
	bool sock_passcred = false, sock_passsec = false;
	// Issue 14: a TCP/UDP socket (AMBER_FD_INET present).
	bool is_inet = false;
	InetInfo inet{};
};

// Registers indexed by enum amber_reg (index 0 unused).
using Regs = std::array<uint64_t, AMBER_REG_MAX + 1>;

struct SigAction {
	uint32_t signo = 0;
	uint64_t handler = 0;		// SIG_DFL 0, SIG_IGN 1, or address
	uint64_t flags = 0;
	uint64_t restorer = 0;
	uint64_t mask = 0;
};

struct SigPending {
	Bytes siginfo;			// 128-byte siginfo_t
	bool shared = false;		// process-wide queue
};

struct Signals {
	uint64_t blocked = 0;
	std::vector<SigAction> actions;
	std::vector<SigPending> pending;
};

// An interval timer (setitimer): ns left (0: disarmed) and interval.
struct ITimer {
	uint64_t value = 0;
	uint64_t interval = 0;
};

// A POSIX timer (AMBER_TIMERS_TIMER).
struct PosixTimer {
	uint32_t id = 0;
	uint32_t clock = 0;		// clockid_t
	uint32_t notify = 0;		// sigev_notify
	uint32_t signo = 0;
	uint64_t sigval = 0;
	uint32_t tid = 0;		// SIGEV_THREAD_ID target
	uint64_t value = 0;		// ns left, 0: disarmed
	uint64_t interval = 0;
	uint32_t overrun = 0;		// timer_getoverrun(), informative
};

// AMBER_A_TIMERS (absent: all zero, no POSIX timer).
struct Timers {
	ITimer real, virt, prof;
	uint32_t next_id = 0;
	std::vector<PosixTimer> timers;	// ascending id
};

// A thread other than the thread group leader (AMBER_A_THREAD).
struct ThreadInfo : Registrations {
	uint32_t tid = 0;
	Regs regs{};
	Bytes fpu;			// XSAVE area, ptrace (UABI) layout
	uint64_t blocked = 0;
	std::vector<SigPending> pending;	// thread-directed (never shared)
	std::string comm;
	// The whole encoded AMBER_A_THREAD attribute (header included,
	// unpadded), copied verbatim into AMBER_CMD_RESTORE's AMBER_A_THREADS.
	Bytes raw;
};

// A process's place in a tree checkpoint (AMBER_A_PROC).
struct ProcInfo {
	uint32_t pid = 0;
	uint32_t ppid = 0;
	uint32_t pgid = 0;
	uint32_t sid = 0;
	bool zombie = false;
	uint32_t exit_code = 0;		// wait status, zombies only
	uint32_t nr_threads = 0;	// leader included, 0 for zombies
	// The first process of the tree sharing its fd table (CLONE_FILES)
	// / its cwd, root and umask (CLONE_FS) with this one; 0: none.
	uint32_t files_with = 0;
	uint32_t fs_with = 0;
};

// One chunk of bytes queued in a pipe, FIFO or UNIX socket (AMBER_A_QUEUE).
struct QueueChunk {
	uint64_t ino = 0;
	Bytes data;
	bool eor = false;		// ends a datagram / seqpacket record
	uint32_t embryo = 0;		// N: of the N-th connection waiting on listener ino
	bool send = false;		// a TCP socket's send queue (else receive)
	// UNIX sockets, on a message's EOR chunk: the credentials it carries
	// (SCM_CREDENTIALS); cred_pid 0: none.
	uint32_t cred_pid = 0, cred_uid = 0, cred_gid = 0;
	// UNIX sockets, on a message's EOR chunk: the files it passes
	// (SCM_RIGHTS), in order; each has num kFlightFd and a file_id.
	std::vector<FdInfo> files;
};

// A regular file that was open but deleted at the checkpoint, with its
// content (section GHOSTS, AMBER_A_GHOST chunks).
struct Ghost {
	uint64_t dev = 0, ino = 0;
	uint32_t mode = 0;		// st_mode
	std::string path;		// without " (deleted)"
	Bytes data;
};

// The decompressed pages file of a compressed image (image/compress.h).
struct PagesCache;

// A loaded, verified checkpoint.
struct Checkpoint {
	uint32_t number = 0;
	std::string dir;		// DIR/N
	std::string meta_path;		// DIR/N/meta.img
	std::string pages_path;		// DIR/N/pages.img, or pages.img.zst (info.pages_zstd)
	// Compressed images: their pages decompressed by the first
	// open_pages(), shared by every copy of this Checkpoint.
	std::shared_ptr<PagesCache> pages_cache;

	// Raw bytes of each section (attribute streams, except PAGEMAP).
	Bytes info_raw, core_raw, vmas_raw, fds_raw;

	// Raw encoded top-level attributes of the CORE section (header
	// included, unpadded), to be copied verbatim into AMBER_CMD_RESTORE.
	Bytes task_attr, mm_attr, regs_attr, fpu_attr, signals_attr;
	Bytes timers_attr;		// empty: no AMBER_A_TIMERS

	InfoSection info;
	TaskInfo task;
	MmInfo mm;
	Regs regs{};
	Bytes fpu;			// XSAVE area, ptrace (UABI) layout
	Signals signals;
	Timers timers;
	std::vector<Vma> vmas;
	std::vector<FdInfo> fds;

	uint32_t page_size = 0;		// from pages.img's header
	std::vector<amber_pagemap_entry> pagemap;
	// Issue 5. Sections absent in older images leave these empty.
	Bytes threads_raw, tree_raw, queues_raw;
	std::vector<ThreadInfo> threads;	// not the leader, ascending TID
	std::vector<ProcInfo> tree;		// root's image of a tree checkpoint only
	std::vector<QueueChunk> queues;
	Bytes ghosts_raw;			// section GHOSTS (issue 13)
	std::vector<Ghost> ghosts;
	bool is_tree() const { return !tree.empty(); }
};

// Where process pid's meta.img and pages.img are in checkpoint directory
// ckpt_dir (DIR/N): the root's in DIR/N itself, every other live process's
// in DIR/N/proc/PID.
inline std::string process_dir(const std::string &ckpt_dir, uint32_t pid, uint32_t root_pid)
{
	return pid == root_pid ? ckpt_dir : ckpt_dir + "/proc/" + std::to_string(pid);
}

// What checkpoint writes into meta.img.
struct MetaSections {
	Bytes info;	// attribute stream: enum amber_info_attr
	Bytes core;	// AMBER_A_TASK, MM, REGS, FPU, SIGNALS attributes
	Bytes vmas;	// AMBER_A_VMA attributes
	Bytes fds;	// AMBER_A_FD attributes
	std::vector<amber_pagemap_entry> pagemap;
	Bytes threads;	// AMBER_A_THREAD attributes; no section when empty
	Bytes tree;	// AMBER_A_PROC attributes; no section when empty
	Bytes queues;	// AMBER_A_QUEUE attributes; no section when empty
	Bytes ghosts;	// AMBER_A_GHOST attributes; no section when empty
};

// Serializes meta.img (header, section table, 8-byte aligned sections).
Bytes build_meta(const MetaSections &s);
// The same for any version and sections, in the order given (the tests
// build old and damaged images with it).
Bytes encode_meta(uint32_t version, const std::vector<std::pair<uint32_t, ByteView>> &secs);

// Encodes an INFO section.
Bytes encode_info(const InfoSection &info);

// Scans a pages file: checks its header, walks the runs and hashes each
// run's data. Fails on a truncated or malformed file (bad flags, runs out of
// order or overlapping). page_size receives the header's page size.
// AMBER_RUN_F_PARENT runs have no data: their entry has the run's offset
// (just after its header), the flags copied and xxh64 0.
Result<std::vector<amber_pagemap_entry>> scan_pages(int fd, uint32_t *page_size);

// Checks what a run of a pages file says on its own and against the
// previous one (prev, or nullptr); returns the bytes of data that follow its
// header (0 for a PARENT run).
Result<uint64_t> check_run(uint64_t addr, uint32_t nr_pages, uint32_t flags,
			   const amber_pagemap_entry *prev, uint32_t page_size);

// Pages with data and pages in AMBER_RUN_F_PARENT runs of a pagemap.
struct PageCounts {
	uint64_t data = 0;
	uint64_t parent = 0;
};
PageCounts count_pages(const std::vector<amber_pagemap_entry> &map);

// Parsers for attribute streams (untrusted input). Errors name the part.
Result<InfoSection> parse_info(ByteView attrs);
Result<TaskInfo> parse_task(ByteView nest_payload);
Result<MmInfo> parse_mm(ByteView nest_payload);
Result<Regs> parse_regs(ByteView nest_payload);
Result<Signals> parse_signals(ByteView nest_payload);
Result<Timers> parse_timers(ByteView nest_payload);
Result<Vma> parse_vma(ByteView nest_payload);
Result<FdInfo> parse_fd(ByteView nest_payload);
// A stream of AMBER_A_VMA / AMBER_A_FD attributes.
Result<std::vector<Vma>> parse_vmas(ByteView attrs);
Result<std::vector<FdInfo>> parse_fds(ByteView attrs);
// AMBER_A_THREAD payload (raw is left empty), AMBER_A_PROC payload,
// AMBER_A_QUEUE payload. Errors name the part ("thread 1234: ...").
Result<ThreadInfo> parse_thread(ByteView nest_payload);
Result<ProcInfo> parse_proc(ByteView nest_payload);
Result<QueueChunk> parse_queue(ByteView nest_payload);
// Streams: THREADS section (AMBER_A_THREAD attributes; raw filled; TIDs
// ascending, unique, none equal to leader_pid), TREE section (AMBER_A_PROC
// attributes; root first with root_pid, unique pids, each parent listed
// before its children, zombies without threads), QUEUES section
// (AMBER_A_QUEUE attributes; chunk size at most AMBER_QUEUE_CHUNK).
Result<std::vector<ThreadInfo>> parse_threads(ByteView attrs, uint32_t leader_pid);
Result<std::vector<ProcInfo>> parse_tree(ByteView attrs, uint32_t root_pid);
Result<std::vector<QueueChunk>> parse_queues(ByteView attrs);
// GHOSTS section: each ghost's chunks (at most AMBER_GHOST_CHUNK bytes of
// DATA each) contiguous and adding up to its SIZE; no inode twice.
Bytes encode_ghosts(const std::vector<Ghost> &ghosts);
Result<std::vector<Ghost>> parse_ghosts(ByteView attrs);

// Reads and verifies DIR/N/meta.img and DIR/N/pages.img: header and table
// checksum, every section checksum, every page run (header and XXH64), then
// parses the sections. Errors name the file and part:
// "meta.img: truncated", "meta.img: section VMAS: checksum mismatch",
// "pages.img: run 3 at 0x7f12...: checksum mismatch".
Result<Checkpoint> load_checkpoint_dir(const std::string &ckpt_dir, uint32_t number);

// Verifies only (used by inspect to report damage); same errors.
Result<void> verify_checkpoint_dir(const std::string &ckpt_dir);

// Reads and verifies DIR/N/meta.img only (header, sections, parsing); does
// not open pages.img (page_size stays 0). Cheap: for choosing a parent,
// following chains and listing.
Result<Checkpoint> load_checkpoint_meta(const std::string &ckpt_dir, uint32_t number);

// The page size in the header of a pages file (checked as the loaders do):
// of the file at path, or of c's pages file (open_pages()).
Result<uint32_t> pages_page_size(const std::string &path);
Result<uint32_t> pages_page_size(const Checkpoint &c);

// Verifies c's pages.img against its pagemap as load_checkpoint_dir() does
// (header, every run header, offsets, size, errors named the same way), but
// does not hash the runs marked in unhashed (by pagemap index; it may be
// shorter than the pagemap): whoever reads those checks their XXH64 as it
// reads them (the restore stub, restore/stub.cc). Sets c.page_size.
Result<void> verify_pages_except(Checkpoint &c, const std::vector<bool> &unhashed);

// Where the data of some pages of a chain's newest link is.
struct PageSource {
	uint64_t addr;		// first page
	uint64_t nr_pages;
	uint32_t link;		// index into the links given to resolve_chain()
	uint64_t offset;	// of the first page's data in that link's pages.img
};

// Most links a chain may have (AMBER_A_PAGE_FDS takes as many).
inline constexpr size_t kMaxChainLinks = 64;

// Resolves an incremental chain: links oldest first, the last one is the
// checkpoint to restore; link k's INFO parent must be link k-1's number and
// the oldest link may have no AMBER_RUN_F_PARENT run. Returns every page of
// the last link (data or PARENT runs) with the link and pages.img offset
// holding its data, ascending by addr, adjacent pieces of one link merged.
// A PARENT page of link k comes from link k-1 if k-1 has it in a data run,
// through k-1's own PARENT runs otherwise. Runs of older links the last
// one does not need are ignored. Errors name the checkpoints:
// "checkpoint 3: pages 0x7f0000001000-0x7f0000003000 are missing from its
// parent checkpoint 2".
Result<std::vector<PageSource>> resolve_chain(const std::vector<const Checkpoint *> &links);

// Writes a full pages file (header, then data runs, never longer than
// UINT32_MAX pages, adjacent pages of different links joined in one run) to
// out (positioned at 0) with the data of sources read from the links'
// pages.img, and returns its pagemap. page_size: of the links.
Result<std::vector<amber_pagemap_entry>> write_full_pages(
	int out, const std::vector<const Checkpoint *> &links,
	const std::vector<PageSource> &sources, uint32_t page_size);

// Indexes and hashes a pages file while amber.ko appends to it, from a
// thread reading behind the writer, so that a checkpoint does not read its
// pages again once they are written (the hashing runs on another CPU
// meanwhile). finish(), once the writer is done, gives what scan_pages()
// would give for the finished file. The writer only appends: every byte
// below the file's size is final when the thread reads it.
class PagesFollower {
public:
	// fd: the pages file, open for reading (kept open by the caller).
	explicit PagesFollower(int fd);
	~PagesFollower();
	PagesFollower(const PagesFollower &) = delete;
	PagesFollower &operator=(const PagesFollower &) = delete;

	// The writer is done: hashes what is left and returns the index, or
	// the first error found (the caller then scans the file itself, for
	// scan_pages()'s own answer).
	Result<std::vector<amber_pagemap_entry>> finish(uint32_t *page_size);

private:
	struct State;
	std::unique_ptr<State> s_;
};

// Pages [addr, addr + nr_pages * page size).
struct PageRange {
	uint64_t addr;
	uint64_t nr_pages;
};

// The pages of a new incremental link (map: its pagemap, new_fd: its
// pages.img) that hold the same bytes as its parent's chain (parent: the
// links oldest first, the parent last, pagemaps loaded, page_size set),
// looked for only in the naturally aligned blocks of `unit` bytes that a
// data run covers whole: a huge page that khugepaged collapsed between two
// checkpoints comes back dirty as a whole, although few of its 4 KiB pages
// were written. Compared byte for byte (no checksum: equal means equal).
// Pages the parent chain does not have are never in the answer. Ascending,
// adjacent pages merged.
Result<std::vector<PageRange>> find_unchanged(int new_fd,
					      const std::vector<amber_pagemap_entry> &map,
					      const std::vector<const Checkpoint *> &parent,
					      uint32_t page_size, uint64_t unit);

// Writes to out (an empty file) the pages file in (indexed by map) with the
// pages of `unchanged` (ascending, inside data runs of map) turned into
// AMBER_RUN_F_PARENT runs, and returns the new pagemap (offsets and XXH64
// of the new file).
Result<std::vector<amber_pagemap_entry>> rewrite_unchanged(
	int in, int out, const std::vector<amber_pagemap_entry> &map,
	const std::vector<PageRange> &unchanged, uint32_t page_size);

} // namespace amber
