#!/usr/bin/perl
#
# stress.pl: the invariant stress test of oms.
#
# N clients (processes, each driving one psql session) run for T seconds a realistic mix of API
# calls against tenant "stress" (test/stress/setup.sql loads it when missing): orders shipped and
# click & collect, duplicate submissions of the same external_id (shared between clients, so they
# race), retries of a client's own orders, backorderable items, cart holds with short lives that
# the background worker expires, orders that take a cart's holds over, releases, cancellations,
# stock receipts, damages and counts. Every call is one statement in autocommit, as an application
# would send it; its outcome is classified by SQLSTATE. Expected refusals (OM001, OM002) are
# counted; any other error (a deadlock, a timeout, an internal error) fails the run.
#
# Each client logs every order acknowledged to it (external_id, order id, lines) to a file as
# soon as the call returns. At the end the run checks that:
#   - every acknowledged order is in the database, with the id the client saw and all its lines;
#     no order is there that no client was told of; one external_id never gave two ids;
#   - every acknowledged cancellation left the order cancelled;
#   - the cart holds expire: none is left once their time is up (the worker did it);
#   - the invariants of test/stress/check.sql hold (stock bounds, reserved = sum of reservations,
#     allocated lines reserved and others not, unique external ids, complete and legal history...).
# It prints the figures and exits non-zero on any failure.
#
# With --reconnect a client whose connection is lost (a server crash) reconnects until the end
# of the run and submits again the order whose outcome it did not learn, as a real client would;
# test/t/011_crash_during_load.pl uses it.
#
# Usage: stress.pl [--clients N] [--seconds T] [--seed S] [--workdir DIR] [--reconnect]
#                  [--host H] [--port P] [--dbname DB] [--user U]
# Connection defaults come from PGHOST, PGPORT, PGDATABASE, PGUSER.

use strict;
use warnings;

use FindBin;
use Getopt::Long;
use IPC::Open2;
use JSON::PP;
use POSIX qw(WNOHANG);
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);

my %opt = (
	clients => 8,
	seconds => 20,
	seed => int(time()) % 100000,
	host => $ENV{PGHOST},
	port => $ENV{PGPORT},
	dbname => $ENV{PGDATABASE} // 'postgres',
	user => $ENV{PGUSER},
	workdir => undef,
	reconnect => 0,
	psql => 'psql',
	hold_wait => 30,);
GetOptions(\%opt, 'clients=i', 'seconds=f', 'seed=i', 'host=s', 'port=i', 'dbname=s', 'user=s',
	'workdir=s', 'reconnect!', 'psql=s', 'hold_wait=i')
  or die "usage: stress.pl [--clients N] [--seconds T] [--seed S] [--workdir DIR] [--reconnect]\n";

my $workdir = $opt{workdir} // tempdir('oms-stress.XXXXXX', TMPDIR => 1, CLEANUP => 0);
mkdir $workdir unless -d $workdir;
my $json = JSON::PP->new->canonical;
$SIG{PIPE} = 'IGNORE';

my @psql = ($opt{psql}, '-X', '-q', '-A', '-t', '-v', 'VERBOSITY=terse');
push @psql, '-h', $opt{host} if defined $opt{host};
push @psql, '-p', $opt{port} if defined $opt{port};
push @psql, '-U', $opt{user} if defined $opt{user};
push @psql, '-d', $opt{dbname};

# The SQLSTATEs each operation may end with besides success; anything else is a failure.
my %allowed = (
	place => { OM001 => 1 },
	hold => { OM001 => 1 },
	release_hold => {},
	cancel => { '55000' => 1 },    # an order with something shipped
	adjust => { OM002 => 1 },
	set_stock => { OM002 => 1 },
	atp => {},
	# fulfilment and after (lifecycle): an order may have been cancelled, shipped, or lost its
	# lines meanwhile (55000), a line may have less open than asked (22023), a return may ask for
	# what is already on another one (OM005)
	release => { '55000' => 1 },
	pack => { '55000' => 1, OM004 => 1 },
	ship => { '55000' => 1 },
	deliver => { '55000' => 1 },
	cancel_line => { '55000' => 1, '22023' => 1 },
	return => { '55000' => 1, OM005 => 1 },
	receive_return => { OM005 => 1 },);

# ----- a psql session driven line by line -----------------------------------------------------

# Starts psql; its errors go to the client's log. Returns the session, or undef if it cannot
# run its first statement (server down).
sub session_open
{
	my ($id, $log) = @_;
	open(my $saved, '>&', \*STDERR) or die;
	open(STDERR, '>>', $log) or die "cannot open $log: $!";
	my ($out, $in);
	my $pid = open2($out, $in, @psql);
	open(STDERR, '>&', $saved) or die;
	$in->autoflush(1);
	my $s = { pid => $pid, in => $in, out => $out };
	my $r = run_sql($s,
		"SET oms.tenant = 'stress'; SET oms.actor = 'stress-client-$id'; SET statement_timeout = '60s';");
	if (!$r || $r->{state} ne '00000')
	{
		session_close($s);
		return undef;
	}
	return $s;
}

sub session_close
{
	my ($s) = @_;
	close($s->{in});
	close($s->{out});
	waitpid($s->{pid}, 0);
}

# Runs one statement; returns { state => SQLSTATE, rows => [...] }, or undef when the
# connection is gone (psql exits when it loses its server).
sub run_sql
{
	my ($s, $sql) = @_;
	print { $s->{in} } "$sql;\n\\echo __R :SQLSTATE\n" or return undef;
	my @rows;
	while (defined(my $l = readline($s->{out})))
	{
		chomp $l;
		return { state => $1, rows => \@rows } if $l =~ /^__R (\S+)$/;
		push @rows, $l;
	}
	return undef;
}

sub sql_lit
{
	my ($v) = @_;
	$v =~ s/'/''/g;
	return "'$v'";
}

# ----- one client ------------------------------------------------------------------------------

my @regular = map { sprintf('SKU-%02d', $_) } 1 .. 30;
my @hot = map { "HOT-$_" } 1 .. 4;
my @bo = map { "BO-$_" } 1 .. 6;
my @warehouses = qw(WH-1 WH-2 WH-3);
my @stores = qw(ST-1 ST-2 ST-3);

sub pick { return $_[ int(rand(@_)) ] }

sub distinct_skus
{
	my ($n, @pool) = @_;
	my %seen;
	my @out;
	while (@out < $n)
	{
		my $s = pick(@pool);
		push @out, $s unless $seen{$s}++;
	}
	return @out;
}

sub line { my ($sku, $qty) = @_; return { sku => $sku, qty => $qty, unit_price => 10 + length($sku) } }

sub client
{
	my ($id, $deadline) = @_;
	srand($opt{seed} * 1009 + $id);
	my $log = "$workdir/client.$id.log";
	open(my $ack, '>>', "$workdir/acks.$id") or die "cannot open acks: $!";
	$ack->autoflush(1);
	my %n;
	my $seq = 0;
	my @mine;       # [order id, payload] of orders acknowledged to this client
	my @carts;      # [cart, [skus]]
	my $pending;    # payload of an order whose outcome was lost with the connection
	my $gone = 0;   # the connection was lost during the last operation

	my $s = session_open($id, $log);
	die "client $id: cannot connect (see $log)\n" unless $s;

	# Runs an operation's statement, classifying its outcome; undef when the connection is lost.
	my $call = sub {
		my ($op, $sql) = @_;
		$n{"${op}_attempted"}++;
		my $r = run_sql($s, $sql);
		if (!$r)
		{
			$n{"${op}_lost"}++;
			$gone = 1;
			return undef;
		}
		if ($r->{state} eq '00000') { $n{"${op}_ok"}++ }
		elsif ($allowed{$op}{ $r->{state} }) { $n{"${op}_$r->{state}"}++ }
		else
		{
			$n{unexpected}++;
			$n{"unexpected_$op\_$r->{state}"}++;
			print {$ack} "# unexpected $r->{state} in $op: $sql\n";
		}
		return $r;
	};

	my $place = sub {
		my ($payload, $nlines) = @_;
		my $r = $call->('place', 'SELECT oms.place_order(' . sql_lit($json->encode($payload)) . ')');
		if (!$r)
		{
			$pending = $payload;
			return;
		}
		return unless $r->{state} eq '00000';
		my $oid = $r->{rows}[0];
		print {$ack} "order\t$payload->{channel}\t$payload->{external_id}\t$oid\t" . scalar(@{ $payload->{lines} }) . "\n";
		push @mine, [ $oid, $payload ];
		shift @mine if @mine > 200;
	};

	my %ops = (
		# An order shipped to a customer: 1 to 4 lines, sometimes a hot or a backorderable SKU.
		ship => sub {
			my @skus = distinct_skus(1 + int(rand(3)), @regular);
			push @skus, pick(@hot) if rand() < 0.25;
			push @skus, pick(@bo) if rand() < 0.15;
			$place->({ channel => pick('web', 'app'), external_id => "c$id-" . ++$seq,
				customer => { ref => "C$id-" . int(rand(100)), email => "c$id\@example.com" },
				ship_to => { country => pick('IT', 'RO'), city => 'Milano', postal_code => '20121' },
				lines => [ map { line($_, /^HOT/ ? 1 : 1 + int(rand(3))) } @skus ] });
		},
		# Click & collect at a store.
		pickup => sub {
			$place->({ channel => 'pos', external_id => "p$id-" . ++$seq, pickup => pick(@stores),
				lines => [ map { line($_, 1 + int(rand(2))) } distinct_skus(1 + int(rand(2)), @regular) ] });
		},
		# A shared external_id: clients race to submit the same order; only one may exist.
		duplicate => sub {
			my $k = int(rand(60));
			$place->({ channel => 'web', external_id => "D-$k", ship_to => { country => 'IT' },
				lines => [ line($regular[ $k % 30 ], 1 + $k % 3), line($hot[ $k % 4 ], 1) ] });
		},
		# A client retries one of its own orders (a timeout on its side): same id back.
		retry => sub {
			return unless @mine;
			my ($oid, $payload) = @{ pick(@mine) };
			my $r = $call->('place', 'SELECT oms.place_order(' . sql_lit($json->encode($payload)) . ')');
			return unless $r && $r->{state} eq '00000';
			if ($r->{rows}[0] ne $oid)
			{
				$n{unexpected}++;
				$n{idempotency_violations}++;
				print {$ack} "# retry of $payload->{external_id} gave order $r->{rows}[0], first gave $oid\n";
			}
			print {$ack} "order\t$payload->{channel}\t$payload->{external_id}\t$r->{rows}[0]\t" . scalar(@{ $payload->{lines} }) . "\n";
		},
		# A shopper puts 1 to 3 SKUs in a cart: holds that live 1 to 4 seconds.
		hold => sub {
			my $cart = "cart-$id-" . ++$seq;
			my @skus = distinct_skus(1 + int(rand(3)), @regular, @hot);
			my @held;
			for my $sku (@skus)
			{
				my $ttl = 1 + int(rand(4));
				my $r = $call->('hold', "SELECT held_qty FROM oms.hold('$cart', '$sku', " . (1 + int(rand(2))) . ", NULL, '$ttl seconds')");
				return unless $r;
				push @held, $sku if $r->{state} eq '00000';
			}
			push @carts, [ $cart, \@held ] if @held;
		},
		# The shopper checks out: the order takes the cart's holds over (some have expired).
		checkout => sub {
			return unless @carts;
			my ($cart, $skus) = @{ splice(@carts, int(rand(@carts)), 1) };
			$place->({ channel => 'web', external_id => "k$id-" . ++$seq, cart => $cart,
				ship_to => { country => 'IT' }, lines => [ map { line($_, 1) } @$skus ] });
		},
		# The shopper empties the cart.
		empty_cart => sub {
			return unless @carts;
			my ($cart) = @{ splice(@carts, int(rand(@carts)), 1) };
			$call->('release_hold', "SELECT oms.release_hold('$cart')");
		},
		cancel => sub {
			return unless @mine;
			my ($oid) = @{ splice(@mine, int(rand(@mine)), 1) };
			my $r = $call->('cancel', "SELECT oms.cancel_order($oid, 'stress: customer request')");
			print {$ack} "cancel\t$oid\n" if $r && $r->{state} eq '00000';
		},
		# Receipts keep stock flowing (hot SKUs too); damages take some away.
		adjust => sub {
			my $sku = pick(@regular, @hot, @hot, @bo);
			my $delta = rand() < 0.6 ? 1 + int(rand($sku =~ /^SKU/ ? 10 : 3)) : -(1 + int(rand(3)));
			$call->('adjust', "SELECT oms.adjust_stock('$sku', '" . pick(@warehouses) . "', $delta, 'stress: "
				  . ($delta > 0 ? 'receipt' : 'damaged') . "')");
		},
		# A store counts its shelf: refused when the count is below what orders reserved there.
		set_stock => sub {
			$call->('set_stock', "SELECT oms.set_stock('" . pick(@regular) . "', '" . pick(@stores) . "', "
				  . (2 + int(rand(20))) . ", 'stress: cycle count')");
		},
		atp => sub {
			$call->('atp', "SELECT oms.atp('" . pick(@regular, @hot) . "')");
		},
		# The warehouse: release an order, pack what was released at each location, ship the
		# packages, and (most of the time) deliver them.
		fulfil => sub {
			return unless @mine;
			my ($oid) = @{ pick(@mine) };
			my $r = $call->('release', "SELECT oms.release_order($oid)");
			return unless $r && $r->{state} eq '00000';
			$r = $call->('pack', "SELECT oms.pack($oid, x.code) FROM (SELECT DISTINCT loc.code FROM oms.order_lines l"
				  . " JOIN oms.locations loc ON loc.tenant_id = l.tenant_id AND loc.id = l.location_id"
				  . " WHERE l.tenant_id = oms.current_tenant_id() AND l.order_id = $oid"
				  . " AND l.state OPERATOR(oms.=) 'released' ORDER BY 1) x");
			return unless $r && $r->{state} eq '00000';
			for my $sid (@{ $r->{rows} })
			{
				my $s2 = $call->('ship', "SELECT oms.ship($sid, 'dhl.express', 'TRK-$sid')");
				return unless $s2;
				$call->('deliver', "SELECT oms.deliver($sid)") if $s2->{state} eq '00000' && rand() < 0.8;
			}
		},
		# Before release, the customer drops one unit of a line.
		cancel_line => sub {
			return unless @mine;
			my ($oid) = @{ pick(@mine) };
			$call->('cancel_line', "SELECT oms.cancel_line($oid, 1, 1, 'stress: one less')");
		},
		# After delivery, one unit comes back and is restocked.
		return => sub {
			return unless @mine;
			my ($oid) = @{ pick(@mine) };
			my $r = $call->('return', "SELECT oms.create_return(l.order_id, jsonb_build_array(jsonb_build_object("
				  . "'line_no', l.line_no, 'qty', 1)), 'stress: too small') FROM oms.order_lines l"
				  . " WHERE l.tenant_id = oms.current_tenant_id() AND l.order_id = $oid"
				  . " AND l.qty_shipped > l.qty_returned ORDER BY l.line_no LIMIT 1");
			return unless $r && $r->{state} eq '00000' && @{ $r->{rows} } && $r->{rows}[0] ne '';
			my $rma = $r->{rows}[0];
			$call->('receive_return', "SELECT oms.receive_return($rma, (SELECT jsonb_agg(jsonb_build_object("
				  . "'line_no', rl.line_no, 'qty', rl.qty, 'disposition', 'restock')) FROM oms.return_lines rl"
				  . " WHERE rl.tenant_id = oms.current_tenant_id() AND rl.return_id = $rma))");
		},);
	my @mix = (
		[ ship => 30 ], [ pickup => 8 ], [ duplicate => 8 ], [ retry => 4 ], [ hold => 10 ],
		[ checkout => 6 ], [ empty_cart => 3 ], [ cancel => 8 ], [ adjust => 12 ], [ set_stock => 3 ],
		[ atp => 6 ], [ fulfil => 10 ], [ cancel_line => 3 ], [ return => 3 ]);
	my $total = 0;
	$total += $_->[1] for @mix;

	while (time() < $deadline)
	{
		if (!$s)
		{
			# The server is gone (crash): reconnect until the end of the run, then submit again
			# the order whose outcome was lost.
			last unless $opt{reconnect};
			$s = session_open($id, $log);
			if (!$s)
			{
				sleep(0.2);
				next;
			}
			$n{reconnects}++;
			@carts = ();
			if ($pending)
			{
				my $p = $pending;
				$pending = undef;
				$n{resubmitted}++;
				$place->($p);
			}
			next;
		}
		my $x = rand($total);
		my $op;
		for my $m (@mix)
		{
			$op = $m->[0];
			last if ($x -= $m->[1]) < 0;
		}
		$ops{$op}->();
		if ($gone)
		{
			$gone = 0;
			session_close($s);
			$s = undef;
		}
	}
	session_close($s) if $s;
	open(my $f, '>', "$workdir/stats.$id") or die;
	print {$f} "$_ $n{$_}\n" for sort keys %n;
	close($f);
	exit(0);
}

# ----- the run ---------------------------------------------------------------------------------

sub psql_run
{
	my (@args) = @_;
	my $pid = open(my $fh, '-|') // die "fork: $!";
	if ($pid == 0)
	{
		open(STDERR, '>&', \*STDOUT) or die;
		exec(@psql, '-v', 'ON_ERROR_STOP=1', @args) or die "cannot run psql: $!";
	}
	my $out = do { local $/; <$fh> } // '';
	close($fh);
	die "psql failed: $out\n" if $?;
	return $out;
}

my $has = psql_run('-c', "SELECT count(*) FROM oms.tenants WHERE code = 'stress'");
psql_run('-f', "$FindBin::Bin/setup.sql") if $has =~ /^0/m;

my $start = time();
my $deadline = $start + $opt{seconds};
my %kids;
for my $id (1 .. $opt{clients})
{
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		client($id, $deadline);
	}
	$kids{$pid} = $id;
}
my $client_failures = 0;
while (%kids)
{
	my $pid = waitpid(-1, 0);
	last if $pid < 0;
	next unless exists $kids{$pid};
	if ($? != 0)
	{
		print "client $kids{$pid} failed (exit $?); see $workdir/client.$kids{$pid}.log\n";
		$client_failures++;
	}
	delete $kids{$pid};
}
my $elapsed = time() - $start;

# Figures of all clients.
my %n;
for my $id (1 .. $opt{clients})
{
	open(my $f, '<', "$workdir/stats.$id") or next;
	while (<$f>)
	{
		my ($k, $v) = split;
		$n{$k} += $v;
	}
}

# What the clients were told: external_id -> order id, lines; cancellations.
my (%acked, %lines, %cancelled, @notes);
my ($acks, $ack_conflicts) = (0, 0);
for my $id (1 .. $opt{clients})
{
	open(my $f, '<', "$workdir/acks.$id") or next;
	while (<$f>)
	{
		chomp;
		if (/^#/) { push @notes, "client $id: $_"; next; }
		my @f = split /\t/;
		if ($f[0] eq 'order')
		{
			my $key = "$f[1]/$f[2]";
			$acks++;
			if (exists $acked{$key} && $acked{$key} ne $f[3])
			{
				$ack_conflicts++;
				push @notes, "external_id $key acknowledged as orders $acked{$key} and $f[3]";
			}
			$acked{$key} = $f[3];
			$lines{$key} = $f[4];
		}
		elsif ($f[0] eq 'cancel') { $cancelled{ $f[1] } = 1 }
	}
}

# What the database has.
my %db;
for (split /\n/, psql_run('-c', q{
SELECT c.code || '/' || o.external_id, o.id, o.state,
	   (SELECT count(*) FROM oms.order_lines l WHERE l.tenant_id = o.tenant_id AND l.order_id = o.id)
  FROM oms.orders o JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
 WHERE o.tenant_id = (SELECT id FROM oms.tenants WHERE code = 'stress')}))
{
	my ($key, $oid, $state, $nl) = split /\|/;
	$db{$key} = [ $oid, $state, $nl ];
}
my ($missing, $wrong, $unacked, $not_cancelled) = (0, 0, 0, 0);
for my $key (sort keys %acked)
{
	my $d = $db{$key};
	if (!$d) { $missing++; push @notes, "acknowledged order $key (id $acked{$key}) is missing"; next; }
	if ($d->[0] ne $acked{$key} || $d->[2] != $lines{$key})
	{
		$wrong++;
		push @notes, "order $key: acknowledged as id $acked{$key} with $lines{$key} lines, is id $d->[0] with $d->[2]";
	}
}
my %db_by_id = map { $db{$_}[0] => $db{$_}[1] } keys %db;
for my $oid (sort keys %cancelled)
{
	next if ($db_by_id{$oid} // '') eq 'cancelled';
	$not_cancelled++;
	push @notes, "order $oid: cancellation acknowledged, state is " . ($db_by_id{$oid} // 'missing');
}
$unacked = grep { !exists $acked{$_} } keys %db;

# Holds expire: every hold lives at most 4 s, so once the clients stop, the worker must delete
# them all within a few of its rounds. A hold still there 2 s after its time is a failure.
my ($expired, $live_holds) = (0, 0);
my $t0 = time();
while (1)
{
	my $r = psql_run('-c', q{SELECT count(*) FILTER (WHERE expires_at < pg_catalog.now() - interval '2 seconds'),
		count(*) FROM oms.reservations WHERE cart IS NOT NULL});
	chomp $r;
	($expired, $live_holds) = split /\|/, $r;
	last if $live_holds == 0 || time() - $t0 > $opt{hold_wait};
	sleep(0.5);
}

my @checks = map { [ split /\|/, $_, 3 ] } split /\n/, psql_run('-f', "$FindBin::Bin/check.sql");

# ----- report ----------------------------------------------------------------------------------

my $distinct = scalar keys %acked;
my $place_ok = $n{place_ok} // 0;
my $ops = 0;
$ops += $n{$_} for grep { /_attempted$/ } keys %n;
my %fig = (
	clients => $opt{clients},
	seconds => sprintf('%.1f', $elapsed),
	seed => $opt{seed},
	operations => $ops,
	operations_per_second => sprintf('%.0f', $ops / ($elapsed || 1)),
	orders_attempted => $n{place_attempted} // 0,
	orders_committed => $place_ok,
	orders_new => $distinct,
	duplicates_collapsed => $acks - $distinct,
	orders_refused_om001 => $n{place_OM001} // 0,
	orders_outcome_lost => $n{place_lost} // 0,
	orders_resubmitted => $n{resubmitted} // 0,
	cancellations => $n{cancel_ok} // 0,
	holds_placed => $n{hold_ok} // 0,
	holds_refused_om001 => $n{hold_OM001} // 0,
	releases => $n{release_hold_ok} // 0,
	orders_released => $n{release_ok} // 0,
	shipments => $n{ship_ok} // 0,
	deliveries => $n{deliver_ok} // 0,
	lines_cancelled => $n{cancel_line_ok} // 0,
	returns_received => $n{receive_return_ok} // 0,
	stock_changes => ($n{adjust_ok} // 0) + ($n{set_stock_ok} // 0),
	stock_changes_refused_om002 => ($n{adjust_OM002} // 0) + ($n{set_stock_OM002} // 0),
	reconnects => $n{reconnects} // 0,
	orders_in_database => scalar(keys %db),
	holds_left => $live_holds,);

my @fail;
push @fail, "$client_failures client(s) failed" if $client_failures;
push @fail, "$n{unexpected} unexpected outcome(s): " . join(', ', map { "$_=$n{$_}" } sort grep { /^unexpected_|^idempotency/ } keys %n)
  if $n{unexpected};
push @fail, "$ack_conflicts external_id(s) acknowledged with two order ids" if $ack_conflicts;
push @fail, "$missing acknowledged order(s) missing" if $missing;
push @fail, "$wrong acknowledged order(s) not as acknowledged" if $wrong;
push @fail, "$not_cancelled acknowledged cancellation(s) not in the database" if $not_cancelled;
# An order nobody was told of can only be one whose answer was lost with a connection.
push @fail, "$unacked order(s) in the database that no client was told of"
  if $unacked > ($n{place_lost} // 0) - ($n{resubmitted} // 0);
push @fail, "$expired expired hold(s) still there after $opt{hold_wait} s" if $expired;
push @fail, "no order was placed" if $place_ok == 0;

printf "oms stress: %d clients, %.1f s, seed %d, work files in %s\n", $opt{clients}, $elapsed, $opt{seed}, $workdir;
print "figures:\n";
printf "  %-30s %s\n", $_, $fig{$_} for qw(operations operations_per_second orders_attempted orders_committed
  orders_new duplicates_collapsed orders_refused_om001 orders_outcome_lost orders_resubmitted cancellations
  holds_placed holds_refused_om001 releases orders_released shipments deliveries lines_cancelled returns_received
  stock_changes stock_changes_refused_om002 reconnects
  orders_in_database holds_left);
print "checks:\n";
printf "  %-30s %s\n", 'acknowledged_orders_missing', $missing;
printf "  %-30s %s\n", 'acknowledged_orders_wrong', $wrong;
printf "  %-30s %s\n", 'external_id_two_ids', $ack_conflicts;
printf "  %-30s %s\n", 'cancellations_missing', $not_cancelled;
printf "  %-30s %s\n", 'orders_not_acknowledged', $unacked;
printf "  %-30s %s\n", 'expired_holds_left', $expired;
printf "  %-30s %s\n", 'unexpected_errors', $n{unexpected} // 0;
for my $c (@checks)
{
	printf "  %-30s %s\n", $c->[0], $c->[1];
	if ($c->[1] != 0)
	{
		push @fail, "invariant $c->[0]: $c->[1] violation(s): $c->[2]";
	}
}
print "  note: $_\n" for @notes[ 0 .. ($#notes < 19 ? $#notes : 19) ];
if (@fail)
{
	print "FAILED: $_\n" for @fail;
	exit(1);
}
print "PASSED: every invariant holds\n";
exit(0);
