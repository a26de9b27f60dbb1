// SPDX-License-Identifier: GPL-2.0
// The kernel an image records and the check restore makes (common/kernel.h).
#include <gtest/gtest.h>

#include <cerrno>

#include <sys/utsname.h>

#include "common/kernel.h"

using namespace amber;

TEST(Kernel, ThisKernelNamesItsReleaseAndHashesItsVdso)
{
	auto k = this_kernel();
	ASSERT_TRUE(k) << k.error().msg;
	struct utsname u;
	ASSERT_EQ(0, uname(&u));
	EXPECT_EQ(std::string(u.release), k->release);
	EXPECT_NE(0u, k->vdso_xxh64);	// the host's processes have a vDSO
	auto again = this_kernel();
	ASSERT_TRUE(again);
	EXPECT_EQ(k->vdso_xxh64, again->vdso_xxh64);
}

TEST(Kernel, SameVdsoRestores)
{
	EXPECT_TRUE(check_kernel({"6.1.0-57-amd64", 42}, {"6.1.0-57-amd64", 42}));
	// The release alone does not matter: a rebuilt kernel with the same vDSO
	// runs the process the same.
	EXPECT_TRUE(check_kernel({"6.1.0-56-amd64", 42}, {"6.1.0-57-amd64", 42}));
	// Images from before the vDSO was recorded: checked as before (its size).
	EXPECT_TRUE(check_kernel({"", 0}, {"6.12.118+deb12-amd64", 7}));
}

TEST(Kernel, OtherVdsoIsRefusedNamingBothKernels)
{
	auto r = check_kernel({"6.1.0-57-amd64", 42}, {"6.12.118+deb12-amd64", 43});
	ASSERT_FALSE(r);
	EXPECT_EQ(EXDEV, r.error().err);
	EXPECT_NE(std::string::npos, r.error().msg.find("Linux 6.1.0-57-amd64")) << r.error().msg;
	EXPECT_NE(std::string::npos, r.error().msg.find("Linux 6.12.118+deb12-amd64")) << r.error().msg;
	EXPECT_NE(std::string::npos, r.error().msg.find("vDSO")) << r.error().msg;
	// A kernel booted without a vDSO cannot run a process that used one.
	EXPECT_FALSE(check_kernel({"6.1.0-57-amd64", 42}, {"6.1.0-57-amd64", 0}));
}
