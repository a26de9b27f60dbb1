// SPDX-License-Identifier: GPL-2.0
// amber inspect -D DIR [--checkpoint N]: a human summary of a checkpoint.
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <ctime>

#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <linux/amber.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "commands.h"
#include "image.h"
#include "store.h"

namespace amber {

namespace {

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
	char buf[32];
	if (u == 0)
		snprintf(buf, sizeof(buf), "%" PRIu64 " B", n);
	else
		snprintf(buf, sizeof(buf), "%.1f %s", v, units[u]);
	return buf;
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
		if (h.empty()) {
			char buf[32];
			snprintf(buf, sizeof(buf), "handler %#" PRIx64, a.handler);
			h = buf;
		}
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

void print_checkpoint(const Checkpoint &c)
{
	const InfoSection &in = c.info;
	printf("checkpoint %u: %s\n", c.number, c.dir.c_str());
	printf("  pid %u, comm \"%s\", taken %s on %s, tools %s\n", in.pid, c.task.comm.c_str(),
	       time_str(in.time_ns).c_str(), in.hostname.c_str(), in.tool_version.c_str());
	printf("  stopped %.3f ms, pages %s", in.stopped_ns / 1e6, human_size(in.pages_bytes).c_str());
	if (in.parent)
		printf(", parent checkpoint %u", in.parent);
	printf("\n");
	printf("  exe %s, cwd %s, umask %04o, uid %u gid %u\n", c.task.exe.c_str(),
	       c.task.cwd.c_str(), c.task.umask, c.task.uid, c.task.gid);

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
		printf(" %s%s%s\n", open_flags_str(f.flags).c_str(), f.cloexec ? " cloexec" : "",
		       f.tty ? " tty" : "");
	}

	print_regs(c.regs);
	print_fpu(c.fpu);
	print_signals(c.signals);
}

void run_inspect(const InspectOptions &o)
{
	Store store(o.dir);
	auto n = store.resolve(o.checkpoint ? std::optional<uint32_t>(o.checkpoint) : std::nullopt);
	if (!n) {
		report_error("inspect", n.error());
		return;
	}
	auto c = store.load(*n);
	if (!c) {
		printf("checkpoint %u: %s\n", *n, store.path(*n).c_str());
		printf("checksums: FAILED: %s\n", c.error().msg.c_str());
		fflush(stdout);
		report_error("inspect", wrap(c.error(), "checkpoint " + std::to_string(*n) + ": ")
						.value());
		return;
	}
	print_checkpoint(*c);
	printf("checksums: all sections OK, %zu page runs OK\n", c->pagemap.size());
}

} // namespace

void setup_inspect(CLI::App &app)
{
	auto opt = std::make_shared<InspectOptions>();
	CLI::App *sub = app.add_subcommand("inspect", "Summarize a checkpoint and verify its checksums");
	sub->add_option("-D,--dir", opt->dir, "Image store directory")->required();
	sub->add_option("--checkpoint", opt->checkpoint, "Checkpoint number (default: latest)")
		->check(CLI::Range(1u, UINT32_MAX));
	sub->callback([opt] { run_inspect(*opt); });
}

} // namespace amber
