# The invariant stress test: 8 clients for 20 seconds (OMS_STRESS_CLIENTS, OMS_STRESS_SECONDS)
# run test/stress/stress.pl's mix of orders, duplicates, click & collect, backorders, cart holds,
# cancellations and stock changes against a preloaded server whose worker expires the holds.
# Every check that stress.pl prints must be 0: nothing acknowledged is lost, no external_id gives
# two orders, no unexpected error (a deadlock, a timeout), and every invariant of
# test/stress/check.sql holds.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{OMS_ROOT} // "$FindBin::Bin/../..";
my $stress = "$root/test/stress/stress.pl";
my $clients = $ENV{OMS_STRESS_CLIENTS} // 8;
my $seconds = $ENV{OMS_STRESS_SECONDS} // 20;

my $node = PostgreSQL::Test::Cluster->new('stress');
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

my ($out, $err) = ('', '');
my $ok = IPC::Run::run(
	[
		'perl', $stress, '--clients', $clients, '--seconds', $seconds,
		'--host', $node->host, '--port', $node->port, '--dbname', 'postgres',
		'--workdir', "$PostgreSQL::Test::Utils::tmp_check/stress"
	],
	'>', \$out, '2>', \$err);
note $out;
diag $err if $err ne '';
ok($ok, 'stress.pl exits 0 (every check passed)') or diag $out;

my %v = $out =~ /^  (\w+)\s+(\S+)$/mg;
cmp_ok($v{orders_new} // 0, '>', 100, 'orders were placed');
cmp_ok($v{duplicates_collapsed} // 0, '>', 0, 'duplicate submissions were collapsed');
cmp_ok($v{orders_refused_om001} // 0, '>', 0, 'some orders were refused for lack of stock');
cmp_ok($v{cancellations} // 0, '>', 0, 'orders were cancelled');
cmp_ok($v{holds_placed} // 0, '>', 0, 'cart holds were placed');
is($v{holds_left}, 0, 'every cart hold expired or was taken over');
for my $check (
	qw(acknowledged_orders_missing acknowledged_orders_wrong external_id_two_ids cancellations_missing
	orders_not_acknowledged expired_holds_left unexpected_errors stock_bounds reserved_equals_reservations
	allocated_lines_reserved unallocated_lines_unreserved cancelled_orders_unreserved external_id_unique
	history_chain history_legal order_rollup order_has_lines ledger_explains_on_hand))
{
	is($v{$check}, 0, "check $check: 0");
}

# The server log has no crash and no deadlock.
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|server process .* was terminated/, 'no backend crashed');
unlike($log, qr/deadlock detected/, 'no deadlock');
$node->stop;

done_testing();
