# Crash during a flash sale: 32 clients buy one unit each of a hot SKU (oms.set_hot: stock slots)
# when the server is stopped in immediate mode (every backend killed, no checkpoint). After the
# restart: every order a client was told was served is there with its reservation, no order a
# client was told was refused is, reserved equals the reservations plus the slots' free units,
# nothing is oversold. Then a second burst, without a crash, sells out exactly the stock left:
# every unit sold once, every later buyer refused with OM001.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $clients = 32;
my $stock = 1500;
my $per_client = 60;        # 1,920 attempts for 1,500 units, over the two bursts

my $node = PostgreSQL::Test::Cluster->new('flash');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'oms'
oms.database = 'postgres'
max_connections = 60
lc_messages = 'C'
});
$node->start;
$node->safe_psql(
	'postgres', qq{
CREATE EXTENSION oms;
INSERT INTO oms.channels (code, kind, name, default_currency, requires_authorization) VALUES ('web', 'web', 'Web', 'EUR', false);
INSERT INTO oms.locations (code, kind, name) VALUES ('WH', 'warehouse', 'Warehouse');
INSERT INTO oms.items (sku, name) VALUES ('DROP', 'Limited sneaker');
SELECT oms.set_stock('DROP', 'WH', $stock, 'init');
SELECT oms.set_hot('DROP', true, 16);
CREATE FUNCTION public.buy(p_ext text) RETURNS text LANGUAGE plpgsql AS \$\$
BEGIN
	PERFORM oms.place_order(jsonb_build_object('channel', 'web', 'external_id', p_ext,
		'ship_to', jsonb_build_object('country', 'IT'),
		'lines', jsonb_build_array(jsonb_build_object('sku', 'DROP', 'qty', 1, 'unit_price', 180))));
	RETURN p_ext || ' served';
EXCEPTION WHEN SQLSTATE 'OM001' THEN
	RETURN p_ext || ' refused';
END
\$\$;
});

# One burst: each client is a psql session running its buys one statement at a time (autocommit);
# a line of output is an answer the client received.
sub burst
{
	my ($tag, $crash_after) = @_;
	my (@runs, @outs);
	# Scripts and answers are files: IPC::Run moves data through pipes only when pumped.
	my $dir = "$PostgreSQL::Test::Utils::tmp_check/flash";
	mkdir $dir;
	for my $c (1 .. $clients)
	{
		my $in = "$dir/$tag-$c.sql";
		my $out = "$dir/$tag-$c.out";
		open(my $fh, '>', $in) or die "$in: $!";
		print $fh map { "SELECT public.buy('$tag-$c-$_');\n" } 1 .. $per_client;
		close $fh;
		push @outs, $out;
		push @runs,
		  IPC::Run::start(
			[
				'psql', '-X', '-At', '-h', $node->host, '-p', $node->port, '-d', 'postgres',
				'-v', 'ON_ERROR_STOP=0', '-f', $in
			],
			'>', $out, '2>', "$out.err");
	}
	if (defined $crash_after)
	{
		sleep $crash_after;
		$node->stop('immediate');
		$node->start;
	}
	$_->finish for @runs;
	my (%served, %refused);
	for my $out (@outs)
	{
		open(my $fh, '<', $out) or die "$out: $!";
		for my $line (<$fh>)
		{
			chomp $line;
			$served{$1} = 1 if $line =~ /^(\S+) served$/;
			$refused{$1} = 1 if $line =~ /^(\S+) refused$/;
		}
	}
	return (\%served, \%refused);
}

sub in_db
{
	my ($tag) = @_;
	my %ext = map { $_ => 1 } split /\n/,
	  $node->safe_psql('postgres', qq{SELECT external_id FROM oms.orders WHERE external_id LIKE '$tag-%'});
	return \%ext;
}

sub check_stock
{
	my ($label) = @_;
	is($node->safe_psql('postgres', 'SELECT count(*) FROM oms.check_stock_invariants()'),
		'0', "$label: reserved = reservations + free slot units, within on_hand");
	is( $node->safe_psql(
			'postgres', q{
SELECT (SELECT count(*) FROM oms.orders o WHERE o.state::text <> 'cancelled')
     = (SELECT coalesce(sum(r.qty), 0) FROM oms.reservations r)}),
		't', "$label: every order holds exactly its one unit");
}

# 1. The crash, 2 s into the burst.
my ($served, $refused) = burst('A', 2);
my $db = in_db('A');
cmp_ok(scalar(keys %$served), '>', 0, 'some orders were served before the crash');
is(scalar(grep { !$db->{$_} } keys %$served), 0,
	'every order a client was told was served survived the crash (' . scalar(keys %$served) . ')');
is(scalar(grep { $db->{$_} } keys %$refused), 0, 'no order a client was told was refused exists');
cmp_ok(scalar(keys %$db) - scalar(keys %$served), '<=', $clients,
	'at most one order per client committed without its answer (lost with the connection)');
check_stock('after the crash');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '0', 'no prepared transaction left');

# 2. The rest of the stock, no crash: sold exactly once.
my $before = scalar(keys %$db);
($served, $refused) = burst('B', undef);
my $sold = $node->safe_psql('postgres', q{SELECT count(*) FROM oms.orders});
is($sold, $stock, "the stock of $stock units sold exactly, in both bursts");
is(scalar(keys %$served), $stock - $before, 'the second burst served what was left');
cmp_ok(scalar(keys %$refused), '>', 0, 'and refused the buyers after that (OM001)');
is($node->safe_psql('postgres', q{SELECT oms.atp('DROP')}), '0', 'ATP is 0');
check_stock('after the sell-out');

$node->stop;
done_testing();
