# Crash during load: while test/stress/stress.pl runs 8 clients, the server is stopped in
# immediate mode (every backend killed, no checkpoint: what a crash leaves) twice, and started
# again. The clients reconnect and submit again the order whose answer they lost, as real clients
# would. At the end every order a client was told of is in the database with its id and all its
# lines, every acknowledged cancellation holds, no order exists that no client could have been
# told of, the invariants hold, the background worker is back and expires holds.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $root = $ENV{OMS_ROOT} // "$FindBin::Bin/../..";
my $stress = "$root/test/stress/stress.pl";
my $seconds = 16;
my @crash_at = (5, 10);    # seconds into the run

my $worker_sql =
  q{SELECT coalesce(max(pid)::text, '') FROM pg_stat_activity WHERE backend_type = 'oms worker'};

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'oms'
oms.database = 'postgres'
oms.worker_naptime = 1
max_connections = 50
lc_messages = 'C'
log_statement = 'none'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION oms');

my $work = "$PostgreSQL::Test::Utils::tmp_check/crash";
sub acks
{
	my $n = 0;
	for my $f (glob("$work/acks.*"))
	{
		open(my $fh, '<', $f) or next;
		$n += grep { /^order\t/ } <$fh>;
	}
	return $n;
}

my ($out, $err) = ('', '');
my $t0 = time;
my $load = IPC::Run::start(
	[
		'perl', $stress, '--clients', 8, '--seconds', $seconds, '--reconnect',
		'--host', $node->host, '--port', $node->port, '--dbname', 'postgres',
		'--workdir', $work
	],
	'>', \$out, '2>', \$err);

my $crashes = 0;
for my $at (@crash_at)
{
	# (and not before the clients have had orders acknowledged, on a slow machine)
	sleep(0.1) while time - $t0 < $at || (acks() <= $crashes * 100 && time - $t0 < $seconds - 2);
	my $before = acks();
	cmp_ok($before, '>', 0, "orders acknowledged before crash " . ($crashes + 1) . ": $before");
	$node->stop('immediate');
	$crashes++;
	$node->start;
	ok($node->poll_query_until('postgres', "SELECT ($worker_sql) <> ''"),
		"after crash $crashes the worker is back");
}

$load->finish;
my $status = $?;
note $out;
diag $err if $err ne '';
is($status, 0, 'stress.pl exits 0: every check passed after the crashes') or diag $out;

my %v = $out =~ /^  (\w+)\s+(\S+)$/mg;
cmp_ok($v{reconnects} // 0, '>=', 8, 'the clients reconnected after the crashes');
cmp_ok($v{orders_new} // 0, '>', 100, 'orders were placed');
for my $check (
	qw(acknowledged_orders_missing acknowledged_orders_wrong external_id_two_ids cancellations_missing
	expired_holds_left unexpected_errors stock_bounds reserved_equals_reservations allocated_lines_reserved
	unallocated_lines_unreserved cancelled_orders_unreserved external_id_unique history_chain history_legal
	order_rollup order_has_lines ledger_explains_on_hand))
{
	is($v{$check}, 0, "check $check: 0");
}
note sprintf('crashes: %d, orders acknowledged: %d, lost answers: %d, resubmitted: %d',
	$crashes, $v{orders_committed} // 0, $v{orders_outcome_lost} // 0, $v{orders_resubmitted} // 0);

my $log = slurp_file($node->logfile);
my @recoveries = ($log =~ /database system was (?:interrupted|not properly shut down); .*automatic recovery in progress|redo done at/g);
cmp_ok(scalar @recoveries, '>=', $crashes, 'the server recovered from WAL after each crash');

# Expired holds still expire: a new hold after the last restart. The load may have sold SKU-01
# out at WH-1, so a unit is received there first.
$node->safe_psql('postgres', q{SET oms.tenant = 'stress';
	SELECT oms.adjust_stock('SKU-01', 'WH-1', 1, 'receipt for the hold after the crashes');
	SELECT held_qty FROM oms.hold('cart-after-crash', 'SKU-01', 1, 'WH-1', '1 second')});
ok( $node->poll_query_until(
		'postgres', q{SELECT NOT EXISTS (SELECT 1 FROM oms.reservations WHERE cart = 'cart-after-crash')}),
	'a hold placed after the crashes expires');
is($node->safe_psql('postgres', 'SELECT count(*) FROM oms.check_stock_invariants_all()'),
	'0', 'oms.check_stock_invariants_all() is empty');
$node->stop;

done_testing();
