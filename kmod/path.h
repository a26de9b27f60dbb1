/* SPDX-License-Identifier: GPL-2.0 */
/* Paths and stat(2) attributes of the files the image names. */
#ifndef _AMBER_PATH_H
#define _AMBER_PATH_H

struct file;
struct kstat;
struct path;

/* A kmalloc'ed copy of d_path(@path), or an ERR_PTR. */
char *amber_path_dup(const struct path *path);
/* @file's attributes as stat(2) reports them. */
void amber_stat_file(struct file *file, struct kstat *st);

#endif /* _AMBER_PATH_H */
