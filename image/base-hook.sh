#!/bin/sh
# base-hook.sh ROOT — mmdebstrap customize hook for the cached moh base
# tarball: system settings that belong to the package set rather than to moh.
set -eu
root=$1
inroot() { chroot "$root" "$@"; }

# The appliance user. A fixed system account, created at build time because
# the root filesystem is read-only at run time.
inroot useradd --system --user-group --groups audio --home-dir /var/lib/moh \
	--no-create-home --shell /usr/sbin/nologin --comment "moh player" moh

# mohd starts and supervises its own mpd; Debian's system mpd would hold the
# sound card and write a state file.
inroot systemctl mask mpd.service mpd.socket
# Networking: DHCP via systemd-networkd, DNS via resolved (needed by timesyncd).
inroot systemctl enable systemd-networkd.service systemd-resolved.service systemd-timesyncd.service
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
# With an empty /etc/machine-id every boot is a "first boot": do not prompt.
inroot systemctl mask systemd-firstboot.service

# Kernel modules a headless music box never needs (about 220 MB).
kver=$(ls "$root/lib/modules")
m="$root/lib/modules/$kver/kernel"
rm -rf "$m/drivers/gpu" "$m/drivers/media" "$m/drivers/net/wireless" \
	"$m/drivers/infiniband" "$m/drivers/staging" "$m/drivers/isdn" \
	"$m/drivers/bluetooth" "$m/net/bluetooth" "$m/net/wireless" "$m/net/mac80211" \
	"$m/sound/soc" "$m/sound/firewire" "$m/drivers/iio" "$m/drivers/scsi/qla2xxx" \
	"$m/drivers/scsi/lpfc" "$m/drivers/scsi/bfa" "$m/drivers/scsi/be2iscsi" \
	"$m/drivers/net/ethernet/mellanox" "$m/drivers/net/ethernet/qlogic" \
	"$m/drivers/net/ethernet/chelsio" "$m/drivers/net/ethernet/sfc" \
	"$m/drivers/net/can" "$m/drivers/hwmon" "$m/drivers/input/touchscreen" \
	"$m/drivers/platform/chrome" "$m/drivers/thunderbolt" \
	"$m/fs/btrfs" "$m/fs/xfs" "$m/fs/ocfs2" "$m/fs/gfs2" "$m/fs/nfs" "$m/fs/nfsd" \
	"$m/fs/smb" "$m/fs/ceph" "$m/fs/f2fs" "$m/fs/ntfs3" "$m/fs/jfs" "$m/fs/reiserfs" \
	"$m/fs/bcachefs" "$m/fs/afs" "$m/fs/9p" "$m/fs/ubifs" "$m/fs/nilfs2" "$m/fs/dlm" \
	"$m/net/ceph" "$m/net/sunrpc" "$m/drivers/md/bcache"
inroot depmod "$kver"
# Package caches are useless on a read-only appliance.
rm -rf "$root/usr/share/doc-base" "$root/var/cache/apt" "$root/var/lib/apt/lists"
inroot update-initramfs -u -k "$kver"
