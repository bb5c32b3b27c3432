# Upgrade: a database created at the previous release (0.1.0, sql/oms--0.1.0.sql as released) with
# data in it, then ALTER EXTENSION oms UPDATE, must equal a fresh CREATE EXTENSION oms of the
# current version, object for object (test/upgrade/describe.sql: functions with their whole
# definitions, tables with columns, constraints, indexes, triggers, policies, privileges and
# comments, views, types, sequences, pg_dump's list, initial privileges), keep every row, and work:
# a new order is placed, released, packed and shipped, and the stock invariants hold.
# When this test fails after a change to sql/parts, its output lists the lines that differ:
# "fresh" lines are what the upgrade script (sql/oms--A--B.sql) still lacks.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{OMS_ROOT} or die "OMS_ROOT is not set";
my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'oms'
oms.database = 'upgraded'
lc_messages = 'C'
timezone = 'UTC'
});
$node->start;

my $control = slurp_file($node->config_data('--sharedir') . '/extension/oms.control');
my ($current) = $control =~ /^default_version\s*=\s*'([^']+)'/m;
my $previous = '0.1.0';
ok($current, "the control file names the current version ($current)");

$node->safe_psql('postgres', 'CREATE DATABASE upgraded; CREATE DATABASE fresh;');

# The previous release, with data.
$node->safe_psql('upgraded', "CREATE EXTENSION oms VERSION '$previous'");
is($node->safe_psql('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'oms'}),
	$previous, "installed at $previous");
my ($rc, $out, $err) = $node->psql('upgraded', undef,
	extra_params => [ '-v', 'ON_ERROR_STOP=1', '-f', "$root/test/upgrade/data.sql" ]);
is($rc, 0, 'the data loads under the previous version') or diag($err);

# What the data looks like, to compare after the update.
my $snapshot = q{
SET oms.tenant = 'shop';
SELECT 'order', external_id, state, total, net_total, tax_total FROM oms.orders ORDER BY external_id;
SELECT 'line', o.external_id, l.line_no, l.state, l.qty, l.qty_shipped, l.qty_returned, l.gross
  FROM oms.order_lines l JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id ORDER BY 2, 3;
SELECT 'stock', i.sku, lo.code, s.on_hand, s.reserved FROM oms.stock s
  JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id
  JOIN oms.locations lo ON lo.tenant_id = s.tenant_id AND lo.id = s.location_id ORDER BY 2, 3;
SELECT 'counts', (SELECT count(*) FROM oms.reservations), (SELECT count(*) FROM oms.events),
	   (SELECT count(*) FROM oms.order_history), (SELECT count(*) FROM oms.invoices),
	   (SELECT count(*) FROM oms.payments), (SELECT count(*) FROM oms.purchase_orders),
	   (SELECT count(*) FROM oms.stock_movements), (SELECT count(*) FROM oms.returns);
SELECT 'invoice', kind, number, gross FROM oms.invoices ORDER BY id;
};
my $before = $node->safe_psql('upgraded', $snapshot);
like($before, qr/order\|U-1\|/, 'the snapshot has the data');

# The update.
($rc, $out, $err) = $node->psql('upgraded', 'ALTER EXTENSION oms UPDATE');
is($rc, 0, "ALTER EXTENSION oms UPDATE from $previous") or diag($err);
is($node->safe_psql('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'oms'}),
	$current, "now at $current");
is($node->safe_psql('upgraded', $snapshot), $before, 'every row is kept as it was');

# A fresh install of the current version, and the comparison.
$node->safe_psql('fresh', 'CREATE EXTENSION oms');
my @describe = ('-X', '-f', "$root/test/upgrade/describe.sql");
my (undef, $upgraded) = $node->psql('upgraded', undef, extra_params => \@describe);
my (undef, $fresh) = $node->psql('fresh', undef, extra_params => \@describe);
# Multi-line facts (function and view definitions) are compared as a whole: split on the lines
# that begin a fact.
my $facts = qr/^(?=(?:member|function|relation|column|constraint|index|trigger|policy|view|sequence|type|schema|operator|cast|config|initprivs|default_acl) )/m;
my %u = map { $_ => 1 } split $facts, $upgraded;
my %f = map { $_ => 1 } split $facts, $fresh;
my @only_fresh = sort grep { !$u{$_} } keys %f;
my @only_upgraded = sort grep { !$f{$_} } keys %u;
ok(scalar(keys %f) > 1000, 'the description covers the extension (' . scalar(keys %f) . ' facts)');
ok(!@only_fresh && !@only_upgraded, 'the upgraded database equals a fresh install')
  or diag("only in the fresh install (missing from the upgrade script):\n"
	  . join('', map { "  + $_" } @only_fresh)
	  . "only in the upgraded database (left over or different):\n"
	  . join('', map { "  - $_" } @only_upgraded));

# It works: a new order through its life, and the invariants.
my $walk = $node->safe_psql(
	'upgraded', q{
SET oms.tenant = 'shop';
SELECT oms.place_order('{"channel": "web", "external_id": "U-9", "ship_to": {"country": "IT", "city": "Milano"},
	"lines": [{"sku": "TEE", "qty": 2, "unit_price": 24.99}]}') AS o \gset
SELECT oms.authorize_payment(:o, 49.98, 'psp-9') > 0;
SELECT oms.release_order(:o);
SELECT oms.ship(oms.pack(:o, 'WH-1'), 'brt.standard', 'BRT-9');
SELECT state FROM oms.orders WHERE id = :o;
SELECT count(*) FROM oms.check_stock_invariants_all();
});
is($walk, "t\nreleased\nshipped\nshipped\n0", 'a new order is placed, released and shipped; the invariants hold');

# Updating again finds nothing to do.
($rc, $out, $err) = $node->psql('upgraded', 'ALTER EXTENSION oms UPDATE');
like($err, qr/already installed|^$/, 'a second update does nothing');

$node->stop;
done_testing();
