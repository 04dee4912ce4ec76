#!/bin/bash -e
# pi-gen runs this before the stage's steps: start from the previous stage's root file system
# (normally stage2, Raspberry Pi OS Lite).
if [ ! -d "${ROOTFS_DIR}" ]; then
	copy_previous
fi
