# sqlsmith (Debian package sqlsmith) generates random queries over everything in the database:
# oms's tables, types, operators and functions, called with random arguments, and random
# INSERT/UPDATE/DELETE/MERGE on its tables. It runs a bounded number of queries with a fixed seed
# (OMS_SQLSMITH_QUERIES, default 2000; OMS_SQLSMITH_SEED, default 1) against a database holding
# the stress test's data, as a role that may write every oms table (test/sqlsmith/setup.sql).
# Errors are expected (random queries); what must not happen: a server crash, an internal error
# (XX000) raised by oms, or a broken stock invariant, which the database keeps whatever is written
# to its tables.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

if (system('sh', '-c', 'command -v sqlsmith >/dev/null') != 0)
{
	plan skip_all => 'sqlsmith is not installed (apt-get install sqlsmith)';
}
my $root = $ENV{OMS_ROOT} // "$FindBin::Bin/../..";
my $queries = $ENV{OMS_SQLSMITH_QUERIES} // 2000;
my $seed = $ENV{OMS_SQLSMITH_SEED} // 1;

my $node = PostgreSQL::Test::Cluster->new('sqlsmith');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'oms'
oms.database = 'postgres'
oms.worker_naptime = 1
lc_messages = 'C'
log_statement = 'none'
log_min_messages = error
log_min_error_statement = panic
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION oms');

# The data: a short stress run (orders in every state it makes, holds, history, movements).
my ($out, $err) = ('', '');
IPC::Run::run(
	[
		'perl', "$root/test/stress/stress.pl", '--clients', 4, '--seconds', 5, '--host', $node->host,
		'--port', $node->port, '--dbname', 'postgres', '--workdir', "$PostgreSQL::Test::Utils::tmp_check/sqlsmith_stress"
	],
	'>', \$out, '2>', \$err)
  or diag $out;
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM oms.orders'), '>', 0, 'the database has orders');
$node->safe_psql('postgres', slurp_file("$root/test/sqlsmith/setup.sql"));

my $log_offset = -s $node->logfile;
($out, $err) = ('', '');
my $connstr = 'host=' . $node->host . ' port=' . $node->port . ' dbname=postgres user=smith';
IPC::Run::run([ 'sqlsmith', "--target=$connstr", "--seed=$seed", "--max-queries=$queries", '--verbose' ],
	'>', \$out, '2>', \$err);
my ($rate) = $err =~ /error rate: ([\d.]+)/;
note "sqlsmith: $queries queries, seed $seed, error rate " . ($rate // '?');
like($err, qr/error rate: /, "sqlsmith ran its $queries queries to the end");

my $log = substr(slurp_file($node->logfile), $log_offset);
unlike($log, qr/terminated by signal|was terminated by exception|server process .* was terminated/,
	'no server process crashed');
my @internal = ($out . $err) =~ /^\d+\s+ERROR:  (oms: [^\n]*)$/mg;
is(scalar @internal, 0, 'no internal error of oms ("oms: ..." messages are elog, never for users)')
  or diag join("\n", @internal);
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is up');
is( $node->safe_psql(
		'postgres', q{SELECT count(*) FROM oms.stock WHERE reserved < 0 OR reserved > on_hand}),
	'0', 'after sqlsmith\'s writes: 0 <= reserved <= on_hand everywhere');
is($node->safe_psql('postgres', 'SELECT count(*) FROM oms.check_stock_invariants_all()'),
	'0', 'after sqlsmith\'s writes: reserved = sum of reservations everywhere');
$node->stop;

done_testing();
