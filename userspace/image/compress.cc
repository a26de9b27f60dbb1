// SPDX-License-Identifier: GPL-2.0
// Compressed pages files (compress.h).
#include <algorithm>
#include <mutex>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "common/io.h"
#include "image/compress.h"

namespace amber {

struct PagesCache {
	std::mutex lock;	// protects memfd
	UniqueFd memfd;		// the decompressed pages file, sealed
};

std::shared_ptr<PagesCache> new_pages_cache()
{
	return std::make_shared<PagesCache>();
}

namespace {

// Largest zstd window a pages file may need (2^27 = 128 MiB, libzstd's own
// default limit): what decompressing costs beyond the output.
constexpr int kWindowLogMax = 27;
constexpr size_t kChunk = size_t(4) << 20;

struct CctxFree {
	void operator()(ZSTD_CCtx *c) const { ZSTD_freeCCtx(c); }
};
struct DctxFree {
	void operator()(ZSTD_DCtx *d) const { ZSTD_freeDCtx(d); }
};

// Worker threads for compressing: the CPUs we may run on, at most 4, 0
// (compress on this thread) when libzstd is built without them.
int zstd_workers()
{
	cpu_set_t set;
	int cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
	ZSTD_bounds b = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers);
	if (ZSTD_isError(b.error) || b.upperBound < 1 || cpus < 2)
		return 0;
	return std::min({cpus, 4, b.upperBound});
}

Result<void> zstd_check(size_t r, const std::string &what)
{
	if (ZSTD_isError(r))
		return fail(EINVAL, what + ": " + ZSTD_getErrorName(r));
	return {};
}

} // namespace

Result<CompressStats> compress_file(const std::string &in_path, const std::string &out_path,
				    int level)
{
	UniqueFd in = AMBER_TRY(open_file(in_path, O_RDONLY));
	struct stat st;
	if (fstat(in.get(), &st) < 0)
		return fail_errno("stat " + in_path);
	UniqueFd out(open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	if (!out)
		return fail_errno("cannot create " + out_path);
	std::unique_ptr<ZSTD_CCtx, CctxFree> cctx(ZSTD_createCCtx());
	if (!cctx)
		return fail(ENOMEM, out_path + ": cannot create a zstd context");
	const std::string what = "compress " + in_path;
	AMBER_TRY(zstd_check(ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, level),
			     what));
	// zstd's own XXH64 of the content: damage is found while
	// decompressing, before the runs' checksums are.
	AMBER_TRY(zstd_check(ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1), what));
	if (int w = zstd_workers())
		AMBER_TRY(zstd_check(ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_nbWorkers, w), what));
	AMBER_TRY(zstd_check(ZSTD_CCtx_setPledgedSrcSize(cctx.get(), uint64_t(st.st_size)), what));

	std::vector<uint8_t> obuf(ZSTD_CStreamOutSize() * 16);
	CompressStats s;
	s.in_bytes = uint64_t(st.st_size);
	// Feeds one piece of input (or the end, with ZSTD_e_end) and writes
	// what zstd gives back.
	auto feed = [&](const uint8_t *p, size_t n, ZSTD_EndDirective mode) -> Result<void> {
		ZSTD_inBuffer ib = {p, n, 0};
		for (;;) {
			ZSTD_outBuffer ob = {obuf.data(), obuf.size(), 0};
			size_t left = ZSTD_compressStream2(cctx.get(), &ob, &ib, mode);
			AMBER_TRY(zstd_check(left, what));
			if (ob.pos) {
				AMBER_TRY(write_all(out.get(), ByteView(obuf.data(), ob.pos), out_path));
				s.out_bytes += ob.pos;
			}
			if (mode == ZSTD_e_end ? left == 0 : ib.pos == ib.size)
				return {};
		}
	};
	// The pages as they lie in the page cache (no copy), read() for what
	// could not be mapped.
	Result<void> fed;
	uint64_t rest = for_each_mapped(in.get(), 0, s.in_bytes, [&](const uint8_t *p, size_t n) {
		if (fed)
			fed = feed(p, n, ZSTD_e_continue);
	});
	AMBER_TRY(fed);
	std::vector<uint8_t> ibuf;
	for (uint64_t off = s.in_bytes - rest; off < s.in_bytes;) {
		ibuf.resize(std::min<uint64_t>(kChunk, s.in_bytes - off));
		AMBER_TRY(pread_full(in.get(), ibuf.data(), ibuf.size(), off));
		AMBER_TRY(feed(ibuf.data(), ibuf.size(), ZSTD_e_continue));
		off += ibuf.size();
	}
	AMBER_TRY(feed(nullptr, 0, ZSTD_e_end));
	if (fsync(out.get()) < 0)
		return fail_errno("fsync " + out_path);
	return s;
}

Result<CompressStats> compress_pages(const std::string &dir, int level)
{
	const std::string from = dir + "/" + kPagesFile;
	const std::string to = dir + "/" + kPagesZstFile;
	CompressStats s = AMBER_TRY(compress_file(from, to, level));
	if (unlink(from.c_str()) < 0)
		return fail_errno("cannot remove " + from);
	return s;
}

Result<UniqueFd> decompress_to_memfd(int in, uint64_t size, const std::string &name)
{
	const std::string records = " bytes meta.img records";
	const uint64_t phys = uint64_t(sysconf(_SC_PHYS_PAGES)) * uint64_t(sysconf(_SC_PAGESIZE));
	if (size > phys)
		return fail(EFBIG, name + ": meta.img records " + std::to_string(size) +
					   " bytes uncompressed, more than this machine's memory");
	UniqueFd mfd(memfd_create("amber-pages", MFD_CLOEXEC | MFD_ALLOW_SEALING));
	if (!mfd)
		return fail_errno(name + ": memfd_create");
	// The output goes straight into the memfd's pages, one byte more than
	// size: zstd cannot write further, and a byte there is one too many.
	// Nothing is copied once more. MAP_POPULATE allocates the shmem pages
	// in one go (faulting them in one by one took about as long as
	// decompressing); size is bounded by the image's PAGEMAP and memory.
	const size_t cap = size_t(size) + 1;
	if (ftruncate(mfd.get(), off_t(cap)) < 0)
		return fail_errno(name + ": cannot size the memfd to " + std::to_string(size) +
				  " bytes");
	void *map = mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, mfd.get(), 0);
	if (map == MAP_FAILED)
		return fail_errno(name + ": cannot map the memfd");
	struct Unmap {
		void *p;
		size_t n;
		~Unmap()
		{
			if (p)
				munmap(p, n);
		}
	} unmap{map, cap};

	std::unique_ptr<ZSTD_DCtx, DctxFree> dctx(ZSTD_createDCtx());
	if (!dctx)
		return fail(ENOMEM, name + ": cannot create a zstd context");
	AMBER_TRY(zstd_check(ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax,
						    kWindowLogMax), name));
	const std::string more = name + ": decompresses to more than the " +
				 std::to_string(size) + records;
	ZSTD_outBuffer ob = {map, cap, 0};
	std::vector<uint8_t> ibuf(kChunk);
	bool ended = false;	// the frame is complete
	uint64_t off = 0;
	for (;;) {
		ssize_t n = pread(in, ibuf.data(), ibuf.size(), off_t(off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail_errno(name + ": read");
		if (n == 0)
			break;
		off += uint64_t(n);
		if (ended)
			return fail(EBADMSG, name + ": bytes after the end of its zstd frame");
		ZSTD_inBuffer ib = {ibuf.data(), size_t(n), 0};
		while (ib.pos < ib.size && !ended) {
			const size_t in_pos = ib.pos, out_pos = ob.pos;
			size_t r = ZSTD_decompressStream(dctx.get(), &ob, &ib);
			if (ZSTD_isError(r))
				return fail(EBADMSG, name + ": damaged (zstd: " +
							     ZSTD_getErrorName(r) + ")");
			if (ob.pos > size)
				return fail(EBADMSG, more);
			ended = r == 0;
			if (!ended && ib.pos == in_pos && ob.pos == out_pos)
				return fail(EBADMSG, name + ": damaged (zstd makes no progress)");
		}
		if (ib.pos < ib.size)
			return fail(EBADMSG, name + ": bytes after the end of its zstd frame");
	}
	if (!ended) {
		// zstd may still hold output it had no room for.
		ZSTD_inBuffer none = {nullptr, 0, 0};
		size_t r = ZSTD_decompressStream(dctx.get(), &ob, &none);
		if (!ZSTD_isError(r) && ob.pos > size)
			return fail(EBADMSG, more);
		return fail(EBADMSG, name + ": truncated (its zstd frame does not end; " +
					     std::to_string(ob.pos) + " of the " +
					     std::to_string(size) + records + " decompressed)");
	}
	if (ob.pos != size)
		return fail(EBADMSG, name + ": decompresses to " + std::to_string(ob.pos) +
					     " bytes, not the " + std::to_string(size) + records);
	munmap(unmap.p, unmap.n);
	unmap.p = nullptr;
	if (ftruncate(mfd.get(), off_t(size)) < 0)
		return fail_errno(name + ": cannot size the memfd to " + std::to_string(size) +
				  " bytes");
	if (fcntl(mfd.get(), F_ADD_SEALS,
		  F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
		return fail_errno(name + ": cannot seal the memfd");
	return mfd;
}

Result<UniqueFd> open_pages(const Checkpoint &c)
{
	if (!c.info.pages_zstd)
		return open_file(c.pages_path, O_RDONLY);
	std::shared_ptr<PagesCache> cache = c.pages_cache ? c.pages_cache : new_pages_cache();
	std::lock_guard<std::mutex> g(cache->lock);
	if (!cache->memfd) {
		UniqueFd in = AMBER_TRY(open_file(c.pages_path, O_RDONLY));
		cache->memfd = AMBER_TRY(decompress_to_memfd(in.get(), c.info.pages_zstd,
							     kPagesZstFile));
	}
	// Read-only and with its own offset, as open() of pages.img gives.
	return open_file("/proc/self/fd/" + std::to_string(cache->memfd.get()), O_RDONLY);
}

} // namespace amber
