// SPDX-License-Identifier: GPL-2.0
#include <string.h>
#include "minimake.h"

void reverse_str(char *s)
{
	size_t i, n = strlen(s);

	for (i = 0; i < n / 2; i++) {
		char c = s[i];

		s[i] = s[n - 1 - i];
		s[n - 1 - i] = c;
	}
}
