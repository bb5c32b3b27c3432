#!/usr/bin/perl
#
# fuzz.pl: a mutation fuzzer for the inputs oms accepts from users, run over SQL.
#
# Targets: the text input of the state types (C), oms.transition and oms.is_legal (C), the JSON
# payload of oms.place_order, the parameters of oms.hold, release_hold, adjust_stock, set_stock,
# cancel_order, atp (also by date) and create_tenant, the JSON lines and ship-to of oms.route,
# route_explain and promise (C), the setting oms.tenant (its check hook is C), the rollup's
# final function (C, callable by anyone), and the lifecycle: release_order, pack, ship,
# cancel_line, create_return, receive_return, exchange, change_address, hold_order, the payment
# functions and tracking_update, with their JSON line lists and addresses. Seeds are the files of test/fuzz/corpus
# (KIND.N.txt or KIND.N.json). Each input is a seed mutated a few times: bytes flipped, inserted,
# deleted, spans repeated, seeds spliced, and for JSON, values replaced by hostile ones (int and
# bigint limits, 1e400, 1e-400, NaN and Infinity as text, huge and deeply nested values, format
# strings, unicode of every kind), keys removed or invented, types swapped.
#
# Inputs go to the server in batches, each one through fuzz.try() (test/fuzz/setup.sql), which
# runs it in a subtransaction that is always rolled back and returns its SQLSTATE. The run fails
# if an input
#   - crashes the backend (the connection is lost),
#   - hangs (the batch hits statement_timeout),
#   - ends with a SQLSTATE its target does not document (README "Error codes"), or
#   - leaves anything behind (fuzz.fingerprint() changes).
# Findings (the input in hex and what happened) go to WORKDIR/findings.txt.
#
# Usage: fuzz.pl [--seconds T] [--seed S] [--workdir DIR] [--host H] [--port P] [--dbname DB] [--user U]

use strict;
use warnings;

use FindBin;
use Getopt::Long;
use IPC::Open2;
use JSON::PP;
use File::Temp qw(tempdir);
use Time::HiRes qw(time);

my %opt = (
	seconds => 30,
	seed => int(time()) % 100000,
	host => $ENV{PGHOST},
	port => $ENV{PGPORT},
	dbname => $ENV{PGDATABASE} // 'postgres',
	user => $ENV{PGUSER},
	workdir => undef,
	psql => 'psql',
	batch => 100,
	corpus => "$FindBin::Bin/corpus",);
GetOptions(\%opt, 'seconds=f', 'seed=i', 'host=s', 'port=i', 'dbname=s', 'user=s', 'workdir=s',
	'psql=s', 'batch=i', 'corpus=s')
  or die "usage: fuzz.pl [--seconds T] [--seed S] [--workdir DIR]\n";
my $workdir = $opt{workdir} // tempdir('oms-fuzz.XXXXXX', TMPDIR => 1, CLEANUP => 0);
mkdir $workdir unless -d $workdir;
srand($opt{seed});
$SIG{PIPE} = 'IGNORE';

# The SQLSTATEs each target documents (README, "Error codes"); anything else is a finding.
my %documented = (
	order_state => [qw(22P02)],
	line_state => [qw(22P02)],
	transition => [qw(22P02 22023 55000)],
	place_order => [qw(22023 OM001)],
	hold => [qw(22023 OM001)],
	release_hold => [qw(22023)],
	adjust_stock => [qw(22023 OM002)],
	set_stock => [qw(22023 OM002)],
	cancel_order => [qw(22023 55000)],
	atp => [qw(22023)],
	atp_on => [qw(22023)],
	route => [qw(22023)],
	promise => [qw(22023)],
	tenant => [qw(22023)],
	create_tenant => [qw(22023)],
	rollup_final => [],
	# the lifecycle (README: Release, pack, ship; Order edits; Returns; Payments; Error codes)
	release_order => [qw(22023 55000 OM009)],
	pack => [qw(22023 55000 OM004)],
	ship => [qw(22023 55000)],
	cancel_line => [qw(22023 55000)],
	create_return => [qw(22023 55000 OM005 OM010)],
	receive_return => [qw(22023 55000 OM005)],
	exchange => [qw(22023 55000 OM001 OM005)],
	change_address => [qw(22023 55000)],
	hold_order => [qw(22023 55000)],
	payment => [qw(22023 55000 OM006 OM007 OM008)],
	tracking_update => [qw(22023 55000)],);

# ----- seeds -----------------------------------------------------------------------------------

my (%seeds, @kinds);
for my $f (sort glob("$opt{corpus}/*"))
{
	my ($kind) = $f =~ m{([a-z_]+)\.\d+\.(?:txt|json)$} or next;
	die "fuzz.pl: no target for corpus file $f\n" unless $documented{$kind};
	open(my $fh, '<:raw', $f) or die;
	push @{ $seeds{$kind} }, do { local $/; <$fh> };
}
@kinds = sort keys %seeds;
die "fuzz.pl: empty corpus in $opt{corpus}\n" unless @kinds;

# ----- mutation --------------------------------------------------------------------------------

sub pick { return $_[ int(rand(@_)) ] }

# Hostile values, as JSON text.
my @json_values = (
	'0', '-0', '-1', '1', '2', '1.0', '2.50', '1e2', '1E+2', '0.1', '1.5', '-1.5',
	'2147483647', '2147483648', '-2147483648', '-2147483649', '4294967296',
	'9223372036854775807', '9223372036854775808', '-9223372036854775808', '-9223372036854775809',
	'999999999999999', '1e15', '999999999999999.999', '1000000000000', '1000000000001',
	'1e308', '1e309', '-1e308', '1e-308', '1e-400', '1e400', '1e-16383', '1e131071',
	'0.' . ('0' x 1000) . '1', '1' . ('0' x 1000), '123456789' x 200,
	'"NaN"', '"Infinity"', '"-Infinity"', '"1e400"', '"2"', '"-1"', '"0x10"', '" 1"',
	'true', 'false', 'null', '[]', '{}', '[null]', '{"": null}', '""', '" "',
	'"' . ('x' x 201) . '"', '"' . ('x' x 100_001) . '"', '"' . ("\\u00e9" x 5000) . '"',
	'"%s%s%s%n%x%p"', '"%"', '"\\\\"', '"\\"\'; DROP TABLE oms.orders; --"', '"$1"',
	'"\\u0000"', '"\\ud800"', '"\\udfff\\ud800"', '"\\u0001\\u001b[31m"', '"\\t\\n\\r"',
	'"\\u202e\\u200b\\ufeff"', '"e\\u0301"', '"\\uffff"', '"\\ud83d\\ude00"', "\"\x{00e9}\x{00df}\x{0130}\x{4e2d}\"",
	'"SKU-1"', '"sku-1"', '"SKU-1 "', '"WH"', '"ST"', '"web"', '"pos"', '"EUR"', '"eur"', '"XXX"',
	'"IT"', '"it"', '"ITA"', '"cart-held"', '"cart-1"', '"EXISTING-1"', '"allocated"', '"cancel"',
	'"1 second"', '"-1 second"', '"0"', '"31 days"', '"infinity"', '"178000000 years"', '"1 microsecond"',
	'[' . join(',', ('1') x 10_001) . ']', '[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]');

my @string_bits = (
	"\x{00e9}", "\x{0301}", "\x{200b}", "\x{202e}", "\x{feff}", "\x{1f600}", "\x{ffff}", "\x{10ffff}",
	"\x{0130}", "\x{4e2d}", "\x01", "\x1b", "\t", "\n", "'", '"', '\\', '%s', '%n', '$1', ';', ' ',
	'_', '-', '.', '..', '{', '}', '[', ']', ',', ':', 'null', '0', '-1', '9999999999');

# Byte-level mutations of a text (as UTF-8 bytes; the result may not be valid UTF-8).
sub mutate_bytes
{
	my ($s) = @_;
	utf8::encode($s) if utf8::is_utf8($s);
	for (1 .. 1 + int(rand(4)))
	{
		my $len = length($s);
		my $pos = $len ? int(rand($len)) : 0;
		my $r = rand();
		if ($r < 0.15 && $len) { substr($s, $pos, 1) = chr(ord(substr($s, $pos, 1)) ^ (1 << int(rand(8)))) }
		elsif ($r < 0.30) { substr($s, $pos, 0) = chr(int(rand(256))) }
		elsif ($r < 0.45 && $len) { substr($s, $pos, 1 + int(rand(8))) = '' }
		elsif ($r < 0.60)
		{
			my $bit = pick(@string_bits);
			utf8::encode($bit);
			substr($s, $pos, 0) = $bit;
		}
		elsif ($r < 0.70 && $len) { $s = substr($s, 0, $pos) }
		elsif ($r < 0.80 && $len)
		{
			my $span = substr($s, $pos, 1 + int(rand(16)));
			substr($s, $pos, 0) = $span x (1 + int(rand(rand() < 0.1 ? 5000 : 8)));
		}
		elsif ($r < 0.85) { $s = uc($s) }
		elsif ($r < 0.90) { $s = " $s " }
		else
		{
			my $other = pick(map { @$_ } values %seeds);
			$s = substr($s, 0, $pos) . substr($other, int(rand(length($other) || 1)));
		}
	}
	return $s;
}

# Structural mutations of a JSON value (decoded); hostile values are kept as JSON text in
# placeholders and put in place after encoding, so that numbers like 1e400 survive intact.
my @placeholders;
sub hostile
{
	push @placeholders, pick(@json_values);
	return "\x{e000}PH" . $#placeholders . "\x{e000}";
}

sub mutate_tree
{
	my ($v, $depth) = @_;
	my $r = rand();
	if (ref $v eq 'HASH')
	{
		my @keys = keys %$v;
		if ($r < 0.10) { delete $v->{ pick(@keys) } if @keys; return $v }
		if ($r < 0.15) { $v->{ pick('shipto', 'Lines', 'sku ', '', "\x{00e9}", 'qty', 'lines', 'extra') } = hostile(); return $v }
		if ($r < 0.20 && $depth > 0) { return hostile() }
		return $v unless @keys;
		my $k = pick(@keys);
		$v->{$k} = mutate_tree($v->{$k}, $depth + 1);
		return $v;
	}
	if (ref $v eq 'ARRAY')
	{
		if ($r < 0.10) { splice(@$v, int(rand(@$v)), 1) if @$v; return $v }
		if ($r < 0.15 && @$v) { push @$v, ($v->[0]) x pick(1, 2, 100) ; return $v }
		if ($r < 0.20) { push @$v, hostile(); return $v }
		if ($r < 0.25 && $depth > 0) { return hostile() }
		return $v unless @$v;
		my $i = int(rand(@$v));
		$v->[$i] = mutate_tree($v->[$i], $depth + 1);
		return $v;
	}
	# A scalar: a hostile value, a deeply nested one, or a mutated string.
	if ($r < 0.60) { return hostile() }
	if ($r < 0.65)
	{
		my $d = pick(10, 100, 1000, 5000);
		push @placeholders, ('[' x $d) . '1' . (']' x $d);
		return "\x{e000}PH" . $#placeholders . "\x{e000}";
	}
	if ($r < 0.70)
	{
		my $d = pick(10, 1000, 5000);
		push @placeholders, ('{"a":' x $d) . '1' . ('}' x $d);
		return "\x{e000}PH" . $#placeholders . "\x{e000}";
	}
	my $s = defined $v ? "$v" : '';
	$s = mutate_bytes($s);
	utf8::decode($s);    # stays bytes when not valid UTF-8: JSON::PP escapes them as latin-1
	return $s;
}

my $json = JSON::PP->new->canonical->allow_nonref;

sub mutate
{
	my ($kind, $seed) = @_;
	if ($seed =~ /^\s*[\[{]/ && rand() < 0.8)
	{
		my $tree = eval { $json->decode($seed) };
		if (defined $tree)
		{
			@placeholders = ();
			$tree = mutate_tree($tree, 0) for 1 .. 1 + int(rand(3));
			my $text = $json->encode($tree);
			$text =~ s/"\x{e000}PH(\d+)\x{e000}"/$placeholders[$1] \/\/ 'null'/ge;
			utf8::encode($text);
			$text = mutate_bytes($text) if rand() < 0.1;
			return $text;
		}
	}
	my $s = $seed;
	$s = pick(@string_bits) . $s if rand() < 0.05;
	return mutate_bytes($s);
}

# ----- the session -----------------------------------------------------------------------------

my @psql = ($opt{psql}, '-X', '-q', '-A', '-t', '-v', 'VERBOSITY=terse');
push @psql, '-h', $opt{host} if defined $opt{host};
push @psql, '-p', $opt{port} if defined $opt{port};
push @psql, '-U', $opt{user} if defined $opt{user};
push @psql, '-d', $opt{dbname};

open(my $saved, '>&', \*STDERR) or die;
open(STDERR, '>>', "$workdir/psql.log") or die;
my $pid = open2(my $out, my $in, @psql);
open(STDERR, '>&', $saved) or die;
$in->autoflush(1);

sub run_sql
{
	my ($sql) = @_;
	print {$in} "$sql;\n\\echo __R :SQLSTATE\n" or return undef;
	my @rows;
	while (defined(my $l = readline($out)))
	{
		chomp $l;
		return { state => $1, rows => \@rows } if $l =~ /^__R (\S+)$/;
		push @rows, $l;
	}
	return undef;
}

sub must
{
	my ($sql) = @_;
	my $r = run_sql($sql);
	die "fuzz.pl: set-up failed ($sql): see $workdir/psql.log\n" unless $r && $r->{state} eq '00000';
	return $r->{rows};
}

if (must(q{SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = 'fuzz'})->[0] eq '0')
{
	must("\\i $FindBin::Bin/setup.sql\nSELECT 1");
}
must(q{SET oms.tenant = 'fuzz'});
must(q{SET statement_timeout = '60s'});
my $fingerprint = must('SELECT fuzz.fingerprint()')->[0];

open(my $findings, '>', "$workdir/findings.txt") or die;
$findings->autoflush(1);
my (%tried, %outcome, @fail);
my $total = 0;
my $batches = 0;
my $t0 = time();
my $deadline = $t0 + $opt{seconds};

BATCH:
while (time() < $deadline)
{
	my (@k, @x);
	for (1 .. $opt{batch})
	{
		my $kind = pick(@kinds);
		my $input = mutate($kind, pick(@{ $seeds{$kind} }));
		utf8::encode($input) if utf8::is_utf8($input);
		push @k, $kind;
		push @x, $input;
	}
	my $sql = 'SELECT fuzz.run(ARRAY[' . join(',', map { "'$_'" } @k) . "]::text[], ARRAY["
	  . join(',', map { "'\\x" . unpack('H*', $_) . "'" } @x) . ']::bytea[])';
	my $r = run_sql($sql);
	$batches++;
	if (!$r || $r->{state} ne '00000')
	{
		my $what = !$r ? 'the connection was lost (backend crash?)' : "the batch failed with $r->{state}"
		  . ($r->{state} eq '57014' ? ' (statement_timeout: an input hangs)' : '');
		push @fail, $what;
		print {$findings} "$what; the batch's inputs:\n";
		print {$findings} "  $k[$_] \\x" . unpack('H*', $x[$_]) . "\n" for 0 .. $#k;
		last BATCH;
	}
	for my $i (0 .. $#k)
	{
		my $res = $r->{rows}[$i] // 'missing';
		my ($state) = split / /, $res, 2;
		$tried{ $k[$i] }++;
		$total++;
		my $class = $state eq '00000' ? 'accepted'
		  : $state =~ /^input:/ ? 'refused by PostgreSQL input'
		  : (grep { $_ eq $state } @{ $documented{ $k[$i] } }) ? $state
		  : 'UNDOCUMENTED';
		$outcome{ $k[$i] }{$class}++;
		if ($class eq 'UNDOCUMENTED')
		{
			push @fail, "$k[$i]: $res";
			print {$findings} "$k[$i] \\x" . unpack('H*', $x[$i]) . "\n  -> $res\n";
		}
	}
}
my $elapsed = time() - $t0;

if (!@fail || $fail[-1] !~ /connection was lost/)
{
	my $after = run_sql('SELECT fuzz.fingerprint()');
	if (!$after) { push @fail, 'the connection was lost' }
	elsif ($after->{rows}[0] ne $fingerprint)
	{
		push @fail, "data changed: before $fingerprint, after $after->{rows}[0]";
	}
	my $alive = run_sql('SELECT 1');
	push @fail, 'the connection is not usable at the end' unless $alive && $alive->{rows}[0] eq '1';
}
close($in);
waitpid($pid, 0);

printf "oms fuzz: %d inputs in %d batches, %.1f s (%.0f/s), seed %d, work files in %s\n", $total, $batches,
  $elapsed, $total / ($elapsed || 1), $opt{seed}, $workdir;
for my $kind (@kinds)
{
	my $o = $outcome{$kind} // {};
	printf "  %-14s %7d  %s\n", $kind, $tried{$kind} // 0, join(', ', map { "$_ $o->{$_}" } sort keys %$o);
}
printf "  inputs %d\n", $total;
printf "  undocumented %d\n", scalar(grep { !/connection|batch failed|data changed|not usable/ } @fail);
if (@fail)
{
	my %seen;
	print "FAILED: $_\n" for grep { !$seen{$_}++ } @fail[ 0 .. ($#fail < 29 ? $#fail : 29) ];
	print "findings: $workdir/findings.txt\n";
	exit(1);
}
print "PASSED: no crash, no hang, every error documented, nothing written\n";
exit(0);
