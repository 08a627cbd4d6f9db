#!/bin/busybox sh
# PID 1 of the lane's guest (the initramfs's /init, run by busybox-static).
# It loads the modules the runtime needs, mounts the host's root (9p, read
# only) and the run's results directory (9p, writable), gives the host root
# the guest's own /proc, /sys, /dev, /run, /tmp and a pure cgroup v2
# hierarchy, switches root to it, runs /run/lane/command.sh, records its
# exit code and powers off. Everything is mounted inside the new root, so
# nothing the runtime writes reaches the host's /sys or /tmp.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# Dependency order, derived on the host from modules.dep (test/kernel/kernel.ts).
while read -r m; do
  insmod "/modules/$m" || echo "lane: insmod $m failed"
done < /modules/order

T=/host
mkdir -p $T
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 host $T || { echo "lane: mounting the host root failed"; poweroff -f; }
mount -t proc proc $T/proc
mount -t sysfs sysfs $T/sys
mount -t devtmpfs devtmpfs $T/dev
mkdir -p $T/dev/pts $T/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $T/dev/pts
mount -t tmpfs tmpfs $T/dev/shm
mount -t tmpfs -o mode=755 tmpfs $T/run
mount -t tmpfs -o mode=1777 tmpfs $T/tmp
# Only cgroup2: the layout of most embedded targets, and the one where the
# v2 controller files (memory.max, cpu.max, io.max, memory.events) are live.
mount -t cgroup2 cgroup2 $T/sys/fs/cgroup
mkdir -p $T/run/lane
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results $T/run/lane

# switch_root, not chroot: the host root becomes the namespace's "/", so
# paths the kernel prints for other mount namespaces (a loop device's
# backing_file, /proc/<pid>/mountinfo) read as on a normal host. busybox
# stays in /run to power off at the end (switch_root empties the initramfs).
cp /bin/busybox $T/run/busybox
exec switch_root $T /run/busybox sh -c '
  /bin/sh /run/lane/command.sh
  echo $? > /run/lane/exit-code
  sync
  /run/busybox umount /run/lane
  /run/busybox poweroff -f'
