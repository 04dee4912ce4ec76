#!/bin/bash -e
# Runs inside the image (pi-gen's on_chroot). Raspberry Pi OS bookworm's own nodejs is 18, older
# than Outpost's 20.15, so Node.js comes from a nodejs_*.deb placed in files/ or else from
# NodeSource's apt repository (node_${OUTPOST_NODE_MAJOR}.x, 20 unless the pi-gen config exports
# another). Then the outpost package for the image's architecture; its postinst creates the user
# and enables the service, which starts at first boot.
arch="$(dpkg --print-architecture)"
debs=/tmp/outpost-debs
node_major="${OUTPOST_NODE_MAJOR:-20}"

node_debs=("$debs"/nodejs_*_"$arch".deb)
if [ -e "${node_debs[0]}" ]; then
	apt-get install -y --no-install-recommends "${node_debs[@]}"
else
	install -d -m 0755 /usr/share/keyrings
	curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key | gpg --dearmor --yes -o /usr/share/keyrings/nodesource.gpg
	echo "deb [arch=$arch signed-by=/usr/share/keyrings/nodesource.gpg] https://deb.nodesource.com/node_${node_major}.x nodistro main" >/etc/apt/sources.list.d/nodesource.list
	# NodeSource's nodejs over Debian's and Raspberry Pi's, whatever their version numbers say.
	printf 'Package: nodejs\nPin: origin deb.nodesource.com\nPin-Priority: 600\n' >/etc/apt/preferences.d/nodejs
	apt-get update
	apt-get install -y --no-install-recommends nodejs
fi

outpost_debs=("$debs"/outpost_*_"$arch".deb)
if [ ! -e "${outpost_debs[0]}" ]; then
	echo "stage-outpost: no outpost_*_$arch.deb among: $(ls "$debs")" >&2
	exit 1
fi
apt-get install -y --no-install-recommends "${outpost_debs[@]}"
rm -rf "$debs"
node --version
outpost --version
