# Safe install (the lessons of CVE-2022-2625 and CVE-2023-39417): an untrusted role that can
# create objects in schema public (as in databases created before PostgreSQL 15) plants functions,
# operators and views named like built-ins and like oms's own objects, each of which records that
# it ran and tries to make its author superuser. A superuser then installs oms with public in
# search_path, uses it, an application role uses it with public FIRST in its search_path, and the
# background worker works in that database. None of the planted objects may ever run.
# Then: the same role, allowed to create schemas, pre-creates schema "oms" with a planted
# function: CREATE EXTENSION oms must refuse to install into it. Temporary tables named like
# oms's tables must not capture its queries. And the install script keeps its promises (no
# CREATE OR REPLACE, no IF NOT EXISTS, no @extschema@, every SQL function pinning search_path).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('safe_install');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'oms'
oms.database = 'shop'
oms.worker_naptime = 1
lc_messages = 'C'
});
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE ROLE mallory LOGIN;
CREATE ROLE app LOGIN;
CREATE DATABASE shop;
CREATE DATABASE shop2;
GRANT CREATE ON DATABASE shop2 TO mallory;
});
# A database as PostgreSQL 14 and older made them: everybody may create objects in public.
$node->safe_psql('shop', 'GRANT CREATE ON SCHEMA public TO PUBLIC');

# Mallory's traps: each planted object calls public.trap(), which logs who ran it and tries to
# make mallory superuser (which works only when a superuser runs it).
my $traps = q{
CREATE TABLE public.trap_log (who text, what text);
GRANT INSERT, SELECT ON public.trap_log TO PUBLIC;
CREATE FUNCTION public.trap(what text) RETURNS void LANGUAGE plpgsql AS $t$
BEGIN
	INSERT INTO public.trap_log VALUES (current_user, what);
	BEGIN
		EXECUTE 'ALTER ROLE mallory SUPERUSER';
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
END $t$;
-- built-ins, with the same or a better-matching signature
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('now()'); RETURN pg_catalog.now(); END $t$;
CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('format(text, text)'); RETURN $1; END $t$;
CREATE FUNCTION public.format(text, text, text) RETURNS text LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('format(text, text, text)'); RETURN $1; END $t$;
CREATE FUNCTION public.length(text) RETURNS int LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('length(text)'); RETURN 1; END $t$;
CREATE FUNCTION public.left(text, int) RETURNS text LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('left(text, int)'); RETURN $1; END $t$;
CREATE FUNCTION public.btrim(text) RETURNS text LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('btrim(text)'); RETURN $1; END $t$;
CREATE FUNCTION public.upper(text) RETURNS text LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('upper(text)'); RETURN $1; END $t$;
CREATE FUNCTION public.jsonb_typeof(jsonb) RETURNS text LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('jsonb_typeof(jsonb)'); RETURN pg_catalog.jsonb_typeof($1); END $t$;
CREATE FUNCTION public.jsonb_array_length(jsonb) RETURNS int LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('jsonb_array_length(jsonb)'); RETURN pg_catalog.jsonb_array_length($1); END $t$;
CREATE FUNCTION public.set_config(text, text, boolean) RETURNS text LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('set_config'); RETURN $2; END $t$;
CREATE FUNCTION public.current_setting(text, boolean) RETURNS text LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('current_setting'); RETURN NULL; END $t$;
-- operators: text = text (same as the built-in), char = text and int8 = int4 (better matches than
-- the built-ins, which need a cast), timestamptz < timestamptz, text ~ text
CREATE FUNCTION public.trap_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('= (text, text)'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $t$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.trap_eq);
CREATE FUNCTION public.trap_bpchar_eq(character, text) RETURNS boolean LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('= (char, text)'); RETURN $1::text OPERATOR(pg_catalog.=) $2; END $t$;
CREATE OPERATOR public.= (LEFTARG = character, RIGHTARG = text, FUNCTION = public.trap_bpchar_eq);
CREATE FUNCTION public.trap_int_eq(bigint, int) RETURNS boolean LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('= (bigint, int)'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $t$;
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = int, FUNCTION = public.trap_int_eq);
CREATE FUNCTION public.trap_lt(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('< (timestamptz, timestamptz)'); RETURN $1 OPERATOR(pg_catalog.<) $2; END $t$;
CREATE OPERATOR public.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = public.trap_lt);
CREATE FUNCTION public.trap_re(text, text) RETURNS boolean LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('~ (text, text)'); RETURN $1 OPERATOR(pg_catalog.~) $2; END $t$;
CREATE OPERATOR public.~ (LEFTARG = text, RIGHTARG = text, FUNCTION = public.trap_re);
-- oms's own names
CREATE FUNCTION public.current_tenant_id() RETURNS int LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('current_tenant_id()'); RETURN 1; END $t$;
CREATE FUNCTION public._actor() RETURNS text LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('_actor()'); RETURN 'x'; END $t$;
CREATE FUNCTION public._item_id(int, text) RETURNS int LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('_item_id'); RETURN 1; END $t$;
CREATE FUNCTION public.atp(text, text) RETURNS bigint LANGUAGE plpgsql AS $t$ BEGIN PERFORM public.trap('atp'); RETURN 0; END $t$;
CREATE VIEW public.tenants AS SELECT 1 AS id, 'default'::text AS code FROM public.trap('tenants view') t;
CREATE VIEW public.orders AS SELECT 1::bigint AS id FROM public.trap('orders view') t;
CREATE VIEW public.stock AS SELECT 1 AS item_id FROM public.trap('stock view') t;
CREATE VIEW public.reservations AS SELECT 1 AS item_id FROM public.trap('reservations view') t;
CREATE VIEW public.items AS SELECT 1 AS id, 'SKU-1'::text AS sku FROM public.trap('items view') t;
};
$node->safe_psql('shop', $traps, extra_params => [ '-U', 'mallory' ]);

# The superuser installs and sets up with the default search_path ("$user", public).
$node->safe_psql(
	'shop', q{
SHOW search_path;
CREATE EXTENSION oms;
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web', 'EUR');
INSERT INTO oms.locations (code, kind, name, can_pickup) VALUES ('WH', 'warehouse', 'Warehouse', true);
INSERT INTO oms.items (sku, name) VALUES ('SKU-1', 'One');
SELECT oms.set_stock('SKU-1', 'WH', 100, 'initial count');
SELECT oms.adjust_stock('SKU-1', 'WH', 5, 'receipt');
SELECT oms.place_order('{"channel": "web", "external_id": "A-1", "ship_to": {"country": "IT"}, "lines": [{"sku": "SKU-1", "qty": 2, "unit_price": 10}]}');
SELECT oms.cancel_order((SELECT id FROM oms.orders WHERE external_id = 'A-1'), 'test');
SELECT oms.atp('SKU-1'), oms.atp('SKU-1', 'WH');
SELECT count(*) FROM oms.check_stock_invariants();
GRANT USAGE ON SCHEMA oms TO app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA oms TO app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA oms TO app;
ALTER ROLE app SET search_path = public, oms;
SELECT oms.grant_tenant('app', 'default');
});

# The application, with public first in its search_path, and temporary tables named like oms's.
$node->safe_psql(
	'shop', q{
SHOW search_path;
CREATE TEMP TABLE orders (id bigint, tenant_id int, channel_id int, external_id text);
CREATE TEMP TABLE stock (tenant_id int, item_id int, location_id int, on_hand bigint, reserved bigint);
CREATE TEMP TABLE reservations (tenant_id int, id bigint, item_id int, location_id int, qty int, cart text);
CREATE TEMP TABLE items (tenant_id int, id int, sku text);
CREATE TEMP TABLE tenants (id int, code text);
SELECT oms.place_order('{"channel": "web", "external_id": "B-1", "pickup": "WH", "customer": {"email": "a@example.com"}, "lines": [{"sku": "SKU-1", "qty": 3, "unit_price": 10}]}');
SELECT oms.place_order('{"channel": "web", "external_id": "B-1", "pickup": "WH", "lines": [{"sku": "SKU-1", "qty": 3, "unit_price": 10}]}');
SELECT * FROM oms.hold('cart-1', 'SKU-1', 1, NULL, '1 second');
SELECT oms.release_hold('cart-1');
SELECT * FROM oms.hold('cart-2', 'SKU-1', 2, NULL, '1 second');
SELECT oms.atp('SKU-1');
SELECT oms.transition('allocated'::oms.line_state, 'release');
SELECT count(*) FROM orders UNION ALL SELECT count(*) FROM stock UNION ALL SELECT count(*) FROM reservations;
}, extra_params => [ '-U', 'app' ]);

is($node->safe_psql('shop', q{SELECT count(*) FROM oms.orders}), '2', 'both orders are in oms.orders');
ok($node->poll_query_until('shop', q{SELECT NOT EXISTS (SELECT 1 FROM oms.reservations WHERE cart IS NOT NULL)}),
	'the worker expired the hold in that database');
is($node->safe_psql('shop', q{SELECT oms.atp('SKU-1')}), '102', 'ATP: 105 on hand - 3 reserved by B-1');

is($node->safe_psql('shop', q{SELECT coalesce(string_agg(who || ': ' || what, ', '), '') FROM public.trap_log}),
	'', 'no planted function, operator or view ever ran');
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}),
	'f', 'mallory is not superuser');

# Every SQL and PL/pgSQL function of oms pins its search_path (C functions that run no SQL need
# not; nor the procedure oms.run_job, which commits and so cannot have a SET clause: it names
# every object with its schema, and pg_catalog, searched first, resolves its operators); none of
# them puts public or $user in it.
is( $node->safe_psql(
		'shop', q{
SELECT coalesce(string_agg(p.oid::regprocedure::text, ', '), '')
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'oms'::regnamespace AND l.lanname IN ('sql', 'plpgsql')
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
   AND NOT (p.prokind = 'p' AND p.proname = 'run_job')}),
	'', 'every SQL and PL/pgSQL function of oms pins search_path');
is( $node->safe_psql(
		'shop', q{
SELECT coalesce(string_agg(DISTINCT c, ', '), '')
  FROM pg_proc p, unnest(p.proconfig) c
 WHERE p.pronamespace = 'oms'::regnamespace AND c LIKE 'search_path=%'
   AND (c LIKE '%public%' OR c LIKE '%$user%')}),
	'', 'no pinned search_path includes public or $user');

# The install script itself.
my $extdir = $node->config_data('--sharedir') . '/extension';
my ($version) = slurp_file("$extdir/oms.control") =~ /^default_version\s*=\s*'([^']+)'/m;
my $script = slurp_file("$extdir/oms--$version.sql");
unlike($script, qr/\bCREATE\s+OR\s+REPLACE\b/i, 'the install script has no CREATE OR REPLACE');
unlike($script, qr/\b(?:CREATE\b[^;(]*|ADD\s+COLUMN\s+)IF\s+NOT\s+EXISTS\b/i, 'the install script has no CREATE ... IF NOT EXISTS');
unlike($script, qr/\@extschema\@/, 'the install script does not use @extschema@');

#
# Mallory pre-creates schema oms, with a function named like a built-in that oms's functions
# would find first: CREATE EXTENSION must refuse the schema.
#
$node->safe_psql(
	'shop2', q{
CREATE SCHEMA oms;
CREATE TABLE oms.trap_log (who text, what text);
GRANT USAGE ON SCHEMA oms TO PUBLIC;
GRANT INSERT, SELECT ON oms.trap_log TO PUBLIC;
CREATE FUNCTION oms.length(text) RETURNS int LANGUAGE plpgsql AS $t$
BEGIN
	INSERT INTO oms.trap_log VALUES (current_user, 'oms.length');
	BEGIN EXECUTE 'ALTER ROLE mallory SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
	RETURN 1;
END $t$;
}, extra_params => [ '-U', 'mallory' ]);
my ($rc, $out, $err) = $node->psql('shop2', 'CREATE EXTENSION oms');
isnt($rc, 0, 'CREATE EXTENSION oms fails when schema oms belongs to someone else');
like($err, qr/schema "oms" already exists and is not safe to install into: it belongs to role mallory/,
	'the error says whose schema it is');
is($node->safe_psql('shop2', q{SELECT count(*) FROM pg_extension WHERE extname = 'oms'}),
	'0', 'oms is not installed there');
is($node->safe_psql('shop2', q{SELECT count(*) FROM oms.trap_log}), '0', 'the planted function did not run');

# The superuser's own empty schema is fine; a non-empty one is not.
$node->safe_psql('postgres', 'CREATE DATABASE shop3');
($rc, $out, $err) = $node->psql('shop3', 'CREATE SCHEMA oms; CREATE TABLE oms.t (a int); CREATE EXTENSION oms');
like($err, qr/schema "oms" already exists and is not safe to install into: it is not empty/,
	'a schema oms with objects in it is refused');
is($node->safe_psql('shop3', 'DROP TABLE oms.t; CREATE EXTENSION oms; SELECT count(*) FROM oms.tenants'),
	'1', 'an empty schema oms of the installing role is accepted');
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}),
	'f', 'mallory is still not superuser');
$node->stop;

done_testing();
