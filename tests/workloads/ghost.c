// SPDX-License-Identifier: GPL-2.0
/*
 * ghost: open files whose names are gone (unlinked), checked after restore.
 *
 *   fd 10  DIR/ghost-a, O_RDWR, SIZE bytes of a pattern, offset 1234
 *   fd 11  dup(10): the same open file description
 *   fd 12  DIR/ghost-a opened again, O_WRONLY | O_APPEND: the same inode,
 *          another description
 *   fd 13  DIR/ghost-b, empty, mode 0400, O_RDONLY
 * then both names are unlinked. With --fork a child inherits them all.
 *
 * Prints "parent ready pid N" (and "child ready pid N"), waits for --go FILE
 * to exist, then checks: st_nlink 0, sizes, modes, fds 10 and 12 on one
 * inode, fds 10 and 11 one offset (with --fork the child moves the shared
 * offset to 5000 and exits; the parent sees it), O_APPEND kept, the content
 * read from the offset, a write through fd 12 read back through fd 10.
 * Prints PASS, or FAIL lines and exits 1.
 *
 * Usage: ghost --dir DIR --go FILE [--size N] [--fork]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "selfcheck.h"



static unsigned char pat(long i)
{
	return (unsigned char)(i * 7 + (i >> 9) + 3);
}

static void check_common(long size)
{
	struct stat a, b, c;

	CHECK(fstat(10, &a) == 0 && fstat(12, &b) == 0 && fstat(13, &c) == 0, "fstat");
	CHECK(S_ISREG(a.st_mode) && a.st_nlink == 0, "fd 10: nlink %lu", (unsigned long)a.st_nlink);
	CHECK(a.st_size == size, "fd 10: size %lld, want %ld", (long long)a.st_size, size);
	CHECK((a.st_mode & 07777) == 0640, "fd 10: mode %o", a.st_mode & 07777);
	CHECK(a.st_ino == b.st_ino && a.st_dev == b.st_dev, "fds 10 and 12 are not one inode");
	CHECK(c.st_nlink == 0 && c.st_size == 0, "fd 13: nlink %lu size %lld",
	      (unsigned long)c.st_nlink, (long long)c.st_size);
	CHECK((c.st_mode & 07777) == 0400, "fd 13: mode %o", c.st_mode & 07777);
	CHECK(c.st_ino != a.st_ino, "fds 10 and 13 are one inode");
	CHECK((fcntl(10, F_GETFL) & (O_ACCMODE | O_APPEND)) == O_RDWR, "fd 10: flags %o",
	      fcntl(10, F_GETFL));
	CHECK((fcntl(12, F_GETFL) & (O_ACCMODE | O_APPEND)) == (O_WRONLY | O_APPEND),
	      "fd 12: flags %o", fcntl(12, F_GETFL));
	CHECK((fcntl(13, F_GETFL) & O_ACCMODE) == O_RDONLY, "fd 13: flags %o", fcntl(13, F_GETFL));
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *go = NULL;
	long size = 200000, want_pos = 1234, i;
	unsigned char *buf;
	char a[512], b[512];
	bool do_fork = false;
	pid_t child = 0;
	int fd;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--go") && i + 1 < argc)
			go = argv[++i];
		else if (!strcmp(argv[i], "--size") && i + 1 < argc)
			size = atol(argv[++i]);
		else if (!strcmp(argv[i], "--fork"))
			do_fork = true;
	}
	if (!dir || !go || size < 2000) {
		fprintf(stderr, "usage: ghost --dir DIR --go FILE [--size N>=2000] [--fork]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	buf = malloc(size);
	for (i = 0; i < size; i++)
		buf[i] = pat(i);
	snprintf(a, sizeof(a), "%s/ghost-a", dir);
	snprintf(b, sizeof(b), "%s/ghost-b", dir);
	unlink(a);
	unlink(b);
	fd = open(a, O_RDWR | O_CREAT | O_EXCL, 0640);
	if (fd < 0 || dup2(fd, 10) != 10 || write(10, buf, size) != size ||
	    lseek(10, 1234, SEEK_SET) != 1234 || dup2(10, 11) != 11)
		return 2;
	close(fd);
	fd = open(a, O_WRONLY | O_APPEND);
	if (fd < 0 || dup2(fd, 12) != 12)
		return 2;
	close(fd);
	fd = open(b, O_RDONLY | O_CREAT | O_EXCL, 0400);
	if (fd < 0 || dup2(fd, 13) != 13)
		return 2;
	close(fd);
	if (unlink(a) || unlink(b))
		return 2;

	if (do_fork) {
		child = fork();
		if (child < 0)
			return 2;
		if (child == 0) {
			sc_child_ready(go);
			check_common(size);
			CHECK(lseek(11, 0, SEEK_CUR) == 1234, "fd 11: offset %lld",
			      (long long)lseek(11, 0, SEEK_CUR));
			lseek(10, 5000, SEEK_SET);
			_exit(failed);
		}
		want_pos = 5000;
	}
	sc_parent_ready(go, child);
	check_common(size);
	CHECK(lseek(11, 0, SEEK_CUR) == want_pos, "fd 11: offset %lld, want %ld",
	      (long long)lseek(11, 0, SEEK_CUR), want_pos);
	/* Read from the offset, through fd 11 (shared with 10). */
	{
		unsigned char got[1000];

		CHECK(read(11, got, sizeof(got)) == sizeof(got), "read");
		for (i = 0; i < (long)sizeof(got); i++)
			if (got[i] != pat(want_pos + i))
				break;
		CHECK(i == sizeof(got), "content differs at %ld", want_pos + i);
		CHECK(lseek(10, 0, SEEK_CUR) == want_pos + 1000, "fd 10: offset %lld",
		      (long long)lseek(10, 0, SEEK_CUR));
		/* The last byte, then an append through the other description. */
		CHECK(pread(10, got, 1, size - 1) == 1 && got[0] == pat(size - 1), "last byte");
		CHECK(write(12, "TAIL", 4) == 4, "append");
		CHECK(pread(10, got, 4, size) == 4 && !memcmp(got, "TAIL", 4),
		      "fd 10 does not see fd 12's append");
	}
	check_common(size + 4);
	return sc_done();
}
