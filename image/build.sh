#!/bin/sh
# build.sh — build the moh appliance disk image (x86-64, BIOS boot, MBR):
#   p1  moh-root  ext4, read-only at run time: Debian 12 + mohd
#   p2  moh-data  ext4, mounted at /var/lib/moh, grown on first boot
# No loop devices, no mounts: the filesystems are made from directories with
# mkfs.ext4 -d and GRUB is written into the MBR gap with dd.
#
# Environment: MOHD_BIN (a built mohd; default: go build ./cmd/mohd),
# MOH_IMAGE_OUT (output dir, default image/out), MOH_BASE_TAR (a base tarball
# made by base.sh, to skip the cache lookup), MOH_IMAGE_CACHE (base
# tarball cache, default $XDG_CACHE_HOME/moh-image), MOH_VERSION, MOH_BACKEND
# (direct or mpd: overrides etc/moh/mohd.conf).
set -eu
start=$(date +%s)
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${MOH_IMAGE_OUT:-$here/out}
img="$out/moh.img"
data_mib=64
mkdir -p "$out"

for tool in mmdebstrap mkfs.ext4 sfdisk grub-mkimage; do
	command -v "$tool" >/dev/null || { echo "build.sh: $tool not found (see image/README.md)" >&2; exit 1; }
done
grubdir=/usr/lib/grub/i386-pc
[ -f "$grubdir/boot.img" ] || { echo "build.sh: $grubdir missing (apt-get install grub-pc-bin)" >&2; exit 1; }

work=$(mktemp -d "$out/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"

base=${MOH_BASE_TAR:-$("$here/base.sh")}
mkdir "$root"
tar -C "$root" -xf "$base"

# mohd: static, so the host's build runs on the box.
if [ -n "${MOHD_BIN:-}" ]; then
	install -m 0755 "$MOHD_BIN" "$root/usr/local/bin/mohd"
else
	version=${MOH_VERSION:-$(git -C "$repo" describe --always --dirty 2>/dev/null || echo dev)}
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" \
		-o "$root/usr/local/bin/mohd" ./cmd/mohd)
fi

# The recipe's own files, then the units they enable.
cp -R "$here/rootfs/." "$root/"
if [ -n "${MOH_BACKEND:-}" ]; then
	sed -i "s/^backend = .*/backend = $MOH_BACKEND/" "$root/etc/moh/mohd.conf"
fi
chmod 0755 "$root/usr/local/sbin/moh-data-setup"
wants() { mkdir -p "$root/etc/systemd/system/$1.wants" && ln -sf "/etc/systemd/system/$2" "$root/etc/systemd/system/$1.wants/$2"; }
wants multi-user.target mohd.service
wants local-fs.target moh-data.service
mkdir -p "$root/var/lib/moh"
# Empty machine-id: systemd makes a fresh one in /run each boot (the root is
# read-only); the box's identity is the device-id on the data partition.
: > "$root/etc/machine-id"

kver=$(ls "$root/lib/modules")
root_uuid=$(cat /proc/sys/kernel/random/uuid)
cat > "$root/etc/fstab" <<FSTAB
# The root filesystem stays read-only; everything that must change at run
# time lives in RAM, except /var/lib/moh (the data partition, see
# moh-data.service).
UUID=$root_uuid  /                 ext4   ro,noatime                      0 0
tmpfs            /tmp              tmpfs  mode=1777,nosuid,nodev,size=64M  0 0
tmpfs            /var/tmp          tmpfs  mode=1777,nosuid,nodev,size=16M  0 0
tmpfs            /var/log          tmpfs  mode=0755,nosuid,nodev,size=16M  0 0
tmpfs            /var/lib/systemd  tmpfs  mode=0755,nosuid,nodev,size=8M   0 0
tmpfs            /var/lib/alsa     tmpfs  mode=0755,nosuid,nodev,size=1M   0 0
tmpfs            /var/cache        tmpfs  mode=0755,nosuid,nodev,size=16M  0 0
FSTAB

# GRUB: modules and config on the root filesystem, core.img in the MBR gap.
mkdir -p "$root/boot/grub/i386-pc"
cp "$grubdir"/*.mod "$grubdir"/*.lst "$root/boot/grub/i386-pc/"
cat > "$root/boot/grub/grub.cfg" <<GRUB
# moh appliance: one entry, no menu. panic=10 reboots after a kernel panic.
set timeout=0
set default=0
menuentry "moh" {
	linux /boot/vmlinuz-$kver root=UUID=$root_uuid ro quiet console=ttyS0,115200n8 console=tty0 panic=10 systemd.show_status=auto
	initrd /boot/initrd.img-$kver
}
GRUB
cat > "$work/early.cfg" <<EARLY
search --no-floppy --fs-uuid --set=root $root_uuid
set prefix=(\$root)/boot/grub
EARLY
grub-mkimage -O i386-pc -o "$work/core.img" -c "$work/early.cfg" -p /boot/grub \
	biosdisk part_msdos ext2 search search_fs_uuid normal configfile linux echo test

# Root filesystem: content plus 5 % and 16 MiB (it is never written), in MiB.
used=$(du -sm "$root" | cut -f1)
root_mib=$((used + used * 5 / 100 + 16))
mkfs.ext4 -q -F -L moh-root -U "$root_uuid" -d "$root" -m 0 >/dev/null \
	-E lazy_itable_init=0,lazy_journal_init=0 "$work/root.ext4" "${root_mib}M"

# Data filesystem: empty, owned by moh (the first boot grows it).
mkdir "$work/data"
uidgid=$(awk -F: '$1=="moh"{print $3":"$4}' "$root/etc/passwd")
"$here/mkdata.sh" "$work/data" "$work/data.ext4" "${data_mib}M" "$uidgid"

# Disk: 1 MiB for the MBR and GRUB, then the two partitions.
rm -f "$img.tmp"
truncate -s $((1 + root_mib + data_mib))M "$img.tmp"
sfdisk --quiet "$img.tmp" <<PARTS
label: dos
unit: sectors
start=2048, size=$((root_mib * 2048)), type=83, bootable
start=$(((1 + root_mib) * 2048)), size=$((data_mib * 2048)), type=83
PARTS
dd if="$work/root.ext4" of="$img.tmp" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/data.ext4" of="$img.tmp" bs=1M seek=$((1 + root_mib)) conv=notrunc,sparse status=none
core_sectors=$(( ($(stat -c %s "$work/core.img") + 511) / 512 ))
[ "$core_sectors" -lt 2047 ] || { echo "build.sh: core.img too large for the MBR gap" >&2; exit 1; }
# boot.img loads the sector right after the MBR (its default), where core.img
# goes; only its first 440 bytes are written so the partition table stays.
dd if="$grubdir/boot.img" of="$img.tmp" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$img.tmp" bs=512 seek=1 conv=notrunc status=none
mv "$img.tmp" "$img"

# Manifest: what went in, for the record and for the boot test.
dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Package} ${Version}\n' > "$out/packages.txt"
cat > "$out/image.env" <<ENV
MOH_ROOT_UUID=$root_uuid
MOH_KERNEL=$kver
MOH_UIDGID=$uidgid
MOH_DATA_START_MIB=$((1 + root_mib))
MOH_DATA_MIB=$data_mib
ENV
echo "moh image: $img"
echo "  size: $(stat -c %s "$img") bytes ($((1 + root_mib + data_mib)) MiB; root ${root_mib} MiB, data ${data_mib} MiB, grown on first boot)"
echo "  packages: $(wc -l < "$out/packages.txt") (list: $out/packages.txt)"
echo "  kernel: $kver"
echo "  build time: $(( $(date +%s) - start )) s"
