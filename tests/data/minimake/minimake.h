/* SPDX-License-Identifier: GPL-2.0 */
#ifndef MINIMAKE_H
#define MINIMAKE_H
#include <stddef.h>
#include <stdint.h>

unsigned long count_primes(unsigned long limit);
uint64_t fib_mod(unsigned int n, uint64_t mod);
uint32_t crc32_of(const void *buf, size_t len);
void sort_u32(uint32_t *v, size_t n);
size_t count_words(const char *s);
uint64_t gcd_u64(uint64_t a, uint64_t b);
uint32_t isqrt_u64(uint64_t x);
unsigned int popcount_u64(uint64_t x);
void reverse_str(char *s);
#endif
