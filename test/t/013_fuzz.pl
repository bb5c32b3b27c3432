# A short pass of the fuzzer (test/fuzz/fuzz.pl; OMS_FUZZ_SECONDS, default 30): mutated state
# names, order payloads and API parameters. No backend crashes, no input hangs, every error carries
# a SQLSTATE its function documents, and nothing is written. `make fuzz FUZZ_SECONDS=N` runs longer.
use strict;
use warnings;

use FindBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{OMS_ROOT} // "$FindBin::Bin/../..";
my $seconds = $ENV{OMS_FUZZ_SECONDS} // 30;

my $node = PostgreSQL::Test::Cluster->new('fuzz');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'oms'
oms.database = 'postgres'
lc_messages = 'C'
log_statement = 'none'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION oms');

my ($out, $err) = ('', '');
my $ok = IPC::Run::run(
	[
		'perl', "$root/test/fuzz/fuzz.pl", '--seconds', $seconds, '--host', $node->host,
		'--port', $node->port, '--dbname', 'postgres', '--workdir', "$PostgreSQL::Test::Utils::tmp_check/fuzz"
	],
	'>', \$out, '2>', \$err);
note $out;
diag $err if $err ne '';
ok($ok, 'fuzz.pl exits 0: no crash, no hang, every error documented, nothing written') or diag $out;
my ($inputs) = $out =~ /^  inputs (\d+)$/m;
my ($undocumented) = $out =~ /^  undocumented (\d+)$/m;
cmp_ok($inputs // 0, '>', 1000, 'inputs tried: ' . ($inputs // 0));
is($undocumented, 0, 'no error with an undocumented SQLSTATE');

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|was terminated by exception|server process .* was terminated/, 'no backend crashed');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is up');
$node->stop;

done_testing();
