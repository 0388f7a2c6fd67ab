#!/bin/bash
# Runs inside a matrix guest as its first process (see initramfs-init):
# mounts what a Debian system would have, runs the test suite, powers off.
# Everything it prints goes to the serial console that matrix.sh reads.
set -u
arg() { sed -n "s/.*\bsb\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
mount -t proc proc /proc
mount -t sysfs sys /sys
kernel=$(uname -r)
# The host's /lib/modules has no modules for this kernel: use the cached ones.
mkdir -p "/lib/modules/$kernel"
mount --bind "$(arg modules)" "/lib/modules/$kernel"
# /tmp stays the overlay's (writable, the host's files beneath): the project
# or its cache may live there
mount -t tmpfs tmpfs /run
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# as systemd would: the memory controller on for the tests' memory limits
echo +memory >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
ip link set lo up
hostname sockbypass-guest
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
project=$(arg project)
SB_TEST_TIMEOUT=$(arg timeout)
CI=$(arg ci)
SB_GUEST_SKIP=$project/test/kernels/host-only
[ "$(arg all)" = 1 ] && SB_GUEST_SKIP=
export SB_GUEST=1 SB_TEST_TIMEOUT CI SB_GUEST_SKIP
echo "guest: kernel $kernel, $(nproc) CPUs, $(awk '/MemTotal/ {print $2/1024 " MiB"}' /proc/meminfo)"
cd "$project" || echo "guest: no project directory $project"
./test/run.sh "$(arg tests | tr '+' ' ')"
echo "guest-exit: $?"
sync
echo o >/proc/sysrq-trigger
sleep 10
