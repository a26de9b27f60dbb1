// SPDX-License-Identifier: GPL-2.0
// Planning a restore of a process tree (and of one process's shared
// objects): pure functions of the checkpoints, unit-tested. Nothing here
// makes a system call; restore.cc, tree.cc and the resource files (core.h)
// carry the plans out.
//
// Processes: each stub creates its own children with clone3(set_tid), so
// parent links come back as they were. A session leader calls setsid() and a
// process group leader setpgid(0, 0) before creating children (which then
// inherit them); a process whose group is another member's joins it with
// setpgid() once every process exists (a barrier). A zombie's stub exits with
// the recorded wait status after the barrier; its parent does not reap it.
//
// Shared objects: every fd with a FILE_ID refers to one open file
// description, created once by the tool before the stubs exist and inherited
// by all of them: regular files, directories and devices opened and seeked
// once (a deleted regular file recreated from its saved content first, and
// unlinked again once its descriptions are open); pipes and FIFOs per inode (each end's description shared by every fd
// of its FILE_ID, the queued bytes written in); UNIX socketpairs per pair of
// inodes (each side's queue sent from the other side, with the files in
// flight in it: an fd's description, or a file or pipe end of their own); eventfds, timerfds,
// signalfds and inotifies per description (count, timer and unread ticks,
// mask, watches); one
// memfd per shared anonymous memory object (tree restores only).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <sys/types.h>

#include "image/image.h"
#include "common/result.h"

namespace amber {

// One process of a tree restore.
struct PlannedProc {
	ProcInfo info;
	int parent = -1;		// index into ProcessTree::procs; -1: the root
	std::vector<int> children;	// indexes, in creation order
	bool setsid = false;		// session leader: setsid() before any child
	bool setpgid_self = false;	// group leader: setpgid(0, 0) before any child
	// After the barrier: setpgid(0, join_pgid), or into the restoring
	// tool's own group (the root's group when it was outside the tree).
	bool join = false;
	bool join_tool_group = false;
	uint32_t join_pgid = 0;
	// The root's group was outside the tree: every process recorded in it
	// first tries setpgid(0, outside_pgid) after the barrier (it works
	// when that group still exists in the tool's session, e.g. restoring
	// from the same shell), else stays in / joins the tool's group.
	uint32_t outside_pgid = 0;
	// Shared with clone(): the fd table (CLONE_FILES) and cwd, root and
	// umask (CLONE_FS) of files_owner / fs_owner (indexes, -1: own). Its
	// parent is the owner or shares it too, so the parent's clone3()
	// with CLONE_FILES / CLONE_FS shares it again; the owner's stub sets
	// the fd table (and cwd, umask) up once for all.
	int files_owner = -1;
	int fs_owner = -1;
};

struct ProcessTree {
	std::vector<PlannedProc> procs;	// [0] is the root; parents before children
	int index_of(uint32_t pid) const;
};

// Decides creation order, sessions, groups and zombies from a TREE section
// (root first). The root's session and group, when they are not its own,
// are taken to be outside the tree: the root inherits the restoring tool's.
// Refuses by name what cannot be recreated: a process whose parent is not in
// the tree, a zombie root or a zombie with children, a session whose leader
// is not in the tree and differs from the root's, a group whose leader is
// not in the tree (unless it is the root's outside group), a group in
// another session, duplicate PIDs; an fd table or fs_struct shared with a
// process (FILES_WITH, FS_WITH) that is neither its parent nor shared by its
// parent too (clone() cannot recreate that).
Result<ProcessTree> plan_process_tree(const std::vector<ProcInfo> &tree);

// A live process to restore and its checkpoint (the newest link of its chain).
struct ProcImage {
	uint32_t pid = 0;
	const Checkpoint *ckpt = nullptr;
};

enum class SharedKind { File, Pipe, Socket, Eventfd, Epoll, Timerfd, Signalfd, Inotify, Inet };

// One registration of an epoll description, its target resolved.
struct SharedEpollTfd {
	EpollTfd reg;
	int file = -1;			// the target: index into SharedPlan::files, or
	int outside = -1;		// the tool's own fd (stdio inherited from outside)
};

// One open file description, created by the tool.
struct SharedFile {
	SharedKind kind = SharedKind::File;
	uint64_t file_id = 0;
	uint32_t type = 0;		// enum amber_fd_type
	std::string path;		// to open, or "pipe:[ino]" / "socket:[ino]"
	int flags = 0;			// f_flags without O_CREAT/O_TRUNC/O_EXCL/O_CLOEXEC
	bool seek = false;
	off_t pos = 0;
	int pipe = -1;			// Pipe: index into SharedPlan::pipes
	int sock = -1;			// Socket: index into SharedPlan::sockets
	int side = 0;			// Socket: 0 or 1
	int inet = -1;			// Inet: index into SharedPlan::inets
	int ghost = -1;			// File: index into SharedPlan::ghosts (deleted)
	uint64_t eventfd_count = 0;	// Eventfd
	bool eventfd_sem = false;	// Eventfd: EFD_SEMAPHORE
	std::vector<SharedEpollTfd> epoll;	// Epoll: its interest list
	uint32_t timerfd_clockid = 0;	// Timerfd
	uint32_t timerfd_flags = 0;	// Timerfd: settime flags
	uint64_t timerfd_ticks = 0;	// Timerfd
	uint64_t timerfd_value = 0;	// Timerfd: ns, as FdInfo::timerfd_value
	uint64_t timerfd_interval = 0;	// Timerfd: ns
	uint64_t signalfd_mask = 0;	// Signalfd
	std::vector<InotifyWatch> inotify;	// Inotify: its watches
	std::string owner;		// "pid 12: fd 5" (first fd using it), for messages
};

// A pipe or FIFO, by inode.
struct SharedPipe {
	uint64_t ino = 0;
	std::string path;		// "pipe:[ino]" or the FIFO's path
	bool named = false;		// a FIFO in the file system
	uint32_t size = 0;		// F_SETPIPE_SZ, 0: leave the default
	Bytes queue;			// bytes to write in
	std::vector<int> files;		// SharedFile indexes of its descriptions
};

// A UNIX socket, or a connected pair of them, by inodes. How it is made:
// Pair: socketpair() (both sides in the checkpoint and connected to each
// other, or side 1 a stand-in closed once side 0's queue is sent), then
// named sides bound. Single: socket(), bound, then listen() (a listener)
// or connect() to connect_name (a datagram socket whose peer is not
// connected back, or outside the checkpoint). Accept: side 0 came from
// accept() on listener, side 1 is the client (or a stand-in): the client
// is bound if named, connects to the listener and side 0 is accepted.
// Embryo: a connection waiting in listener's backlog: side 0 is its client
// (or a stand-in, closed once its bytes are sent), bound if named, which
// connects after the accepted ones and sends queue[1] (what the connection
// holds) in.
enum class SocketHow { Pair, Single, Accept, Embryo };
// The credentials a queued UNIX message carries (SCM_CREDENTIALS).
struct MsgCred {
	uint32_t pid = 0, uid = 0, gid = 0;	// pid 0: none
};

struct SharedSocket {
	SocketHow how = SocketHow::Pair;
	uint32_t family = 0;
	uint32_t type = 0;		// SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	uint64_t ino[2] = {0, 0};	// ino[1] 0: the peer is not in the checkpoint
	int file[2] = {-1, -1};		// SharedFile per side; -1: closed once filled
	uint32_t shutdown[2] = {0, 0};	// sk_shutdown per side
	// What side i has to receive: one entry per message for DGRAM and
	// SEQPACKET, at most one (all bytes) for STREAM.
	std::vector<Bytes> queue[2];
	// Per message of queue[i] once one carries credentials (a stream's
	// are then one entry per buffer the kernel had): what it is sent with
	// (SCM_CREDENTIALS), pid 0 for none. Such a queue is sent once every
	// process of the tree exists (SharedFds::deferred).
	std::vector<MsgCred> creds[2];
	// Per message of queue[i] once one passes files (SCM_RIGHTS; a
	// stream's are then one entry per buffer the kernel had): the
	// SharedPlan::files it passes, in order. Such a queue is sent once
	// every description exists (SharedFds::deferred).
	std::vector<std::vector<int>> rights[2];
	// Each side's fd as captured (names, options); empty for a stand-in.
	FdInfo info[2];
	int listener = -1;		// Accept, Embryo: index into SharedPlan::sockets
	Bytes connect_name;		// Single: connect() to this name
	int sender = -1;		// Single, connected: the peer's index, if here
	// Names in the file system: the directory to bind a relative name
	// from, per side ("" for absolute and abstract names).
	std::string bind_dir[2];
};

// A TCP or UDP socket (restore/inet.cc), by inode.
struct SharedInet {
	uint64_t ino = 0;
	uint32_t family = 0;		// AF_INET or AF_INET6
	InetInfo info;
	uint32_t shutdown = 0;		// sk_shutdown: 1 RCV, 2 SEND
	Bytes recvq, sendq;		// TCP: unread, and unacknowledged + unsent
	int file = -1;			// its SharedFile
	// TCP listeners: the unread bytes of each of info.children
	std::vector<Bytes> child_recvq;
};

// A shared anonymous memory object (shmem inode) mapped by tree members.
struct SharedMem {
	uint64_t dev = 0, ino = 0;
	uint64_t size = 0;		// file_size, the memfd's size
	std::vector<std::pair<int, int>> vmas;	// (process index, VMA index)
};

struct SharedPlan {
	std::vector<SharedFile> files;
	std::vector<SharedPipe> pipes;
	std::vector<SharedSocket> sockets;
	std::vector<SharedInet> inets;
	std::vector<SharedMem> shmem;
	// Deleted regular files, by inode (each from the GHOSTS section of
	// the image that saved it): recreated, opened for each description
	// of files with their index, then unlinked.
	std::vector<const Ghost *> ghosts;
	// Per process (same order as the input): fd number -> files index.
	// Fds not listed are inherited (stdio to the outside) or planned by
	// plan_fds() (images without FILE_IDs).
	std::vector<std::map<uint32_t, int>> fd_file;
	// Per process: VMA index -> shmem index.
	std::vector<std::map<int, int>> vma_shmem;
};

// Groups every process's fds into shared objects and attaches the queued
// bytes (Checkpoint::queues of all processes). An fd 0-2 that is a terminal,
// or a pipe of which the checkpoint holds only one direction and only on
// fds 0-2 while the other direction was open somewhere at capture, is
// inherited from the tool instead (stdio to the outside).
// with_shmem: also group SHMEM VMAs by dev/ino (tree restores).
// Refusals name the process and fd: "pid 12: fd 5: socket:[99]: ...".
Result<SharedPlan> plan_shared(const std::vector<ProcImage> &procs, bool with_shmem);

// The restore's plan of a whole image without creating anything and without
// looking at PIDs or the filesystem: the process tree (plan_process_tree(),
// tree only), the shared descriptions (plan_shared()) and every process's
// fds (plan_fds()), with the errors restore gives. procs: the live
// processes, the root first; tree: the root's TREE section is planned.
// `amber checkpoint` runs it on the image it wrote before it publishes it
// or kills anything (the restorability contract).
Result<void> plan_restore(const std::vector<ProcImage> &procs, bool tree);

// The pages of one shmem VMA of a process that land in its memfd: the
// memfd offset of the page at addr (which must be in [v.start, v.end)).
inline uint64_t shmem_offset(const Vma &v, uint64_t addr, uint32_t page_size)
{
	return v.pgoff * page_size + (addr - v.start);
}

// The wait status a zombie's stub reproduces: exit code, or signal.
struct ZombieExit {
	bool signaled = false;
	int code = 0;		// exit code, or signal number
};
Result<ZombieExit> zombie_exit(const ProcInfo &p);

} // namespace amber
