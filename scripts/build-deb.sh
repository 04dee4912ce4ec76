#!/usr/bin/env bash
# Builds outpost_<version>_<arch>.deb from a built checkout (npm ci && npm run build), with plain
# dpkg-deb: the files are exactly what scripts/install.sh lays out (it runs with DESTDIR), the native
# prebuilds cut down to the target's, and the maintainer scripts in scripts/deb/ do the rest
# (user, /var/lib/outpost, systemd). Needs dpkg-deb and Node.js; no root, no debhelper.
#
#   scripts/build-deb.sh [--arch amd64|arm64|armhf|all] [--out DIR]
#
# --arch defaults to this machine's; --out to dist/deb. Each architecture builds on every other: the
# code is JavaScript and the native modules ship prebuilt binaries for all three.
set -euo pipefail
umask 022

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$SRC/dist/deb"
arch=

die() { printf 'build-deb.sh: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --arch) [ $# -ge 2 ] || die "--arch needs a value"; arch="$2"; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out="$2"; shift ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (usage: scripts/build-deb.sh [--arch amd64|arm64|armhf|all] [--out DIR])" ;;
  esac
  shift
done

command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian: apt-get install dpkg)"
[ -n "$arch" ] || arch="$(dpkg --print-architecture)"
case "$arch" in
  all) arches=(amd64 arm64 armhf) ;;
  amd64 | arm64 | armhf) arches=("$arch") ;;
  *) die "--arch must be amd64, arm64, armhf or all, got $arch" ;;
esac

# The build machine's Node runs install.sh's checks; the package itself depends on /usr/bin/node.
node="${OUTPOST_NODE:-$(command -v node)}" || die "node not found"
version="$("$node" -p 'require(process.argv[1]).version' "$SRC/package.json")"
# semver's pre-release "1.2.0-rc.1" must sort before "1.2.0", which Debian spells with "~".
deb_version="${version//-/\~}"
maintainer="${OUTPOST_DEB_MAINTAINER:-Outpost developers <https://github.com/outpost-gateway/outpost/issues>}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

build_one() {
  local deb_arch="$1" node_arch root size deb
  case "$deb_arch" in amd64) node_arch=x64 ;; arm64) node_arch=arm64 ;; armhf) node_arch=arm ;; esac
  root="$work/$deb_arch"
  # install.sh prints what it would do to the system (user, systemctl); postinst does those.
  if ! DESTDIR="$root" OUTPOST_NODE="$node" "$SRC/scripts/install.sh" --target-arch "$node_arch" >"$work/install-$deb_arch.log" 2>&1; then
    cat "$work/install-$deb_arch.log" >&2
    die "scripts/install.sh failed for $deb_arch (its output is above)"
  fi
  # postinst makes /var/lib/outpost with its owner; the package does not ship it.
  rm -rf "$root/var"
  size="$(du -sk "$root" | cut -f1)"
  install -d -m 0755 "$root/DEBIAN"
  sed -e "s|@VERSION@|$deb_version|" -e "s|@ARCH@|$deb_arch|" -e "s|@INSTALLED_SIZE@|$size|" \
    -e "s|@MAINTAINER@|$maintainer|" "$SRC/scripts/deb/control.in" >"$root/DEBIAN/control"
  # dpkg keeps an edited conffile on upgrade (and asks), and removes it only on purge.
  printf '/etc/outpost/outpost.yaml\n' >"$root/DEBIAN/conffiles"
  chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles"
  install -m 0755 "$SRC/scripts/deb/postinst" "$SRC/scripts/deb/prerm" "$SRC/scripts/deb/postrm" "$root/DEBIAN/"
  deb="$out/outpost_${deb_version}_${deb_arch}.deb"
  dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
  echo "$deb"
}

for a in "${arches[@]}"; do build_one "$a"; done
