#!/usr/bin/env bash
# Throwaway PostgreSQL 15 clusters for the demo, the tests and the benchmarks.
#   cluster.sh start NAME PORT DBNAME   initdb (if needed) and start /tmp/oms-NAME on PORT
#   cluster.sh stop NAME                stop it and remove its directory
#   cluster.sh env NAME                 print PGHOST/PGPORT lines for it
# The cluster listens only on a Unix socket in its own directory, with
# shared_preload_libraries = 'pg_cron,oms' and the settings in test/oms.conf; pg_cron and the oms
# background worker are pointed at DBNAME. OMS_EXTRA_CONF=FILE appends FILE's settings.
set -euo pipefail
. "$(dirname "$0")/common.sh"

cmd=${1:?usage: cluster.sh start|stop|env NAME [PORT DBNAME]}
name=${2:?cluster name}
dir=/tmp/oms-$name
data=$dir/data

case $cmd in
start)
	port=${3:?port}
	db=${4:?database name}
	if [ -f "$data/postmaster.pid" ]; then
		as_pg pg_ctl -D "$data" -m immediate stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && chown "$PG_USER" "$dir"
	as_pg initdb -D "$data" -U postgres -A trust --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log"; exit 1; }
	{
		cat "$ROOT/test/oms.conf"
		echo "port = $port"
		echo "unix_socket_directories = '$dir'"
		echo "cron.database_name = '$db'"
		echo "oms.database = '$db'"
		# Settings of a caller (the Citus nodes: citus first in shared_preload_libraries).
		if [ -n "${OMS_EXTRA_CONF:-}" ]; then cat "$OMS_EXTRA_CONF"; fi
	} | as_pg tee -a "$data/postgresql.conf" >/dev/null
	# The server must not inherit our open files: under `flock /tmp/oms-test.lock make ...` it
	# would hold the lock for as long as it runs (a demo cluster: until make demo-stop).
	for fd in /proc/$$/fd/*; do
		fd=${fd##*/}
		case $fd in 0 | 1 | 2 | 255) ;; *) eval "exec $fd>&-" 2>/dev/null || true ;; esac
	done
	as_pg pg_ctl -D "$data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
		{ tail -n 30 "$dir/server.log"; exit 1; }
	echo "$port" >"$dir/port"
	;;
stop)
	if [ -f "$data/postmaster.pid" ]; then
		as_pg pg_ctl -D "$data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
	;;
env)
	echo "PGHOST=$dir PGPORT=$(cat "$dir/port") PGUSER=postgres"
	;;
*)
	echo "usage: cluster.sh start|stop|env NAME [PORT DBNAME]" >&2
	exit 2
	;;
esac
