// SPDX-License-Identifier: GPL-2.0
// The running kernel as an image records it (AMBER_INFO_KERNEL,
// AMBER_INFO_VDSO_XXH64), and the check restore makes against it.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace amber {

struct KernelId {
	std::string release;		// uname -r
	uint64_t vdso_xxh64 = 0;	// of this process's vDSO, 0 if it has none
};

// This kernel: its release and its 64-bit vDSO (the one every 64-bit
// process maps: the same bytes in all of them).
Result<KernelId> this_kernel();

// Whether a process captured on kernel @img can run on @cur. Restored, it
// keeps the vDSO addresses it resolved (glibc caches them at startup), so
// the vDSO must be the same bytes; an image that recorded none (older
// than AMBER_INFO_VDSO_XXH64) is checked by the vDSO's size only, as before.
// The error names both kernels.
Result<void> check_kernel(const KernelId &img, const KernelId &cur);

} // namespace amber
