#!/usr/bin/env bash
# Writes the node identity file (ctx-guard and lab verification read it), the lab's peer
# hostnames into /etc/hosts, and an /etc/fstab line for the /vagrant synced folder, so it
# is mounted at boot and not only by `vagrant up` (stackpilot@ENV requires it: after a
# reboot inside the VM it starts, and at shutdown it stops before /vagrant goes away).
# Idempotent: a second run changes nothing and says so.
# Env: IDENTITY (TOML of stackpilot_core::node::Identity), HOSTS ("address name" lines).
set -euo pipefail

: "${IDENTITY:?}" "${HOSTS:?}"
identity_file=/etc/stackpilot/node-identity.toml
changed=0

if ! grep -q '^lab_id = ".\+"$' <<<"$IDENTITY"; then
	echo "node: no lab id: the repo has no .stackpilot-lab marker; run \`cargo xtask lab up\` on the host" >&2
	exit 1
fi

if [ "$(cat "$identity_file" 2>/dev/null || true)" != "$(printf '%s' "$IDENTITY")" ]; then
	install -m 0755 -d /etc/stackpilot
	printf '%s' "$IDENTITY" >"$identity_file.tmp"
	mv "$identity_file.tmp" "$identity_file"
	echo "node: identity written to $identity_file"
	changed=1
fi

begin="# stackpilot lab nodes (begin)"
end="# stackpilot lab nodes (end)"
block="$begin
$HOSTS
$end"
current=$(sed -n "/^$begin\$/,/^$end\$/p" /etc/hosts)
if [ "$current" != "$block" ]; then
	# Rewritten in place, not renamed over: /etc/hosts may be a mount (containers).
	rest=$(sed "/^$begin\$/,/^$end\$/d" /etc/hosts)
	printf '%s\n%s\n' "$rest" "$block" >/etc/hosts
	echo "node: peer hostnames written to /etc/hosts"
	changed=1
fi

# The synced folder as Vagrant mounted it (9p on libvirt, vboxsf on VirtualBox).
read -r src fstype opts < <(awk '$2 == "/vagrant" { print $1, $3, $4 }' /proc/mounts | tail -n 1) || true
if [ -n "${fstype:-}" ] && ! awk '$2 == "/vagrant"' /etc/fstab | grep -q .; then
	case "$fstype" in
	9p | vboxsf | virtiofs)
		printf '%s /vagrant %s %s,nofail 0 0\n' "$src" "$fstype" "$opts" >>/etc/fstab
		systemctl daemon-reload
		echo "node: /vagrant ($fstype) added to /etc/fstab"
		changed=1
		;;
	esac
fi

if [ "$changed" = 0 ]; then
	echo "node: no change"
fi
