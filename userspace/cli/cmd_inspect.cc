// SPDX-License-Identifier: GPL-2.0
// amber inspect -D DIR [--checkpoint N]: the store's checkpoints and chains,
// then a human summary of the latest (or N) and of its chain.
#include <algorithm>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>

#include <CLI/CLI.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/amber.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include <fmt/format.h>

#include "checkpoint/checkpoint.h"
#include "common/names.h"
#include "cli/commands.h"
#include "image/compress.h"
#include "image/image.h"
#include "image/store.h"

namespace amber {

namespace {

// A UNIX socket name as ss(8) prints it: a path, or @ and the abstract
// name with its NUL bytes shown as @.
std::string unix_name_str(const Bytes &n)
{
	std::string s;
	for (size_t i = 0; i < n.size(); i++) {
		if (!n[i] && i && i + 1 == n.size() && n[0])
			break;	// the path's terminating NUL
		s += n[i] ? char(n[i]) : '@';
	}
	return s;
}

// Files in flight in a message (SCM_RIGHTS): their paths, a regular
// file's offset, and the fd of the process that is the same description.
std::string flight_str(const std::vector<FdInfo> &files, const Checkpoint &c)
{
	std::string s;
	for (const FdInfo &f : files) {
		s += (s.empty() ? "" : ", ") + f.path;
		if (f.type == AMBER_FD_REG)
			s += fmt::format(" at offset {}", f.pos);
		for (const FdInfo &fd : c.fds)
			if (fd.file_id == f.file_id) {
				s += fmt::format(" (also fd {})", fd.num);
				break;
			}
	}
	return s;
}

// The socket line of an fd: its state, names, queue and options.
std::string socket_str(const FdInfo &f, const Checkpoint &c)
{
	std::string s = fmt::format(" ({} {}", family_name(f.sock_family),
				    sock_type_name(f.sock_type));
	if (f.unix_listening)
		s += fmt::format(", listening, backlog {}, {} waiting", f.unix_backlog,
				 f.unix_embryos.size());
	else if (f.unix_no_peer)
		s += ", unconnected";
	else if (f.peer_ino)
		s += fmt::format(", peer socket:[{}]", f.peer_ino);
	else
		s += ", peer closed";
	if (!f.unix_name.empty())
		s += fmt::format(", {} {}", f.unix_accepted ? "accepted on" : "bound to",
				 unix_name_str(f.unix_name));
	if (!f.unix_path.empty())
		s += fmt::format(" (file {:o} {}:{})", f.unix_file_mode & 07777,
				 f.unix_file_uid, f.unix_file_gid);
	if (!f.unix_peer_name.empty())
		s += ", peer name " + unix_name_str(f.unix_peer_name);
	if (f.shutdown)
		s += fmt::format(", shutdown {}", f.shutdown);
	uint64_t bytes = 0, msgs = 0;
	std::string creds;
	for (const QueueChunk &q : c.queues) {
		if (q.ino != f.ino)
			continue;
		bytes += q.data.size(), msgs += q.eor;
		if (!q.cred_pid && q.files.empty())
			continue;
		creds += fmt::format("{}message {}: ", creds.empty() ? "" : ", ", msgs);
		if (q.cred_pid)
			creds += fmt::format("credentials pid {} uid {} gid {}", q.cred_pid,
					     q.cred_uid, q.cred_gid);
		if (!q.files.empty())
			creds += (q.cred_pid ? ", passes [" : "passes [") +
				 flight_str(q.files, c) + "]";
	}
	if (bytes)
		s += fmt::format(", {} bytes queued{}", bytes,
				 msgs ? fmt::format(" in {} messages", msgs) : "");
	if (!creds.empty())
		s += " (" + creds + ")";
	if (f.sock_opts) {
		s += fmt::format(", rcvbuf {}{}, sndbuf {}{}", f.sock_rcvbuf,
				 f.sock_userlocks & 2 ? " (set)" : "", f.sock_sndbuf,
				 f.sock_userlocks & 1 ? " (set)" : "");
		if (f.sock_rcvlowat != 1)
			s += fmt::format(", rcvlowat {}", f.sock_rcvlowat);
		if (f.sock_rcvtimeo)
			s += fmt::format(", rcvtimeo {} us", f.sock_rcvtimeo);
		if (f.sock_sndtimeo)
			s += fmt::format(", sndtimeo {} us", f.sock_sndtimeo);
		if (f.sock_passcred)
			s += ", passcred";
		if (f.sock_passsec)
			s += ", passsec";
	}
	return s + ")";
}

struct InspectOptions {
	std::string dir;
	uint32_t checkpoint = 0;	// 0: latest
};

std::string human_size(uint64_t n)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = double(n);
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		return fmt::format("{} B", n);
	return fmt::format("{:.1f} {}", v, units[u]);
}

std::string prot_str(uint32_t prot, uint32_t flags)
{
	std::string s;
	s += prot & PROT_READ ? 'r' : '-';
	s += prot & PROT_WRITE ? 'w' : '-';
	s += prot & PROT_EXEC ? 'x' : '-';
	s += flags & AMBER_VMA_F_SHARED ? 's' : 'p';
	return s;
}

std::string vma_flags_str(uint32_t f)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
		{AMBER_VMA_F_SHARED, "shared"},	    {AMBER_VMA_F_ANON, "anon"},
		{AMBER_VMA_F_SHMEM, "shmem"},	    {AMBER_VMA_F_GROWSDOWN, "growsdown"},
		{AMBER_VMA_F_STACK, "stack"},	    {AMBER_VMA_F_HEAP, "heap"},
		{AMBER_VMA_F_VDSO, "vdso"},	    {AMBER_VMA_F_VVAR, "vvar"},
		{AMBER_VMA_F_MAYWRITE, "maywrite"}, {AMBER_VMA_F_DONTFORK, "dontfork"},
		{AMBER_VMA_F_DONTDUMP, "dontdump"}, {AMBER_VMA_F_LOCKED, "locked"},
		{AMBER_VMA_F_HUGEPAGE, "hugepage"}, {AMBER_VMA_F_NOHUGEPAGE, "nohugepage"},
		{AMBER_VMA_F_SEQ_READ, "sequential"}, {AMBER_VMA_F_RAND_READ, "random"},
		{AMBER_VMA_F_WIPEONFORK, "wipeonfork"}, {AMBER_VMA_F_MERGEABLE, "mergeable"},
		{AMBER_VMA_F_LOCKONFAULT, "lockonfault"}, {AMBER_VMA_F_NORESERVE, "noreserve"},
		{AMBER_VMA_F_ACCOUNT, "account"},
	};
	std::string s;
	for (const auto &n : names) {
		if (!(f & n.bit))
			continue;
		if (!s.empty())
			s += ',';
		s += n.name;
	}
	return s.empty() ? "-" : s;
}

std::string vma_name(const Vma &v)
{
	if (v.flags & AMBER_VMA_F_VDSO)
		return "[vdso]";
	if (v.flags & AMBER_VMA_F_VVAR)
		return "[vvar]";
	if (v.flags & AMBER_VMA_F_HEAP)
		return "[heap]";
	if (v.flags & AMBER_VMA_F_STACK)
		return "[stack]";
	if (!v.path.empty())
		return v.path;
	return (v.flags & AMBER_VMA_F_SHMEM) ? "[shared anon]" : "[anon]";
}

std::string open_flags_str(uint32_t flags)
{
	std::string s;
	switch (flags & O_ACCMODE) {
	case O_RDONLY: s = "O_RDONLY"; break;
	case O_WRONLY: s = "O_WRONLY"; break;
	default: s = "O_RDWR"; break;
	}
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
		{O_APPEND, "O_APPEND"}, {O_NONBLOCK, "O_NONBLOCK"}, {O_DSYNC, "O_DSYNC"},
		{O_DIRECT, "O_DIRECT"}, {O_LARGEFILE, "O_LARGEFILE"}, {O_DIRECTORY, "O_DIRECTORY"},
		{O_NOFOLLOW, "O_NOFOLLOW"}, {O_NOATIME, "O_NOATIME"}, {O_PATH, "O_PATH"},
	};
	for (const auto &n : names)
		if (flags & n.bit)
			s += std::string("|") + n.name;
	return s;
}

std::string time_str(uint64_t ns)
{
	time_t t = time_t(ns / 1000000000ull);
	struct tm tm;
	char buf[64];
	if (!gmtime_r(&t, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm))
		return std::to_string(ns);
	return buf;
}

void print_regs(const Regs &r)
{
	static const struct {
		int idx;
		const char *name;
	} order[] = {
		{AMBER_REG_RIP, "rip"},	  {AMBER_REG_RSP, "rsp"},	{AMBER_REG_RBP, "rbp"},
		{AMBER_REG_RAX, "rax"},	  {AMBER_REG_RBX, "rbx"},	{AMBER_REG_RCX, "rcx"},
		{AMBER_REG_RDX, "rdx"},	  {AMBER_REG_RSI, "rsi"},	{AMBER_REG_RDI, "rdi"},
		{AMBER_REG_R8, "r8"},	  {AMBER_REG_R9, "r9"},		{AMBER_REG_R10, "r10"},
		{AMBER_REG_R11, "r11"},	  {AMBER_REG_R12, "r12"},	{AMBER_REG_R13, "r13"},
		{AMBER_REG_R14, "r14"},	  {AMBER_REG_R15, "r15"},	{AMBER_REG_ORIG_RAX, "orig_rax"},
		{AMBER_REG_EFLAGS, "eflags"}, {AMBER_REG_CS, "cs"},	{AMBER_REG_SS, "ss"},
		{AMBER_REG_FS_BASE, "fs_base"}, {AMBER_REG_GS_BASE, "gs_base"},
	};
	printf("registers:\n");
	int col = 0;
	for (const auto &o : order) {
		printf("  %-8s %016" PRIx64, o.name, r[o.idx]);
		if (++col % 3 == 0)
			printf("\n");
	}
	if (col % 3)
		printf("\n");
}

void print_fpu(const Bytes &fpu)
{
	// XSAVE header: XSTATE_BV at offset 512 of the legacy area.
	if (fpu.size() >= 520) {
		uint64_t bv;
		memcpy(&bv, fpu.data() + 512, sizeof(bv));
		std::string feats;
		static const char *names[] = {"x87", "sse", "avx", "bndregs", "bndcsr",
					      "opmask", "zmm_hi256", "hi16_zmm", "pt", "pkru"};
		for (int i = 0; i < 10; i++)
			if (bv & (1ull << i))
				feats += std::string(feats.empty() ? "" : ",") + names[i];
		printf("fpu: %zu bytes of xstate, xstate_bv %#" PRIx64 " (%s)\n", fpu.size(), bv,
		       feats.empty() ? "init" : feats.c_str());
	} else {
		printf("fpu: %zu bytes of xstate\n", fpu.size());
	}
}

void print_signals(const Signals &s)
{
	printf("signals: blocked mask %#" PRIx64 ", %zu pending\n", s.blocked, s.pending.size());
	for (const SigAction &a : s.actions) {
		if (a.handler == 0 && a.flags == 0 && a.mask == 0)
			continue;
		const char *name = a.signo < NSIG ? sigabbrev_np(a.signo) : nullptr;
		std::string h = a.handler == 0 ? "SIG_DFL" : a.handler == 1 ? "SIG_IGN" : "";
		if (h.empty())
			h = "handler " + hex(a.handler);
		printf("  SIG%-8s %s flags %#" PRIx64 " mask %#" PRIx64 "\n",
		       name ? name : std::to_string(a.signo).c_str(), h.c_str(), a.flags, a.mask);
	}
	for (const SigPending &p : s.pending) {
		int32_t signo;
		memcpy(&signo, p.siginfo.data(), sizeof(signo));
		const char *name = signo > 0 && signo < NSIG ? sigabbrev_np(signo) : nullptr;
		printf("  pending SIG%s (%s)\n", name ? name : std::to_string(signo).c_str(),
		       p.shared ? "process" : "thread");
	}
}

std::string ns_str(uint64_t ns)
{
	char b[32];
	snprintf(b, sizeof(b), "%.6f s", ns / 1e9);
	return b;
}

const char *clock_name(uint32_t c)
{
	switch (c) {
	case CLOCK_REALTIME:
		return "CLOCK_REALTIME";
	case CLOCK_MONOTONIC:
		return "CLOCK_MONOTONIC";
	case CLOCK_PROCESS_CPUTIME_ID:
		return "CLOCK_PROCESS_CPUTIME_ID";
	case CLOCK_BOOTTIME:
		return "CLOCK_BOOTTIME";
	case CLOCK_TAI:
		return "CLOCK_TAI";
	}
	return "clock ?";
}

// A TCP/UDP socket: protocol, state, addresses, queue sizes, options.
void print_inet(const FdInfo &f, const Checkpoint &c)
{
	static const char *const states[] = {"?", "ESTABLISHED", "SYN_SENT", "SYN_RECV",
					     "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
					     "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING"};
	const InetInfo &in = f.inet;
	auto addr = [&](const Bytes &a, uint32_t port) {
		char buf[INET6_ADDRSTRLEN] = "?";
		inet_ntop(a.size() == 4 ? AF_INET : AF_INET6, a.data(), buf, sizeof(buf));
		return a.size() == 4 ? fmt::format("{}:{}", buf, port)
				     : fmt::format("[{}]:{}", buf, port);
	};
	const bool tcp = in.proto == IPPROTO_TCP;
	const char *state = in.state < std::size(states) ? states[in.state] : "?";
	if (!tcp)
		state = in.state == 1 ? "connected" : "unconnected";
	std::string line = fmt::format("        {} {} {}", tcp ? "tcp" : "udp", state,
				       in.sport ? addr(in.src, in.sport) : "unbound");
	if (in.dport)
		line += " -> " + addr(in.dst, in.dport);
	if (in.state == 10)
		line += fmt::format(", backlog {}", in.backlog);
	if (in.conn) {
		uint64_t recvq = 0, sendq = 0;
		for (const QueueChunk &q : c.queues)
			if (q.ino == f.ino && !q.embryo)
				(q.send ? sendq : recvq) += q.data.size();
		line += fmt::format(", recv-q {}, send-q {} ({} sent)", recvq, sendq,
				    std::min<uint64_t>(sendq, in.snd_nxt - in.snd_una));
	}
	for (auto [on, name] : {std::pair{in.reuseaddr, "reuseaddr"}, {in.reuseport, "reuseport"},
				{in.v6only, "v6only"}, {in.keepalive, "keepalive"},
				{in.nodelay, "nodelay"}, {in.cork, "cork"}, {in.held, "held"}})
		if (on)
			line += std::string(", ") + name;
	if (in.sndbuf)
		line += fmt::format(", sndbuf {}", in.sndbuf);
	if (in.rcvbuf)
		line += fmt::format(", rcvbuf {}", in.rcvbuf);
	if (in.mark)
		line += fmt::format(", mark {}", in.mark);
	if (!in.children.empty())
		line += fmt::format(", {} waiting to be accepted", in.children.size());
	printf("%s\n", line.c_str());
	for (size_t i = 0; i < in.children.size(); i++) {
		const InetInfo &k = in.children[i];
		uint64_t recvq = 0;
		for (const QueueChunk &q : c.queues)
			if (q.ino == f.ino && q.embryo == i + 1)
				recvq += q.data.size();
		printf("          waiting %zu: %s <- %s, recv-q %llu%s\n", i + 1,
		       addr(k.src, k.sport).c_str(), addr(k.dst, k.dport).c_str(),
		       (unsigned long long)recvq, k.held ? ", held" : "");
	}
}

void print_timers(const Timers &t)
{
	const struct {
		const char *name;
		const ITimer &it;
	} its[] = {{"ITIMER_REAL", t.real}, {"ITIMER_VIRTUAL", t.virt}, {"ITIMER_PROF", t.prof}};
	size_t armed = 0;
	for (const auto &i : its)
		armed += i.it.value != 0;
	printf("timers: %zu interval timers armed, %zu POSIX timers\n", armed, t.timers.size());
	for (const auto &i : its)
		if (i.it.value || i.it.interval)
			printf("  %-14s left %s, interval %s\n", i.name, ns_str(i.it.value).c_str(),
			       ns_str(i.it.interval).c_str());
	for (const PosixTimer &p : t.timers) {
		std::string how = p.notify == SIGEV_NONE ? "SIGEV_NONE"
				  : p.notify == SIGEV_THREAD ? "SIGEV_THREAD"
				  : p.notify == (SIGEV_SIGNAL | SIGEV_THREAD_ID)
					  ? "SIGEV_THREAD_ID tid " + std::to_string(p.tid)
					  : std::string("SIGEV_SIGNAL");
		if (p.notify != SIGEV_NONE) {
			const char *sn = p.signo < NSIG ? sigabbrev_np(int(p.signo)) : nullptr;
			how += std::string(" SIG") + (sn ? sn : std::to_string(p.signo).c_str());
		}
		printf("  timer %-4u %-24s %s value %#" PRIx64 ", %s, interval %s, overrun %u\n",
		       p.id, clock_name(p.clock), how.c_str(), p.sigval,
		       p.value ? ("left " + ns_str(p.value)).c_str() : "disarmed",
		       ns_str(p.interval).c_str(), p.overrun);
	}
}

// chain: lines about its chain, printed after the summary.
void print_checkpoint(const Checkpoint &c, const std::string &chain)
{
	const InfoSection &in = c.info;
	printf("checkpoint %u: %s\n", c.number, c.dir.c_str());
	printf("  pid %u, comm \"%s\", taken %s on %s, tools %s\n", in.pid, c.task.comm.c_str(),
	       time_str(in.time_ns).c_str(), in.hostname.c_str(), in.tool_version.c_str());
	if (!in.kernel.empty())
		printf("  kernel Linux %s, vDSO xxh64 %016" PRIx64 "\n", in.kernel.c_str(),
		       in.vdso_xxh64);
	printf("  stopped %.3f ms, pages %s", in.stopped_ns / 1e6, human_size(in.pages_bytes).c_str());
	struct stat zst;
	if (in.pages_zstd && stat(c.pages_path.c_str(), &zst) == 0)
		printf(" (%s compressed, zstd)", human_size(uint64_t(zst.st_size)).c_str());
	if (in.parent)
		printf(", incremental on checkpoint %u: %" PRIu64 " pages saved, %" PRIu64
		       " unchanged",
		       in.parent, in.pages_nr, in.parent_pages_nr);
	else
		printf(", full: %" PRIu64 " pages saved", in.pages_nr);
	printf("\n");
	printf("  exe %s, cwd %s, umask %04o, uid %u gid %u\n", c.task.exe.c_str(),
	       c.task.cwd.c_str(), c.task.umask, c.task.uid, c.task.gid);
	printf("%s", chain.c_str());

	uint64_t total = 0, saved = 0;
	for (const Vma &v : c.vmas) {
		total += v.end - v.start;
		saved += v.pages;
	}
	printf("vmas: %zu, %s mapped, %" PRIu64 " pages saved (page size %u)\n", c.vmas.size(),
	       human_size(total).c_str(), saved, c.page_size);
	for (const Vma &v : c.vmas)
		printf("  %012" PRIx64 "-%012" PRIx64 " %10s %s %-28s %6" PRIu64 " pages  %s\n",
		       v.start, v.end, human_size(v.end - v.start).c_str(),
		       prot_str(v.prot, v.flags).c_str(), vma_flags_str(v.flags).c_str(), v.pages,
		       vma_name(v).c_str());

	printf("fds: %zu\n", c.fds.size());
	for (const FdInfo &f : c.fds) {
		printf("  %3u %-16s %s", f.num, fd_type_name(f.type), f.path.c_str());
		if (f.type == AMBER_FD_REG)
			printf(" (pos %" PRIu64 ", size %" PRIu64 ")", f.pos, f.size);
		if (f.eventfd)
			printf(" (count %" PRIu64 "%s)", f.eventfd_count,
			       f.eventfd_sem ? ", semaphore" : "");
		if (f.timerfd)
			printf(" (clock %u, flags %u, value %" PRIu64 " ns, interval %" PRIu64
			       " ns, ticks %" PRIu64 ")",
			       f.timerfd_clockid, f.timerfd_flags, f.timerfd_value,
			       f.timerfd_interval, f.timerfd_ticks);
		if (f.signalfd)
			printf(" (mask %016" PRIx64 ")", f.signalfd_mask);
		if (f.type == AMBER_FD_SOCK && f.sock_family)
			printf("%s", socket_str(f, c).c_str());
		printf(" %s%s%s\n", open_flags_str(f.flags).c_str(), f.cloexec ? " cloexec" : "",
		       f.tty ? " tty" : "");
		for (const EpollTfd &t : f.epoll_tfds)
			printf("        watches fd %u (file %" PRIu64 ") events %08x data %016" PRIx64
			       "\n",
			       t.tfd, t.file_id, t.events, t.data);
		for (const InotifyWatch &w : f.inotify_watches)
			printf("        watch %u: inode %" PRIu64 " on device %u:%u mask %08x\n", w.wd,
			       w.ino, major(w.dev), minor(w.dev), w.mask);
		if (f.is_inet)
			print_inet(f, c);
	}

	print_regs(c.regs);
	print_fpu(c.fpu);
	print_signals(c.signals);
	print_timers(c.timers);
}

// One row of the store's table.
struct Row {
	uint32_t number = 0;
	std::optional<InfoSection> info;	// empty if meta.img is unreadable
	uint64_t bytes = 0;			// meta.img + pages.img on disk, all processes
	std::optional<Error> damage;		// verification failure (any process)
	std::vector<uint32_t> parents;		// INFO parent of every process image
};

uint64_t file_bytes(const std::string &path)
{
	struct stat st;
	return stat(path.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
}

Row inspect_row(const Store &store, uint32_t n)
{
	Row r;
	r.number = n;
	const std::string d = store.path(n);
	auto meta = store.load_meta(n);
	if (meta)
		r.info = meta->info;
	// Every process image of a tree checkpoint; just DIR/N otherwise.
	const uint32_t root = meta ? meta->info.pid : 0;
	const std::vector<uint32_t> pids = meta ? image_pids(*meta) : std::vector<uint32_t>{0};
	for (uint32_t pid : pids) {
		const std::string pd = process_dir(d, pid, root);
		r.bytes += file_bytes(pd + "/" + kMetaFile) + file_bytes(pd + "/" + kPagesFile) +
			   file_bytes(pd + "/" + kPagesZstFile);
		if (!r.damage) {
			if (auto v = verify_checkpoint_dir(pd); !v)
				r.damage = wrap(v.error(), process_prefix(pid, root)).value();
		}
		if (pid == root) {
			if (meta && meta->info.parent)
				r.parents.push_back(meta->info.parent);
			continue;
		}
		auto m = store.load_meta(n, pid, root);
		if (!m) {
			if (!r.damage)
				r.damage = m.error();
			continue;
		}
		if (m->info.parent &&
		    std::find(r.parents.begin(), r.parents.end(), m->info.parent) == r.parents.end())
			r.parents.push_back(m->info.parent);
	}
	return r;
}

// "ok", "damaged", or why a chain of one of its processes is broken.
std::string row_status(const std::map<uint32_t, Row> &rows, const Row &r, int depth = 0)
{
	if (r.damage || !r.info)
		return "damaged";
	if (depth > int(kMaxChainLinks))
		return "chain too long";
	for (uint32_t parent : r.parents) {
		auto p = rows.find(parent);
		if (parent >= r.number || p == rows.end())
			return "parent " + std::to_string(parent) + " missing";
		if (p->second.damage || !p->second.info)
			return "parent " + std::to_string(parent) + " damaged";
		const std::string up = row_status(rows, p->second, depth + 1);
		if (up != "ok")
			return up;
	}
	return "ok";
}

// The table of every checkpoint; false if any is damaged or unrestorable.
bool print_store(const Store &store, const std::vector<uint32_t> &numbers,
		 std::optional<uint32_t> latest)
{
	std::map<uint32_t, Row> rows;
	for (uint32_t n : numbers)
		rows[n] = inspect_row(store, n);

	printf("store %s: %zu checkpoint%s", store.dir().c_str(), numbers.size(),
	       numbers.size() == 1 ? "" : "s");
	if (latest)
		printf(", latest %u", *latest);
	printf("\n");
	printf("    %8s  %-12s %10s %12s %11s %10s  %s\n", "number", "kind", "data pages",
	       "parent pages", "stopped ms", "on disk", "status");
	bool ok = true;
	for (const auto &[n, r] : rows) {
		std::string kind = "?", data = "?", parent = "?", stopped = "?";
		if (r.info) {
			kind = r.info->parent ? "incr on " + std::to_string(r.info->parent) : "full";
			data = std::to_string(r.info->pages_nr);
			parent = std::to_string(r.info->parent_pages_nr);
			stopped = fmt::format("{:.3f}", r.info->stopped_ns / 1e6);
		}
		const std::string status = row_status(rows, r);
		ok &= status == "ok";
		printf("  %s %8u  %-12s %10s %12s %11s %10s  %s\n",
		       latest && *latest == n ? "*" : " ", n, kind.c_str(), data.c_str(),
		       parent.c_str(), stopped.c_str(), human_size(r.bytes).c_str(),
		       status.c_str());
	}
	if (latest)
		printf("  (* latest)\n");
	for (const auto &[n, r] : rows)
		if (r.damage)
			printf("  checkpoint %u: %s\n", n, r.damage->str().c_str());
	return ok;
}

// The processes of a tree checkpoint (root: its root image): one line each,
// in tree order, with its chain and its own image's size. runs/links: page
// runs of the other processes' chains, longest chain.
std::string tree_table(const Store &store, const Checkpoint &root, size_t *runs, size_t *links)
{
	const uint32_t rpid = root.info.pid;
	size_t live = 0, zombies = 0, threads = 0;
	for (const ProcInfo &p : root.tree) {
		(p.zombie ? zombies : live)++;
		threads += p.nr_threads;
	}
	constexpr const char *row = "  {:>8} {:>8} {:>8} {:>8} {:>7}  {:<12} {:>10}  {}\n";
	std::string out = fmt::format("tree: {} processes ({} zombie{}), {} threads\n",
				      live + zombies, zombies, zombies == 1 ? "" : "s", threads);
	out += fmt::format(row, "pid", "ppid", "pgid", "sid", "threads", "state", "on disk", "chain");
	for (const ProcInfo &p : root.tree) {
		std::string state = p.pid == rpid ? "root" : "live";
		std::string chain = "-", size = "-";
		if (p.zombie) {
			const int st = int(p.exit_code);
			state = WIFSIGNALED(st) ? "zombie sig " + std::to_string(WTERMSIG(st))
						: "zombie " + std::to_string(WEXITSTATUS(st));
		} else {
			const std::string d = process_dir(store.path(root.number), p.pid, rpid);
			size = human_size(file_bytes(d + "/" + kMetaFile) +
					  file_bytes(d + "/" + kPagesFile) +
					  file_bytes(d + "/" + kPagesZstFile));
			if (auto cn = store.chain_numbers(root.number, p.pid, rpid)) {
				chain.clear();
				for (uint32_t k : *cn)
					chain += (chain.empty() ? "" : " <- ") + std::to_string(k);
				*links = std::max(*links, cn->size());
			}
			if (p.pid != rpid)
				if (auto cc = store.load_chain(root.number, p.pid, rpid))
					for (const Checkpoint &l : *cc)
						*runs += l.pagemap.size();
		}
		// clone(CLONE_FILES / CLONE_FS) sharing, restored by clone3().
		if (p.files_with)
			chain += fmt::format("  (fd table of pid {})", p.files_with);
		if (p.fs_with)
			chain += fmt::format("  (cwd, root, umask of pid {})", p.fs_with);
		out += fmt::format(row, p.pid, p.ppid, p.pgid, p.sid, p.nr_threads, state, size, chain);
	}
	return out;
}

// Details of one checkpoint and its chain; reports and returns false if a
// link is damaged or the chain misses pages.
bool print_details(const Store &store, uint32_t n)
{
	auto chain = store.load_chain(n);
	Result<std::vector<PageSource>> sources;
	if (chain) {
		std::vector<const Checkpoint *> links;
		for (const Checkpoint &c : *chain)
			links.push_back(&c);
		sources = resolve_chain(links);
	}
	const Error *e = !chain ? &chain.error() : !sources ? &sources.error() : nullptr;
	if (e) {
		printf("checkpoint %u: %s\n", n, store.path(n).c_str());
		printf("checksums: FAILED: %s\n", e->msg.c_str());
		fflush(stdout);
		std::string prefix = "checkpoint " + std::to_string(n) + ": ";
		report_error("inspect", e->msg.rfind("checkpoint ", 0) == 0 ? *e
					: wrap(*e, prefix).value());
		return false;
	}
	const Checkpoint &c = chain->back();

	// Pages each link supplies to a restore of this checkpoint.
	std::vector<uint64_t> from(chain->size());
	for (const PageSource &p : *sources)
		if (p.link < from.size())
			from[p.link] += p.nr_pages;
	std::string links;
	uint64_t total = 0;
	for (size_t i = 0; i < chain->size(); i++) {
		const Checkpoint &l = (*chain)[i];
		links += (i ? " <- " : "") + std::to_string(l.number) + " (" +
			 (l.info.parent ? "" : "full, ") + std::to_string(from[i]) + " pages)";
		total += from[i];
	}
	std::string lines = "  chain: " + links +
			    fmt::format("; a restore reads {} pages from {} checkpoint{}\n", total,
					chain->size(), chain->size() == 1 ? "" : "s");
	if (!c.info.full_reason.empty())
		lines += "  full because: " + c.info.full_reason + "\n";
	if (c.info.track_id) {
		lines += fmt::format("  tracking id {:016x}\n", c.info.track_id);
	}
	if (!c.threads.empty())
		lines += "  threads: " + std::to_string(c.threads.size() + 1) + " (leader and TIDs" +
			 [&] {
				 std::string t;
				 for (const ThreadInfo &th : c.threads)
					 t += " " + std::to_string(th.tid);
				 return t;
			 }() + ")\n";
	size_t tree_runs = 0, tree_links = chain->size();
	if (c.is_tree()) {
		// Every other process image's chain must be whole too.
		if (auto v = store.verify(n); !v) {
			printf("checkpoint %u: %s\n", n, store.path(n).c_str());
			printf("checksums: FAILED: %s\n", v.error().msg.c_str());
			fflush(stdout);
			report_error("inspect", v.error());
			return false;
		}
		lines += tree_table(store, c, &tree_runs, &tree_links);
	}
	print_checkpoint(c, lines);

	size_t runs = tree_runs;
	for (const Checkpoint &l : *chain)
		runs += l.pagemap.size();
	printf("checksums: all sections OK, %zu page runs OK", runs);
	if (c.is_tree())
		printf(" (%zu process images, chains of up to %zu checkpoints)", image_pids(c).size(),
		       tree_links);
	else if (chain->size() > 1)
		printf(" (in %zu checkpoints)", chain->size());
	printf("\n");
	return true;
}

void run_inspect(const InspectOptions &o)
{
	Store store(o.dir);
	if (o.checkpoint) {
		print_details(store, o.checkpoint);
		return;
	}
	auto latest = store.latest();
	auto numbers = store.list();
	if (!numbers) {
		report_error("inspect", numbers.error());
		return;
	}
	if (!latest && numbers->empty()) {
		report_error("inspect", latest.error());
		return;
	}
	bool ok = print_store(store, *numbers,
			      latest ? std::optional<uint32_t>(*latest) : std::nullopt);
	printf("\n");
	if (!latest) {
		fflush(stdout);
		report_error("inspect", latest.error());
		return;
	}
	if (print_details(store, *latest) && !ok) {
		fflush(stdout);
		report_error("inspect", Error{0, "some checkpoints of " + store.dir() +
							 " are damaged or miss their parent"});
	}
}

} // namespace

void setup_inspect(CLI::App &app)
{
	auto opt = std::make_shared<InspectOptions>();
	CLI::App *sub = app.add_subcommand(
		"inspect", "List a store's checkpoints and chains, summarize one, verify checksums");
	sub->add_option("-D,--dir", opt->dir, "Image store directory")->required();
	sub->add_option("--checkpoint", opt->checkpoint, "Checkpoint number (default: latest)")
		->check(CLI::Range(1u, UINT32_MAX));
	sub->callback([opt] { run_inspect(*opt); });
}

} // namespace amber
