#!/usr/bin/env bash
# Makes the node's Docker engine serve its read-only metrics endpoint (the port lab
# verification connects to). DOCKER_SOURCE=docker-ce (the Ubuntu 22.04 box) first installs
# Docker Engine and compose v2 at pinned versions from Docker's apt repository;
# DOCKER_SOURCE=debian (the local libvirt box) uses the box's own docker.io and compose.
# Idempotent: a second run changes nothing and says so.
# Env: DOCKER_SOURCE, DOCKER_VERSION, COMPOSE_VERSION, CONTAINERD_VERSION, METRICS_PORT
# (from the Vagrantfile).
set -euo pipefail

: "${DOCKER_VERSION:?}" "${COMPOSE_VERSION:?}" "${CONTAINERD_VERSION:?}" "${METRICS_PORT:?}"
DOCKER_SOURCE=${DOCKER_SOURCE:-docker-ce}
changed=0

installed() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || true; }

if [ "$DOCKER_SOURCE" = debian ]; then
	for p in docker.io docker-compose; do
		if [ -z "$(installed "$p")" ]; then
			echo "docker-engine: $p is missing from the box; rebuild it with \`cargo xtask images\`" >&2
			exit 1
		fi
	done
	want_pkgs=()
else
	want_pkgs=("docker-ce=$DOCKER_VERSION" "docker-ce-cli=$DOCKER_VERSION"
		"containerd.io=$CONTAINERD_VERSION" "docker-compose-plugin=$COMPOSE_VERSION")
fi
missing=()
for p in "${want_pkgs[@]}"; do
	name=${p%%=*}
	version=${p#*=}
	if [ "$(installed "$name")" != "$version" ]; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -gt 0 ]; then
	echo "docker-engine: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if [ ! -s /etc/apt/keyrings/docker.asc ]; then
		# curl and ca-certificates come with the pinned box; installing them here would
		# float their versions.
		for tool in curl update-ca-certificates; do
			command -v "$tool" >/dev/null || {
				echo "docker-engine: $tool is missing from the box; expected in the pinned Ubuntu 22.04 box" >&2
				exit 1
			}
		done
		install -m 0755 -d /etc/apt/keyrings
		curl -fsSL https://download.docker.com/linux/ubuntu/gpg -o /etc/apt/keyrings/docker.asc
	fi
	echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/ubuntu jammy stable" \
		>/etc/apt/sources.list.d/docker.list
	apt-get update -q
	apt-get install -y -q --allow-downgrades "${want_pkgs[@]}"
	apt-mark hold docker-ce docker-ce-cli containerd.io docker-compose-plugin >/dev/null
	changed=1
fi

daemon_json="{\"metrics-addr\": \"0.0.0.0:${METRICS_PORT}\"}"
if [ "$(cat /etc/docker/daemon.json 2>/dev/null || true)" != "$daemon_json" ]; then
	echo "docker-engine: writing /etc/docker/daemon.json"
	install -m 0755 -d /etc/docker
	printf '%s\n' "$daemon_json" >/etc/docker/daemon.json.tmp
	# printf adds the newline the comparison above strips.
	mv /etc/docker/daemon.json.tmp /etc/docker/daemon.json
	systemctl restart docker
	changed=1
fi

if ! id -nG vagrant 2>/dev/null | grep -qw docker; then
	usermod -aG docker vagrant
	changed=1
fi

systemctl is-active --quiet docker || {
	systemctl enable --now docker
	changed=1
}

if [ "$changed" = 0 ] && [ "$DOCKER_SOURCE" = debian ]; then
	echo "docker-engine: no change (docker.io $(installed docker.io), docker-compose $(installed docker-compose))"
elif [ "$changed" = 0 ]; then
	echo "docker-engine: no change (docker-ce $DOCKER_VERSION, compose $COMPOSE_VERSION)"
else
	echo "docker-engine: changed"
fi
