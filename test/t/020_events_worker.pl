# The outbox and the background worker: with oms.notify_events = worker the worker wakes
# listeners (NOTIFY oms_events, payload the tenant) once per round with new events; with commit,
# the writing transaction does, at its commit (a prepared transaction goes without); the worker purges events older than
# oms.event_retention once every consumer of their tenant has acknowledged them, and keeps the
# others; it reports orders late on their promised date (delayed) and pickups left at the store
# (pickup_uncollected), each once. Every wait is a poll that ends as soon as the awaited state is
# reached.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

my $node = PostgreSQL::Test::Cluster->new('events');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'oms'
oms.database = 'postgres'
oms.worker_naptime = 1
oms.notify_events = worker
oms.event_retention = '2s'
max_prepared_transactions = 2
lc_messages = 'C'
});
$node->start;
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION oms;
INSERT INTO oms.channels (code, kind, name, default_currency, requires_authorization) VALUES ('web', 'web', 'Web', 'EUR', false);
INSERT INTO oms.locations (code, kind, name, can_pickup) VALUES ('WH', 'warehouse', 'Warehouse', true);
INSERT INTO oms.items (sku, name) VALUES ('SKU-1', 'One');
SELECT oms.set_stock('SKU-1', 'WH', 100, 'init');
});

my $worker_pid_sql =
  q{SELECT coalesce(max(pid)::text, '') FROM pg_stat_activity WHERE backend_type = 'oms worker'};
ok($node->poll_query_until('postgres', "SELECT ($worker_pid_sql) <> ''"), 'the worker runs');
my $worker_pid = $node->safe_psql('postgres', $worker_pid_sql);

sub place
{
	my ($ext) = @_;
	return $node->safe_psql('postgres',
		qq{SELECT oms.place_order('{"channel": "web", "external_id": "$ext", "ship_to": {"country": "IT"},
		   "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 5}]}')});
}

# Runs a trivial query in the listening session until psql reports a notification on oms_events;
# returns the PID of the process that sent it, or '' after the timeout.
sub await_notification
{
	my ($listener, $tenant) = @_;
	$tenant //= 'default';
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		my $out = $listener->query('SELECT 1');
		return $1
		  if $out =~ /Asynchronous notification "oms_events" with payload "\Q$tenant\E" received from server process with PID (\d+)/;
		sleep 0.2;
	}
	return '';
}

#
# 1. oms.notify_events = worker: the order's transaction sends nothing; the worker sends the
# wake-up, with the tenant as payload.
#
my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN oms_events');
place('W-1');
is(await_notification($listener), $worker_pid,
	'notify_events = worker: the worker sent NOTIFY oms_events for tenant "default"');

# 1b. Between its rounds the worker announces every oms.notify_interval (100 ms): with rounds an
# hour apart, an order is still announced within seconds, not at the next round (an order of
# another tenant, so that the default tenant's figures below stay as they are).
$node->safe_psql('postgres', q{ALTER SYSTEM SET oms.worker_naptime = '1h'; SELECT pg_reload_conf()});
$node->safe_psql(
	'postgres', q{
SELECT oms.create_tenant('other');
SET oms.tenant = 'other';
INSERT INTO oms.channels (code, kind, name, default_currency, requires_authorization) VALUES ('web', 'web', 'Web', 'EUR', false);
INSERT INTO oms.locations (code, kind, name) VALUES ('WH', 'warehouse', 'Warehouse');
INSERT INTO oms.items (sku, name) VALUES ('SKU-1', 'One');
SELECT oms.set_stock('SKU-1', 'WH', 10, 'init');
});
sleep 2;	# the worker's current nap (1 s) ends and the next round's wait is an hour
my $t0 = time;
$node->safe_psql('postgres',
	q{SET oms.tenant = 'other'; SELECT oms.place_order('{"channel": "web", "external_id": "O-1", "ship_to": {"country": "IT"},
	  "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 5}]}')});
is(await_notification($listener, 'other'), $worker_pid, 'notify_events = worker: announced between rounds');
cmp_ok(time - $t0, '<', 60, 'announced long before the next round (an hour away)');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET oms.worker_naptime; SELECT pg_reload_conf()});

#
# 2. oms.notify_events = commit (set by the session): the writing session itself notifies.
#
my $writer = $node->background_psql('postgres');
$writer->query_safe('SET oms.notify_events = commit');
my $writer_pid = $writer->query_safe('SELECT pg_backend_pid()');
$writer->query_safe(
	q{SELECT oms.place_order('{"channel": "web", "external_id": "W-2", "ship_to": {"country": "IT"},
	  "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 5}]}')});
my $sender = await_notification($listener);
# The worker may announce W-2 as well, in a later round; the first wake-up is the writer's own.
is($sender, $writer_pid, 'notify_events = commit: the writing session sent it at its commit');
$writer->quit;

# 2b. A transaction that is prepared (PREPARE TRANSACTION, as Citus's two-phase commit does) cannot
# NOTIFY: PostgreSQL refuses to prepare one that has. With commit, the wake-up is queued only when
# the transaction commits, so a prepared one goes through, without it.
is( $node->safe_psql(
		'postgres', q{
SET oms.notify_events = commit;
BEGIN;
INSERT INTO oms.events (type, payload) VALUES ('tracking', '{"prepared": true}');
PREPARE TRANSACTION 'oms_events_prepared';
COMMIT PREPARED 'oms_events_prepared';
SELECT count(*) FROM oms.events WHERE payload ->> 'prepared' = 'true';}),
	'1', 'notify_events = commit: a transaction with an event is prepared and committed');

#
# 3. Purge: events older than oms.event_retention (2 s) go once every consumer has acknowledged
# them; an unacknowledged event stays, however old.
#
my $w1 = $node->safe_psql('postgres', q{SELECT id FROM oms.events WHERE payload ->> 'order_ref' = 'W-1'});
my $w2 = $node->safe_psql('postgres', q{SELECT id FROM oms.events WHERE payload ->> 'order_ref' = 'W-2'});
is( $node->safe_psql('postgres', q{SELECT string_agg(payload ->> 'order_ref', ',' ORDER BY id) FROM oms.next_events('mailer')}),
	'W-1,W-2', 'the mailer reads both events');
$node->safe_psql('postgres', "SELECT oms.ack_events('mailer', $w1)");
ok($node->poll_query_until('postgres', "SELECT NOT EXISTS (SELECT FROM oms.events WHERE id = $w1)"),
	'the worker purged the acknowledged event once it was older than 2 s');
is($node->safe_psql('postgres', "SELECT count(*) FROM oms.events WHERE id = $w2"),
	'1', 'the event the mailer has not acknowledged is kept');
is($node->safe_psql('postgres', q{SELECT string_agg(payload ->> 'order_ref', ',') FROM oms.next_events('mailer')}),
	'W-2', 'and is delivered again');

# A consumer that is dropped no longer holds events back.
$node->safe_psql('postgres', q{SELECT oms.drop_event_consumer('mailer')});
ok($node->poll_query_until('postgres', 'SELECT NOT EXISTS (SELECT FROM oms.events)'),
	'after the consumer is dropped, its unacknowledged events are purged too');

#
# 4. Purging works in batches of 1000, each its own transaction: 2500 acknowledged events all go.
#
$node->safe_psql(
	'postgres', q{
INSERT INTO oms.events (type, payload) SELECT 'delayed', '{}' FROM generate_series(1, 2500);
SELECT count(*) FROM oms.next_events('erp', 1);
SELECT oms.ack_events('erp', (SELECT max(id) FROM oms.events));});
ok($node->poll_query_until('postgres', 'SELECT NOT EXISTS (SELECT FROM oms.events)'),
	'2500 acknowledged events purged');

#
# 5. Overdue: a line past its promised date and not shipped is reported delayed, once; a pickup
# past its collect_by date is reported uncollected, once.
#
# A consumer that acknowledges nothing keeps the new events from being purged (retention 2 s).
$node->safe_psql('postgres', q{SELECT oms.drop_event_consumer('erp'); SELECT count(*) FROM oms.next_events('audit')});
my $late = place('LATE-1');
$node->safe_psql('postgres',
	"UPDATE oms.order_lines SET promised_date = current_date - 2 WHERE order_id = $late");
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) = 1 FROM oms.events WHERE type = 'delayed' AND payload ->> 'order_ref' = 'LATE-1'}),
	'the worker reported the late order');
is( $node->safe_psql('postgres',
		q{SELECT payload -> 'lines' -> 0 ->> 'promised_date' = (current_date - 2)::text FROM oms.events WHERE type = 'delayed'}),
	't', 'with the promised date of the late line');
my $pickup = $node->safe_psql('postgres',
	q{SELECT oms.place_order('{"channel": "web", "external_id": "PICK-1", "pickup": "WH",
	  "lines": [{"sku": "SKU-1", "qty": 2, "unit_price": 5}]}')});
$node->safe_psql('postgres', "SELECT oms.release_order($pickup); SELECT oms.ready_for_pickup($pickup);
	UPDATE oms.pickups SET ready_at = now() - interval '8 days', collect_by = now() - interval '1 day' WHERE order_id = $pickup");
ok( $node->poll_query_until(
		'postgres', q{SELECT count(*) = 1 FROM oms.events WHERE type = 'pickup_uncollected' AND payload ->> 'order_ref' = 'PICK-1'}),
	'the worker reported the uncollected pickup');
# Nothing is reported twice: a fixed wait over two more rounds of the worker (1 s naptime), since
# what is checked is that nothing happens.
$node->safe_psql('postgres', q{SELECT pg_sleep(2.5)});
is( $node->safe_psql('postgres', q{SELECT count(*) FROM oms.events WHERE type IN ('delayed', 'pickup_uncollected')}),
	'2', 'each reported once');
# Cancelling the uncollected pickup returns its stock.
$node->safe_psql('postgres', "SELECT oms.cancel_order($pickup, 'not collected')");
is($node->safe_psql('postgres', q{SELECT on_hand || '/' || reserved FROM oms.stock WHERE tenant_id = oms.current_tenant_id()}),
	'100/3', 'cancelling the pickup gave its 2 units back (3 still reserved: W-1, W-2, LATE-1)');

like(slurp_file($node->logfile), qr/^(?!.*ERROR)/s, 'no error in the server log');

$listener->quit;
$node->stop;
done_testing();
