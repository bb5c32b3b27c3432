#!/usr/bin/env bash
# The long runs of the reliability tests, each on a throwaway cluster of its own:
#   reliability.sh stress CLIENTS SECONDS   test/stress/stress.pl: N clients for T seconds, then the invariants
#   reliability.sh fuzz SECONDS             test/fuzz/fuzz.pl for T seconds; fails on a crash in the server log too
#   reliability.sh sqlsmith QUERIES [SEED]  sqlsmith's random queries over the stress test's data
# (`make test` runs short versions of them as TAP tests in test/t.)
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$ROOT"

what=${1:?usage: reliability.sh stress CLIENTS SECONDS | fuzz SECONDS | sqlsmith QUERIES [SEED]}
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
fuzz)
	seconds=${2:-300}
	work=$(pg_scratch fuzz)
	status=0
	as_pg perl test/fuzz/fuzz.pl --psql "$PGBIN/psql" --host "$host" --port "$port" --dbname "$db" \
		--user postgres --seconds "$seconds" --workdir "$work" || status=$?
	if grep -E 'terminated by signal|was terminated by exception' "$host/server.log"; then
		echo "FAILED: a server process crashed (see above)"
		status=1
	fi
	exit $status
	;;
sqlsmith)
	queries=${2:-20000}
	seed=${3:-1}
	work=$(pg_scratch sqlsmith)
	as_pg perl test/stress/stress.pl --psql "$PGBIN/psql" --host "$host" --port "$port" --dbname "$db" \
		--user postgres --clients 4 --seconds 10 --workdir "$work" | tail -n 1
	psql_as -d "$db" -f test/sqlsmith/setup.sql
	status=0
	sqlsmith --target="host=$host port=$port dbname=$db user=smith" --seed="$seed" --max-queries="$queries" \
		--verbose >"$work/sqlsmith.log" 2>&1 || status=$?
	grep -m 1 '^error rate' "$work/sqlsmith.log" || true
	echo "sqlsmith: $queries queries, seed $seed, exit status $status; its report: $work/sqlsmith.log"
	if grep -E 'terminated by signal|was terminated by exception' "$host/server.log"; then
		echo "FAILED: a server process crashed (see above)"
		status=1
	fi
	if grep -E '^[0-9]+[[:space:]]+ERROR:  oms: ' "$work/sqlsmith.log"; then
		echo "FAILED: internal errors of oms (above)"
		status=1
	fi
	bad=$(psql_as -d "$db" -At -c 'SELECT count(*) FROM oms.check_stock_invariants_all()')
	if [ "$bad" != 0 ]; then
		echo "FAILED: $bad stock invariant problem(s) after sqlsmith's writes"
		status=1
	fi
	[ "$status" = 0 ] && echo "PASSED: no crash, no internal error, stock invariants hold"
	exit $status
	;;
*)
	echo "reliability.sh: unknown run \"$what\"" >&2
	exit 2
	;;
esac
