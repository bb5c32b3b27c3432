# The oms background worker: it expires cart holds so that their stock returns to ATP, shows in
# pg_stat_activity, comes back after an immediate stop and after being terminated, waits politely
# for the extension to be created, and does not restart in a hot loop when its database is missing.
#
# Nothing here sleeps and then asserts: every wait is a poll (poll_query_until, wait_for_log) that
# ends as soon as the awaited state is reached. The only fixed wait is the window in which we count
# connection attempts to a missing database, where counting over time is the point.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

# bgw_restart_time of the worker (src/worker.c).
my $restart_time = 10;

# A node that preloads oms, with the worker pointed at $db and a one-second nap.
sub oms_node
{
	my ($name, $db) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'oms'
oms.database = '$db'
oms.worker_naptime = 1
lc_messages = 'C'
});
	return $node;
}

# One location and one item with $on_hand units, in the current tenant.
sub seed_sql
{
	my ($sku, $on_hand) = @_;
	return qq{
INSERT INTO oms.locations (code, kind, name, country, city, can_ship, priority)
	VALUES ('WH-$sku', 'warehouse', 'Warehouse for $sku', 'IT', 'Milano', true, 10);
INSERT INTO oms.items (sku, name, weight, unit_cost) VALUES ('$sku', 'Item $sku', 0.5, 3.20);
SELECT oms.set_stock('$sku', 'WH-$sku', $on_hand, 'initial count');
};
}

# SQL that is true once cart $cart holds nothing and SKU $sku is back to $atp units.
sub hold_gone_sql
{
	my ($cart, $sku, $atp) = @_;
	return qq{SELECT NOT EXISTS (SELECT 1 FROM oms.reservations WHERE cart = '$cart')
	AND oms.atp('$sku') = $atp};
}

# The worker's pid, or '' when it is not running.
my $worker_sql =
  q{SELECT coalesce(max(pid)::text, '') FROM pg_stat_activity WHERE backend_type = 'oms worker'};

# stock.reserved must equal the sum of the live reservations of every (item, location), in every
# tenant: checked directly here, and through oms.check_stock_invariants().
my $drift_sql = q{
SELECT count(*) FROM oms.stock s
	LEFT JOIN (SELECT tenant_id, item_id, location_id, sum(qty) AS qty FROM oms.reservations
			   GROUP BY 1, 2, 3) r USING (tenant_id, item_id, location_id)
WHERE s.reserved <> coalesce(r.qty, 0)};

sub log_count
{
	my ($node, $regexp) = @_;
	my $log = slurp_file($node->logfile);
	my @hits = ($log =~ m/$regexp/g);
	return scalar @hits;
}

#
# 1. Hold expiry in a running server.
#
my $node = oms_node('main', 'postgres');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION oms');
$node->safe_psql('postgres', seed_sql('SKU-A', 10));

ok($node->poll_query_until('postgres', "SELECT ($worker_sql) <> ''"),
	'the worker shows in pg_stat_activity as backend_type "oms worker"');
is( $node->safe_psql(
		'postgres',
		q{SELECT datname FROM pg_stat_activity WHERE backend_type = 'oms worker'}),
	'postgres',
	'the worker is connected to the database named by oms.database');

is( $node->safe_psql(
		'postgres',
		q{SELECT held_location || ' ' || held_qty FROM oms.hold('cart-1', 'SKU-A', 4, NULL, '2 seconds')}),
	'WH-SKU-A 4',
	'hold of 4 units for cart-1');
is($node->safe_psql('postgres', q{SELECT oms.atp('SKU-A')}),
	'6', 'ATP is 10 - 4 = 6 while the hold lives');
ok($node->poll_query_until('postgres', hold_gone_sql('cart-1', 'SKU-A', 10)),
	'the worker deleted the expired hold and ATP is back to 10');
is($node->safe_psql('postgres', q{SELECT reserved FROM oms.stock}),
	'0', 'stock.reserved is back to 0');

# Holds of every tenant expire, not only those of the worker's default tenant.
$node->safe_psql(
	'postgres', q{SELECT oms.create_tenant('t_other');
SET oms.tenant = 't_other';
} . seed_sql('SKU-T', 5) . q{
SELECT held_qty FROM oms.hold('cart-t', 'SKU-T', 2, NULL, '1 second');});
# (polled by tenant id: a SET in the polled query would add its own output line)
ok( $node->poll_query_until(
		'postgres', q{SELECT NOT EXISTS (SELECT 1 FROM oms.reservations r JOIN oms.tenants t ON t.id = r.tenant_id
					   WHERE t.code = 't_other')}),
	'a hold of another tenant expires too');
is( $node->safe_psql(
		'postgres', q{SET oms.tenant = 't_other'; SELECT oms.atp('SKU-T')}),
	'5', 'its stock is back: ATP 5');

# SIGHUP reloads the settings; the worker stays the same process.
my $pid = $node->safe_psql('postgres', $worker_sql);
$node->safe_psql('postgres', 'ALTER SYSTEM SET oms.worker_naptime = 2');
$node->reload;
ok( $node->poll_query_until(
		'postgres',
		q{SELECT setting = '2' FROM pg_settings WHERE name = 'oms.worker_naptime'}),
	'reload applied');
$node->safe_psql('postgres', q{SELECT held_qty FROM oms.hold('cart-r', 'SKU-A', 1, NULL, '1 second')});
ok($node->poll_query_until('postgres', hold_gone_sql('cart-r', 'SKU-A', 10)),
	'after SIGHUP the worker still expires holds');
is($node->safe_psql('postgres', $worker_sql), $pid, 'SIGHUP did not restart the worker');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET oms.worker_naptime');
$node->reload;

#
# 2. Immediate stop (a crash) while holds are live: the worker comes back, holds still expire,
# and the reserved counter equals the sum of the reservations that survived.
#
$node->safe_psql(
	'postgres', q{
SELECT held_qty FROM oms.hold('cart-2', 'SKU-A', 3, NULL, '4 seconds');
SELECT held_qty FROM oms.hold('cart-3', 'SKU-A', 2, NULL, '1 hour');
SELECT oms.adjust_stock('SKU-A', 'WH-SKU-A', 5, 'receipt before the crash');});
is($node->safe_psql('postgres', q{SELECT oms.atp('SKU-A')}),
	'10', 'before the crash: 15 on hand - 3 - 2 held = 10');
$node->stop('immediate');
$node->start;

ok($node->poll_query_until('postgres', "SELECT ($worker_sql) <> ''"),
	'after an immediate stop and restart the worker is back');
ok($node->poll_query_until('postgres', hold_gone_sql('cart-2', 'SKU-A', 13)),
	'the short hold from before the crash expires: ATP 15 - 2 = 13');
is( $node->safe_psql(
		'postgres', q{SELECT string_agg(cart || ':' || qty, ',') FROM oms.reservations}),
	'cart-3:2',
	'the long hold survived the crash');
is( $node->safe_psql('postgres', q{SELECT on_hand || '/' || reserved FROM oms.stock s
	JOIN oms.items i ON (i.tenant_id, i.id) = (s.tenant_id, s.item_id) WHERE i.sku = 'SKU-A'}),
	'15/2',
	'the receipt committed before the crash is there; reserved = 2');
$node->safe_psql('postgres', q{SELECT held_qty FROM oms.hold('cart-4', 'SKU-A', 6, NULL, '1 second')});
ok($node->poll_query_until('postgres', hold_gone_sql('cart-4', 'SKU-A', 13)),
	'a new hold expires after the restart');
is($node->safe_psql('postgres', $drift_sql), '0', 'stock.reserved = sum of reservations');
is($node->safe_psql('postgres', q{SELECT count(*) FROM oms.check_stock_invariants()}),
	'0', 'oms.check_stock_invariants() returns no rows');

#
# 3. SIGTERM (pg_terminate_backend): the postmaster restarts the worker after bgw_restart_time.
#
$pid = $node->safe_psql('postgres', $worker_sql);
my $log_offset = -s $node->logfile;
my $t0         = time;
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"),
	't', 'terminate the worker');
ok( $node->poll_query_until(
		'postgres', "SELECT ($worker_sql) NOT IN ('', '$pid')"),
	'the postmaster started a new worker');
my $elapsed = time - $t0;
note sprintf('worker back after %.1f s', $elapsed);
# The postmaster waits bgw_restart_time, then starts the worker on its next loop; allow slack for
# a loaded machine, but a worker that never came back or took minutes fails here.
cmp_ok($elapsed, '<=', $restart_time + 10,
	"restarted within the restart time ($restart_time s) plus scheduling slack");
ok( $node->wait_for_log(
		qr/terminating background worker "oms worker" due to administrator command/,
		$log_offset),
	'the log says why the worker stopped');
$node->safe_psql('postgres', q{SELECT held_qty FROM oms.hold('cart-5', 'SKU-A', 1, NULL, '1 second')});
ok($node->poll_query_until('postgres', hold_gone_sql('cart-5', 'SKU-A', 13)),
	'the restarted worker expires holds');
is($node->safe_psql('postgres', $drift_sql), '0', 'still no drift of stock.reserved');
$node->stop;

#
# 4. oms.database names a database that does not exist: the server stays up, the log says what is
# wrong, and the worker retries once per restart interval, not in a hot loop.
#
my $bad = oms_node('nodb', 'no_such_db');
$bad->start;
is($bad->safe_psql('postgres', 'SELECT 1'), '1', 'the server is up despite the bad oms.database');
$bad->wait_for_log(qr/FATAL:  database "no_such_db" does not exist/);
my $first = time;
like(
	slurp_file($bad->logfile),
	qr/FATAL:  database "no_such_db" does not exist\n.*CONTEXT:  .*oms\.database/,
	'the log names the missing database and the setting oms.database');
# Count connection attempts over a window a little longer than one restart interval: a hot loop
# would log hundreds; a well-behaved worker at most two.
sleep(1) while time - $first < $restart_time + 2;
my $attempts = log_count($bad, qr/database "no_such_db" does not exist/);
note "connection attempts in " . ($restart_time + 2) . " s: $attempts";
cmp_ok($attempts, '<=', 2, 'at most one attempt per restart interval');
is($bad->safe_psql('postgres', 'SELECT 1'), '1', 'the server is still up');
$bad->stop;

#
# 5. The extension is not created yet: the worker says so once, waits, and starts working as soon
# as CREATE EXTENSION has run.
#
my $late = oms_node('late', 'postgres');
$late->start;
$late->wait_for_log(qr/extension "oms" is not installed in database "postgres"/);
ok(1, 'the worker logs that the extension is not installed');
ok($late->poll_query_until('postgres', "SELECT ($worker_sql) <> ''"),
	'the worker waits, connected, instead of exiting');
$late->safe_psql('postgres', 'CREATE EXTENSION oms');
$late->safe_psql('postgres', seed_sql('SKU-L', 3));
$late->safe_psql('postgres', q{SELECT held_qty FROM oms.hold('cart-l', 'SKU-L', 3, NULL, '1 second')});
ok($late->poll_query_until('postgres', hold_gone_sql('cart-l', 'SKU-L', 3)),
	'after CREATE EXTENSION the worker expires holds');
is(log_count($late, qr/extension "oms" is not installed/),
	1, 'the missing extension was logged once, not every round');
$late->stop;

done_testing();
