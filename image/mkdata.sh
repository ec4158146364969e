#!/bin/sh
# mkdata.sh DIR FILE SIZE UID:GID — make the moh data filesystem (label
# moh-data) in FILE, SIZE as mke2fs takes it (64M, 1048576k), holding the contents of DIR, owned by UID:GID.
# Used by build.sh for the empty partition of a fresh image, and to
# provision a box before shipping (e.g. with an admin token, see README.md).
set -eu
dir=$1 file=$2 size=$3 owner=$4
# Inode tables and journal are written now, not lazily by the kernel after
# the first mount: no background writes on the box.
mkfs.ext4 -q -F -L moh-data -d "$dir" -m 0 -E root_owner="$owner",lazy_itable_init=0,lazy_journal_init=0 \
	"$file" "$size" >/dev/null
