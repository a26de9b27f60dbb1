// SPDX-License-Identifier: GPL-2.0
/*
 * amber: transparent checkpoint/restart of unmodified Linux processes.
 * See Documentation/design.md.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <net/genetlink.h>

#include <linux/amber.h>

#include "ksyms.h"
#include "netlink.h"
#include "lazy.h"
#include "nethold.h"
#include "session.h"
#include "track.h"

static int __init amber_init(void)
{
	int err;

	err = amber_ksyms_init();
	if (err)
		return err;
	err = amber_sessions_init();
	if (err)
		return err;
	err = amber_nethold_init();
	if (err)
		goto err_sessions_exit;
	err = amber_lazy_init();
	if (err)
		goto err_nethold_exit;
	err = amber_netlink_init();
	if (err)
		goto err_lazy_exit;
	pr_info("version %s loaded\n", AMBER_VERSION_STRING);
	return 0;

err_lazy_exit:
	amber_lazy_exit();
err_nethold_exit:
	amber_nethold_exit();
err_sessions_exit:
	amber_sessions_exit();
	return err;
}

static void __exit amber_exit(void)
{
	/* No new requests, and every running handler has returned. */
	amber_netlink_exit();
	/* Lazy fills lose their pin; fillers still running go on. */
	amber_lazy_exit();
	/* Resume held checkpoints, kill held restores, wait for their task_works. */
	amber_sessions_exit();
	/* No callback is left to use the table. */
	amber_track_exit();
	/* Every request is gone: drop the holds no restore released. */
	amber_nethold_exit();
}

module_init(amber_init);
module_exit(amber_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("amber: transparent process checkpoint/restart");
MODULE_VERSION(AMBER_VERSION_STRING);
MODULE_ALIAS_GENL_FAMILY(AMBER_FAMILY_NAME);
