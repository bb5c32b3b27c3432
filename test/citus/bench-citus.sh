#!/usr/bin/env bash
# bench-citus.sh (part "citus" of make bench, when Citus is installed): place_order across 10
# tenants on a Citus cluster (a coordinator and two workers) beside one node, in the same run on
# the same machine. All nodes share its cores, so this measures Citus's overhead, not a speed-up.
#   DURATION=20 seconds per run; CITUS_CLIENTS="1 8" client counts; OMS_BENCH_PORT=54440 (the
#   Citus cluster takes +20..+22, the single node +23)
# Prints one line per run (tps, latency p50/p99) and the round trips per order (commands the
# coordinator sends to the workers for one call, from citus.log_remote_commands).
set -uo pipefail
. "$(dirname "$0")/../../scripts/common.sh"
cd "$ROOT"

if ! scripts/citus.sh available; then
	echo "citus: not installed, part skipped (README \"Scale-out on Citus\")"
	exit 0
fi
DURATION=${DURATION:-20}
CITUS_CLIENTS=${CITUS_CLIENTS:-1 8}
base=${OMS_BENCH_PORT:-54440}
cport=$((base + 20))
sport=$((base + 23))
db=shop
work=$(pg_scratch citus-bench)
cp test/citus/place_order.pgbench "$work/"
[ "$(id -u)" = 0 ] && chown -R "$PG_USER" "$work"

scripts/citus.sh start bench-citus "$cport" "$db" || exit 1
scripts/cluster.sh start bench-single "$sport" "$db" || exit 1
as_pg psql -X -q -h /tmp/oms-bench-single -p "$sport" -U postgres -d postgres -c "CREATE DATABASE $db" &&
	as_pg psql -X -q -h /tmp/oms-bench-single -p "$sport" -U postgres -d "$db" -c "CREATE EXTENSION oms" || exit 1
trap 'scripts/citus.sh stop bench-citus; scripts/cluster.sh stop bench-single; rm -rf "$work"' EXIT

# 10 tenants, each: two warehouses, 100 SKUs with plenty of stock, a channel that releases at once.
load='
SET client_min_messages = warning;
SELECT oms.create_tenant(format($$t%s$$, i)) FROM generate_series(1, 10) i;
INSERT INTO oms.locations (tenant_id, code, kind, name, country, city, postal_code, latitude, longitude, can_ship, can_pickup, priority)
SELECT t.id, l.code, $$warehouse$$, l.code, l.country, l.city, l.pc, l.lat, l.lon, true, false, l.prio
  FROM oms.tenants t, (VALUES ($$WH-MI$$, $$IT$$, $$Pero$$, $$20016$$, 45.5098, 9.0893, 10),
						 ($$WH-BU$$, $$RO$$, $$Chiajna$$, $$077040$$, 44.4586, 25.9726, 20)) l(code, country, city, pc, lat, lon, prio)
 WHERE t.code LIKE $$t%$$;
INSERT INTO oms.channels (tenant_id, code, kind, name, default_currency, requires_authorization, auto_release)
SELECT t.id, $$web$$, $$web$$, $$Web$$, $$EUR$$, false, false FROM oms.tenants t WHERE t.code LIKE $$t%$$;
INSERT INTO oms.items (tenant_id, sku, name, weight)
SELECT t.id, $$SKU-$$ || s, $$Item $$ || s, 0.5 FROM oms.tenants t, generate_series(1, 100) s WHERE t.code LIKE $$t%$$;
INSERT INTO oms.stock (tenant_id, item_id, location_id, on_hand)
SELECT i.tenant_id, i.id, l.id, 1000000 FROM oms.items i JOIN oms.locations l ON l.tenant_id = i.tenant_id;
'
as_pg psql -X -q -h /tmp/oms-bench-citus-c -p "$cport" -U postgres -d "$db" -v ON_ERROR_STOP=1 -c "$load" >/dev/null || exit 1
as_pg psql -X -q -h /tmp/oms-bench-single -p "$sport" -U postgres -d "$db" -v ON_ERROR_STOP=1 -c "$load" >/dev/null || exit 1
as_pg psql -X -q -h /tmp/oms-bench-citus-c -p "$cport" -U postgres -d "$db" -v ON_ERROR_STOP=1 \
	-c "SET client_min_messages = warning" -c "SELECT count(*) FROM oms.distribute()" >/dev/null || exit 1
tmin=$(as_pg psql -X -q -At -h /tmp/oms-bench-single -p "$sport" -U postgres -d "$db" -c "SELECT min(id) FROM oms.tenants WHERE code LIKE 't%'")

round_trips=$(as_pg psql -X -q -h /tmp/oms-bench-citus-c -p "$cport" -U postgres -d "$db" 2>&1 \
	-c "SET citus.log_remote_commands = on" \
	-c "SELECT oms.place_order($tmin, '{\"channel\": \"web\", \"external_id\": \"rt-1\", \"ship_to\": {\"line1\": \"Via Roma 1\", \"city\": \"Milano\", \"postal_code\": \"20121\", \"country\": \"IT\"}, \"lines\": [{\"sku\": \"SKU-1\", \"qty\": 1, \"unit_price\": 10}]}')" |
	grep -c 'NOTICE:  issuing')

printf '%-28s %8s %10s %10s\n' "citus: place_order" tps "p50 ms" "p99 ms"
for clients in $CITUS_CLIENTS; do
	for target in single citus; do
		if [ "$target" = single ]; then h=/tmp/oms-bench-single; p=$sport; else h=/tmp/oms-bench-citus-c; p=$cport; fi
		log=$work/$target-$clients
		as_pg pgbench -n -M prepared -h "$h" -p "$p" -U postgres -c "$clients" -j "$clients" -T "$DURATION" \
			-D tmin="$tmin" -D tmax=$((tmin + 9)) -l --log-prefix="$log" -f "$work/place_order.pgbench" "$db" >"$log.out" 2>&1
		tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$log.out" | head -1)
		lat=$(cat "$log".* 2>/dev/null | awk '{print $3 / 1000}' | sort -n |
			awk '{a[NR] = $1} END {if (NR) printf "%.2f %.2f", a[int(NR * 0.5) + 1], a[int(NR * 0.99) + 1]}')
		printf '%-28s %8.0f %10s %10s\n' "$target, $clients client(s)" "${tps:-0}" ${lat:-- -}
	done
done
echo "citus: round trips coordinator -> worker per place_order: $round_trips"
failed=$(as_pg psql -X -q -At -h /tmp/oms-bench-citus-c -p "$cport" -U postgres -d "$db" -c "SELECT count(*) FROM oms.check_stock_invariants_all()")
echo "citus: stock invariants: $([ "$failed" = 0 ] && echo hold || echo "BROKEN ($failed rows)")"
[ "$failed" = 0 ]
