#!/usr/bin/env bash
# Throwaway Citus clusters: a coordinator and two workers, each a cluster of scripts/cluster.sh.
#   citus.sh available               exit 0 when Citus is installed in this PostgreSQL
#   citus.sh start NAME PORT DBNAME  coordinator /tmp/oms-NAME-c on PORT, workers /tmp/oms-NAME-w1
#                                    and -w2 on PORT+1 and PORT+2; oms installed on every node,
#                                    the workers added; oms.distribute() is the caller's
#   citus.sh stop NAME               stops the three nodes and removes their directories
# Every node loads citus first (shared_preload_libraries = 'citus,pg_cron,oms'); the nodes talk over
# their Unix sockets (a node's name is its socket directory).
set -euo pipefail
. "$(dirname "$0")/common.sh"

cmd=${1:?usage: citus.sh available|start|stop NAME [PORT DBNAME]}

case $cmd in
available)
	pg_config=${PG_CONFIG:-$PGBIN/pg_config}
	[ -f "$("$pg_config" --sharedir)/extension/citus.control" ] && [ -f "$("$pg_config" --pkglibdir)/citus.so" ]
	;;
start)
	name=${2:?cluster name}
	port=${3:?port}
	db=${4:?database name}
	conf=$(pg_scratch citus-conf)/citus.conf
	cat >"$conf" <<-EOF
		shared_preload_libraries = 'citus,pg_cron,oms'
		max_prepared_transactions = 100
		max_connections = 200
		shared_buffers = 128MB
		citus.propagate_set_commands = 'local'
		citus.max_cached_conns_per_worker = 4
		oms.notify_events = 'worker'
	EOF
	chmod 644 "$conf"
	# The oms background worker runs on the coordinator only: it works through Citus on every
	# tenant's shards (on a worker, oms.database names a database without oms, where it waits).
	cp "$conf" "$conf.worker"
	echo "oms.database = 'postgres'" >>"$conf.worker"
	chmod 644 "$conf.worker"
	i=0
	for node in c w1 w2; do
		nodeconf=$conf
		[ "$node" = c ] || nodeconf=$conf.worker
		OMS_EXTRA_CONF=$nodeconf "$ROOT/scripts/cluster.sh" start "$name-$node" $((port + i)) "$db"
		as_pg psql -X -q -h "/tmp/oms-$name-$node" -p $((port + i)) -U postgres -d postgres \
			-v ON_ERROR_STOP=1 -c "CREATE DATABASE $db"
		# Every node gets oms from its own CREATE EXTENSION before it joins: the coordinator
		# would otherwise create schema oms (with its grants) on the workers first, and oms
		# refuses to install into a schema that others have rights on.
		as_pg psql -X -q -h "/tmp/oms-$name-$node" -p $((port + i)) -U postgres -d "$db" \
			-v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" \
			-c "CREATE EXTENSION citus" -c "CREATE EXTENSION pg_cron" -c "CREATE EXTENSION oms"
		i=$((i + 1))
	done
	rm -rf "$(dirname "$conf")"
	as_pg psql -X -q -h "/tmp/oms-$name-c" -p "$port" -U postgres -d "$db" -v ON_ERROR_STOP=1 \
		-c "SELECT citus_set_coordinator_host('/tmp/oms-$name-c', $port)" \
		-c "SELECT citus_add_node('/tmp/oms-$name-w1', $((port + 1)))" \
		-c "SELECT citus_add_node('/tmp/oms-$name-w2', $((port + 2)))" >/dev/null
	;;
stop)
	name=${2:?cluster name}
	for node in c w1 w2; do
		"$ROOT/scripts/cluster.sh" stop "$name-$node"
	done
	;;
*)
	echo "usage: citus.sh available|start|stop NAME [PORT DBNAME]" >&2
	exit 2
	;;
esac
