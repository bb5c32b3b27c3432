# The background worker when its transaction cannot finish: a lock on oms.reservations held by
# someone else blocks its batch. With statement_timeout set for its database the batch is
# cancelled, the error is logged with the worker named, and the round is retried after the nap:
# no hot loop, no crash, same process. Cancelled by hand (pg_cancel_backend) while it waits, it
# does the same. Once the lock goes, the expired hold it was after is deleted.
#
# (test/t/001_worker_hold_expiry.pl covers the missing database, the missing extension, SIGHUP,
# SIGTERM and an immediate stop.)
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $worker_sql =
  q{SELECT coalesce(max(pid)::text, '') FROM pg_stat_activity WHERE backend_type = 'oms worker'};

my $node = PostgreSQL::Test::Cluster->new('timeout');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'oms'
oms.database = 'postgres'
oms.worker_naptime = 1
lc_messages = 'C'
});
$node->start;
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION oms;
INSERT INTO oms.locations (code, kind, name) VALUES ('WH', 'warehouse', 'Warehouse');
INSERT INTO oms.items (sku, name) VALUES ('SKU-T', 'Item');
SELECT oms.set_stock('SKU-T', 'WH', 10, 'initial count');
ALTER DATABASE postgres SET statement_timeout = '200ms';
});
# The worker reads the database's settings when it connects.
$node->restart;
ok($node->poll_query_until('postgres', "SELECT ($worker_sql) <> ''"), 'the worker is up');
my $pid = $node->safe_psql('postgres', $worker_sql);

# Blocks the worker: a transaction that holds oms.reservations locked, and in which a hold has
# expired (the worker cannot see it until we commit, and cannot even look while we hold the lock).
sub block_worker
{
	my $bg = $node->background_psql('postgres', on_error_stop => 1);
	$bg->query_safe('SET statement_timeout = 0');
	$bg->query_safe(q{SELECT held_qty FROM oms.hold('cart-t', 'SKU-T', 4, NULL, '1 hour')});
	$bg->query_safe('BEGIN');
	$bg->query_safe('LOCK TABLE oms.reservations IN ACCESS EXCLUSIVE MODE');
	$bg->query_safe(q{UPDATE oms.reservations SET expires_at = pg_catalog.now() - interval '1 second'
		WHERE cart = 'cart-t'});
	return $bg;
}

sub timeouts_in_log
{
	my ($offset) = @_;
	my $log = substr(slurp_file($node->logfile), $offset);
	my @hits = ($log =~ m/\[$pid\] ERROR:  canceling statement due to statement timeout\n[^\n]*CONTEXT:  [^\n]*\n\toms background worker in database "postgres": expiring cart holds/g);
	return scalar @hits;
}

#
# 1. statement_timeout: every round times out, is logged, and the next one comes after the nap.
#
my $offset = -s $node->logfile;
my $bg = block_worker();
my $t0 = time;
ok( $node->wait_for_log(qr/\[$pid\] ERROR:  canceling statement due to statement timeout/, $offset),
	'the worker\'s blocked batch is cancelled by statement_timeout');
like(
	substr(slurp_file($node->logfile), $offset),
	qr/canceling statement due to statement timeout\n[^\n]*CONTEXT:  [^\n]*\n\toms background worker in database "postgres": expiring cart holds; the round is retried in 1 s/,
	'the log names the worker, what it was doing and when it retries');
# Watch it for a while: one attempt per round (a nap of 1 s plus the 200 ms timeout), not a
# hot loop, which would log an attempt every 200 ms or faster.
my $window = 6;
sleep(0.2) while time - $t0 < $window;
my $timeouts = timeouts_in_log($offset);
note "statement timeouts of the worker in $window s: $timeouts";
cmp_ok($timeouts, '>=', 2, 'the worker kept retrying');
cmp_ok($timeouts, '<=', $window + 2, 'at most one attempt per nap: no hot loop');
is($node->safe_psql('postgres', $worker_sql), $pid, 'the same worker process: it did not crash or exit');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is up');

$bg->query_safe('COMMIT');
ok( $node->poll_query_until(
		'postgres', q{SELECT NOT EXISTS (SELECT 1 FROM oms.reservations) AND oms.atp('SKU-T') = 10}),
	'once the lock is gone the worker deletes the expired hold: ATP back to 10');
$bg->quit;

#
# 2. No statement_timeout: the worker waits for the lock; a cancel (pg_cancel_backend) ends the
# wait, is logged, and the worker goes on with its next round.
#
$node->safe_psql('postgres', 'ALTER DATABASE postgres RESET statement_timeout');
$node->restart;
ok($node->poll_query_until('postgres', "SELECT ($worker_sql) <> ''"), 'the worker is up again');
$pid = $node->safe_psql('postgres', $worker_sql);
$offset = -s $node->logfile;
$bg = block_worker();
ok( $node->poll_query_until(
		'postgres', qq{SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $pid}),
	'without a timeout the worker waits for the lock');
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"), 't', 'cancel the worker\'s statement');
ok( $node->wait_for_log(qr/\[$pid\] ERROR:  canceling statement due to user request/, $offset),
	'the cancel is logged');
ok( $node->poll_query_until(
		'postgres', qq{SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $pid}),
	'the worker is back, waiting for the lock in its next round');
is($node->safe_psql('postgres', $worker_sql), $pid, 'still the same worker process');
$bg->query_safe('COMMIT');
ok( $node->poll_query_until(
		'postgres', q{SELECT NOT EXISTS (SELECT 1 FROM oms.reservations) AND oms.atp('SKU-T') = 10}),
	'the expired hold is deleted once the lock is gone');
$bg->quit;

unlike(slurp_file($node->logfile), qr/terminated by signal|was terminated/, 'no process crashed');
$node->stop;

done_testing();
