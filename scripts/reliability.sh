#!/usr/bin/env bash
# The long runs of the reliability tests, each on a throwaway cluster of its own:
#   reliability.sh stress CLIENTS SECONDS   test/stress/stress.pl: N clients for T seconds, then the invariants
# (`make test` runs short versions of them as TAP tests in test/t.)
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$ROOT"

what=${1:?usage: reliability.sh stress CLIENTS SECONDS}
port=${OMS_RELIABILITY_PORT:-54331}
db=oms_$what
host=/tmp/oms-$what

scripts/cluster.sh start "$what" "$port" "$db"
trap 'scripts/cluster.sh stop "$what"' EXIT
psql_as() { as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U postgres "$@"; }
psql_as -d postgres -c "CREATE DATABASE $db"
psql_as -d "$db" -c 'CREATE EXTENSION oms'

case $what in
stress)
	clients=${2:-8}
	seconds=${3:-60}
	work=$(pg_scratch stress)
	as_pg perl test/stress/stress.pl --psql "$PGBIN/psql" --host "$host" --port "$port" --dbname "$db" \
		--user postgres --clients "$clients" --seconds "$seconds" --workdir "$work"
	;;
*)
	echo "reliability.sh: unknown run \"$what\"" >&2
	exit 2
	;;
esac
