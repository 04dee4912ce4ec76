#!/usr/bin/env bash
# Installs Outpost on Raspberry Pi OS (bookworm) or Debian from a built checkout (npm ci && npm run
# build) or an unpacked release: /opt/outpost, the systemd unit, /etc/outpost/outpost.yaml, the
# `outpost` command and the `outpost` system user; then enables and starts the service.
# Running it again upgrades in place and gives the same result; the config is never overwritten.
#
# With DESTDIR=DIR everything is written under DIR and the running system is left alone: the user,
# ownership and systemctl steps are printed, not done. scripts/build-deb.sh and the tests use that.
set -euo pipefail
# Modes are set explicitly below; this covers the directories made along the way (they end up in the .deb).
umask 022

usage() {
  cat <<'EOF'
usage: sudo scripts/install.sh [--no-start]
       sudo scripts/install.sh --uninstall [--purge]

  --no-start          install and enable the service, but do not start it
  --uninstall         stop and disable the service; remove /opt/outpost, the unit and /usr/bin/outpost;
                      keep /etc/outpost, /var/lib/outpost and the outpost user
  --purge             with --uninstall: also remove /etc/outpost, /var/lib/outpost and the user
  --target-arch ARCH  keep only the native prebuilds for linux-ARCH (x64, arm64 or arm), as for a
                      .deb; by default every linux prebuild is kept
environment:
  DESTDIR               install under this directory instead of /, touching nothing else
  OUTPOST_NODE_MODULES  copy this production node_modules instead of running npm ci
EOF
}

# The unit starts /usr/bin/node (where Debian's and NodeSource's nodejs put it), so that is the Node
# that must be new enough. OUTPOST_NODE names another, for build-deb.sh on a machine whose node is
# elsewhere (nvm) and for the tests of the version check.
NODE="${OUTPOST_NODE:-/usr/bin/node}"
MIN_NODE_MAJOR=20
MIN_NODE_MINOR=15 # package.json's engines
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DESTDIR="${DESTDIR:-}"
DESTDIR="${DESTDIR%/}"
UNIT_DIR=/lib/systemd/system

action=install
purge=0
start=1
target_arch=
while [ $# -gt 0 ]; do
  case "$1" in
    --uninstall) action=uninstall ;;
    --purge) purge=1 ;;
    --no-start) start=0 ;;
    --target-arch)
      [ $# -ge 2 ] || { usage >&2; exit 2; }
      target_arch="$2"
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
case "$target_arch" in '' | x64 | arm64 | arm) ;; *) echo "install.sh: --target-arch must be x64, arm64 or arm, got $target_arch" >&2; exit 2 ;; esac
if [ "$purge" = 1 ] && [ "$action" != uninstall ]; then echo "install.sh: --purge goes with --uninstall" >&2; exit 2; fi

say() { printf 'outpost: %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

# Runs a command that changes the running system, or only prints it when installing into DESTDIR.
system() {
  if [ -n "$DESTDIR" ]; then
    say "DESTDIR is set; would run: $*"
  else
    "$@"
  fi
}

systemd_running() { [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; }

check_root() {
  if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then die "run me as root (sudo $0), or set DESTDIR"; fi
  # The .deb owns the same paths; two owners would undo each other's upgrades.
  # shellcheck disable=SC2016 # ${Status} is dpkg-query's, not the shell's
  if [ -z "$DESTDIR" ] && dpkg-query -W -f='${Status}' outpost 2>/dev/null | grep -q 'ok installed'; then
    die "outpost is installed as a Debian package; upgrade or remove it with apt instead"
  fi
}

check_node() {
  local help="Install Node.js ${MIN_NODE_MAJOR}.${MIN_NODE_MINOR} or later as /usr/bin/node: Debian's own nodejs package if \`apt-cache policy nodejs\` offers ${MIN_NODE_MAJOR} or later (bookworm's is 18, too old), or NodeSource's: https://github.com/nodesource/distributions (setup_20.x, then apt-get install nodejs)."
  [ -x "$NODE" ] || die "no Node.js at $NODE. $help"
  local version major minor
  version="$("$NODE" --version 2>/dev/null)" || die "$NODE --version failed. $help"
  version="${version#v}"
  major="${version%%.*}"
  minor="${version#*.}"
  minor="${minor%%.*}"
  case "$major$minor" in *[!0-9]* | '') die "$NODE printed an unexpected version \"$version\". $help" ;; esac
  if [ "$major" -lt "$MIN_NODE_MAJOR" ] || { [ "$major" -eq "$MIN_NODE_MAJOR" ] && [ "$minor" -lt "$MIN_NODE_MINOR" ]; }; then
    die "$NODE is Node.js $version; Outpost needs ${MIN_NODE_MAJOR}.${MIN_NODE_MINOR} or later. $help"
  fi
}

check_source() {
  local f
  for f in dist/src/cli.js package.json systemd/outpost.service systemd/outpost.yaml; do
    [ -f "$SRC/$f" ] || die "$SRC/$f is missing. In a checkout, build first: npm ci && npm run build"
  done
}

# Fills $1 with what /opt/outpost holds: the compiled code (without source maps, whose .ts sources
# are not shipped), the dashboard's static files, package.json (the version comes from it) and the
# production dependencies.
stage_app() {
  local app="$1"
  mkdir -p "$app/dist"
  cp -R "$SRC/dist/src" "$app/dist/src"
  find "$app/dist/src" -name '*.map' -delete
  if [ -d "$SRC/src/dashboard" ]; then
    mkdir -p "$app/src"
    cp -R "$SRC/src/dashboard" "$app/src/dashboard"
    find "$app/src/dashboard" -name '*.ts' -delete
  fi
  cp "$SRC/package.json" "$app/"
  if [ -n "${OUTPOST_NODE_MODULES:-}" ]; then
    [ -d "$OUTPOST_NODE_MODULES" ] || die "OUTPOST_NODE_MODULES=$OUTPOST_NODE_MODULES is not a directory"
    cp -R "$OUTPOST_NODE_MODULES" "$app/node_modules"
  else
    # --ignore-scripts: the native modules ship prebuilds that node-gyp-build picks at run time, so
    # nothing needs a compiler; and package.json's own prepare script (tsc) is a dev tool.
    command -v npm >/dev/null || die "npm not found: NodeSource's nodejs package includes it; with Debian's nodejs, apt-get install npm"
    local npm_args=(--omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error)
    if [ -f "$SRC/package-lock.json" ]; then
      cp "$SRC/package-lock.json" "$app/"
      (cd "$app" && npm ci "${npm_args[@]}") || die "npm ci --omit=dev failed in $app (no network and no npm cache?)"
    else
      (cd "$app" && npm install "${npm_args[@]}") || die "npm install --omit=dev failed in $app"
    fi
  fi
  prune_prebuilds "$app/node_modules"
  # Root owns the code; everyone may read it, nobody but root may change it.
  chmod -R u=rwX,go=rX "$app"
}

# classic-level and @serialport/bindings-cpp carry prebuilt binaries for many systems; keep linux's
# (all of them, so a tree can move between 32- and 64-bit Pis) or only --target-arch's.
prune_prebuilds() {
  local dir keep="linux-${target_arch:-*}"
  for dir in "$1"/*/prebuilds/* "$1"/@*/*/prebuilds/*; do
    [ -d "$dir" ] || continue
    # shellcheck disable=SC2254 # $keep is a pattern on purpose
    case "$(basename "$dir")" in $keep) ;; *) rm -rf "$dir" ;; esac
  done
}

# Loads both native modules with the Node that will run them, when it can run them (a .deb for
# another architecture cannot be checked here).
check_native() {
  local app="$1" arch
  arch="$("$NODE" -p process.arch)"
  if [ -n "$target_arch" ] && [ "$target_arch" != "$arch" ]; then return 0; fi
  (cd "$app" && "$NODE" -e '
    const load = require("node-gyp-build")
    for (const m of ["classic-level", "@serialport/bindings-cpp"]) load(require("path").join("node_modules", m))
  ') || die "the native modules in $app/node_modules do not load on linux-$arch (see above); no prebuild for this system?"
}

staging=
install_app() {
  local opt="$DESTDIR/opt" app
  mkdir -p "$opt"
  # Staged next to the old tree and swapped in with two renames, so a failed build leaves the
  # installed version intact.
  staging="$(mktemp -d "$opt/.outpost-new.XXXXXX")"
  trap 'rm -rf "$staging"' EXIT
  stage_app "$staging"
  check_native "$staging"
  chmod 0755 "$staging"
  app="$opt/outpost"
  if [ -e "$app" ]; then
    mv "$app" "$staging.old"
    mv "$staging" "$app"
    rm -rf "$staging.old"
  else
    mv "$staging" "$app"
  fi
  trap - EXIT
  say "installed $(cd "$app" && "$NODE" dist/src/cli.js --version) in $app"
}

install_files() {
  install -d -m 0755 "$DESTDIR$UNIT_DIR" "$DESTDIR/usr/bin" "$DESTDIR/etc/outpost"
  install -m 0644 "$SRC/systemd/outpost.service" "$DESTDIR$UNIT_DIR/outpost.service"
  # A wrapper rather than a symlink to cli.js: it runs the same Node as the unit, whatever PATH says.
  # OUTPOST_HOME lets an install under DESTDIR be tried out before it is moved into place.
  local wrapper="$DESTDIR/usr/bin/outpost"
  # shellcheck disable=SC2016 # the wrapper expands these when it runs
  printf '%s\n' '#!/bin/sh' \
    '# Installed with Outpost: runs its command line (outpost --help) with the Node.js the service uses.' \
    'exec /usr/bin/node "${OUTPOST_HOME:-/opt/outpost}/dist/src/cli.js" "$@"' >"$wrapper.tmp"
  chmod 0755 "$wrapper.tmp"
  mv "$wrapper.tmp" "$wrapper"
  local config="$DESTDIR/etc/outpost/outpost.yaml"
  if [ -e "$config" ]; then
    say "kept the existing $config"
  else
    install -m 0644 "$SRC/systemd/outpost.yaml" "$config"
    say "wrote the default configuration to $config"
  fi
  # The service's own directory; systemd's StateDirectory= would create it too, but a manual
  # `outpost store repair -c ...` should find it.
  install -d -m 0750 "$DESTDIR/var/lib/outpost"
  system chown outpost:outpost /var/lib/outpost
  if ! "$NODE" "$DESTDIR/opt/outpost/dist/src/cli.js" check-config "$config" >/dev/null; then
    [ -n "$DESTDIR" ] || die "$config has the problems above; fix them and run me again"
    say "warning: $config does not pass check-config (above); paths in it name the real system, not DESTDIR"
  fi
}

create_user() {
  if [ -n "$DESTDIR" ]; then
    system useradd --system --user-group --home-dir /var/lib/outpost --no-create-home --shell /usr/sbin/nologin --groups dialout outpost
    return
  fi
  # dialout owns /dev/serial0, /dev/ttyAMA0 and USB serial adapters on Debian.
  getent group dialout >/dev/null || groupadd --system dialout
  if getent passwd outpost >/dev/null; then
    usermod --append --groups dialout outpost
  else
    useradd --system --user-group --home-dir /var/lib/outpost --no-create-home --shell /usr/sbin/nologin --groups dialout outpost
    say "created the system user outpost (groups outpost, dialout)"
  fi
}

start_service() {
  if [ -n "$DESTDIR" ]; then
    system systemctl daemon-reload
    system systemctl enable outpost.service
    [ "$start" = 0 ] || system systemctl restart outpost.service
    return
  fi
  if ! systemd_running; then
    # In a chroot or container: enabling only makes symlinks, so it works; starting cannot.
    if command -v systemctl >/dev/null; then systemctl enable outpost.service || say "warning: systemctl enable outpost failed; run it once systemd is up"; fi
    say "systemd is not running here; the service starts at the next boot (or: systemctl start outpost)"
    return
  fi
  systemctl daemon-reload
  systemctl enable outpost.service
  if [ "$start" = 1 ]; then
    # restart rather than start, so that an upgrade runs the new code
    systemctl restart outpost.service
    say "started; see it with: systemctl status outpost; journalctl -u outpost -f"
  else
    say "enabled, not started (--no-start): systemctl start outpost"
  fi
}

uninstall() {
  if systemd_running; then
    systemctl disable --now outpost.service 2>/dev/null || true
  elif [ -n "$DESTDIR" ]; then
    system systemctl disable --now outpost.service
  elif command -v systemctl >/dev/null; then
    systemctl disable outpost.service 2>/dev/null || true
  fi
  rm -rf "$DESTDIR/opt/outpost"
  rm -f "$DESTDIR$UNIT_DIR/outpost.service" "$DESTDIR/usr/bin/outpost"
  if systemd_running; then systemctl daemon-reload; fi
  if [ "$purge" = 1 ]; then
    rm -rf "$DESTDIR/etc/outpost" "$DESTDIR/var/lib/outpost"
    if [ -n "$DESTDIR" ]; then
      system userdel outpost
    elif getent passwd outpost >/dev/null; then
      userdel outpost
    fi
    say "removed Outpost, its configuration, its data and the user outpost"
  else
    say "removed Outpost; kept $DESTDIR/etc/outpost, $DESTDIR/var/lib/outpost and the user outpost (--purge removes them)"
  fi
}

check_root
if [ "$action" = uninstall ]; then
  uninstall
  exit 0
fi
check_source
check_node
create_user
install_app
install_files
start_service
