// SPDX-License-Identifier: GPL-2.0
/*
 * fpu: a long floating-point computation whose state lives in registers.
 *
 * Each step runs an AVX loop (eight ymm accumulators, loaded once and kept in
 * ymm0-ymm7 for the whole loop, written in asm so the compiler cannot spill
 * them) and an x87 loop (two 80-bit accumulators on the x87 stack), then
 * prints a checksum of the accumulators' bits. MXCSR is set to round toward
 * zero with flush-to-zero and the x87 control word to round down, so a lost
 * control register changes every later checksum; both are also checked
 * after each step. A checkpoint almost always lands inside one of the loops.
 *
 * Usage: fpu [--steps N] [--iters M]
 * Output: "start", "step I CHECKSUM" per step, "final CHECKSUM", "PASS".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MXCSR_RZ_FTZ	0xff80	/* all exceptions masked, RC = toward zero, FTZ */
#define X87_CW_DOWN	0x077f	/* all exceptions masked, PC = 64 bit, RC = down */

static double acc[8][4] __attribute__((aligned(32)));
static const double mul[4] __attribute__((aligned(32))) = {
	0.99999990000000001, 0.99999991234567, 0.99999993456789, 0.99999997777777,
};
static const double scale[4] __attribute__((aligned(32))) = {
	1.0000001e-7, 1.7e-7, 2.3e-7, 3.1e-7,
};
static long double x87acc[2];
static const double x87k = 0.999999123456789, x87c = 1.000000123e-6;
static const double x87k2 = 0.99999876543;

/*
 * acc0 = acc0 * mul + scale; acc(k) = acc(k) * mul + acc(k-1) * scale;
 * every iteration also rotates the lanes of acc7 into acc6.
 */
static void avx_loop(unsigned long iters)
{
	asm volatile(
		"vmovapd   0(%[acc]), %%ymm0\n\t"
		"vmovapd  32(%[acc]), %%ymm1\n\t"
		"vmovapd  64(%[acc]), %%ymm2\n\t"
		"vmovapd  96(%[acc]), %%ymm3\n\t"
		"vmovapd 128(%[acc]), %%ymm4\n\t"
		"vmovapd 160(%[acc]), %%ymm5\n\t"
		"vmovapd 192(%[acc]), %%ymm6\n\t"
		"vmovapd 224(%[acc]), %%ymm7\n\t"
		"vmovapd (%[mul]), %%ymm8\n\t"
		"vmovapd (%[scale]), %%ymm9\n\t"
		"1:\n\t"
		"vmulpd %%ymm8, %%ymm7, %%ymm7\n\t"
		"vmulpd %%ymm9, %%ymm6, %%ymm10\n\t"
		"vaddpd %%ymm10, %%ymm7, %%ymm7\n\t"
		"vmulpd %%ymm8, %%ymm6, %%ymm6\n\t"
		"vmulpd %%ymm9, %%ymm5, %%ymm10\n\t"
		"vaddpd %%ymm10, %%ymm6, %%ymm6\n\t"
		"vperm2f128 $1, %%ymm7, %%ymm7, %%ymm11\n\t"
		"vmulpd %%ymm9, %%ymm11, %%ymm11\n\t"
		"vaddpd %%ymm11, %%ymm6, %%ymm6\n\t"
		"vmulpd %%ymm8, %%ymm5, %%ymm5\n\t"
		"vmulpd %%ymm9, %%ymm4, %%ymm10\n\t"
		"vaddpd %%ymm10, %%ymm5, %%ymm5\n\t"
		"vmulpd %%ymm8, %%ymm4, %%ymm4\n\t"
		"vmulpd %%ymm9, %%ymm3, %%ymm10\n\t"
		"vaddpd %%ymm10, %%ymm4, %%ymm4\n\t"
		"vmulpd %%ymm8, %%ymm3, %%ymm3\n\t"
		"vmulpd %%ymm9, %%ymm2, %%ymm10\n\t"
		"vaddpd %%ymm10, %%ymm3, %%ymm3\n\t"
		"vmulpd %%ymm8, %%ymm2, %%ymm2\n\t"
		"vmulpd %%ymm9, %%ymm1, %%ymm10\n\t"
		"vaddpd %%ymm10, %%ymm2, %%ymm2\n\t"
		"vmulpd %%ymm8, %%ymm1, %%ymm1\n\t"
		"vmulpd %%ymm9, %%ymm0, %%ymm10\n\t"
		"vaddpd %%ymm10, %%ymm1, %%ymm1\n\t"
		"vmulpd %%ymm8, %%ymm0, %%ymm0\n\t"
		"vaddpd %%ymm9, %%ymm0, %%ymm0\n\t"
		"dec %[n]\n\t"
		"jnz 1b\n\t"
		"vmovapd %%ymm0,   0(%[acc])\n\t"
		"vmovapd %%ymm1,  32(%[acc])\n\t"
		"vmovapd %%ymm2,  64(%[acc])\n\t"
		"vmovapd %%ymm3,  96(%[acc])\n\t"
		"vmovapd %%ymm4, 128(%[acc])\n\t"
		"vmovapd %%ymm5, 160(%[acc])\n\t"
		"vmovapd %%ymm6, 192(%[acc])\n\t"
		"vmovapd %%ymm7, 224(%[acc])\n\t"
		"vzeroupper\n\t"
		: [n] "+r"(iters)
		: [acc] "r"(acc), [mul] "r"(mul), [scale] "r"(scale)
		: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
		  "xmm8", "xmm9", "xmm10", "xmm11", "memory", "cc");
}

/* x0 = x0 * k + c; x1 = x1 * k2 + x0, both kept on the x87 stack. */
static void x87_loop(unsigned long iters)
{
	asm volatile(
		"fldt %1\n\t"
		"fldt %0\n\t"
		"1:\n\t"
		"fmull %3\n\t"
		"faddl %4\n\t"
		"fxch %%st(1)\n\t"
		"fmull %5\n\t"
		"fadd %%st(1), %%st\n\t"
		"fxch %%st(1)\n\t"
		"dec %2\n\t"
		"jnz 1b\n\t"
		"fstpt %0\n\t"
		"fstpt %1\n\t"
		: "+m"(x87acc[0]), "+m"(x87acc[1]), "+r"(iters)
		: "m"(x87k), "m"(x87c), "m"(x87k2)
		: "st", "st(1)", "memory", "cc");
}

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdULL;
}

static uint64_t checksum(void)
{
	uint64_t h = 0, v;
	int i, j;

	for (i = 0; i < 8; i++)
		for (j = 0; j < 4; j++) {
			memcpy(&v, &acc[i][j], 8);
			h = mix(h, v);
		}
	for (i = 0; i < 2; i++) {
		unsigned char b[16] = { 0 };

		memcpy(b, &x87acc[i], 10);
		memcpy(&v, b, 8);
		h = mix(h, v);
		memcpy(&v, b + 8, 8);
		h = mix(h, v & 0xffff);
	}
	return h;
}

static void check_control(int step)
{
	unsigned int mxcsr;
	unsigned short cw;

	asm volatile("stmxcsr %0" : "=m"(mxcsr));
	asm volatile("fnstcw %0" : "=m"(cw));
	/* Ignore the sticky exception flags (bits 0-5). */
	if ((mxcsr & ~0x3fu) != MXCSR_RZ_FTZ || cw != X87_CW_DOWN) {
		printf("FAIL step %d: mxcsr %#x cw %#x\n", step, mxcsr, cw);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	unsigned long iters = 200000;
	unsigned int mxcsr = MXCSR_RZ_FTZ;
	unsigned short cw = X87_CW_DOWN;
	int steps = 60, i, j;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--steps") && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
			iters = strtoul(argv[++i], NULL, 0);
		else {
			fprintf(stderr, "usage: fpu [--steps N] [--iters M]\n");
			return 2;
		}
	}
	if (!iters)
		iters = 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; i < 8; i++)
		for (j = 0; j < 4; j++)
			acc[i][j] = 1.0 + i * 0.125 + j * 0.0625;
	x87acc[0] = 1.0L;
	x87acc[1] = 2.0L;
	asm volatile("ldmxcsr %0" : : "m"(mxcsr));
	asm volatile("fldcw %0" : : "m"(cw));
	printf("start\n");
	for (i = 0; i < steps; i++) {
		avx_loop(iters);
		x87_loop(iters / 4 + 1);
		check_control(i);
		printf("step %d %016llx\n", i, (unsigned long long)checksum());
	}
	printf("final %016llx\n", (unsigned long long)checksum());
	printf("PASS\n");
	return 0;
}
