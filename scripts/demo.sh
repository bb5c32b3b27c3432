#!/usr/bin/env bash
# `make demo`: a sample retailer on a throwaway cluster that stays up (`make demo-stop` stops it).
# Starts /tmp/oms-demo on port 54330 (OMS_DEMO_PORT to change it), creates database oms_demo with
# pg_cron and oms, then runs in ONE psql session, in this order:
#   demo/retailer.sql     locations, channels, 500 SKUs, stock          (reference data)
#   demo/orders.sql       a few hundred orders from every channel, and the cases an OMS must get right
#   demo/walk/NN_*.sql    one order's life, one file per step           (add a step: add a file)
#   demo/bi.sql           exchange rates for the BI reports (make report)
#   demo/summary.sql      what happened, in a few tables
# The files share psql variables and the helper schema "demo" (demo/retailer.sql creates it).
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$ROOT"

port=${OMS_DEMO_PORT:-54330}
db=oms_demo
host=/tmp/oms-demo

echo "oms demo: starting a throwaway PostgreSQL 15 cluster in $host (port $port)"
scripts/cluster.sh start demo "$port" "$db"

# psql as the superuser over the cluster's socket (trust authentication), quiet and tidy.
psql_demo() {
	"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$host" -p "$port" -U postgres \
		-P pager=off -P footer=off -P null='' -P linestyle=unicode -P border=1 "$@"
}

psql_demo -d postgres -c "CREATE DATABASE $db"
psql_demo -d "$db" -c 'CREATE EXTENSION pg_cron' -c 'CREATE EXTENSION oms'

files=(-f demo/retailer.sql -f demo/orders.sql)
for f in demo/walk/[0-9]*.sql; do
	files+=(-f "$f")
done
files+=(-f demo/bi.sql -f demo/summary.sql)

if ! psql_demo -d "$db" "${files[@]}"; then
	echo "oms demo: FAILED; the cluster is still up for a look: psql -h $host -p $port -U postgres $db" >&2
	echo "          server log: $host/server.log; stop it with: make demo-stop" >&2
	exit 1
fi

# The BI dashboard from schema oms_bi (scripts/report.sh; again any time with make report).
scripts/report.sh "${OMS_REPORT:-/tmp/oms-report.html}" || echo "oms demo: the BI report failed (make report to retry)" >&2

cat <<EOF

The demo cluster is still running. Connect with:

    psql -h $host -p $port -U postgres $db

and try, for example:
    SELECT * FROM oms.atp_by_location('SHIRT-BRERA-M');
    SELECT oms.place_order('{"channel":"web","external_id":"MY-1","currency":"EUR",
        "ship_to":{"country":"IT","postal_code":"20121","city":"Milano"},
        "lines":[{"sku":"SHIRT-BRERA-M","qty":1,"unit_price":59.00}]}');

The BI dashboard: ${OMS_REPORT:-/tmp/oms-report.html} (open it in a browser; make report rewrites it).
Stop it with: make demo-stop
EOF
