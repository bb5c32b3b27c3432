# An immediate stop (a crash) while shipments leave and returns come back: after the restart,
# on_hand, reserved, the stock ledger, the order lines' buckets and the outbox agree with each
# other, whatever was cut in flight; a transaction that rolled back, and one that was open at the
# crash, left no event and no stock movement.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(sleep);

my $node = PostgreSQL::Test::Cluster->new('crash_lifecycle');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'oms'
oms.database = 'postgres'
oms.worker_naptime = 1
max_connections = 40
lc_messages = 'C'
});
$node->start;

# 10 SKUs with 1000 units each at WH; 400 orders of 2 lines (and 2 set aside), released at placement (the channel
# releases by itself) and packed (one package each); helpers that ship the next packed shipment, and return (restock) the next shipped order.
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION oms;
INSERT INTO oms.channels (code, kind, name, default_currency, requires_authorization, auto_release)
	VALUES ('web', 'web', 'Web', 'EUR', false, true);
INSERT INTO oms.locations (code, kind, name) VALUES ('WH', 'warehouse', 'Warehouse');
INSERT INTO oms.items (sku, name) SELECT 'SKU-' || k, 'Item ' || k FROM generate_series(1, 10) k;
SELECT count(oms.set_stock('SKU-' || k, 'WH', 1000, 'initial count')) FROM generate_series(1, 10) k;
SELECT count(oms.pack(oms.place_order(jsonb_build_object('channel', 'web', 'external_id', 'CR-' || g,
		'ship_to', jsonb_build_object('country', 'IT'),
		'lines', jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (g % 10 + 1), 'qty', 1 + g % 3, 'unit_price', 10),
								   jsonb_build_object('sku', 'SKU-' || ((g + 3) % 10 + 1), 'qty', 1, 'unit_price', 5)))), 'WH'))
  FROM generate_series(1, 400) g;
-- Two more, of an item nobody else orders: the open transaction at the crash holds its stock row
-- locked, which would otherwise stop the load.
INSERT INTO oms.items (sku, name) VALUES ('SKU-ASIDE', 'Item set aside');
SELECT oms.set_stock('SKU-ASIDE', 'WH', 10, 'initial count');
SELECT count(oms.pack(oms.place_order(jsonb_build_object('channel', 'web', 'external_id', 'CR-ASIDE-' || g,
		'ship_to', jsonb_build_object('country', 'IT'),
		'lines', jsonb_build_array(jsonb_build_object('sku', 'SKU-ASIDE', 'qty', 1, 'unit_price', 10)))), 'WH'))
  FROM generate_series(1, 2) g;
CREATE SCHEMA crash;
CREATE FUNCTION crash.ship_next() RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_id bigint;
BEGIN
	-- The two newest packages are kept for the rolled-back and the in-flight transactions.
	SELECT s.id INTO v_id FROM oms.shipments s
	 WHERE s.state = 'packed' AND s.id <= (SELECT max(x.id) FROM oms.shipments x) - 2
	 ORDER BY s.id LIMIT 1 FOR UPDATE SKIP LOCKED;
	IF v_id IS NULL THEN RETURN 'none'; END IF;
	RETURN oms.ship(v_id, 'dhl.standard', 'CR-' || v_id);
END $$;
});
$node->safe_psql('postgres', q{
CREATE FUNCTION crash.return_next() RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE v_order bigint; v_lines jsonb; v_rma bigint;
BEGIN
	SELECT o.id INTO v_order FROM oms.orders o
	 WHERE o.state::text = 'shipped' AND NOT EXISTS (SELECT FROM oms.returns r WHERE r.order_id = o.id)
	 ORDER BY o.id LIMIT 1 FOR UPDATE SKIP LOCKED;
	IF v_order IS NULL THEN RETURN 0; END IF;
	SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'qty', l.qty_shipped))
	  INTO v_lines FROM oms.order_lines l WHERE l.order_id = v_order;
	v_rma := oms.create_return(v_order, v_lines, 'crash test');
	RETURN oms.receive_return(v_rma, (SELECT jsonb_agg(x || '{"disposition": "restock"}') FROM jsonb_array_elements(v_lines) x));
END $$;
});
is($node->safe_psql('postgres', q{SELECT count(*) FROM oms.shipments WHERE state = 'packed'}),
	'402', '402 packed shipments to ship');

# A shipment whose transaction rolls back, and one whose transaction is open at the crash.
my ($rolled_back, $in_flight) = split /\|/, $node->safe_psql('postgres',
	q{SELECT max(id) || '|' || max(id) - 1 FROM oms.shipments});
$node->safe_psql('postgres', "BEGIN; SELECT oms.ship($rolled_back, 'dhl.standard', 'ROLLED-BACK'); ROLLBACK;");
my $open = $node->background_psql('postgres', on_error_stop => 0);
$open->query_safe("BEGIN");
$open->query_safe("SELECT oms.ship($in_flight, 'dhl.standard', 'IN-FLIGHT')");

# The load: 3 clients ship, 2 return, in short transactions, until the crash.
my $dir = PostgreSQL::Test::Utils::tempdir;
PostgreSQL::Test::Utils::append_to_file("$dir/ship.sql", "SELECT crash.ship_next();\n");
PostgreSQL::Test::Utils::append_to_file("$dir/return.sql", "SELECT crash.return_next();\n");
my @pgbench = ('pgbench', '-n', '-h', $node->host, '-p', $node->port, '-T', '60', 'postgres');
my ($out1, $err1, $out2, $err2) = ('', '', '', '');
my $ship_load = IPC::Run::start([ @pgbench[0 .. 1], '-c', '3', '-f', "$dir/ship.sql", @pgbench[2 .. $#pgbench] ],
	'>', \$out1, '2>', \$err1);
my $return_load = IPC::Run::start([ @pgbench[0 .. 1], '-c', '2', '-f', "$dir/return.sql", @pgbench[2 .. $#pgbench] ],
	'>', \$out2, '2>', \$err2);

# Crash once both kinds of work have happened.
ok( $node->poll_query_until(
		'postgres', q{SELECT (SELECT count(*) FROM oms.shipments WHERE state = 'shipped') >= 50
						 AND (SELECT count(*) FROM oms.returns WHERE state = 'received') >= 20}),
	'ships and returns are under way');
my $before = $node->safe_psql('postgres',
	q{SELECT (SELECT count(*) FROM oms.shipments WHERE state = 'shipped') || ' shipped, ' ||
			 (SELECT count(*) FROM oms.returns WHERE state = 'received') || ' returns received'});
note "at the crash: $before (and more in flight)";
$node->stop('immediate');
$ship_load->finish;
$return_load->finish;
eval { $open->quit };
$node->start;

# ---- after the restart
is($node->safe_psql('postgres', q{SELECT count(*) FROM oms.check_stock_invariants_all()}),
	'0', 'reserved = sum of the reservations, within 0..on_hand');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM oms.stock s
 WHERE s.on_hand <> (SELECT sum(m.delta) FROM oms.stock_movements m
					  WHERE m.tenant_id = s.tenant_id AND m.item_id = s.item_id AND m.location_id = s.location_id)}),
	'0', 'on_hand of every stock row = the sum of its ledger');
is( $node->safe_psql(
		'postgres', q{
SELECT (SELECT coalesce(-sum(delta), 0) FROM oms.stock_movements WHERE kind = 'shipment') =
	   (SELECT coalesce(sum(sl.qty), 0) FROM oms.shipment_lines sl JOIN oms.shipments s ON s.id = sl.shipment_id
		 WHERE s.state <> 'packed')
   AND (SELECT coalesce(-sum(delta), 0) FROM oms.stock_movements WHERE kind = 'shipment') =
	   (SELECT sum(qty_shipped) FROM oms.order_lines)}),
	't', 'units that left = units of shipped packages = the lines\' shipped quantities');
is( $node->safe_psql(
		'postgres', q{
SELECT (SELECT coalesce(sum(delta), 0) FROM oms.stock_movements WHERE kind = 'return') =
	   (SELECT coalesce(sum(restocked), 0) FROM oms.return_lines)
   AND (SELECT coalesce(sum(qty_received), 0) FROM oms.return_lines) = (SELECT sum(qty_returned) FROM oms.order_lines)}),
	't', 'units restocked = return movements = the lines\' returned quantities');
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM oms.order_lines l
 WHERE (SELECT coalesce(sum(r.qty), 0) FROM oms.reservations r WHERE r.order_id = l.order_id AND r.line_no = l.line_no)
	   <> CASE WHEN l.state::text IN ('allocated', 'released', 'packed', 'partially_shipped') THEN l.qty - l.qty_cancelled - l.qty_shipped ELSE 0 END}),
	'0', 'every line still to ship holds its open quantity in reservations; shipped lines hold none');
is( $node->safe_psql(
		'postgres', q{
SELECT (SELECT count(*) FROM oms.shipments WHERE state = 'shipped') =
	   (SELECT count(*) FROM oms.events WHERE type = 'shipped')
   AND NOT EXISTS (SELECT FROM oms.events e WHERE e.type = 'shipped'
					  AND NOT EXISTS (SELECT FROM oms.shipments s WHERE s.id = (e.payload ->> 'shipment_id')::bigint
										AND s.state = 'shipped' AND s.tracking = e.payload ->> 'tracking'))}),
	't', 'one shipped event per shipped package, each about a shipped package');
is( $node->safe_psql(
		'postgres', q{
SELECT (SELECT count(*) FROM oms.returns WHERE state = 'received') = (SELECT count(*) FROM oms.events WHERE type = 'return_received')
   AND (SELECT count(*) FROM oms.returns) = (SELECT count(*) FROM oms.events WHERE type = 'return_created')
   AND (SELECT count(*) FROM oms.events WHERE type = 'refunded') = 0}),
	't', 'one return_created and one return_received event per return (no payments here: no refunded event)');
is( $node->safe_psql(
		'postgres', qq{
SELECT string_agg(state, ',' ORDER BY id) || ' ' ||
	   (SELECT count(*) FROM oms.events WHERE payload ->> 'tracking' IN ('ROLLED-BACK', 'IN-FLIGHT')) || ' ' ||
	   (SELECT count(*) FROM oms.stock_movements WHERE reason LIKE '%ROLLED-BACK%' OR reason LIKE '%IN-FLIGHT%')
  FROM oms.shipments WHERE id IN ($rolled_back, $in_flight)}),
	'packed,packed 0 0',
	'the rolled-back and the in-flight shipment are still packed, with no event and no movement');
# The outbox still hands everything out in order after the crash, and the shipments left
# behind can still ship.
is( $node->safe_psql(
		'postgres', q{SELECT count(*) = (SELECT count(*) FROM oms.events) FROM oms.next_events('after-crash', 10000)}),
	't', 'a consumer gets every committed event');
is($node->safe_psql('postgres', "SELECT oms.ship($in_flight, 'dhl.standard', 'AFTER-CRASH')"),
	'shipped', 'the package that was in flight ships after the restart');
is($node->safe_psql('postgres', q{SELECT count(*) FROM oms.check_stock_invariants_all()}),
	'0', 'and the invariants still hold');

$node->stop;
done_testing();
