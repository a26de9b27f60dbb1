// SPDX-License-Identifier: GPL-2.0
// Exit status and error reporting shared by the subcommands.
#include <cstdio>

#include "cli/commands.h"

namespace amber {

namespace {
int g_exit_status = 0;
}

void set_exit_status(int status)
{
	g_exit_status = status;
}

int exit_status()
{
	return g_exit_status;
}

int report_error(const char *cmd, const Error &e)
{
	fprintf(stderr, "amber %s: %s\n", cmd, e.str().c_str());
	set_exit_status(1);
	return 1;
}

} // namespace amber
