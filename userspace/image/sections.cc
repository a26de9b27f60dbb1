// SPDX-License-Identifier: GPL-2.0
// The attribute sections of meta.img and the nests of the CHECKPOINT reply
// (image.h): one table per struct (fields.h) for the plain values, the
// parser next to it for what has more to it. All input is untrusted.
#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <set>
#include <unordered_set>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>

#include <linux/amber.h>

#include "common/names.h"
#include "image/fields.h"
#include "image/image.h"

namespace amber {

namespace {

// PID_MAX_LIMIT: no pid or tid is larger.
constexpr uint32_t kPidMax = 4194304;

bool valid_pid(uint32_t pid)
{
	return pid > 0 && pid <= kPidMax;
}

Error attr_error(const char *what, const Attr &a, const Error &e)
{
	if (e.msg.rfind("attribute ", 0) == 0)
		return Error{e.err, std::string(what) + " " + e.msg};
	return Error{e.err, std::string(what) + " attribute " + std::to_string(a.type) +
				    ": " + e.msg};
}

// The new sections are strict (image-format.md, "Versioning"): an attribute
// this reader does not know is an error, not something to skip.
enum class Unknown { Skip, Refuse };

Error unknown_attr(const char *what, const Attr &a)
{
	return Error{EBADMSG, std::string(what) + ": unknown attribute " + std::to_string(a.type)};
}

// No attribute beyond the table.
Result<bool> no_extra(const Attr &)
{
	return false;
}

// Parses buf into s: the table's attributes, then extra(a) for the others
// (false: it does not know the type either). Errors "WHAT attribute N: ...".
// Returns the attributes, for the checks of what must be present.
template <typename S, typename Extra>
Result<std::vector<Attr>> read_fields(ByteView buf, FieldTable<S> table, S &s, const char *what,
				      Unknown unknown, Extra extra)
{
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		Result<bool> r = read_field(table, a, s);
		if (r && !*r)
			r = extra(a);
		if (!r)
			return tl::unexpected(attr_error(what, a, r.error()));
		if (!*r && unknown == Unknown::Refuse)
			return tl::unexpected(unknown_attr(what, a));
	}
	return attrs;
}

template <typename T, typename F>
Result<std::vector<T>> parse_list(ByteView buf, uint16_t type, const char *what, F parse_one)
{
	std::vector<T> out;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		if (a.type != type)
			continue;
		auto r = parse_one(a.data);
		if (!r)
			return fail(r.error().err, std::string(what) + " " +
						   std::to_string(out.size()) + ": " + r.error().msg);
		out.push_back(std::move(*r));
	}
	return out;
}

// ---- The tables: attribute, member, left out when empty (encoding). ----

constexpr Field<InfoSection> kInfoFields[] = {
	{AMBER_INFO_NUMBER, &InfoSection::number},
	{AMBER_INFO_PARENT, &InfoSection::parent},
	{AMBER_INFO_TIME_NS, &InfoSection::time_ns},
	{AMBER_INFO_STOPPED_NS, &InfoSection::stopped_ns},
	{AMBER_INFO_PAGES_BYTES, &InfoSection::pages_bytes},
	{AMBER_INFO_TOOL_VERSION, &InfoSection::tool_version},
	{AMBER_INFO_PID, &InfoSection::pid},
	{AMBER_INFO_HOSTNAME, &InfoSection::hostname},
	{AMBER_INFO_TRACK_ID, &InfoSection::track_id},
	{AMBER_INFO_PAGES_NR, &InfoSection::pages_nr},
	{AMBER_INFO_PARENT_PAGES_NR, &InfoSection::parent_pages_nr},
	{AMBER_INFO_FULL_REASON, &InfoSection::full_reason, true},
	{AMBER_INFO_KERNEL, &InfoSection::kernel, true},
	{AMBER_INFO_VDSO_XXH64, &InfoSection::vdso_xxh64, true},
	{AMBER_INFO_PAGES_ZSTD, &InfoSection::pages_zstd, true},
};

constexpr Field<Rlimit> kRlimitFields[] = {
	{AMBER_RLIMIT_RESOURCE, &Rlimit::resource},
	{AMBER_RLIMIT_CUR, &Rlimit::cur},
	{AMBER_RLIMIT_MAX, &Rlimit::max},
};

constexpr Field<TaskInfo> kTaskFields[] = {
	{AMBER_TASK_PID, &TaskInfo::pid},
	{AMBER_TASK_COMM, &TaskInfo::comm},
	{AMBER_TASK_UID, &TaskInfo::uid},
	{AMBER_TASK_EUID, &TaskInfo::euid},
	{AMBER_TASK_SUID, &TaskInfo::suid},
	{AMBER_TASK_FSUID, &TaskInfo::fsuid},
	{AMBER_TASK_GID, &TaskInfo::gid},
	{AMBER_TASK_EGID, &TaskInfo::egid},
	{AMBER_TASK_SGID, &TaskInfo::sgid},
	{AMBER_TASK_FSGID, &TaskInfo::fsgid},
	{AMBER_TASK_CAP_INH, &TaskInfo::cap_inh},
	{AMBER_TASK_CAP_PRM, &TaskInfo::cap_prm},
	{AMBER_TASK_CAP_EFF, &TaskInfo::cap_eff},
	{AMBER_TASK_CAP_BND, &TaskInfo::cap_bnd},
	{AMBER_TASK_CAP_AMB, &TaskInfo::cap_amb},
	{AMBER_TASK_UMASK, &TaskInfo::umask},
	{AMBER_TASK_PERSONALITY, &TaskInfo::personality},
	{AMBER_TASK_CWD, &TaskInfo::cwd},
	{AMBER_TASK_RSEQ, &TaskInfo::rseq},
	{AMBER_TASK_RSEQ_LEN, &TaskInfo::rseq_len},
	{AMBER_TASK_RSEQ_SIG, &TaskInfo::rseq_sig},
	{AMBER_TASK_CLEAR_CHILD_TID, &TaskInfo::clear_child_tid},
	{AMBER_TASK_ROBUST_LIST, &TaskInfo::robust_list},
	{AMBER_TASK_ROBUST_LIST_LEN, &TaskInfo::robust_list_len},
	{AMBER_TASK_SAS_SP, &TaskInfo::sas_sp},
	{AMBER_TASK_SAS_SIZE, &TaskInfo::sas_size},
	{AMBER_TASK_SAS_FLAGS, &TaskInfo::sas_flags},
	{AMBER_TASK_EXE, &TaskInfo::exe},
	{AMBER_TASK_START_TIME_NS, &TaskInfo::start_time_ns},
};

constexpr Field<MmInfo> kMmFields[] = {
	{AMBER_MM_START_CODE, &MmInfo::start_code},
	{AMBER_MM_END_CODE, &MmInfo::end_code},
	{AMBER_MM_START_DATA, &MmInfo::start_data},
	{AMBER_MM_END_DATA, &MmInfo::end_data},
	{AMBER_MM_START_BRK, &MmInfo::start_brk},
	{AMBER_MM_BRK, &MmInfo::brk},
	{AMBER_MM_START_STACK, &MmInfo::start_stack},
	{AMBER_MM_ARG_START, &MmInfo::arg_start},
	{AMBER_MM_ARG_END, &MmInfo::arg_end},
	{AMBER_MM_ENV_START, &MmInfo::env_start},
	{AMBER_MM_ENV_END, &MmInfo::env_end},
	{AMBER_MM_VDSO, &MmInfo::vdso},
};

constexpr Field<SigAction> kSigactionFields[] = {
	{AMBER_SIGACTION_SIGNO, &SigAction::signo},
	{AMBER_SIGACTION_HANDLER, &SigAction::handler},
	{AMBER_SIGACTION_FLAGS, &SigAction::flags},
	{AMBER_SIGACTION_RESTORER, &SigAction::restorer},
	{AMBER_SIGACTION_MASK, &SigAction::mask},
};

constexpr Field<Signals> kSignalsFields[] = {
	{AMBER_SIG_BLOCKED, &Signals::blocked},
};

struct ITimerFlat {
	uint64_t real_value = 0, real_interval = 0, virt_value = 0, virt_interval = 0;
	uint64_t prof_value = 0, prof_interval = 0;
	uint32_t next_id = 0;
};

constexpr Field<ITimerFlat> kTimersFields[] = {
	{AMBER_TIMERS_REAL_VALUE, &ITimerFlat::real_value},
	{AMBER_TIMERS_REAL_INTERVAL, &ITimerFlat::real_interval},
	{AMBER_TIMERS_VIRT_VALUE, &ITimerFlat::virt_value},
	{AMBER_TIMERS_VIRT_INTERVAL, &ITimerFlat::virt_interval},
	{AMBER_TIMERS_PROF_VALUE, &ITimerFlat::prof_value},
	{AMBER_TIMERS_PROF_INTERVAL, &ITimerFlat::prof_interval},
	{AMBER_TIMERS_NEXT_ID, &ITimerFlat::next_id},
};

constexpr Field<PosixTimer> kTimerFields[] = {
	{AMBER_TIMER_ID, &PosixTimer::id},
	{AMBER_TIMER_CLOCK, &PosixTimer::clock},
	{AMBER_TIMER_NOTIFY, &PosixTimer::notify},
	{AMBER_TIMER_SIGNO, &PosixTimer::signo},
	{AMBER_TIMER_SIGVAL, &PosixTimer::sigval},
	{AMBER_TIMER_TID, &PosixTimer::tid, true},
	{AMBER_TIMER_VALUE, &PosixTimer::value},
	{AMBER_TIMER_INTERVAL, &PosixTimer::interval},
	{AMBER_TIMER_OVERRUN, &PosixTimer::overrun},
};

constexpr Field<Vma> kVmaFields[] = {
	{AMBER_VMA_START, &Vma::start},
	{AMBER_VMA_END, &Vma::end},
	{AMBER_VMA_PGOFF, &Vma::pgoff},
	{AMBER_VMA_PROT, &Vma::prot},
	{AMBER_VMA_FLAGS, &Vma::flags},
	{AMBER_VMA_PATH, &Vma::path},
	{AMBER_VMA_DEV, &Vma::dev},
	{AMBER_VMA_INO, &Vma::ino},
	{AMBER_VMA_FILE_SIZE, &Vma::file_size},
	{AMBER_VMA_PAGES, &Vma::pages},
};

constexpr Field<FdInfo> kFdFields[] = {
	{AMBER_FD_NUM, &FdInfo::num},
	{AMBER_FD_TYPE, &FdInfo::type},
	{AMBER_FD_FLAGS, &FdInfo::flags},
	{AMBER_FD_POS, &FdInfo::pos},
	{AMBER_FD_CLOEXEC, &FdInfo::cloexec},
	{AMBER_FD_PATH, &FdInfo::path},
	{AMBER_FD_DEV, &FdInfo::dev},
	{AMBER_FD_INO, &FdInfo::ino},
	{AMBER_FD_RDEV, &FdInfo::rdev},
	{AMBER_FD_MODE, &FdInfo::mode},
	{AMBER_FD_SIZE, &FdInfo::size},
	{AMBER_FD_TTY, &FdInfo::tty},
	{AMBER_FD_FILE_ID, &FdInfo::file_id},
	{AMBER_FD_SOCK_FAMILY, &FdInfo::sock_family},
	{AMBER_FD_SOCK_TYPE, &FdInfo::sock_type},
	{AMBER_FD_PEER_INO, &FdInfo::peer_ino},
	{AMBER_FD_SHUTDOWN, &FdInfo::shutdown},
	{AMBER_FD_PIPE_SIZE, &FdInfo::pipe_size},
	{AMBER_FD_PIPE_NO_READERS, &FdInfo::pipe_no_readers},
	{AMBER_FD_PIPE_NO_WRITERS, &FdInfo::pipe_no_writers},
	{AMBER_FD_EVENTFD_COUNT, &FdInfo::eventfd_count},
	{AMBER_FD_EVENTFD_SEMAPHORE, &FdInfo::eventfd_sem},
	{AMBER_FD_TIMERFD_CLOCKID, &FdInfo::timerfd_clockid},
	{AMBER_FD_TIMERFD_SETTIME_FLAGS, &FdInfo::timerfd_flags},
	{AMBER_FD_TIMERFD_TICKS, &FdInfo::timerfd_ticks},
	{AMBER_FD_TIMERFD_VALUE, &FdInfo::timerfd_value},
	{AMBER_FD_TIMERFD_INTERVAL, &FdInfo::timerfd_interval},
	{AMBER_FD_SIGNALFD_MASK, &FdInfo::signalfd_mask},
	{AMBER_FD_EPOLL, &FdInfo::epoll},
	{AMBER_FD_INOTIFY, &FdInfo::inotify},
	{AMBER_FD_UNIX_NAME, &FdInfo::unix_name},
	{AMBER_FD_UNIX_ACCEPTED, &FdInfo::unix_accepted},
	{AMBER_FD_UNIX_PATH, &FdInfo::unix_path},
	{AMBER_FD_UNIX_FILE_MODE, &FdInfo::unix_file_mode},
	{AMBER_FD_UNIX_FILE_UID, &FdInfo::unix_file_uid},
	{AMBER_FD_UNIX_FILE_GID, &FdInfo::unix_file_gid},
	{AMBER_FD_UNIX_BACKLOG, &FdInfo::unix_backlog},
	{AMBER_FD_UNIX_NO_PEER, &FdInfo::unix_no_peer},
	{AMBER_FD_UNIX_PEER_NAME, &FdInfo::unix_peer_name},
	{AMBER_FD_SOCK_RCVBUF, &FdInfo::sock_rcvbuf},
	{AMBER_FD_SOCK_SNDBUF, &FdInfo::sock_sndbuf},
	{AMBER_FD_SOCK_USERLOCKS, &FdInfo::sock_userlocks},
	{AMBER_FD_SOCK_RCVLOWAT, &FdInfo::sock_rcvlowat},
	{AMBER_FD_SOCK_RCVTIMEO, &FdInfo::sock_rcvtimeo},
	{AMBER_FD_SOCK_SNDTIMEO, &FdInfo::sock_sndtimeo},
	{AMBER_FD_SOCK_PASSCRED, &FdInfo::sock_passcred},
	{AMBER_FD_SOCK_PASSSEC, &FdInfo::sock_passsec},
};

constexpr Field<EpollTfd> kEpollFields[] = {
	{AMBER_EPOLL_TFD, &EpollTfd::tfd},
	{AMBER_EPOLL_EVENTS, &EpollTfd::events},
	{AMBER_EPOLL_DATA, &EpollTfd::data},
	{AMBER_EPOLL_FILE_ID, &EpollTfd::file_id},
};

constexpr Field<InotifyWatch> kInotifyFields[] = {
	{AMBER_INOTIFY_WD, &InotifyWatch::wd},
	{AMBER_INOTIFY_MASK, &InotifyWatch::mask},
	{AMBER_INOTIFY_DEV, &InotifyWatch::dev},
	{AMBER_INOTIFY_INO, &InotifyWatch::ino},
	{AMBER_INOTIFY_HANDLE_TYPE, &InotifyWatch::handle_type},
	{AMBER_INOTIFY_HANDLE, &InotifyWatch::handle},
};

constexpr Field<ThreadInfo> kThreadFields[] = {
	{AMBER_THREAD_TID, &ThreadInfo::tid},
	{AMBER_THREAD_FPU, &ThreadInfo::fpu},
	{AMBER_THREAD_BLOCKED, &ThreadInfo::blocked},
	{AMBER_THREAD_CLEAR_CHILD_TID, &ThreadInfo::clear_child_tid},
	{AMBER_THREAD_ROBUST_LIST, &ThreadInfo::robust_list},
	{AMBER_THREAD_ROBUST_LIST_LEN, &ThreadInfo::robust_list_len},
	{AMBER_THREAD_SAS_SP, &ThreadInfo::sas_sp},
	{AMBER_THREAD_SAS_SIZE, &ThreadInfo::sas_size},
	{AMBER_THREAD_SAS_FLAGS, &ThreadInfo::sas_flags},
	{AMBER_THREAD_RSEQ, &ThreadInfo::rseq},
	{AMBER_THREAD_RSEQ_LEN, &ThreadInfo::rseq_len},
	{AMBER_THREAD_RSEQ_SIG, &ThreadInfo::rseq_sig},
};

constexpr Field<ProcInfo> kProcFields[] = {
	{AMBER_PROC_PID, &ProcInfo::pid},
	{AMBER_PROC_PPID, &ProcInfo::ppid},
	{AMBER_PROC_PGID, &ProcInfo::pgid},
	{AMBER_PROC_SID, &ProcInfo::sid},
	{AMBER_PROC_ZOMBIE, &ProcInfo::zombie},
	{AMBER_PROC_EXIT_CODE, &ProcInfo::exit_code},
	{AMBER_PROC_NR_THREADS, &ProcInfo::nr_threads},
	{AMBER_PROC_FILES_WITH, &ProcInfo::files_with},
	{AMBER_PROC_FS_WITH, &ProcInfo::fs_with},
};

constexpr Field<QueueChunk> kQueueFields[] = {
	{AMBER_QUEUE_INO, &QueueChunk::ino},
	{AMBER_QUEUE_EOR, &QueueChunk::eor},
	{AMBER_QUEUE_EMBRYO, &QueueChunk::embryo},
	{AMBER_QUEUE_SEND, &QueueChunk::send},
	{AMBER_QUEUE_CRED_PID, &QueueChunk::cred_pid},
	{AMBER_QUEUE_CRED_UID, &QueueChunk::cred_uid},
	{AMBER_QUEUE_CRED_GID, &QueueChunk::cred_gid},
};

constexpr Field<InetInfo> kInetFields[] = {
	{AMBER_INET_PROTO, &InetInfo::proto},
	{AMBER_INET_STATE, &InetInfo::state},
	{AMBER_INET_SRC, &InetInfo::src},
	{AMBER_INET_SPORT, &InetInfo::sport},
	{AMBER_INET_DST, &InetInfo::dst},
	{AMBER_INET_DPORT, &InetInfo::dport},
	{AMBER_INET_BOUND_ADDR, &InetInfo::bound_addr},
	{AMBER_INET_BACKLOG, &InetInfo::backlog},
	{AMBER_INET_REUSEADDR, &InetInfo::reuseaddr},
	{AMBER_INET_REUSEPORT, &InetInfo::reuseport},
	{AMBER_INET_V6ONLY, &InetInfo::v6only},
	{AMBER_INET_MARK, &InetInfo::mark},
	{AMBER_INET_PRIORITY, &InetInfo::priority},
	{AMBER_INET_SNDBUF, &InetInfo::sndbuf},
	{AMBER_INET_RCVBUF, &InetInfo::rcvbuf},
	{AMBER_INET_LINGER, &InetInfo::linger},
	{AMBER_INET_KEEPALIVE, &InetInfo::keepalive},
	{AMBER_INET_KEEPIDLE, &InetInfo::keepidle},
	{AMBER_INET_KEEPINTVL, &InetInfo::keepintvl},
	{AMBER_INET_KEEPCNT, &InetInfo::keepcnt},
	{AMBER_INET_NODELAY, &InetInfo::nodelay},
	{AMBER_INET_CORK, &InetInfo::cork},
	{AMBER_INET_USER_TIMEOUT, &InetInfo::user_timeout},
	{AMBER_INET_SND_UNA, &InetInfo::snd_una},
	{AMBER_INET_SND_NXT, &InetInfo::snd_nxt},
	{AMBER_INET_WRITE_SEQ, &InetInfo::write_seq},
	{AMBER_INET_RCV_NXT, &InetInfo::rcv_nxt},
	{AMBER_INET_COPIED_SEQ, &InetInfo::copied_seq},
	{AMBER_INET_MSS, &InetInfo::mss},
	{AMBER_INET_SND_WSCALE, &InetInfo::snd_wscale},
	{AMBER_INET_RCV_WSCALE, &InetInfo::rcv_wscale},
	{AMBER_INET_SACK, &InetInfo::sack},
	{AMBER_INET_WSCALE_OK, &InetInfo::wscale_ok},
	{AMBER_INET_TSTAMP, &InetInfo::tstamp},
	{AMBER_INET_TIMESTAMP, &InetInfo::timestamp},
	{AMBER_INET_SND_WL1, &InetInfo::snd_wl1},
	{AMBER_INET_SND_WND, &InetInfo::snd_wnd},
	{AMBER_INET_MAX_WINDOW, &InetInfo::max_window},
	{AMBER_INET_RCV_WND, &InetInfo::rcv_wnd},
	{AMBER_INET_RCV_WUP, &InetInfo::rcv_wup},
	{AMBER_INET_HELD, &InetInfo::held},
	{AMBER_INET_CONGESTION, &InetInfo::congestion},
};

// AMBER_FD_INET (@outer) or one of its AMBER_INET_CHILD nests.
Result<void> parse_inet(ByteView buf, InetInfo &in, const char *what, bool outer)
{
	auto child = [&](const Attr &a) -> Result<bool> {
		if (a.type != AMBER_INET_CHILD || !outer)
			return false;
		if (in.children.size() >= AMBER_INET_CHILDREN_MAX)
			return fail(EBADMSG, "more than " + std::to_string(AMBER_INET_CHILDREN_MAX) +
						     " waiting connections");
		InetInfo c;
		AMBER_TRY(parse_inet(a.data, c, "CHILD", false));
		if (c.proto != IPPROTO_TCP || c.state != TCP_ESTABLISHED || !c.conn)
			return fail(EBADMSG, "a waiting connection that is not an "
					     "ESTABLISHED TCP one");
		in.children.push_back(std::move(c));
		return true;
	};
	auto ia = AMBER_TRY(read_fields<InetInfo>(buf, kInetFields, in, what, Unknown::Skip, child));
	in.linger_on = find_attr(ia, AMBER_INET_LINGER) != nullptr;
	in.conn = find_attr(ia, AMBER_INET_SND_UNA) != nullptr;
	if (in.proto != IPPROTO_TCP && in.proto != IPPROTO_UDP)
		return fail(EBADMSG, std::string(what) + ": protocol " + std::to_string(in.proto));
	if (in.src.size() != in.dst.size() || (in.src.size() != 4 && in.src.size() != 16))
		return fail(EBADMSG, std::string(what) + ": addresses of " +
					     std::to_string(in.src.size()) + " and " +
					     std::to_string(in.dst.size()) + " bytes");
	if (in.sport > 65535 || in.dport > 65535)
		return fail(EBADMSG, std::string(what) + ": port out of range");
	if (in.snd_wscale > 14 || in.rcv_wscale > 14)
		return fail(EBADMSG, std::string(what) + ": window scale out of range");
	if (!in.children.empty() && (in.proto != IPPROTO_TCP || in.state != TCP_LISTEN))
		return fail(EBADMSG, std::string(what) + ": waiting connections on a socket "
							 "that is not a TCP listener");
	for (const InetInfo &c : in.children)
		if (c.src.size() != in.src.size() || c.sport != in.sport)
			return fail(EBADMSG, std::string(what) + ": a waiting connection on "
								 "another port or family");
	return {};
}

Result<Rlimit> parse_rlimit(ByteView buf)
{
	Rlimit rl;
	AMBER_TRY(read_fields<Rlimit>(buf, kRlimitFields, rl, "RLIMIT", Unknown::Skip, no_extra));
	return rl;
}

Result<SigAction> parse_sigaction(ByteView buf)
{
	SigAction s;
	AMBER_TRY(read_fields<SigAction>(buf, kSigactionFields, s, "SIGACTION", Unknown::Skip,
					 no_extra));
	return s;
}

Result<SigPending> parse_sigpending(ByteView buf)
{
	SigPending s;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		if (a.type == AMBER_SIGPENDING_SIGINFO) {
			if (a.data.size() != 128)
				return fail(EBADMSG, "siginfo of " + std::to_string(a.data.size()) +
							    " bytes, expected 128");
			s.siginfo = a.bytes();
		} else if (a.type == AMBER_SIGPENDING_SHARED) {
			s.shared = true;
		}
	}
	if (s.siginfo.empty())
		return fail(EBADMSG, "pending signal without siginfo");
	return s;
}

} // namespace

Bytes encode_info(const InfoSection &info)
{
	AttrWriter w;
	write_fields<InfoSection>(w, kInfoFields, info);
	return w.take();
}

Result<InfoSection> parse_info(ByteView buf)
{
	InfoSection in;
	AMBER_TRY(read_fields<InfoSection>(buf, kInfoFields, in, "INFO", Unknown::Skip, no_extra));
	return in;
}

Result<TaskInfo> parse_task(ByteView buf)
{
	TaskInfo t;
	auto extra = [&](const Attr &a) -> Result<bool> {
		if (a.type == AMBER_TASK_GROUPS) {
			for (const Attr &g : AMBER_TRY(parse_attrs(a.data)))
				if (g.type == AMBER_TASK_GROUP)
					t.groups.push_back(AMBER_TRY(g.u32()));
			return true;
		}
		if (a.type == AMBER_TASK_RLIMITS) {
			t.rlimits = AMBER_TRY(parse_list<Rlimit>(a.data, AMBER_TASK_RLIMIT, "rlimit",
								 parse_rlimit));
			return true;
		}
		return false;
	};
	AMBER_TRY(read_fields<TaskInfo>(buf, kTaskFields, t, "TASK", Unknown::Skip, extra));
	return t;
}

Result<MmInfo> parse_mm(ByteView buf)
{
	MmInfo m;
	auto extra = [&](const Attr &a) -> Result<bool> {
		if (a.type != AMBER_MM_AUXV)
			return false;
		if (a.data.size() % 16)
			return fail(EBADMSG, "auxv size " + std::to_string(a.data.size()) +
						     " is not a multiple of 16");
		m.auxv.resize(a.data.size() / 8);
		memcpy(m.auxv.data(), a.data.data(), a.data.size());
		return true;
	};
	AMBER_TRY(read_fields<MmInfo>(buf, kMmFields, m, "MM", Unknown::Skip, extra));
	return m;
}

Result<Regs> parse_regs(ByteView buf)
{
	Regs regs{};
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		if (a.type < 1 || a.type > AMBER_REG_MAX)
			continue;
		auto v = a.u64();
		if (!v)
			return tl::unexpected(attr_error("REGS", a, v.error()));
		regs[a.type] = *v;
	}
	return regs;
}

Result<Signals> parse_signals(ByteView buf)
{
	Signals s;
	auto extra = [&](const Attr &a) -> Result<bool> {
		if (a.type == AMBER_SIG_ACTION)
			s.actions.push_back(AMBER_TRY(parse_sigaction(a.data)));
		else if (a.type == AMBER_SIG_PENDING)
			s.pending.push_back(AMBER_TRY(parse_sigpending(a.data)));
		else
			return false;
		return true;
	};
	AMBER_TRY(read_fields<Signals>(buf, kSignalsFields, s, "SIGNALS", Unknown::Skip, extra));
	return s;
}

Result<Timers> parse_timers(ByteView buf)
{
	Timers t;
	ITimerFlat f;
	auto extra = [&](const Attr &a) -> Result<bool> {
		if (a.type != AMBER_TIMERS_TIMER)
			return false;
		PosixTimer p;
		auto attrs = AMBER_TRY(read_fields<PosixTimer>(a.data, kTimerFields, p, "TIMER",
							       Unknown::Skip, no_extra));
		if (!find_attr(attrs, AMBER_TIMER_ID) || !find_attr(attrs, AMBER_TIMER_CLOCK))
			return fail(EBADMSG, "TIMER without an id or a clock");
		if (!t.timers.empty() && p.id <= t.timers.back().id)
			return fail(EBADMSG, "TIMER ids not ascending (" + std::to_string(p.id) + ")");
		t.timers.push_back(p);
		return true;
	};
	AMBER_TRY(read_fields<ITimerFlat>(buf, kTimersFields, f, "TIMERS", Unknown::Skip, extra));
	t.real = {f.real_value, f.real_interval};
	t.virt = {f.virt_value, f.virt_interval};
	t.prof = {f.prof_value, f.prof_interval};
	t.next_id = f.next_id;
	return t;
}

Result<Vma> parse_vma(ByteView buf)
{
	Vma v;
	auto attrs = AMBER_TRY(read_fields<Vma>(buf, kVmaFields, v, "VMA", Unknown::Skip, no_extra));
	if (!find_attr(attrs, AMBER_VMA_START) || !find_attr(attrs, AMBER_VMA_END))
		return fail(EBADMSG, "VMA without start or end");
	if (v.end <= v.start)
		return fail(EBADMSG, "VMA " + hex(v.start) + "-" + hex(v.end) + " is empty");
	return v;
}

namespace {

Result<InotifyWatch> parse_inotify_watch(ByteView buf)
{
	InotifyWatch w;
	auto wa = AMBER_TRY(read_fields<InotifyWatch>(buf, kInotifyFields, w, "INOTIFY_WATCH",
						      Unknown::Skip, no_extra));
	for (uint16_t t : {AMBER_INOTIFY_WD, AMBER_INOTIFY_MASK, AMBER_INOTIFY_DEV,
			   AMBER_INOTIFY_INO, AMBER_INOTIFY_HANDLE_TYPE})
		if (!find_attr(wa, t))
			return fail(EBADMSG, "INOTIFY_WATCH without attribute " + std::to_string(t));
	if (w.wd < 1 || w.wd > AMBER_INOTIFY_MAX_WD)
		return fail(EBADMSG, "INOTIFY_WATCH wd " + std::to_string(w.wd) + " out of range");
	if (w.handle.empty() || w.handle.size() > AMBER_INOTIFY_HANDLE_MAX)
		return fail(EBADMSG, "INOTIFY_WATCH wd " + std::to_string(w.wd) + ": a file handle of " +
					     std::to_string(w.handle.size()) + " bytes");
	return w;
}

} // namespace

namespace {

// An AMBER_A_FD nest, or (flight) an AMBER_QUEUE_FILE one: no NUM, a FILE_ID.
Result<FdInfo> parse_fd_attrs(ByteView buf, bool flight)
{
	FdInfo f;
	auto extra = [&](const Attr &a) -> Result<bool> {
		if (a.type == AMBER_FD_INOTIFY_WATCH) {
			f.inotify_watches.push_back(AMBER_TRY(parse_inotify_watch(a.data)));
			return true;
		}
		if (a.type == AMBER_FD_UNIX_EMBRYO) {
			f.unix_embryos.push_back(AMBER_TRY(a.u64()));
			return true;
		}
		if (a.type == AMBER_FD_INET) {
			AMBER_TRY(parse_inet(a.data, f.inet, "INET", true));
			f.is_inet = true;
			return true;
		}
		if (a.type != AMBER_FD_EPOLL_TFD)
			return false;
		EpollTfd t;
		auto ta = AMBER_TRY(read_fields<EpollTfd>(a.data, kEpollFields, t, "EPOLL_TFD",
							  Unknown::Skip, no_extra));
		if (!find_attr(ta, AMBER_EPOLL_TFD) || !t.file_id)
			return fail(EBADMSG, "EPOLL_TFD without an fd or a file id");
		if (t.tfd > INT_MAX)
			return fail(EBADMSG, "EPOLL_TFD fd " + std::to_string(t.tfd) +
						     " out of range");
		f.epoll_tfds.push_back(t);
		return true;
	};
	auto attrs = AMBER_TRY(read_fields<FdInfo>(buf, kFdFields, f, "FD", Unknown::Skip, extra));
	if (flight && (find_attr(attrs, AMBER_FD_NUM) || !f.file_id))
		return fail(EBADMSG, "a file in flight with a number or without a file id");
	if (flight)
		f.num = kFlightFd;
	else if (!find_attr(attrs, AMBER_FD_NUM))
		return fail(EBADMSG, "fd without a number");
	const std::string label = flight ? "file in flight" : "fd " + std::to_string(f.num);
	if (!f.epoll && !f.epoll_tfds.empty())
		return fail(EBADMSG, label + ": EPOLL_TFD on a non-epoll");
	if (!f.inotify && !f.inotify_watches.empty())
		return fail(EBADMSG, label + ": INOTIFY_WATCH on a non-inotify");
	f.eventfd = find_attr(attrs, AMBER_FD_EVENTFD_COUNT) != nullptr;
	if (f.eventfd && f.eventfd_count == UINT64_MAX)
		return fail(EBADMSG, label + ": eventfd count out of range");
	f.timerfd = find_attr(attrs, AMBER_FD_TIMERFD_CLOCKID) != nullptr;
	f.signalfd = find_attr(attrs, AMBER_FD_SIGNALFD_MASK) != nullptr;
	f.unix_listening = find_attr(attrs, AMBER_FD_UNIX_BACKLOG) != nullptr;
	if (!f.unix_listening && !f.unix_embryos.empty())
		return fail(EBADMSG, label + ": UNIX_EMBRYO on a socket that does not listen");
	f.sock_opts = find_attr(attrs, AMBER_FD_SOCK_RCVBUF) != nullptr;
	if (f.unix_name.size() > 108 || f.unix_peer_name.size() > 108)
		return fail(EBADMSG, label + ": UNIX socket name longer than 108 bytes");
	if (!f.unix_path.empty() && f.unix_path[0] != '/')
		return fail(EBADMSG, label + ": UNIX_PATH is not absolute");
	if (f.sock_opts && (f.sock_rcvbuf > INT_MAX || f.sock_sndbuf > INT_MAX ||
			    f.sock_rcvlowat > INT_MAX || f.sock_userlocks & ~3u))
		return fail(EBADMSG, label + ": socket option out of range");
	if (int(f.eventfd) + int(f.timerfd) + int(f.signalfd) > 1)
		return fail(EBADMSG, label + ": more than one of eventfd, timerfd, signalfd");
	return f;
}

} // namespace

Result<FdInfo> parse_fd(ByteView buf)
{
	return parse_fd_attrs(buf, false);
}

Result<std::vector<Vma>> parse_vmas(ByteView buf)
{
	return parse_list<Vma>(buf, AMBER_A_VMA, "VMA", parse_vma);
}

Result<std::vector<FdInfo>> parse_fds(ByteView buf)
{
	auto fds = AMBER_TRY(parse_list<FdInfo>(buf, AMBER_A_FD, "fd", parse_fd));
	std::vector<uint32_t> nums;
	for (const FdInfo &f : fds)
		nums.push_back(f.num);
	std::sort(nums.begin(), nums.end());
	if (auto d = std::adjacent_find(nums.begin(), nums.end()); d != nums.end())
		return fail(EBADMSG, "fd " + std::to_string(*d) + " is listed twice");
	return fds;
}

Result<ThreadInfo> parse_thread(ByteView buf)
{
	ThreadInfo t;
	auto extra = [&](const Attr &a) -> Result<bool> {
		switch (a.type) {
		case AMBER_THREAD_REGS:
			t.regs = AMBER_TRY(parse_regs(a.data));
			return true;
		case AMBER_THREAD_PENDING: {
			SigPending p = AMBER_TRY(parse_sigpending(a.data));
			if (p.shared)
				return fail(EBADMSG, "a process-wide (SHARED) pending signal");
			t.pending.push_back(std::move(p));
			return true;
		}
		case AMBER_THREAD_COMM:
			t.comm = a.str();
			if (t.comm.size() > 15)
				return fail(EBADMSG, "comm of " + std::to_string(t.comm.size()) +
							     " characters (at most 15)");
			return true;
		}
		return false;
	};
	auto attrs = AMBER_TRY(
		read_fields<ThreadInfo>(buf, kThreadFields, t, "THREAD", Unknown::Refuse, extra));
	if (!valid_pid(t.tid))
		return fail(EBADMSG, "thread without a valid TID (" + std::to_string(t.tid) + ")");
	if (!find_attr(attrs, AMBER_THREAD_REGS))
		return fail(EBADMSG, "thread " + std::to_string(t.tid) + ": no REGS");
	return t;
}

Result<std::vector<ThreadInfo>> parse_threads(ByteView buf, uint32_t leader_pid)
{
	std::vector<ThreadInfo> out;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		const std::string what = "thread " + std::to_string(out.size());
		if (a.type != AMBER_A_THREAD)
			return fail(EBADMSG, what + ": unexpected attribute " + std::to_string(a.type));
		auto t = parse_thread(a.data);
		if (!t)
			return wrap(t.error(), what + ": ");
		const std::string tid = "thread " + std::to_string(t->tid) + ": ";
		if (t->tid == leader_pid)
			return fail(EBADMSG, tid + "is the thread group leader");
		if (!out.empty() && t->tid <= out.back().tid)
			return fail(EBADMSG, tid + (t->tid == out.back().tid ? "listed twice"
									     : "not in ascending TID order"));
		t->raw = a.raw_bytes();
		out.push_back(std::move(*t));
	}
	return out;
}

Result<ProcInfo> parse_proc(ByteView buf)
{
	ProcInfo p;
	auto attrs = AMBER_TRY(
		read_fields<ProcInfo>(buf, kProcFields, p, "PROC", Unknown::Refuse, no_extra));
	const bool have_exit = find_attr(attrs, AMBER_PROC_EXIT_CODE);
	const bool have_threads = find_attr(attrs, AMBER_PROC_NR_THREADS);
	if (!valid_pid(p.pid))
		return fail(EBADMSG, "process without a valid PID (" + std::to_string(p.pid) + ")");
	const std::string pid = "pid " + std::to_string(p.pid) + ": ";
	for (auto [v, name] : {std::pair{p.ppid, "PPID"}, {p.pgid, "PGID"}, {p.sid, "SID"},
			       {p.files_with, "FILES_WITH"}, {p.fs_with, "FS_WITH"}})
		if (v > kPidMax)
			return fail(EBADMSG, pid + name + " " + std::to_string(v) + " out of range");
	if (p.zombie) {
		if (p.nr_threads)
			return fail(EBADMSG, pid + "a zombie with " + std::to_string(p.nr_threads) +
						     " threads");
		if (!have_exit)
			return fail(EBADMSG, pid + "a zombie without EXIT_CODE");
		if (p.files_with || p.fs_with)
			return fail(EBADMSG, pid + "a zombie sharing an fd table or fs_struct");
		if (p.exit_code > 0xffff)
			return fail(EBADMSG, pid + "wait status " + hex(p.exit_code) + " out of range");
	} else {
		if (have_exit)
			return fail(EBADMSG, pid + "EXIT_CODE of a live process");
		if (!have_threads || p.nr_threads == 0)
			return fail(EBADMSG, pid + "a live process without NR_THREADS");
	}
	return p;
}

Result<std::vector<ProcInfo>> parse_tree(ByteView buf, uint32_t root_pid)
{
	std::vector<ProcInfo> out;
	std::unordered_set<uint32_t> seen;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		const std::string what = "process " + std::to_string(out.size());
		if (a.type != AMBER_A_PROC)
			return fail(EBADMSG, what + ": unexpected attribute " + std::to_string(a.type));
		auto p = parse_proc(a.data);
		if (!p)
			return wrap(p.error(), what + ": ");
		const std::string pid = "pid " + std::to_string(p->pid) + ": ";
		if (out.empty()) {
			if (p->pid != root_pid)
				return fail(EBADMSG, "the first process is pid " +
							     std::to_string(p->pid) + ", not the image's pid " +
							     std::to_string(root_pid));
			if (p->zombie)
				return fail(EBADMSG, pid + "the root process is a zombie");
		} else {
			if (seen.count(p->pid))
				return fail(EBADMSG, pid + "listed twice");
			if (!seen.count(p->ppid))
				return fail(EBADMSG, pid + "its parent " + std::to_string(p->ppid) +
							     " is not listed before it");
		}
		seen.insert(p->pid);
		out.push_back(*p);
	}
	if (out.empty())
		return fail(EBADMSG, "no process");
	return out;
}

Result<QueueChunk> parse_queue(ByteView buf)
{
	QueueChunk q;
	auto extra = [&](const Attr &a) -> Result<bool> {
		if (a.type == AMBER_QUEUE_FILE) {
			auto f = parse_fd_attrs(a.data, true);
			if (!f)
				return wrap(f.error(), "FILE: ");
			q.files.push_back(std::move(*f));
			return true;
		}
		if (a.type != AMBER_QUEUE_DATA)
			return false;
		q.data = a.bytes();
		if (a.data.size() > AMBER_QUEUE_CHUNK)
			return fail(EBADMSG, std::to_string(a.data.size()) + " bytes, at most " +
						     std::to_string(AMBER_QUEUE_CHUNK));
		return true;
	};
	auto attrs = AMBER_TRY(
		read_fields<QueueChunk>(buf, kQueueFields, q, "QUEUE", Unknown::Refuse, extra));
	if (!q.ino)
		return fail(EBADMSG, "chunk without an inode");
	const std::string ino = "inode " + std::to_string(q.ino) + ": ";
	if (!find_attr(attrs, AMBER_QUEUE_DATA))
		return fail(EBADMSG, ino + "chunk without DATA");
	// An empty chunk is only an empty datagram.
	if (q.data.empty() && !q.eor)
		return fail(EBADMSG, ino + "empty chunk");
	int creds = bool(find_attr(attrs, AMBER_QUEUE_CRED_PID)) +
		    bool(find_attr(attrs, AMBER_QUEUE_CRED_UID)) +
		    bool(find_attr(attrs, AMBER_QUEUE_CRED_GID));
	if (creds && creds != 3)
		return fail(EBADMSG, ino + "credentials without all of CRED_PID, CRED_UID, CRED_GID");
	if (creds && !q.cred_pid)
		return fail(EBADMSG, ino + "credentials of pid 0");
	if (creds && (!q.eor || q.send))
		return fail(EBADMSG, ino + "credentials on a chunk that ends no UNIX message");
	if (!q.files.empty() && (!q.eor || q.send))
		return fail(EBADMSG, ino + "files in flight on a chunk that ends no UNIX message");
	if (q.files.size() > kFlightPerMsgMax)
		return fail(EBADMSG, ino + std::to_string(q.files.size()) +
					     " files in flight in one message, at most " +
					     std::to_string(kFlightPerMsgMax));
	return q;
}

Result<std::vector<QueueChunk>> parse_queues(ByteView buf)
{
	std::vector<QueueChunk> out;
	std::unordered_set<uint64_t> done;	// inodes whose chunks ended
	uint64_t total = 0;
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		const std::string what = "chunk " + std::to_string(out.size());
		if (a.type != AMBER_A_QUEUE)
			return fail(EBADMSG, what + ": unexpected attribute " + std::to_string(a.type));
		auto q = parse_queue(a.data);
		if (!q)
			return wrap(q.error(), what + ": ");
		if (!out.empty() && out.back().ino != q->ino)
			done.insert(out.back().ino);
		if (done.count(q->ino))
			return fail(EBADMSG, what + ": inode " + std::to_string(q->ino) +
						     ": its chunks are not contiguous");
		total += q->data.size();
		if (total > AMBER_QUEUE_MAX_BYTES)
			return fail(EBADMSG, what + ": more than " +
						     std::to_string(AMBER_QUEUE_MAX_BYTES) +
						     " bytes queued in all");
		out.push_back(std::move(*q));
	}
	return out;
}

Bytes encode_ghosts(const std::vector<Ghost> &ghosts)
{
	AttrWriter w;
	for (const Ghost &g : ghosts) {
		size_t off = 0;
		do {
			const size_t n = std::min<size_t>(AMBER_GHOST_CHUNK, g.data.size() - off);
			size_t nest = w.begin_nest(AMBER_A_GHOST);
			w.put_u64(AMBER_GHOST_DEV, g.dev);
			w.put_u64(AMBER_GHOST_INO, g.ino);
			w.put_u32(AMBER_GHOST_MODE, g.mode);
			w.put_u64(AMBER_GHOST_SIZE, g.data.size());
			w.put_string(AMBER_GHOST_PATH, g.path);
			w.put_binary(AMBER_GHOST_DATA, ByteView(g.data).subspan(off, n));
			w.end_nest(nest);
			off += n;
		} while (off < g.data.size());
	}
	return w.take();
}

Result<std::vector<Ghost>> parse_ghosts(ByteView buf)
{
	std::vector<Ghost> out;
	std::set<std::pair<uint64_t, uint64_t>> seen;
	uint64_t want = 0;	// SIZE of out.back()
	auto attrs = AMBER_TRY(parse_attrs(buf));
	for (const Attr &a : attrs) {
		if (a.type != AMBER_A_GHOST)
			return fail(EBADMSG, "attribute " + std::to_string(a.type) + " is not a GHOST");
		auto in = AMBER_TRY(parse_attrs(a.data));
		const Attr *dev = find_attr(in, AMBER_GHOST_DEV), *ino = find_attr(in, AMBER_GHOST_INO);
		const Attr *mode = find_attr(in, AMBER_GHOST_MODE), *size = find_attr(in, AMBER_GHOST_SIZE);
		const Attr *path = find_attr(in, AMBER_GHOST_PATH), *data = find_attr(in, AMBER_GHOST_DATA);
		if (!dev || !ino || !mode || !size || !path || !data)
			return fail(EBADMSG, "a GHOST chunk lacks DEV, INO, MODE, SIZE, PATH or DATA");
		Ghost g;
		g.dev = AMBER_TRY(dev->u64());
		g.ino = AMBER_TRY(ino->u64());
		g.mode = AMBER_TRY(mode->u32());
		const uint64_t sz = AMBER_TRY(size->u64());
		g.path = path->str();
		const std::string name = "inode " + std::to_string(g.ino) + ": ";
		if (data->data.size() > AMBER_GHOST_CHUNK)
			return fail(EBADMSG, name + std::to_string(data->data.size()) +
						     " bytes in a chunk, at most " +
						     std::to_string(AMBER_GHOST_CHUNK));
		if (g.path.empty() || g.path[0] != '/' || !S_ISREG(g.mode))
			return fail(EBADMSG, name + "not a regular file with an absolute path");
		const bool more = !out.empty() && out.back().dev == g.dev && out.back().ino == g.ino &&
				  out.back().data.size() < want;
		if (more) {
			if (sz != want || g.mode != out.back().mode || g.path != out.back().path)
				return fail(EBADMSG, name + "chunks disagree");
		} else {
			if (!out.empty() && out.back().data.size() != want)
				return fail(EBADMSG, "inode " + std::to_string(out.back().ino) +
							     ": chunks hold fewer bytes than its size");
			if (!seen.insert({g.dev, g.ino}).second)
				return fail(EBADMSG, name + "saved twice");
			want = sz;
			out.push_back(std::move(g));
		}
		Bytes &d = out.back().data;
		if (data->data.size() > want - d.size())
			return fail(EBADMSG, name + "chunks hold more bytes than its size");
		d.insert(d.end(), data->data.begin(), data->data.end());
	}
	if (!out.empty() && out.back().data.size() != want)
		return fail(EBADMSG, "inode " + std::to_string(out.back().ino) +
					     ": chunks hold fewer bytes than its size");
	return out;
}

} // namespace amber
