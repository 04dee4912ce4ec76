#!/bin/bash -e
# Runs on the build host. Turns the GPIO UART (/dev/serial0: pins 8 TX, 10 RX) on for sensors and
# takes the Linux console off it, as `raspi-config nonint do_serial_hw 0` and
# `raspi-config nonint do_serial_cons 1` would on a running Pi.
boot="${ROOTFS_DIR}/boot/firmware" # bookworm; /boot before it
[ -f "$boot/config.txt" ] || boot="${ROOTFS_DIR}/boot"

if ! grep -q '^enable_uart=1' "$boot/config.txt"; then
	# [all]: lines after a model filter such as [pi4] would apply to that model only.
	printf '\n[all]\nenable_uart=1\n' >>"$boot/config.txt"
fi
# The kernel console and its login prompt (serial-getty, started by systemd for a console= there)
# would talk over the sensors' line.
sed -i -E 's/(^| )console=(serial0|ttyAMA0|ttyS0),[0-9]+//g; s/^ +//' "$boot/cmdline.txt"
