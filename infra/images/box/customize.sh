#!/bin/sh
# mmdebstrap --customize-hook for the libvirt box: "$1" is the finished rootfs.
# Env: VAGRANT_PUBKEY (Vagrant's insecure public key, from Debian's vagrant package).
set -eu
root="$1"
: "${VAGRANT_PUBKEY:?}"

# The vagrant user: passwordless sudo and the insecure key Vagrant replaces on first up.
chroot "$root" useradd --create-home --shell /bin/bash --groups docker vagrant
printf 'vagrant ALL=(ALL) NOPASSWD: ALL\n' >"$root/etc/sudoers.d/vagrant"
chmod 0440 "$root/etc/sudoers.d/vagrant"
install -d -m 0700 "$root/home/vagrant/.ssh"
install -m 0600 "$VAGRANT_PUBKEY" "$root/home/vagrant/.ssh/authorized_keys"
chroot "$root" chown -R vagrant:vagrant /home/vagrant/.ssh

# DHCP on the management NIC only (eth0: the kernel command line has net.ifnames=0), so
# Vagrant's networkd file gives the private NIC its static inventory address.
printf '[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n' >"$root/etc/systemd/network/10-management.network"
chroot "$root" systemctl enable systemd-networkd.service

# The root filesystem is the whole disk (no partition table).
printf '/dev/vda / ext4 defaults 0 1\n' >"$root/etc/fstab"
