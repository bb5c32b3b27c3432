#!/usr/bin/env bash
# test-citus.sh (make test-citus): oms distributed by tenant on Citus, a coordinator and two
# workers on private ports (scripts/citus.sh), the sample retailer loaded as 10 tenants.
# Prints "ok N - ..." / "not ok N - ..." per check and exits non-zero on any failure. Without
# Citus installed it says so in one line and exits 0.
#   OMS_CITUS_PORT   coordinator port (workers: +1, +2); default OMS_TEST_PORT + 200, or 54529
#   OMS_TEST_NAME    names the clusters /tmp/oms-NAME-citus-{c,w1,w2} (default test)
#   OMS_CITUS_KEEP=1 leaves the clusters running at the end, to look at them (stop them with
#                    scripts/citus.sh stop NAME-citus)
set -uo pipefail
. "$(dirname "$0")/../../scripts/common.sh"
cd "$ROOT"

if ! scripts/citus.sh available; then
	echo "citus: not installed, test skipped (Citus 12+ packages, or test/citus/build-citus.sh SOURCE_DIR; README \"Scale-out on Citus\")"
	exit 0
fi

port=${OMS_CITUS_PORT:-$((${OMS_TEST_PORT:-54329} + 200))}
name=${OMS_TEST_NAME:-test}-citus
db=shop
stage=$(pg_scratch citus-test)
cp -r "$ROOT/test/citus" "$ROOT/demo" "$stage/"
[ "$(id -u)" = 0 ] && chown -R "$PG_USER" "$stage"

scripts/citus.sh start "$name" "$port" "$db" || exit 1
cleanup() {
	if [ "${OMS_CITUS_KEEP:-0}" = 1 ]; then
		echo "# clusters kept: psql -h /tmp/oms-$name-c -p $port -U postgres $db; scripts/citus.sh stop $name"
	else
		scripts/citus.sh stop "$name"
	fi
	rm -rf "$stage"
}
trap cleanup EXIT

c_host=/tmp/oms-$name-c
sql() { as_pg psql -X -q -At -h "$c_host" -p "$port" -U postgres -d "$db" -v ON_ERROR_STOP=1 "$@"; }
node_sql() { as_pg psql -X -q -At -h "/tmp/oms-$name-$1" -p "$2" -U postgres -d "$db" -v ON_ERROR_STOP=1 "${@:3}"; }

n=0
failed=0
start=$SECONDS
check() {	# check DESCRIPTION EXPECTED ACTUAL
	n=$((n + 1))
	if [ "$2" = "$3" ]; then
		echo "ok $n - $1 ($((SECONDS - start)) s)"
	else
		echo "not ok $n - $1"
		echo "#   expected: $2"
		echo "#   got:      $3"
		failed=$((failed + 1))
	fi
}

# ---------------------------------------------------------------- the sample retailer, 10 tenants
# Loaded on the coordinator before distributing (oms.distribute() moves existing data into the
# shards), then one tenant more after it, to show that both ways work.
sql -f "$stage/citus/checks.sql" >/dev/null || exit 1
for i in $(seq -f %02g 1 9); do
	sql -c "SELECT oms.create_tenant('shop-$i', 'Shop $i')" >/dev/null &&
		as_pg env PGOPTIONS="-c oms.tenant=shop-$i" psql -X -q -h "$c_host" -p "$port" -U postgres -d "$db" \
			-v ON_ERROR_STOP=1 -f "$stage/demo/retailer.sql" >/dev/null &&
		sql -c "DROP SCHEMA demo CASCADE" >/dev/null 2>&1 || { echo "loading tenant shop-$i failed"; exit 1; }
done
# every table of oms but job_runs (local to the coordinator)
tables=$(sql -c "SELECT count(*) - 1 FROM pg_class WHERE relnamespace = 'oms'::regnamespace AND relkind = 'r'")
out=$(sql -c "SET client_min_messages = warning" -c "SELECT count(*) FROM oms.distribute()" 2>&1)
check "oms.distribute() distributes every table of oms but job_runs ($tables)" "$tables" "$out"
out=$(sql -c "SET client_min_messages = warning" -c "SELECT count(*) FROM oms.distribute()" -c "SELECT count(*) FROM pg_dist_partition" 2>&1 | tr '\n' ' ')
check "a second oms.distribute() changes nothing" "$tables $tables " "$out"
sql -c "SELECT oms.create_tenant('shop-10', 'Shop 10')" >/dev/null
out=$(sql -c "SET oms.tenant = 'shop-10'" \
	-c "INSERT INTO oms.locations (code, kind, name, country, city, postal_code, latitude, longitude, can_ship, can_pickup, priority)
		VALUES ('WH-MI', 'warehouse', 'Milano', 'IT', 'Pero', '20016', 45.5098, 9.0893, true, false, 10),
			   ('WH-BU', 'warehouse', 'Bucuresti', 'RO', 'Chiajna', '077040', 44.4586, 25.9726, true, false, 20)" \
	-c "INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR')" 2>&1 | tail -n 1)
check "a tenant created after oms.distribute() gets its locations and channels" "" "$out"

# Every tenant: a channel that releases at once, and an item stocked at one warehouse only, so
# that the test knows where to pack; a SKU with 10 units for the race.
sql -c "UPDATE oms.channels SET requires_authorization = false, auto_release = true WHERE code = 'web'" >/dev/null
for i in $(seq -w 1 10); do
	sql -c "SET oms.tenant = 'shop-$i'" \
		-c "INSERT INTO oms.items (sku, name, weight) VALUES ('CIT-1', 'Citus test tee', 0.2), ('RACE-1', 'Last units', 0.2)" >/dev/null
	t=$(sql -c "SELECT oms.tenant_id('shop-$i')")
	sql -c "SELECT oms.set_stock($t, 'CIT-1', 'WH-MI', 1000, 'citus test')" \
		-c "SELECT oms.set_stock($t, 'RACE-1', 'WH-BU', 10, 'citus test')" >/dev/null
done
tenants=$(sql -c "SELECT string_agg(id::text, ' ' ORDER BY id) FROM oms.tenants WHERE code LIKE 'shop-%'")

# ---------------------------------------------------------------- data placement
out=$(sql -c "SELECT count(*) FROM (SELECT tenant_id FROM citus_test.tenant_nodes() GROUP BY tenant_id HAVING count(DISTINCT node) > 1) x")
check "every tenant's rows of every distributed table are on one node" "0" "$out"
out=$(sql -c "SELECT count(*) FROM citus_test.tenant_nodes() x WHERE x.node <> citus_test.node_of(x.tenant_id)")
check "that node is the one of the tenant's shard group" "0" "$out"
out=$(sql -c "SELECT count(DISTINCT citus_test.node_of(id)) FROM oms.tenants WHERE code LIKE 'shop-%'")
check "the 10 tenants are spread over both workers" "2" "$out"
out=$(sql -c "SELECT count(DISTINCT tenant_id) FROM citus_test.tenant_nodes() WHERE table_name = 'stock'")
check "stock rows of the 10 tenants (and none of others)" "10" "$out"

# ---------------------------------------------------------------- the life of an order, per tenant
ok=0
for t in $tenants; do
	r=$(sql -v t="$t" <<-'EOF' 2>&1
		SELECT oms.place_order(:t, jsonb_build_object('channel', 'web', 'external_id', 'CIT-' || :t,
			'ship_to', jsonb_build_object('line1', 'Via Roma 1', 'city', 'Milano', 'postal_code', '20121', 'country', 'IT'),
			'lines', jsonb_build_array(jsonb_build_object('sku', 'CIT-1', 'qty', 2, 'unit_price', 19.90)))) AS o \gset
		SELECT oms.pack(:t, :o::bigint, 'WH-MI', NULL::jsonb) AS s \gset
		SELECT oms.ship(:t, :s::bigint, 'dhl.standard', 'CIT-TRK-' || :t) \gset
		SELECT oms.deliver(:t, :s::bigint, now()) \gset
		SELECT oms.issue_invoice(:t, :o::bigint) IS NOT NULL AS invoiced \gset
		SELECT oms.create_return(:t, :o::bigint, '[{"line_no": 1, "qty": 1}]', 'too small') AS r \gset
		SELECT oms.receive_return(:t, :r::bigint, '[{"line_no": 1, "qty": 1, "disposition": "restock"}]') \gset
		SELECT o.state || ' ' || :'invoiced' || ' ' || l.qty_shipped || ' ' || l.qty_returned
		  FROM oms.orders o JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
		 WHERE o.tenant_id = :t AND o.id = :o;
	EOF
	)
	if [ "$r" = "partially_returned t 2 1" ]; then
		ok=$((ok + 1))
	else
		echo "# tenant $t: $r"
	fi
done
check "place_order, pack, ship, deliver, issue_invoice, create_return, receive_return for each of the 10 tenants" "10" "$ok"
out=$(sql -c "SELECT count(*) FROM oms.check_stock_invariants_all()")
check "stock invariants hold on every tenant" "0" "$out"

# ---------------------------------------------------------------- BI summaries on the shards
# For a tenant on each worker: a backorder served later by a purchase order (the backorder count
# moves to the receiving location), a cancellation, a cancelled line, a new address (the order's
# sales move to the new country); then the triggers' summaries, kept on the shards, against a
# recomputation from the tables, for every tenant.
bi_tenants=$(sql -c "SELECT string_agg(t::text, ' ') FROM (SELECT min(id) AS t FROM oms.tenants WHERE code LIKE 'shop-%' GROUP BY citus_test.node_of(id)) x")
ok=0
for t in $bi_tenants; do
	code=$(sql -c "SELECT code FROM oms.tenants WHERE id = $t")
	sql -c "SET oms.tenant = '$code'" -c "INSERT INTO oms.items (sku, name, weight, backorderable) VALUES ('BO-1', 'Backordered tee', 0.2, true)" \
		-c "INSERT INTO oms.suppliers (code, name) VALUES ('SUP-BI', 'BI supplier')" \
		-c "INSERT INTO oms.channels (code, kind, name, default_currency, requires_authorization, auto_release) VALUES ('bi', 'web', 'Held web shop', 'EUR', false, false)" >/dev/null
	r=$(sql -v t="$t" <<-'EOF' 2>&1
		SELECT oms.place_order(:t, jsonb_build_object('channel', 'bi', 'external_id', 'BI-BO-' || :t,
			'customer', jsonb_build_object('ref', 'CUST-' || :t), 'attributes', jsonb_build_object('seller', 'ann'),
			'ship_to', jsonb_build_object('line1', 'Via Roma 1', 'city', 'Milano', 'postal_code', '20121', 'country', 'IT'),
			'lines', jsonb_build_array(jsonb_build_object('sku', 'BO-1', 'qty', 2, 'unit_price', 5),
									   jsonb_build_object('sku', 'CIT-1', 'qty', 1, 'unit_price', 19.90)))) AS bo \gset
		SELECT oms.place_order(:t, jsonb_build_object('channel', 'bi', 'external_id', 'BI-CX-' || :t,
			'ship_to', jsonb_build_object('line1', 'Via Roma 1', 'city', 'Milano', 'postal_code', '20121', 'country', 'IT'),
			'lines', jsonb_build_array(jsonb_build_object('sku', 'CIT-1', 'qty', 3, 'unit_price', 19.90)))) AS cx \gset
		SELECT oms.place_order(:t, jsonb_build_object('channel', 'bi', 'external_id', 'BI-CL-' || :t,
			'ship_to', jsonb_build_object('line1', 'Via Roma 1', 'city', 'Milano', 'postal_code', '20121', 'country', 'IT'),
			'lines', jsonb_build_array(jsonb_build_object('sku', 'CIT-1', 'qty', 4, 'unit_price', 19.90)))) AS cl \gset
		SELECT oms.cancel_order(:t, :cx::bigint, 'changed mind') \gset
		SELECT oms.cancel_line(:t, :cl::bigint, 1, 1, 'one less') \gset
		SELECT oms.change_address(:t, :bo::bigint, '{"line1": "Hauptstrasse 1", "city": "Berlin", "postal_code": "10115", "country": "DE"}') \gset
		SELECT oms.create_purchase_order(:t, 'SUP-BI', 'WH-BU', '[{"sku": "BO-1", "qty": 4, "unit_cost": 1}]', current_date + 3) AS po \gset
		SELECT oms.receive_purchase_order(:t, :po::bigint, NULL::jsonb) \gset
		SELECT string_agg(i.sku || ':' || l.state || ':' || coalesce(lo.code, '-'), ' ' ORDER BY l.line_no) || ' '
			   || (SELECT ship_country FROM oms.orders WHERE tenant_id = :t AND id = :bo)
		  FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
		  LEFT JOIN oms.locations lo ON lo.tenant_id = l.tenant_id AND lo.id = l.location_id
		 WHERE l.tenant_id = :t AND l.order_id = :bo;
	EOF
	)
	case $r in
	"BO-1:"*":WH-BU CIT-1:"*" DE") ok=$((ok + 1)) ;;
	*) echo "# tenant $t: $r" ;;
	esac
done
check "a backorder served by a receipt, a cancelled order and line, a new address, on a tenant of each worker" "2" "$ok"
out=$(sql -c "SELECT count(*) FROM oms.order_history h JOIN oms.orders o ON o.tenant_id = h.tenant_id AND o.id = h.order_id WHERE o.external_id LIKE 'BI-BO-%' AND h.from_state IS NULL AND h.to_state = 'backordered'")
check "... whose BO-1 lines were backordered when placed" "2" "$out"
out=$(sql -c "SELECT coalesce(string_agg(tenant_id || ' ' || summary || ' ' || rows_differing, ', '), 'none') FROM citus_test.bi_mismatches() WHERE rows_differing <> 0")
check "BI summaries (sales, orders, shipments) and demand history kept on the shards equal a recomputation from the tables, every tenant" "none" "$out"

# ---------------------------------------------------------------- BI views for one tenant
# oms_bi reads the tenant from the setting, which Citus cannot route by; oms.bi_tenant_schema(t)
# copies it with the tenant written in: every view then answers from the tenant's node alone.
for w in 1 2; do
	node_sql "w$w" $((port + w)) -c "ALTER SYSTEM SET citus.log_remote_commands = on" -c "SELECT pg_reload_conf()" >/dev/null
done
sleep 1
ok=0
for t in $bi_tenants; do
	s=$(sql -c "SET client_min_messages = warning" -c "SELECT oms.bi_tenant_schema($t)")
	node=$(sql -c "SELECT citus_test.node_of($t)")
	views=$(sql -c "SELECT string_agg(table_name, ' ' ORDER BY table_name) FROM information_schema.views WHERE table_schema = '$s'")
	bad=""
	for v in $views; do
		log=$(sql -c "SET citus.log_remote_commands = on" -c "SET client_min_messages = notice" -c "SELECT count(*) FROM $s.$v" 2>&1)
		if echo "$log" | grep -q ERROR || [ "$(echo "$log" | grep -o 'on server postgres@[^ ]*' | sort -u)" != "on server postgres@$node" ]; then
			bad="$bad $v"
		fi
	done
	n_views=$(echo "$views" | wc -w)
	counts=$(sql -c "SELECT (SELECT count(*) FROM $s.orders) = (SELECT count(*) FROM oms.orders WHERE tenant_id = $t)
					   AND (SELECT count(*) FROM $s.stock_snapshot) = (SELECT count(*) FROM oms.stock WHERE tenant_id = $t)
					   AND (SELECT sum(units) FROM $s.order_sales) = (SELECT sum(qty - qty_cancelled) FROM oms.order_lines WHERE tenant_id = $t)")
	if [ -z "$bad" ] && [ "$n_views" -ge 27 ] && [ "$counts" = t ]; then
		ok=$((ok + 1))
	else
		echo "# tenant $t ($s, $n_views views, counts $counts): not from $node alone or failed:$bad"
	fi
done
for w in 1 2; do
	node_sql "w$w" $((port + w)) -c "ALTER SYSTEM RESET citus.log_remote_commands" -c "SELECT pg_reload_conf()" >/dev/null
done
check "oms.bi_tenant_schema: every BI view of a tenant on each worker answers from that tenant's node alone, with its rows" "2" "$ok"
p1=$(sql -c "SELECT count(DISTINCT tenant) || ' ' || sum(orders) FROM oms_bi.platform_daily WHERE tenant LIKE 'shop-%'")
p2=$(sql -c "SELECT count(DISTINCT x.tenant_id) || ' ' || count(*) FROM (SELECT o.tenant_id, o.id FROM oms.orders o
				JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
			   WHERE o.tenant_id IN (SELECT id FROM oms.tenants WHERE code LIKE 'shop-%') GROUP BY 1, 2) x")
out=$([ -n "$p1" ] && [ "$p1" = "$p2" ] && echo t || echo "$p1 / $p2")
check "oms_bi.platform_daily through the coordinator: every tenant's orders, across both workers" "t" "$out"

# ---------------------------------------------------------------- operations on every node
# One tenant on each worker: a (worker 1) and b (worker 2); c, a third tenant, for refusals.
w1_node="/tmp/oms-$name-w1:$((port + 1))"
w2_node="/tmp/oms-$name-w2:$((port + 2))"
ta=$(sql -c "SELECT min(id) FROM oms.tenants WHERE code LIKE 'shop-%' AND citus_test.node_of(id) = '$w1_node'")
tb=$(sql -c "SELECT min(id) FROM oms.tenants WHERE code LIKE 'shop-%' AND citus_test.node_of(id) = '$w2_node'")
tc=$(sql -c "SELECT max(id) FROM oms.tenants WHERE code LIKE 'shop-%' AND id NOT IN ($ta, $tb)")
ca=$(sql -c "SELECT oms._tenant_code($ta)")
cb=$(sql -c "SELECT oms._tenant_code($tb)")
cc=$(sql -c "SELECT oms._tenant_code($tc)")
echo "# tenants $ca (id $ta, worker 1), $cb (id $tb, worker 2), $cc (id $tc)"
order_json() {	# order_json EXTERNAL_ID [SKU]
	echo "{\"channel\": \"web\", \"external_id\": \"$1\", \"ship_to\": {\"line1\": \"Via Roma 1\", \"city\": \"Milano\", \"postal_code\": \"20121\", \"country\": \"IT\"}, \"lines\": [{\"sku\": \"${2:-CIT-1}\", \"qty\": 1, \"unit_price\": 19.90}]}"
}
# psql on the coordinator as a login role; errors as their SQLSTATE alone
as_role() { as_pg psql -X -q -At -h "$c_host" -p "$port" -U "$1" -d "$db" -v VERBOSITY=sqlstate "${@:2}" 2>&1; }

# pg_cron on the coordinator (cron.database_name is the oms database there; pg_cron 1.4 schedules
# by the minute): tenant c's alerts every minute, checked at the end of this section
sql -c "SET oms.tenant = '$cc'" -c "SELECT oms.schedule('alerts', '* * * * *')" >/dev/null

# ---- row level security, through the coordinator
sql -c "CREATE ROLE citus_op LOGIN IN ROLE oms_operator" -c "CREATE ROLE citus_app LOGIN IN ROLE oms_app" \
	-c "CREATE ROLE citus_store LOGIN IN ROLE oms_store" \
	-c "SELECT oms.grant_tenant('citus_op', '$ca'), oms.grant_tenant('citus_op', '$cb'),
			   oms.grant_tenant('citus_app', '$ca'), oms.grant_tenant('citus_store', '$cb')" \
	-c "BEGIN" -c "SET LOCAL oms.tenant = '$cb'" -c "SELECT oms.assign_store('citus_store', 'STORE-RM-01')" -c "COMMIT" >/dev/null
admin_counts() {	# orders and stock rows of a tenant, read as the superuser
	sql -c "SELECT (SELECT count(*) FROM oms.orders WHERE tenant_id = $1) || ' ' || (SELECT count(*) FROM oms.stock WHERE tenant_id = $1)"
}
rls_counts() {	# ROLE TENANT_CODE: orders and stock rows the role sees with SET LOCAL oms.tenant
	as_role "$1" -c "BEGIN" -c "SET LOCAL oms.tenant = '$2'" \
		-c "SELECT (SELECT count(*) FROM oms.orders) || ' ' || (SELECT count(*) FROM oms.stock)" -c "COMMIT"
}
check "RLS: an oms_operator role with SET LOCAL oms.tenant sees its tenant's orders and stock, on worker 1" \
	"$(admin_counts "$ta")" "$(rls_counts citus_op "$ca")"
check "... and on worker 2" "$(admin_counts "$tb")" "$(rls_counts citus_op "$cb")"
out=$(as_role citus_op -c "BEGIN" -c "SET LOCAL oms.tenant = '$ca'" \
	-c "SELECT (SELECT count(*) FROM oms.orders WHERE tenant_id <> $ta) + (SELECT count(*) FROM oms.stock WHERE tenant_id <> $ta) + (SELECT count(*) FROM oms.order_lines WHERE tenant_id <> $ta)" -c "COMMIT")
check "... none of another tenant's rows" "0" "$out"
out=$(as_role citus_op -c "BEGIN" -c "SET LOCAL oms.tenant = '$cc'" -c "SELECT count(*) FROM oms.orders" -c "ROLLBACK" | head -n 1)
check "... reading as a tenant not granted: 42501" "ERROR:  42501" "$out"
out=$(as_role citus_op -c "SELECT oms.adjust_stock($tc, 'CIT-1', 'WH-MI', 1, 'citus rls')"
	sql -c "SELECT count(*) FROM oms.stock_movements WHERE tenant_id = $tc AND reason = 'citus rls'")
check "... writing for a tenant not granted (adjust_stock on its node): 42501, nothing written" "ERROR: 42501 0" "$(echo $out)"
check "RLS: an oms_app role sees its tenant's stock" "$(admin_counts "$ta" | cut -d' ' -f2)" \
	"$(as_role citus_app -c "BEGIN" -c "SET LOCAL oms.tenant = '$ca'" -c "SELECT count(*) FROM oms.stock" -c "COMMIT")"
out=$(as_role citus_app -c "SELECT oms.place_order($ta, '$(order_json RLS-APP-1)') > 0"
	as_role citus_app -c "SELECT oms.place_order($tb, '$(order_json RLS-APP-1)')"
	sql -c "SELECT count(*) FROM oms.orders WHERE external_id = 'RLS-APP-1'")
check "... places an order for its tenant (worker 1), not for another (worker 2: 42501)" "t ERROR: 42501 1" "$(echo $out)"
exp=$(sql -c "SELECT count(*) || ' ' || count(*) FILTER (WHERE l.code = 'STORE-RM-01') FROM oms.stock s JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id WHERE s.tenant_id = $tb")
out=$(as_role citus_store -c "BEGIN" -c "SET LOCAL oms.tenant = '$cb'" -c "SELECT count(*) FROM oms.stock" -c "COMMIT")
check "RLS: an oms_store role (worker 2) sees the stock rows of its location only" "$(echo "$exp" | cut -d' ' -f2)" "$out"
check "... (of the tenant's $(echo "$exp" | cut -d' ' -f1) stock rows)" "t" "$([ "$(echo "$exp" | cut -d' ' -f1)" -gt "$out" ] && echo t)"
exp=$(sql -c "SET oms.tenant = '$cb'" -c "SELECT count(*) FROM oms.orders o WHERE o.tenant_id = $tb AND (o.pickup_location_id = ANY (ARRAY(SELECT id FROM oms.locations WHERE tenant_id = $tb AND code = 'STORE-RM-01')) OR EXISTS (SELECT FROM oms.order_lines l JOIN oms.locations x ON x.tenant_id = l.tenant_id AND x.id = l.location_id WHERE l.tenant_id = o.tenant_id AND l.order_id = o.id AND x.code = 'STORE-RM-01'))")
out=$(as_role citus_store -c "BEGIN" -c "SET LOCAL oms.tenant = '$cb'" -c "SELECT count(*) FROM oms.orders" -c "COMMIT")
check "... and the orders of its location only" "$exp" "$out"
out=$(as_role citus_store -c "SELECT oms.adjust_stock($tb, 'CIT-1', 'WH-MI', 1, 'citus test')")
check "... and may not act at another location (adjust_stock at WH-MI: 42501)" "ERROR:  42501" "$out"
out=$(as_role citus_store -c "SELECT oms.set_stock($tb, 'CIT-1', 'STORE-RM-01', 5, 'citus rls')")
check "... but at its own (set_stock at STORE-RM-01)" "5" "$out"

# ---- the outbox: the tenant forms of next_events and ack_events through the coordinator
# (events are final once every older transaction of their node has ended: a call may come too
# early while another transaction runs there, so the reads are tried a few times)
events_of() {	# TENANT: the ids and types next_events hands out, as "n ascending first-type"
	sql -c "SELECT count(*) || ' ' || CASE WHEN array_agg(id ORDER BY n) = array_agg(id ORDER BY id) THEN 'in-order' ELSE 'out-of-order' END || ' ' || coalesce((array_agg(type ORDER BY n))[1], '-')
			  FROM (SELECT e.*, row_number() OVER () AS n FROM oms.next_events($1, 'citus-test', 10000) e) x"
}
for t in $ta $tb; do
	exp=$(sql -c "SELECT count(*) || ' in-order ' || coalesce((array_agg(type ORDER BY id))[1], '-') FROM oms.events WHERE tenant_id = $t")
	for try in 1 2 3 4 5; do
		out=$(events_of "$t")
		[ "$out" = "$exp" ] && break
		sleep 1
	done
	check "outbox: next_events($t, ...) on the coordinator hands out all the tenant's events, in id order, none of another (node of $t)" "$exp" "$out"
done
out=$(sql -c "SELECT string_agg(type, ' ' ORDER BY id) FROM oms.next_events($ta, 'citus-test', 10000) WHERE order_id = (SELECT id FROM oms.orders WHERE tenant_id = $ta AND external_id = 'CIT-$ta')")
check "... one order's events in the order they happened" \
	"order_received order_released shipped delivered return_created return_received" "$(echo "$out" | tr ' ' '\n' | grep -E '^(order_received|order_released|shipped|delivered|return_created|return_received)$' | tr '\n' ' ' | sed 's/ $//')"
last=$(sql -c "SELECT max(id) FROM oms.next_events($ta, 'citus-test', 10000)")
out=$(sql -c "SELECT oms.ack_events($ta, 'citus-test', $last) = $last" -c "SELECT count(*) FROM oms.next_events($ta, 'citus-test', 10000)" | tr '\n' ' ')
check "... ack_events($ta, ...): the acknowledged events are not handed out again" "t 0 " "$out"
out=$(sql -c "SELECT count(*) > 0 FROM oms.next_events($tb, 'citus-test', 10000)")
check "... while tenant $tb's consumer of the same name still gets its own" "t" "$out"
# Purging (the background worker's oms.purge_events, here with no retention): the events every
# consumer of their tenant has acknowledged, on every node; tenant b's consumer has acknowledged none.
exp=$(sql -c "SELECT count(*) FILTER (WHERE e.tenant_id = $ta AND e.id <= $last OR NOT EXISTS (SELECT FROM oms.event_consumers c WHERE c.tenant_id = e.tenant_id)) || ' ' || count(*) FILTER (WHERE e.tenant_id = $tb) FROM oms.events e")
out=$(sql -c "SELECT oms.purge_events('0', 10000)")
out="$out $(sql -c "SELECT count(*) FROM oms.events WHERE tenant_id = $tb")"
check "... purge_events on the coordinator: the acknowledged events of tenant $ta and those of tenants without a consumer go, none of $tb's" "$exp" "$out"

# NOTIFY by the coordinator's background worker (oms.notify_events = worker): a listener on the
# coordinator hears of both tenants, worker 2's first (its ids are above worker 1's: each node
# has its own range, and the worker keeps one position per node).
out=$(as_pg psql -X -At -h "$c_host" -p "$port" -U postgres -d "$db" 2>&1 <<-EOF
	LISTEN oms_events;
	SELECT oms.place_order($tb, '$(order_json NOTIFY-1)') > 0;
	SELECT pg_sleep(2);
	SELECT oms.place_order($ta, '$(order_json NOTIFY-1)') > 0;
	SELECT pg_sleep(2);
EOF
)
heard() { [ "$(echo "$out" | grep -c "notification \"oms_events\" with payload \"$1\" received")" -ge 1 ] && echo yes || echo no; }
check "NOTIFY: a LISTENer on the coordinator hears of a new order's events of a tenant on worker 2" "yes" "$(heard "$cb")"
check "... and then of one on worker 1" "yes" "$(heard "$ca")"
# One transaction writing to two tenants on two nodes: Citus commits it in two phases.
two_nodes() {	# EXTERNAL_ID NOTIFY_MODE
	sql -v VERBOSITY=sqlstate -c "BEGIN" -c "SET LOCAL oms.notify_events = $2" \
		-c "SELECT oms.place_order($ta, '$(order_json "$1")') > 0" -c "SELECT oms.place_order($tb, '$(order_json "$1")') > 0" \
		-c "COMMIT" 2>&1 | tr '\n' ' '
	sql -c "SELECT count(*) FROM oms.orders WHERE external_id = '$1'"
}
check "2PC: BEGIN; place_order on worker 1; place_order on worker 2; COMMIT with notify_events = worker: committed" \
	"t t 2" "$(two_nodes TWO-PC-1 worker)"
check "... with notify_events = commit too: committed, without a NOTIFY (a prepared transaction cannot send one)" \
	"t t 2" "$(two_nodes TWO-PC-2 commit)"
out=$(sql -c "SELECT count(*) FROM pg_prepared_xacts")
out="$out $(node_sql w1 $((port + 1)) -c "SELECT count(*) FROM pg_prepared_xacts") $(node_sql w2 $((port + 2)) -c "SELECT count(*) FROM pg_prepared_xacts")"
check "... no prepared transaction left on any node" "0 0 0" "$out"

# ---- the background worker, on the coordinator only, for the tenants of every node
held() {	# TENANT: reserved units of CIT-1 at WH-MI and the cart holds of the test's cart
	sql -c "SELECT s.reserved || ' ' || (SELECT count(*) FROM oms.reservations r WHERE r.tenant_id = $1 AND r.cart = 'citus-cart')
			  FROM oms.stock s JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id
			  JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id
			 WHERE s.tenant_id = $1 AND i.sku = 'CIT-1' AND l.code = 'WH-MI'"
}
# orders late: placed, then their promised date moved to yesterday: placed, then their promised date moved to yesterday
for t in $ta $tb; do
	o=$(sql -c "SELECT oms.place_order($t, '$(order_json LATE-1)')")
	sql -c "UPDATE oms.order_lines SET promised_date = current_date - 1 WHERE tenant_id = $t AND order_id = $o" >/dev/null
done
before_a=$(held "$ta")
before_b=$(held "$tb")
sql -c "SELECT oms.hold($ta, 'citus-cart', 'CIT-1', 3, 'WH-MI', '2 seconds')" \
	-c "SELECT oms.hold($tb, 'citus-cart', 'CIT-1', 4, 'WH-MI', '2 seconds')" >/dev/null
during="$(held "$ta") $(held "$tb")"
for try in $(seq 1 30); do
	after="$(held "$ta") $(held "$tb")"
	late=$(sql -c "SELECT count(*) FROM oms.events e JOIN oms.orders o ON o.tenant_id = e.tenant_id AND o.id = e.order_id WHERE e.tenant_id IN ($ta, $tb) AND o.external_id = 'LATE-1' AND e.type = 'delayed'")
	[ "$after" = "$before_a $before_b" ] && [ "$late" = 2 ] && break
	sleep 1
done
check "worker: cart holds of 3 and 4 units for tenants on both workers" \
	"$(( ${before_a% *} + 3 )) 1 $(( ${before_b% *} + 4 )) 1" "$during"
check "... expired by the coordinator's background worker: holds gone, reserved back on both nodes" "$before_a $before_b" "$after"
check "... orders late on their promised date reported (event delayed) on both nodes" "2" "$late"
out=$(node_sql w1 $((port + 1)) -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'oms worker' AND datname = '$db'")
out="$out $(node_sql w2 $((port + 2)) -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'oms worker' AND datname = '$db'")"
check "... and no worker of oms runs in the database on the workers" "0 0" "$out"

# ---- scheduled jobs: oms.run_job on the coordinator, the work on each tenant's node
for t in $ta $tb; do
	code=$(sql -c "SELECT oms._tenant_code($t)")
	out=$(sql -v VERBOSITY=sqlstate -c "CALL oms.run_job('alerts', '$code')" -c "CALL oms.run_job('replenishment', '$code')" 2>&1 | tr '\n' ' ')
	out="$out$(sql -c "SELECT string_agg(job || ' ' || status, ', ' ORDER BY id) FROM oms.job_runs WHERE tenant_id = $t AND job IN ('alerts', 'replenishment')")"
	check "jobs: CALL oms.run_job('alerts' and 'replenishment', tenant $t) on the coordinator succeed" \
		"alerts succeeded, replenishment succeeded" "$out"
	exp=$(sql -c "SELECT rows_touched FROM oms.job_runs WHERE tenant_id = $t AND job = 'alerts'")
	out=$(sql -c "SELECT count(*) FROM oms.alerts WHERE tenant_id = $t AND checked_at >= (SELECT started_at FROM oms.job_runs WHERE tenant_id = $t AND job = 'alerts')")
	check "... its alerts ($exp opened, refreshed or resolved) are the tenant's, written on its node" "$exp" "$out"
done
# the schedule of tenant c's alerts made at the start of this section: pg_cron ran it
for try in $(seq 1 70); do
	runs=$(sql -c "SELECT count(*) FROM cron.job_run_details d WHERE d.command LIKE '%run_job(''alerts'', ''$cc'')%' AND d.status IN ('succeeded', 'failed')")
	[ "$runs" -ge 1 ] && break
	sleep 1
done
out=$(sql -c "SET oms.tenant = '$cc'" -c "SELECT oms.unschedule('alerts')")
out="$out $(sql -c "SELECT string_agg(DISTINCT status, ' ') FROM oms.job_runs WHERE tenant_id = $tc AND job = 'alerts' AND status <> 'running'")"
out="$out $(sql -c "SELECT string_agg(DISTINCT d.status, ' ') FROM cron.job_run_details d WHERE d.command LIKE '%run_job(''alerts'', ''$cc'')%'")"
check "... oms.schedule('alerts', '* * * * *') for tenant $tc: pg_cron ran it on the coordinator, recorded in oms.job_runs as succeeded" \
	"t succeeded succeeded" "$out"

# ---------------------------------------------------------------- one call, one node
# The workers log the commands they send to other nodes too (relayed to the client as notices):
# a call that runs whole on its node sends none.
for w in 1 2; do
	node_sql "w$w" $((port + w)) -c "ALTER SYSTEM SET citus.log_remote_commands = on" -c "SELECT pg_reload_conf()" >/dev/null
done
sleep 1
t=$(echo "$tenants" | awk '{print $3}')
log=$(sql -v t="$t" 2>&1 <<-'EOF'
	SET citus.log_remote_commands = on;
	SET client_min_messages = notice;
	SELECT oms.place_order(:t, jsonb_build_object('channel', 'web', 'external_id', 'CIT-ONE-' || :t,
		'ship_to', jsonb_build_object('line1', 'Via Roma 1', 'city', 'Milano', 'postal_code', '20121', 'country', 'IT'),
		'lines', jsonb_build_array(jsonb_build_object('sku', 'CIT-1', 'qty', 1, 'unit_price', 19.90))));
EOF
)
issued=$(echo "$log" | grep -c 'NOTICE:  issuing')
check "citus.log_remote_commands on every node: a tenant's place_order is one command, no other node is involved" "1" "$issued"
check "... and that command is the call itself" "1" "$(echo "$log" | grep 'NOTICE:  issuing' | grep -c 'SELECT oms.place_order(')"
node=$(sql -c "SELECT citus_test.node_of($t)")
check "... sent to the tenant's node" "1" "$(echo "$log" | grep -A1 'NOTICE:  issuing' | grep -c "on server postgres@${node}")"

for w in 1 2; do
	node_sql "w$w" $((port + w)) -c "ALTER SYSTEM RESET citus.log_remote_commands" -c "SELECT pg_reload_conf()" >/dev/null
done

# ---------------------------------------------------------------- 16 clients race for the last units
t=$(echo "$tenants" | awk '{print $5}')
for c in $(seq 1 16); do
	(
		for k in 1 2 3; do
			as_pg psql -X -q -At -h "$c_host" -p "$port" -U postgres -d "$db" -c "SELECT oms.place_order($t,
				'{\"channel\": \"web\", \"external_id\": \"RACE-$c-$k\",
				  \"ship_to\": {\"line1\": \"Via Roma 1\", \"city\": \"Milano\", \"postal_code\": \"20121\", \"country\": \"IT\"},
				  \"lines\": [{\"sku\": \"RACE-1\", \"qty\": 1, \"unit_price\": 9.90}]}')" >/dev/null 2>&1
		done
	) &
done
wait
out=$(sql -c "SELECT count(*) || ' ' || coalesce(sum(l.qty), 0) FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id WHERE l.tenant_id = $t AND i.sku = 'RACE-1'")
check "16 clients, 48 attempts at 10 units: 10 orders of 1 unit, none oversold" "10 10" "$out"
out=$(sql -c "SET oms.tenant = 'shop-05'" -c "SELECT oms.atp('RACE-1')" -c "SELECT s.on_hand || ' ' || s.reserved FROM oms.stock s JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id WHERE s.tenant_id = $t AND i.sku = 'RACE-1'" | tr '\n' ' ')
check "... ATP 0, on hand 10, reserved 10" "0 10 10 " "$out"

# ---------------------------------------------------------------- a worker killed during a load
w1_port=$((port + 1))
committed=$stage/committed
for c in 1 2 3 4; do
	for k in $(seq 1 25); do
		for t in $tenants; do
			# (the call alone in its SELECT, so that Citus sends it whole to the tenant's node)
			echo "\\unset id"
			echo "SELECT oms.place_order($t, '{\"channel\": \"web\", \"external_id\": \"LOAD-$c-$k\", \"ship_to\": {\"line1\": \"Via Roma 1\", \"city\": \"Milano\", \"postal_code\": \"20121\", \"country\": \"IT\"}, \"lines\": [{\"sku\": \"CIT-1\", \"qty\": 1, \"unit_price\": 19.90}]}') AS id \\gset"
			echo "\\echo $t,:id"
		done
	done >"$stage/load-$c.sql"
	chmod 644 "$stage/load-$c.sql"
	# one session per client; a statement that fails (its worker is down) prints no id
	as_pg psql -X -q -At -h "$c_host" -p "$port" -U postgres -d "$db" -f "$stage/load-$c.sql" \
		>"$committed.$c" 2>"$committed.$c.err" &
done
sleep 3
as_pg pg_ctl -D "/tmp/oms-$name-w1/data" -m immediate stop >/dev/null
sleep 2
as_pg pg_ctl -D "/tmp/oms-$name-w1/data" -l "/tmp/oms-$name-w1/server.log" -w -t 60 start >/dev/null
wait
cat "$committed".? | grep -E '^[0-9]+,[0-9]+$' >"$committed"
chmod 644 "$committed"
sql -c "SELECT recover_prepared_transactions()" >/dev/null
attempts=$(grep -c '^SELECT' "$stage"/load-?.sql | awk -F: '{n += $2} END {print n}')
grep -h 'ERROR' "$committed".?.err | sed 's/^psql:[^E]*ERROR/ERROR/' | sort | uniq -c | sort -rn | head -n 3 | sed 's/^/# /'
echo "# $(wc -l <"$committed") of $attempts orders committed during the load, worker 1 stopped (immediate) and started again"
lost=$(sql -c "CREATE TEMP TABLE committed (tenant_id int, id bigint)" -c "\copy committed FROM '$committed' WITH (FORMAT csv)" \
	-c "SELECT count(*) FROM committed c LEFT JOIN (SELECT tenant_id, id FROM oms.orders WHERE external_id LIKE 'LOAD-%' OFFSET 0) o USING (tenant_id, id) WHERE o.id IS NULL")
check "no committed order lost" "0" "$lost"
out=$(sql -c "SELECT count(*) > 0 FROM oms.orders WHERE external_id LIKE 'LOAD-%'")
check "... and orders were committed during the load" "t" "$out"
prepared=$(sql -c "SELECT count(*) FROM pg_prepared_xacts")
prepared="$prepared $(node_sql w1 $w1_port -c "SELECT count(*) FROM pg_prepared_xacts") $(node_sql w2 $((port + 2)) -c "SELECT count(*) FROM pg_prepared_xacts")"
check "no prepared transaction left on any node" "0 0 0" "$prepared"
out=$(sql -c "SELECT count(*) FROM oms.check_stock_invariants_all()")
check "stock invariants hold after the crash" "0" "$out"
out=$(sql -c "SELECT count(*) FROM oms.orders o WHERE NOT EXISTS (SELECT FROM oms.order_lines l WHERE l.tenant_id = o.tenant_id AND l.order_id = o.id)")
check "no order without its lines" "0" "$out"
out=$(sql -c "SELECT coalesce(string_agg(tenant_id || ' ' || summary || ' ' || rows_differing, ', '), 'none') FROM citus_test.bi_mismatches() WHERE rows_differing <> 0")
check "BI summaries and demand history equal a recomputation after the load and the crash, every tenant" "none" "$out"

echo "citus: $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
