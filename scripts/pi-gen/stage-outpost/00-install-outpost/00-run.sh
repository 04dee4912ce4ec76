#!/bin/bash -e
# Runs on the build host: hands the packages in files/ to the chroot step (01-run-chroot.sh),
# which cannot see this directory. files/ holds outpost_<version>_armhf.deb and/or _arm64.deb from
# scripts/build-deb.sh, and optionally a nodejs_*.deb (20.15 or later) to install instead of
# NodeSource's.
shopt -s nullglob
debs=(files/outpost_*_armhf.deb files/outpost_*_arm64.deb)
if [ ${#debs[@]} -eq 0 ]; then
	echo "stage-outpost: no outpost_*_armhf.deb or outpost_*_arm64.deb in $(pwd)/files; build them with scripts/build-deb.sh --arch all --out $(pwd)/files" >&2
	exit 1
fi
install -d -m 0755 "${ROOTFS_DIR}/tmp/outpost-debs"
install -m 0644 files/*.deb "${ROOTFS_DIR}/tmp/outpost-debs/"
