#!/bin/sh
# base.sh — build (or reuse) the cached Debian 12 base tarball for the moh
# image and print its path. The cache key is the package list, this script
# and base-hook.sh, so a rerun with the same recipe costs nothing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${MOH_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moh-image}
mirror=${MOH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
secmirror=${MOH_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
mkdir -p "$cache"

pkgs=$(grep -v '^#' "$here/packages.txt" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
key=$(cat "$here/packages.txt" "$here/base.sh" "$here/base-hook.sh" | sha256sum | cut -c1-16)
tar="$cache/base-$key.tar"
if [ -s "$tar" ]; then
	echo "$tar"
	exit 0
fi

# Documentation and translations are dropped; copyright files stay.
tmp="$tar.tmp.$$"
trap 'rm -f "$tmp"' EXIT
mmdebstrap --variant=essential --include="$pkgs" \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-include=/usr/share/locale/locale.alias' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/lintian/*' \
	--customize-hook="$here/base-hook.sh \"\$1\"" \
	--format=tar bookworm "$tmp" \
	"deb $mirror bookworm main" \
	"deb $mirror bookworm-updates main" \
	"deb $secmirror bookworm-security main" >&2
mv "$tmp" "$tar"
trap - EXIT
# Old bases are useless once the recipe changed.
find "$cache" -maxdepth 1 -name 'base-*.tar' ! -name "base-$key.tar" -delete
echo "$tar"
