#!/bin/sh
# apt-need.sh CHECK:PACKAGE ...: install the Debian packages whose CHECK is
# missing. CHECK is a command name, or an absolute path of a file the
# package ships. A fresh machine has only Go; tests drive the real tools.
set -eu
missing=""
for cp in "$@"; do
	c=${cp%%:*} p=${cp#*:}
	case $c in
	/*) [ -e "$c" ] && continue ;;
	*) command -v "$c" >/dev/null 2>&1 && continue; [ -x "/usr/sbin/$c" ] && continue ;;
	esac
	missing="$missing $p"
done
[ -n "$missing" ] || exit 0
echo "installing Debian packages:$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
