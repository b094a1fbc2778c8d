#!/bin/sh
# Entrypoint of stackpilot/postgres: the official image's env contract on Debian's postgresql.
#   POSTGRES_PASSWORD  required; the server refuses to start without it
#   POSTGRES_USER      superuser to create (default: postgres)
#   POSTGRES_DB        database to create (default: $POSTGRES_USER)
# Initialises $PGDATA on first start (then runs /docker-entrypoint-initdb.d/*.sql and *.sh),
# and runs the server in the foreground, listening on all interfaces of its network.
set -eu

if [ "${1:-}" != postgres ]; then
	exec "$@"
fi

if [ -z "${POSTGRES_PASSWORD:-}" ]; then
	echo "stackpilot/postgres: refusing to start: POSTGRES_PASSWORD is not set" >&2
	echo "  expected: a superuser password, e.g. docker run -e POSTGRES_PASSWORD=... (as the official image)" >&2
	exit 1
fi
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	echo "stackpilot/postgres: initialising $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
	pwfile=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
		--auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
	rm -f "$pwfile"
	{
		echo "listen_addresses = '*'"
		echo "unix_socket_directories = '/run/postgresql'"
	} >>"$PGDATA/postgresql.conf"
	echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"

	# A private server on the unix socket only, so nothing connects before init is done.
	pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
	if [ "$POSTGRES_DB" != postgres ]; then
		psql -v ON_ERROR_STOP=1 -q --username "$POSTGRES_USER" --dbname postgres \
			--set db="$POSTGRES_DB" <<-'SQL'
			CREATE DATABASE :"db";
		SQL
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
		*.sql)
			echo "stackpilot/postgres: running $f"
			psql -v ON_ERROR_STOP=1 -q --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$f"
			;;
		*.sh)
			echo "stackpilot/postgres: running $f"
			sh "$f"
			;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	echo "stackpilot/postgres: initialised"
fi

exec "$@"
