#!/bin/sh
# bundle.sh — make a signed RAUC update bundle of the root filesystem that
# build.sh made (image/out/rootfs.ext4), for POST /api/v1/system/update and
# mohctl update. Prints the bundle's path and sha256.
#
# Environment: MOH_IMAGE_OUT (default image/out), MOH_BUNDLE_ROOTFS (the
# root filesystem image, default OUT/rootfs.ext4), MOH_BUNDLE_VERSION
# (default: MOH_VERSION of OUT/image.env), MOH_BUNDLE_OUT (default
# OUT/moh-VERSION.raucb), MOH_SIGNING_CERT and MOH_SIGNING_KEY (the fleet's
# bundle signer; default the development pair build.sh made in
# OUT/signing/), MOH_BUNDLE_COMPATIBLE (default moh-x86_64, what every box's
# /etc/rauc/system.conf says).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${MOH_IMAGE_OUT:-$here/out}
rootfs=${MOH_BUNDLE_ROOTFS:-$out/rootfs.ext4}
[ -s "$rootfs" ] || { echo "bundle.sh: $rootfs not found (make image first)" >&2; exit 1; }
version=${MOH_BUNDLE_VERSION:-$(sed -n 's/^MOH_VERSION=//p' "$out/image.env" 2>/dev/null)}
[ -n "$version" ] || { echo "bundle.sh: no version (MOH_BUNDLE_VERSION or image.env)" >&2; exit 1; }
cert=${MOH_SIGNING_CERT:-$out/signing/signing.pem}
key=${MOH_SIGNING_KEY:-$out/signing/signing.key}
compatible=${MOH_BUNDLE_COMPATIBLE:-moh-x86_64}
bundle=${MOH_BUNDLE_OUT:-$out/moh-$version.raucb}
for f in "$cert" "$key"; do
	[ -s "$f" ] || { echo "bundle.sh: $f not found (MOH_SIGNING_CERT, MOH_SIGNING_KEY)" >&2; exit 1; }
done
command -v rauc >/dev/null || { echo "bundle.sh: rauc not found (apt-get install rauc squashfs-tools)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/moh-bundle.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/content"
cp --sparse=always "$rootfs" "$work/content/rootfs.ext4"
cat > "$work/content/manifest.raucm" <<MANIFEST
[update]
compatible=$compatible
version=$version

[bundle]
format=plain

[image.rootfs]
filename=rootfs.ext4
MANIFEST
rm -f "$bundle"
rauc bundle --cert="$cert" --key="$key" "$work/content" "$bundle" >/dev/null
echo "$bundle"
echo "sha256 $(sha256sum "$bundle" | cut -d' ' -f1)"
