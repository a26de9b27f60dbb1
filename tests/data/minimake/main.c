// SPDX-License-Identifier: GPL-2.0
#include <stdio.h>
#include <stdlib.h>
#include "minimake.h"
#include "version.h"

int main(void)
{
	static const char text[] = "the quick brown fox jumps over the lazy dog";
	char word[] = "amber";
	uint32_t v[64], x = 12345, i;
	int sorted = 1;

	for (i = 0; i < 64; i++) {
		x = x * 1103515245u + 12345u;
		v[i] = x >> 8;
	}
	sort_u32(v, 64);
	for (i = 1; i < 64; i++)
		sorted &= v[i - 1] <= v[i];
	reverse_str(word);
	printf("minimake %s: primes %lu fib %llu crc %08x words %zu sorted %d gcd %llu "
	       "isqrt %u popcount %u %s\n",
	       MINIMAKE_VERSION, count_primes(10000),
	       (unsigned long long)fib_mod(90, 1000000007ull), crc32_of(text, sizeof(text) - 1),
	       count_words(text), sorted, (unsigned long long)gcd_u64(1071, 462),
	       isqrt_u64(1000000007ull), popcount_u64(0xdeadbeefull), word);
	return 0;
}
