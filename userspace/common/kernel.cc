// SPDX-License-Identifier: GPL-2.0
#include "common/kernel.h"

#include <cstdio>
#include <cstring>

#include <sys/auxv.h>
#include <sys/utsname.h>
#include <xxhash.h>

namespace amber {

namespace {

// The [vdso] line of /proc/self/maps: its size.
Result<uint64_t> vdso_size(uint64_t start)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return fail_errno("/proc/self/maps");
	char line[512];
	uint64_t size = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (strstr(line, "[vdso]") && sscanf(line, "%lx-%lx", &lo, &hi) == 2 &&
		    lo == start && hi > lo) {
			size = hi - lo;
			break;
		}
	}
	fclose(f);
	if (!size)
		return fail(ENOENT, "/proc/self/maps: no [vdso] at the address AT_SYSINFO_EHDR gives");
	return size;
}

} // namespace

Result<KernelId> this_kernel()
{
	KernelId k;
	struct utsname u;
	if (uname(&u))
		return fail_errno("uname");
	k.release = u.release;
	uint64_t at = getauxval(AT_SYSINFO_EHDR);
	if (!at)
		return k;	// booted with vdso=0: nothing to call into
	uint64_t size = AMBER_TRY(vdso_size(at));
	k.vdso_xxh64 = XXH64(reinterpret_cast<const void *>(at), size, 0);
	if (!k.vdso_xxh64)
		k.vdso_xxh64 = 1;	// 0 means "not recorded"
	return k;
}

Result<void> check_kernel(const KernelId &img, const KernelId &cur)
{
	if (!img.vdso_xxh64 || img.vdso_xxh64 == cur.vdso_xxh64)
		return {};
	const std::string taken = img.release.empty() ? "another kernel" : "Linux " + img.release;
	return fail(EXDEV, "the image was taken on " + taken +
			   ", whose vDSO differs from this kernel's (Linux " + cur.release +
			   "): the restored process would call the vDSO at addresses resolved "
			   "for the other one; restore it on the kernel it was taken on");
}

} // namespace amber
