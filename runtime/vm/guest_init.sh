#!/bin/busybox sh
# /init of the sie guest (busybox, PID 1). Mounts the host root read-only over 9p (virtme-ng's
# approach: host userland runs unchanged, so clang/bpftool/sie work in the guest), fresh kernel
# filesystems and tmpfs for writable paths, the --add and output shares, then runs the command
# in a chroot and always powers off. Parameters arrive as KEY=VAL kernel command-line words.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
say() { [ "$SIE_VERBOSE" = 1 ] && echo "sie-init: $*"; }
die() { echo "sie-init: error: $*"; echo "@@SIE-INIT-FAILED@@"; poweroff -f; }

for m in $(cat /lib/modules/load.list); do
  insmod "/lib/modules/$m" || die "insmod $m failed"
done

R=/newroot
mkdir -p $R
mount -t 9p -o ro,trans=virtio,version=9p2000.L,cache=loose,msize=512000 root $R ||
  die "cannot mount the host root (9p)"
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm 2>/dev/null
mount -t devpts devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t debugfs debugfs $R/sys/kernel/debug
mount -t tracefs tracefs $R/sys/kernel/tracing
mount -t bpf bpf $R/sys/fs/bpf
for d in tmp run var/tmp mnt; do mount -t tmpfs -o mode=1777 tmpfs $R/$d; done
mkdir -p $R/mnt/out $R/mnt/add
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out $R/mnt/out || die "cannot mount the output share"
if [ "$SIE_ADD" = 1 ]; then
  mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000 add $R/mnt/add || die "cannot mount --add"
fi
# Host paths hidden by the tmpfs mounts above (a project under /tmp) come back as their own shares.
i=0
for p in $(echo "$SIE_BINDS" | tr ',' ' '); do
  mkdir -p "$R$p"
  mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,msize=512000 "bind$i" "$R$p" ||
    die "cannot mount $p"
  i=$((i + 1))
done
say "ready at $(cut -d' ' -f1 /proc/uptime) s"

echo "@@SIE-BEGIN@@"
chroot $R /usr/bin/env -i PATH="$SIE_PATH" HOME=/tmp LANG=C.UTF-8 TERM=dumb SIE_OUT=/mnt/out \
  SIE_IN_GUEST=1 /bin/sh /mnt/out/.sie/cmd.sh
rc=$?
echo "@@SIE-END rc=$rc@@"
dmesg > $R/mnt/out/.sie/dmesg
echo "$rc" > $R/mnt/out/.sie/rc
sync
umount $R/mnt/out
poweroff -f
