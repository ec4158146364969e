#!/bin/sh
# build.sh — build the moh appliance disk image (x86-64, BIOS boot, MBR):
#   p1  moh-boot  ext2, 16 MiB: GRUB's modules, grub.cfg and grubenv (the
#                 A/B boot selection; the only file written outside data)
#   p2  root A    ext4, read-only at run time: Debian 12 + mohd
#   p3  root B    the other slot, empty until the first update
#   p4  moh-data  ext4, mounted at /var/lib/moh, grown on first boot
# RAUC installs an update bundle into the slot that is not booted; GRUB
# picks the slot by the grubenv variables ORDER, A_OK/B_OK and A_TRY/B_TRY
# (see rootfs/boot-grub.cfg). No loop devices, no mounts: the filesystems
# are made from directories with mkfs -d and GRUB is written into the MBR
# gap with dd.
#
# Environment: MOHD_BIN (a built mohd; default: go build ./cmd/mohd),
# MOH_IMAGE_OUT (output dir, default image/out), MOH_BASE_TAR (a base tarball
# made by base.sh, to skip the cache lookup), MOH_IMAGE_CACHE (base
# tarball cache, default $XDG_CACHE_HOME/moh-image), MOH_VERSION, MOH_BACKEND
# (direct or mpd: overrides etc/moh/mohd.conf), MOH_RAUC_KEYRING (the CA
# certificate update bundles must chain to: the fleet's signing CA; without
# it a development CA and signing key are made once in OUT/signing/).
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
chmod 0755 "$root/usr/local/sbin/moh-data-setup" "$root/usr/local/sbin/moh-boot-guard" \
	"$root/usr/local/bin/grub-editenv"
wants() { mkdir -p "$root/etc/systemd/system/$1.wants" && ln -sf "/etc/systemd/system/$2" "$root/etc/systemd/system/$1.wants/$2"; }
wants multi-user.target mohd.service
wants multi-user.target moh-boot-guard.service
wants multi-user.target moh-reboot.path
wants local-fs.target moh-data.service
mkdir -p "$root/var/lib/moh" "$root/boot/grub"
# Empty machine-id: systemd makes a fresh one in /run each boot (the root is
# read-only); the box's identity is the device-id on the data partition.
: > "$root/etc/machine-id"

# The CA update bundles must chain to (RAUC's keyring).
signing="$out/signing"
keyring=${MOH_RAUC_KEYRING:-}
if [ -z "$keyring" ]; then
	keyring="$signing/ca.pem"
	if [ ! -s "$keyring" ]; then
		echo "build.sh: no MOH_RAUC_KEYRING: making a development update CA and signing key in $signing" >&2
		mkdir -p "$signing"
		(
			cd "$signing"
			umask 077
			openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
				-subj "/O=moh/CN=moh development update CA" -keyout ca.key -out ca.pem.tmp \
				-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
				-subj "/O=moh/CN=moh development bundle signer" -keyout signing.key -out signing.csr 2>/dev/null
			printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n' > signing.ext
			openssl x509 -req -in signing.csr -CA ca.pem.tmp -CAkey ca.key -CAcreateserial -days 3650 \
				-extfile signing.ext -out signing.pem 2>/dev/null
			rm -f signing.csr signing.ext ca.pem.srl
			chmod 0644 ca.pem.tmp signing.pem
			mv ca.pem.tmp ca.pem
		)
	fi
fi
install -D -m 0644 "$keyring" "$root/etc/rauc/keyring.pem"

# The kernel and initrd by fixed names, so the boot partition's grub.cfg
# boots whatever kernel the slot's bundle brought.
kver=$(ls "$root/lib/modules")
ln -sf "boot/vmlinuz-$kver" "$root/vmlinuz"
ln -sf "boot/initrd.img-$kver" "$root/initrd.img"
# Every image and every bundle has the same disk identifier, so the slots'
# PARTUUIDs (disk-id-02, -03) are the same on every box (rootfs/etc/rauc/system.conf).
disk_id=0x6d6f6801
cat > "$root/etc/fstab" <<FSTAB
# The root filesystem (the booted slot, named on the kernel command line)
# stays read-only; everything that must change at run time lives in RAM,
# except /var/lib/moh (the data partition, see moh-data.service) and the
# boot partition's grubenv (RAUC marks slots good or bad there).
LABEL=moh-boot   /boot/grub        ext2   rw,noatime,nodev,nosuid,noexec,nofail  0 2
tmpfs            /tmp              tmpfs  mode=1777,nosuid,nodev,size=64M  0 0
tmpfs            /var/tmp          tmpfs  mode=1777,nosuid,nodev,size=16M  0 0
tmpfs            /var/log          tmpfs  mode=0755,nosuid,nodev,size=16M  0 0
tmpfs            /var/lib/systemd  tmpfs  mode=0755,nosuid,nodev,size=8M   0 0
tmpfs            /var/lib/alsa     tmpfs  mode=0755,nosuid,nodev,size=1M   0 0
tmpfs            /var/cache        tmpfs  mode=0755,nosuid,nodev,size=16M  0 0
FSTAB

# Root filesystem: content plus 5 % and 16 MiB (it is never written), in MiB.
used=$(du -sm "$root" | cut -f1)
root_mib=$((used + used * 5 / 100 + 16))
# A slot holds half as much again, so later bundles may grow.
slot_mib=$(( (root_mib * 3 / 2 + 63) / 64 * 64 ))
mkfs.ext4 -q -F -L moh-root -d "$root" -m 0 >/dev/null \
	-E lazy_itable_init=0,lazy_journal_init=0 "$work/root.ext4" "${root_mib}M"

# Boot partition: GRUB's modules, the A/B grub.cfg and a grubenv that boots
# slot A (the block is 1024 bytes, written in place by GRUB and by RAUC).
boot_mib=16
boot_uuid=$(cat /proc/sys/kernel/random/uuid)
mkdir -p "$work/boot/i386-pc"
cp "$grubdir"/*.mod "$grubdir"/*.lst "$work/boot/i386-pc/"
sed "s/@DISK_ID@/${disk_id#0x}/g" "$here/boot-grub.cfg" > "$work/boot/grub.cfg"
{
	printf '# GRUB Environment Block\nORDER=A B\nA_OK=1\nA_TRY=0\nB_OK=0\nB_TRY=0\n'
} > "$work/grubenv.head"
head -c $((1024 - $(stat -c %s "$work/grubenv.head"))) /dev/zero | tr '\0' '#' | cat "$work/grubenv.head" - > "$work/boot/grubenv"
[ "$(stat -c %s "$work/boot/grubenv")" = 1024 ] || { echo "build.sh: grubenv is not 1024 bytes" >&2; exit 1; }
mkfs.ext2 -q -F -L moh-boot -U "$boot_uuid" -d "$work/boot" -m 0 "$work/boot.ext2" "${boot_mib}M"
cat > "$work/early.cfg" <<EARLY
search --no-floppy --fs-uuid --set=root $boot_uuid
set prefix=(\$root)/
EARLY
grub-mkimage -O i386-pc -o "$work/core.img" -c "$work/early.cfg" -p / \
	biosdisk part_msdos ext2 search search_fs_uuid normal configfile linux echo test loadenv regexp

# Data filesystem: empty, owned by moh (the first boot grows it).
mkdir "$work/data"
uidgid=$(awk -F: '$1=="moh"{print $3":"$4}' "$root/etc/passwd")
"$here/mkdata.sh" "$work/data" "$work/data.ext4" "${data_mib}M" "$uidgid"

# Disk: 1 MiB for the MBR and GRUB, then the four partitions.
rm -f "$img.tmp"
a_mib=$((1 + boot_mib))
b_mib=$((a_mib + slot_mib))
d_mib=$((b_mib + slot_mib))
truncate -s $((d_mib + data_mib))M "$img.tmp"
sfdisk --quiet "$img.tmp" <<PARTS
label: dos
label-id: $disk_id
unit: sectors
start=2048, size=$((boot_mib * 2048)), type=83, bootable
start=$((a_mib * 2048)), size=$((slot_mib * 2048)), type=83
start=$((b_mib * 2048)), size=$((slot_mib * 2048)), type=83
start=$((d_mib * 2048)), size=$((data_mib * 2048)), type=83
PARTS
dd if="$work/boot.ext2" of="$img.tmp" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/root.ext4" of="$img.tmp" bs=1M seek=$a_mib conv=notrunc,sparse status=none
dd if="$work/data.ext4" of="$img.tmp" bs=1M seek=$d_mib conv=notrunc,sparse status=none
core_sectors=$(( ($(stat -c %s "$work/core.img") + 511) / 512 ))
[ "$core_sectors" -lt 2047 ] || { echo "build.sh: core.img too large for the MBR gap" >&2; exit 1; }
# boot.img loads the sector right after the MBR (its default), where core.img
# goes; only its first 440 bytes are written so the partition table stays.
dd if="$grubdir/boot.img" of="$img.tmp" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$img.tmp" bs=512 seek=1 conv=notrunc status=none
mv "$img.tmp" "$img"
# The slot's filesystem, for make bundle.
mv "$work/root.ext4" "$out/rootfs.ext4"

# Manifest: what went in, for the record and for the boot test.
dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Package} ${Version}\n' > "$out/packages.txt"
cat > "$out/image.env" <<ENV
MOH_VERSION=$("$root/usr/local/bin/mohd" version 2>/dev/null | awk '{print $NF; exit}')
MOH_KERNEL=$kver
MOH_UIDGID=$uidgid
MOH_SLOT_A_START_MIB=$a_mib
MOH_SLOT_B_START_MIB=$b_mib
MOH_SLOT_MIB=$slot_mib
MOH_ROOTFS_MIB=$root_mib
MOH_DATA_START_MIB=$d_mib
MOH_DATA_MIB=$data_mib
ENV
echo "moh image: $img"
echo "  size: $(stat -c %s "$img") bytes ($((d_mib + data_mib)) MiB; boot ${boot_mib} MiB, slots A and B ${slot_mib} MiB each (root filesystem ${root_mib} MiB), data ${data_mib} MiB, grown on first boot)"
echo "  packages: $(wc -l < "$out/packages.txt") (list: $out/packages.txt)"
echo "  kernel: $kver"
echo "  build time: $(( $(date +%s) - start )) s"
