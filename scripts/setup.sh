#!/usr/bin/env bash
# Install every Debian package amber needs to build, boot its test VM and run its tests.
# Kernels: Debian 12's default 6.1 (linux-image-amd64) and its 6.12 LTS (linux-image-6.12-amd64,
# from bookworm-security), images, headers and sources, side by side; scripts/lib/kver picks one.
# Idempotent: packages already present are left alone; safe to run on every invocation.
set -euo pipefail

PKGS=(
	build-essential pkg-config kmod cpio xz-utils
	linux-image-amd64 linux-headers-amd64 linux-source-6.1
	linux-image-6.12-amd64 linux-headers-6.12-amd64 linux-source-6.12
	qemu-system-x86 busybox-static
	libnl-3-dev libnl-genl-3-dev libcli11-dev libexpected-dev libxxhash-dev libzstd-dev
	googletest libgtest-dev libfmt-dev
	criu python3 gzip iproute2 util-linux procps gnuplot-nox
	redis-server redis-tools nginx-light iptables
	etcd-server etcd-client
	libcurl4-openssl-dev nlohmann-json3-dev
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done

if ((${#missing[@]})); then
	echo "setup: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	# redis-server, nginx and etcd-server start a system service when installed:
	# the tests run their own instances (scripts/vm-pair starts an etcd on its
	# own ports and data dir), so tell invoke-rc.d to start none here (unless a
	# policy is already in place).
	policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		trap 'rm -f "$policy"' EXIT
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# kselftest_harness.h comes from the kernel source tarball, extracted once into build/.
top=$(cd "$(dirname "$0")/.." && pwd)
ksft="$top/build/kselftest"
if [ ! -f "$ksft/kselftest_harness.h" ]; then
	tarball=$(ls /usr/src/linux-source-6.1.tar.xz)
	mkdir -p "$ksft"
	tmp=$(mktemp -d)
	tar -xJf "$tarball" -C "$tmp" --wildcards \
		'linux-source-6.1/tools/testing/selftests/kselftest.h' \
		'linux-source-6.1/tools/testing/selftests/kselftest_harness.h'
	cp "$tmp"/linux-source-6.1/tools/testing/selftests/kselftest*.h "$ksft/"
	rm -rf "$tmp"
fi

# checkpatch.pl (and the data files it reads) from the same tarball, into build/checkpatch/scripts.
cp_dir="$top/build/checkpatch"
if [ ! -f "$cp_dir/scripts/checkpatch.pl" ]; then
	tarball=$(ls /usr/src/linux-source-6.1.tar.xz)
	tmp=$(mktemp -d)
	tar -xJf "$tarball" -C "$tmp" \
		linux-source-6.1/scripts/checkpatch.pl \
		linux-source-6.1/scripts/spelling.txt \
		linux-source-6.1/scripts/const_structs.checkpatch
	mkdir -p "$cp_dir"
	rm -rf "$cp_dir/scripts"
	mv "$tmp/linux-source-6.1/scripts" "$cp_dir/scripts"
	rm -rf "$tmp"
fi
