-- oms 0.1.0 as released (frozen from sql/parts at commit 4faf564). Never edit this file: changes go
-- into the upgrade script sql/oms--0.1.0--0.2.0.sql and into sql/parts (the next version).
\echo Use "CREATE EXTENSION oms" to load this file. \quit

-- ===== sql/parts/00_schema.sql
-- Schema oms is created by CREATE EXTENSION (oms.control: schema = oms). Every object below is
-- schema-qualified and every function pins its search_path, so that nothing a user created in
-- another schema can be picked up by name.

-- The schema must be ours. CREATE EXTENSION takes an existing schema "oms" as it finds it, and
-- every function of oms looks names up there first (search_path = oms, pg_catalog): a schema that
-- someone else owns, or may create objects in, could plant a function or operator named like a
-- built-in that oms would then run with its caller's rights (the lesson of CVE-2022-2625). So oms
-- installs only into a schema it creates, or an empty one of the installing role that nobody
-- else has rights on. (Everything here is qualified: this block runs with oms in search_path.)
DO $$
DECLARE
	v_schema	oid;
	v_owner		oid;
	v_acl		aclitem[];
	v_problem	text;
BEGIN
	SELECT n.oid, n.nspowner, n.nspacl INTO v_schema, v_owner, v_acl
	  FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) 'oms';
	IF v_owner OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles r
										 WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
		v_problem := pg_catalog.format('it belongs to role %s, not to %s, who installs oms',
									   pg_catalog.quote_ident(v_owner::pg_catalog.regrole::pg_catalog.text), CURRENT_USER);
	ELSIF EXISTS (SELECT FROM pg_catalog.aclexplode(v_acl) a WHERE a.grantee OPERATOR(pg_catalog.<>) v_owner) THEN
		v_problem := 'other roles have privileges on it';
	ELSIF EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.relnamespace OPERATOR(pg_catalog.=) v_schema)
		  OR EXISTS (SELECT FROM pg_catalog.pg_proc p WHERE p.pronamespace OPERATOR(pg_catalog.=) v_schema)
		  OR EXISTS (SELECT FROM pg_catalog.pg_type t WHERE t.typnamespace OPERATOR(pg_catalog.=) v_schema)
		  OR EXISTS (SELECT FROM pg_catalog.pg_operator o WHERE o.oprnamespace OPERATOR(pg_catalog.=) v_schema)
		  OR EXISTS (SELECT FROM pg_catalog.pg_collation c WHERE c.collnamespace OPERATOR(pg_catalog.=) v_schema)
		  OR EXISTS (SELECT FROM pg_catalog.pg_conversion c WHERE c.connamespace OPERATOR(pg_catalog.=) v_schema)
		  OR EXISTS (SELECT FROM pg_catalog.pg_opfamily f WHERE f.opfnamespace OPERATOR(pg_catalog.=) v_schema) THEN
		v_problem := 'it is not empty';
	END IF;
	IF v_problem IS NOT NULL THEN
		RAISE EXCEPTION 'schema "oms" already exists and is not safe to install into: %', v_problem
			USING ERRCODE = '42P06',
			      HINT = 'Drop or rename that schema; CREATE EXTENSION oms then creates its own.';
	END IF;
END
$$;

COMMENT ON SCHEMA oms IS 'oms: omnichannel order management (tables, API functions, state types)';
REVOKE ALL ON SCHEMA oms FROM PUBLIC;

-- ===== sql/parts/05_roles.sql
-- Roles.
--
-- oms creates the group roles that its privileges are granted to (NOLOGIN: an administrator grants
-- them to login roles). Roles belong to the cluster, not to a database: a second database that
-- installs oms finds them already there and uses them. A role of the same name that can log in, or
-- is a superuser, was not made by oms: granting it our privileges would hand them to whoever owns
-- it, so the install stops instead.
--
--   oms_admin       everything: configuration, every API function, direct table writes
--   oms_operator    order operations and stock adjustments, through the API
--   oms_store       store staff: orders, lines and stock of the locations it is assigned to
--   oms_app         channels: promise, place, cancel, holds, self-service; no direct table writes
--   oms_reader      BI: the views of schema oms_bi, customer contact data masked
--   oms_storefront  a storefront's "where is my order" and self-service returns, nothing else

DO $$
DECLARE
	v_role		text;
	v_comment	text;
	v_login		boolean;
	v_super		boolean;
BEGIN
	FOR v_role, v_comment IN
		VALUES ('oms_admin', 'oms: administers everything oms holds'),
			   ('oms_operator', 'oms: operates orders and stock through the API'),
			   ('oms_store', 'oms: store staff, limited to the locations assigned to it'),
			   ('oms_app', 'oms: sales channels (promise, place, cancel, holds) through the API'),
			   ('oms_reader', 'oms: read-only BI access to schema oms_bi, contact data masked'),
			   ('oms_storefront', 'oms: customer self-service functions only')
	LOOP
		SELECT r.rolcanlogin, r.rolsuper INTO v_login, v_super
		  FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) v_role;
		IF NOT FOUND THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', v_role);
			EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L', v_role, v_comment);
		ELSIF v_login OR v_super THEN
			RAISE EXCEPTION 'role "%" already exists and can log in or is a superuser', v_role
				USING ERRCODE = '42710',
					  DETAIL = 'oms grants its privileges to a group role of that name; a login role would receive them directly.',
					  HINT = 'Rename or drop that role (or make it NOLOGIN NOSUPERUSER), then create the extension again.';
		END IF;
	END LOOP;
END
$$;

-- ===== sql/parts/10_states.sql
-- The state types oms.order_state and oms.line_state (src/order_state.c).
--
-- Base types of 4 bytes, passed by value, holding a stable code; they compare in lifecycle order
-- (a rank table in C), and have btree and hash operator classes so that they can be indexed,
-- sorted, grouped and hashed. The vocabulary and the meaning of each state are in order_state.c.
--
-- The C functions in this file do not pin search_path: they run no SQL, so no name is ever looked
-- up while they run, and a SET clause would make PostgreSQL wrap every call (every comparison of
-- a sort, every hash, every row of an aggregate) in a GUC save and restore.
--
-- Unqualified comparisons (state = 'shipped') find these operators only with oms in search_path;
-- sorting, grouping, DISTINCT and indexes use the default operator classes and need nothing.

-- ----- oms.order_state
CREATE TYPE oms.order_state;

CREATE FUNCTION oms.order_state_in(cstring) RETURNS oms.order_state
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_order_state_in';
COMMENT ON FUNCTION oms.order_state_in(cstring) IS 'Text input of oms.order_state: a state name; error 22P02 naming the valid ones';
CREATE FUNCTION oms.order_state_out(oms.order_state) RETURNS cstring
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_order_state_out';
COMMENT ON FUNCTION oms.order_state_out(oms.order_state) IS 'Text output of oms.order_state: the state name';
CREATE FUNCTION oms.order_state_recv(internal) RETURNS oms.order_state
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_order_state_recv';
COMMENT ON FUNCTION oms.order_state_recv(internal) IS 'Binary input of oms.order_state: the state code as int4';
CREATE FUNCTION oms.order_state_send(oms.order_state) RETURNS bytea
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_order_state_send';
COMMENT ON FUNCTION oms.order_state_send(oms.order_state) IS 'Binary output of oms.order_state: the state code as int4';

CREATE TYPE oms.order_state (
	INPUT = oms.order_state_in,
	OUTPUT = oms.order_state_out,
	RECEIVE = oms.order_state_recv,
	SEND = oms.order_state_send,
	INTERNALLENGTH = 4,
	PASSEDBYVALUE,
	ALIGNMENT = int4,
	STORAGE = plain
);
COMMENT ON TYPE oms.order_state IS 'State of an order: created, on_hold, confirmed, backordered, partially_allocated, allocated, released, partially_shipped, shipped, delivered, partially_returned, returned, cancelled, closed (in lifecycle order)';

CREATE FUNCTION oms.order_state_cmp(oms.order_state, oms.order_state) RETURNS int
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_order_state_cmp';
COMMENT ON FUNCTION oms.order_state_cmp(oms.order_state, oms.order_state) IS 'Compares two values of oms.order_state by lifecycle rank: -1, 0 or 1 (btree support)';
CREATE FUNCTION oms.order_state_sortsupport(internal) RETURNS void
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_order_state_sortsupport';
COMMENT ON FUNCTION oms.order_state_sortsupport(internal) IS 'Sort support of oms.order_state (btree support)';
CREATE FUNCTION oms.order_state_hash(oms.order_state) RETURNS int
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_order_state_hash';
COMMENT ON FUNCTION oms.order_state_hash(oms.order_state) IS 'Hash of an oms.order_state value (hash support)';
CREATE FUNCTION oms.order_state_hash_extended(oms.order_state, bigint) RETURNS bigint
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_order_state_hash_extended';
COMMENT ON FUNCTION oms.order_state_hash_extended(oms.order_state, bigint) IS 'Seeded 64-bit hash of an oms.order_state value (hash support)';
CREATE FUNCTION oms.order_state_lt(oms.order_state, oms.order_state) RETURNS boolean
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_order_state_lt';
COMMENT ON FUNCTION oms.order_state_lt(oms.order_state, oms.order_state) IS 'True when the first oms.order_state is earlier in the lifecycle than the second (operator <)';
CREATE FUNCTION oms.order_state_le(oms.order_state, oms.order_state) RETURNS boolean
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_order_state_le';
COMMENT ON FUNCTION oms.order_state_le(oms.order_state, oms.order_state) IS 'True when the first oms.order_state is earlier than or the same as the second (operator <=)';
CREATE FUNCTION oms.order_state_eq(oms.order_state, oms.order_state) RETURNS boolean
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_order_state_eq';
COMMENT ON FUNCTION oms.order_state_eq(oms.order_state, oms.order_state) IS 'True when the first oms.order_state is the same state as the second (operator =)';
CREATE FUNCTION oms.order_state_ne(oms.order_state, oms.order_state) RETURNS boolean
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_order_state_ne';
COMMENT ON FUNCTION oms.order_state_ne(oms.order_state, oms.order_state) IS 'True when the first oms.order_state is not the same state as the second (operator <>)';
CREATE FUNCTION oms.order_state_ge(oms.order_state, oms.order_state) RETURNS boolean
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_order_state_ge';
COMMENT ON FUNCTION oms.order_state_ge(oms.order_state, oms.order_state) IS 'True when the first oms.order_state is later than or the same as the second (operator >=)';
CREATE FUNCTION oms.order_state_gt(oms.order_state, oms.order_state) RETURNS boolean
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_order_state_gt';
COMMENT ON FUNCTION oms.order_state_gt(oms.order_state, oms.order_state) IS 'True when the first oms.order_state is later in the lifecycle than the second (operator >)';
CREATE OPERATOR oms.< (
	LEFTARG = oms.order_state, RIGHTARG = oms.order_state, FUNCTION = oms.order_state_lt,
	COMMUTATOR = OPERATOR(oms.>), NEGATOR = OPERATOR(oms.>=),
	RESTRICT = pg_catalog.scalarltsel, JOIN = pg_catalog.scalarltjoinsel
);
COMMENT ON OPERATOR oms.< (oms.order_state, oms.order_state) IS 'oms.order_state earlier than, in lifecycle order';
CREATE OPERATOR oms.<= (
	LEFTARG = oms.order_state, RIGHTARG = oms.order_state, FUNCTION = oms.order_state_le,
	COMMUTATOR = OPERATOR(oms.>=), NEGATOR = OPERATOR(oms.>),
	RESTRICT = pg_catalog.scalarlesel, JOIN = pg_catalog.scalarlejoinsel
);
COMMENT ON OPERATOR oms.<= (oms.order_state, oms.order_state) IS 'oms.order_state earlier than or same as, in lifecycle order';
CREATE OPERATOR oms.= (
	LEFTARG = oms.order_state, RIGHTARG = oms.order_state, FUNCTION = oms.order_state_eq,
	COMMUTATOR = OPERATOR(oms.=), NEGATOR = OPERATOR(oms.<>),
	HASHES, MERGES,
	RESTRICT = pg_catalog.eqsel, JOIN = pg_catalog.eqjoinsel
);
COMMENT ON OPERATOR oms.= (oms.order_state, oms.order_state) IS 'Same oms.order_state';
CREATE OPERATOR oms.<> (
	LEFTARG = oms.order_state, RIGHTARG = oms.order_state, FUNCTION = oms.order_state_ne,
	COMMUTATOR = OPERATOR(oms.<>), NEGATOR = OPERATOR(oms.=),
	RESTRICT = pg_catalog.neqsel, JOIN = pg_catalog.neqjoinsel
);
COMMENT ON OPERATOR oms.<> (oms.order_state, oms.order_state) IS 'Different oms.order_state values';
CREATE OPERATOR oms.>= (
	LEFTARG = oms.order_state, RIGHTARG = oms.order_state, FUNCTION = oms.order_state_ge,
	COMMUTATOR = OPERATOR(oms.<=), NEGATOR = OPERATOR(oms.<),
	RESTRICT = pg_catalog.scalargesel, JOIN = pg_catalog.scalargejoinsel
);
COMMENT ON OPERATOR oms.>= (oms.order_state, oms.order_state) IS 'oms.order_state later than or same as, in lifecycle order';
CREATE OPERATOR oms.> (
	LEFTARG = oms.order_state, RIGHTARG = oms.order_state, FUNCTION = oms.order_state_gt,
	COMMUTATOR = OPERATOR(oms.<), NEGATOR = OPERATOR(oms.<=),
	RESTRICT = pg_catalog.scalargtsel, JOIN = pg_catalog.scalargtjoinsel
);
COMMENT ON OPERATOR oms.> (oms.order_state, oms.order_state) IS 'oms.order_state later than, in lifecycle order';

CREATE OPERATOR CLASS oms.order_state_ops
	DEFAULT FOR TYPE oms.order_state USING btree AS
		OPERATOR 1 oms.<,
		OPERATOR 2 oms.<=,
		OPERATOR 3 oms.=,
		OPERATOR 4 oms.>=,
		OPERATOR 5 oms.>,
		FUNCTION 1 oms.order_state_cmp(oms.order_state, oms.order_state),
		FUNCTION 2 oms.order_state_sortsupport(internal);
COMMENT ON OPERATOR CLASS oms.order_state_ops USING btree IS 'Orders oms.order_state by lifecycle rank';

CREATE OPERATOR CLASS oms.order_state_hash_ops
	DEFAULT FOR TYPE oms.order_state USING hash AS
		OPERATOR 1 oms.=,
		FUNCTION 1 oms.order_state_hash(oms.order_state),
		FUNCTION 2 oms.order_state_hash_extended(oms.order_state, bigint);
COMMENT ON OPERATOR CLASS oms.order_state_hash_ops USING hash IS 'Hashes oms.order_state for hash joins, hash aggregation and hash indexes';

CREATE FUNCTION oms.state_rank(oms.order_state) RETURNS int
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_order_state_rank';
COMMENT ON FUNCTION oms.state_rank(oms.order_state) IS 'Position of the state in the lifecycle (1 = first); the comparison operators order by it';
CREATE FUNCTION oms.state_code(oms.order_state) RETURNS int
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_order_state_code';
COMMENT ON FUNCTION oms.state_code(oms.order_state) IS 'Stable code number of the state, as stored on disk and sent in binary';

-- ----- oms.line_state
CREATE TYPE oms.line_state;

CREATE FUNCTION oms.line_state_in(cstring) RETURNS oms.line_state
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_line_state_in';
COMMENT ON FUNCTION oms.line_state_in(cstring) IS 'Text input of oms.line_state: a state name; error 22P02 naming the valid ones';
CREATE FUNCTION oms.line_state_out(oms.line_state) RETURNS cstring
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_line_state_out';
COMMENT ON FUNCTION oms.line_state_out(oms.line_state) IS 'Text output of oms.line_state: the state name';
CREATE FUNCTION oms.line_state_recv(internal) RETURNS oms.line_state
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_line_state_recv';
COMMENT ON FUNCTION oms.line_state_recv(internal) IS 'Binary input of oms.line_state: the state code as int4';
CREATE FUNCTION oms.line_state_send(oms.line_state) RETURNS bytea
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_line_state_send';
COMMENT ON FUNCTION oms.line_state_send(oms.line_state) IS 'Binary output of oms.line_state: the state code as int4';

CREATE TYPE oms.line_state (
	INPUT = oms.line_state_in,
	OUTPUT = oms.line_state_out,
	RECEIVE = oms.line_state_recv,
	SEND = oms.line_state_send,
	INTERNALLENGTH = 4,
	PASSEDBYVALUE,
	ALIGNMENT = int4,
	STORAGE = plain
);
COMMENT ON TYPE oms.line_state IS 'State of an order line: created, backordered, preordered, allocated, released, picked, packed, ready_for_pickup, partially_shipped, shipped, delivered, partially_returned, returned, rejected, cancelled (in lifecycle order)';

CREATE FUNCTION oms.line_state_cmp(oms.line_state, oms.line_state) RETURNS int
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_line_state_cmp';
COMMENT ON FUNCTION oms.line_state_cmp(oms.line_state, oms.line_state) IS 'Compares two values of oms.line_state by lifecycle rank: -1, 0 or 1 (btree support)';
CREATE FUNCTION oms.line_state_sortsupport(internal) RETURNS void
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_line_state_sortsupport';
COMMENT ON FUNCTION oms.line_state_sortsupport(internal) IS 'Sort support of oms.line_state (btree support)';
CREATE FUNCTION oms.line_state_hash(oms.line_state) RETURNS int
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_line_state_hash';
COMMENT ON FUNCTION oms.line_state_hash(oms.line_state) IS 'Hash of an oms.line_state value (hash support)';
CREATE FUNCTION oms.line_state_hash_extended(oms.line_state, bigint) RETURNS bigint
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_line_state_hash_extended';
COMMENT ON FUNCTION oms.line_state_hash_extended(oms.line_state, bigint) IS 'Seeded 64-bit hash of an oms.line_state value (hash support)';
CREATE FUNCTION oms.line_state_lt(oms.line_state, oms.line_state) RETURNS boolean
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_line_state_lt';
COMMENT ON FUNCTION oms.line_state_lt(oms.line_state, oms.line_state) IS 'True when the first oms.line_state is earlier in the lifecycle than the second (operator <)';
CREATE FUNCTION oms.line_state_le(oms.line_state, oms.line_state) RETURNS boolean
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_line_state_le';
COMMENT ON FUNCTION oms.line_state_le(oms.line_state, oms.line_state) IS 'True when the first oms.line_state is earlier than or the same as the second (operator <=)';
CREATE FUNCTION oms.line_state_eq(oms.line_state, oms.line_state) RETURNS boolean
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_line_state_eq';
COMMENT ON FUNCTION oms.line_state_eq(oms.line_state, oms.line_state) IS 'True when the first oms.line_state is the same state as the second (operator =)';
CREATE FUNCTION oms.line_state_ne(oms.line_state, oms.line_state) RETURNS boolean
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_line_state_ne';
COMMENT ON FUNCTION oms.line_state_ne(oms.line_state, oms.line_state) IS 'True when the first oms.line_state is not the same state as the second (operator <>)';
CREATE FUNCTION oms.line_state_ge(oms.line_state, oms.line_state) RETURNS boolean
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_line_state_ge';
COMMENT ON FUNCTION oms.line_state_ge(oms.line_state, oms.line_state) IS 'True when the first oms.line_state is later than or the same as the second (operator >=)';
CREATE FUNCTION oms.line_state_gt(oms.line_state, oms.line_state) RETURNS boolean
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_line_state_gt';
COMMENT ON FUNCTION oms.line_state_gt(oms.line_state, oms.line_state) IS 'True when the first oms.line_state is later in the lifecycle than the second (operator >)';
CREATE OPERATOR oms.< (
	LEFTARG = oms.line_state, RIGHTARG = oms.line_state, FUNCTION = oms.line_state_lt,
	COMMUTATOR = OPERATOR(oms.>), NEGATOR = OPERATOR(oms.>=),
	RESTRICT = pg_catalog.scalarltsel, JOIN = pg_catalog.scalarltjoinsel
);
COMMENT ON OPERATOR oms.< (oms.line_state, oms.line_state) IS 'oms.line_state earlier than, in lifecycle order';
CREATE OPERATOR oms.<= (
	LEFTARG = oms.line_state, RIGHTARG = oms.line_state, FUNCTION = oms.line_state_le,
	COMMUTATOR = OPERATOR(oms.>=), NEGATOR = OPERATOR(oms.>),
	RESTRICT = pg_catalog.scalarlesel, JOIN = pg_catalog.scalarlejoinsel
);
COMMENT ON OPERATOR oms.<= (oms.line_state, oms.line_state) IS 'oms.line_state earlier than or same as, in lifecycle order';
CREATE OPERATOR oms.= (
	LEFTARG = oms.line_state, RIGHTARG = oms.line_state, FUNCTION = oms.line_state_eq,
	COMMUTATOR = OPERATOR(oms.=), NEGATOR = OPERATOR(oms.<>),
	HASHES, MERGES,
	RESTRICT = pg_catalog.eqsel, JOIN = pg_catalog.eqjoinsel
);
COMMENT ON OPERATOR oms.= (oms.line_state, oms.line_state) IS 'Same oms.line_state';
CREATE OPERATOR oms.<> (
	LEFTARG = oms.line_state, RIGHTARG = oms.line_state, FUNCTION = oms.line_state_ne,
	COMMUTATOR = OPERATOR(oms.<>), NEGATOR = OPERATOR(oms.=),
	RESTRICT = pg_catalog.neqsel, JOIN = pg_catalog.neqjoinsel
);
COMMENT ON OPERATOR oms.<> (oms.line_state, oms.line_state) IS 'Different oms.line_state values';
CREATE OPERATOR oms.>= (
	LEFTARG = oms.line_state, RIGHTARG = oms.line_state, FUNCTION = oms.line_state_ge,
	COMMUTATOR = OPERATOR(oms.<=), NEGATOR = OPERATOR(oms.<),
	RESTRICT = pg_catalog.scalargesel, JOIN = pg_catalog.scalargejoinsel
);
COMMENT ON OPERATOR oms.>= (oms.line_state, oms.line_state) IS 'oms.line_state later than or same as, in lifecycle order';
CREATE OPERATOR oms.> (
	LEFTARG = oms.line_state, RIGHTARG = oms.line_state, FUNCTION = oms.line_state_gt,
	COMMUTATOR = OPERATOR(oms.<), NEGATOR = OPERATOR(oms.<=),
	RESTRICT = pg_catalog.scalargtsel, JOIN = pg_catalog.scalargtjoinsel
);
COMMENT ON OPERATOR oms.> (oms.line_state, oms.line_state) IS 'oms.line_state later than, in lifecycle order';

CREATE OPERATOR CLASS oms.line_state_ops
	DEFAULT FOR TYPE oms.line_state USING btree AS
		OPERATOR 1 oms.<,
		OPERATOR 2 oms.<=,
		OPERATOR 3 oms.=,
		OPERATOR 4 oms.>=,
		OPERATOR 5 oms.>,
		FUNCTION 1 oms.line_state_cmp(oms.line_state, oms.line_state),
		FUNCTION 2 oms.line_state_sortsupport(internal);
COMMENT ON OPERATOR CLASS oms.line_state_ops USING btree IS 'Orders oms.line_state by lifecycle rank';

CREATE OPERATOR CLASS oms.line_state_hash_ops
	DEFAULT FOR TYPE oms.line_state USING hash AS
		OPERATOR 1 oms.=,
		FUNCTION 1 oms.line_state_hash(oms.line_state),
		FUNCTION 2 oms.line_state_hash_extended(oms.line_state, bigint);
COMMENT ON OPERATOR CLASS oms.line_state_hash_ops USING hash IS 'Hashes oms.line_state for hash joins, hash aggregation and hash indexes';

CREATE FUNCTION oms.state_rank(oms.line_state) RETURNS int
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_line_state_rank';
COMMENT ON FUNCTION oms.state_rank(oms.line_state) IS 'Position of the state in the lifecycle (1 = first); the comparison operators order by it';
CREATE FUNCTION oms.state_code(oms.line_state) RETURNS int
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_line_state_code';
COMMENT ON FUNCTION oms.state_code(oms.line_state) IS 'Stable code number of the state, as stored on disk and sent in binary';

-- ----- transitions (src/transition.c): the legal moves of both types, one table each

CREATE FUNCTION oms.transition(state oms.order_state, event text) RETURNS oms.order_state
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_order_state_transition';
COMMENT ON FUNCTION oms.transition(oms.order_state, text) IS 'The order state after an event (hold, unhold, reset, confirm, backorder, allocate_partial, allocate, release, ship_partial, ship, deliver, return_partial, return, close, cancel); illegal: error 55000 hinting at the legal events, unknown event: 22023';

CREATE FUNCTION oms.transition(state oms.line_state, event text) RETURNS oms.line_state
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_line_state_transition';
COMMENT ON FUNCTION oms.transition(oms.line_state, text) IS 'The line state after an event (allocate, backorder, preorder, release, pick, pack, stage, ship_partial, ship, collect, deliver, return_partial, return, reject, reroute, cancel); illegal: error 55000 hinting at the legal events, unknown event: 22023';

CREATE FUNCTION oms.is_legal(from_state oms.order_state, to_state oms.order_state) RETURNS boolean
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_order_state_is_legal';
COMMENT ON FUNCTION oms.is_legal(oms.order_state, oms.order_state) IS 'True when one event moves an order from the first state to the second (the check of the state trigger)';

CREATE FUNCTION oms.is_legal(from_state oms.line_state, to_state oms.line_state) RETURNS boolean
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
	AS 'MODULE_PATHNAME', 'oms_line_state_is_legal';
COMMENT ON FUNCTION oms.is_legal(oms.line_state, oms.line_state) IS 'True when one event moves a line from the first state to the second (the check of the state trigger)';

CREATE FUNCTION oms.legal_moves(OUT state_type text, OUT from_state text, OUT event text, OUT to_state text)
	RETURNS SETOF record
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE ROWS 100
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_legal_moves';
COMMENT ON FUNCTION oms.legal_moves() IS 'Both transition tables: state type (order_state, line_state), from state, event, to state; orders first, each by lifecycle rank of the from state';

-- ----- rollup: the order state that its lines' states add up to

CREATE FUNCTION oms.rollup_step(seen int, state oms.line_state) RETURNS int
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_rollup_step';
COMMENT ON FUNCTION oms.rollup_step(int, oms.line_state) IS 'State transition function of the aggregate oms.rollup: adds a line state to the bitmask of states seen';

CREATE FUNCTION oms.rollup_final(seen int) RETURNS oms.order_state
	LANGUAGE c IMMUTABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_rollup_final';
COMMENT ON FUNCTION oms.rollup_final(int) IS 'Final function of the aggregate oms.rollup: the order state of a bitmask of line states';

CREATE AGGREGATE oms.rollup(oms.line_state) (
	SFUNC = oms.rollup_step,
	STYPE = int,
	INITCOND = '0',
	FINALFUNC = oms.rollup_final,
	COMBINEFUNC = pg_catalog.int4or,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE oms.rollup(oms.line_state) IS 'The order state that a set of line states rolls up to (cancelled lines ignored unless all are cancelled; no lines: created)';

CREATE FUNCTION oms.rollup(states oms.line_state[]) RETURNS oms.order_state
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_rollup_array';
COMMENT ON FUNCTION oms.rollup(oms.line_state[]) IS 'The order state that an array of line states rolls up to (same rules as the aggregate; NULL elements skipped)';

-- ===== sql/parts/20_reference.sql
-- Reference data: tenants, currencies, channels, locations, items.

CREATE TABLE oms.tenants (
	id			int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	code		text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9_.-]{1,63}$'),
	name		text NOT NULL,
	created_at	timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE oms.tenants IS 'Brands or merchants served by this database; every business row belongs to one (setting oms.tenant picks the current one)';
INSERT INTO oms.tenants (code, name) VALUES ('default', 'Default tenant');

CREATE FUNCTION oms.current_tenant_id() RETURNS int
	LANGUAGE c STABLE STRICT PARALLEL SAFE
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_current_tenant_id';
COMMENT ON FUNCTION oms.current_tenant_id() IS 'Id of the tenant named by the setting oms.tenant; error 22023 when it does not exist';

CREATE FUNCTION oms._actor() RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN coalesce(nullif(pg_catalog.current_setting('oms.actor', true), ''), session_user);
COMMENT ON FUNCTION oms._actor() IS 'Internal: who makes a change: the setting oms.actor, else the session user';

CREATE FUNCTION oms._clip(v text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN CASE WHEN length(v) > 100 THEN left(v, 100) || '...' ELSE v END;
COMMENT ON FUNCTION oms._clip(text) IS 'Internal: a user''s value as an error message shows it, at most 100 characters and "...": a message must not repeat a 1 GB argument';

CREATE FUNCTION oms.create_tenant(code text, name text DEFAULT NULL) RETURNS int
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_id int;
BEGIN
	IF code IS NULL OR code !~ '^[A-Za-z0-9_.-]{1,63}$' THEN
		RAISE EXCEPTION 'invalid tenant code "%"', oms._clip(code)
			USING ERRCODE = '22023',
			      HINT = 'A tenant code has 1 to 63 letters, digits, "_", "-" or ".".';
	END IF;
	INSERT INTO oms.tenants AS t (code, name)
		VALUES (create_tenant.code, coalesce(create_tenant.name, create_tenant.code))
		ON CONFLICT ON CONSTRAINT tenants_code_key DO NOTHING
		RETURNING t.id INTO v_id;
	IF v_id IS NULL THEN
		SELECT t.id INTO v_id FROM oms.tenants t WHERE t.code = create_tenant.code;
	END IF;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms.create_tenant(text, text) IS 'Creates a tenant (brand, merchant) and returns its id; an existing code returns the existing id';

CREATE TABLE oms.currencies (
	code		char(3) PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
	minor_units	smallint NOT NULL CHECK (minor_units BETWEEN 0 AND 4),
	name		text NOT NULL,
	builtin		boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE oms.currencies IS 'ISO 4217 currencies that orders may use, with their minor units (shared by all tenants)';

INSERT INTO oms.currencies (code, minor_units, name, builtin) VALUES
	('AED', 2, 'UAE dirham', true), ('ARS', 2, 'Argentine peso', true),
	('AUD', 2, 'Australian dollar', true), ('BGN', 2, 'Bulgarian lev', true),
	('BHD', 3, 'Bahraini dinar', true), ('BRL', 2, 'Brazilian real', true),
	('CAD', 2, 'Canadian dollar', true), ('CHF', 2, 'Swiss franc', true),
	('CLP', 0, 'Chilean peso', true), ('CNY', 2, 'Renminbi', true),
	('COP', 2, 'Colombian peso', true), ('CZK', 2, 'Czech koruna', true),
	('DKK', 2, 'Danish krone', true), ('EGP', 2, 'Egyptian pound', true),
	('EUR', 2, 'Euro', true), ('GBP', 2, 'Pound sterling', true),
	('HKD', 2, 'Hong Kong dollar', true), ('HUF', 2, 'Hungarian forint', true),
	('IDR', 2, 'Indonesian rupiah', true), ('ILS', 2, 'Israeli new shekel', true),
	('INR', 2, 'Indian rupee', true), ('ISK', 0, 'Icelandic krona', true),
	('JOD', 3, 'Jordanian dinar', true), ('JPY', 0, 'Japanese yen', true),
	('KRW', 0, 'South Korean won', true), ('KWD', 3, 'Kuwaiti dinar', true),
	('MAD', 2, 'Moroccan dirham', true), ('MXN', 2, 'Mexican peso', true),
	('MYR', 2, 'Malaysian ringgit', true), ('NOK', 2, 'Norwegian krone', true),
	('NZD', 2, 'New Zealand dollar', true), ('OMR', 3, 'Omani rial', true),
	('PHP', 2, 'Philippine peso', true), ('PLN', 2, 'Polish zloty', true),
	('QAR', 2, 'Qatari riyal', true), ('RON', 2, 'Romanian leu', true),
	('RSD', 2, 'Serbian dinar', true), ('SAR', 2, 'Saudi riyal', true),
	('SEK', 2, 'Swedish krona', true), ('SGD', 2, 'Singapore dollar', true),
	('THB', 2, 'Thai baht', true), ('TND', 3, 'Tunisian dinar', true),
	('TRY', 2, 'Turkish lira', true), ('TWD', 2, 'New Taiwan dollar', true),
	('UAH', 2, 'Ukrainian hryvnia', true), ('USD', 2, 'US dollar', true),
	('VND', 0, 'Vietnamese dong', true), ('ZAR', 2, 'South African rand', true);

CREATE TABLE oms.channels (
	tenant_id			int NOT NULL DEFAULT oms.current_tenant_id() REFERENCES oms.tenants,
	id					int GENERATED ALWAYS AS IDENTITY,
	code				text NOT NULL CHECK (code <> '' AND length(code) <= 100),
	kind				text NOT NULL CHECK (kind IN ('web', 'marketplace', 'pos', 'app', 'social', 'call_centre')),
	name				text NOT NULL,
	default_currency	char(3) NOT NULL REFERENCES oms.currencies,
	active				boolean NOT NULL DEFAULT true,
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, code)
);
COMMENT ON TABLE oms.channels IS 'Sales channels (web shop, marketplace, store POS, app, social, call centre) that place orders';

CREATE TABLE oms.locations (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id() REFERENCES oms.tenants,
	id				int GENERATED ALWAYS AS IDENTITY,
	code			text NOT NULL CHECK (code <> '' AND length(code) <= 100),
	kind			text NOT NULL CHECK (kind IN ('warehouse', 'store', '3pl', 'vendor')),
	name			text NOT NULL,
	country			text CHECK (country ~ '^[A-Z]{2}$'),
	city			text,
	postal_code		text,
	latitude		double precision CHECK (latitude BETWEEN -90 AND 90),
	longitude		double precision CHECK (longitude BETWEEN -180 AND 180),
	can_ship		boolean NOT NULL DEFAULT true,
	can_pickup		boolean NOT NULL DEFAULT false,
	priority		int NOT NULL DEFAULT 100,
	daily_capacity	int CHECK (daily_capacity >= 0),
	active			boolean NOT NULL DEFAULT true,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, code),
	CHECK ((latitude IS NULL) = (longitude IS NULL))
);
COMMENT ON TABLE oms.locations IS 'Places that hold stock: warehouses, stores, 3PLs and drop-ship vendors; priority: lower numbers are preferred';

CREATE TABLE oms.items (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id() REFERENCES oms.tenants,
	id				int GENERATED ALWAYS AS IDENTITY,
	sku				text NOT NULL CHECK (sku <> '' AND length(sku) <= 100),
	name			text NOT NULL,
	weight			numeric NOT NULL DEFAULT 0 CHECK (weight >= 0),
	unit_cost		numeric CHECK (unit_cost >= 0),
	brand			text,
	category		text,
	backorderable	boolean NOT NULL DEFAULT false,
	preorderable	boolean NOT NULL DEFAULT false,
	active			boolean NOT NULL DEFAULT true,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, sku)
);
COMMENT ON TABLE oms.items IS 'Sellable items (SKUs); weight in kg, unit_cost in the tenant''s accounting currency';

-- ===== sql/parts/21_lifecycle_settings.sql
-- Settings of the fulfilment lifecycle that belong to channels and locations (issue 7). They are
-- added here, beside the tables of 20_reference.sql, so that each concept keeps its own file.

ALTER TABLE oms.channels
	ADD COLUMN requires_authorization boolean NOT NULL DEFAULT true,
	ADD COLUMN auto_release boolean NOT NULL DEFAULT false,
	ADD COLUMN return_days int NOT NULL DEFAULT 30 CHECK (return_days BETWEEN 0 AND 3650),
	ADD COLUMN refunds_outside boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN oms.channels.requires_authorization IS 'An order of this channel is released only once payments authorise its total (web, marketplace); false for channels paid at the till (POS)';
COMMENT ON COLUMN oms.channels.auto_release IS 'Release an order at placement (and when its last hold is resolved) when nothing blocks it';
COMMENT ON COLUMN oms.channels.return_days IS 'Days after delivery (or shipment, when not delivered) within which a return may be created; 0: no returns';
COMMENT ON COLUMN oms.channels.refunds_outside IS 'The channel refunds its customers itself (a marketplace): receiving a return records the refund due but does not call oms.refund_payment';

ALTER TABLE oms.locations
	ADD COLUMN pickup_days int NOT NULL DEFAULT 7 CHECK (pickup_days BETWEEN 1 AND 365);
COMMENT ON COLUMN oms.locations.pickup_days IS 'Days a click & collect order waits at this store once ready before the worker reports it uncollected (event pickup_uncollected)';

-- ===== sql/parts/22_access.sql
-- Access: which roles may act for which tenants, and which locations a store role works at.
--
-- oms.tenant says which tenant a session works for; it is a plain setting that anyone may SET.
-- The boundary is here: oms_tenant_id() (src/oms.c, behind oms.current_tenant_id(), every API
-- function, every column default and every tenant policy of row level security) refuses with
-- 42501 a tenant that the calling role may not act for. Superusers and members of oms_admin act
-- for every tenant; any other role needs a row below for itself or for a role whose privileges it
-- has (a grant to a group role covers its members).
--
-- The calling role is the outer user: the session user, or the role of a SET ROLE, whatever
-- SECURITY DEFINER function runs (the API functions run as their owner; the caller is who called
-- them). Roles are kept by name, as pg_dump writes them: a dump restored into another cluster
-- keeps its grants, and a dropped role's rows grant nothing (the check joins pg_roles).

CREATE TABLE oms.tenant_grants (
	role		name NOT NULL,
	tenant_id	int NOT NULL REFERENCES oms.tenants ON DELETE CASCADE,
	granted_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	granted_by	text NOT NULL DEFAULT oms._actor(),
	PRIMARY KEY (role, tenant_id)
);
CREATE INDEX tenant_grants_tenant_idx ON oms.tenant_grants (tenant_id);
COMMENT ON TABLE oms.tenant_grants IS 'Roles that may act for a tenant (set oms.tenant to it); superusers and oms_admin members act for all; managed by oms.grant_tenant and oms.revoke_tenant';

-- A store role (a member of oms_store) sees and acts on the rows of its own locations only.
CREATE TABLE oms.store_assignments (
	tenant_id	int NOT NULL DEFAULT oms.current_tenant_id(),
	role		name NOT NULL,
	location_id	int NOT NULL,
	assigned_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, role, location_id),
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations ON DELETE CASCADE
);
COMMENT ON TABLE oms.store_assignments IS 'Locations a store role (member of oms_store) works at, per tenant; managed by oms.assign_store and oms.unassign_store';

CREATE FUNCTION oms._caller() RETURNS oid
	LANGUAGE c STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_caller_oid';
COMMENT ON FUNCTION oms._caller() IS 'Internal: the role that called oms: the session user or the role of a SET ROLE, never the owner of a SECURITY DEFINER function';

CREATE FUNCTION oms._check_role(p_role text) RETURNS name
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_role IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = p_role) THEN
		RAISE EXCEPTION 'unknown role "%"', oms._clip(p_role)
			USING ERRCODE = '42704',
				  HINT = 'Create the login role first (CREATE ROLE ... LOGIN IN ROLE oms_app, say).';
	END IF;
	RETURN p_role::name;
END
$$;
COMMENT ON FUNCTION oms._check_role(text) IS 'Internal: the role''s name; 42704 when no such role exists';

CREATE FUNCTION oms.grant_tenant(role text, tenant text) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_role	name := oms._check_role(grant_tenant.role);
	v_tenant int;
BEGIN
	SELECT t.id INTO v_tenant FROM oms.tenants t WHERE t.code = grant_tenant.tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown tenant "%"', oms._clip(grant_tenant.tenant)
			USING ERRCODE = '22023', HINT = 'Create it with oms.create_tenant().';
	END IF;
	INSERT INTO oms.tenant_grants AS g (role, tenant_id) VALUES (v_role, v_tenant)
		ON CONFLICT DO NOTHING;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION oms.grant_tenant(text, text) IS 'Lets a role (and the roles that have its privileges) act for a tenant; true when granted now, false when it already was; unknown role 42704, unknown tenant 22023';

CREATE FUNCTION oms.revoke_tenant(role text, tenant text) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	DELETE FROM oms.tenant_grants g
	 USING oms.tenants t
	 WHERE g.tenant_id = t.id AND t.code = revoke_tenant.tenant AND g.role = revoke_tenant.role;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION oms.revoke_tenant(text, text) IS 'Takes back oms.grant_tenant; true when a grant was removed (a running transaction that already checked keeps it until it ends)';

CREATE FUNCTION oms.assign_store(role text, location text) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_role		name := oms._check_role(assign_store.role);
	v_tenant	int := oms.current_tenant_id();
BEGIN
	INSERT INTO oms.store_assignments AS a (tenant_id, role, location_id)
		VALUES (v_tenant, v_role, oms._location_id(v_tenant, assign_store.location))
		ON CONFLICT DO NOTHING;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION oms.assign_store(text, text) IS 'Assigns a location of the current tenant to a store role (member of oms_store): it then sees and acts on that location''s rows; true when assigned now';

CREATE FUNCTION oms.unassign_store(role text, location text) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
BEGIN
	DELETE FROM oms.store_assignments a
	 USING oms.locations l
	 WHERE a.tenant_id = v_tenant AND l.tenant_id = v_tenant AND a.location_id = l.id
	   AND l.code = unassign_store.location AND a.role = unassign_store.role;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION oms.unassign_store(text, text) IS 'Takes back oms.assign_store; true when an assignment was removed';

-- Is the caller limited to its store's locations? Members of oms_store that are neither superuser
-- nor members of oms_admin or oms_operator.
CREATE FUNCTION oms._store_limited() RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
	RETURN NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = oms._caller())
		AND pg_catalog.pg_has_role(oms._caller(), 'oms_store', 'USAGE')
		AND NOT pg_catalog.pg_has_role(oms._caller(), 'oms_admin', 'USAGE')
		AND NOT pg_catalog.pg_has_role(oms._caller(), 'oms_operator', 'USAGE');
COMMENT ON FUNCTION oms._store_limited() IS 'Internal: true when the caller is store staff only (member of oms_store, not superuser, oms_admin or oms_operator)';

CREATE FUNCTION oms._store_locations() RETURNS int[]
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = oms, pg_catalog
	RETURN (SELECT coalesce(pg_catalog.array_agg(DISTINCT a.location_id), '{}')
			  FROM oms.store_assignments a JOIN pg_catalog.pg_roles r ON r.rolname = a.role
			 WHERE a.tenant_id = oms.current_tenant_id()
			   AND pg_catalog.pg_has_role(oms._caller(), r.oid, 'USAGE'));
COMMENT ON FUNCTION oms._store_locations() IS 'Internal: ids of the current tenant''s locations assigned to the caller (or to a role whose privileges it has); used by the store policies';

-- The explicit check of the API: the definer functions run as the owner, which row level security
-- does not limit.
CREATE FUNCTION oms._check_store_location(p_tenant int, p_location int) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_location IS NOT NULL AND oms._store_limited()
	   AND NOT p_location = ANY (oms._store_locations()) THEN
		RAISE EXCEPTION 'role "%" may not act at location "%"', pg_catalog.pg_get_userbyid(oms._caller()),
				(SELECT l.code FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = p_location)
			USING ERRCODE = '42501',
				  DETAIL = 'Store staff act only at the locations assigned to them.',
				  HINT = 'An oms administrator assigns a location with oms.assign_store(role, location).';
	END IF;
END
$$;
COMMENT ON FUNCTION oms._check_store_location(int, int) IS 'Internal: 42501 when the caller is store staff and the location is not assigned to it';

-- Writes at a location (a shipment packed or shipped, a pickup made ready or collected, a stock
-- movement, a line released) check it, whichever API function makes them.
CREATE FUNCTION oms._store_guard() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF oms._store_limited() THEN
		PERFORM oms._check_store_location(NEW.tenant_id, NEW.location_id);
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION oms._store_guard() IS 'Internal: trigger refusing (42501) a store role''s write at a location not assigned to it';

-- Backends keep the last positive answer of the tenant check across transactions (src/oms.c);
-- any change of the grants drops it everywhere.
CREATE FUNCTION oms._tenant_grants_changed() RETURNS trigger
	LANGUAGE c
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_tenant_grants_changed';
COMMENT ON FUNCTION oms._tenant_grants_changed() IS 'Internal: trigger invalidating every backend''s cached tenant grant after a change of oms.tenant_grants';
CREATE TRIGGER tenant_grants_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON oms.tenant_grants
	FOR EACH STATEMENT EXECUTE FUNCTION oms._tenant_grants_changed();

-- ===== sql/parts/30_inventory.sql
-- Inventory: stock per SKU and location, incoming supply, and the ledger of on_hand changes.

CREATE TABLE oms.stock (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	item_id			int NOT NULL,
	location_id		int NOT NULL,
	on_hand			bigint NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
	reserved		bigint NOT NULL DEFAULT 0,
	safety_stock	bigint NOT NULL DEFAULT 0 CHECK (safety_stock >= 0),
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, item_id, location_id),
	FOREIGN KEY (tenant_id, item_id) REFERENCES oms.items,
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations,
	CONSTRAINT stock_reserved_within_on_hand CHECK (reserved >= 0 AND reserved <= on_hand)
) WITH (fillfactor = 80);
CREATE INDEX stock_location_idx ON oms.stock (tenant_id, location_id);
COMMENT ON TABLE oms.stock IS 'On hand, reserved and safety stock per SKU and location; reserved moves only through oms.reservations';
COMMENT ON COLUMN oms.stock.reserved IS 'Sum of the live reservations of this SKU at this location, kept by the reservation trigger';
COMMENT ON COLUMN oms.stock.safety_stock IS 'Units kept back from promises (ATP = on_hand - reserved - safety_stock)';

CREATE TABLE oms.supply (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	item_id			int NOT NULL,
	location_id		int NOT NULL,
	qty				bigint NOT NULL CHECK (qty > 0),
	expected_date	date NOT NULL,
	kind			text NOT NULL DEFAULT 'purchase_order' CHECK (kind IN ('purchase_order', 'transfer', 'production')),
	reference		text,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, item_id) REFERENCES oms.items,
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations
);
CREATE INDEX supply_item_idx ON oms.supply (tenant_id, item_id, expected_date);
COMMENT ON TABLE oms.supply IS 'Incoming stock (purchase orders, transfers) per SKU and location with its expected date';

CREATE TABLE oms.stock_movements (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	item_id			int NOT NULL,
	location_id		int NOT NULL,
	kind			text NOT NULL CHECK (kind IN ('count', 'adjustment', 'receipt', 'shipment', 'return', 'transfer_in', 'transfer_out')),
	delta			bigint NOT NULL,
	on_hand_after	bigint NOT NULL CHECK (on_hand_after >= 0),
	reason			text NOT NULL,
	reference		text,
	moved_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	moved_by		text NOT NULL DEFAULT session_user,
	PRIMARY KEY (tenant_id, id)
);
CREATE INDEX stock_movements_item_idx ON oms.stock_movements (tenant_id, item_id, location_id, moved_at);
COMMENT ON TABLE oms.stock_movements IS 'Append-only ledger of every change of on_hand: kind, signed delta, resulting on_hand, reason and reference';

-- ===== sql/parts/40_orders.sql
-- Orders: header, lines, reservations (order allocations and cart holds) and the state history.

CREATE TABLE oms.orders (
	tenant_id			int NOT NULL DEFAULT oms.current_tenant_id(),
	id					bigint GENERATED ALWAYS AS IDENTITY,
	channel_id			int NOT NULL,
	external_id			text NOT NULL CHECK (external_id <> '' AND length(external_id) <= 200),
	state				oms.order_state NOT NULL DEFAULT 'created',
	customer_ref		text,
	customer_email		text,
	customer_name		text,
	customer_phone		text,
	ship_to				jsonb,
	ship_country		text,
	ship_postal_code	text,
	ship_city			text,
	ship_lat			double precision,
	ship_lon			double precision,
	pickup_location_id	int,
	currency			char(3) NOT NULL REFERENCES oms.currencies,
	subtotal			numeric NOT NULL DEFAULT 0 CHECK (subtotal >= 0),
	shipping_amount		numeric NOT NULL DEFAULT 0 CHECK (shipping_amount >= 0),
	total				numeric NOT NULL DEFAULT 0 CHECK (total >= 0),
	cart				text,
	attributes			jsonb NOT NULL DEFAULT '{}',
	placed_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT orders_channel_external_id_key UNIQUE (tenant_id, channel_id, external_id),
	FOREIGN KEY (tenant_id, channel_id) REFERENCES oms.channels,
	FOREIGN KEY (tenant_id, pickup_location_id) REFERENCES oms.locations,
	CHECK (ship_to IS NOT NULL OR pickup_location_id IS NOT NULL)
);
CREATE INDEX orders_placed_idx ON oms.orders (tenant_id, placed_at);
CREATE INDEX orders_customer_idx ON oms.orders (tenant_id, customer_ref) WHERE customer_ref IS NOT NULL;
COMMENT ON TABLE oms.orders IS 'Customer orders from every channel; (channel, external_id) identifies an order for idempotent capture';
COMMENT ON COLUMN oms.orders.state IS 'Rollup of the lines'' states (oms.rollup), or on_hold/closed set by the lifecycle';
COMMENT ON COLUMN oms.orders.pickup_location_id IS 'Store of a click & collect order; NULL for orders shipped to ship_to';

CREATE TABLE oms.order_lines (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	order_id		bigint NOT NULL,
	line_no			int NOT NULL CHECK (line_no > 0),
	item_id			int NOT NULL,
	qty				int NOT NULL CHECK (qty > 0),
	unit_price		numeric NOT NULL CHECK (unit_price >= 0),
	state			oms.line_state NOT NULL DEFAULT 'created',
	location_id		int,
	promised_date	date,
	qty_cancelled	int NOT NULL DEFAULT 0 CHECK (qty_cancelled >= 0),
	qty_shipped		int NOT NULL DEFAULT 0 CHECK (qty_shipped >= 0),
	qty_delivered	int NOT NULL DEFAULT 0 CHECK (qty_delivered >= 0),
	qty_returned	int NOT NULL DEFAULT 0 CHECK (qty_returned >= 0),
	PRIMARY KEY (tenant_id, order_id, line_no),
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	FOREIGN KEY (tenant_id, item_id) REFERENCES oms.items,
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations,
	CONSTRAINT order_lines_buckets CHECK (qty_cancelled + qty_shipped <= qty
		AND qty_delivered <= qty_shipped AND qty_returned <= qty_shipped)
);
COMMENT ON TABLE oms.order_lines IS 'Order lines: SKU, quantity, price, state, assigned location and quantity buckets (cancelled, shipped, delivered, returned)';

CREATE TABLE oms.reservations (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	item_id			int NOT NULL,
	location_id		int NOT NULL,
	qty				int NOT NULL CHECK (qty > 0),
	order_id		bigint,
	line_no			int,
	cart			text CHECK (cart <> '' AND length(cart) <= 200),
	expires_at		timestamptz,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, item_id) REFERENCES oms.items,
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations,
	FOREIGN KEY (tenant_id, order_id, line_no) REFERENCES oms.order_lines,
	CONSTRAINT reservations_kind CHECK (
		(order_id IS NOT NULL AND line_no IS NOT NULL AND cart IS NULL AND expires_at IS NULL)
		OR (order_id IS NULL AND line_no IS NULL AND cart IS NOT NULL AND expires_at IS NOT NULL))
);
CREATE INDEX reservations_line_idx ON oms.reservations (tenant_id, order_id, line_no) WHERE order_id IS NOT NULL;
CREATE UNIQUE INDEX reservations_cart_item_key ON oms.reservations (tenant_id, cart, item_id) WHERE cart IS NOT NULL;
CREATE INDEX reservations_expiry_idx ON oms.reservations (expires_at) WHERE cart IS NOT NULL;
COMMENT ON TABLE oms.reservations IS 'Stock taken for an order line, or held for a cart until expires_at; every change moves stock.reserved in the same transaction';

CREATE TABLE oms.order_history (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	order_id		bigint NOT NULL,
	line_no			int,
	from_state		text,
	to_state		text NOT NULL,
	changed_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	changed_by		text NOT NULL,
	reason			text,
	PRIMARY KEY (tenant_id, id)
);
CREATE INDEX order_history_order_idx ON oms.order_history (tenant_id, order_id);
COMMENT ON TABLE oms.order_history IS 'Every state change of an order (line_no NULL) or line: from, to, when, by whom, why; from_state NULL at creation';

-- ===== sql/parts/45_state_trigger.sql
-- The state trigger (src/transition.c): every change of an order's or a line's state must be a
-- legal move (error 55000 otherwise, hinting at the legal targets), and is recorded in
-- oms.order_history with who (oms.actor, else the session user) and why (oms.reason).
--
-- INSERT is handled AFTER the row is in: an INSERT ... ON CONFLICT DO NOTHING that skips the row
-- leaves no history. UPDATE is handled BEFORE, so that an illegal move fails before any index is
-- touched, and so that orders.updated_at can be set in the new row itself. The trigger names sort
-- after most names on purpose: BEFORE triggers fire in name order, and this one must see the final
-- state of the row.
--
-- The function is SECURITY DEFINER: the history is an audit trail, written whether or not the role
-- changing the order may write to oms.order_history itself. It runs no SQL built from its input.

CREATE FUNCTION oms.state_trigger() RETURNS trigger
	LANGUAGE c SECURITY DEFINER
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_state_trigger';
COMMENT ON FUNCTION oms.state_trigger() IS 'Trigger on orders (argument ''order'') and order_lines (''line''): checks every change of state against oms.is_legal, records it in oms.order_history, sets orders.updated_at';

CREATE TRIGGER zz_state_insert AFTER INSERT ON oms.orders
	FOR EACH ROW EXECUTE FUNCTION oms.state_trigger('order');
COMMENT ON TRIGGER zz_state_insert ON oms.orders IS 'Records the first state of a new order in oms.order_history';
CREATE TRIGGER zz_state_update BEFORE UPDATE ON oms.orders
	FOR EACH ROW EXECUTE FUNCTION oms.state_trigger('order');
COMMENT ON TRIGGER zz_state_update ON oms.orders IS 'Checks and records a change of the order''s state; sets updated_at';

CREATE TRIGGER zz_state_insert AFTER INSERT ON oms.order_lines
	FOR EACH ROW EXECUTE FUNCTION oms.state_trigger('line');
COMMENT ON TRIGGER zz_state_insert ON oms.order_lines IS 'Records the first state of a new order line in oms.order_history';
CREATE TRIGGER zz_state_update BEFORE UPDATE OF state ON oms.order_lines
	FOR EACH ROW EXECUTE FUNCTION oms.state_trigger('line');
COMMENT ON TRIGGER zz_state_update ON oms.order_lines IS 'Checks and records a change of the line''s state';

-- ===== sql/parts/46_events.sql
-- The transactional outbox (src/events.c): every change that a customer or an integration must
-- hear about writes a row of oms.events in its own transaction, so an aborted change leaves no
-- event and a committed one always has its event. Consumers read with oms.next_events() and
-- acknowledge with oms.ack_events(); each named consumer has its own position, sees every event,
-- and gets again what it has not acknowledged (at least once). NOTIFY oms_events is only a
-- wake-up; the table is the truth.

CREATE SEQUENCE oms.events_id_seq AS bigint NO CYCLE CACHE 1;
COMMENT ON SEQUENCE oms.events_id_seq IS 'Ids of oms.events, taken by the event trigger; must keep CACHE 1 (ids are taken in one global order)';

CREATE TABLE oms.events (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint NOT NULL,
	order_id		bigint,
	type			text NOT NULL CONSTRAINT events_type_known CHECK (type IN (
						'order_received', 'line_backordered', 'order_on_hold', 'order_confirmed',
						'order_released', 'shipped', 'ready_for_pickup', 'delivered', 'tracking',
						'delayed', 'pickup_uncollected', 'cancelled', 'line_cancelled',
						'address_changed', 'payment_authorized', 'payment_captured', 'payment_voided',
						'refunded', 'return_created', 'return_received', 'exchange_created', 'line_allocated')),
	payload			jsonb NOT NULL DEFAULT '{}' CHECK (pg_catalog.jsonb_typeof(payload) = 'object'),
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	xid_horizon		pg_catalog.xid8 NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
ALTER SEQUENCE oms.events_id_seq OWNED BY oms.events.id;
COMMENT ON TABLE oms.events IS 'Transactional outbox: one row per thing that happened to an order, written in the same transaction; read with oms.next_events(), acknowledged with oms.ack_events()';
COMMENT ON COLUMN oms.events.id IS 'Taken by the event trigger from oms.events_id_seq; increases in the order events were written';
COMMENT ON COLUMN oms.events.type IS 'What happened (see the README for each type and its payload)';
COMMENT ON COLUMN oms.events.payload IS 'What a customer message or an integration needs: order reference, channel, customer contact, lines, dates, tracking; never card data';
COMMENT ON COLUMN oms.events.xid_horizon IS 'The next transaction id when the event took its id: the event is handed out only once every transaction older than this has finished, so no event with a smaller id can still appear';

CREATE FUNCTION oms.event_trigger() RETURNS trigger
	LANGUAGE c
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_event_trigger';
COMMENT ON FUNCTION oms.event_trigger() IS 'Trigger on oms.events: takes the id and the xid horizon (in that order, after the transaction has its id), and queues NOTIFY oms_events when oms.notify_events = commit';

CREATE TRIGGER events_number BEFORE INSERT ON oms.events
	FOR EACH ROW EXECUTE FUNCTION oms.event_trigger();
COMMENT ON TRIGGER events_number ON oms.events IS 'Numbers every event so that consumers never skip one that commits late (see src/events.c)';

CREATE TABLE oms.event_consumers (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id() REFERENCES oms.tenants,
	consumer		text NOT NULL CHECK (consumer ~ '^[A-Za-z0-9_.:-]{1,100}$'),
	acked_up_to		bigint NOT NULL DEFAULT 0 CHECK (acked_up_to >= 0),
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	acked_at		timestamptz,
	PRIMARY KEY (tenant_id, consumer)
);
COMMENT ON TABLE oms.event_consumers IS 'Named readers of oms.events (a mailer, an ERP bridge), each with the id up to which it has acknowledged; created by its first oms.next_events() call';

-- Refuses a bad consumer name (22023).
CREATE FUNCTION oms._check_consumer(p_consumer text) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_consumer IS NULL OR p_consumer !~ '^[A-Za-z0-9_.:-]{1,100}$' THEN
		RAISE EXCEPTION 'invalid event consumer name "%"', coalesce(p_consumer, 'NULL')
			USING ERRCODE = '22023',
			      HINT = 'A consumer name has 1 to 100 letters, digits, "_", ".", ":" or "-", e.g. ''mailer''.';
	END IF;
END
$$;
COMMENT ON FUNCTION oms._check_consumer(text) IS 'Internal: refuses (22023) an event consumer name that is not 1 to 100 letters, digits, _ . : -';

CREATE FUNCTION oms.next_events(consumer text, max int DEFAULT 100)
	RETURNS TABLE (id bigint, order_id bigint, type text, payload jsonb, created_at timestamptz)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_pos		bigint;
BEGIN
	PERFORM oms._check_consumer(next_events.consumer);
	IF next_events.max IS NULL OR next_events.max < 1 OR next_events.max > 10000 THEN
		RAISE EXCEPTION 'invalid max % of events for consumer "%"', coalesce(next_events.max::text, 'NULL'), next_events.consumer
			USING ERRCODE = '22023', HINT = 'Ask for 1 to 10000 events at a time.';
	END IF;
	SELECT c.acked_up_to INTO v_pos FROM oms.event_consumers c
		WHERE c.tenant_id = v_tenant AND c.consumer = next_events.consumer;

	-- The next events after the consumer's position, in id order, up to the last one that is
	-- safe: once an event's xid horizon is at most this snapshot's xmin, every smaller id is final
	-- (committed and visible here, or aborted), so nothing can appear behind it later. Events after
	-- it wait for the next call. This statement runs before any write of this function, so that
	-- this transaction's own id (if it gets one) does not hold the snapshot's xmin back.
	RETURN QUERY
		WITH candidates AS (
			SELECT e.id, e.order_id, e.type, e.payload, e.created_at, e.xid_horizon
			  FROM oms.events e
			 WHERE e.tenant_id = v_tenant AND e.id > coalesce(v_pos, 0)
			 ORDER BY e.id
			 LIMIT next_events.max)
		SELECT c.id, c.order_id, c.type, c.payload, c.created_at
		  FROM candidates c
		 WHERE c.id <= (SELECT pg_catalog.max(s.id) FROM candidates s
						 WHERE s.xid_horizon OPERATOR(pg_catalog.<=) pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()))
		 ORDER BY c.id;

	IF v_pos IS NULL THEN
		INSERT INTO oms.event_consumers AS c (tenant_id, consumer) VALUES (v_tenant, next_events.consumer)
			ON CONFLICT ON CONSTRAINT event_consumers_pkey DO NOTHING;
	END IF;
	RETURN;
END
$$;
COMMENT ON FUNCTION oms.next_events(text, int) IS 'The next events (at most max, in commit order for each order) after what the consumer has acknowledged; the same events come again until acknowledged; registers a new consumer at the oldest retained event';

CREATE FUNCTION oms.ack_events(consumer text, up_to bigint) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_pos		bigint;
BEGIN
	PERFORM oms._check_consumer(ack_events.consumer);
	SELECT c.acked_up_to INTO v_pos FROM oms.event_consumers c
		WHERE c.tenant_id = v_tenant AND c.consumer = ack_events.consumer;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown event consumer "%"', ack_events.consumer
			USING ERRCODE = '22023', HINT = 'A consumer is registered by its first call of oms.next_events().';
	END IF;
	IF up_to IS NULL OR up_to < 0 THEN
		RAISE EXCEPTION 'invalid event id % to acknowledge for consumer "%"', coalesce(up_to::text, 'NULL'), ack_events.consumer
			USING ERRCODE = '22023', HINT = 'Acknowledge the id of the last event that oms.next_events() returned.';
	END IF;
	IF up_to <= v_pos THEN
		RETURN v_pos;				-- already acknowledged: a retried ack changes nothing
	END IF;
	-- Only an event that next_events() could have handed out: acknowledging beyond it would skip
	-- events that are not final yet.
	IF NOT EXISTS (SELECT FROM oms.events e
					WHERE e.tenant_id = v_tenant AND e.id = up_to
					  AND e.xid_horizon OPERATOR(pg_catalog.<=) pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())) THEN
		RAISE EXCEPTION 'event % cannot be acknowledged by consumer "%": it has not been delivered', up_to, ack_events.consumer
			USING ERRCODE = '22023',
			      DETAIL = format('The consumer has acknowledged up to %s.', v_pos),
			      HINT = 'Acknowledge the id of the last event that oms.next_events() returned.';
	END IF;
	UPDATE oms.event_consumers c
	   SET acked_up_to = GREATEST(c.acked_up_to, up_to), acked_at = pg_catalog.now()
	 WHERE c.tenant_id = v_tenant AND c.consumer = ack_events.consumer
	RETURNING c.acked_up_to INTO v_pos;
	RETURN v_pos;
END
$$;
COMMENT ON FUNCTION oms.ack_events(text, bigint) IS 'Acknowledges every event up to and including up_to for the consumer (idempotent); returns the consumer''s position';

CREATE FUNCTION oms.drop_event_consumer(consumer text) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	PERFORM oms._check_consumer(drop_event_consumer.consumer);
	DELETE FROM oms.event_consumers c
		WHERE c.tenant_id = oms.current_tenant_id() AND c.consumer = drop_event_consumer.consumer;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION oms.drop_event_consumer(text) IS 'Forgets a consumer, so that its position no longer keeps events from being purged; true when it existed';

CREATE FUNCTION oms.purge_events(older_than interval, batch int DEFAULT 1000) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_n bigint;
BEGIN
	IF older_than IS NULL OR older_than < interval '0' THEN
		RAISE EXCEPTION 'invalid retention %', coalesce(older_than::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Events older than this interval (0 or more) are purged once acknowledged.';
	END IF;
	IF batch IS NULL OR batch < 1 OR batch > 100000 THEN
		RAISE EXCEPTION 'invalid batch size %', coalesce(batch::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Purge 1 to 100000 events per call.';
	END IF;
	-- Per tenant, the oldest events that every consumer has acknowledged; of those, the ones
	-- older than the retention. Only the first batch by id is looked at, so that a round costs the
	-- batch, not the table (created_at grows with id, so the old ones come first).
	WITH doomed AS (
		SELECT d.tenant_id, d.id
		  FROM oms.tenants t
		 CROSS JOIN LATERAL (
			SELECT e.tenant_id, e.id, e.created_at
			  FROM oms.events e
			 WHERE e.tenant_id = t.id
			   AND e.id <= coalesce((SELECT pg_catalog.min(c.acked_up_to) FROM oms.event_consumers c
									  WHERE c.tenant_id = t.id), 9223372036854775807)
			 ORDER BY e.id
			 LIMIT batch) d
		 WHERE d.created_at < pg_catalog.now() - older_than
		 LIMIT batch),
	gone AS (
		DELETE FROM oms.events e USING doomed d
		 WHERE e.tenant_id = d.tenant_id AND e.id = d.id
		RETURNING 1)
	SELECT pg_catalog.count(*) INTO v_n FROM gone;
	RETURN v_n;
END
$$;
COMMENT ON FUNCTION oms.purge_events(interval, int) IS 'Deletes up to batch events (all tenants) that are older than older_than and acknowledged by every consumer of their tenant; returns how many (the background worker calls it with oms.event_retention)';

CREATE FUNCTION oms._events_to_announce(after bigint)
	RETURNS TABLE (tenant text, up_to bigint)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	WITH safe AS (
		SELECT pg_catalog.max(m.id) AS up_to
		  FROM oms.tenants t
		 CROSS JOIN LATERAL (
			SELECT e.id FROM oms.events e
			 WHERE e.tenant_id = t.id AND e.id > after
			   AND e.xid_horizon OPERATOR(pg_catalog.<=) pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())
			 ORDER BY e.id DESC LIMIT 1) m)
	SELECT t.code, s.up_to
	  FROM safe s, oms.tenants t
	 WHERE s.up_to IS NOT NULL
	   AND EXISTS (SELECT FROM oms.events e WHERE e.tenant_id = t.id AND e.id > after AND e.id <= s.up_to)
	 ORDER BY t.code;
END;
COMMENT ON FUNCTION oms._events_to_announce(bigint) IS 'Internal (worker, oms.notify_events = worker): the tenants with events after the given id up to the newest safe one, and that id';

-- The part of every payload that says which order it is about, and whom to tell.
CREATE FUNCTION oms._order_header(p_tenant int, p_order bigint) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (SELECT jsonb_build_object(
					'order_id', o.id, 'order_ref', o.external_id, 'channel', c.code,
					'customer', jsonb_strip_nulls(jsonb_build_object(
						'ref', o.customer_ref, 'name', o.customer_name, 'email', o.customer_email,
						'phone', o.customer_phone)))
			  FROM oms.orders o
			  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
			 WHERE o.tenant_id = p_tenant AND o.id = p_order);
END
$$;
COMMENT ON FUNCTION oms._order_header(int, bigint) IS 'Internal: the order part of an event payload: order id and reference, channel, customer contact';

-- ===== sql/parts/50_atp.sql
-- Available to promise (src/atp.c): what can still be sold of a SKU, per location and network.
--
-- oms.atp() does not pin search_path: it runs no SQL (it reads tables of schema oms, found by
-- schema and name on its first call, through their indexes), so no name is resolved through the
-- search path, and a SET clause would wrap every call, on the path of every product page view,
-- in a GUC save and restore that costs about a third of its time (measured).

CREATE FUNCTION oms.atp(sku text, location text DEFAULT NULL) RETURNS bigint
	LANGUAGE c STABLE PARALLEL SAFE
	AS 'MODULE_PATHNAME', 'oms_atp';
COMMENT ON FUNCTION oms.atp(text, text) IS 'Units of a SKU that can be promised now: greatest(on_hand - reserved - safety_stock, 0) at a location (0 when inactive or not stocked), or summed over the active locations that can ship when location is NULL; current tenant; unknown SKU or location: 22023';

CREATE FUNCTION oms.atp_by_location(sku text)
	RETURNS TABLE (location text, kind text, on_hand bigint, reserved bigint, safety_stock bigint,
				   available bigint, can_ship boolean, can_pickup boolean)
	LANGUAGE c STABLE STRICT PARALLEL SAFE ROWS 10
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_atp_by_location';
COMMENT ON FUNCTION oms.atp_by_location(text) IS 'Stock of a SKU at every active location that has a stock row, by location priority then code: on_hand, reserved, safety_stock, available (greatest(on_hand - reserved - safety_stock, 0)), can_ship, can_pickup; current tenant; unknown SKU: 22023';

-- ===== sql/parts/55_reservation.sql
-- Reservations move stock.reserved (src/reservation.c): the reservation trigger is the only way
-- reserved changes, the check and the take are one UPDATE, and the stock guard refuses every
-- other change of reserved. Reservations honour safety stock: a reservation takes at most
-- on_hand - reserved - safety_stock units, what oms.atp() promises.

CREATE FUNCTION oms.reservation_trigger() RETURNS trigger
	LANGUAGE c
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_reservation_trigger';
COMMENT ON FUNCTION oms.reservation_trigger() IS 'Trigger on oms.reservations: an insert takes qty from stock.reserved with the availability check in the same UPDATE (error OM001 when on_hand - reserved - safety_stock is short), a delete gives it back, an update moves the difference or the whole reservation';

CREATE TRIGGER reservations_move_stock
	AFTER INSERT OR UPDATE OR DELETE ON oms.reservations
	FOR EACH ROW EXECUTE FUNCTION oms.reservation_trigger();
COMMENT ON TRIGGER reservations_move_stock ON oms.reservations IS 'Keeps stock.reserved equal to the sum of the reservations, in the same transaction; refuses to oversell (OM001)';

CREATE FUNCTION oms.stock_guard() RETURNS trigger
	LANGUAGE c
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_stock_guard';
COMMENT ON FUNCTION oms.stock_guard() IS 'Trigger on oms.stock: refuses (OM003) any change of reserved not made by the reservation trigger, a new row with reserved <> 0, and deleting or re-keying a row with reserved units';

CREATE TRIGGER stock_reserved_guard
	BEFORE INSERT OR UPDATE OR DELETE ON oms.stock
	FOR EACH ROW EXECUTE FUNCTION oms.stock_guard();
COMMENT ON TRIGGER stock_reserved_guard ON oms.stock IS 'reserved moves only through oms.reservations (error OM003 otherwise), so the counter cannot drift';

-- The invariant checks: one row per broken invariant, none when healthy.
CREATE FUNCTION oms.check_stock_invariants(tenant text)
	RETURNS TABLE (sku text, location text, on_hand bigint, reserved bigint, reservations_sum bigint,
				   problem text)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant_id int;
BEGIN
	SELECT t.id INTO v_tenant_id FROM oms.tenants t WHERE t.code = check_stock_invariants.tenant;
	IF v_tenant_id IS NULL THEN
		RAISE EXCEPTION 'unknown tenant "%"', oms._clip(check_stock_invariants.tenant)
			USING ERRCODE = '22023',
			      HINT = 'Tenants are listed in oms.tenants.';
	END IF;
	RETURN QUERY
	WITH r AS (
		SELECT r.item_id, r.location_id, pg_catalog.sum(r.qty)::bigint AS qty
		  FROM oms.reservations r
		 WHERE r.tenant_id = v_tenant_id AND r.supply_id IS NULL	-- pre-orders take supply (64_preorders.sql)
		 GROUP BY r.item_id, r.location_id
	), s AS (
		SELECT s.item_id, s.location_id, s.on_hand, s.reserved
		  FROM oms.stock s
		 WHERE s.tenant_id = v_tenant_id
	)
	SELECT i.sku, l.code, s.on_hand, s.reserved, coalesce(r.qty, 0), p.problem
	  FROM s FULL JOIN r ON r.item_id = s.item_id AND r.location_id = s.location_id
	  JOIN oms.items i ON i.tenant_id = v_tenant_id AND i.id = coalesce(s.item_id, r.item_id)
	  JOIN oms.locations l ON l.tenant_id = v_tenant_id AND l.id = coalesce(s.location_id, r.location_id)
	 CROSS JOIN LATERAL (VALUES
		(CASE WHEN s.item_id IS NULL THEN 'reservations without a stock row' END),
		(CASE WHEN s.reserved <> coalesce(r.qty, 0) THEN 'reserved differs from the sum of reservations' END),
		(CASE WHEN s.reserved > s.on_hand THEN 'reserved exceeds on_hand' END),
		(CASE WHEN s.reserved < 0 THEN 'reserved is negative' END)) AS p(problem)
	 WHERE p.problem IS NOT NULL
	UNION ALL
	-- Supply: promised equals the sum of its pre-order reservations, within [0, qty].
	SELECT i.sku, l.code, u.qty, u.promised, coalesce(x.qty, 0), p.problem
	  FROM oms.supply u
	  JOIN oms.items i ON i.tenant_id = u.tenant_id AND i.id = u.item_id
	  JOIN oms.locations l ON l.tenant_id = u.tenant_id AND l.id = u.location_id
	  LEFT JOIN (SELECT r.supply_id, pg_catalog.sum(r.qty)::bigint AS qty FROM oms.reservations r
				  WHERE r.tenant_id = v_tenant_id AND r.supply_id IS NOT NULL GROUP BY r.supply_id) x
			 ON x.supply_id = u.id
	 CROSS JOIN LATERAL (VALUES
		(CASE WHEN u.promised <> coalesce(x.qty, 0) THEN format('promised of supply %s differs from the sum of its pre-orders', u.id) END),
		(CASE WHEN u.promised > u.qty OR u.promised < 0 THEN format('promised of supply %s outside 0 to qty', u.id) END)) AS p(problem)
	 WHERE u.tenant_id = v_tenant_id AND p.problem IS NOT NULL
	 ORDER BY 1, 2, 6;
END
$$;
COMMENT ON FUNCTION oms.check_stock_invariants(text) IS 'Stock rows of the given tenant that break an invariant (reserved = sum of its reservations, 0 <= reserved <= on_hand, no reservation without a stock row), and supply whose promised differs from its pre-orders (on_hand: supply qty, reserved: promised); one row per problem; empty when healthy';

CREATE FUNCTION oms.check_stock_invariants()
	RETURNS TABLE (sku text, location text, on_hand bigint, reserved bigint, reservations_sum bigint,
				   problem text)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
AS $$
	SELECT * FROM oms.check_stock_invariants(pg_catalog.current_setting('oms.tenant'))
$$;
COMMENT ON FUNCTION oms.check_stock_invariants() IS 'Stock rows of the current tenant that break an invariant (reserved = sum of its reservations, 0 <= reserved <= on_hand), one row per problem; empty when healthy';

CREATE FUNCTION oms.check_stock_invariants_all()
	RETURNS TABLE (tenant text, sku text, location text, on_hand bigint, reserved bigint,
				   reservations_sum bigint, problem text)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
AS $$
	SELECT t.code, c.*
	  FROM oms.tenants t
	 CROSS JOIN LATERAL oms.check_stock_invariants(t.code) AS c
	 ORDER BY t.code, c.sku, c.location, c.problem
$$;
COMMENT ON FUNCTION oms.check_stock_invariants_all() IS 'The stock invariant problems of every tenant (for administrators and stress tests); empty when healthy';
REVOKE ALL ON FUNCTION oms.check_stock_invariants_all() FROM PUBLIC;

-- ===== sql/parts/60_stock_api.sql
-- Stock API: set and adjust on_hand, always with a movement in the ledger.

-- Resolves a SKU of the current tenant to its item id; unknown SKU: 22023.
CREATE FUNCTION oms._item_id(p_tenant int, p_sku text) RETURNS int
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_id int;
BEGIN
	SELECT i.id INTO v_id FROM oms.items i WHERE i.tenant_id = p_tenant AND i.sku = p_sku;
	IF v_id IS NULL THEN
		RAISE EXCEPTION 'unknown SKU "%"', oms._clip(p_sku)
			USING ERRCODE = '22023',
			      HINT = 'Items are rows of oms.items of the current tenant (setting oms.tenant).';
	END IF;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms._item_id(int, text) IS 'Internal: the item id of a SKU in a tenant; error 22023 naming an unknown SKU';

-- Resolves a location code of the current tenant to its id; unknown location: 22023.
CREATE FUNCTION oms._location_id(p_tenant int, p_code text) RETURNS int
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_id int;
BEGIN
	SELECT l.id INTO v_id FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.code = p_code;
	IF v_id IS NULL THEN
		RAISE EXCEPTION 'unknown location "%"', oms._clip(p_code)
			USING ERRCODE = '22023',
			      HINT = 'Locations are rows of oms.locations of the current tenant (setting oms.tenant).';
	END IF;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms._location_id(int, text) IS 'Internal: the location id of a location code in a tenant; error 22023 naming an unknown location';

-- Checks the free-text reason that every stock change carries.
CREATE FUNCTION oms._check_reason(p_reason text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_reason IS NULL OR btrim(p_reason) = '' THEN
		RAISE EXCEPTION 'a reason is required'
			USING ERRCODE = '22023',
			      HINT = 'Say why the stock changes (e.g. ''cycle count'', ''damaged''); it is kept in oms.stock_movements.';
	END IF;
	IF length(p_reason) > 1000 THEN
		RAISE EXCEPTION 'reason is too long (% characters)', length(p_reason)
			USING ERRCODE = '22023', HINT = 'A reason has at most 1000 characters.';
	END IF;
	RETURN p_reason;
END
$$;
COMMENT ON FUNCTION oms._check_reason(text) IS 'Internal: refuses an empty or over-long reason (22023)';

CREATE FUNCTION oms.set_stock(sku text, location text, on_hand bigint, reason text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int := oms._item_id(v_tenant, sku);
	v_loc		int := oms._location_id(v_tenant, location);
	v_old		bigint;
	v_reserved	bigint;
BEGIN
	PERFORM oms._check_reason(reason);
	IF set_stock.on_hand IS NULL OR set_stock.on_hand < 0 OR set_stock.on_hand > 1000000000000 THEN
		RAISE EXCEPTION 'invalid on_hand % for SKU "%" at location "%"', coalesce(set_stock.on_hand::text, 'NULL'), sku, location
			USING ERRCODE = '22023', HINT = 'on_hand is a whole number of units from 0 to 10^12.';
	END IF;

	INSERT INTO oms.stock AS s (tenant_id, item_id, location_id)
		VALUES (v_tenant, v_item, v_loc)
		ON CONFLICT (tenant_id, item_id, location_id) DO NOTHING;
	SELECT s.on_hand, s.reserved INTO v_old, v_reserved
		FROM oms.stock s
		WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc
		FOR UPDATE;
	IF set_stock.on_hand < v_reserved THEN
		RAISE EXCEPTION 'on hand of SKU "%" at location "%" cannot go below what is reserved', sku, location
			USING ERRCODE = 'OM002',
			      DETAIL = format('Requested on hand %s, reserved %s.', set_stock.on_hand, v_reserved),
			      HINT = 'Cancel or move the orders that hold this stock first (see oms.reservations).';
	END IF;
	UPDATE oms.stock s SET on_hand = set_stock.on_hand, updated_at = pg_catalog.now()
		WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc;
	INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, moved_by)
		VALUES (v_tenant, v_item, v_loc, 'count', set_stock.on_hand - v_old, set_stock.on_hand, reason, oms._actor());
	RETURN set_stock.on_hand;
END
$$;
COMMENT ON FUNCTION oms.set_stock(text, text, bigint, text) IS 'Sets on hand of a SKU at a location (a stock count) and records the movement; returns the new on hand';

CREATE FUNCTION oms.adjust_stock(sku text, location text, delta bigint, reason text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int := oms._item_id(v_tenant, sku);
	v_loc		int := oms._location_id(v_tenant, location);
	v_new		bigint;
	v_old		bigint;
	v_reserved	bigint;
BEGIN
	PERFORM oms._check_reason(reason);
	IF delta IS NULL OR delta = 0 OR delta NOT BETWEEN -1000000000000 AND 1000000000000 THEN	-- (abs(-2^63) overflows)
		RAISE EXCEPTION 'invalid delta % for SKU "%" at location "%"', coalesce(delta::text, 'NULL'), sku, location
			USING ERRCODE = '22023', HINT = 'delta is the signed change of on hand, not 0 and at most 10^12 either way: +5 for found units, -2 for damaged ones.';
	END IF;

	-- One statement checks and changes, so concurrent adjustments and reservations cannot race.
	UPDATE oms.stock s SET on_hand = s.on_hand + delta, updated_at = pg_catalog.now()
		WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc
		  AND s.on_hand + delta >= s.reserved
		RETURNING s.on_hand INTO v_new;
	IF v_new IS NULL THEN
		SELECT s.on_hand, s.reserved INTO v_old, v_reserved
			FROM oms.stock s
			WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc;
		IF v_old IS NULL AND delta > 0 THEN
			INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, on_hand)
				VALUES (v_tenant, v_item, v_loc, delta)
				ON CONFLICT (tenant_id, item_id, location_id)
				DO UPDATE SET on_hand = s.on_hand + EXCLUDED.on_hand, updated_at = pg_catalog.now()
				RETURNING s.on_hand INTO v_new;
		ELSE
			RAISE EXCEPTION 'on hand of SKU "%" at location "%" cannot go below %', sku, location,
					CASE WHEN coalesce(v_reserved, 0) > 0 THEN 'what is reserved' ELSE '0' END
				USING ERRCODE = 'OM002',
				      DETAIL = format('On hand %s, reserved %s, delta %s.', coalesce(v_old, 0), coalesce(v_reserved, 0), delta),
				      HINT = 'On hand never goes below reserved or below 0; cancel or move the orders that hold this stock first.';
		END IF;
	END IF;
	INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, moved_by)
		VALUES (v_tenant, v_item, v_loc, 'adjustment', delta, v_new, reason, oms._actor());
	RETURN v_new;
END
$$;
COMMENT ON FUNCTION oms.adjust_stock(text, text, bigint, text) IS 'Adds a signed delta to on hand of a SKU at a location and records the movement; returns the new on hand';

-- ===== sql/parts/62_shipping.sql
-- The shipping model that routing (src/routing.c) weighs: where a location is, how long it takes
-- to hand a package over and what that costs, until when an order still leaves today, how many
-- orders it can take a day; the carrier services that carry packages (cost, transit days and CO2
-- as linear functions of weight and distance); the routing profiles that weigh cost, days, CO2 and
-- packages; country centroids for destinations without coordinates.
--
-- The formulas (documented in the README, section "Routing"), for a package of w kg travelling
-- d km, the great-circle distance from the location to the destination:
--
--	cost	= location.cost_per_package + base_cost + cost_per_kg * w + cost_per_km * d
--	transit	= base_days + floor(d / km_per_day)				(km_per_day NULL: base_days)
--	co2_g	= d * (co2_g_per_km + co2_g_per_kg_km * w)
--	eta		= start day + location.handling_days + transit
--
-- where the start day is the location's local date now, plus one day from its cutoff time on.
--
-- The columns that routing adds to the foundation's tables are added here, so that the shipping
-- model is one file.

-- ----- locations: handling, cost per package, cutoff, time zone
ALTER TABLE oms.locations
	ADD COLUMN handling_days int NOT NULL DEFAULT 0 CHECK (handling_days BETWEEN 0 AND 365),
	ADD COLUMN cost_per_package numeric NOT NULL DEFAULT 0 CHECK (cost_per_package >= 0),
	ADD COLUMN cutoff_time time,
	ADD COLUMN timezone text
		CHECK (timezone IS NULL OR (timestamptz '2000-01-01 00:00+00' AT TIME ZONE timezone) IS NOT NULL);
COMMENT ON COLUMN oms.locations.handling_days IS 'Days the location needs to pick, pack and hand a package to the carrier (0: the same day); for a pickup store, days to stage an order';
COMMENT ON COLUMN oms.locations.cost_per_package IS 'Handling cost of one package shipped from here, added to the carrier''s cost (tenant''s accounting currency)';
COMMENT ON COLUMN oms.locations.cutoff_time IS 'Local time after which an order starts its handling the next day; NULL: no cutoff';
COMMENT ON COLUMN oms.locations.timezone IS 'Time zone of cutoff_time and of the capacity day (e.g. Europe/Rome); NULL: the session''s TimeZone';
COMMENT ON COLUMN oms.locations.daily_capacity IS 'Orders the location can ship per day (one per order and location, counted in oms.location_capacity_used); NULL: unlimited and not counted';

-- ----- channels and orders: the routing profile
ALTER TABLE oms.channels
	ADD COLUMN routing_profile text NOT NULL DEFAULT 'balanced' CHECK (routing_profile ~ '^[a-z0-9_-]{1,63}$');
COMMENT ON COLUMN oms.channels.routing_profile IS 'Routing profile (oms.routing_profiles.code) of the channel''s orders unless the order names one ("routing")';
ALTER TABLE oms.orders
	ADD COLUMN routing_profile text;
COMMENT ON COLUMN oms.orders.routing_profile IS 'Routing profile the order was routed with (also used when a line is re-routed)';

-- ----- supply: what pre-orders have promised of it
ALTER TABLE oms.supply
	ADD COLUMN promised bigint NOT NULL DEFAULT 0,
	ADD CONSTRAINT supply_promised_within_qty CHECK (promised >= 0 AND promised <= qty);
COMMENT ON COLUMN oms.supply.promised IS 'Units of this supply promised to pre-orders (reservations with supply_id); moved only by the reservation trigger';

-- ----- country centroids: the fallback position of a destination without coordinates
CREATE TABLE oms.country_centroids (
	country		char(2) PRIMARY KEY CHECK (country ~ '^[A-Z]{2}$'),
	name		text NOT NULL,
	latitude	double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
	longitude	double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
	builtin		boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE oms.country_centroids IS 'Approximate geographic centre of a country (shared by all tenants): where routing places a destination or location that has a country but no coordinates';

INSERT INTO oms.country_centroids (country, name, latitude, longitude, builtin) VALUES
	('AT', 'Austria', 47.52, 14.55, true), ('BE', 'Belgium', 50.50, 4.47, true),
	('BG', 'Bulgaria', 42.73, 25.49, true), ('CH', 'Switzerland', 46.82, 8.23, true),
	('CZ', 'Czechia', 49.82, 15.47, true), ('DE', 'Germany', 51.17, 10.45, true),
	('DK', 'Denmark', 56.26, 9.50, true), ('ES', 'Spain', 40.46, -3.75, true),
	('FR', 'France', 46.23, 2.21, true), ('GB', 'United Kingdom', 55.38, -3.44, true),
	('GR', 'Greece', 39.07, 21.82, true), ('HR', 'Croatia', 45.10, 15.20, true),
	('HU', 'Hungary', 47.16, 19.50, true), ('IE', 'Ireland', 53.41, -8.24, true),
	('IT', 'Italy', 42.83, 12.83, true), ('MD', 'Moldova', 47.41, 28.37, true),
	('NL', 'Netherlands', 52.13, 5.29, true), ('PL', 'Poland', 51.92, 19.15, true),
	('PT', 'Portugal', 39.40, -8.22, true), ('RO', 'Romania', 45.94, 24.97, true),
	('SE', 'Sweden', 60.13, 18.64, true), ('SI', 'Slovenia', 46.15, 14.99, true),
	('SK', 'Slovakia', 48.67, 19.70, true);

-- ----- carrier services
CREATE TABLE oms.carrier_services (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id() REFERENCES oms.tenants,
	id				int GENERATED ALWAYS AS IDENTITY,
	carrier			text NOT NULL CHECK (carrier ~ '^[a-z0-9_-]{1,40}$'),
	service			text NOT NULL CHECK (service ~ '^[a-z0-9_-]{1,40}$'),
	code			text GENERATED ALWAYS AS (carrier || '.' || service) STORED,
	name			text,
	mode			text NOT NULL DEFAULT 'standard' CHECK (mode IN ('economy', 'standard', 'express')),
	base_cost		numeric NOT NULL DEFAULT 0 CHECK (base_cost >= 0),
	cost_per_kg		numeric NOT NULL DEFAULT 0 CHECK (cost_per_kg >= 0),
	cost_per_km		numeric NOT NULL DEFAULT 0 CHECK (cost_per_km >= 0),
	base_days		int NOT NULL DEFAULT 1 CHECK (base_days BETWEEN 0 AND 365),
	km_per_day		numeric CHECK (km_per_day > 0),
	co2_g_per_km	numeric NOT NULL DEFAULT 0 CHECK (co2_g_per_km >= 0),
	co2_g_per_kg_km	numeric NOT NULL DEFAULT 0 CHECK (co2_g_per_kg_km >= 0),
	max_weight_kg	numeric CHECK (max_weight_kg > 0),
	max_distance_km	numeric CHECK (max_distance_km > 0),
	countries		text[] CHECK (countries IS NULL OR (cardinality(countries) > 0 AND array_position(countries, NULL) IS NULL
										  AND array_to_string(countries, ',') ~ '^[A-Z]{2}(,[A-Z]{2})*$')),
	active			boolean NOT NULL DEFAULT true,
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, carrier, service)
);
COMMENT ON TABLE oms.carrier_services IS 'Carrier services (code carrier.service, e.g. dhl.standard) with their linear cost, transit-day and CO2 formulas in package weight (kg) and distance (km); costs in the tenant''s accounting currency';
COMMENT ON COLUMN oms.carrier_services.mode IS 'Delivery mode offered at checkout (oms.promise): economy, standard or express';
COMMENT ON COLUMN oms.carrier_services.km_per_day IS 'Distance covered per transit day: transit = base_days + floor(distance / km_per_day); NULL: base_days whatever the distance';
COMMENT ON COLUMN oms.carrier_services.countries IS 'Destination countries served (ISO 3166 alpha-2); NULL: every country';

-- ----- routing profiles
CREATE TABLE oms.routing_profiles (
	id					int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id			int REFERENCES oms.tenants,
	code				text NOT NULL CHECK (code ~ '^[a-z0-9_-]{1,63}$'),
	name				text NOT NULL,
	weight_cost			double precision NOT NULL DEFAULT 1 CHECK (weight_cost >= 0),
	weight_days			double precision NOT NULL DEFAULT 0 CHECK (weight_days >= 0),
	weight_co2			double precision NOT NULL DEFAULT 0 CHECK (weight_co2 >= 0),
	weight_packages		double precision NOT NULL DEFAULT 0 CHECK (weight_packages >= 0),
	max_packages		int NOT NULL DEFAULT 3 CHECK (max_packages BETWEEN 1 AND 50),
	max_distance_km		numeric CHECK (max_distance_km > 0),
	location_kinds		text[] NOT NULL DEFAULT '{warehouse,store,3pl,vendor}'
		CHECK (cardinality(location_kinds) > 0 AND location_kinds <@ '{warehouse,store,3pl,vendor}'),
	allow_backorder		boolean NOT NULL DEFAULT true,
	allow_preorder		boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX routing_profiles_code_key ON oms.routing_profiles ((coalesce(tenant_id, 0)), code);
COMMENT ON TABLE oms.routing_profiles IS 'Named routing rule sets: the score of a plan is weight_cost * cost + weight_days * days until the last package arrives + weight_co2 * kg CO2 + weight_packages * packages (lower wins; location priority breaks ties); tenant_id NULL: built in, shared by every tenant, and a tenant row with the same code overrides it';
COMMENT ON COLUMN oms.routing_profiles.weight_co2 IS 'Weight of one kilogram of CO2';
COMMENT ON COLUMN oms.routing_profiles.max_packages IS 'At most this many packages (locations) per order; lines beyond it are backordered or not served';
COMMENT ON COLUMN oms.routing_profiles.max_distance_km IS 'Locations farther than this from the destination are not used; NULL: no limit';
COMMENT ON COLUMN oms.routing_profiles.location_kinds IS 'Kinds of location the profile ships from (e.g. no stores for bulky items)';

INSERT INTO oms.routing_profiles (tenant_id, code, name, weight_cost, weight_days, weight_co2, weight_packages, max_packages) VALUES
	(NULL, 'balanced', 'Balanced: cost, speed, emissions and few packages', 1, 1, 0.5, 2, 3),
	(NULL, 'cheapest', 'Lowest shipping cost', 1, 0, 0, 0, 5),
	(NULL, 'fastest', 'Earliest complete delivery, then cost', 0.01, 10, 0, 0.1, 5),
	(NULL, 'greenest', 'Least CO2, then cost', 0.01, 0, 1, 0, 5);

-- ----- daily capacity: orders taken per location and day
CREATE TABLE oms.location_capacity_used (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	location_id		int NOT NULL,
	day				date NOT NULL,
	used			int NOT NULL DEFAULT 0 CHECK (used >= 0),
	PRIMARY KEY (tenant_id, location_id, day),
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations
) WITH (fillfactor = 50);
COMMENT ON TABLE oms.location_capacity_used IS 'Orders a location with a daily_capacity has taken for a day (its local start day of handling); place_order counts one per order and location';

-- ----- locations excluded for a line (a location rejected it)
CREATE TABLE oms.line_exclusions (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	order_id		bigint NOT NULL,
	line_no			int NOT NULL,
	location_id		int NOT NULL,
	reason			text NOT NULL,
	excluded_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	excluded_by		text NOT NULL,
	PRIMARY KEY (tenant_id, order_id, line_no, location_id),
	FOREIGN KEY (tenant_id, order_id, line_no) REFERENCES oms.order_lines,
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations
);
COMMENT ON TABLE oms.line_exclusions IS 'Locations that rejected an order line (oms.reject_line): routing never sends that line there again';

SELECT pg_catalog.pg_extension_config_dump('oms.country_centroids', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('oms.carrier_services', '');
SELECT pg_catalog.pg_extension_config_dump('oms.routing_profiles', 'WHERE tenant_id IS NOT NULL');
SELECT pg_catalog.pg_extension_config_dump('oms.location_capacity_used', '');
SELECT pg_catalog.pg_extension_config_dump('oms.line_exclusions', '');

-- ===== sql/parts/63_routing.sql
-- Routing (src/routing.c, src/route_load.c, src/route_api.c): where each line of an order ships
-- from, with which carrier service, at what cost, CO2 and date, under a routing profile; and why.

CREATE FUNCTION oms.distance_km(lat1 double precision, lon1 double precision,
								lat2 double precision, lon2 double precision) RETURNS double precision
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_distance';
COMMENT ON FUNCTION oms.distance_km(double precision, double precision, double precision, double precision) IS 'Great-circle distance in km between two points (decimal degrees), on a sphere of radius 6371 km: the distance routing uses';

CREATE FUNCTION oms.route(lines jsonb, ship_to jsonb, profile text DEFAULT 'balanced')
	RETURNS TABLE (line_no int, sku text, location text, qty int, carrier_service text, cost numeric,
				   eta date, co2_g numeric, score double precision, reason text)
	LANGUAGE c STABLE
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_route';
COMMENT ON FUNCTION oms.route(jsonb, jsonb, text) IS 'Routes lines [{"sku","qty"}] to a ship-to address (or {"pickup": store}) under a routing profile: one row per line and location with the carrier service, cost, ETA, CO2 and score of the package that carries it; location NULL with the reason for a backordered or unservable line; reserves nothing';

CREATE FUNCTION oms.route_explain(lines jsonb, ship_to jsonb, profile text DEFAULT 'balanced')
	RETURNS TABLE (kind text, line_no int, sku text, location text, qty bigint, distance_km numeric,
				   carrier_service text, cost numeric, eta date, co2_g numeric, score double precision,
				   chosen boolean, reason text)
	LANGUAGE c STABLE
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_route_explain';
COMMENT ON FUNCTION oms.route_explain(jsonb, jsonb, text) IS 'How oms.route decides: the inputs as understood (kind input), every location holding a line''s SKU with what shipping the line alone from there costs and why it lost (candidate), every plan weighed with its score and why it lost (plan), and the answer (result)';

CREATE FUNCTION oms._route(p_tenant int, p_items int[], p_qtys int[], p_hold_locations int[],
						   p_hold_qtys int[], p_exclude_lines int[], p_exclude_locations int[],
						   p_ship_to jsonb, p_pickup int, p_profile text)
	RETURNS TABLE (line_no int, item_id int, location_id int, qty int, kind text, carrier_service text,
				   eta date, capacity_day date, supply_id bigint, reason text)
	LANGUAGE c STABLE
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_route_internal';
COMMENT ON FUNCTION oms._route(int, int[], int[], int[], int[], int[], int[], jsonb, int, text) IS 'Internal: oms.route for place_order and reject_line, on item and location ids, with the kind of fulfilment (ship, drop-ship, pickup, transfer, preorder, backorder, unservable), the capacity day taken and the supply a pre-order reserves';

CREATE FUNCTION oms.promise(cart jsonb, ship_to jsonb, profile text DEFAULT 'balanced')
	RETURNS TABLE (option text, location text, distance_km numeric, delivery_date date, cost numeric,
				   co2_g numeric, packages int, ships_from text, carrier_services text, detail text)
	LANGUAGE c STABLE
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_promise';
COMMENT ON FUNCTION oms.promise(jsonb, jsonb, text) IS 'The delivery options of a cart [{"sku","qty"}] for a checkout page: per delivery mode of the carrier services (economy, standard, express) the date the whole cart arrives, cost, CO2, packages and where from, and click & collect at the 3 nearest stores that have the whole cart (or, for {"pickup": store}, that store''s date, transfers included); reserves nothing';

-- ===== sql/parts/64_preorders.sql
-- Pre-orders reserve incoming supply, and time-phased ATP counts what supply can still promise.
--
-- A reservation with supply_id takes from oms.supply.promised instead of oms.stock.reserved: the
-- reservation trigger (src/reservation.c) checks and takes in one UPDATE (qty - promised must
-- cover it, else OM001), and oms.supply_guard() refuses every other change of promised (OM003),
-- as the stock guard does for reserved. When the goods arrive, the process that receives them
-- moves each pre-order reservation to stock (UPDATE ... SET supply_id = NULL): the trigger gives
-- the supply back and takes the stock, stock row first.

ALTER TABLE oms.supply
	ADD CONSTRAINT supply_item_location_key UNIQUE (tenant_id, id, item_id, location_id);

ALTER TABLE oms.reservations
	ADD COLUMN supply_id bigint,
	ADD CONSTRAINT reservations_supply_fkey FOREIGN KEY (tenant_id, supply_id, item_id, location_id)
		REFERENCES oms.supply (tenant_id, id, item_id, location_id),
	ADD CONSTRAINT reservations_supply_for_orders CHECK (supply_id IS NULL OR order_id IS NOT NULL);
CREATE INDEX reservations_supply_idx ON oms.reservations (tenant_id, supply_id) WHERE supply_id IS NOT NULL;
COMMENT ON COLUMN oms.reservations.supply_id IS 'A pre-order''s reservation of incoming supply (oms.supply), which moves supply.promised instead of stock.reserved; NULL: stock';

-- Pre-orders reserve their supply, after every stock row (the lock order), by supply id.
CREATE FUNCTION oms._reserve_supply(p_tenant int, p_order bigint, p_items int[], p_line int[], p_loc int[],
									p_qty int[], p_kind text[], p_supply bigint[]) RETURNS void
	LANGUAGE sql
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no, supply_id)
		SELECT p_tenant, p_items[p_line[n]], p_loc[n], p_qty[n], p_order, p_line[n], p_supply[n]
		  FROM generate_subscripts(p_line, 1) n
		 WHERE p_kind[n] = 'preorder'
		 ORDER BY p_items[p_line[n]], p_loc[n], p_supply[n];
END;
COMMENT ON FUNCTION oms._reserve_supply(int, bigint, int[], int[], int[], int[], text[], bigint[]) IS 'Internal: reserves the supply a route assigns to an order''s pre-ordered lines (OM001 when the supply was promised meanwhile)';

CREATE FUNCTION oms.supply_guard() RETURNS trigger
	LANGUAGE c
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_supply_guard';
COMMENT ON FUNCTION oms.supply_guard() IS 'Trigger on oms.supply: refuses (OM003) any change of promised not made by the reservation trigger, a new row with promised <> 0, and deleting or re-keying a row with promised units';

CREATE TRIGGER supply_promised_guard
	BEFORE INSERT OR UPDATE OR DELETE ON oms.supply
	FOR EACH ROW EXECUTE FUNCTION oms.supply_guard();
COMMENT ON TRIGGER supply_promised_guard ON oms.supply IS 'promised moves only through pre-order reservations (error OM003 otherwise)';

CREATE FUNCTION oms.atp(sku text, location text, on_date date) RETURNS bigint
	LANGUAGE c STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_atp_on';
COMMENT ON FUNCTION oms.atp(text, text, date) IS 'Time-phased ATP: units of a SKU that can be promised by on_date at a location (NULL: the active locations that can ship): ATP now plus the supply expected by then that pre-orders have not promised; current tenant; unknown SKU or location: 22023';

-- ===== sql/parts/65_allocation.sql
-- Location choice for order lines and cart holds (the foundation's rule; the routing engine
-- replaces it): the preferred location when it can serve the line in full (a cart's hold, or the
-- pickup store), else the active location that can ship with the lowest priority number (then the
-- lowest code) whose ATP covers the line in full. A line no location can serve gets no row.

CREATE FUNCTION oms._choose_locations(
	p_tenant	int,
	p_items		int[],
	p_qtys		int[],
	p_prefer	int[],		-- per line: preferred location (a hold's), or NULL
	p_credit	bigint[],	-- per line: units already held at the preferred location
	p_only		int			-- a pickup store: choose only it, or nothing
) RETURNS TABLE (idx int, location_id int)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	SELECT DISTINCT ON (l.idx) l.idx::int, s.location_id
	  FROM unnest(p_items, p_qtys, p_prefer, p_credit) WITH ORDINALITY AS l(item_id, qty, prefer, credit, idx)
	  JOIN oms.stock s ON s.tenant_id = p_tenant AND s.item_id = l.item_id
	  JOIN oms.locations loc ON loc.tenant_id = p_tenant AND loc.id = s.location_id
	 WHERE loc.active
	   AND (CASE WHEN p_only IS NOT NULL THEN loc.id = p_only ELSE loc.can_ship END)
	   AND s.on_hand - s.reserved - s.safety_stock
	       + (CASE WHEN s.location_id = l.prefer THEN coalesce(l.credit, 0) ELSE 0 END) >= l.qty
	 ORDER BY l.idx, (s.location_id = l.prefer) IS TRUE DESC, loc.priority, loc.code;
END;
COMMENT ON FUNCTION oms._choose_locations(int, int[], int[], int[], bigint[], int) IS 'Internal: per line, the location that serves it in full (preferred, else lowest priority number); no row when none can';

-- ===== sql/parts/66_holds.sql
-- Cart holds: stock set aside for a shopper's cart for a while (default 15 minutes). The hold is a
-- reservation row with cart and expires_at; the reservation trigger takes the stock, the
-- background worker deletes expired holds (giving it back), and place_order with the same cart
-- turns the holds into the order's reservations.

CREATE FUNCTION oms.hold(cart text, sku text, qty int, location text DEFAULT NULL,
						 ttl interval DEFAULT '15 minutes')
	RETURNS TABLE (held_location text, held_qty int, expires_at timestamptz)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int;
	v_loc		int;
	v_old_loc	int;
	v_old_qty	int;
	v_expires	timestamptz;
BEGIN
	IF hold.cart IS NULL OR hold.cart = '' OR length(hold.cart) > 200 THEN
		RAISE EXCEPTION 'invalid cart "%"', coalesce(oms._clip(hold.cart), 'NULL')
			USING ERRCODE = '22023', HINT = 'A cart id is a non-empty text of at most 200 characters.';
	END IF;
	v_item := oms._item_id(v_tenant, hold.sku);
	IF hold.qty IS NULL OR hold.qty < 0 THEN
		RAISE EXCEPTION 'invalid qty % for SKU "%" in cart "%"', coalesce(hold.qty::text, 'NULL'), hold.sku, hold.cart
			USING ERRCODE = '22023', HINT = 'qty is a whole number of units; 0 releases the hold.';
	END IF;
	IF ttl IS NULL OR ttl <= interval '0' OR ttl > interval '30 days' THEN
		RAISE EXCEPTION 'invalid ttl % for cart "%"', coalesce(ttl::text, 'NULL'), hold.cart
			USING ERRCODE = '22023', HINT = 'A hold lasts more than 0 and at most 30 days.';
	END IF;

	SELECT r.location_id, r.qty INTO v_old_loc, v_old_qty
		FROM oms.reservations r
		WHERE r.tenant_id = v_tenant AND r.cart = hold.cart AND r.item_id = v_item
		FOR UPDATE;

	IF hold.qty = 0 THEN
		DELETE FROM oms.reservations r WHERE r.tenant_id = v_tenant AND r.cart = hold.cart AND r.item_id = v_item;
		RETURN;
	END IF;

	IF hold.location IS NOT NULL THEN
		v_loc := oms._location_id(v_tenant, hold.location);
		IF NOT EXISTS (SELECT FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = v_loc AND l.active) THEN
			RAISE EXCEPTION 'location "%" is not active', hold.location
				USING ERRCODE = '22023', HINT = 'Hold stock at an active location, or pass NULL to let oms choose.';
		END IF;
	ELSE
		SELECT c.location_id INTO v_loc
			FROM oms._choose_locations(v_tenant, ARRAY[v_item], ARRAY[hold.qty], ARRAY[v_old_loc],
									   ARRAY[v_old_qty::bigint], NULL) c;
		IF v_loc IS NULL THEN
			RAISE EXCEPTION 'insufficient stock for SKU "%"', hold.sku
				USING ERRCODE = 'OM001',
				      DETAIL = format('Requested %s, available %s across the network, and no single location has %s.',
									  hold.qty, oms.atp(hold.sku) + coalesce(v_old_qty, 0), hold.qty),
				      HINT = 'Hold fewer units, or see oms.atp_by_location() for where the stock is.';
		END IF;
	END IF;
	v_expires := pg_catalog.now() + ttl;

	-- Insert or replace: the reservation trigger takes (or gives back) the difference, and
	-- refuses with OM001 what the location cannot serve.
	INSERT INTO oms.reservations AS r (tenant_id, item_id, location_id, qty, cart, expires_at)
		VALUES (v_tenant, v_item, v_loc, hold.qty, hold.cart, v_expires)
		ON CONFLICT (tenant_id, cart, item_id) WHERE cart IS NOT NULL
		DO UPDATE SET location_id = EXCLUDED.location_id, qty = EXCLUDED.qty, expires_at = EXCLUDED.expires_at;

	RETURN QUERY SELECT l.code, hold.qty, v_expires FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = v_loc;
END
$$;
COMMENT ON FUNCTION oms.hold(text, text, int, text, interval) IS 'Holds qty of a SKU for a cart until now() + ttl (replacing the cart''s earlier hold of that SKU); returns where, how many and until when';

CREATE FUNCTION oms.release_hold(cart text, sku text DEFAULT NULL) RETURNS int
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int;
	v_n			int := 0;
	r			record;
BEGIN
	IF release_hold.sku IS NOT NULL THEN
		v_item := oms._item_id(v_tenant, release_hold.sku);
	END IF;
	-- In (item, location) order, the order in which every transaction locks stock rows.
	FOR r IN SELECT h.id FROM oms.reservations h
			  WHERE h.tenant_id = v_tenant AND h.cart = release_hold.cart
			    AND (v_item IS NULL OR h.item_id = v_item)
			  ORDER BY h.item_id, h.location_id
	LOOP
		DELETE FROM oms.reservations h WHERE h.tenant_id = v_tenant AND h.id = r.id;
		v_n := v_n + 1;
	END LOOP;
	RETURN v_n;
END
$$;
COMMENT ON FUNCTION oms.release_hold(text, text) IS 'Releases a cart''s holds (all, or of one SKU) and returns how many; their stock returns to ATP';

-- ===== sql/parts/67_route_apply.sql
-- Applying a route inside the order's transaction (place_order, reject_line): reservations in
-- (item, location) order, then one order of capacity per location and day, each taken by one
-- statement that checks and takes, as the reservation trigger does for stock.
--
-- Lock order, the same in every oms transaction: stock rows in (item, location) order (the
-- reservation trigger), then capacity rows in location order. The capacity row of a busy location
-- is a hot spot (every order it ships takes it); it is locked last so that it is held for as short
-- a time as possible, and locations without a daily_capacity are not counted at all.

-- Kinds of route rows that reserve stock at their location.
CREATE FUNCTION oms._stock_kinds() RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN ARRAY['ship', 'drop-ship', 'pickup', 'transfer'];
COMMENT ON FUNCTION oms._stock_kinds() IS 'Internal: the oms._route kinds that reserve stock at their location (ship, drop-ship, pickup, transfer)';

CREATE FUNCTION oms._reserve_routed(p_tenant int, p_order bigint, p_cart text, p_items int[],
									p_line int[], p_loc int[], p_qty int[], p_kind text[],
									p_supply bigint[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r	record;
BEGIN
	IF p_cart IS NULL THEN
		-- Sorted by (item, location): every transaction locks stock rows in this order.
		INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no)
			SELECT p_tenant, p_items[p_line[n]], p_loc[n], p_qty[n], p_order, p_line[n]
			  FROM generate_subscripts(p_line, 1) n
			 WHERE p_kind[n] = ANY (oms._stock_kinds())
			 ORDER BY p_items[p_line[n]], p_loc[n];
		PERFORM oms._reserve_supply(p_tenant, p_order, p_items, p_line, p_loc, p_qty, p_kind, p_supply);
		RETURN;
	END IF;
	-- A cart's hold at a location chosen for its line becomes that line's reservation there (the
	-- trigger moves only the difference); the cart's other holds are released. All in stock-lock
	-- order.
	FOR r IN
		SELECT ops.line_no, ops.item_id, ops.location_id, ops.qty, ops.hold_id
		  FROM (SELECT p_line[n] AS line_no, p_items[p_line[n]] AS item_id, p_loc[n] AS location_id, p_qty[n] AS qty,
					   (SELECT h.id FROM oms.reservations h
						 WHERE h.tenant_id = p_tenant AND h.cart = p_cart
						   AND h.item_id = p_items[p_line[n]] AND h.location_id = p_loc[n]) AS hold_id
				  FROM generate_subscripts(p_line, 1) n
				 WHERE p_kind[n] = ANY (oms._stock_kinds())
				UNION ALL
				SELECT NULL, h.item_id, h.location_id, 0, h.id
				  FROM oms.reservations h
				 WHERE h.tenant_id = p_tenant AND h.cart = p_cart
				   AND NOT EXISTS (SELECT FROM generate_subscripts(p_line, 1) n
									WHERE p_kind[n] = ANY (oms._stock_kinds()) AND p_items[p_line[n]] = h.item_id
									  AND p_loc[n] = h.location_id)) ops
		 ORDER BY ops.item_id, ops.location_id, ops.line_no NULLS FIRST
	LOOP
		IF r.line_no IS NULL THEN
			DELETE FROM oms.reservations h WHERE h.tenant_id = p_tenant AND h.id = r.hold_id;
		ELSE
			UPDATE oms.reservations h
			   SET cart = NULL, expires_at = NULL, order_id = p_order, line_no = r.line_no, qty = r.qty
			 WHERE h.tenant_id = p_tenant AND h.id = r.hold_id;
			IF NOT FOUND THEN
				INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no)
					VALUES (p_tenant, r.item_id, r.location_id, r.qty, p_order, r.line_no);
			END IF;
		END IF;
	END LOOP;
	PERFORM oms._reserve_supply(p_tenant, p_order, p_items, p_line, p_loc, p_qty, p_kind, p_supply);
END
$$;
COMMENT ON FUNCTION oms._reserve_routed(int, bigint, text, int[], int[], int[], int[], text[], bigint[]) IS 'Internal: reserves the stock a route assigns to an order''s lines, in (item, location) order, converting the cart''s holds, then the supply of its pre-orders; OM001 from the reservation trigger when a location or supply lost the race';


CREATE FUNCTION oms._take_capacity(p_tenant int, p_loc int[], p_day date[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r		record;
	v_used	int;
BEGIN
	FOR r IN SELECT DISTINCT p_loc[n] AS location_id, p_day[n] AS day
			   FROM generate_subscripts(p_loc, 1) n
			  WHERE p_day[n] IS NOT NULL
			  ORDER BY 1, 2
	LOOP
		v_used := NULL;
		INSERT INTO oms.location_capacity_used AS u (tenant_id, location_id, day, used)
			SELECT p_tenant, l.id, r.day, 1 FROM oms.locations l
			 WHERE l.tenant_id = p_tenant AND l.id = r.location_id AND l.daily_capacity > 0
			ON CONFLICT (tenant_id, location_id, day) DO UPDATE SET used = u.used + 1
			 WHERE u.used < (SELECT l.daily_capacity FROM oms.locations l
							  WHERE l.tenant_id = u.tenant_id AND l.id = u.location_id)
			RETURNING u.used INTO v_used;
		IF v_used IS NULL THEN
			RAISE EXCEPTION 'location "%" has no capacity left for %',
					(SELECT l.code FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = r.location_id), r.day
				USING ERRCODE = 'OM030',
				      DETAIL = format('Its daily_capacity is %s orders.',
									  (SELECT l.daily_capacity FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = r.location_id)),
				      HINT = 'Route again: oms.route() skips locations whose capacity for the day is taken.';
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._take_capacity(int, int[], date[]) IS 'Internal: counts one order per (location, day) in oms.location_capacity_used, checking and taking in one statement; OM030 when the day''s capacity is gone';

-- ===== sql/parts/70_place_order.sql
-- Order capture: oms.place_order(jsonb) validates the payload, and in one transaction checks
-- idempotency on (channel, external_id), inserts the order and its lines, chooses a location per
-- line, reserves stock (the reservation trigger is the guard), converts the cart's holds, and
-- leaves the history (state trigger). Any error leaves nothing behind.

-- Raises the 22023 error of a bad payload field, naming the field and the value.
CREATE FUNCTION oms._payload_error(p_path text, p_problem text, p_value jsonb, p_hint text)
	RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_shown text := CASE WHEN p_value IS NULL THEN 'nothing'
						 WHEN length(p_value::text) > 80 THEN left(p_value::text, 77) || '...'
						 ELSE p_value::text END;
BEGIN
	RAISE EXCEPTION 'order payload field "%" %, got %', p_path, p_problem, v_shown
		USING ERRCODE = '22023', HINT = p_hint;
END
$$;
COMMENT ON FUNCTION oms._payload_error(text, text, jsonb, text) IS 'Internal: raises 22023 for a bad field of an API payload, naming the field and its value';

-- Checks that an object has no keys but the allowed ones (catches typos such as "shipto").
CREATE FUNCTION oms._check_keys(p_obj jsonb, p_path text, p_allowed text[]) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_key text;
BEGIN
	SELECT k INTO v_key FROM jsonb_object_keys(p_obj) k WHERE k <> ALL (p_allowed) ORDER BY k LIMIT 1;
	IF v_key IS NOT NULL THEN
		RAISE EXCEPTION 'order payload field "%" is not known', oms._clip(p_path || v_key)
			USING ERRCODE = '22023',
			      HINT = format('Known fields%s: %s.', CASE WHEN p_path = '' THEN '' ELSE ' of "' || rtrim(p_path, '.') || '"' END,
							   array_to_string(p_allowed, ', '));
	END IF;
END
$$;
COMMENT ON FUNCTION oms._check_keys(jsonb, text, text[]) IS 'Internal: refuses (22023) a JSON object key that is not among the allowed ones';

-- The first bad line of an order payload, or NULL: field path, problem, value, hint.
CREATE FUNCTION oms._check_lines(p_lines jsonb)
	RETURNS TABLE (path text, problem text, value jsonb, hint text)
	LANGUAGE sql IMMUTABLE
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	SELECT format('lines[%s]%s', x.i - 1, x.field), x.problem, x.value, x.hint
	  FROM (SELECT e.i,
				   CASE
					WHEN jsonb_typeof(e.v) <> 'object' THEN ''
					WHEN e.extra IS NOT NULL THEN '.' || e.extra
					WHEN jsonb_typeof(e.v -> 'sku') IS DISTINCT FROM 'string' OR e.v ->> 'sku' = '' OR length(e.v ->> 'sku') > 100 THEN '.sku'
					WHEN jsonb_typeof(e.v -> 'qty') IS DISTINCT FROM 'number' OR (e.v -> 'qty')::numeric <= 0
						OR (e.v -> 'qty')::numeric > 2147483647 OR (e.v -> 'qty')::numeric <> trunc((e.v -> 'qty')::numeric) THEN '.qty'
					WHEN jsonb_typeof(e.v -> 'unit_price') IS DISTINCT FROM 'number' OR (e.v -> 'unit_price')::numeric < 0
						OR (e.v -> 'unit_price')::numeric >= 1e15 THEN '.unit_price'
				   END AS field,
				   CASE
					WHEN jsonb_typeof(e.v) <> 'object' THEN 'must be an object'
					WHEN e.extra IS NOT NULL THEN 'is not known'
					WHEN jsonb_typeof(e.v -> 'sku') IS DISTINCT FROM 'string' OR e.v ->> 'sku' = '' OR length(e.v ->> 'sku') > 100 THEN 'must be a SKU (text of 1 to 100 characters)'
					WHEN jsonb_typeof(e.v -> 'qty') IS DISTINCT FROM 'number' OR (e.v -> 'qty')::numeric <= 0
						OR (e.v -> 'qty')::numeric > 2147483647 OR (e.v -> 'qty')::numeric <> trunc((e.v -> 'qty')::numeric) THEN 'must be a whole number greater than 0'
					ELSE 'must be a price of 0 or more'
				   END AS problem,
				   CASE
					WHEN jsonb_typeof(e.v) <> 'object' THEN e.v
					WHEN e.extra IS NOT NULL THEN e.v -> e.extra
					WHEN jsonb_typeof(e.v -> 'sku') IS DISTINCT FROM 'string' OR e.v ->> 'sku' = '' OR length(e.v ->> 'sku') > 100 THEN e.v -> 'sku'
					WHEN jsonb_typeof(e.v -> 'qty') IS DISTINCT FROM 'number' OR (e.v -> 'qty')::numeric <= 0
						OR (e.v -> 'qty')::numeric > 2147483647 OR (e.v -> 'qty')::numeric <> trunc((e.v -> 'qty')::numeric) THEN e.v -> 'qty'
					ELSE e.v -> 'unit_price'
				   END AS value,
				   'A line is {"sku": "SKU-1", "qty": 2, "unit_price": 19.90}: a known SKU, a whole quantity of at least 1 and a price of 0 or more.' AS hint
			  FROM (SELECT a.v, a.i,
						   CASE WHEN jsonb_typeof(a.v) = 'object' THEN
								(SELECT k FROM jsonb_object_keys(a.v) k
								  WHERE k NOT IN ('sku', 'qty', 'unit_price') ORDER BY k LIMIT 1) END AS extra
					  FROM jsonb_array_elements(p_lines) WITH ORDINALITY a(v, i)) e) x
	 WHERE x.field IS NOT NULL
	 ORDER BY x.i
	 LIMIT 1;
END;
COMMENT ON FUNCTION oms._check_lines(jsonb) IS 'Internal: the first malformed line of an order payload (path, problem, value, hint), or no row';

CREATE FUNCTION oms.place_order("order" jsonb) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	p				jsonb := $1;
	v_tenant		int := oms.current_tenant_id();
	v_channel_id	int;
	v_channel_cur	text;
	v_channel_on	boolean;
	v_ext			text;
	v_currency		text;
	v_minor			int;
	v_customer		jsonb;
	v_ship_to		jsonb;
	v_country		text;
	v_lat			double precision;
	v_lon			double precision;
	v_pickup		int;
	v_cart			text;
	v_shipping		numeric := 0;
	v_attributes	jsonb := '{}';
	v_lines			jsonb;
	v_bad			record;
	v_skus			text[];
	v_qtys			int[];
	v_prices		numeric[];
	v_items			int[];
	v_backorder		boolean[];
	v_prefer		int[];
	v_credit		bigint[];
	v_locs			int[];
	v_promised		date[];
	v_profile		text;
	v_channel_profile text;
	v_a_line		int[];
	v_a_loc			int[];
	v_a_qty			int[];
	v_a_kind		text[];
	v_a_eta			date[];
	v_a_capday		date[];
	v_a_reason		text[];
	v_a_supply		bigint[];
	v_states		oms.line_state[];
	v_state			oms.order_state;
	v_order_id		bigint;
	v_subtotal		numeric;
	v_attempt		int := 0;
	v_sku			text;
	v_i				int;
	r				record;
BEGIN
	-- 1. The fields that identify the order, then idempotency: a retry returns the first result.
	IF p IS NULL OR jsonb_typeof(p) <> 'object' THEN
		PERFORM oms._payload_error('order', 'must be a JSON object', p,
			'See the README for the shape: {"channel": "web", "external_id": "W-1", "lines": [...], ...}.');
	END IF;
	PERFORM oms._check_keys(p, '', ARRAY['attributes', 'cart', 'channel', 'currency', 'customer',
										 'external_id', 'lines', 'pickup', 'placed_at', 'routing', 'ship_to',
										 'shipping_amount']);
	IF jsonb_typeof(p -> 'channel') IS DISTINCT FROM 'string' THEN
		PERFORM oms._payload_error('channel', 'must be a channel code', p -> 'channel',
			'Channels are rows of oms.channels, e.g. "web".');
	END IF;
	SELECT c.id, c.default_currency, c.active, c.routing_profile
	  INTO v_channel_id, v_channel_cur, v_channel_on, v_channel_profile
		FROM oms.channels c WHERE c.tenant_id = v_tenant AND c.code = p ->> 'channel';
	IF v_channel_id IS NULL THEN
		RAISE EXCEPTION 'unknown channel "%"', oms._clip(p ->> 'channel')
			USING ERRCODE = '22023', HINT = 'Channels are rows of oms.channels of the current tenant (setting oms.tenant).';
	END IF;
	IF jsonb_typeof(p -> 'external_id') IS DISTINCT FROM 'string' OR p ->> 'external_id' = ''
	   OR length(p ->> 'external_id') > 200 THEN
		PERFORM oms._payload_error('external_id', 'must be the channel''s order id (text of 1 to 200 characters)',
			p -> 'external_id', 'The same channel and external_id always give the same order: a retry is safe.');
	END IF;
	v_ext := p ->> 'external_id';

	SELECT o.id INTO v_order_id FROM oms.orders o
		WHERE o.tenant_id = v_tenant AND o.channel_id = v_channel_id AND o.external_id = v_ext;
	IF v_order_id IS NOT NULL THEN
		RETURN v_order_id;
	END IF;
	IF NOT v_channel_on THEN
		RAISE EXCEPTION 'channel "%" is not active', p ->> 'channel'
			USING ERRCODE = '22023', HINT = 'An inactive channel cannot place new orders; set oms.channels.active to true.';
	END IF;

	-- 2. The rest of the header.
	IF p ? 'currency' THEN
		IF jsonb_typeof(p -> 'currency') IS DISTINCT FROM 'string' THEN
			PERFORM oms._payload_error('currency', 'must be an ISO 4217 code', p -> 'currency', 'For example "EUR" or "RON".');
		END IF;
		v_currency := p ->> 'currency';
	ELSE
		v_currency := v_channel_cur;
	END IF;
	SELECT c.minor_units INTO v_minor FROM oms.currencies c WHERE c.code = v_currency;
	IF v_minor IS NULL OR v_currency !~ '^[A-Z]{3}$' THEN
		RAISE EXCEPTION 'unsupported currency code "%"', oms._clip(v_currency)
			USING ERRCODE = '22023', HINT = 'Currencies are the ISO 4217 codes in oms.currencies, e.g. "EUR".';
	END IF;

	IF p ? 'customer' THEN
		v_customer := p -> 'customer';
		IF jsonb_typeof(v_customer) <> 'object' THEN
			PERFORM oms._payload_error('customer', 'must be an object', v_customer,
				'{"ref": "C1", "email": "a@example.com", "name": "...", "phone": "..."}, every field optional.');
		END IF;
		PERFORM oms._check_keys(v_customer, 'customer.', ARRAY['email', 'name', 'phone', 'ref']);
		SELECT k INTO v_sku FROM jsonb_each(v_customer) AS f(k, v)
			WHERE jsonb_typeof(f.v) <> 'string' OR length(f.v #>> '{}') > 320 ORDER BY k LIMIT 1;
		IF v_sku IS NOT NULL THEN
			PERFORM oms._payload_error('customer.' || v_sku, 'must be text of at most 320 characters',
				v_customer -> v_sku, 'Customer fields are text.');
		END IF;
		IF v_customer ? 'email' AND v_customer ->> 'email' !~ '^[^@\s]+@[^@\s]+$' THEN
			PERFORM oms._payload_error('customer.email', 'must be an e-mail address', v_customer -> 'email',
				'For example "anna@example.com".');
		END IF;
	END IF;

	IF p ? 'ship_to' AND p ? 'pickup' THEN
		RAISE EXCEPTION 'order payload has both "ship_to" and "pickup"'
			USING ERRCODE = '22023', HINT = 'Give "ship_to" (an address) to ship, or "pickup" (a store code) for click & collect.';
	ELSIF p ? 'ship_to' THEN
		v_ship_to := p -> 'ship_to';
		IF jsonb_typeof(v_ship_to) <> 'object' THEN
			PERFORM oms._payload_error('ship_to', 'must be an address object', v_ship_to,
				'{"name": "...", "line1": "...", "city": "Milano", "postal_code": "20121", "country": "IT", "lat": 45.46, "lon": 9.19}.');
		END IF;
		PERFORM oms._check_keys(v_ship_to, 'ship_to.', ARRAY['city', 'company', 'country', 'lat', 'line1', 'line2',
															 'lon', 'name', 'phone', 'postal_code', 'region']);
		SELECT k INTO v_sku FROM jsonb_each(v_ship_to) AS f(k, v)
			WHERE k NOT IN ('lat', 'lon') AND (jsonb_typeof(f.v) <> 'string' OR length(f.v #>> '{}') > 200)
			ORDER BY k LIMIT 1;
		IF v_sku IS NOT NULL THEN
			PERFORM oms._payload_error('ship_to.' || v_sku, 'must be text of at most 200 characters',
				v_ship_to -> v_sku, 'Address fields are text; lat and lon are numbers.');
		END IF;
		IF jsonb_typeof(v_ship_to -> 'country') IS DISTINCT FROM 'string' OR v_ship_to ->> 'country' !~ '^[A-Za-z]{2}$' THEN
			PERFORM oms._payload_error('ship_to.country', 'must be an ISO 3166 country code', v_ship_to -> 'country',
				'Two letters, e.g. "IT" or "RO".');
		END IF;
		v_country := upper(v_ship_to ->> 'country');
		v_ship_to := jsonb_set(v_ship_to, '{country}', to_jsonb(v_country));
		IF (v_ship_to ? 'lat') <> (v_ship_to ? 'lon') THEN
			PERFORM oms._payload_error(CASE WHEN v_ship_to ? 'lat' THEN 'ship_to.lon' ELSE 'ship_to.lat' END,
				'is required with the other coordinate', NULL, 'Give both lat and lon, or neither.');
		END IF;
		IF v_ship_to ? 'lat' THEN
			IF jsonb_typeof(v_ship_to -> 'lat') <> 'number' OR abs((v_ship_to ->> 'lat')::numeric) > 90 THEN
				PERFORM oms._payload_error('ship_to.lat', 'must be a latitude between -90 and 90', v_ship_to -> 'lat',
					'Decimal degrees, e.g. 45.4642.');
			END IF;
			IF jsonb_typeof(v_ship_to -> 'lon') <> 'number' OR abs((v_ship_to ->> 'lon')::numeric) > 180 THEN
				PERFORM oms._payload_error('ship_to.lon', 'must be a longitude between -180 and 180', v_ship_to -> 'lon',
					'Decimal degrees, e.g. 9.19.');
			END IF;
			v_lat := round((v_ship_to ->> 'lat')::numeric, 12)::double precision;	-- (1e-400 would underflow)
			v_lon := round((v_ship_to ->> 'lon')::numeric, 12)::double precision;
		END IF;
	ELSIF p ? 'pickup' THEN
		IF jsonb_typeof(p -> 'pickup') IS DISTINCT FROM 'string' THEN
			PERFORM oms._payload_error('pickup', 'must be a store''s location code', p -> 'pickup',
				'Click & collect names the store, e.g. "STORE-MI-01".');
		END IF;
		SELECT l.id INTO v_pickup FROM oms.locations l
			WHERE l.tenant_id = v_tenant AND l.code = p ->> 'pickup';
		IF v_pickup IS NULL THEN
			RAISE EXCEPTION 'unknown location "%"', oms._clip(p ->> 'pickup')
				USING ERRCODE = '22023', HINT = 'A pickup location is a row of oms.locations with can_pickup.';
		END IF;
		IF NOT EXISTS (SELECT FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = v_pickup AND l.active AND l.can_pickup) THEN
			RAISE EXCEPTION 'location "%" does not offer pickup', p ->> 'pickup'
				USING ERRCODE = '22023', HINT = 'Choose an active location with can_pickup for click & collect.';
		END IF;
	ELSE
		RAISE EXCEPTION 'order payload has neither "ship_to" nor "pickup"'
			USING ERRCODE = '22023', HINT = 'Give "ship_to" (an address) to ship, or "pickup" (a store code) for click & collect.';
	END IF;

	IF p ? 'cart' THEN
		IF jsonb_typeof(p -> 'cart') IS DISTINCT FROM 'string' OR p ->> 'cart' = '' OR length(p ->> 'cart') > 200 THEN
			PERFORM oms._payload_error('cart', 'must be a cart id (text of 1 to 200 characters)', p -> 'cart',
				'The cart whose holds (oms.hold) this order takes over.');
		END IF;
		v_cart := p ->> 'cart';
	END IF;
	IF p ? 'shipping_amount' THEN
		IF jsonb_typeof(p -> 'shipping_amount') IS DISTINCT FROM 'number' OR (p ->> 'shipping_amount')::numeric < 0
		   OR (p ->> 'shipping_amount')::numeric >= 1e15 THEN
			PERFORM oms._payload_error('shipping_amount', 'must be an amount of 0 or more', p -> 'shipping_amount',
				'The shipping charged to the customer, in the order''s currency.');
		END IF;
		v_shipping := round((p ->> 'shipping_amount')::numeric, v_minor);
	END IF;
	IF p ? 'routing' AND (jsonb_typeof(p -> 'routing') IS DISTINCT FROM 'string' OR p ->> 'routing' = '') THEN
		PERFORM oms._payload_error('routing', 'must be a routing profile code', p -> 'routing',
			'For example "cheapest", "fastest", "greenest" or "balanced" (oms.routing_profiles); default: the channel''s.');
	END IF;
	IF p ? 'attributes' THEN
		IF jsonb_typeof(p -> 'attributes') IS DISTINCT FROM 'object' THEN
			PERFORM oms._payload_error('attributes', 'must be an object', p -> 'attributes',
				'Free key/value data kept with the order, e.g. {"gift": true}.');
		END IF;
		v_attributes := p -> 'attributes';
	END IF;

	-- 3. The lines: shape, then SKUs (one line per SKU), then items.
	v_lines := p -> 'lines';
	IF jsonb_typeof(v_lines) IS DISTINCT FROM 'array' OR jsonb_array_length(v_lines) = 0 THEN
		PERFORM oms._payload_error('lines', 'must be a non-empty array', v_lines,
			'An order has 1 to 10000 lines: [{"sku": "SKU-1", "qty": 2, "unit_price": 19.90}].');
	END IF;
	IF jsonb_array_length(v_lines) > 10000 THEN
		RAISE EXCEPTION 'order payload field "lines" has % lines, more than 10000', jsonb_array_length(v_lines)
			USING ERRCODE = '22023', HINT = 'Split the order: one order has at most 10000 lines.';
	END IF;
	SELECT * INTO v_bad FROM oms._check_lines(v_lines);
	IF v_bad.path IS NOT NULL THEN
		PERFORM oms._payload_error(v_bad.path, v_bad.problem, v_bad.value, v_bad.hint);
	END IF;
	SELECT array_agg(a.v ->> 'sku' ORDER BY a.i), array_agg((a.v -> 'qty')::numeric::int ORDER BY a.i),
		   array_agg((a.v ->> 'unit_price')::numeric ORDER BY a.i)
	  INTO v_skus, v_qtys, v_prices
	  FROM jsonb_array_elements(v_lines) WITH ORDINALITY a(v, i);
	SELECT s INTO v_sku FROM unnest(v_skus) s GROUP BY s HAVING count(*) > 1 ORDER BY s LIMIT 1;
	IF v_sku IS NOT NULL THEN
		RAISE EXCEPTION 'SKU "%" appears in more than one line', v_sku
			USING ERRCODE = '22023', HINT = 'Send one line per SKU with the total quantity.';
	END IF;
	SELECT array_agg(it.id ORDER BY u.i), array_agg(it.backorderable ORDER BY u.i),
		   min(u.i) FILTER (WHERE it.id IS NULL), min(u.i) FILTER (WHERE NOT it.active)
	  INTO v_items, v_backorder, v_i, v_attempt
	  FROM unnest(v_skus) WITH ORDINALITY u(sku, i)
	  LEFT JOIN oms.items it ON it.tenant_id = v_tenant AND it.sku = u.sku;
	IF v_i IS NOT NULL THEN
		RAISE EXCEPTION 'unknown SKU "%" in order payload field "lines[%].sku"', v_skus[v_i], v_i - 1
			USING ERRCODE = '22023', HINT = 'Items are rows of oms.items of the current tenant (setting oms.tenant).';
	END IF;
	IF v_attempt IS NOT NULL THEN
		RAISE EXCEPTION 'item "%" in order payload field "lines[%].sku" is not active', v_skus[v_attempt], v_attempt - 1
			USING ERRCODE = '22023', HINT = 'Inactive items cannot be sold; remove the line or reactivate the item.';
	END IF;
	v_attempt := 0;
	v_subtotal := (SELECT sum(round(v_qtys[i] * v_prices[i], v_minor)) FROM generate_subscripts(v_qtys, 1) i);

	-- 4. The cart's live holds are credited at their location (locked, so that the worker does not
	--    expire them under us).
	IF v_cart IS NOT NULL THEN
		PERFORM FROM oms.reservations h WHERE h.tenant_id = v_tenant AND h.cart = v_cart FOR UPDATE;
		SELECT array_agg(h.location_id ORDER BY u.i), array_agg(h.qty::bigint ORDER BY u.i)
		  INTO v_prefer, v_credit
		  FROM unnest(v_items) WITH ORDINALITY u(item_id, i)
		  LEFT JOIN oms.reservations h ON h.tenant_id = v_tenant AND h.cart = v_cart
			   AND h.item_id = u.item_id AND h.expires_at > pg_catalog.now();
	END IF;

	-- 5. Route (oms._route, under the profile the payload names in "routing", else the channel's),
	--    insert, reserve, count capacity. A location that lost the race for its last units (OM001
	--    from the reservation trigger) or for its last order of the day (OM030) makes us route
	--    again on fresh data, up to three times: the line goes to the next best location.
	v_profile := coalesce(p ->> 'routing', v_channel_profile);
	IF NOT EXISTS (SELECT FROM oms.routing_profiles rp
					WHERE rp.code = v_profile AND (rp.tenant_id = v_tenant OR rp.tenant_id IS NULL)) THEN
		RAISE EXCEPTION 'unknown routing profile "%" in %', oms._clip(v_profile),
				CASE WHEN p ? 'routing' THEN 'order payload field "routing"'
					 ELSE format('the default of channel "%s"', oms._clip(p ->> 'channel')) END
			USING ERRCODE = '22023',
			      HINT = 'Routing profiles are rows of oms.routing_profiles: balanced, cheapest, fastest, greenest, or the tenant''s own.';
	END IF;
	LOOP
		-- One row per line and location (a split line has several).
		SELECT array_agg(rt.line_no ORDER BY rt.ord), array_agg(rt.location_id ORDER BY rt.ord),
			   array_agg(rt.qty ORDER BY rt.ord), array_agg(rt.kind ORDER BY rt.ord),
			   array_agg(rt.eta ORDER BY rt.ord), array_agg(rt.capacity_day ORDER BY rt.ord),
			   array_agg(rt.reason ORDER BY rt.ord), array_agg(rt.supply_id ORDER BY rt.ord)
		  INTO v_a_line, v_a_loc, v_a_qty, v_a_kind, v_a_eta, v_a_capday, v_a_reason, v_a_supply
		  FROM oms._route(v_tenant, v_items, v_qtys, v_prefer, v_credit::int[], NULL, NULL,
						  v_ship_to, v_pickup, v_profile) WITH ORDINALITY AS rt(line_no, item_id, location_id, qty, kind,
																			 carrier_service, eta, capacity_day,
																			 supply_id, reason, ord);
		v_i := NULL;
		SELECT min(a.n) INTO v_i FROM generate_subscripts(v_a_kind, 1) a(n) WHERE v_a_kind[a.n] = 'unservable';
		IF v_i IS NOT NULL THEN
			RAISE EXCEPTION 'insufficient stock for SKU "%"%', v_skus[v_a_line[v_i]],
					CASE WHEN v_pickup IS NOT NULL THEN format(' for pickup at "%s"', p ->> 'pickup') ELSE '' END
				USING ERRCODE = 'OM001',
				      DETAIL = format('Requested %s: %s.', v_qtys[v_a_line[v_i]], regexp_replace(v_a_reason[v_i], '^unservable: ', '')),
				      HINT = 'Lower the quantity or remove the line; oms.atp_by_location() shows where the stock is, oms.route_explain() why it cannot be used.';
		END IF;
		-- Per line: its state, its location (NULL when split over several, or backordered) and
		-- the date promised (the latest of its parts).
		SELECT array_agg(CASE WHEN x.kinds && ARRAY['ship', 'drop-ship', 'pickup', 'transfer'] THEN 'allocated'
							  WHEN x.kinds && ARRAY['preorder'] THEN 'preordered'
							  ELSE 'backordered' END::oms.line_state ORDER BY x.line_no),
			   -- a click & collect line waiting for stock waits at its store (a receipt there serves it)
			   array_agg(CASE WHEN x.nlocs = 1 AND NOT x.kinds && ARRAY['backorder'] THEN x.loc
							  WHEN x.kinds = ARRAY['backorder'] THEN v_pickup END ORDER BY x.line_no),
			   array_agg(x.eta ORDER BY x.line_no)
		  INTO v_states, v_locs, v_promised
		  FROM (SELECT v_a_line[a.n] AS line_no, array_agg(DISTINCT v_a_kind[a.n]) AS kinds,
					   count(DISTINCT v_a_loc[a.n]) AS nlocs, min(v_a_loc[a.n]) AS loc, max(v_a_eta[a.n]) AS eta
				  FROM generate_subscripts(v_a_line, 1) a(n)
				 GROUP BY v_a_line[a.n]) x;
		v_state := oms.rollup(v_states);

		IF v_order_id IS NULL THEN
			INSERT INTO oms.orders AS o (tenant_id, channel_id, external_id, state, customer_ref, customer_email,
										 customer_name, customer_phone, ship_to, ship_country, ship_postal_code,
										 ship_city, ship_lat, ship_lon, pickup_location_id, currency, subtotal,
										 shipping_amount, total, cart, attributes, placed_at, routing_profile)
				VALUES (v_tenant, v_channel_id, v_ext, v_state, v_customer ->> 'ref', v_customer ->> 'email',
						v_customer ->> 'name', v_customer ->> 'phone', v_ship_to, v_country,
						v_ship_to ->> 'postal_code', v_ship_to ->> 'city', v_lat, v_lon, v_pickup, v_currency,
						v_subtotal, v_shipping, v_subtotal + v_shipping, v_cart, v_attributes,
						coalesce(oms._payload_placed_at(p -> 'placed_at'), pg_catalog.now()), v_profile)
				ON CONFLICT ON CONSTRAINT orders_channel_external_id_key DO NOTHING
				RETURNING o.id INTO v_order_id;
			IF v_order_id IS NULL THEN
				-- A concurrent submission of the same order committed first: return its result.
				SELECT o.id INTO v_order_id FROM oms.orders o
					WHERE o.tenant_id = v_tenant AND o.channel_id = v_channel_id AND o.external_id = v_ext;
				RETURN v_order_id;
			END IF;
		ELSE
			UPDATE oms.orders o SET state = v_state
				WHERE o.tenant_id = v_tenant AND o.id = v_order_id AND o.state <> v_state;
		END IF;

		BEGIN
			INSERT INTO oms.order_lines (tenant_id, order_id, line_no, item_id, qty, unit_price, state, location_id,
										 promised_date)
				SELECT v_tenant, v_order_id, i, v_items[i], v_qtys[i], v_prices[i], v_states[i], v_locs[i], v_promised[i]
				  FROM generate_subscripts(v_items, 1) i;
			PERFORM oms._reserve_routed(v_tenant, v_order_id, v_cart, v_items, v_a_line, v_a_loc, v_a_qty, v_a_kind,
										v_a_supply);
			PERFORM oms._take_capacity(v_tenant, v_a_loc, v_a_capday);
			EXIT;
		EXCEPTION WHEN SQLSTATE 'OM001' OR SQLSTATE 'OM030' THEN
			v_attempt := v_attempt + 1;
			IF v_attempt >= 3 THEN
				RAISE;
			END IF;
		END;
	END LOOP;

	-- 6. What follows the capture of a new order (events): sql/parts/72_placed.sql.
	PERFORM oms._order_placed(v_tenant, v_order_id);
	RETURN v_order_id;
END
$$;
COMMENT ON FUNCTION oms.place_order(jsonb) IS 'Places an order from any channel in one call: validates, deduplicates on (channel, external_id), chooses locations, reserves stock, records history, writes its events; returns the order id';

-- ===== sql/parts/71_tax.sql
-- Tax and money (issue 11): tax rates per tenant, country, tax class and validity date; a tax
-- class per item; a tax mode per channel (none, included, excluded); and each order line's net,
-- tax and gross amounts, computed once at placement and kept on the line.
--
-- Rounding rule: amounts are rounded to the currency's minor units (oms.currencies.minor_units:
-- JPY 0, EUR 2, KWD 3) per line, half away from zero (numeric round()). With prices including
-- tax, a line's gross is round(qty x unit_price), its net round(gross / (1 + rate)) and its tax
-- gross - net; with prices excluding tax, its net is round(qty x unit_price), its tax
-- round(net x rate) and its gross net + tax. The order's totals are the sums of its lines (and of
-- the shipping charge, taxed at the standard class), so lines always add up to the totals exactly.
-- The rate is the one valid on the order's day (placed_at in UTC) for the ship-to country, or
-- the store's country for click & collect. On a channel whose tax mode is not none, a missing
-- rate is error OM011 naming the country and class, never tax 0.

CREATE TABLE oms.tax_rates (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id() REFERENCES oms.tenants,
	country			text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
	tax_class		text NOT NULL CHECK (tax_class ~ '^[a-z0-9_]{1,40}$'),
	rate			numeric NOT NULL CHECK (rate >= 0 AND rate < 1),
	valid_from		date NOT NULL,
	PRIMARY KEY (tenant_id, country, tax_class, valid_from)
);
COMMENT ON TABLE oms.tax_rates IS 'Tax rates (a fraction: 0.22 for 22 %) per country and tax class, valid from a date until the next row of the same country and class';

ALTER TABLE oms.items
	ADD COLUMN tax_class text NOT NULL DEFAULT 'standard' CHECK (tax_class ~ '^[a-z0-9_]{1,40}$');
COMMENT ON COLUMN oms.items.tax_class IS 'Tax class of the item (standard, reduced, zero, ...), looked up in oms.tax_rates with the ship-to country';

ALTER TABLE oms.channels
	ADD COLUMN tax_mode text NOT NULL DEFAULT 'none' CHECK (tax_mode IN ('none', 'included', 'excluded')),
	ADD COLUMN invoice_on text NOT NULL DEFAULT 'shipment' CHECK (invoice_on IN ('shipment', 'capture'));
COMMENT ON COLUMN oms.channels.tax_mode IS 'none: no tax handling (the default); included: prices include tax (consumer web shops, stores); excluded: prices are net and tax is added (B2B)';
COMMENT ON COLUMN oms.channels.invoice_on IS 'shipment: oms.issue_invoice invoices what has shipped or been collected; capture: the whole order is invoiced when its payment is captured (a till)';

ALTER TABLE oms.orders
	ADD COLUMN tax_mode text NOT NULL DEFAULT 'none' CHECK (tax_mode IN ('none', 'included', 'excluded')),
	ADD COLUMN tax_country text,
	ADD COLUMN net_total numeric,
	ADD COLUMN tax_total numeric,
	ADD COLUMN shipping_tax_rate numeric,
	ADD COLUMN shipping_net numeric,
	ADD COLUMN shipping_tax numeric;
COMMENT ON COLUMN oms.orders.tax_mode IS 'The channel''s tax mode when the order was placed; none: the tax columns are NULL';
COMMENT ON COLUMN oms.orders.tax_country IS 'Country whose rates taxed the order: the ship-to country, or the store''s for click & collect';
COMMENT ON COLUMN oms.orders.net_total IS 'Sum of the lines'' net amounts and the shipping net (NULL when tax_mode is none)';
COMMENT ON COLUMN oms.orders.tax_total IS 'Sum of the lines'' tax and the shipping tax; total = net_total + tax_total';

ALTER TABLE oms.order_lines
	ADD COLUMN tax_rate numeric,
	ADD COLUMN net numeric,
	ADD COLUMN tax numeric,
	ADD COLUMN gross numeric,
	ADD CONSTRAINT order_lines_tax_adds_up CHECK (gross = net + tax);
COMMENT ON COLUMN oms.order_lines.net IS 'Net amount of the whole line (qty units) in the order''s currency, computed at placement; NULL when the order''s tax mode is none';
COMMENT ON COLUMN oms.order_lines.gross IS 'Gross amount of the line: net + tax';

-- Net, tax, gross of an amount (qty x price, or a shipping charge) in a tax mode.
CREATE FUNCTION oms.tax_split(amount numeric, rate numeric, mode text, minor_units int)
	RETURNS TABLE (net numeric, tax numeric, gross numeric)
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	SELECT x.net, x.gross - x.net, x.gross
	  FROM (SELECT CASE WHEN tax_split.mode = 'excluded' THEN round(tax_split.amount, tax_split.minor_units)
						ELSE round(round(tax_split.amount, tax_split.minor_units) / (1 + tax_split.rate), tax_split.minor_units) END AS net,
				   CASE WHEN tax_split.mode = 'excluded'
						THEN round(tax_split.amount, tax_split.minor_units)
							 + round(round(tax_split.amount, tax_split.minor_units) * tax_split.rate, tax_split.minor_units)
						ELSE round(tax_split.amount, tax_split.minor_units) END AS gross) x;
END;
COMMENT ON FUNCTION oms.tax_split(numeric, numeric, text, int) IS 'Net, tax and gross of an amount at a rate: included (the amount is gross) or excluded (the amount is net), each rounded half away from zero to minor_units';

-- What k units of an order line are worth to the customer: their share of the line's gross (the
-- amount charged, whatever the tax mode), or of qty x unit_price on an untaxed order. Payments
-- (capture of what shipped, what cancelled units take off the amount due) and refunds of returns
-- use it, so that an order on a channel with net prices is charged and refunded its tax too.
CREATE FUNCTION oms._units_value(p_gross numeric, p_qty int, p_unit_price numeric, p_k numeric, p_minor int) RETURNS numeric
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN round(coalesce(p_gross, p_qty * p_unit_price) * p_k / p_qty, p_minor);
COMMENT ON FUNCTION oms._units_value(numeric, int, numeric, numeric, int) IS 'Internal: the gross value of k units of a line (gross, qty, unit_price), its share of the line''s gross rounded to the currency''s minor units';

-- The rate of a country and class on a day (NULL: none).
CREATE FUNCTION oms._tax_rate(p_tenant int, p_country text, p_class text, p_day date) RETURNS numeric
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	SELECT r.rate FROM oms.tax_rates r
	 WHERE r.tenant_id = p_tenant AND r.country = p_country AND r.tax_class = p_class AND r.valid_from <= p_day
	 ORDER BY r.valid_from DESC LIMIT 1;
END;
COMMENT ON FUNCTION oms._tax_rate(int, text, text, date) IS 'Internal: the tax rate of a country and class valid on a day, NULL when there is none';

-- Called by oms._order_placed (72_placed.sql) for a new order: one read of the channel for an
-- untaxed channel, otherwise one UPDATE of the lines and one of the order.
CREATE FUNCTION oms._order_tax(p_tenant int, p_order bigint) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v			record;
	v_missing	text;
	v_ship		record;
BEGIN
	SELECT c.tax_mode, cur.minor_units, coalesce(pl.country, o.ship_country) AS country,
		   (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.shipping_amount
	  INTO v
	  FROM oms.orders o
	  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	  JOIN oms.currencies cur ON cur.code = o.currency
	  LEFT JOIN oms.locations pl ON pl.tenant_id = o.tenant_id AND pl.id = o.pickup_location_id
	 WHERE o.tenant_id = p_tenant AND o.id = p_order;
	IF v.tax_mode = 'none' THEN
		RETURN;
	END IF;

	SELECT x.tax_class INTO v_missing
	  FROM (SELECT i.tax_class FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
			 WHERE l.tenant_id = p_tenant AND l.order_id = p_order
			UNION ALL SELECT 'standard' WHERE v.shipping_amount > 0) x
	 WHERE oms._tax_rate(p_tenant, v.country, x.tax_class, v.day) IS NULL
	 ORDER BY 1 LIMIT 1;
	IF v_missing IS NOT NULL THEN
		RAISE EXCEPTION 'no tax rate for country "%" and tax class "%"', coalesce(v.country, 'NULL'), v_missing
			USING ERRCODE = 'OM011',
			      DETAIL = format('The channel''s tax mode is %s; the order is dated %s.', v.tax_mode, to_char(v.day, 'YYYY-MM-DD')),
			      HINT = 'Add the rate to oms.tax_rates (country, tax_class, rate, valid_from), or set the channel''s tax_mode to none.';
	END IF;

	UPDATE oms.order_lines l
	   SET tax_rate = x.rate, net = s.net, tax = s.tax, gross = s.gross
	  FROM (SELECT l2.line_no, oms._tax_rate(p_tenant, v.country, i.tax_class, v.day) AS rate, l2.qty * l2.unit_price AS amount
			  FROM oms.order_lines l2 JOIN oms.items i ON i.tenant_id = l2.tenant_id AND i.id = l2.item_id
			 WHERE l2.tenant_id = p_tenant AND l2.order_id = p_order) x
	 CROSS JOIN LATERAL oms.tax_split(x.amount, x.rate, v.tax_mode, v.minor_units) s
	 WHERE l.tenant_id = p_tenant AND l.order_id = p_order AND l.line_no = x.line_no;

	SELECT r.rate, s.net, s.tax, s.gross INTO v_ship
	  FROM (SELECT CASE WHEN v.shipping_amount > 0 THEN oms._tax_rate(p_tenant, v.country, 'standard', v.day) END AS rate) r
	 CROSS JOIN LATERAL oms.tax_split(v.shipping_amount, coalesce(r.rate, 0), v.tax_mode, v.minor_units) s;

	UPDATE oms.orders o
	   SET tax_mode = v.tax_mode, tax_country = v.country,
		   shipping_tax_rate = v_ship.rate, shipping_net = v_ship.net, shipping_tax = v_ship.tax,
		   net_total = t.net + v_ship.net, tax_total = t.tax + v_ship.tax,
		   subtotal = CASE WHEN v.tax_mode = 'excluded' THEN t.net ELSE t.gross END,
		   total = t.gross + v_ship.gross
	  FROM (SELECT sum(l.net) AS net, sum(l.tax) AS tax, sum(l.gross) AS gross FROM oms.order_lines l
			 WHERE l.tenant_id = p_tenant AND l.order_id = p_order) t
	 WHERE o.tenant_id = p_tenant AND o.id = p_order;
END
$$;
COMMENT ON FUNCTION oms._order_tax(int, bigint) IS 'Internal: at placement, each line''s tax rate, net, tax and gross and the order''s tax totals, from the rates valid on the order''s day for its country; missing rate on a taxed channel: OM011';

-- ===== sql/parts/72_placed.sql
-- What follows the capture of a new order, in the same transaction: place_order calls
-- oms._order_placed() once, after its lines are in and reserved, and only for an order it has
-- just created (a retried submission returns before). It writes the order's events, applies the
-- tenant's fraud rules (77_order_holds.sql) and releases the order when its channel releases
-- automatically and nothing blocks it (78_fulfilment.sql).
--
-- Hot path: one statement for the common case: one INSERT for the whole order (one row per
-- event, never one per line), built from one read of the order, its lines and their items, which
-- also says whether fraud rules or an automatic release apply.

CREATE FUNCTION oms._order_placed(p_tenant int, p_order bigint) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_next		record;
BEGIN
	PERFORM oms._order_tax(p_tenant, p_order);	-- tax amounts (71_tax.sql), before the events show the totals
	WITH o AS (
		SELECT jsonb_build_object(
					'order_id', o.id, 'order_ref', o.external_id, 'channel', c.code,
					'customer', jsonb_strip_nulls(jsonb_build_object('ref', o.customer_ref, 'name', o.customer_name,
																	 'email', o.customer_email, 'phone', o.customer_phone))) AS header,
				   o.state, o.placed_at, o.currency, o.subtotal, o.shipping_amount, o.total, o.ship_to,
				   pl.code AS pickup_code, pl.name AS pickup_name, c.auto_release,
				   EXISTS (SELECT FROM oms.fraud_rules r WHERE r.tenant_id = p_tenant AND r.active) AS screen
			  FROM oms.orders o
			  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
			  LEFT JOIN oms.locations pl ON pl.tenant_id = o.tenant_id AND pl.id = o.pickup_location_id
			 WHERE o.tenant_id = p_tenant AND o.id = p_order),
	written AS (
		INSERT INTO oms.events (tenant_id, order_id, type, payload)
	SELECT p_tenant, p_order, ev.type, ev.payload
	  FROM o
	 CROSS JOIN LATERAL (
			SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'sku', i.sku, 'name', i.name, 'qty', l.qty,
												'unit_price', l.unit_price, 'state', l.state::text)
							 ORDER BY l.line_no) AS lines,
				   jsonb_agg(jsonb_build_object('line_no', l.line_no, 'sku', i.sku, 'name', i.name, 'qty', l.qty,
												'promised_date', l.promised_date)
							 ORDER BY l.line_no) FILTER (WHERE l.state = 'backordered') AS backordered
			  FROM oms.order_lines l
			  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
			 WHERE l.tenant_id = p_tenant AND l.order_id = p_order) l
	 CROSS JOIN LATERAL (VALUES
			('order_received',
			 o.header || jsonb_build_object(
				'state', o.state::text, 'placed_at', o.placed_at, 'currency', o.currency, 'subtotal', o.subtotal,
				'shipping_amount', o.shipping_amount, 'total', o.total, 'lines', l.lines)
			 || CASE WHEN o.pickup_code IS NOT NULL
					 THEN jsonb_build_object('pickup', jsonb_build_object('location', o.pickup_code, 'name', o.pickup_name))
					 ELSE jsonb_build_object('ship_to', o.ship_to) END),
			('line_backordered',
			 CASE WHEN l.backordered IS NOT NULL THEN o.header || jsonb_build_object('lines', l.backordered) END)
		) ev(type, payload)
	 WHERE ev.payload IS NOT NULL)
	SELECT o.auto_release, o.screen INTO v_next FROM o;

	IF v_next.screen THEN
		PERFORM oms._screen_order(p_tenant, p_order);
	END IF;
	IF v_next.auto_release THEN
		PERFORM oms._auto_release(p_tenant, p_order);
	END IF;
END
$$;
COMMENT ON FUNCTION oms._order_placed(int, bigint) IS 'Internal: what follows the capture of a new order in place_order''s transaction: its events (order_received, line_backordered), fraud rules, automatic release';

-- ===== sql/parts/73_lifecycle_common.sql
-- What the lifecycle functions (payments, holds, release, shipments, edits, returns) share: the
-- order lock every one of them takes first, money amounts checked against the order's currency,
-- the rollup that puts an order back in the state its lines add up to, and event writing.
--
-- The reason the state trigger records in order_history is the transaction-local setting
-- oms.reason: each function sets it with set_config(..., true) before it moves states, and clears
-- it before it returns, so that a later statement of the caller's transaction is not attributed
-- to it.
--
-- Lock order, the same in every function: the order's row first (SELECT ... FOR UPDATE), then
-- stock rows in (item, location) order through reservations and movements. Two calls on one order
-- therefore run one after the other, and their events come out in commit order.

CREATE FUNCTION oms._lock_order(p_tenant int, p_order bigint) RETURNS oms.orders
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	o oms.orders;
BEGIN
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = p_tenant AND x.id = p_order FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown order %', coalesce(p_order::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Orders are rows of oms.orders of the current tenant (setting oms.tenant).';
	END IF;
	RETURN o;
END
$$;
COMMENT ON FUNCTION oms._lock_order(int, bigint) IS 'Internal: locks an order of the tenant (FOR UPDATE) and returns it; unknown order: 22023';

-- An amount of money in a currency: more than 0, at most the currency's minor units.
CREATE FUNCTION oms._amount(p_amount numeric, p_currency text, p_what text) RETURNS numeric
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_minor int := (SELECT c.minor_units FROM oms.currencies c WHERE c.code = p_currency);
BEGIN
	IF p_amount IS NULL OR p_amount <= 0 OR p_amount >= 1e15 THEN
		RAISE EXCEPTION 'invalid % amount %', p_what, coalesce(p_amount::text, 'NULL')
			USING ERRCODE = '22023', HINT = format('An amount is more than 0 and less than 10^15, in %s.', p_currency);
	END IF;
	IF p_amount <> round(p_amount, v_minor) THEN
		RAISE EXCEPTION 'invalid % amount %: % has % decimal places', p_what, p_amount, p_currency, v_minor
			USING ERRCODE = '22023', HINT = format('Round the amount to %s decimal places.', v_minor);
	END IF;
	RETURN p_amount;
END
$$;
COMMENT ON FUNCTION oms._amount(numeric, text, text) IS 'Internal: refuses (22023) an amount that is not more than 0 or has more decimals than its currency';

-- Checks a free-text reason of a lifecycle call.
CREATE FUNCTION oms._reason(p_reason text, p_what text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_reason IS NULL OR btrim(p_reason) = '' OR length(p_reason) > 1000 THEN
		RAISE EXCEPTION 'a reason of 1 to 1000 characters is required to %', p_what
			USING ERRCODE = '22023', HINT = 'Say why (e.g. ''customer request''); it is kept in the history.';
	END IF;
	RETURN p_reason;
END
$$;
COMMENT ON FUNCTION oms._reason(text, text) IS 'Internal: refuses (22023) a missing, empty or over-long reason';

-- Writes one event of an order: the order header plus what the caller adds.
CREATE FUNCTION oms._event(p_tenant int, p_order bigint, p_type text, p_payload jsonb) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.events (tenant_id, order_id, type, payload)
		VALUES (p_tenant, p_order, p_type, oms._order_header(p_tenant, p_order) || coalesce(p_payload, '{}'));
END
$$;
COMMENT ON FUNCTION oms._event(int, bigint, text, jsonb) IS 'Internal: writes an event of an order, its payload the order header (reference, channel, customer) and the given fields';

-- Puts an order in the state its lines add up to (oms.rollup), or on_hold while a hold is open;
-- cancelled and closed orders stay as they are. The state trigger checks the move and records it
-- with the reason in oms.reason. Returns the order's state.
CREATE FUNCTION oms._rollup(p_tenant int, p_order bigint) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_old	oms.order_state;
	v_new	oms.order_state;
BEGIN
	SELECT o.state INTO v_old FROM oms.orders o WHERE o.tenant_id = p_tenant AND o.id = p_order;
	IF v_old IN ('cancelled', 'closed') THEN
		RETURN v_old;
	END IF;
	IF EXISTS (SELECT FROM oms.order_holds h
				WHERE h.tenant_id = p_tenant AND h.order_id = p_order AND h.resolved_at IS NULL) THEN
		v_new := 'on_hold';
	ELSE
		SELECT oms.rollup(l.state) INTO v_new FROM oms.order_lines l
			WHERE l.tenant_id = p_tenant AND l.order_id = p_order;
	END IF;
	IF v_new <> v_old THEN
		UPDATE oms.orders o SET state = v_new WHERE o.tenant_id = p_tenant AND o.id = p_order;
	END IF;
	RETURN v_new;
END
$$;
COMMENT ON FUNCTION oms._rollup(int, bigint) IS 'Internal: moves an order to the rollup of its lines'' states, or on_hold while a hold is open (cancelled and closed stay); returns the state';


-- Checks a list of line quantities, [{"line_no": 1, "qty": 2, ...}] (NULL passes: "all"): an
-- array of objects with whole line_no and qty of at least 1, no key outside p_keys, each line
-- once. p_what names the list in messages ("lines to pack").
CREATE FUNCTION oms._check_line_list(p_lines jsonb, p_what text, p_keys text[]) RETURNS void
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_bad	record;
	v_dup	int;
BEGIN
	IF p_lines IS NULL THEN
		RETURN;
	END IF;
	IF jsonb_typeof(p_lines) <> 'array' OR jsonb_array_length(p_lines) = 0 OR jsonb_array_length(p_lines) > 10000 THEN
		RAISE EXCEPTION '% must be a non-empty array, got %', p_what, left(p_lines::text, 80)
			USING ERRCODE = '22023', HINT = 'For example [{"line_no": 1, "qty": 2}].';
	END IF;
	SELECT x.i - 1 AS i, x.v,
		   (SELECT k FROM jsonb_object_keys(CASE WHEN jsonb_typeof(x.v) = 'object' THEN x.v ELSE '{}' END) k
			 WHERE k <> ALL (p_keys) ORDER BY k LIMIT 1) AS extra
	  INTO v_bad
	  FROM jsonb_array_elements(p_lines) WITH ORDINALITY x(v, i)
	 WHERE CASE WHEN jsonb_typeof(x.v) <> 'object' THEN true
				WHEN EXISTS (SELECT FROM jsonb_object_keys(x.v) k WHERE k <> ALL (p_keys)) THEN true
				WHEN jsonb_typeof(x.v -> 'line_no') IS DISTINCT FROM 'number'
				  OR jsonb_typeof(x.v -> 'qty') IS DISTINCT FROM 'number' THEN true
				ELSE (x.v ->> 'line_no')::numeric NOT BETWEEN 1 AND 2147483647
				  OR (x.v ->> 'qty')::numeric NOT BETWEEN 1 AND 2147483647
				  OR (x.v ->> 'line_no')::numeric <> trunc((x.v ->> 'line_no')::numeric)
				  OR (x.v ->> 'qty')::numeric <> trunc((x.v ->> 'qty')::numeric) END
	 ORDER BY x.i LIMIT 1;
	IF FOUND THEN
		IF v_bad.extra IS NOT NULL THEN
			RAISE EXCEPTION '% [%]: field "%" is not known', p_what, v_bad.i, v_bad.extra
				USING ERRCODE = '22023', HINT = format('Known fields: %s.', array_to_string(p_keys, ', '));
		END IF;
		RAISE EXCEPTION '% [%] must have a whole line_no and qty of at least 1, got %', p_what, v_bad.i, left(v_bad.v::text, 80)
			USING ERRCODE = '22023', HINT = 'For example {"line_no": 1, "qty": 2}.';
	END IF;
	SELECT (x.v -> 'line_no')::numeric::int INTO v_dup FROM jsonb_array_elements(p_lines) x(v)
	 GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1;
	IF v_dup IS NOT NULL THEN
		RAISE EXCEPTION 'line % appears more than once in the %', v_dup, p_what
			USING ERRCODE = '22023', HINT = 'Give each line once, with its total quantity.';
	END IF;
END
$$;
COMMENT ON FUNCTION oms._check_line_list(jsonb, text, text[]) IS 'Internal: refuses (22023) a list of line quantities that is not [{"line_no": n, "qty": n, ...}] with whole values of at least 1, known keys and each line once';

-- ===== sql/parts/74_reject_line.sql
-- Re-routing: a location that cannot fulfil a line (damaged, not found) rejects it. The line's
-- reservation there is released, the location is excluded for the line for good
-- (oms.line_exclusions), and the line is routed again in the same transaction, under the order's
-- routing profile. The line moves allocated/released/picked -> rejected -> allocated (or
-- preordered, or backordered when nothing can serve it), each move in order_history with why.

CREATE FUNCTION oms.reject_line(order_id bigint, line_no int, location text, reason text)
	RETURNS TABLE (routed_line int, routed_location text, routed_qty int, line_state oms.line_state,
				   eta date, detail text)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_order		record;
	v_line		record;
	v_loc		int;
	v_rejected	int;
	v_kept		int;
	v_attempt	int := 0;
	v_excl		int[];
	v_a_loc		int[];
	v_a_qty		int[];
	v_a_kind	text[];
	v_a_eta		date[];
	v_a_capday	date[];
	v_a_reason	text[];
	v_a_supply	bigint[];
	v_state		oms.line_state;
	v_new_loc	int;
	v_promised	date;
	r			record;
BEGIN
	IF reason IS NULL OR btrim(reason) = '' THEN
		RAISE EXCEPTION 'a reason is required to reject line % of order %', reject_line.line_no, reject_line.order_id
			USING ERRCODE = '22023', HINT = 'Say why the location cannot fulfil it (e.g. ''damaged''); it is kept in oms.order_history.';
	END IF;
	SELECT o.id, o.ship_to, o.pickup_location_id, o.state,
		   coalesce(o.routing_profile, c.routing_profile, 'balanced') AS profile
	  INTO v_order
	  FROM oms.orders o JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	 WHERE o.tenant_id = v_tenant AND o.id = reject_line.order_id
	   FOR UPDATE OF o;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown order %', coalesce(reject_line.order_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Orders are rows of oms.orders of the current tenant (setting oms.tenant).';
	END IF;
	SELECT l.line_no, l.item_id, l.state, l.qty, i.sku INTO v_line
	  FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
	 WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = reject_line.line_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order % has no line %', v_order.id, coalesce(reject_line.line_no::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Lines are numbered from 1 in the order they were placed (oms.order_lines.line_no).';
	END IF;
	v_loc := oms._location_id(v_tenant, reject_line.location);
	SELECT coalesce(sum(x.qty), 0) INTO v_rejected FROM oms.reservations x
	 WHERE x.tenant_id = v_tenant AND x.order_id = v_order.id AND x.line_no = v_line.line_no AND x.location_id = v_loc;
	IF v_rejected = 0 OR NOT oms.is_legal(v_line.state, 'rejected') THEN
		RAISE EXCEPTION 'line % of order % cannot be rejected at location "%": it is % %', v_line.line_no, v_order.id,
				oms._clip(reject_line.location), v_line.state, CASE WHEN v_rejected = 0 THEN 'with nothing reserved there' ELSE 'there' END
			USING ERRCODE = '55000',
			      HINT = 'A location rejects a line that is allocated, released or picked there (oms.reservations shows where).';
	END IF;

	-- The rejection: exclusion, then the line's state (history: why, by whom).
	INSERT INTO oms.line_exclusions (tenant_id, order_id, line_no, location_id, reason, excluded_by)
		VALUES (v_tenant, v_order.id, v_line.line_no, v_loc, reason, oms._actor())
		ON CONFLICT DO NOTHING;
	PERFORM pg_catalog.set_config('oms.reason', format('rejected at %s: %s', reject_line.location, left(reason, 1000)), true);
	UPDATE oms.order_lines l SET state = 'rejected', location_id = NULL
	 WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = v_line.line_no;
	SELECT array_agg(e.location_id ORDER BY e.location_id) INTO v_excl FROM oms.line_exclusions e
	 WHERE e.tenant_id = v_tenant AND e.order_id = v_order.id AND e.line_no = v_line.line_no;

	-- Route the rejected units again and move the reservation, in stock-lock order. A location
	-- that lost the race meanwhile (OM001, OM030) makes us route again, as place_order does.
	LOOP
		SELECT array_agg(rt.location_id ORDER BY rt.ord), array_agg(rt.qty ORDER BY rt.ord),
			   array_agg(rt.kind ORDER BY rt.ord), array_agg(rt.eta ORDER BY rt.ord),
			   array_agg(rt.capacity_day ORDER BY rt.ord), array_agg(rt.reason ORDER BY rt.ord),
			   array_agg(rt.supply_id ORDER BY rt.ord)
		  INTO v_a_loc, v_a_qty, v_a_kind, v_a_eta, v_a_capday, v_a_reason, v_a_supply
		  FROM oms._route(v_tenant, ARRAY[v_line.item_id], ARRAY[v_rejected], NULL, NULL,
						  array_fill(1, ARRAY[cardinality(v_excl)]), v_excl,
						  v_order.ship_to, v_order.pickup_location_id, v_order.profile)
			   WITH ORDINALITY AS rt(line_no, item_id, location_id, qty, kind, carrier_service, eta,
									 capacity_day, supply_id, reason, ord);
		BEGIN
			FOR r IN SELECT o.loc, o.qty
					   FROM (SELECT v_loc AS loc, 0 AS qty
							 UNION ALL
							 SELECT v_a_loc[n], v_a_qty[n] FROM generate_subscripts(v_a_loc, 1) n
							  WHERE v_a_kind[n] = ANY (oms._stock_kinds())) o
					  ORDER BY o.loc, o.qty
			LOOP
				IF r.loc = v_loc AND r.qty = 0 THEN
					DELETE FROM oms.reservations x
					 WHERE x.tenant_id = v_tenant AND x.order_id = v_order.id AND x.line_no = v_line.line_no
					   AND x.location_id = v_loc;
				ELSE
					INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no)
						VALUES (v_tenant, v_line.item_id, r.loc, r.qty, v_order.id, v_line.line_no);
				END IF;
			END LOOP;
			-- a pre-order reserves its supply, after the stock rows
			INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no, supply_id)
				SELECT v_tenant, v_line.item_id, v_a_loc[n], v_a_qty[n], v_order.id, v_line.line_no, v_a_supply[n]
				  FROM generate_subscripts(v_a_loc, 1) n
				 WHERE v_a_kind[n] = 'preorder';
			PERFORM oms._take_capacity(v_tenant, v_a_loc, v_a_capday);
			EXIT;
		EXCEPTION WHEN SQLSTATE 'OM001' OR SQLSTATE 'OM030' THEN
			v_attempt := v_attempt + 1;
			IF v_attempt >= 3 THEN
				RAISE;
			END IF;
		END;
	END LOOP;

	-- The line's new state: allocated where stock was found, else pre-ordered, else backordered
	-- (also when nothing can serve it: it waits for stock). Its location: the one place that holds
	-- all of it now, or NULL.
	v_state := CASE WHEN v_a_kind && oms._stock_kinds() THEN 'allocated'
					WHEN v_a_kind && ARRAY['preorder'] THEN 'preordered'
					ELSE 'backordered' END;
	SELECT CASE WHEN count(DISTINCT x.location_id) = 1 THEN min(x.location_id) END, coalesce(sum(x.qty), 0)
	  INTO v_new_loc, v_kept
	  FROM oms.reservations x
	 WHERE x.tenant_id = v_tenant AND x.order_id = v_order.id AND x.line_no = v_line.line_no
	   AND x.supply_id IS NULL;
	IF v_state = 'backordered' AND v_kept > 0 THEN
		-- Part of the line is still reserved elsewhere: the line stays allocated for that part.
		v_state := 'allocated';
	END IF;
	-- The date promised: the new route's, or the later of it and the old one while other parts of
	-- a split line are still reserved where they were.
	SELECT max(e) INTO v_promised FROM unnest(v_a_eta) e;
	IF v_kept > (SELECT coalesce(sum(v_a_qty[n]), 0) FROM generate_subscripts(v_a_loc, 1) n
				  WHERE v_a_kind[n] = ANY (oms._stock_kinds())) THEN
		v_promised := (SELECT greatest(v_promised, l.promised_date) FROM oms.order_lines l
						WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = v_line.line_no);
	END IF;
	PERFORM pg_catalog.set_config('oms.reason',
		format('rerouted after rejection at %s: %s', reject_line.location,
			   coalesce((SELECT string_agg(x, '; ') FROM unnest(v_a_reason) x), 'no route')), true);
	IF v_state = 'preordered' THEN
		v_new_loc := v_a_loc[1];
	END IF;
	UPDATE oms.order_lines l
	   SET state = v_state, location_id = CASE WHEN v_state IN ('allocated', 'preordered') THEN v_new_loc END,
		   promised_date = v_promised
	 WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = v_line.line_no;
	PERFORM oms._rollup(v_tenant, v_order.id);
	PERFORM pg_catalog.set_config('oms.reason', '', true);
	-- The customer hears of a line that now waits for stock (a line served elsewhere keeps its
	-- promise or gets the new date in the order's history and oms.order_status).
	IF v_state = 'backordered' THEN
		PERFORM oms._event(v_tenant, v_order.id, 'line_backordered',
			jsonb_build_object('lines', jsonb_build_array(jsonb_build_object(
				'line_no', v_line.line_no, 'sku', v_line.sku, 'qty', v_line.qty, 'promised_date', v_promised)),
				'reason', format('rejected at %s: %s', reject_line.location, left(reason, 1000))));
	END IF;

	RETURN QUERY
		SELECT v_line.line_no, l.code, v_a_qty[n], v_state, v_a_eta[n], v_a_reason[n]
		  FROM generate_subscripts(v_a_loc, 1) n
		  LEFT JOIN oms.locations l ON l.tenant_id = v_tenant AND l.id = v_a_loc[n]
								   AND v_a_kind[n] <> 'backorder'
		 ORDER BY n;
END
$$;
COMMENT ON FUNCTION oms.reject_line(bigint, int, text, text) IS 'A location cannot fulfil a line (damaged, not found): releases the line''s reservation there, excludes the location for the line, routes the units again under the order''s profile and reserves them (allocated, pre-ordered, or backordered when nothing can serve them); every move in order_history; returns the new route';

-- ===== sql/parts/75_cancel.sql
-- Cancellation of a whole order: every reservation is released (in stock-lock order) and the
-- order and its open lines move to cancelled, with the reason in their history, and the event
-- "cancelled" tells the customer.

CREATE FUNCTION oms.cancel_order(order_id bigint, reason text) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_state		oms.order_state;
	v_blocking	oms.line_state;
	r			record;
BEGIN
	IF reason IS NULL OR btrim(reason) = '' THEN
		RAISE EXCEPTION 'a reason is required to cancel order %', cancel_order.order_id
			USING ERRCODE = '22023', HINT = 'Say why (e.g. ''customer request''); it is kept in oms.order_history.';
	END IF;
	SELECT o.state INTO v_state FROM oms.orders o
		WHERE o.tenant_id = v_tenant AND o.id = cancel_order.order_id
		FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown order %', coalesce(cancel_order.order_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Orders are rows of oms.orders of the current tenant (setting oms.tenant).';
	END IF;
	IF v_state = 'cancelled' THEN
		RETURN v_state;
	END IF;

	-- Goods that have left (or are staged for the customer) cannot be cancelled.
	SELECT l.state INTO v_blocking FROM oms.order_lines l
		WHERE l.tenant_id = v_tenant AND l.order_id = cancel_order.order_id
		  AND (l.qty_shipped > 0 OR l.state IN ('partially_shipped', 'shipped', 'delivered', 'partially_returned', 'returned'))
		ORDER BY l.line_no LIMIT 1;
	-- Nor can goods packed into a shipment that has not left yet: shipping it would find its
	-- reservation gone (ship it, and return it, instead).
	IF v_blocking IS NULL AND EXISTS (SELECT FROM oms.shipments s
									   WHERE s.tenant_id = v_tenant AND s.order_id = cancel_order.order_id
										 AND s.state = 'packed') THEN
		v_blocking := 'packed';
	END IF;
	IF v_blocking IS NOT NULL OR v_state IN ('partially_shipped', 'shipped', 'delivered', 'partially_returned', 'returned', 'closed') THEN
		RAISE EXCEPTION 'order % cannot be cancelled: it is %', cancel_order.order_id,
				coalesce(v_blocking::text, v_state::text)
			USING ERRCODE = '55000',
			      HINT = 'Only orders with nothing shipped can be cancelled; return what was shipped instead.';
	END IF;

	PERFORM pg_catalog.set_config('oms.reason', reason, true);
	FOR r IN SELECT x.id FROM oms.reservations x
			  WHERE x.tenant_id = v_tenant AND x.order_id = cancel_order.order_id
			  ORDER BY x.supply_id IS NOT NULL, x.item_id, x.location_id, x.supply_id
	LOOP
		DELETE FROM oms.reservations x WHERE x.tenant_id = v_tenant AND x.id = r.id;
	END LOOP;
	UPDATE oms.order_lines l SET state = 'cancelled', qty_cancelled = l.qty - l.qty_shipped
		WHERE l.tenant_id = v_tenant AND l.order_id = cancel_order.order_id AND l.state <> 'cancelled';
	UPDATE oms.orders o SET state = 'cancelled'
		WHERE o.tenant_id = v_tenant AND o.id = cancel_order.order_id;
	PERFORM pg_catalog.set_config('oms.reason', '', true);
	INSERT INTO oms.events (tenant_id, order_id, type, payload)
	SELECT v_tenant, cancel_order.order_id, 'cancelled',
		   oms._order_header(v_tenant, cancel_order.order_id)
		   || jsonb_build_object('reason', cancel_order.reason,
				'lines', (SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'sku', i.sku, 'name', i.name,
															  'qty', l.qty_cancelled) ORDER BY l.line_no)
							FROM oms.order_lines l
							JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
						   WHERE l.tenant_id = v_tenant AND l.order_id = cancel_order.order_id));
	RETURN 'cancelled'::oms.order_state;
END
$$;
COMMENT ON FUNCTION oms.cancel_order(bigint, text) IS 'Cancels an order with nothing shipped or packed: releases its reservations, moves order and lines to cancelled, writes the cancelled event; a no-op when already cancelled';

-- ===== sql/parts/76_payments.sql
-- Payments of an order: authorisations from a payment provider, captured (money taken), refunded
-- and voided (authorisation given up) amounts. One row per authorisation (a provider reference),
-- in the order's currency; its invariants are CHECKs, so no code path can capture more than was
-- authorised or refund more than was captured. Every operation is also a row of the ledger
-- oms.payment_operations and an event. oms never sees card data: only amounts and the provider's
-- reference.
--
-- Several authorisations of one order (a split payment, a re-authorisation) are used oldest first:
-- captures, refunds and voids walk them in id order.

CREATE TABLE oms.payments (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	order_id		bigint NOT NULL,
	reference		text NOT NULL CHECK (reference <> '' AND length(reference) <= 200),
	currency		char(3) NOT NULL REFERENCES oms.currencies,
	authorized		numeric NOT NULL CHECK (authorized > 0),
	captured		numeric NOT NULL DEFAULT 0 CHECK (captured >= 0),
	refunded		numeric NOT NULL DEFAULT 0 CHECK (refunded >= 0),
	voided			numeric NOT NULL DEFAULT 0 CHECK (voided >= 0),
	authorized_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT payments_reference_key UNIQUE (tenant_id, order_id, reference),
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	CONSTRAINT payments_captured_within_authorized CHECK (captured + voided <= authorized),
	CONSTRAINT payments_refunded_within_captured CHECK (refunded <= captured)
);
COMMENT ON TABLE oms.payments IS 'Authorisations of an order''s payment (provider reference, currency of the order) and the amounts captured, refunded and voided from each; captured + voided <= authorized and refunded <= captured always hold';

CREATE TABLE oms.payment_operations (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	payment_id		bigint NOT NULL,
	order_id		bigint NOT NULL,
	kind			text NOT NULL CHECK (kind IN ('authorize', 'capture', 'refund', 'void')),
	amount			numeric NOT NULL CHECK (amount > 0),
	reason			text,
	operated_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	operated_by		text NOT NULL,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, payment_id) REFERENCES oms.payments
);
CREATE INDEX payment_operations_order_idx ON oms.payment_operations (tenant_id, order_id);
COMMENT ON TABLE oms.payment_operations IS 'Ledger of every payment operation: authorise, capture, refund, void, with amount, reason, who and when';

-- The totals of an order's payments.
CREATE FUNCTION oms.payment_totals(order_id bigint)
	RETURNS TABLE (currency char(3), authorized numeric, captured numeric, refunded numeric, voided numeric,
				   capturable numeric, refundable numeric)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	SELECT o.currency, coalesce(sum(p.authorized), 0), coalesce(sum(p.captured), 0),
		   coalesce(sum(p.refunded), 0), coalesce(sum(p.voided), 0),
		   coalesce(sum(p.authorized - p.captured - p.voided), 0), coalesce(sum(p.captured - p.refunded), 0)
	  FROM oms.orders o
	  LEFT JOIN oms.payments p ON p.tenant_id = o.tenant_id AND p.order_id = o.id
	 WHERE o.tenant_id = oms.current_tenant_id() AND o.id = payment_totals.order_id
	 GROUP BY o.currency;
END;
COMMENT ON FUNCTION oms.payment_totals(bigint) IS 'An order''s payments summed: authorized, captured, refunded, voided, still capturable (authorized - captured - voided) and refundable (captured - refunded); no row for an unknown order';

CREATE FUNCTION oms.authorize_payment(order_id bigint, amount numeric, reference text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_id		bigint;
	v_old		numeric;
	v_open		numeric;
BEGIN
	o := oms._lock_order(v_tenant, authorize_payment.order_id);
	IF reference IS NULL OR reference = '' OR length(reference) > 200 THEN
		RAISE EXCEPTION 'invalid payment reference "%" for order %', coalesce(reference, 'NULL'), o.id
			USING ERRCODE = '22023', HINT = 'The payment provider''s reference of the authorisation: text of 1 to 200 characters.';
	END IF;
	amount := oms._amount(amount, o.currency, 'authorisation');

	-- A retried call with the same reference returns the first result.
	SELECT p.id, p.authorized INTO v_id, v_old FROM oms.payments p
		WHERE p.tenant_id = v_tenant AND p.order_id = o.id AND p.reference = authorize_payment.reference;
	IF v_id IS NOT NULL THEN
		IF v_old <> amount THEN
			RAISE EXCEPTION 'payment reference "%" of order % was authorised for % %, not %', reference, o.id, v_old, o.currency, amount
				USING ERRCODE = '22023', HINT = 'A provider reference identifies one authorisation; use a new reference for another amount.';
		END IF;
		RETURN v_id;
	END IF;

	IF o.state IN ('cancelled', 'closed') THEN
		RAISE EXCEPTION 'order % cannot take a payment: it is %', o.id, o.state
			USING ERRCODE = '55000', HINT = 'Payments are authorised for open orders only.';
	END IF;
	SELECT coalesce(sum(p.authorized - p.voided), 0) INTO v_open FROM oms.payments p
		WHERE p.tenant_id = v_tenant AND p.order_id = o.id;
	IF v_open + amount > o.total THEN
		RAISE EXCEPTION 'authorisation of % % for order % exceeds its total', amount, o.currency, o.id
			USING ERRCODE = 'OM008',
			      DETAIL = format('Order total %s, already authorised %s (not voided), requested %s.', o.total, v_open, amount),
			      HINT = 'Authorise at most the order''s total; void an old authorisation first to replace it.';
	END IF;

	INSERT INTO oms.payments (tenant_id, order_id, reference, currency, authorized)
		VALUES (v_tenant, o.id, reference, o.currency, amount)
		RETURNING id INTO v_id;
	INSERT INTO oms.payment_operations (tenant_id, payment_id, order_id, kind, amount, operated_by)
		VALUES (v_tenant, v_id, o.id, 'authorize', amount, oms._actor());
	PERFORM oms._event(v_tenant, o.id, 'payment_authorized',
		jsonb_build_object('amount', amount, 'currency', o.currency, 'reference', reference,
						   'authorized_total', v_open + amount));
	-- The authorisation may be what the order waited for, on a channel that releases by itself.
	PERFORM oms._auto_release(v_tenant, o.id);
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms.authorize_payment(bigint, numeric, text) IS 'Records an authorisation of amount (order currency) under the provider''s reference; returns the payment id; the same reference again returns the same id; more than the order total: OM008; releases the order when its channel has auto_release and nothing else blocks';

CREATE FUNCTION oms.capture_payment(order_id bigint, amount numeric DEFAULT NULL) RETURNS numeric
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_minor		int;
	v_due		numeric;
	v_cap		record;
	v_left		numeric;
	v_take		numeric;
	p			record;
BEGIN
	o := oms._lock_order(v_tenant, capture_payment.order_id);
	SELECT sum(x.authorized) AS authorized, coalesce(sum(x.captured), 0) AS captured, sum(x.voided) AS voided,
		   coalesce(sum(x.authorized - x.captured - x.voided), 0) AS capturable
	  INTO v_cap
	  FROM oms.payments x WHERE x.tenant_id = v_tenant AND x.order_id = o.id;

	IF amount IS NULL THEN
		-- What has shipped (and the shipping charge, once anything has) and is not captured yet.
		SELECT c.minor_units INTO v_minor FROM oms.currencies c WHERE c.code = o.currency;
		-- Gross amounts: on a channel with net prices (tax_mode excluded) the tax is charged too.
		SELECT coalesce(sum(oms._units_value(l.gross, l.qty, l.unit_price, l.qty_shipped, v_minor)), 0)
			   + CASE WHEN bool_or(l.qty_shipped > 0)
					  THEN coalesce(o.shipping_net + o.shipping_tax, o.shipping_amount) ELSE 0 END
		  INTO v_due
		  FROM oms.order_lines l WHERE l.tenant_id = v_tenant AND l.order_id = o.id;
		v_due := v_due - v_cap.captured;
		IF v_due <= 0 THEN
			RETURN 0;
		END IF;
		amount := v_due;
	ELSE
		amount := oms._amount(amount, o.currency, 'capture');
	END IF;

	IF amount > v_cap.capturable THEN
		RAISE EXCEPTION 'capture of % % for order % exceeds what is authorised and not captured', amount, o.currency, o.id
			USING ERRCODE = 'OM006',
			      DETAIL = format('Authorised %s, captured %s, voided %s: at most %s can be captured.',
							   coalesce(v_cap.authorized, 0), v_cap.captured, coalesce(v_cap.voided, 0), v_cap.capturable),
			      HINT = 'Capture less, or authorise more with oms.authorize_payment().';
	END IF;

	v_left := amount;
	FOR p IN SELECT x.id, x.authorized - x.captured - x.voided AS open FROM oms.payments x
			  WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.authorized - x.captured - x.voided > 0
			  ORDER BY x.id
	LOOP
		EXIT WHEN v_left = 0;
		v_take := least(v_left, p.open);
		UPDATE oms.payments x SET captured = x.captured + v_take, updated_at = now()
			WHERE x.tenant_id = v_tenant AND x.id = p.id;
		INSERT INTO oms.payment_operations (tenant_id, payment_id, order_id, kind, amount, operated_by)
			VALUES (v_tenant, p.id, o.id, 'capture', v_take, oms._actor());
		v_left := v_left - v_take;
	END LOOP;
	PERFORM oms._event(v_tenant, o.id, 'payment_captured',
		jsonb_build_object('amount', amount, 'currency', o.currency, 'captured_total', v_cap.captured + amount));
	PERFORM oms._invoice_on_capture(v_tenant, o.id);	-- channels that invoice on capture (89_documents.sql)
	RETURN amount;
END
$$;
COMMENT ON FUNCTION oms.capture_payment(bigint, numeric) IS 'Captures amount (NULL: the value shipped, with shipping once anything shipped, not yet captured) from the order''s authorisations, oldest first; returns the amount captured; more than is capturable: OM006';

CREATE FUNCTION oms.refund_payment(order_id bigint, amount numeric, reason text) RETURNS numeric
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_captured	numeric;
	v_refunded	numeric;
	v_left		numeric;
	v_take		numeric;
	p			record;
BEGIN
	o := oms._lock_order(v_tenant, refund_payment.order_id);
	PERFORM oms._reason(reason, 'refund a payment');
	amount := oms._amount(amount, o.currency, 'refund');
	SELECT coalesce(sum(x.captured), 0), coalesce(sum(x.refunded), 0) INTO v_captured, v_refunded
		FROM oms.payments x WHERE x.tenant_id = v_tenant AND x.order_id = o.id;
	IF amount > v_captured - v_refunded THEN
		RAISE EXCEPTION 'refund of % % for order % exceeds what was captured and not refunded', amount, o.currency, o.id
			USING ERRCODE = 'OM007',
			      DETAIL = format('Captured %s, refunded %s: at most %s can be refunded.', v_captured, v_refunded, v_captured - v_refunded),
			      HINT = 'Refund at most what was captured; capture first with oms.capture_payment().';
	END IF;

	v_left := amount;
	FOR p IN SELECT x.id, x.captured - x.refunded AS open FROM oms.payments x
			  WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.captured - x.refunded > 0
			  ORDER BY x.id
	LOOP
		EXIT WHEN v_left = 0;
		v_take := least(v_left, p.open);
		UPDATE oms.payments x SET refunded = x.refunded + v_take, updated_at = now()
			WHERE x.tenant_id = v_tenant AND x.id = p.id;
		INSERT INTO oms.payment_operations (tenant_id, payment_id, order_id, kind, amount, reason, operated_by)
			VALUES (v_tenant, p.id, o.id, 'refund', v_take, reason, oms._actor());
		v_left := v_left - v_take;
	END LOOP;
	PERFORM oms._credit_refund(v_tenant, o.id, amount, reason);	-- credit note of invoiced goods (89_documents.sql)
	PERFORM oms._event(v_tenant, o.id, 'refunded',
		jsonb_build_object('amount', amount, 'currency', o.currency, 'reason', reason,
						   'refunded_total', v_refunded + amount));
	RETURN amount;
END
$$;
COMMENT ON FUNCTION oms.refund_payment(bigint, numeric, text) IS 'Refunds amount of what was captured, oldest authorisation first, with the reason; returns the amount; more than captured and not refunded: OM007';

CREATE FUNCTION oms.void_payment(order_id bigint) RETURNS numeric
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_total		numeric := 0;
	p			record;
BEGIN
	o := oms._lock_order(v_tenant, void_payment.order_id);
	FOR p IN SELECT x.id, x.authorized - x.captured - x.voided AS open FROM oms.payments x
			  WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.authorized - x.captured - x.voided > 0
			  ORDER BY x.id
	LOOP
		UPDATE oms.payments x SET voided = x.voided + p.open, updated_at = now()
			WHERE x.tenant_id = v_tenant AND x.id = p.id;
		INSERT INTO oms.payment_operations (tenant_id, payment_id, order_id, kind, amount, operated_by)
			VALUES (v_tenant, p.id, o.id, 'void', p.open, oms._actor());
		v_total := v_total + p.open;
	END LOOP;
	IF v_total > 0 THEN
		PERFORM oms._event(v_tenant, o.id, 'payment_voided', jsonb_build_object('amount', v_total, 'currency', o.currency));
	END IF;
	RETURN v_total;
END
$$;
COMMENT ON FUNCTION oms.void_payment(bigint) IS 'Gives up what is authorised and not captured (every authorisation of the order); returns the amount voided, 0 when nothing was open';

-- ===== sql/parts/77_order_holds.sql
-- Order holds: a person or a rule stops an order before release (fraud review, payment review,
-- address check, customer request...). An order may carry several holds, each with a reason code;
-- while any is open the order is on_hold and cannot be released, packed, shipped or staged. When
-- the last one is resolved the order returns to the state its lines add up to, the customer hears
-- "order_confirmed", and a channel with auto_release releases it if nothing else blocks.
-- (Cart holds, stock set aside for a shopping cart, are another thing: 66_holds.sql.)

CREATE TABLE oms.order_holds (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	order_id		bigint NOT NULL,
	reason			text NOT NULL CHECK (reason ~ '^[a-z][a-z0-9_]{0,62}$'),
	note			text CHECK (length(note) <= 1000),
	rule			text,
	held_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	held_by			text NOT NULL,
	resolved_at		timestamptz,
	resolved_by		text,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	CHECK ((resolved_at IS NULL) = (resolved_by IS NULL))
);
CREATE UNIQUE INDEX order_holds_open_key ON oms.order_holds (tenant_id, order_id, reason) WHERE resolved_at IS NULL;
COMMENT ON TABLE oms.order_holds IS 'Holds on orders with a reason code (fraud_review, payment_review, address_check, customer_request, ...), the fraud rule that placed it, who placed and resolved it and when; at most one open hold per order and reason';

-- Puts an order on hold; the caller has locked it. Returns true when a new hold was placed.
CREATE FUNCTION oms._hold(p_tenant int, o oms.orders, p_reason text, p_note text, p_rule text) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_reason IS NULL OR p_reason !~ '^[a-z][a-z0-9_]{0,62}$' THEN
		RAISE EXCEPTION 'invalid hold reason "%"', coalesce(p_reason, 'NULL')
			USING ERRCODE = '22023',
			      HINT = 'A reason code is a lower-case word such as fraud_review, payment_review, address_check or customer_request.';
	END IF;
	IF length(p_note) > 1000 THEN
		RAISE EXCEPTION 'hold note is too long (% characters)', length(p_note)
			USING ERRCODE = '22023', HINT = 'A note has at most 1000 characters.';
	END IF;
	IF EXISTS (SELECT FROM oms.order_holds h WHERE h.tenant_id = p_tenant AND h.order_id = o.id
				 AND h.reason = p_reason AND h.resolved_at IS NULL) THEN
		RETURN false;			-- already held for this reason: nothing changes
	END IF;
	IF o.state <> 'on_hold' THEN
		PERFORM oms.transition(o.state, 'hold');	-- 55000 with the legal events when it may not
	END IF;
	INSERT INTO oms.order_holds (tenant_id, order_id, reason, note, rule, held_by)
		VALUES (p_tenant, o.id, p_reason, p_note, p_rule, oms._actor());
	PERFORM set_config('oms.reason', 'hold: ' || p_reason || coalesce(' (rule ' || p_rule || ')', ''), true);
	PERFORM oms._rollup(p_tenant, o.id);
	PERFORM oms._event(p_tenant, o.id, 'order_on_hold', jsonb_build_object('reason', p_reason));
	PERFORM set_config('oms.reason', '', true);
	RETURN true;
END
$$;
COMMENT ON FUNCTION oms._hold(int, oms.orders, text, text, text) IS 'Internal: places a hold on a locked order (no-op when one with this reason is open) and writes order_on_hold';

CREATE FUNCTION oms.hold_order(order_id bigint, reason text, note text DEFAULT NULL) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
BEGIN
	o := oms._lock_order(v_tenant, hold_order.order_id);
	PERFORM oms._hold(v_tenant, o, hold_order.reason, hold_order.note, NULL);
	RETURN (SELECT x.state FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = o.id);
END
$$;
COMMENT ON FUNCTION oms.hold_order(bigint, text, text) IS 'Puts an order on hold for a reason code, with an optional note; several holds may be open; the same reason twice is a no-op; an order that has shipped cannot be held (55000); returns the order state';

CREATE FUNCTION oms.resolve_hold(order_id bigint, reason text) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_id		bigint;
	v_open		text;
	v_state		oms.order_state;
BEGIN
	o := oms._lock_order(v_tenant, resolve_hold.order_id);
	SELECT h.id INTO v_id FROM oms.order_holds h
		WHERE h.tenant_id = v_tenant AND h.order_id = o.id AND h.reason = resolve_hold.reason AND h.resolved_at IS NULL;
	IF v_id IS NULL THEN
		IF EXISTS (SELECT FROM oms.order_holds h WHERE h.tenant_id = v_tenant AND h.order_id = o.id
					 AND h.reason = resolve_hold.reason) THEN
			RETURN o.state;		-- resolved already: a retried call changes nothing
		END IF;
		SELECT string_agg(h.reason, ', ' ORDER BY h.id) INTO v_open FROM oms.order_holds h
			WHERE h.tenant_id = v_tenant AND h.order_id = o.id AND h.resolved_at IS NULL;
		RAISE EXCEPTION 'order % has no hold "%"', o.id, coalesce(resolve_hold.reason, 'NULL')
			USING ERRCODE = '22023',
			      HINT = CASE WHEN v_open IS NULL THEN 'The order has no open hold.'
						 ELSE format('Its open holds: %s.', v_open) END;
	END IF;
	UPDATE oms.order_holds h SET resolved_at = now(), resolved_by = oms._actor()
		WHERE h.tenant_id = v_tenant AND h.id = v_id;
	PERFORM set_config('oms.reason', 'hold resolved: ' || resolve_hold.reason, true);
	v_state := oms._rollup(v_tenant, o.id);
	IF v_state <> 'on_hold' AND o.state = 'on_hold' THEN
		PERFORM oms._event(v_tenant, o.id, 'order_confirmed', jsonb_build_object('resolved', resolve_hold.reason));
		v_state := oms._auto_release(v_tenant, o.id);
	END IF;
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms.resolve_hold(bigint, text) IS 'Resolves the open hold of that reason; when none is left the order returns to the rollup of its lines, order_confirmed is written, and a channel with auto_release releases it; returns the order state';

-- ----- fraud rules, applied when an order is placed

CREATE TABLE oms.fraud_rules (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id() REFERENCES oms.tenants,
	id				int GENERATED ALWAYS AS IDENTITY,
	name			text NOT NULL CHECK (name ~ '^[A-Za-z0-9_.-]{1,63}$'),
	kind			text NOT NULL CHECK (kind IN ('total_over', 'country_mismatch', 'customer_velocity')),
	channel_id		int,
	currency		char(3) REFERENCES oms.currencies,
	amount			numeric CHECK (amount > 0),
	max_orders		int CHECK (max_orders > 0),
	within			interval CHECK (within > interval '0'),
	active			boolean NOT NULL DEFAULT true,
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, name),
	FOREIGN KEY (tenant_id, channel_id) REFERENCES oms.channels,
	CHECK (kind <> 'total_over' OR (currency IS NOT NULL AND amount IS NOT NULL)),
	CHECK (kind <> 'customer_velocity' OR (max_orders IS NOT NULL AND within IS NOT NULL))
);
COMMENT ON TABLE oms.fraud_rules IS 'Rules that put a new order on hold fraud_review: total_over (total above amount in currency), country_mismatch (ship-to country other than attributes.billing_country), customer_velocity (more than max_orders orders of one customer ref within an interval); channel_id NULL: every channel';

-- Applies the tenant's active fraud rules to a new order; matching ones put it on hold
-- fraud_review, the rules named in the hold and its history. Returns the names, or NULL.
CREATE FUNCTION oms._screen_order(p_tenant int, p_order bigint) RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	o			oms.orders;
	v_rules		text;
	v_notes		text;
BEGIN
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = p_tenant AND x.id = p_order;
	SELECT string_agg(r.name, ', ' ORDER BY r.name),
		   string_agg(CASE r.kind
						WHEN 'total_over' THEN format('%s: total %s %s over %s', r.name, o.total, o.currency, r.amount)
						WHEN 'country_mismatch' THEN format('%s: ships to %s, billed in %s', r.name, o.ship_country,
															 o.attributes ->> 'billing_country')
						ELSE format('%s: more than %s orders of customer %s within %s', r.name, r.max_orders,
									o.customer_ref, r.within) END, '; ' ORDER BY r.name)
	  INTO v_rules, v_notes
	  FROM oms.fraud_rules r
	 WHERE r.tenant_id = p_tenant AND r.active AND (r.channel_id IS NULL OR r.channel_id = o.channel_id)
	   AND CASE r.kind
			WHEN 'total_over' THEN o.currency = r.currency AND o.total > r.amount
			WHEN 'country_mismatch' THEN o.ship_country IS NOT NULL AND o.attributes ? 'billing_country'
										 AND upper(o.attributes ->> 'billing_country') <> o.ship_country
			ELSE o.customer_ref IS NOT NULL
				 AND (SELECT count(*) FROM oms.orders x
					   WHERE x.tenant_id = p_tenant AND x.customer_ref = o.customer_ref
						 AND x.placed_at > o.placed_at - r.within) > r.max_orders
		   END;
	IF v_rules IS NOT NULL THEN
		PERFORM oms._hold(p_tenant, o, 'fraud_review', v_notes, v_rules);
	END IF;
	RETURN v_rules;
END
$$;
COMMENT ON FUNCTION oms._screen_order(int, bigint) IS 'Internal: applies the active fraud rules to a new order; the matching ones put it on hold fraud_review (rules named in the hold, its note and the history); returns their names or NULL';

-- ===== sql/parts/78_fulfilment.sql
-- Fulfilment: release an order to its locations, pack shipments (packages), ship them (the goods
-- leave: on_hand and reserved drop together), deliver them, and take carriers' tracking scans.
--
-- Quantities, per line: open = qty - qty_cancelled - qty_shipped is what is still to ship; it is
-- reserved at the line's location(s) (oms.reservations). Packed = what sits in shipments that have
-- not shipped yet; at most the line's reservation at the shipment's location can be packed there.
-- Shipping consumes the reservation (the reservation trigger lowers stock.reserved) and then lowers
-- on_hand by the same quantity with a movement of kind "shipment", in one transaction, stock rows
-- in (item, location) order. A line moves by quantity: partially_shipped while units remain,
-- shipped when none do; the order rolls up from its lines.
--
-- Daily capacity: routing counts an order against its locations' daily capacity when it is placed
-- (oms.location_capacity_used, routing's part); release does not count it a second time.

-- ----- release

-- What keeps an order from being released: its open holds, and a missing authorisation when the
-- channel requires one. NULL columns: nothing of that kind.
CREATE FUNCTION oms._release_blockers(p_tenant int, p_order bigint,
									  OUT holds text, OUT payment_missing numeric, OUT authorized numeric)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_required	boolean;
	v_total		numeric;
BEGIN
	SELECT string_agg(h.reason, ', ' ORDER BY h.id) INTO holds FROM oms.order_holds h
		WHERE h.tenant_id = p_tenant AND h.order_id = p_order AND h.resolved_at IS NULL;
	-- What is due: the total less the cancelled units (oms.cancel_line).
	SELECT c.requires_authorization,
		   o.total - coalesce((SELECT sum(oms._units_value(l.gross, l.qty, l.unit_price, l.qty_cancelled, cur.minor_units))
								 FROM oms.order_lines l
								WHERE l.tenant_id = o.tenant_id AND l.order_id = o.id), 0)
	  INTO v_required, v_total
	  FROM oms.orders o
	  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	  JOIN oms.currencies cur ON cur.code = o.currency
	 WHERE o.tenant_id = p_tenant AND o.id = p_order;
	IF v_required THEN
		SELECT coalesce(sum(p.authorized - p.voided), 0) INTO authorized FROM oms.payments p
			WHERE p.tenant_id = p_tenant AND p.order_id = p_order;
		IF authorized < v_total THEN
			payment_missing := v_total - authorized;
		END IF;
	END IF;
END
$$;
COMMENT ON FUNCTION oms._release_blockers(int, bigint) IS 'Internal: the open holds of an order and, when its channel requires authorisation, how much of what is due (total less cancelled units) is not authorised';

-- Refuses (OM009) to go on with an order that has open holds; p_action names what was refused.
CREATE FUNCTION oms._check_not_held(p_tenant int, p_order bigint, p_action text) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_holds text;
BEGIN
	SELECT string_agg(h.reason, ', ' ORDER BY h.id) INTO v_holds FROM oms.order_holds h
		WHERE h.tenant_id = p_tenant AND h.order_id = p_order AND h.resolved_at IS NULL;
	IF v_holds IS NOT NULL THEN
		RAISE EXCEPTION 'order % is on hold (%): it cannot be %', p_order, v_holds, p_action
			USING ERRCODE = 'OM009', HINT = 'Resolve its holds first with oms.resolve_hold().';
	END IF;
END
$$;
COMMENT ON FUNCTION oms._check_not_held(int, bigint, text) IS 'Internal: refuses (OM009) to release, pack, ship or stage an order that has open holds';

-- Releases the allocated lines of a locked order that nothing blocks; writes order_released.
CREATE FUNCTION oms._release(p_tenant int, p_order bigint) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_lines		jsonb;
	v_state		oms.order_state;
BEGIN
	PERFORM set_config('oms.reason', 'released', true);
	WITH released AS (
		UPDATE oms.order_lines l SET state = 'released'
		 WHERE l.tenant_id = p_tenant AND l.order_id = p_order AND l.state = 'allocated'
		RETURNING l.line_no, l.item_id, l.qty - l.qty_cancelled - l.qty_shipped AS qty, l.location_id)
	SELECT jsonb_agg(jsonb_build_object('line_no', r.line_no, 'sku', i.sku, 'name', i.name, 'qty', r.qty,
										'location', loc.code) ORDER BY r.line_no)
	  INTO v_lines
	  FROM released r
	  JOIN oms.items i ON i.tenant_id = p_tenant AND i.id = r.item_id
	  LEFT JOIN oms.locations loc ON loc.tenant_id = p_tenant AND loc.id = r.location_id;
	v_state := oms._rollup(p_tenant, p_order);
	PERFORM oms._event(p_tenant, p_order, 'order_released', jsonb_build_object('lines', v_lines));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms._release(int, bigint) IS 'Internal: moves the allocated lines of a locked order to released, rolls the order up and writes order_released';

-- Releases a locked order when its channel releases automatically and nothing blocks it.
CREATE FUNCTION oms._auto_release(p_tenant int, p_order bigint) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	b			record;
BEGIN
	IF EXISTS (SELECT FROM oms.orders o JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
				WHERE o.tenant_id = p_tenant AND o.id = p_order AND c.auto_release)
	   AND EXISTS (SELECT FROM oms.order_lines l WHERE l.tenant_id = p_tenant AND l.order_id = p_order AND l.state = 'allocated') THEN
		b := oms._release_blockers(p_tenant, p_order);
		IF b.holds IS NULL AND b.payment_missing IS NULL THEN
			RETURN oms._release(p_tenant, p_order);
		END IF;
	END IF;
	RETURN (SELECT o.state FROM oms.orders o WHERE o.tenant_id = p_tenant AND o.id = p_order);
END
$$;
COMMENT ON FUNCTION oms._auto_release(int, bigint) IS 'Internal: releases a locked order when its channel has auto_release and neither a hold nor a missing authorisation blocks it; returns the order state';

CREATE FUNCTION oms.release_order(order_id bigint) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	b			record;
BEGIN
	o := oms._lock_order(v_tenant, release_order.order_id);
	IF NOT EXISTS (SELECT FROM oms.order_lines l WHERE l.tenant_id = v_tenant AND l.order_id = o.id AND l.state = 'allocated') THEN
		IF o.state = 'released' THEN
			RETURN o.state;			-- released already: a retried call changes nothing
		END IF;
		RAISE EXCEPTION 'order % has no allocated line to release: it is %', o.id, o.state
			USING ERRCODE = '55000',
			      HINT = 'Only lines with stock allocated can be released; backordered lines are released once allocated.';
	END IF;
	b := oms._release_blockers(v_tenant, o.id);
	IF b.holds IS NOT NULL THEN
		PERFORM oms._check_not_held(v_tenant, o.id, 'released');
	END IF;
	IF b.payment_missing IS NOT NULL THEN
		RAISE EXCEPTION 'order % cannot be released: its payment is not authorised', o.id
			USING ERRCODE = 'OM009',
			      DETAIL = format('Due %s %s, authorised %s; %s missing.', b.authorized + b.payment_missing, o.currency,
							   b.authorized, b.payment_missing),
			      HINT = 'The channel requires authorisation before release: call oms.authorize_payment() first.';
	END IF;
	RETURN oms._release(v_tenant, o.id);
END
$$;
COMMENT ON FUNCTION oms.release_order(bigint) IS 'Sends the allocated lines of an order to their locations (line state released); refused with OM009 while a hold is open or, on a channel that requires it, the total is not authorised; a released order: no-op; returns the order state';

-- ----- shipments

CREATE TABLE oms.shipments (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	order_id		bigint NOT NULL,
	location_id		int NOT NULL,
	state			text NOT NULL DEFAULT 'packed'
					CHECK (state IN ('packed', 'shipped', 'in_transit', 'out_for_delivery', 'exception', 'delivered')),
	carrier			text CHECK (carrier ~ '^[a-z0-9_-]{1,40}$'),
	service			text CHECK (service ~ '^[a-z0-9_-]{1,40}$'),
	tracking		text CHECK (tracking <> '' AND length(tracking) <= 100),
	packed_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	shipped_at		timestamptz,
	delivered_at	timestamptz,
	status_at		timestamptz,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations,
	CONSTRAINT shipments_tracking_key UNIQUE (tenant_id, carrier, tracking),
	CHECK ((state = 'packed') = (shipped_at IS NULL)),
	CHECK ((state = 'packed') = (tracking IS NULL AND carrier IS NULL)),
	CHECK ((state = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX shipments_order_idx ON oms.shipments (tenant_id, order_id);
COMMENT ON TABLE oms.shipments IS 'Packages of an order from one location: packed, then shipped with carrier, service and tracking number, then in transit, out for delivery, exception, delivered';
COMMENT ON COLUMN oms.shipments.status_at IS 'Time of the carrier scan that set the current state (tracking_update), so that a late scan of an earlier status does not move it back';

CREATE TABLE oms.shipment_lines (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	shipment_id		bigint NOT NULL,
	order_id		bigint NOT NULL,
	line_no			int NOT NULL,
	qty				int NOT NULL CHECK (qty > 0),
	PRIMARY KEY (tenant_id, shipment_id, line_no),
	FOREIGN KEY (tenant_id, shipment_id) REFERENCES oms.shipments,
	FOREIGN KEY (tenant_id, order_id, line_no) REFERENCES oms.order_lines
);
CREATE INDEX shipment_lines_line_idx ON oms.shipment_lines (tenant_id, order_id, line_no);
COMMENT ON TABLE oms.shipment_lines IS 'Units of order lines in a shipment';

CREATE TABLE oms.tracking_events (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	shipment_id		bigint NOT NULL,
	status			text NOT NULL CHECK (status IN ('in_transit', 'out_for_delivery', 'exception', 'delivered')),
	occurred_at		timestamptz NOT NULL,
	payload			jsonb NOT NULL DEFAULT '{}',
	received_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, shipment_id, status, occurred_at),
	FOREIGN KEY (tenant_id, shipment_id) REFERENCES oms.shipments
);
COMMENT ON TABLE oms.tracking_events IS 'Carriers'' scans of a shipment (status, when, the carrier''s data); a scan sent twice is stored once';

-- Units of a line in shipments that have not shipped yet, at one location (NULL: anywhere).
CREATE FUNCTION oms._packed_qty(p_tenant int, p_order bigint, p_line int, p_location int) RETURNS bigint
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	SELECT coalesce(sum(sl.qty), 0)::bigint
	  FROM oms.shipment_lines sl
	  JOIN oms.shipments s ON s.tenant_id = sl.tenant_id AND s.id = sl.shipment_id
	 WHERE sl.tenant_id = p_tenant AND sl.order_id = p_order AND sl.line_no = p_line
	   AND s.state = 'packed' AND (p_location IS NULL OR s.location_id = p_location);
END;
COMMENT ON FUNCTION oms._packed_qty(int, bigint, int, int) IS 'Internal: units of an order line in shipments packed and not yet shipped (at a location, or anywhere)';

CREATE FUNCTION oms.pack(order_id bigint, location text, lines jsonb DEFAULT NULL) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_loc		int;
	v_req		record;
	v_line		record;
	v_pack		jsonb := '[]';
	v_ship		bigint;
BEGIN
	o := oms._lock_order(v_tenant, pack.order_id);
	v_loc := oms._location_id(v_tenant, pack.location);
	PERFORM oms._check_line_list(lines, 'lines to pack', ARRAY['line_no', 'qty']);
	PERFORM oms._check_not_held(v_tenant, o.id, 'packed');

	-- What may be packed here, per line: its reservation at this location minus what is packed
	-- there already. With lines NULL: all of it, for every released line.
	IF lines IS NULL THEN
		SELECT coalesce(jsonb_agg(jsonb_build_object('line_no', x.line_no, 'qty', x.qty) ORDER BY x.line_no), '[]')
		  INTO v_pack
		  FROM (SELECT l.line_no,
					   (SELECT sum(r.qty) FROM oms.reservations r
						 WHERE r.tenant_id = v_tenant AND r.order_id = o.id AND r.line_no = l.line_no AND r.location_id = v_loc)
					   - oms._packed_qty(v_tenant, o.id, l.line_no, v_loc) AS qty
				  FROM oms.order_lines l
				 WHERE l.tenant_id = v_tenant AND l.order_id = o.id
				   AND l.state IN ('released', 'picked', 'packed', 'partially_shipped')) x
		 WHERE x.qty > 0;
		IF v_pack = '[]' THEN
			RAISE EXCEPTION 'order % has nothing released at location "%" to pack', o.id, pack.location
				USING ERRCODE = '55000',
				      HINT = 'Release the order first (oms.release_order), and pack at the location its lines are reserved at.';
		END IF;
	ELSE
		FOR v_req IN SELECT (x.v -> 'line_no')::numeric::int AS line_no, (x.v -> 'qty')::numeric::int AS qty
					   FROM jsonb_array_elements(lines) WITH ORDINALITY x(v, i) ORDER BY x.i
		LOOP
			SELECT l.state, l.qty, l.qty_cancelled, l.qty_shipped,
				   (SELECT coalesce(sum(r.qty), 0) FROM oms.reservations r
					 WHERE r.tenant_id = v_tenant AND r.order_id = o.id AND r.line_no = l.line_no
					   AND r.location_id = v_loc) AS reserved_here,
				   oms._packed_qty(v_tenant, o.id, l.line_no, v_loc) AS packed
			  INTO v_line
			  FROM oms.order_lines l
			 WHERE l.tenant_id = v_tenant AND l.order_id = o.id AND l.line_no = v_req.line_no;
			IF NOT FOUND THEN
				RAISE EXCEPTION 'order % has no line %', o.id, v_req.line_no
					USING ERRCODE = '22023', HINT = 'Lines are numbered from 1 in the order they were placed.';
			END IF;
			IF v_line.state NOT IN ('released', 'picked', 'packed', 'partially_shipped') THEN
				RAISE EXCEPTION 'line % of order % cannot be packed: it is %', v_req.line_no, o.id, v_line.state
					USING ERRCODE = '55000',
					      HINT = 'Only released lines are packed; release the order first (oms.release_order).';
			END IF;
			IF v_req.qty > v_line.reserved_here - v_line.packed THEN
				RAISE EXCEPTION 'cannot pack % units of line % of order % at location "%"', v_req.qty, v_req.line_no, o.id, pack.location
					USING ERRCODE = 'OM004',
					      DETAIL = format('Ordered %s, cancelled %s, shipped %s; reserved here %s, of which %s already packed: at most %s can be packed.',
									   v_line.qty, v_line.qty_cancelled, v_line.qty_shipped, v_line.reserved_here, v_line.packed,
									   v_line.reserved_here - v_line.packed),
					      HINT = 'Pack at most what is released at this location and not packed yet.';
			END IF;
			v_pack := v_pack || jsonb_build_object('line_no', v_req.line_no, 'qty', v_req.qty);
		END LOOP;
	END IF;

	INSERT INTO oms.shipments (tenant_id, order_id, location_id) VALUES (v_tenant, o.id, v_loc) RETURNING id INTO v_ship;
	INSERT INTO oms.shipment_lines (tenant_id, shipment_id, order_id, line_no, qty)
		SELECT v_tenant, v_ship, o.id, p.line_no, p.qty FROM jsonb_to_recordset(v_pack) p(line_no int, qty int);

	-- A line whose every open unit is now in a package is packed.
	PERFORM set_config('oms.reason', 'packed in shipment ' || v_ship, true);
	UPDATE oms.order_lines l SET state = 'packed'
	 WHERE l.tenant_id = v_tenant AND l.order_id = o.id
	   AND l.line_no IN (SELECT p.line_no FROM jsonb_to_recordset(v_pack) p(line_no int, qty int))
	   AND l.state IN ('released', 'picked')
	   AND oms._packed_qty(v_tenant, o.id, l.line_no, NULL) >= l.qty - l.qty_cancelled - l.qty_shipped;
	PERFORM oms._rollup(v_tenant, o.id);
	PERFORM set_config('oms.reason', '', true);
	RETURN v_ship;
END
$$;
COMMENT ON FUNCTION oms.pack(bigint, text, jsonb) IS 'Creates a shipment (package) at a location for [{"line_no": 1, "qty": 1}] or, when lines is NULL, for everything released there and not packed; more than released there and unpacked: OM004; returns the shipment id';

-- The shipment and its order, the order locked; unknown shipment: 22023.
CREATE FUNCTION oms._lock_shipment(p_tenant int, p_shipment bigint) RETURNS oms.shipments
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_order		bigint;
	s			oms.shipments;
BEGIN
	SELECT x.order_id INTO v_order FROM oms.shipments x WHERE x.tenant_id = p_tenant AND x.id = p_shipment;
	IF v_order IS NULL THEN
		RAISE EXCEPTION 'unknown shipment %', coalesce(p_shipment::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Shipments are created by oms.pack() and listed in oms.shipments.';
	END IF;
	PERFORM oms._lock_order(p_tenant, v_order);
	SELECT * INTO s FROM oms.shipments x WHERE x.tenant_id = p_tenant AND x.id = p_shipment FOR UPDATE;
	RETURN s;
END
$$;
COMMENT ON FUNCTION oms._lock_shipment(int, bigint) IS 'Internal: locks the order of a shipment, then the shipment, and returns it; unknown shipment: 22023';

-- The lines of a shipment for an event payload.
CREATE FUNCTION oms._shipment_lines_json(p_tenant int, p_shipment bigint) RETURNS jsonb
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	SELECT jsonb_agg(jsonb_build_object('line_no', sl.line_no, 'sku', i.sku, 'name', i.name, 'qty', sl.qty)
					 ORDER BY sl.line_no)
	  FROM oms.shipment_lines sl
	  JOIN oms.order_lines l ON l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no
	  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
	 WHERE sl.tenant_id = p_tenant AND sl.shipment_id = p_shipment;
END;
COMMENT ON FUNCTION oms._shipment_lines_json(int, bigint) IS 'Internal: the lines of a shipment (line_no, sku, name, qty) as JSON';

-- The goods of some lines leave a location: per line, its reservation there shrinks (or goes) and
-- on_hand drops by the same units with a movement; the line's buckets and state follow. Lines are
-- processed in (item, location) order, the order in which every transaction locks stock rows.
-- p_delivered: the customer has them at once (click & collect).
CREATE FUNCTION oms._goods_leave(p_tenant int, p_order bigint, p_location int, p_lines jsonb,
								 p_reference text, p_reason text, p_delivered boolean) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r			record;
	v_res		record;
	v_on_hand	bigint;
BEGIN
	FOR r IN SELECT x.line_no, x.qty, l.item_id, l.qty AS ordered, l.qty_cancelled, l.qty_shipped, l.state
			   FROM jsonb_to_recordset(p_lines) x(line_no int, qty int)
			   JOIN oms.order_lines l ON l.tenant_id = p_tenant AND l.order_id = p_order AND l.line_no = x.line_no
			  ORDER BY l.item_id, x.line_no
	LOOP
		IF r.qty > r.ordered - r.qty_cancelled - r.qty_shipped THEN
			RAISE EXCEPTION 'cannot ship % units of line % of order %', r.qty, r.line_no, p_order
				USING ERRCODE = 'OM004',
				      DETAIL = format('Ordered %s, cancelled %s, shipped %s: %s left to ship.', r.ordered, r.qty_cancelled,
									   r.qty_shipped, r.ordered - r.qty_cancelled - r.qty_shipped),
				      HINT = 'Ship at most what is left of the line.';
		END IF;
		SELECT x.id, x.qty INTO v_res FROM oms.reservations x
			WHERE x.tenant_id = p_tenant AND x.order_id = p_order AND x.line_no = r.line_no AND x.location_id = p_location
			ORDER BY x.id LIMIT 1 FOR UPDATE;
		IF v_res.id IS NULL OR v_res.qty < r.qty THEN
			RAISE EXCEPTION 'cannot ship % units of line % of order %: only % reserved at the location', r.qty, r.line_no,
					p_order, coalesce(v_res.qty, 0)
				USING ERRCODE = 'OM004', HINT = 'Only reserved (released) units can leave a location.';
		END IF;
		IF v_res.qty = r.qty THEN
			DELETE FROM oms.reservations x WHERE x.tenant_id = p_tenant AND x.id = v_res.id;
		ELSE
			UPDATE oms.reservations x SET qty = x.qty - r.qty WHERE x.tenant_id = p_tenant AND x.id = v_res.id;
		END IF;
		UPDATE oms.stock s SET on_hand = s.on_hand - r.qty, updated_at = now()
		 WHERE s.tenant_id = p_tenant AND s.item_id = r.item_id AND s.location_id = p_location
		RETURNING s.on_hand INTO v_on_hand;
		INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, reference, moved_by)
			VALUES (p_tenant, r.item_id, p_location, 'shipment', -r.qty, v_on_hand, p_reason, p_reference, oms._actor());
		UPDATE oms.order_lines l
		   SET qty_shipped = l.qty_shipped + r.qty,
			   qty_delivered = l.qty_delivered + CASE WHEN p_delivered THEN r.qty ELSE 0 END,
			   state = CASE WHEN p_delivered THEN 'delivered'
							WHEN l.qty_shipped + r.qty + l.qty_cancelled >= l.qty THEN 'shipped'
							ELSE 'partially_shipped' END::oms.line_state
		 WHERE l.tenant_id = p_tenant AND l.order_id = p_order AND l.line_no = r.line_no;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._goods_leave(int, bigint, int, jsonb, text, text, boolean) IS 'Internal: lines'' units leave a location: reservation consumed, on_hand lowered with a shipment movement, buckets and line states moved (delivered at once for a collection)';

CREATE FUNCTION oms.ship(shipment_id bigint, carrier_service text, tracking text) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	s			oms.shipments;
	v_carrier	text;
	v_service	text;
	v_other		bigint;
	v_lines		jsonb;
	v_state		oms.order_state;
BEGIN
	IF carrier_service IS NULL OR carrier_service !~ '^[a-z0-9_-]{1,40}\.[a-z0-9_-]{1,40}$' THEN
		RAISE EXCEPTION 'invalid carrier service "%"', coalesce(carrier_service, 'NULL')
			USING ERRCODE = '22023', HINT = 'A carrier service is carrier.service in lower case, e.g. ''dhl.express''.';
	END IF;
	IF tracking IS NULL OR tracking = '' OR length(tracking) > 100 THEN
		RAISE EXCEPTION 'invalid tracking number "%"', coalesce(tracking, 'NULL')
			USING ERRCODE = '22023', HINT = 'The carrier''s tracking number: text of 1 to 100 characters.';
	END IF;
	v_carrier := split_part(carrier_service, '.', 1);
	v_service := split_part(carrier_service, '.', 2);
	s := oms._lock_shipment(v_tenant, ship.shipment_id);

	IF s.state <> 'packed' THEN
		IF s.carrier = v_carrier AND s.service = v_service AND s.tracking = ship.tracking THEN
			RETURN (SELECT o.state FROM oms.orders o WHERE o.tenant_id = v_tenant AND o.id = s.order_id);	-- a retried call
		END IF;
		RAISE EXCEPTION 'shipment % cannot be shipped: it is %', s.id, s.state
			USING ERRCODE = '55000',
			      DETAIL = format('It left with %s.%s, tracking %s.', s.carrier, s.service, s.tracking),
			      HINT = 'A shipment ships once; pack the remaining units in a new one.';
	END IF;
	PERFORM oms._check_not_held(v_tenant, s.order_id, 'shipped');
	SELECT x.id INTO v_other FROM oms.shipments x
		WHERE x.tenant_id = v_tenant AND x.carrier = v_carrier AND x.tracking = ship.tracking;
	IF v_other IS NOT NULL THEN
		RAISE EXCEPTION 'tracking number "%" of carrier "%" is already used by shipment %', tracking, v_carrier, v_other
			USING ERRCODE = '22023', HINT = 'Each package has its own tracking number.';
	END IF;

	SELECT jsonb_agg(jsonb_build_object('line_no', sl.line_no, 'qty', sl.qty)) INTO v_lines
		FROM oms.shipment_lines sl WHERE sl.tenant_id = v_tenant AND sl.shipment_id = s.id;
	PERFORM set_config('oms.reason', format('shipped: shipment %s, %s, tracking %s', s.id, carrier_service, tracking), true);
	PERFORM oms._goods_leave(v_tenant, s.order_id, s.location_id, v_lines, 'shipment ' || s.id,
							 format('shipped with %s, tracking %s', carrier_service, tracking), false);
	UPDATE oms.shipments x SET state = 'shipped', carrier = v_carrier, service = v_service, tracking = ship.tracking,
		   shipped_at = now(), status_at = now()
	 WHERE x.tenant_id = v_tenant AND x.id = s.id;
	v_state := oms._rollup(v_tenant, s.order_id);
	PERFORM oms._event(v_tenant, s.order_id, 'shipped',
		jsonb_build_object('shipment_id', s.id, 'carrier', v_carrier, 'service', v_service, 'tracking', tracking,
						   'shipped_at', now(), 'from', (SELECT l.code FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = s.location_id),
						   'lines', oms._shipment_lines_json(v_tenant, s.id), 'order_state', v_state::text));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms.ship(bigint, text, text) IS 'The packed shipment leaves with a carrier service (carrier.service) and tracking number: reservations consumed, on_hand lowered (movement "shipment"), lines partially_shipped or shipped, order rolled up, event shipped; the same call again is a no-op; returns the order state';

CREATE FUNCTION oms.deliver(shipment_id bigint, at timestamptz DEFAULT now()) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	s			oms.shipments;
	v_state		oms.order_state;
BEGIN
	IF at IS NULL OR at > now() + interval '1 day' THEN
		RAISE EXCEPTION 'invalid delivery time %', coalesce(at::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'When the customer received the shipment: not in the future.';
	END IF;
	s := oms._lock_shipment(v_tenant, deliver.shipment_id);
	IF s.state = 'delivered' THEN
		RETURN (SELECT o.state FROM oms.orders o WHERE o.tenant_id = v_tenant AND o.id = s.order_id);
	END IF;
	IF s.state = 'packed' THEN
		RAISE EXCEPTION 'shipment % cannot be delivered: it has not shipped', s.id
			USING ERRCODE = '55000', HINT = 'Ship it first with oms.ship().';
	END IF;
	PERFORM set_config('oms.reason', format('delivered: shipment %s', s.id), true);
	UPDATE oms.shipments x SET state = 'delivered', delivered_at = deliver.at, status_at = deliver.at
		WHERE x.tenant_id = v_tenant AND x.id = s.id;
	UPDATE oms.order_lines l
	   SET qty_delivered = l.qty_delivered + sl.qty,
		   state = CASE WHEN l.state = 'shipped' AND l.qty_delivered + sl.qty = l.qty_shipped THEN 'delivered'::oms.line_state
						ELSE l.state END
	  FROM oms.shipment_lines sl
	 WHERE sl.tenant_id = v_tenant AND sl.shipment_id = s.id
	   AND l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no;
	v_state := oms._rollup(v_tenant, s.order_id);
	PERFORM oms._event(v_tenant, s.order_id, 'delivered',
		jsonb_build_object('shipment_id', s.id, 'carrier', s.carrier, 'tracking', s.tracking, 'delivered_at', deliver.at,
						   'lines', oms._shipment_lines_json(v_tenant, s.id), 'order_state', v_state::text));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms.deliver(bigint, timestamptz) IS 'Marks a shipped shipment delivered at a time: lines'' delivered quantities grow, a line whose shipped units are all delivered is delivered, the order rolls up, event delivered; delivering again is a no-op; returns the order state';

CREATE FUNCTION oms.tracking_update(carrier text, tracking text, status text, at timestamptz,
									payload jsonb DEFAULT '{}') RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_id		bigint;
	s			oms.shipments;
	v_new		boolean;
BEGIN
	IF status IS NULL OR status NOT IN ('in_transit', 'out_for_delivery', 'exception', 'delivered') THEN
		RAISE EXCEPTION 'invalid tracking status "%"', coalesce(status, 'NULL')
			USING ERRCODE = '22023', HINT = 'A scan is in_transit, out_for_delivery, exception or delivered.';
	END IF;
	IF at IS NULL THEN
		RAISE EXCEPTION 'a scan of tracking number "%" needs its time', tracking
			USING ERRCODE = '22023', HINT = 'Pass the time of the scan as the carrier reports it.';
	END IF;
	IF payload IS NULL OR jsonb_typeof(payload) <> 'object' THEN
		RAISE EXCEPTION 'invalid scan payload %', coalesce(payload::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'The carrier''s data of the scan, as a JSON object (may be {}).';
	END IF;
	SELECT x.id INTO v_id FROM oms.shipments x
		WHERE x.tenant_id = v_tenant AND x.carrier = tracking_update.carrier AND x.tracking = tracking_update.tracking;
	IF v_id IS NULL THEN
		RAISE EXCEPTION 'unknown tracking number "%" of carrier "%"', tracking, coalesce(carrier, 'NULL')
			USING ERRCODE = '22023', HINT = 'Tracking numbers are those given to oms.ship() (see oms.shipments).';
	END IF;
	s := oms._lock_shipment(v_tenant, v_id);

	INSERT INTO oms.tracking_events (tenant_id, shipment_id, status, occurred_at, payload)
		VALUES (v_tenant, s.id, status, at, payload)
		ON CONFLICT ON CONSTRAINT tracking_events_pkey DO NOTHING;
	v_new := FOUND;
	IF NOT v_new OR s.state = 'delivered' THEN
		RETURN s.state;			-- the same scan again, or news about a delivered shipment: nothing changes
	END IF;
	IF status = 'delivered' THEN
		PERFORM oms.deliver(s.id, at);
		RETURN 'delivered';
	END IF;
	IF s.status_at IS NOT NULL AND at < s.status_at THEN
		RETURN s.state;			-- an older scan arriving late: kept, but the state stays
	END IF;
	UPDATE oms.shipments x SET state = tracking_update.status, status_at = at WHERE x.tenant_id = v_tenant AND x.id = s.id;
	PERFORM oms._event(v_tenant, s.order_id, 'tracking',
		jsonb_build_object('shipment_id', s.id, 'carrier', s.carrier, 'tracking', s.tracking, 'status', status, 'at', at));
	RETURN status;
END
$$;
COMMENT ON FUNCTION oms.tracking_update(text, text, text, timestamptz, jsonb) IS 'Takes a carrier''s scan (in_transit, out_for_delivery, exception, delivered) of a tracking number: stored once (the same scan again changes nothing), moves the shipment''s state (an older scan does not move it back), delivered delivers; returns the shipment state';

-- ===== sql/parts/79_pickup.sql
-- Click & collect: the store stages a released order for the customer (ready_for_pickup, the
-- customer is told where and until when), the customer collects it (the stock leaves as for a
-- shipment, and the lines are delivered at once). A pickup not collected within the store's
-- pickup_days is reported by the background worker (event pickup_uncollected, 88_overdue.sql);
-- cancelling the order then returns its stock, like any cancellation.

CREATE TABLE oms.pickups (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	order_id		bigint NOT NULL,
	location_id		int NOT NULL,
	ready_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	collect_by		timestamptz NOT NULL,
	collected_at	timestamptz,
	uncollected_at	timestamptz,
	PRIMARY KEY (tenant_id, order_id),
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations,
	CHECK (collect_by > ready_at)
);
CREATE INDEX pickups_waiting_idx ON oms.pickups (collect_by) WHERE collected_at IS NULL AND uncollected_at IS NULL;
COMMENT ON TABLE oms.pickups IS 'Click & collect orders staged at their store: when ready, until when the store keeps them (pickup_days), when collected, when reported uncollected';

CREATE FUNCTION oms.ready_for_pickup(order_id bigint) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_store		record;
	v_lines		jsonb;
	v_by		timestamptz;
	v_state		oms.order_state;
BEGIN
	o := oms._lock_order(v_tenant, ready_for_pickup.order_id);
	IF o.pickup_location_id IS NULL THEN
		RAISE EXCEPTION 'order % is not a click & collect order', o.id
			USING ERRCODE = '22023', HINT = 'Only orders placed with "pickup" are staged for the customer; ship the others.';
	END IF;
	PERFORM oms._check_not_held(v_tenant, o.id, 'staged for pickup');
	SELECT l.code, l.name, l.city, l.pickup_days INTO v_store
		FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = o.pickup_location_id;

	PERFORM set_config('oms.reason', 'ready for pickup at ' || v_store.code, true);
	WITH staged AS (
		UPDATE oms.order_lines l SET state = 'ready_for_pickup'
		 WHERE l.tenant_id = v_tenant AND l.order_id = o.id AND l.state IN ('released', 'picked', 'packed')
		RETURNING l.line_no, l.item_id, l.qty - l.qty_cancelled - l.qty_shipped AS qty)
	SELECT jsonb_agg(jsonb_build_object('line_no', s.line_no, 'sku', i.sku, 'name', i.name, 'qty', s.qty) ORDER BY s.line_no)
	  INTO v_lines
	  FROM staged s JOIN oms.items i ON i.tenant_id = v_tenant AND i.id = s.item_id;
	IF v_lines IS NULL THEN
		IF o.state = 'released' AND EXISTS (SELECT FROM oms.pickups p WHERE p.tenant_id = v_tenant AND p.order_id = o.id) THEN
			RETURN o.state;		-- staged already: a retried call changes nothing
		END IF;
		RAISE EXCEPTION 'order % has no released line to stage for pickup: it is %', o.id, o.state
			USING ERRCODE = '55000', HINT = 'Release the order first (oms.release_order).';
	END IF;
	v_by := now() + make_interval(days => v_store.pickup_days);
	INSERT INTO oms.pickups AS p (tenant_id, order_id, location_id, collect_by)
		VALUES (v_tenant, o.id, o.pickup_location_id, v_by)
		ON CONFLICT ON CONSTRAINT pickups_pkey
		DO UPDATE SET ready_at = now(), collect_by = EXCLUDED.collect_by, uncollected_at = NULL;
	v_state := oms._rollup(v_tenant, o.id);
	PERFORM oms._event(v_tenant, o.id, 'ready_for_pickup',
		jsonb_build_object('store', jsonb_build_object('location', v_store.code, 'name', v_store.name, 'city', v_store.city),
						   'collect_by', v_by, 'lines', v_lines));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms.ready_for_pickup(bigint) IS 'Stages the released lines of a click & collect order at its store (line state ready_for_pickup) and tells the customer (event ready_for_pickup with the store and the date until which it is kept); returns the order state';

CREATE FUNCTION oms.collect(order_id bigint) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_lines		jsonb;
	v_state		oms.order_state;
BEGIN
	o := oms._lock_order(v_tenant, collect.order_id);
	SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'qty', l.qty - l.qty_cancelled - l.qty_shipped))
	  INTO v_lines
	  FROM oms.order_lines l
	 WHERE l.tenant_id = v_tenant AND l.order_id = o.id AND l.state = 'ready_for_pickup';
	IF v_lines IS NULL THEN
		IF EXISTS (SELECT FROM oms.pickups p WHERE p.tenant_id = v_tenant AND p.order_id = o.id AND p.collected_at IS NOT NULL) THEN
			RETURN o.state;		-- collected already
		END IF;
		RAISE EXCEPTION 'order % is not ready for pickup: it is %', o.id, o.state
			USING ERRCODE = '55000', HINT = 'Stage it first with oms.ready_for_pickup().';
	END IF;
	PERFORM oms._check_not_held(v_tenant, o.id, 'collected');
	PERFORM set_config('oms.reason', 'collected by the customer', true);
	PERFORM oms._goods_leave(v_tenant, o.id, o.pickup_location_id, v_lines, 'order ' || o.external_id,
							 'collected by the customer', true);
	UPDATE oms.pickups p SET collected_at = now() WHERE p.tenant_id = v_tenant AND p.order_id = o.id;
	v_state := oms._rollup(v_tenant, o.id);
	PERFORM oms._event(v_tenant, o.id, 'delivered',
		jsonb_build_object('collected', true, 'delivered_at', now(),
						   'store', (SELECT l.code FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = o.pickup_location_id),
						   'lines', (SELECT jsonb_agg(jsonb_build_object('line_no', x.line_no, 'sku', i.sku, 'name', i.name, 'qty', x.qty)
													  ORDER BY x.line_no)
									   FROM jsonb_to_recordset(v_lines) x(line_no int, qty int)
									   JOIN oms.order_lines l ON l.tenant_id = v_tenant AND l.order_id = o.id AND l.line_no = x.line_no
									   JOIN oms.items i ON i.tenant_id = v_tenant AND i.id = l.item_id),
						   'order_state', v_state::text));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms.collect(bigint) IS 'The customer collects a staged click & collect order: the stock leaves the store (reservation consumed, on_hand lowered, movement "shipment"), the lines are delivered, event delivered (collected); returns the order state';

-- ===== sql/parts/80_demand_history.sql
-- Demand history: units ordered, cancelled and returned per tenant, SKU, location, channel and
-- day, kept up to date as orders are placed, cancelled and returned, so that forecasting and
-- planning never sum the order lines at read time.
--
-- Two tables, because a summary row that every order updates is a hot row: every order for a
-- best seller on one day would wait for the previous one's commit, and an order (which writes
-- the summary before it reserves stock) and a cancellation (which releases stock before it
-- writes the summary) would take the two locks in opposite orders and deadlock. So:
--   oms.demand_deltas   append-only: the statement triggers on order_lines insert one row per
--                       (SKU, location, channel, day) a statement changed; nothing is updated,
--                       so no order ever waits for another one here;
--   oms.demand_history  the summary: oms.compact_demand_history() folds the deltas into it (the
--                       scheduled job "demand_history" does, and planning does before it reads).
-- Readers add both (view oms.daily_demand), so a delta counts from the moment it commits.
--
-- Definitions: the day is the UTC date of orders.placed_at; "ordered" is the lines' qty,
-- "cancelled" their qty_cancelled, "returned" their qty_returned; demand = ordered - cancelled.
-- Returns are kept apart and not subtracted from demand: a returned unit comes back into on_hand
-- through its return movement, and subtracting it from demand as well would count it twice in
-- planning. A line not yet assigned to a location (a backorder waiting for supply) counts with
-- location NULL, and moves to its location when it is allocated.

CREATE TABLE oms.demand_history (
	tenant_id		int NOT NULL,
	item_id			int NOT NULL,
	location_id		int,
	channel_id		int NOT NULL,
	day				date NOT NULL,
	ordered			bigint NOT NULL DEFAULT 0,
	cancelled		bigint NOT NULL DEFAULT 0,
	returned		bigint NOT NULL DEFAULT 0,
	lines			bigint NOT NULL DEFAULT 0,
	CONSTRAINT demand_history_key UNIQUE NULLS NOT DISTINCT (tenant_id, item_id, location_id, channel_id, day)
);
COMMENT ON TABLE oms.demand_history IS 'Daily demand summary per SKU, location (NULL: not yet assigned), channel and UTC day: units ordered, cancelled, returned and lines; add oms.demand_deltas (or read oms.daily_demand) for the latest changes';
COMMENT ON COLUMN oms.demand_history.lines IS 'Order lines counted in this row';

CREATE TABLE oms.demand_deltas (
	tenant_id		int NOT NULL,
	item_id			int NOT NULL,
	location_id		int,
	channel_id		int NOT NULL,
	day				date NOT NULL,
	ordered			bigint NOT NULL,
	cancelled		bigint NOT NULL,
	returned		bigint NOT NULL,
	lines			bigint NOT NULL
);
CREATE INDEX demand_deltas_item_idx ON oms.demand_deltas (tenant_id, item_id);
COMMENT ON TABLE oms.demand_deltas IS 'Append-only changes of demand written by the order_lines triggers, not yet folded into oms.demand_history by oms.compact_demand_history()';

-- The demand day of an order: the UTC date of placed_at (the same for every session).
CREATE FUNCTION oms.demand_day(placed_at timestamptz) RETURNS date
	LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
	SET search_path = oms, pg_catalog
	RETURN (placed_at AT TIME ZONE 'UTC')::date;
COMMENT ON FUNCTION oms.demand_day(timestamptz) IS 'The day an order counts in demand history: the UTC date of its placed_at';

-- "Today" for planning, forecasting, alerts and subscriptions: the setting oms.today when set
-- (tests, what-if runs), else the current date.
CREATE FUNCTION oms.today() RETURNS date
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN coalesce(NULLIF(pg_catalog.current_setting('oms.today'), '')::date, CURRENT_DATE);
COMMENT ON FUNCTION oms.today() IS 'The date that planning, forecasts, alerts and subscriptions treat as today: the setting oms.today, else the current date';

-- The triggers: one statement, one INSERT of the net change per key; an UPDATE that changes no
-- counted column (a state change) nets to nothing and writes nothing. They spell out
-- oms.demand_day's expression: a function with a pinned search_path is not inlined, and calling
-- it cost 10 us a row (measured).
CREATE FUNCTION oms._demand_lines_inserted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.demand_deltas (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
	SELECT n.tenant_id, n.item_id, n.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
		   pg_catalog.sum(n.qty), pg_catalog.sum(n.qty_cancelled), pg_catalog.sum(n.qty_returned), pg_catalog.count(*)
	  FROM new_lines n
	  JOIN oms.orders o ON o.tenant_id = n.tenant_id AND o.id = n.order_id
	 GROUP BY n.tenant_id, n.item_id, n.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._demand_lines_inserted() IS 'Internal: statement trigger on order_lines INSERT: adds the new lines to oms.demand_deltas';

CREATE FUNCTION oms._demand_lines_updated() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.demand_deltas (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
	SELECT c.tenant_id, c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
		   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_returned), pg_catalog.sum(c.lines)
	  FROM (SELECT n.tenant_id, n.order_id, n.item_id, n.location_id, n.qty::bigint AS qty,
				   n.qty_cancelled::bigint AS qty_cancelled, n.qty_returned::bigint AS qty_returned, 1::bigint AS lines
			  FROM new_lines n
			UNION ALL
			SELECT d.tenant_id, d.order_id, d.item_id, d.location_id, -d.qty, -d.qty_cancelled, -d.qty_returned, -1
			  FROM old_lines d) c
	  JOIN oms.orders o ON o.tenant_id = c.tenant_id AND o.id = c.order_id
	 GROUP BY c.tenant_id, c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date
	HAVING pg_catalog.sum(c.qty) <> 0 OR pg_catalog.sum(c.qty_cancelled) <> 0
		OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.lines) <> 0;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._demand_lines_updated() IS 'Internal: statement trigger on order_lines UPDATE: writes to oms.demand_deltas the net change of qty, qty_cancelled, qty_returned or location';

CREATE FUNCTION oms._demand_lines_deleted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.demand_deltas (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
	SELECT d.tenant_id, d.item_id, d.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
		   -pg_catalog.sum(d.qty), -pg_catalog.sum(d.qty_cancelled), -pg_catalog.sum(d.qty_returned), -pg_catalog.count(*)
	  FROM old_lines d
	  JOIN oms.orders o ON o.tenant_id = d.tenant_id AND o.id = d.order_id
	 GROUP BY d.tenant_id, d.item_id, d.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._demand_lines_deleted() IS 'Internal: statement trigger on order_lines DELETE: takes the deleted lines out of demand';

CREATE TRIGGER demand_lines_inserted AFTER INSERT ON oms.order_lines
	REFERENCING NEW TABLE AS new_lines
	FOR EACH STATEMENT EXECUTE FUNCTION oms._demand_lines_inserted();
COMMENT ON TRIGGER demand_lines_inserted ON oms.order_lines IS 'Keeps demand history: new lines count as ordered on their order''s day';
CREATE TRIGGER demand_lines_updated AFTER UPDATE ON oms.order_lines
	REFERENCING OLD TABLE AS old_lines NEW TABLE AS new_lines
	FOR EACH STATEMENT EXECUTE FUNCTION oms._demand_lines_updated();
COMMENT ON TRIGGER demand_lines_updated ON oms.order_lines IS 'Keeps demand history: cancelled and returned quantities, and a line''s new location';
CREATE TRIGGER demand_lines_deleted AFTER DELETE ON oms.order_lines
	REFERENCING OLD TABLE AS old_lines
	FOR EACH STATEMENT EXECUTE FUNCTION oms._demand_lines_deleted();
COMMENT ON TRIGGER demand_lines_deleted ON oms.order_lines IS 'Keeps demand history: deleted lines no longer count';

-- The lock that serialises the writers of oms.demand_history for one tenant.
CREATE FUNCTION oms._lock_demand_history(p_tenant int) RETURNS void
	LANGUAGE sql
	SET search_path = oms, pg_catalog
	RETURN pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('oms.demand_history'), p_tenant);
COMMENT ON FUNCTION oms._lock_demand_history(int) IS 'Internal: the transaction lock that compaction and rebuild of a tenant''s demand history take';

CREATE FUNCTION oms.compact_demand_history() RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_rows		bigint;
BEGIN
	PERFORM oms._lock_demand_history(v_tenant);
	-- One statement: the deltas it deletes are exactly those it adds (deltas that commit later
	-- are not in its snapshot and stay for the next run).
	WITH moved AS (
		DELETE FROM oms.demand_deltas d WHERE d.tenant_id = v_tenant RETURNING d.*
	), summed AS (
		SELECT m.tenant_id, m.item_id, m.location_id, m.channel_id, m.day, pg_catalog.sum(m.ordered) AS ordered,
			   pg_catalog.sum(m.cancelled) AS cancelled, pg_catalog.sum(m.returned) AS returned,
			   pg_catalog.sum(m.lines) AS lines, pg_catalog.count(*) AS deltas
		  FROM moved m
		 GROUP BY m.tenant_id, m.item_id, m.location_id, m.channel_id, m.day
	), upserted AS (
		INSERT INTO oms.demand_history AS h (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
		SELECT s.tenant_id, s.item_id, s.location_id, s.channel_id, s.day, s.ordered, s.cancelled, s.returned, s.lines
		  FROM summed s
		 ORDER BY s.item_id, s.location_id, s.channel_id, s.day
		ON CONFLICT ON CONSTRAINT demand_history_key DO UPDATE
		   SET ordered = h.ordered + EXCLUDED.ordered, cancelled = h.cancelled + EXCLUDED.cancelled,
			   returned = h.returned + EXCLUDED.returned, lines = h.lines + EXCLUDED.lines
		RETURNING 1
	)
	SELECT coalesce(pg_catalog.sum(s.deltas), 0) INTO v_rows FROM summed s;
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms.compact_demand_history() IS 'Folds the current tenant''s oms.demand_deltas into oms.demand_history; returns the number of deltas folded (the scheduled job "demand_history" runs it)';

CREATE FUNCTION oms.rebuild_demand_history("from" date DEFAULT NULL) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_rows		bigint;
BEGIN
	PERFORM oms._lock_demand_history(v_tenant);
	DELETE FROM oms.demand_history h
	 WHERE h.tenant_id = v_tenant AND ($1 IS NULL OR h.day >= $1);
	-- One statement, one snapshot: an order committed before it is counted from its lines and its
	-- deltas are deleted; an order committed after it keeps its deltas. (A data-modifying WITH
	-- runs to completion whether or not the rest of the statement reads it.)
	WITH gone AS (
		DELETE FROM oms.demand_deltas d
		 WHERE d.tenant_id = v_tenant AND ($1 IS NULL OR d.day >= $1)
		RETURNING 1
	)
	INSERT INTO oms.demand_history (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
	SELECT l.tenant_id, l.item_id, l.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
		   pg_catalog.sum(l.qty), pg_catalog.sum(l.qty_cancelled), pg_catalog.sum(l.qty_returned), pg_catalog.count(*)
	  FROM oms.orders o
	  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
	 WHERE o.tenant_id = v_tenant
	   AND ($1 IS NULL OR o.placed_at >= ($1::timestamp AT TIME ZONE 'UTC'))
	 GROUP BY l.tenant_id, l.item_id, l.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms.rebuild_demand_history(date) IS 'Recomputes the current tenant''s demand history from its order lines, for the days from the given date on (all days when NULL); returns the number of summary rows written';

CREATE VIEW oms.daily_demand AS
SELECT i.sku, l.code AS location, c.code AS channel, x.day,
	   pg_catalog.sum(x.ordered)::bigint AS ordered, pg_catalog.sum(x.cancelled)::bigint AS cancelled,
	   pg_catalog.sum(x.returned)::bigint AS returned,
	   (pg_catalog.sum(x.ordered) - pg_catalog.sum(x.cancelled))::bigint AS demand,
	   pg_catalog.sum(x.lines)::bigint AS lines
  FROM (SELECT h.tenant_id, h.item_id, h.location_id, h.channel_id, h.day, h.ordered, h.cancelled, h.returned, h.lines
		  FROM oms.demand_history h
		 WHERE h.tenant_id = oms.current_tenant_id()
		UNION ALL
		SELECT d.tenant_id, d.item_id, d.location_id, d.channel_id, d.day, d.ordered, d.cancelled, d.returned, d.lines
		  FROM oms.demand_deltas d
		 WHERE d.tenant_id = oms.current_tenant_id()) x
  JOIN oms.items i ON i.tenant_id = x.tenant_id AND i.id = x.item_id
  JOIN oms.channels c ON c.tenant_id = x.tenant_id AND c.id = x.channel_id
  LEFT JOIN oms.locations l ON l.tenant_id = x.tenant_id AND l.id = x.location_id
 GROUP BY i.sku, l.code, c.code, x.day
HAVING pg_catalog.sum(x.ordered) <> 0 OR pg_catalog.sum(x.cancelled) <> 0 OR pg_catalog.sum(x.returned) <> 0
	OR pg_catalog.sum(x.lines) <> 0;
COMMENT ON VIEW oms.daily_demand IS 'Demand per SKU, location (NULL: not yet assigned), channel and UTC day of the current tenant, including changes not yet compacted: ordered, cancelled, returned, demand (ordered - cancelled), lines';

-- The "placed_at" field of an order payload: a timestamp (with a time zone offset, else the
-- session's), not in the future; NULL when absent.
CREATE FUNCTION oms._payload_placed_at(p_value jsonb) RETURNS timestamptz
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_at timestamptz;
BEGIN
	IF p_value IS NULL THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(p_value) = 'string' AND (p_value #>> '{}') ~ '^\d{4}-\d\d-\d\d([ T]\d\d:\d\d(:\d\d(\.\d+)?)?)?\s*(Z|[+-]\d\d(:?\d\d)?)?$' THEN
		BEGIN
			v_at := (p_value #>> '{}')::timestamptz;
		EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format OR invalid_time_zone_displacement_value THEN
			v_at := NULL;
		END;
	END IF;
	IF v_at IS NULL THEN
		PERFORM oms._payload_error('placed_at', 'must be an ISO 8601 timestamp', p_value,
			'For example "2024-03-01T10:15:00+01:00"; without an offset the session''s time zone applies.');
	END IF;
	IF v_at > pg_catalog.clock_timestamp() THEN
		PERFORM oms._payload_error('placed_at', 'must not be in the future', p_value,
			'placed_at records when an order was placed (e.g. when importing history); leave it out for now.');
	END IF;
	RETURN v_at;
END
$$;
COMMENT ON FUNCTION oms._payload_placed_at(jsonb) IS 'Internal: the placed_at of an order payload (22023 unless an ISO 8601 timestamp not in the future); NULL when absent';

SELECT pg_catalog.pg_extension_config_dump('oms.demand_history', '');
SELECT pg_catalog.pg_extension_config_dump('oms.demand_deltas', '');

-- ===== sql/parts/81_forecast.sql
-- Forecasts (src/forecast.c) and the statistics of planning (src/planning.c). The methods, their
-- formulas and what short histories give are described at the top of src/forecast.c and in the
-- README.

CREATE FUNCTION oms.forecast(sku text, location text DEFAULT NULL, horizon int DEFAULT 28, method text DEFAULT 'auto')
	RETURNS TABLE (day date, qty double precision, lower double precision, upper double precision, method text)
	LANGUAGE c STABLE ROWS 28
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_forecast';
COMMENT ON FUNCTION oms.forecast(text, text, int, text) IS 'Daily demand forecast of a SKU at a location (NULL: the network) for horizon days from oms.today(): qty, a 95% interval (lower, upper) and the method used (moving_average, exponential_smoothing, holt_winters; auto picks the lowest error on held-back days; none without history)';

CREATE FUNCTION oms.forecast_methods(sku text, location text DEFAULT NULL)
	RETURNS TABLE (method text, history_days int, held_back_days int, mae double precision, chosen boolean,
				   parameters text, sigma double precision)
	LANGUAGE c STABLE ROWS 3
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_forecast_methods';
COMMENT ON FUNCTION oms.forecast_methods(text, text) IS 'How oms.forecast''s auto chose for a SKU: per method, the mean absolute error on the held-back days, whether it was chosen, and the parameters and one-step error (sigma) of its fit on the whole history';

CREATE FUNCTION oms.inverse_normal(p double precision) RETURNS double precision
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_inverse_normal_sql';
COMMENT ON FUNCTION oms.inverse_normal(double precision) IS 'The standard normal quantile z of a probability p in (0, 1) (Acklam''s approximation refined by a Halley step): the z of a service level; 22023 outside (0, 1)';

CREATE FUNCTION oms.safety_stock(service_level double precision, demand_sd double precision,
								 lead_time_days double precision, demand_mean double precision DEFAULT 0,
								 lead_time_sd double precision DEFAULT 0)
	RETURNS double precision
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_safety_stock_sql';
COMMENT ON FUNCTION oms.safety_stock(double precision, double precision, double precision, double precision, double precision) IS 'Safety stock z(service_level) * sqrt(lead_time_days * demand_sd^2 + demand_mean^2 * lead_time_sd^2) (= z * demand_sd * sqrt(lead time) when the lead time does not vary); 22023 for a level outside (0, 1) or a negative input';

-- ===== sql/parts/82_policies.sql
-- Suppliers and replenishment policies.
--
-- A policy belongs to a location: a row with item_id NULL is the location's default, a row with
-- an item overrides it for that SKU. Every setting is a nullable column: NULL inherits, field by
-- field, from the location's default, then from the built-in default (oms._policy_defaults()).
-- Planning (oms.plan_replenishment) reads the effective values.

CREATE TABLE oms.suppliers (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id() REFERENCES oms.tenants,
	id				int GENERATED ALWAYS AS IDENTITY,
	code			text NOT NULL CHECK (code <> '' AND length(code) <= 100),
	name			text NOT NULL,
	location_id		int,
	email			text,
	active			boolean NOT NULL DEFAULT true,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	UNIQUE (tenant_id, code),
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations
);
COMMENT ON TABLE oms.suppliers IS 'Suppliers that purchase orders go to; location_id links a supplier that is also a vendor location (drop-ship vendor)';

CREATE TABLE oms.replenishment_policies (
	tenant_id			int NOT NULL DEFAULT oms.current_tenant_id(),
	id					int GENERATED ALWAYS AS IDENTITY,
	location_id			int NOT NULL,
	item_id				int,
	method				text CHECK (method IN ('reorder_point', 'min_max')),
	service_level		numeric CHECK (service_level > 0 AND service_level < 1),
	lead_time_days		numeric CHECK (lead_time_days >= 0 AND lead_time_days <= 3650),
	lead_time_sd		numeric CHECK (lead_time_sd >= 0 AND lead_time_sd <= 3650),
	review_period_days	numeric CHECK (review_period_days >= 0 AND review_period_days <= 3650),
	history_days		int CHECK (history_days BETWEEN 7 AND 3660),
	min_qty				bigint CHECK (min_qty >= 0),
	max_qty				bigint CHECK (max_qty >= 0),
	order_qty			bigint CHECK (order_qty > 0),
	moq					bigint CHECK (moq >= 0),
	pack_size			bigint CHECK (pack_size >= 1),
	supplier_id			int,
	unit_cost			numeric CHECK (unit_cost >= 0),
	overstock_days		numeric CHECK (overstock_days > 0),
	update_safety_stock	boolean,
	rebalance			boolean,
	auto_send			boolean,
	updated_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_by			text NOT NULL DEFAULT session_user,
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT replenishment_policies_key UNIQUE NULLS NOT DISTINCT (tenant_id, location_id, item_id),
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations,
	FOREIGN KEY (tenant_id, item_id) REFERENCES oms.items,
	FOREIGN KEY (tenant_id, supplier_id) REFERENCES oms.suppliers
);
COMMENT ON TABLE oms.replenishment_policies IS 'Replenishment policy per location (item_id NULL: the location''s default) or per SKU and location; NULL settings inherit from the default, then from oms._policy_defaults()';
COMMENT ON COLUMN oms.replenishment_policies.update_safety_stock IS 'When true, oms.run_replenishment writes the computed safety stock into stock.safety_stock, which ATP then keeps back';
COMMENT ON COLUMN oms.replenishment_policies.rebalance IS 'When true, a shortage here may be covered by a transfer from a location with surplus before buying';
COMMENT ON COLUMN oms.replenishment_policies.auto_send IS 'When true, purchase orders that oms.run_replenishment creates are sent at once (else they wait as draft)';

CREATE FUNCTION oms._policy_defaults() RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN '{"method": "reorder_point", "service_level": 0.95, "lead_time_days": 7, "lead_time_sd": 0,
			 "review_period_days": 0, "history_days": 90, "min": null, "max": null, "order_qty": null,
			 "moq": 0, "pack_size": 1, "supplier": null, "unit_cost": null, "overstock_days": null,
			 "update_safety_stock": false, "rebalance": true, "auto_send": false}'::jsonb;
COMMENT ON FUNCTION oms._policy_defaults() IS 'The built-in replenishment policy settings that policies inherit when neither the SKU nor the location default sets them';

-- The supplier named by a code: a row of oms.suppliers, else a vendor location (which then gets
-- its supplier row); 22023 otherwise.
CREATE FUNCTION oms._supplier_id(p_tenant int, p_code text) RETURNS int
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_id int;
BEGIN
	SELECT s.id INTO v_id FROM oms.suppliers s WHERE s.tenant_id = p_tenant AND s.code = p_code;
	IF v_id IS NULL THEN
		INSERT INTO oms.suppliers AS s (tenant_id, code, name, location_id)
		SELECT l.tenant_id, l.code, l.name, l.id FROM oms.locations l
		 WHERE l.tenant_id = p_tenant AND l.code = p_code AND l.kind = 'vendor'
		ON CONFLICT (tenant_id, code) DO UPDATE SET location_id = s.location_id
		RETURNING s.id INTO v_id;
	END IF;
	IF v_id IS NULL THEN
		RAISE EXCEPTION 'unknown supplier "%"', coalesce(p_code, 'NULL')
			USING ERRCODE = '22023',
			      HINT = 'A supplier is a row of oms.suppliers, or the code of a location of kind vendor.';
	END IF;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms._supplier_id(int, text) IS 'Internal: the id of a supplier code (a vendor location''s code makes it a supplier); 22023 for an unknown one';

-- One numeric field of a JSON object, checked: NULL when absent or null.
CREATE FUNCTION oms._json_number(p_obj jsonb, p_what text, p_key text, p_min numeric, p_min_open boolean,
								 p_max numeric, p_whole boolean, p_hint text, p_path text DEFAULT '') RETURNS numeric
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v jsonb := p_obj -> p_key;
	n numeric;
BEGIN
	IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(v) = 'number' THEN
		n := v::numeric;
	END IF;
	IF n IS NULL OR (p_whole AND n <> trunc(n)) OR n < p_min OR (p_min_open AND n = p_min) OR n > p_max THEN
		RAISE EXCEPTION '% field "%" must be %, got %', p_what, p_path || p_key,
				CASE WHEN p_whole THEN 'a whole number ' ELSE 'a number ' END
				|| CASE WHEN p_min_open THEN 'greater than ' || p_min ELSE 'of at least ' || p_min END
				|| CASE WHEN p_max < 1e15 THEN ' and at most ' || p_max ELSE '' END,
				v::text
			USING ERRCODE = '22023', HINT = p_hint;
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION oms._json_number(jsonb, text, text, numeric, boolean, numeric, boolean, text, text) IS 'Internal: a checked number from a JSON object (22023 naming the field, after the path prefix, and the value); NULL when absent or null';

CREATE FUNCTION oms._json_boolean(p_obj jsonb, p_what text, p_key text) RETURNS boolean
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_obj -> p_key IS NULL OR jsonb_typeof(p_obj -> p_key) = 'null' THEN
		RETURN NULL;
	END IF;
	IF jsonb_typeof(p_obj -> p_key) <> 'boolean' THEN
		RAISE EXCEPTION '% field "%" must be true or false, got %', p_what, p_key, (p_obj -> p_key)::text
			USING ERRCODE = '22023', HINT = 'Write true or false, without quotes; null inherits.';
	END IF;
	RETURN (p_obj ->> p_key)::boolean;
END
$$;
COMMENT ON FUNCTION oms._json_boolean(jsonb, text, text) IS 'Internal: a checked boolean from a JSON object (22023 naming the field and the value); NULL when absent or null';

-- The effective policies of a tenant, one row per policy row's (location, item), with every
-- setting resolved: the SKU's value, else the location default's, else the built-in default.
CREATE FUNCTION oms._effective_policy(p_tenant int, p_location int, p_item int)
	RETURNS TABLE (policy_id int, default_id int, method text, service_level numeric, lead_time_days numeric,
				   lead_time_sd numeric, review_period_days numeric, history_days int, min_qty bigint,
				   max_qty bigint, order_qty bigint, moq bigint, pack_size bigint, supplier_id int,
				   unit_cost numeric, overstock_days numeric, update_safety_stock boolean, rebalance boolean,
				   auto_send boolean)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	SELECT s.id, d.id,
		   coalesce(s.method, d.method, oms._policy_defaults() ->> 'method'),
		   coalesce(s.service_level, d.service_level, (oms._policy_defaults() ->> 'service_level')::numeric),
		   coalesce(s.lead_time_days, d.lead_time_days, (oms._policy_defaults() ->> 'lead_time_days')::numeric),
		   coalesce(s.lead_time_sd, d.lead_time_sd, (oms._policy_defaults() ->> 'lead_time_sd')::numeric),
		   coalesce(s.review_period_days, d.review_period_days, (oms._policy_defaults() ->> 'review_period_days')::numeric),
		   coalesce(s.history_days, d.history_days, (oms._policy_defaults() ->> 'history_days')::int),
		   coalesce(s.min_qty, d.min_qty), coalesce(s.max_qty, d.max_qty), coalesce(s.order_qty, d.order_qty),
		   coalesce(s.moq, d.moq, (oms._policy_defaults() ->> 'moq')::bigint),
		   coalesce(s.pack_size, d.pack_size, (oms._policy_defaults() ->> 'pack_size')::bigint),
		   coalesce(s.supplier_id, d.supplier_id), coalesce(s.unit_cost, d.unit_cost),
		   coalesce(s.overstock_days, d.overstock_days),
		   coalesce(s.update_safety_stock, d.update_safety_stock, (oms._policy_defaults() ->> 'update_safety_stock')::boolean),
		   coalesce(s.rebalance, d.rebalance, (oms._policy_defaults() ->> 'rebalance')::boolean),
		   coalesce(s.auto_send, d.auto_send, (oms._policy_defaults() ->> 'auto_send')::boolean)
	  FROM (SELECT 1) one
	  LEFT JOIN oms.replenishment_policies s
		ON s.tenant_id = p_tenant AND s.location_id = p_location AND s.item_id = p_item
	  LEFT JOIN oms.replenishment_policies d
		ON d.tenant_id = p_tenant AND d.location_id = p_location AND d.item_id IS NULL
	 WHERE s.id IS NOT NULL OR d.id IS NOT NULL;
END;
COMMENT ON FUNCTION oms._effective_policy(int, int, int) IS 'Internal: the effective policy of an item at a location (item NULL: the location default), every setting resolved; no row when there is no policy';

CREATE FUNCTION oms.policy(sku text, location text) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_loc		int := oms._location_id(v_tenant, location);
	v_item		int := CASE WHEN sku IS NOT NULL THEN oms._item_id(v_tenant, sku) END;
	v_result	jsonb;
BEGIN
	SELECT jsonb_build_object('method', e.method, 'service_level', e.service_level, 'lead_time_days', e.lead_time_days,
			   'lead_time_sd', e.lead_time_sd, 'review_period_days', e.review_period_days, 'history_days', e.history_days,
			   'min', e.min_qty, 'max', e.max_qty, 'order_qty', e.order_qty, 'moq', e.moq, 'pack_size', e.pack_size,
			   'supplier', (SELECT s.code FROM oms.suppliers s WHERE s.tenant_id = v_tenant AND s.id = e.supplier_id),
			   'unit_cost', e.unit_cost, 'overstock_days', e.overstock_days,
			   'update_safety_stock', e.update_safety_stock, 'rebalance', e.rebalance, 'auto_send', e.auto_send,
			   'source', CASE WHEN e.policy_id IS NOT NULL AND v_item IS NOT NULL THEN 'sku' ELSE 'location' END)
	  INTO v_result
	  FROM oms._effective_policy(v_tenant, v_loc, v_item) e;
	RETURN v_result;
END
$$;
COMMENT ON FUNCTION oms.policy(text, text) IS 'The effective replenishment policy of a SKU at a location (sku NULL: the location default), every setting resolved, as JSON; NULL when neither the SKU nor the location has one';

CREATE FUNCTION oms.set_policy(sku text, location text, policy jsonb) RETURNS jsonb
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_loc		int := oms._location_id(v_tenant, location);
	v_item		int := CASE WHEN sku IS NOT NULL THEN oms._item_id(v_tenant, sku) END;
	p			jsonb := set_policy.policy;
	v_what		text := 'policy';
	v_key		text;
	v_supplier	int;
	e			record;
BEGIN
	IF p IS NULL THEN
		DELETE FROM oms.replenishment_policies r
		 WHERE r.tenant_id = v_tenant AND r.location_id = v_loc AND r.item_id IS NOT DISTINCT FROM v_item;
		RETURN oms.policy(sku, location);
	END IF;
	IF jsonb_typeof(p) <> 'object' THEN
		RAISE EXCEPTION 'policy must be a JSON object, got %', left(p::text, 80)
			USING ERRCODE = '22023', HINT = 'For example {"service_level": 0.95, "lead_time_days": 7, "moq": 10, "pack_size": 6}.';
	END IF;
	SELECT k INTO v_key FROM jsonb_object_keys(p) k WHERE NOT (oms._policy_defaults() ? k) ORDER BY k LIMIT 1;
	IF v_key IS NOT NULL THEN
		RAISE EXCEPTION 'policy field "%" is not known', v_key
			USING ERRCODE = '22023',
			      HINT = 'Known fields: ' || (SELECT string_agg(k, ', ' ORDER BY k) FROM jsonb_object_keys(oms._policy_defaults()) k) || '.';
	END IF;
	IF p ? 'method' AND jsonb_typeof(p -> 'method') <> 'null'
	   AND (jsonb_typeof(p -> 'method') <> 'string' OR p ->> 'method' NOT IN ('reorder_point', 'min_max')) THEN
		RAISE EXCEPTION 'policy field "method" must be reorder_point or min_max, got %', (p -> 'method')::text
			USING ERRCODE = '22023',
			      HINT = 'reorder_point orders when stock falls to the computed reorder point; min_max orders up to max when it falls to min.';
	END IF;
	IF p ? 'supplier' AND jsonb_typeof(p -> 'supplier') <> 'null' THEN
		IF jsonb_typeof(p -> 'supplier') <> 'string' THEN
			RAISE EXCEPTION 'policy field "supplier" must be a supplier code, got %', (p -> 'supplier')::text
				USING ERRCODE = '22023', HINT = 'A supplier is a row of oms.suppliers, or the code of a location of kind vendor.';
		END IF;
		v_supplier := oms._supplier_id(v_tenant, p ->> 'supplier');
	END IF;
	IF p ? 'service_level' AND jsonb_typeof(p -> 'service_level') <> 'null'
	   AND (jsonb_typeof(p -> 'service_level') <> 'number' OR (p ->> 'service_level')::numeric <= 0
			OR (p ->> 'service_level')::numeric >= 1) THEN
		RAISE EXCEPTION 'policy field "service_level" must be a number between 0 and 1, both excluded, got %', (p -> 'service_level')::text
			USING ERRCODE = '22023',
			      HINT = 'A service level is the probability of not running out during a lead time, e.g. 0.95 for 95%; a level of 1 would need infinite safety stock.';
	END IF;

	INSERT INTO oms.replenishment_policies AS r
		(tenant_id, location_id, item_id, method, service_level, lead_time_days, lead_time_sd, review_period_days,
		 history_days, min_qty, max_qty, order_qty, moq, pack_size, supplier_id, unit_cost, overstock_days,
		 update_safety_stock, rebalance, auto_send)
	VALUES (v_tenant, v_loc, v_item, p ->> 'method',
		oms._json_number(p, v_what, 'service_level', 0, true, 1, false, NULL),
		oms._json_number(p, v_what, 'lead_time_days', 0, false, 3650, false, 'Days from ordering to receiving, 0 or more.'),
		oms._json_number(p, v_what, 'lead_time_sd', 0, false, 3650, false, 'The standard deviation of the lead time in days, 0 or more.'),
		oms._json_number(p, v_what, 'review_period_days', 0, false, 3650, false, 'Days between two reviews of the stock, 0 for continuous review.'),
		oms._json_number(p, v_what, 'history_days', 7, false, 3660, true, 'Days of demand history that planning reads, 7 to 3660.'),
		oms._json_number(p, v_what, 'min', 0, false, 1e15, true, 'min is the stock level (units) at which a min_max policy orders.'),
		oms._json_number(p, v_what, 'max', 0, false, 1e15, true, 'max is the stock level (units) a min_max policy orders up to.'),
		oms._json_number(p, v_what, 'order_qty', 0, true, 1e15, true, 'The quantity a reorder_point policy orders (in multiples), at least 1.'),
		oms._json_number(p, v_what, 'moq', 0, false, 1e15, true, 'The minimum order quantity of the supplier, 0 for none.'),
		oms._json_number(p, v_what, 'pack_size', 0, true, 1e15, true, 'Orders are rounded up to whole packs of this many units, at least 1.'),
		v_supplier,
		oms._json_number(p, v_what, 'unit_cost', 0, false, 1e15, false, 'The purchase price of one unit, 0 or more.'),
		oms._json_number(p, v_what, 'overstock_days', 0, true, 36500, false, 'Stock covering more than this many days of demand is overstock (alerts).'),
		oms._json_boolean(p, v_what, 'update_safety_stock'), oms._json_boolean(p, v_what, 'rebalance'),
		oms._json_boolean(p, v_what, 'auto_send'))
	ON CONFLICT ON CONSTRAINT replenishment_policies_key DO UPDATE SET
		method = CASE WHEN p ? 'method' THEN EXCLUDED.method ELSE r.method END,
		service_level = CASE WHEN p ? 'service_level' THEN EXCLUDED.service_level ELSE r.service_level END,
		lead_time_days = CASE WHEN p ? 'lead_time_days' THEN EXCLUDED.lead_time_days ELSE r.lead_time_days END,
		lead_time_sd = CASE WHEN p ? 'lead_time_sd' THEN EXCLUDED.lead_time_sd ELSE r.lead_time_sd END,
		review_period_days = CASE WHEN p ? 'review_period_days' THEN EXCLUDED.review_period_days ELSE r.review_period_days END,
		history_days = CASE WHEN p ? 'history_days' THEN EXCLUDED.history_days ELSE r.history_days END,
		min_qty = CASE WHEN p ? 'min' THEN EXCLUDED.min_qty ELSE r.min_qty END,
		max_qty = CASE WHEN p ? 'max' THEN EXCLUDED.max_qty ELSE r.max_qty END,
		order_qty = CASE WHEN p ? 'order_qty' THEN EXCLUDED.order_qty ELSE r.order_qty END,
		moq = CASE WHEN p ? 'moq' THEN EXCLUDED.moq ELSE r.moq END,
		pack_size = CASE WHEN p ? 'pack_size' THEN EXCLUDED.pack_size ELSE r.pack_size END,
		supplier_id = CASE WHEN p ? 'supplier' THEN EXCLUDED.supplier_id ELSE r.supplier_id END,
		unit_cost = CASE WHEN p ? 'unit_cost' THEN EXCLUDED.unit_cost ELSE r.unit_cost END,
		overstock_days = CASE WHEN p ? 'overstock_days' THEN EXCLUDED.overstock_days ELSE r.overstock_days END,
		update_safety_stock = CASE WHEN p ? 'update_safety_stock' THEN EXCLUDED.update_safety_stock ELSE r.update_safety_stock END,
		rebalance = CASE WHEN p ? 'rebalance' THEN EXCLUDED.rebalance ELSE r.rebalance END,
		auto_send = CASE WHEN p ? 'auto_send' THEN EXCLUDED.auto_send ELSE r.auto_send END,
		updated_at = pg_catalog.now(), updated_by = oms._actor();

	-- What the SKU ends up with, inherited settings included, must make sense as a whole.
	SELECT * INTO e FROM oms._effective_policy(v_tenant, v_loc, v_item);
	IF e.method = 'min_max' AND (e.min_qty IS NULL OR e.max_qty IS NULL) THEN
		RAISE EXCEPTION 'a min_max policy needs both "min" and "max"'
			USING ERRCODE = '22023',
			      DETAIL = format('min is %s, max is %s.', coalesce(e.min_qty::text, 'not set'), coalesce(e.max_qty::text, 'not set')),
			      HINT = 'For example {"method": "min_max", "min": 20, "max": 100}.';
	END IF;
	IF e.min_qty > e.max_qty THEN
		RAISE EXCEPTION 'policy "min" % is above "max" %', e.min_qty, e.max_qty
			USING ERRCODE = '22023', HINT = 'min is the level at which to order, max the level to order up to: min <= max.';
	END IF;
	RETURN oms.policy(sku, location);
END
$$;
COMMENT ON FUNCTION oms.set_policy(text, text, jsonb) IS 'Sets replenishment policy fields for a SKU at a location (sku NULL: the location default); fields not given keep their value, null inherits; NULL policy deletes it; returns the effective policy';

SELECT pg_catalog.pg_extension_config_dump('oms.suppliers', '');
SELECT pg_catalog.pg_extension_config_dump('oms.replenishment_policies', '');

-- ===== sql/parts/83_purchase_orders.sql
-- Purchase orders, transfer orders, and receipts that serve waiting customers.
--
-- Every open purchase order line and transfer line has one oms.supply row holding its open
-- quantity at its expected date (what time-phased ATP and planning count as on order). A receipt
-- adds to on_hand (movement "receipt" or "transfer_in"), shrinks the supply row, and in the same
-- transaction allocates the backordered and pre-ordered lines waiting for that SKU, first come
-- first served by placement time (oms._allocate_backorders).
--
-- Purchase order states: draft -> sent -> partially_received -> received, and cancelled from any
-- open state. Transfer states: in_transit -> partially_received -> received, or cancelled.
--
-- Lock order: a receipt locks the purchase order, then the orders it may serve (by id), then stock
-- rows in (item, location) order, the order cancel_order and place_order take them in.

CREATE TABLE oms.purchase_orders (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	supplier_id		int NOT NULL,
	location_id		int NOT NULL,
	state			text NOT NULL DEFAULT 'draft'
					CHECK (state IN ('draft', 'sent', 'partially_received', 'received', 'cancelled')),
	expected_date	date NOT NULL,
	origin			text NOT NULL DEFAULT 'manual' CHECK (origin IN ('manual', 'replenishment')),
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	created_by		text NOT NULL DEFAULT session_user,
	sent_at			timestamptz,
	closed_at		timestamptz,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, supplier_id) REFERENCES oms.suppliers,
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations
);
CREATE INDEX purchase_orders_open_idx ON oms.purchase_orders (tenant_id, expected_date)
	WHERE state IN ('draft', 'sent', 'partially_received');
COMMENT ON TABLE oms.purchase_orders IS 'Purchase orders to a supplier for one receiving location: draft, sent, partially_received, received, cancelled';

CREATE TABLE oms.purchase_order_lines (
	tenant_id		int NOT NULL,
	po_id			bigint NOT NULL,
	line_no			int NOT NULL CHECK (line_no > 0),
	item_id			int NOT NULL,
	qty				bigint NOT NULL CHECK (qty > 0),
	qty_received	bigint NOT NULL DEFAULT 0 CHECK (qty_received >= 0),
	qty_cancelled	bigint NOT NULL DEFAULT 0 CHECK (qty_cancelled >= 0),
	unit_cost		numeric CHECK (unit_cost >= 0),
	expected_date	date NOT NULL,
	supply_id		bigint,
	PRIMARY KEY (tenant_id, po_id, line_no),
	UNIQUE (tenant_id, po_id, item_id),
	FOREIGN KEY (tenant_id, po_id) REFERENCES oms.purchase_orders,
	FOREIGN KEY (tenant_id, item_id) REFERENCES oms.items,
	FOREIGN KEY (tenant_id, supply_id) REFERENCES oms.supply ON DELETE SET NULL (supply_id),
	CONSTRAINT purchase_order_lines_buckets CHECK (qty_received + qty_cancelled <= qty)
);
CREATE INDEX purchase_order_lines_item_idx ON oms.purchase_order_lines (tenant_id, item_id);
COMMENT ON TABLE oms.purchase_order_lines IS 'Lines of purchase orders: SKU, quantity ordered, received and cancelled, unit cost, expected date, and the supply row of the open quantity';

CREATE TABLE oms.transfer_orders (
	tenant_id			int NOT NULL DEFAULT oms.current_tenant_id(),
	id					bigint GENERATED ALWAYS AS IDENTITY,
	from_location_id	int NOT NULL,
	to_location_id		int NOT NULL,
	state				text NOT NULL DEFAULT 'in_transit'
						CHECK (state IN ('in_transit', 'partially_received', 'received', 'cancelled')),
	expected_date		date NOT NULL,
	origin				text NOT NULL DEFAULT 'manual' CHECK (origin IN ('manual', 'replenishment')),
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	created_by			text NOT NULL DEFAULT session_user,
	closed_at			timestamptz,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, from_location_id) REFERENCES oms.locations,
	FOREIGN KEY (tenant_id, to_location_id) REFERENCES oms.locations,
	CHECK (from_location_id <> to_location_id)
);
COMMENT ON TABLE oms.transfer_orders IS 'Stock moving between two locations: taken from the source when created (in transit), received at the destination';

CREATE TABLE oms.transfer_order_lines (
	tenant_id		int NOT NULL,
	transfer_id		bigint NOT NULL,
	line_no			int NOT NULL CHECK (line_no > 0),
	item_id			int NOT NULL,
	qty				bigint NOT NULL CHECK (qty > 0),
	qty_received	bigint NOT NULL DEFAULT 0 CHECK (qty_received >= 0),
	qty_cancelled	bigint NOT NULL DEFAULT 0 CHECK (qty_cancelled >= 0),
	supply_id		bigint,
	PRIMARY KEY (tenant_id, transfer_id, line_no),
	UNIQUE (tenant_id, transfer_id, item_id),
	FOREIGN KEY (tenant_id, transfer_id) REFERENCES oms.transfer_orders,
	FOREIGN KEY (tenant_id, item_id) REFERENCES oms.items,
	FOREIGN KEY (tenant_id, supply_id) REFERENCES oms.supply ON DELETE SET NULL (supply_id),
	CONSTRAINT transfer_order_lines_buckets CHECK (qty_received + qty_cancelled <= qty)
);
CREATE INDEX transfer_order_lines_item_idx ON oms.transfer_order_lines (tenant_id, item_id);
COMMENT ON TABLE oms.transfer_order_lines IS 'Lines of transfer orders: SKU, quantity sent, received and cancelled, and the supply row at the destination';

-- The lines of a purchase order, transfer or receipt payload: [{"sku": "A", "qty": 10, "unit_cost": 2.5}],
-- checked (22023 naming the field and value), one line per SKU, in payload order.
CREATE FUNCTION oms._parse_stock_lines(p_tenant int, p_lines jsonb, p_what text, p_keys text[])
	RETURNS TABLE (line_no int, item_id int, sku text, qty bigint, unit_cost numeric)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_hint	text := format('Lines are [{"sku": "SKU-1", "qty": 10%s}]: known SKUs, one line each, whole quantities of at least 1.',
					   CASE WHEN 'unit_cost' = ANY (p_keys) THEN ', "unit_cost": 2.50' ELSE '' END);
	v		jsonb;
	i		int := 0;
	v_key	text;
BEGIN
	IF p_lines IS NULL OR jsonb_typeof(p_lines) <> 'array' OR jsonb_array_length(p_lines) = 0 THEN
		RAISE EXCEPTION '% field "lines" must be a non-empty array, got %', p_what, coalesce(left(p_lines::text, 80), 'nothing')
			USING ERRCODE = '22023', HINT = v_hint;
	END IF;
	IF jsonb_array_length(p_lines) > 10000 THEN
		RAISE EXCEPTION '% field "lines" has % lines, more than 10000', p_what, jsonb_array_length(p_lines)
			USING ERRCODE = '22023', HINT = 'Split it: at most 10000 lines.';
	END IF;
	FOR v IN SELECT a FROM jsonb_array_elements(p_lines) a LOOP
		IF jsonb_typeof(v) <> 'object' THEN
			RAISE EXCEPTION '% field "lines[%]" must be an object, got %', p_what, i, left(v::text, 80)
				USING ERRCODE = '22023', HINT = v_hint;
		END IF;
		SELECT k INTO v_key FROM jsonb_object_keys(v) k WHERE k <> ALL (p_keys) ORDER BY k LIMIT 1;
		IF v_key IS NOT NULL THEN
			RAISE EXCEPTION '% field "lines[%].%" is not known', p_what, i, v_key
				USING ERRCODE = '22023', HINT = 'Known fields of a line: ' || array_to_string(p_keys, ', ') || '.';
		END IF;
		IF jsonb_typeof(v -> 'sku') IS DISTINCT FROM 'string' THEN
			RAISE EXCEPTION '% field "lines[%].sku" must be a SKU, got %', p_what, i, coalesce((v -> 'sku')::text, 'nothing')
				USING ERRCODE = '22023', HINT = v_hint;
		END IF;
		line_no := i + 1;
		sku := v ->> 'sku';
		SELECT it.id INTO item_id FROM oms.items it WHERE it.tenant_id = p_tenant AND it.sku = v ->> 'sku';
		IF item_id IS NULL THEN
			RAISE EXCEPTION 'unknown SKU "%" in % field "lines[%].sku"', v ->> 'sku', p_what, i
				USING ERRCODE = '22023', HINT = 'Items are rows of oms.items of the current tenant (setting oms.tenant).';
		END IF;
		qty := oms._json_number(v, p_what, 'qty', 0, true, 1e12, true, v_hint, format('lines[%s].', i));
		IF qty IS NULL THEN
			RAISE EXCEPTION '% field "lines[%].qty" is required', p_what, i USING ERRCODE = '22023', HINT = v_hint;
		END IF;
		unit_cost := oms._json_number(v, p_what, 'unit_cost', 0, false, 1e15, false, 'The purchase price of one unit, 0 or more.',
									  format('lines[%s].', i));
		RETURN NEXT;
		i := i + 1;
	END LOOP;
	SELECT s INTO v_key FROM (SELECT a ->> 'sku' AS s FROM jsonb_array_elements(p_lines) a) x
	 GROUP BY s HAVING count(*) > 1 ORDER BY s LIMIT 1;
	IF v_key IS NOT NULL THEN
		RAISE EXCEPTION 'SKU "%" appears in more than one line of the %', v_key, p_what
			USING ERRCODE = '22023', HINT = 'Send one line per SKU with the total quantity.';
	END IF;
END
$$;
COMMENT ON FUNCTION oms._parse_stock_lines(int, jsonb, text, text[]) IS 'Internal: the checked lines of a purchase order, transfer or receipt payload (22023 naming the field and the value)';

-- Backorders served by stock that has just arrived: the backordered and pre-ordered lines of the
-- SKU that this location can serve (lines waiting at this location, e.g. click & collect at this
-- store, and lines of shipped orders not yet assigned when the location can ship), first come
-- first served by the order's placement time, each in full while the available stock
-- (on_hand - reserved - safety_stock) covers it; the first line it cannot cover stops the round, so
-- that a later order never overtakes an earlier one. Each served line moves backordered/preordered
-- -> allocated at this location with its reservation (the reservation trigger checks and takes
-- the stock), its order's state follows its lines (oms._rollup), the order gets the event
-- line_allocated, and a channel with auto_release releases it (oms._auto_release). One function,
-- so that routing can switch it to its engine.
CREATE FUNCTION oms._allocate_backorders(p_tenant int, p_item int, p_location int)
	RETURNS TABLE (order_id bigint, line_no int, qty int)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
	v_available	bigint;
	r			record;
	v_orders	bigint[] := '{}';
	v_lines		int[] := '{}';
	v_order		bigint;
	v_state		oms.order_state;
BEGIN
	SELECT s.on_hand - s.reserved - s.safety_stock INTO v_available
	  FROM oms.stock s
	 WHERE s.tenant_id = p_tenant AND s.item_id = p_item AND s.location_id = p_location;
	IF coalesce(v_available, 0) <= 0 OR NOT EXISTS (SELECT FROM oms.locations l
													 WHERE l.tenant_id = p_tenant AND l.id = p_location AND l.active) THEN
		RETURN;
	END IF;
	PERFORM pg_catalog.set_config('oms.reason', 'supply received', true);
	FOR r IN
		SELECT l.order_id, l.line_no, l.qty - l.qty_cancelled AS open_qty
		  FROM oms.order_lines l
		  JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
		 WHERE l.tenant_id = p_tenant AND l.item_id = p_item
		   AND l.state IN ('backordered', 'preordered')
		   AND l.qty - l.qty_cancelled > 0
		   AND (l.location_id = p_location
				OR (l.location_id IS NULL AND o.pickup_location_id IS NULL
					AND EXISTS (SELECT FROM oms.locations loc
								 WHERE loc.tenant_id = p_tenant AND loc.id = p_location AND loc.can_ship)))
		 ORDER BY o.placed_at, o.id, l.line_no
	LOOP
		EXIT WHEN r.open_qty > v_available;
		UPDATE oms.order_lines l SET state = 'allocated', location_id = p_location
		 WHERE l.tenant_id = p_tenant AND l.order_id = r.order_id AND l.line_no = r.line_no;
		INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no)
			VALUES (p_tenant, p_item, p_location, r.open_qty, r.order_id, r.line_no);
		v_available := v_available - r.open_qty;
		v_orders := v_orders || r.order_id;
		v_lines := v_lines || r.line_no;
		order_id := r.order_id;
		line_no := r.line_no;
		qty := r.open_qty;
		RETURN NEXT;
	END LOOP;
	-- Each order served, in id order (the callers hold their locks): its state follows its lines
	-- (on_hold while a hold is open), the event line_allocated says which lines now have stock,
	-- and a channel with auto_release releases it when nothing blocks, as after placement.
	FOR v_order IN SELECT DISTINCT x.o FROM unnest(v_orders) AS x(o) ORDER BY x.o LOOP
		v_state := oms._rollup(p_tenant, v_order);
		PERFORM oms._event(p_tenant, v_order, 'line_allocated', pg_catalog.jsonb_build_object(
			'lines', (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('line_no', l.line_no, 'sku', i.sku, 'name', i.name,
																				'qty', l.qty - l.qty_cancelled, 'location', loc.code)
												   ORDER BY l.line_no)
						FROM unnest(v_orders, v_lines) AS s(o, line_no)
						JOIN oms.order_lines l ON l.tenant_id = p_tenant AND l.order_id = s.o AND l.line_no = s.line_no
						JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
						JOIN oms.locations loc ON loc.tenant_id = l.tenant_id AND loc.id = l.location_id
					   WHERE s.o = v_order),
			'reason', 'supply received', 'order_state', v_state::text));
		PERFORM oms._auto_release(p_tenant, v_order);
	END LOOP;
	PERFORM pg_catalog.set_config('oms.reason', '', true);
END
$$;
COMMENT ON FUNCTION oms._allocate_backorders(int, int, int) IS 'Internal: allocates the backordered and pre-ordered lines of an item that a location can serve, first come first served by placement time, while its available stock covers them; rolls each order up, writes line_allocated and releases it when its channel auto-releases; returns the lines served';

-- Locks the orders that a receipt of these items at this location may serve, by id, before any
-- stock row is locked (the order cancel_order takes: order, then stock).
CREATE FUNCTION oms._lock_waiting_orders(p_tenant int, p_items int[], p_location int) RETURNS void
	LANGUAGE sql
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	SELECT pg_catalog.count(*) FROM (
		SELECT o.id FROM oms.orders o
		 WHERE o.tenant_id = p_tenant
		   AND o.id IN (SELECT l.order_id FROM oms.order_lines l
						 WHERE l.tenant_id = p_tenant AND l.item_id = ANY (p_items)
						   AND l.state IN ('backordered', 'preordered')
						   AND (l.location_id = p_location OR l.location_id IS NULL))
		 ORDER BY o.id
		 FOR UPDATE) x;
END;
COMMENT ON FUNCTION oms._lock_waiting_orders(int, int[], int) IS 'Internal: locks, in id order, the orders whose backorders a receipt of these items at this location may serve';

-- Units arriving at a location: on_hand grows (with its movement), then the waiting backorders
-- are served. Returns the new on_hand and what was allocated.
CREATE FUNCTION oms._receive_stock(p_tenant int, p_item int, p_location int, p_qty bigint, p_kind text,
								   p_reason text, p_reference text,
								   OUT on_hand bigint, OUT lines_allocated int, OUT units_allocated bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, on_hand)
		VALUES (p_tenant, p_item, p_location, p_qty)
		ON CONFLICT (tenant_id, item_id, location_id)
		DO UPDATE SET on_hand = s.on_hand + EXCLUDED.on_hand, updated_at = pg_catalog.now()
		RETURNING s.on_hand INTO on_hand;
	INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, reference, moved_by)
		VALUES (p_tenant, p_item, p_location, p_kind, p_qty, on_hand, p_reason, p_reference, oms._actor());
	SELECT pg_catalog.count(*), coalesce(pg_catalog.sum(a.qty), 0) INTO lines_allocated, units_allocated
	  FROM oms._allocate_backorders(p_tenant, p_item, p_location) a;
END
$$;
COMMENT ON FUNCTION oms._receive_stock(int, int, int, bigint, text, text, text) IS 'Internal: adds received units to on_hand with a movement, then allocates the backorders they can serve';

CREATE FUNCTION oms._new_purchase_order(p_tenant int, p_supplier int, p_location int, p_state text, p_origin text,
										p_items int[], p_qtys bigint[], p_costs numeric[], p_dates date[])
	RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_po bigint;
BEGIN
	INSERT INTO oms.purchase_orders AS po (tenant_id, supplier_id, location_id, state, expected_date, origin, created_by, sent_at)
		VALUES (p_tenant, p_supplier, p_location, p_state, (SELECT max(d) FROM unnest(p_dates) d), p_origin, oms._actor(),
				CASE WHEN p_state = 'sent' THEN pg_catalog.now() END)
		RETURNING po.id INTO v_po;
	WITH l AS (
		SELECT i AS line_no, p_items[i] AS item_id, p_qtys[i] AS qty, p_costs[i] AS unit_cost, p_dates[i] AS expected_date
		  FROM generate_subscripts(p_items, 1) i
	), s AS (
		INSERT INTO oms.supply (tenant_id, item_id, location_id, qty, expected_date, kind, reference)
		SELECT p_tenant, l.item_id, p_location, l.qty, l.expected_date, 'purchase_order', 'PO-' || v_po || ':' || l.line_no
		  FROM l ORDER BY l.line_no
		RETURNING id, item_id
	)
	INSERT INTO oms.purchase_order_lines (tenant_id, po_id, line_no, item_id, qty, unit_cost, expected_date, supply_id)
	SELECT p_tenant, v_po, l.line_no, l.item_id, l.qty,
		   coalesce(l.unit_cost, (SELECT it.unit_cost FROM oms.items it WHERE it.tenant_id = p_tenant AND it.id = l.item_id)),
		   l.expected_date, s.id
	  FROM l JOIN s ON s.item_id = l.item_id;
	RETURN v_po;
END
$$;
COMMENT ON FUNCTION oms._new_purchase_order(int, int, int, text, text, int[], bigint[], numeric[], date[]) IS 'Internal: inserts a purchase order, its lines and one supply row per line';

CREATE FUNCTION oms.create_purchase_order(supplier text, location text, lines jsonb, expected date)
	RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_supplier	int := oms._supplier_id(v_tenant, supplier);
	v_loc		int := oms._location_id(v_tenant, location);
	v_items		int[];
	v_qtys		bigint[];
	v_costs		numeric[];
BEGIN
	IF expected IS NULL THEN
		RAISE EXCEPTION 'an expected date is required for a purchase order'
			USING ERRCODE = '22023', HINT = 'The day the supplier should deliver; it becomes the supply''s expected date.';
	END IF;
	SELECT array_agg(l.item_id ORDER BY l.line_no), array_agg(l.qty ORDER BY l.line_no), array_agg(l.unit_cost ORDER BY l.line_no)
	  INTO v_items, v_qtys, v_costs
	  FROM oms._parse_stock_lines(v_tenant, lines, 'purchase order', ARRAY['sku', 'qty', 'unit_cost']) l;
	RETURN oms._new_purchase_order(v_tenant, v_supplier, v_loc, 'sent', 'manual', v_items, v_qtys, v_costs,
								   array_fill(expected, ARRAY[cardinality(v_items)]));
END
$$;
COMMENT ON FUNCTION oms.create_purchase_order(text, text, jsonb, date) IS 'Creates a purchase order (state sent) to a supplier for a receiving location, with its lines ([{"sku", "qty", "unit_cost"}]) and their incoming supply at the expected date; returns its id';

-- The purchase order, locked; 22023 when unknown.
CREATE FUNCTION oms._lock_purchase_order(p_tenant int, p_po bigint) RETURNS oms.purchase_orders
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v oms.purchase_orders;
BEGIN
	SELECT * INTO v FROM oms.purchase_orders po WHERE po.tenant_id = p_tenant AND po.id = p_po FOR UPDATE;
	IF v.id IS NULL THEN
		RAISE EXCEPTION 'unknown purchase order %', coalesce(p_po::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Purchase orders are rows of oms.purchase_orders of the current tenant.';
	END IF;
	RETURN v;
END
$$;
COMMENT ON FUNCTION oms._lock_purchase_order(int, bigint) IS 'Internal: locks and returns a purchase order; 22023 when unknown';

CREATE FUNCTION oms.send_purchase_order(po_id bigint) RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v			oms.purchase_orders := oms._lock_purchase_order(v_tenant, po_id);
BEGIN
	IF v.state = 'draft' THEN
		UPDATE oms.purchase_orders po SET state = 'sent', sent_at = pg_catalog.now()
		 WHERE po.tenant_id = v_tenant AND po.id = v.id;
		RETURN 'sent';
	ELSIF v.state IN ('sent', 'partially_received') THEN
		RETURN v.state;
	END IF;
	RAISE EXCEPTION 'purchase order % cannot be sent: it is %', v.id, v.state
		USING ERRCODE = '55000', HINT = 'Only a draft purchase order is sent.';
END
$$;
COMMENT ON FUNCTION oms.send_purchase_order(bigint) IS 'Marks a draft purchase order as sent to its supplier (a sent one is left as it is); returns its state';

CREATE FUNCTION oms.cancel_purchase_order(po_id bigint) RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v			oms.purchase_orders := oms._lock_purchase_order(v_tenant, po_id);
BEGIN
	IF v.state = 'cancelled' THEN
		RETURN v.state;
	ELSIF v.state = 'received' THEN
		RAISE EXCEPTION 'purchase order % cannot be cancelled: it is received', v.id
			USING ERRCODE = '55000', HINT = 'Everything on it has arrived; return goods to the supplier with oms.adjust_stock.';
	END IF;
	DELETE FROM oms.supply s
	 WHERE s.tenant_id = v_tenant
	   AND s.id IN (SELECT l.supply_id FROM oms.purchase_order_lines l WHERE l.tenant_id = v_tenant AND l.po_id = v.id);
	UPDATE oms.purchase_order_lines l SET qty_cancelled = l.qty - l.qty_received
	 WHERE l.tenant_id = v_tenant AND l.po_id = v.id AND l.qty_received + l.qty_cancelled < l.qty;
	UPDATE oms.purchase_orders po SET state = 'cancelled', closed_at = pg_catalog.now()
	 WHERE po.tenant_id = v_tenant AND po.id = v.id;
	RETURN 'cancelled';
END
$$;
COMMENT ON FUNCTION oms.cancel_purchase_order(bigint) IS 'Cancels what is still open on a purchase order and removes its incoming supply; a cancelled one is left as it is; a received one: 55000';

-- What a receipt payload asks for, checked against the open lines (qty - received - cancelled) of a
-- purchase order or transfer; NULL lines: everything open.
CREATE FUNCTION oms._receipt_lines(p_tenant int, p_open jsonb, p_lines jsonb, p_what text)
	RETURNS TABLE (line_no int, item_id int, sku text, qty bigint)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r		record;
	v_open	jsonb;
BEGIN
	IF p_lines IS NULL THEN
		RETURN QUERY SELECT (o ->> 'line_no')::int, (o ->> 'item_id')::int, o ->> 'sku', (o ->> 'open')::bigint
					   FROM jsonb_array_elements(p_open) o WHERE (o ->> 'open')::bigint > 0
					  ORDER BY (o ->> 'line_no')::int;
		RETURN;
	END IF;
	FOR r IN SELECT * FROM oms._parse_stock_lines(p_tenant, p_lines, 'receipt', ARRAY['sku', 'qty']) LOOP
		SELECT o INTO v_open FROM jsonb_array_elements(p_open) o WHERE (o ->> 'item_id')::int = r.item_id;
		IF v_open IS NULL THEN
			RAISE EXCEPTION 'SKU "%" is not on %', r.sku, p_what
				USING ERRCODE = '22023', HINT = 'A receipt lists SKUs of the order''s lines.';
		END IF;
		IF r.qty > (v_open ->> 'open')::bigint THEN
			RAISE EXCEPTION 'receipt of % units of SKU "%" exceeds what is open on %', r.qty, r.sku, p_what
				USING ERRCODE = 'OM020',
				      DETAIL = format('Ordered %s, received %s, cancelled %s: %s open.', v_open ->> 'qty',
									  v_open ->> 'received', v_open ->> 'cancelled', v_open ->> 'open'),
				      HINT = 'Receive at most the open quantity; book extra units with oms.adjust_stock, or order them.';
		END IF;
		line_no := (v_open ->> 'line_no')::int;
		item_id := r.item_id;
		sku := r.sku;
		qty := r.qty;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._receipt_lines(int, jsonb, jsonb, text) IS 'Internal: the checked lines of a receipt against the open lines of its order (22023, OM020 for more than is open); NULL: all that is open';

-- A receipt of a purchase order or a transfer (p_kind) at its location, shared by both: the lines
-- are checked against what is open, the orders waiting for those SKUs there are locked, and per
-- line (in item order): received grows, the line's supply row shrinks or goes, on_hand grows
-- (movement receipt or transfer_in) and waiting backorders are allocated. The caller locks the
-- order before and updates its state after.
CREATE FUNCTION oms._receive_lines(p_tenant int, p_kind text, p_id bigint, p_location int, p_lines jsonb)
	RETURNS TABLE (sku text, received bigint, still_open bigint, on_hand bigint, backorders_allocated int,
				   units_allocated bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
	v_what		text := p_kind || ' ' || p_id;
	v_po		boolean := p_kind = 'purchase order';
	v_open		jsonb;
	v_line_nos	int[];
	v_items		int[];
	v_skus		text[];
	v_qtys		bigint[];
	v_supply	bigint;
	r			record;
	x			record;
BEGIN
	SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'item_id', l.item_id, 'sku', i.sku, 'qty', l.qty,
										'received', l.qty_received, 'cancelled', l.qty_cancelled,
										'open', l.qty - l.qty_received - l.qty_cancelled))
	  INTO v_open
	  FROM (SELECT pl.line_no, pl.item_id, pl.qty, pl.qty_received, pl.qty_cancelled FROM oms.purchase_order_lines pl
			 WHERE v_po AND pl.tenant_id = p_tenant AND pl.po_id = p_id
			UNION ALL
			SELECT tl.line_no, tl.item_id, tl.qty, tl.qty_received, tl.qty_cancelled FROM oms.transfer_order_lines tl
			 WHERE NOT v_po AND tl.tenant_id = p_tenant AND tl.transfer_id = p_id) l
	  JOIN oms.items i ON i.tenant_id = p_tenant AND i.id = l.item_id;
	SELECT array_agg(t.line_no), array_agg(t.item_id), array_agg(t.sku), array_agg(t.qty)
	  INTO v_line_nos, v_items, v_skus, v_qtys
	  FROM oms._receipt_lines(p_tenant, v_open, p_lines, v_what) t;

	PERFORM oms._lock_waiting_orders(p_tenant, v_items, p_location);
	FOR r IN SELECT t.* FROM unnest(v_line_nos, v_items, v_skus, v_qtys) AS t(line_no, item_id, sku, qty)
			  ORDER BY t.item_id LOOP
		IF v_po THEN
			UPDATE oms.purchase_order_lines l SET qty_received = l.qty_received + r.qty
			 WHERE l.tenant_id = p_tenant AND l.po_id = p_id AND l.line_no = r.line_no
			RETURNING l.qty - l.qty_received - l.qty_cancelled, l.supply_id INTO still_open, v_supply;
		ELSE
			UPDATE oms.transfer_order_lines l SET qty_received = l.qty_received + r.qty
			 WHERE l.tenant_id = p_tenant AND l.transfer_id = p_id AND l.line_no = r.line_no
			RETURNING l.qty - l.qty_received - l.qty_cancelled, l.supply_id INTO still_open, v_supply;
		END IF;
		UPDATE oms.supply s SET qty = still_open WHERE s.tenant_id = p_tenant AND s.id = v_supply AND still_open > 0;
		DELETE FROM oms.supply s WHERE s.tenant_id = p_tenant AND s.id = v_supply AND still_open = 0;
		x := oms._receive_stock(p_tenant, r.item_id, p_location, r.qty, CASE WHEN v_po THEN 'receipt' ELSE 'transfer_in' END,
								v_what, CASE WHEN v_po THEN 'PO-' ELSE 'TO-' END || p_id || ':' || r.line_no);
		sku := r.sku;
		received := r.qty;
		on_hand := x.on_hand;
		backorders_allocated := x.lines_allocated;
		units_allocated := x.units_allocated;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._receive_lines(int, text, bigint, int, jsonb) IS 'Internal: books the lines of a receipt of a purchase order or transfer (p_kind ''purchase order'' or ''transfer'') at its location: received, supply, on_hand, backorders allocated; the caller locks the order and updates its state';

CREATE FUNCTION oms.receive_purchase_order(po_id bigint, lines jsonb DEFAULT NULL)
	RETURNS TABLE (sku text, received bigint, still_open bigint, on_hand bigint, backorders_allocated int,
				   units_allocated bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v			oms.purchase_orders := oms._lock_purchase_order(v_tenant, po_id);
BEGIN
	IF v.state IN ('received', 'cancelled') THEN
		RAISE EXCEPTION 'purchase order % is closed: it is %', v.id, v.state
			USING ERRCODE = '55000', HINT = 'Receipts are booked on open purchase orders (draft, sent, partially_received).';
	END IF;
	RETURN QUERY SELECT * FROM oms._receive_lines(v_tenant, 'purchase order', v.id, v.location_id, lines);
	UPDATE oms.purchase_orders po
	   SET state = CASE WHEN NOT EXISTS (SELECT FROM oms.purchase_order_lines l
										  WHERE l.tenant_id = v_tenant AND l.po_id = v.id
											AND l.qty_received + l.qty_cancelled < l.qty)
						THEN 'received' ELSE 'partially_received' END,
		   sent_at = coalesce(po.sent_at, pg_catalog.now())
	 WHERE po.tenant_id = v_tenant AND po.id = v.id;
	UPDATE oms.purchase_orders po SET closed_at = pg_catalog.now()
	 WHERE po.tenant_id = v_tenant AND po.id = v.id AND po.state = 'received';
END
$$;
COMMENT ON FUNCTION oms.receive_purchase_order(bigint, jsonb) IS 'Books a (partial) receipt of a purchase order ([{"sku", "qty"}]; NULL: everything open): on_hand grows (movement receipt), supply shrinks, waiting backorders of those SKUs are allocated first come first served; OM020 beyond what is open, 55000 on a closed order';

-- Transfers: created by hand or by oms.run_replenishment. The units leave the source at once
-- (movement transfer_out; never below what is reserved there) and wait as supply at the
-- destination until received.
CREATE FUNCTION oms._new_transfer(p_tenant int, p_from int, p_to int, p_expected date, p_origin text,
								  p_items int[], p_qtys bigint[]) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_id	bigint;
	v_new	bigint;
	r		record;
BEGIN
	IF p_from = p_to THEN
		RAISE EXCEPTION 'a transfer needs two different locations'
			USING ERRCODE = '22023', HINT = 'Name the location the stock leaves and the one it goes to.';
	END IF;
	INSERT INTO oms.transfer_orders AS t (tenant_id, from_location_id, to_location_id, expected_date, origin, created_by)
		VALUES (p_tenant, p_from, p_to, p_expected, p_origin, oms._actor())
		RETURNING t.id INTO v_id;
	FOR r IN SELECT i AS line_no, p_items[i] AS item_id, p_qtys[i] AS qty
			   FROM generate_subscripts(p_items, 1) i ORDER BY p_items[i] LOOP
		UPDATE oms.stock s SET on_hand = s.on_hand - r.qty, updated_at = pg_catalog.now()
		 WHERE s.tenant_id = p_tenant AND s.item_id = r.item_id AND s.location_id = p_from
		   AND s.on_hand - s.reserved >= r.qty
		RETURNING s.on_hand INTO v_new;
		IF v_new IS NULL THEN
			RAISE EXCEPTION 'insufficient stock to transfer % units of SKU "%" from location "%"', r.qty,
					(SELECT i.sku FROM oms.items i WHERE i.tenant_id = p_tenant AND i.id = r.item_id),
					(SELECT l.code FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = p_from)
				USING ERRCODE = 'OM002',
				      DETAIL = format('Unreserved on hand there: %s.',
									  coalesce((SELECT s.on_hand - s.reserved FROM oms.stock s
												 WHERE s.tenant_id = p_tenant AND s.item_id = r.item_id AND s.location_id = p_from), 0)),
				      HINT = 'A transfer takes only units that no order has reserved.';
		END IF;
		INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, reference, moved_by)
			VALUES (p_tenant, r.item_id, p_from, 'transfer_out', -r.qty, v_new, 'transfer ' || v_id, 'TO-' || v_id || ':' || r.line_no, oms._actor());
		WITH s AS (
			INSERT INTO oms.supply (tenant_id, item_id, location_id, qty, expected_date, kind, reference)
				VALUES (p_tenant, r.item_id, p_to, r.qty, p_expected, 'transfer', 'TO-' || v_id || ':' || r.line_no)
				RETURNING id
		)
		INSERT INTO oms.transfer_order_lines (tenant_id, transfer_id, line_no, item_id, qty, supply_id)
			SELECT p_tenant, v_id, r.line_no, r.item_id, r.qty, s.id FROM s;
	END LOOP;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms._new_transfer(int, int, int, date, text, int[], bigint[]) IS 'Internal: creates a transfer: takes the units from the source (transfer_out), adds supply at the destination';

CREATE FUNCTION oms.create_transfer(from_location text, to_location text, lines jsonb, expected date)
	RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_from		int := oms._location_id(v_tenant, from_location);
	v_to		int := oms._location_id(v_tenant, to_location);
	v_items		int[];
	v_qtys		bigint[];
BEGIN
	IF expected IS NULL THEN
		RAISE EXCEPTION 'an expected date is required for a transfer'
			USING ERRCODE = '22023', HINT = 'The day the stock should arrive; it becomes the supply''s expected date.';
	END IF;
	SELECT array_agg(l.item_id ORDER BY l.line_no), array_agg(l.qty ORDER BY l.line_no) INTO v_items, v_qtys
	  FROM oms._parse_stock_lines(v_tenant, lines, 'transfer', ARRAY['sku', 'qty']) l;
	RETURN oms._new_transfer(v_tenant, v_from, v_to, expected, 'manual', v_items, v_qtys);
END
$$;
COMMENT ON FUNCTION oms.create_transfer(text, text, jsonb, date) IS 'Moves stock between locations: the units ([{"sku", "qty"}]) leave the source now (never below what is reserved there) and become supply at the destination until received; returns the transfer id';

CREATE FUNCTION oms._lock_transfer(p_tenant int, p_id bigint) RETURNS oms.transfer_orders
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v oms.transfer_orders;
BEGIN
	SELECT * INTO v FROM oms.transfer_orders t WHERE t.tenant_id = p_tenant AND t.id = p_id FOR UPDATE;
	IF v.id IS NULL THEN
		RAISE EXCEPTION 'unknown transfer %', coalesce(p_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Transfers are rows of oms.transfer_orders of the current tenant.';
	END IF;
	RETURN v;
END
$$;
COMMENT ON FUNCTION oms._lock_transfer(int, bigint) IS 'Internal: locks and returns a transfer order; 22023 when unknown';

CREATE FUNCTION oms.receive_transfer(transfer_id bigint, lines jsonb DEFAULT NULL)
	RETURNS TABLE (sku text, received bigint, still_open bigint, on_hand bigint, backorders_allocated int,
				   units_allocated bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v			oms.transfer_orders := oms._lock_transfer(v_tenant, transfer_id);
BEGIN
	IF v.state IN ('received', 'cancelled') THEN
		RAISE EXCEPTION 'transfer % is closed: it is %', v.id, v.state
			USING ERRCODE = '55000', HINT = 'Receipts are booked on open transfers (in_transit, partially_received).';
	END IF;
	RETURN QUERY SELECT * FROM oms._receive_lines(v_tenant, 'transfer', v.id, v.to_location_id, lines);
	UPDATE oms.transfer_orders t
	   SET state = CASE WHEN NOT EXISTS (SELECT FROM oms.transfer_order_lines l
										  WHERE l.tenant_id = v_tenant AND l.transfer_id = v.id
											AND l.qty_received + l.qty_cancelled < l.qty)
						THEN 'received' ELSE 'partially_received' END
	 WHERE t.tenant_id = v_tenant AND t.id = v.id;
	UPDATE oms.transfer_orders t SET closed_at = pg_catalog.now()
	 WHERE t.tenant_id = v_tenant AND t.id = v.id AND t.state = 'received';
END
$$;
COMMENT ON FUNCTION oms.receive_transfer(bigint, jsonb) IS 'Books a (partial) receipt of a transfer at its destination ([{"sku", "qty"}]; NULL: everything open): on_hand grows (transfer_in), supply shrinks, waiting backorders are allocated; OM020 beyond what is open, 55000 on a closed transfer';

CREATE FUNCTION oms.cancel_transfer(transfer_id bigint) RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v			oms.transfer_orders := oms._lock_transfer(v_tenant, transfer_id);
	r			record;
BEGIN
	IF v.state = 'cancelled' THEN
		RETURN v.state;
	ELSIF v.state = 'received' THEN
		RAISE EXCEPTION 'transfer % cannot be cancelled: it is received', v.id
			USING ERRCODE = '55000', HINT = 'Move the stock back with a new transfer.';
	END IF;
	PERFORM oms._lock_waiting_orders(v_tenant, (SELECT array_agg(l.item_id) FROM oms.transfer_order_lines l
												 WHERE l.tenant_id = v_tenant AND l.transfer_id = v.id), v.from_location_id);
	FOR r IN SELECT l.line_no, l.item_id, l.qty - l.qty_received - l.qty_cancelled AS open_qty, l.supply_id
			   FROM oms.transfer_order_lines l
			  WHERE l.tenant_id = v_tenant AND l.transfer_id = v.id AND l.qty - l.qty_received - l.qty_cancelled > 0
			  ORDER BY l.item_id LOOP
		DELETE FROM oms.supply s WHERE s.tenant_id = v_tenant AND s.id = r.supply_id;
		UPDATE oms.transfer_order_lines l SET qty_cancelled = l.qty_cancelled + r.open_qty
		 WHERE l.tenant_id = v_tenant AND l.transfer_id = v.id AND l.line_no = r.line_no;
		PERFORM oms._receive_stock(v_tenant, r.item_id, v.from_location_id, r.open_qty, 'transfer_in',
								   'transfer ' || v.id || ' cancelled', 'TO-' || v.id || ':' || r.line_no);
	END LOOP;
	UPDATE oms.transfer_orders t SET state = 'cancelled', closed_at = pg_catalog.now()
	 WHERE t.tenant_id = v_tenant AND t.id = v.id;
	RETURN 'cancelled';
END
$$;
COMMENT ON FUNCTION oms.cancel_transfer(bigint) IS 'Cancels what is still in transit on a transfer: the units go back on hand at the source (movement transfer_in), the destination''s supply is removed';

SELECT pg_catalog.pg_extension_config_dump('oms.purchase_orders', '');
SELECT pg_catalog.pg_extension_config_dump('oms.purchase_order_lines', '');
SELECT pg_catalog.pg_extension_config_dump('oms.transfer_orders', '');
SELECT pg_catalog.pg_extension_config_dump('oms.transfer_order_lines', '');

-- ===== sql/parts/84_order_edits.sql
-- Order edits before release: cancel part or all of a line (its stock returns), change the
-- shipping address. Both refuse with 55000, naming the state, once goods are released to a
-- location (or further): the location may already be picking them.
--
-- change_address keeps the lines' allocations where they are: re-routing to the new address is
-- routing's work (oms.route, issue 3), to be called here once it is on main.

-- The line states an edit may still change.
CREATE FUNCTION oms._editable(p_state oms.line_state) RETURNS boolean
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN p_state IN ('created', 'backordered', 'preordered', 'allocated', 'rejected');
END
$$;
COMMENT ON FUNCTION oms._editable(oms.line_state) IS 'Internal: true for the line states an order edit may change (before release)';

CREATE FUNCTION oms.cancel_line(order_id bigint, line_no int, qty int, reason text) RETURNS oms.line_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	l			record;
	v_open		int;
	v_left		int;
	v_take		int;
	v_state		oms.line_state;
	v_order		oms.order_state;
	r			record;
BEGIN
	o := oms._lock_order(v_tenant, cancel_line.order_id);
	PERFORM oms._reason(reason, 'cancel a line');
	SELECT x.line_no, x.item_id, x.qty, x.qty_cancelled, x.qty_shipped, x.state, i.sku, i.name INTO l
		FROM oms.order_lines x JOIN oms.items i ON i.tenant_id = x.tenant_id AND i.id = x.item_id
		WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.line_no = cancel_line.line_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order % has no line %', o.id, coalesce(cancel_line.line_no::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Lines are numbered from 1 in the order they were placed.';
	END IF;
	IF NOT oms._editable(l.state) THEN
		RAISE EXCEPTION 'line % of order % cannot be cancelled: it is %', l.line_no, o.id, l.state
			USING ERRCODE = '55000',
			      HINT = CASE WHEN l.state = 'cancelled' THEN 'The line is cancelled already.'
						 ELSE 'Goods released to a location are no longer cancelled here; once shipped, return them (oms.create_return).' END;
	END IF;
	v_open := l.qty - l.qty_cancelled - l.qty_shipped;
	IF cancel_line.qty IS NULL OR cancel_line.qty < 1 OR cancel_line.qty > v_open THEN
		RAISE EXCEPTION 'invalid qty % to cancel of line % of order %', coalesce(cancel_line.qty::text, 'NULL'), l.line_no, o.id
			USING ERRCODE = '22023',
			      DETAIL = format('Ordered %s, cancelled %s, shipped %s: %s open.', l.qty, l.qty_cancelled, l.qty_shipped, v_open),
			      HINT = 'Cancel from 1 up to the open quantity.';
	END IF;

	-- The stock comes back: the line's reservations shrink by qty, in (location) order (one item).
	v_left := cancel_line.qty;
	FOR r IN SELECT x.id, x.qty FROM oms.reservations x
			  WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.line_no = l.line_no
			  ORDER BY x.location_id, x.id
	LOOP
		EXIT WHEN v_left = 0;
		v_take := least(v_left, r.qty);
		IF v_take = r.qty THEN
			DELETE FROM oms.reservations x WHERE x.tenant_id = v_tenant AND x.id = r.id;
		ELSE
			UPDATE oms.reservations x SET qty = x.qty - v_take WHERE x.tenant_id = v_tenant AND x.id = r.id;
		END IF;
		v_left := v_left - v_take;
	END LOOP;

	PERFORM set_config('oms.reason', 'line cancelled: ' || reason, true);
	UPDATE oms.order_lines x
	   SET qty_cancelled = x.qty_cancelled + cancel_line.qty,
		   state = CASE WHEN x.qty_cancelled + cancel_line.qty = x.qty THEN 'cancelled'::oms.line_state ELSE x.state END
	 WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.line_no = l.line_no
	RETURNING x.state INTO v_state;
	v_order := oms._rollup(v_tenant, o.id);
	PERFORM oms._event(v_tenant, o.id, 'line_cancelled',
		jsonb_build_object('line_no', l.line_no, 'sku', l.sku, 'name', l.name, 'qty', cancel_line.qty,
						   'qty_left', v_open - cancel_line.qty, 'reason', reason, 'order_state', v_order::text));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms.cancel_line(bigint, int, int, text) IS 'Cancels qty units of a line not yet released (its reservation shrinks, the stock returns to ATP; all of it: the line is cancelled), rolls the order up, event line_cancelled; a released, shipped or cancelled line: 55000 naming its state; returns the line state';

-- A ship-to address as place_order accepts it, normalised (country in upper case); 22023 naming
-- the field otherwise.
CREATE FUNCTION oms._check_ship_to(p_ship_to jsonb) RETURNS jsonb
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_key	text;
BEGIN
	IF p_ship_to IS NULL OR jsonb_typeof(p_ship_to) <> 'object' THEN
		RAISE EXCEPTION 'ship_to must be an address object, got %', coalesce(left(p_ship_to::text, 80), 'NULL')
			USING ERRCODE = '22023',
			      HINT = '{"name": "...", "line1": "...", "city": "Milano", "postal_code": "20121", "country": "IT", "lat": 45.46, "lon": 9.19}.';
	END IF;
	PERFORM oms._check_keys(p_ship_to, 'ship_to.', ARRAY['city', 'company', 'country', 'lat', 'line1', 'line2',
														 'lon', 'name', 'phone', 'postal_code', 'region']);
	SELECT k INTO v_key FROM jsonb_each(p_ship_to) AS f(k, v)
		WHERE k NOT IN ('lat', 'lon') AND (jsonb_typeof(f.v) <> 'string' OR length(f.v #>> '{}') > 200)
		ORDER BY k LIMIT 1;
	IF v_key IS NOT NULL THEN
		RAISE EXCEPTION 'ship_to.% must be text of at most 200 characters, got %', v_key, left((p_ship_to -> v_key)::text, 80)
			USING ERRCODE = '22023', HINT = 'Address fields are text; lat and lon are numbers.';
	END IF;
	IF jsonb_typeof(p_ship_to -> 'country') IS DISTINCT FROM 'string' OR p_ship_to ->> 'country' !~ '^[A-Za-z]{2}$' THEN
		RAISE EXCEPTION 'ship_to.country must be an ISO 3166 country code, got %', coalesce((p_ship_to -> 'country')::text, 'nothing')
			USING ERRCODE = '22023', HINT = 'Two letters, e.g. "IT" or "RO".';
	END IF;
	IF (p_ship_to ? 'lat') <> (p_ship_to ? 'lon')
	   OR (p_ship_to ? 'lat' AND (jsonb_typeof(p_ship_to -> 'lat') <> 'number' OR jsonb_typeof(p_ship_to -> 'lon') <> 'number'
								 OR abs((p_ship_to ->> 'lat')::numeric) > 90 OR abs((p_ship_to ->> 'lon')::numeric) > 180)) THEN
		RAISE EXCEPTION 'ship_to.lat and ship_to.lon must be given together as a latitude and a longitude, got %, %',
				coalesce((p_ship_to -> 'lat')::text, 'nothing'), coalesce((p_ship_to -> 'lon')::text, 'nothing')
			USING ERRCODE = '22023', HINT = 'Decimal degrees, e.g. 45.4642 and 9.19; or neither.';
	END IF;
	RETURN jsonb_set(p_ship_to, '{country}', to_jsonb(upper(p_ship_to ->> 'country')));
END
$$;
COMMENT ON FUNCTION oms._check_ship_to(jsonb) IS 'Internal: a ship-to address checked as place_order checks it (22023 naming the field), country in upper case';

-- Re-routing after a change of address: the order's allocated lines (not yet released) are
-- routed again for the new address under the order's profile. Their reservations are released
-- first (in stock-lock order), so that the route sees their units as available where they are; a
-- line then moves only when another location serves the new address better. A line the new route
-- cannot serve wholly from stock (beyond the profile's maximum distance, say) gets its old
-- reservation back. The new reservations are taken in stock-lock order; a location that lost a
-- race meanwhile (OM001, OM030) makes us route again, up to three times. Releasing and taking are
-- two ordered passes, not one, so two concurrent re-routings of overlapping stock can deadlock;
-- PostgreSQL then cancels one (40P01) and nothing is half-written. Capacity: a location a line
-- moves to counts the order for its day; the old location's count is not given back
-- (conservative). Returns the lines that moved: [{"line_no", "sku", "from", "to"}].
CREATE FUNCTION oms._reroute_for_address(p_tenant int, p_order bigint) RETURNS jsonb
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	o			record;
	v_lines		int[];
	v_items		int[];
	v_qtys		int[];
	v_old_line	int[];
	v_old_item	int[];
	v_old_loc	int[];
	v_old_qty	int[];
	v_new_line	int[];
	v_new_item	int[];
	v_new_loc	int[];
	v_new_qty	int[];
	v_new_eta	date[];
	v_new_day	date[];
	v_moved		jsonb;
	v_attempt	int := 0;
	r			record;
BEGIN
	SELECT x.ship_to, coalesce(x.routing_profile, c.routing_profile, 'balanced') AS profile INTO o
	  FROM oms.orders x JOIN oms.channels c ON c.tenant_id = x.tenant_id AND c.id = x.channel_id
	 WHERE x.tenant_id = p_tenant AND x.id = p_order;
	-- The allocated lines with stock reserved (pre-ordered lines wait for their supply: not moved).
	SELECT array_agg(l.line_no ORDER BY l.line_no), array_agg(l.item_id ORDER BY l.line_no),
		   array_agg((l.qty - l.qty_cancelled - l.qty_shipped)::int ORDER BY l.line_no)
	  INTO v_lines, v_items, v_qtys
	  FROM oms.order_lines l
	 WHERE l.tenant_id = p_tenant AND l.order_id = p_order AND l.state = 'allocated'
	   AND l.qty - l.qty_cancelled - l.qty_shipped > 0
	   AND NOT EXISTS (SELECT FROM oms.reservations x
						WHERE x.tenant_id = p_tenant AND x.order_id = p_order AND x.line_no = l.line_no
						  AND x.supply_id IS NOT NULL);
	IF v_lines IS NULL THEN
		RETURN '[]';
	END IF;
	SELECT array_agg(x.line_no ORDER BY x.item_id, x.location_id, x.line_no),
		   array_agg(x.item_id ORDER BY x.item_id, x.location_id, x.line_no),
		   array_agg(x.location_id ORDER BY x.item_id, x.location_id, x.line_no),
		   array_agg(x.qty ORDER BY x.item_id, x.location_id, x.line_no)
	  INTO v_old_line, v_old_item, v_old_loc, v_old_qty
	  FROM oms.reservations x
	 WHERE x.tenant_id = p_tenant AND x.order_id = p_order AND x.line_no = ANY (v_lines);
	FOR r IN SELECT x.id FROM oms.reservations x
			  WHERE x.tenant_id = p_tenant AND x.order_id = p_order AND x.line_no = ANY (v_lines)
			  ORDER BY x.item_id, x.location_id, x.line_no
	LOOP
		DELETE FROM oms.reservations x WHERE x.tenant_id = p_tenant AND x.id = r.id;
	END LOOP;

	LOOP
		BEGIN
			-- The new route; per line, its rows when all of them reserve stock, else its old ones.
			WITH rt AS (
				SELECT v_lines[q.line_no] AS line_no, v_items[q.line_no] AS item_id, q.location_id, q.qty, q.kind,
					   q.eta, q.capacity_day
				  FROM oms._route(p_tenant, v_items, v_qtys, NULL, NULL, NULL, NULL, o.ship_to, NULL, o.profile) q
			), served AS (
				SELECT rt.line_no FROM rt GROUP BY rt.line_no HAVING bool_and(rt.kind = ANY (oms._stock_kinds()))
			), plan AS (
				SELECT rt.line_no, rt.item_id, rt.location_id, rt.qty, rt.eta, rt.capacity_day
				  FROM rt WHERE rt.line_no IN (SELECT line_no FROM served)
				UNION ALL
				SELECT v_old_line[n], v_old_item[n], v_old_loc[n], v_old_qty[n], NULL, NULL
				  FROM generate_subscripts(v_old_line, 1) n
				 WHERE v_old_line[n] NOT IN (SELECT line_no FROM served)
			)
			SELECT array_agg(p.line_no ORDER BY p.item_id, p.location_id, p.line_no),
				   array_agg(p.item_id ORDER BY p.item_id, p.location_id, p.line_no),
				   array_agg(p.location_id ORDER BY p.item_id, p.location_id, p.line_no),
				   array_agg(p.qty ORDER BY p.item_id, p.location_id, p.line_no),
				   array_agg(p.eta ORDER BY p.item_id, p.location_id, p.line_no),
				   array_agg(p.capacity_day ORDER BY p.item_id, p.location_id, p.line_no)
			  INTO v_new_line, v_new_item, v_new_loc, v_new_qty, v_new_eta, v_new_day
			  FROM plan p;
			INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no)
				SELECT p_tenant, v_new_item[n], v_new_loc[n], v_new_qty[n], p_order, v_new_line[n]
				  FROM generate_subscripts(v_new_line, 1) n
				 ORDER BY v_new_item[n], v_new_loc[n], v_new_line[n];
			PERFORM oms._take_capacity(p_tenant, v_new_loc, v_new_day);
			EXIT;
		EXCEPTION WHEN SQLSTATE 'OM001' OR SQLSTATE 'OM030' THEN
			v_attempt := v_attempt + 1;
			IF v_attempt >= 3 THEN
				RAISE;
			END IF;
		END;
	END LOOP;

	-- Every line the new route serves: its one location (NULL when split) and the new date; the
	-- answer lists those whose locations changed.
	WITH old AS (
		SELECT v_old_line[n] AS line_no, array_agg(v_old_loc[n] ORDER BY v_old_loc[n]) AS locs
		  FROM generate_subscripts(v_old_line, 1) n GROUP BY 1
	), new AS (
		SELECT v_new_line[n] AS line_no, array_agg(v_new_loc[n] ORDER BY v_new_loc[n]) AS locs,
			   max(v_new_eta[n]) AS eta
		  FROM generate_subscripts(v_new_line, 1) n GROUP BY 1
		HAVING count(v_new_eta[n]) > 0
	), upd AS (
		UPDATE oms.order_lines l
		   SET location_id = CASE WHEN cardinality(new.locs) = 1 THEN new.locs[1] END, promised_date = new.eta
		  FROM new
		 WHERE l.tenant_id = p_tenant AND l.order_id = p_order AND l.line_no = new.line_no
		RETURNING l.line_no, l.item_id
	)
	SELECT jsonb_agg(jsonb_build_object(
				'line_no', new.line_no, 'sku', i.sku,
				'from', (SELECT jsonb_agg(c.code ORDER BY c.code) FROM oms.locations c
						  WHERE c.tenant_id = p_tenant AND c.id = ANY (old.locs)),
				'to', (SELECT jsonb_agg(c.code ORDER BY c.code) FROM oms.locations c
						WHERE c.tenant_id = p_tenant AND c.id = ANY (new.locs)))
			ORDER BY new.line_no)
	  INTO v_moved
	  FROM new
	  JOIN old USING (line_no)
	  JOIN upd u USING (line_no)
	  JOIN oms.items i ON i.tenant_id = p_tenant AND i.id = u.item_id
	 WHERE old.locs IS DISTINCT FROM new.locs;
	RETURN coalesce(v_moved, '[]');
END
$$;
COMMENT ON FUNCTION oms._reroute_for_address(int, bigint) IS 'Internal: after a change of address, routes the order''s allocated lines again for the new address (their reservations released first, a line the new route cannot serve from stock keeps its old one), reserves in stock-lock order, counts capacity; returns the lines that moved';

CREATE FUNCTION oms.change_address(order_id bigint, ship_to jsonb) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_addr		jsonb;
	v_moved		jsonb;
	l			record;
BEGIN
	o := oms._lock_order(v_tenant, change_address.order_id);
	IF o.pickup_location_id IS NOT NULL THEN
		RAISE EXCEPTION 'order % is a click & collect order: it has no address to change', o.id
			USING ERRCODE = '22023', HINT = 'A click & collect order is collected at its store.';
	END IF;
	v_addr := oms._check_ship_to(change_address.ship_to);
	SELECT x.line_no, x.state INTO l FROM oms.order_lines x
		WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.state <> 'cancelled' AND NOT oms._editable(x.state)
		ORDER BY x.line_no LIMIT 1;
	IF FOUND OR o.state IN ('cancelled', 'closed') THEN
		RAISE EXCEPTION 'the address of order % cannot change: %', o.id,
				CASE WHEN l.line_no IS NOT NULL THEN format('line %s is %s', l.line_no, l.state) ELSE format('it is %s', o.state) END
			USING ERRCODE = '55000', HINT = 'The address changes only before the order is released to its locations.';
	END IF;
	UPDATE oms.orders x
	   SET ship_to = v_addr, ship_country = v_addr ->> 'country', ship_postal_code = v_addr ->> 'postal_code',
		   ship_city = v_addr ->> 'city', ship_lat = round((v_addr ->> 'lat')::numeric, 12)::double precision,
		   ship_lon = round((v_addr ->> 'lon')::numeric, 12)::double precision
	 WHERE x.tenant_id = v_tenant AND x.id = o.id;
	v_moved := oms._reroute_for_address(v_tenant, o.id);
	PERFORM oms._event(v_tenant, o.id, 'address_changed',
		jsonb_build_object('ship_to', v_addr, 'previous', o.ship_to, 'rerouted_lines', v_moved));
	RETURN o.state;
END
$$;
COMMENT ON FUNCTION oms.change_address(bigint, jsonb) IS 'Changes the ship-to address of an order not yet released (checked as place_order checks it), re-routes its allocated lines for the new address (oms._reroute_for_address), event address_changed with the lines that moved; released or further: 55000 naming the state; returns the order state';

-- ===== sql/parts/84_planning.sql
-- Replenishment planning: for every SKU and location with a policy, the demand statistics, safety
-- stock, reorder point and inventory position, and what to buy or move.
--
-- Per SKU and location (H = the policy's history_days, the days before today):
--   mean d    = demand over the last H days / H (days without demand count as 0)
--   sigma s   = the standard deviation of those H daily values
--   P         = lead_time_days + review_period_days (the protection period)
--   safety stock SS = ceil(z(service_level) * sqrt(P * s^2 + d^2 * lead_time_sd^2))
--   forecast over the lead time F = d * P
--   reorder point ROP = ceil(F + SS)
--   position  = on_hand - reserved + on order (open supply) - backordered (lines waiting here,
--               and unassigned backorders of shipped orders at the preferred location that can ship)
--   reorder_point: when position < ROP (or = ROP > 0), order Q = order_qty (default ceil(d * lead
--                  time), at least 1) as many times as needed to bring position above ROP;
--                  the level it orders up to is S = ROP + Q
--   min_max:       when position <= min, order max - position; S = max
--   then the quantity is raised to the MOQ and rounded up to whole packs.
-- A SKU and location with an open purchase order line or transfer coming in is covered: no new
-- proposal until it is received or cancelled (so running twice creates nothing new).
-- Transfers: a short location whose policy allows rebalancing is first served from locations with
-- surplus, min(on_hand - reserved - backordered, position - S) above 0, largest surplus first, in
-- the order of the short locations' priority; what transfers cannot cover is bought.
--
-- JIT is off in these functions (SET jit = off): the planner's estimate for the correlated
-- per-pair subqueries is far above jit_above_cost even on a handful of rows, and compiling the
-- ~1,000 expressions of these queries took 6 s per call (measured with auto_explain: JIT
-- optimization 3.3 s + emission 2.7 s for a one-row plan that executes in 15 ms). The SET also
-- keeps the functions from being inlined into their callers' queries.

-- Lines waiting for supply, found without reading every order line.
CREATE INDEX order_lines_waiting_idx ON oms.order_lines (tenant_id, item_id)
	WHERE state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state);

-- Set-based: every source is read once for the whole item range (demand history, supply, waiting
-- lines, open orders) and joined to the pairs; no per-pair subquery or function call.
CREATE FUNCTION oms._replenishment_candidates(p_tenant int, p_today date, p_item_from int DEFAULT NULL,
											  p_item_to int DEFAULT NULL)
	RETURNS TABLE (item_id int, location_id int, priority int, location_code text, method text, supplier_id int,
				   unit_cost numeric, moq bigint, pack_size bigint, lead_time_days numeric, rebalance boolean,
				   auto_send boolean, update_safety_stock boolean, overstock_days numeric, min_qty bigint,
				   max_qty bigint, on_hand bigint, reserved bigint, current_safety_stock bigint, on_order bigint,
				   backordered bigint, covered boolean, demand_mean double precision, demand_sd double precision,
				   lead_time_demand numeric, safety_stock bigint, reorder_point bigint, inventory_position bigint,
				   order_up_to bigint, triggered boolean, need bigint, surplus bigint)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
	SET jit = off
BEGIN ATOMIC
	WITH pairs AS (
		SELECT s.item_id, s.location_id FROM oms.stock s
		 WHERE s.tenant_id = p_tenant
		   AND (p_item_from IS NULL OR s.item_id >= p_item_from) AND (p_item_to IS NULL OR s.item_id <= p_item_to)
		   AND EXISTS (SELECT FROM oms.replenishment_policies d
						WHERE d.tenant_id = p_tenant AND d.location_id = s.location_id AND d.item_id IS NULL)
		UNION
		SELECT r.item_id, r.location_id FROM oms.replenishment_policies r
		 WHERE r.tenant_id = p_tenant AND r.item_id IS NOT NULL
		   AND (p_item_from IS NULL OR r.item_id >= p_item_from) AND (p_item_to IS NULL OR r.item_id <= p_item_to)
		UNION
		SELECT l.item_id, l.location_id FROM oms.order_lines l
		 WHERE l.tenant_id = p_tenant AND l.state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state)
		   AND l.location_id IS NOT NULL
		   AND (p_item_from IS NULL OR l.item_id >= p_item_from) AND (p_item_to IS NULL OR l.item_id <= p_item_to)
		   AND EXISTS (SELECT FROM oms.replenishment_policies d
						WHERE d.tenant_id = p_tenant AND d.location_id = l.location_id AND d.item_id IS NULL)
	), pol AS (
		-- The effective policy (as oms._effective_policy: the SKU's setting, else the location
		-- default's, else the built-in default), joined for all pairs at once.
		SELECT p.item_id, p.location_id, loc.priority, loc.code, loc.can_ship,
			   coalesce(s.method, d.method, oms._policy_defaults() ->> 'method') AS method,
			   coalesce(s.service_level, d.service_level, (oms._policy_defaults() ->> 'service_level')::numeric) AS service_level,
			   coalesce(s.lead_time_days, d.lead_time_days, (oms._policy_defaults() ->> 'lead_time_days')::numeric) AS lead_time_days,
			   coalesce(s.lead_time_sd, d.lead_time_sd, (oms._policy_defaults() ->> 'lead_time_sd')::numeric) AS lead_time_sd,
			   coalesce(s.review_period_days, d.review_period_days, (oms._policy_defaults() ->> 'review_period_days')::numeric) AS review_period_days,
			   coalesce(s.history_days, d.history_days, (oms._policy_defaults() ->> 'history_days')::int) AS history_days,
			   coalesce(s.min_qty, d.min_qty) AS min_qty, coalesce(s.max_qty, d.max_qty) AS max_qty,
			   coalesce(s.order_qty, d.order_qty) AS order_qty,
			   coalesce(s.moq, d.moq, (oms._policy_defaults() ->> 'moq')::bigint) AS moq,
			   coalesce(s.pack_size, d.pack_size, (oms._policy_defaults() ->> 'pack_size')::bigint) AS pack_size,
			   coalesce(s.supplier_id, d.supplier_id) AS supplier_id, coalesce(s.unit_cost, d.unit_cost) AS unit_cost,
			   coalesce(s.overstock_days, d.overstock_days) AS overstock_days,
			   coalesce(s.update_safety_stock, d.update_safety_stock, (oms._policy_defaults() ->> 'update_safety_stock')::boolean) AS update_safety_stock,
			   coalesce(s.rebalance, d.rebalance, (oms._policy_defaults() ->> 'rebalance')::boolean) AS rebalance,
			   coalesce(s.auto_send, d.auto_send, (oms._policy_defaults() ->> 'auto_send')::boolean) AS auto_send
		  FROM pairs p
		  JOIN oms.locations loc ON loc.tenant_id = p_tenant AND loc.id = p.location_id AND loc.active
		  LEFT JOIN oms.replenishment_policies s
			ON s.tenant_id = p_tenant AND s.location_id = p.location_id AND s.item_id = p.item_id
		  LEFT JOIN oms.replenishment_policies d
			ON d.tenant_id = p_tenant AND d.location_id = p.location_id AND d.item_id IS NULL
		 WHERE s.id IS NOT NULL OR d.id IS NOT NULL
	), unassigned AS (
		-- Backorders of shipped orders not yet at a location count at the preferred location that
		-- can ship and has a policy for the SKU.
		SELECT DISTINCT ON (u.item_id) u.item_id, pol.location_id, u.qty
		  FROM (SELECT l.item_id, pg_catalog.sum(l.qty - l.qty_cancelled) AS qty
				  FROM oms.order_lines l
				  JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
				 WHERE l.tenant_id = p_tenant AND l.state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state)
				   AND l.location_id IS NULL AND o.pickup_location_id IS NULL
				   AND (p_item_from IS NULL OR l.item_id >= p_item_from) AND (p_item_to IS NULL OR l.item_id <= p_item_to)
				 GROUP BY l.item_id) u
		  JOIN pol ON pol.item_id = u.item_id AND pol.can_ship
		 ORDER BY u.item_id, pol.priority, pol.code
	), waiting AS (
		SELECT l.item_id, l.location_id, pg_catalog.sum(l.qty - l.qty_cancelled) AS qty
		  FROM oms.order_lines l
		 WHERE l.tenant_id = p_tenant AND l.state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state)
		   AND l.location_id IS NOT NULL
		   AND (p_item_from IS NULL OR l.item_id >= p_item_from) AND (p_item_to IS NULL OR l.item_id <= p_item_to)
		 GROUP BY l.item_id, l.location_id
	), incoming AS (
		SELECT su.item_id, su.location_id, pg_catalog.sum(su.qty) AS qty
		  FROM oms.supply su
		 WHERE su.tenant_id = p_tenant
		   AND (p_item_from IS NULL OR su.item_id >= p_item_from) AND (p_item_to IS NULL OR su.item_id <= p_item_to)
		 GROUP BY su.item_id, su.location_id
	), open_orders AS (
		SELECT pl.item_id, po.location_id
		  FROM oms.purchase_order_lines pl
		  JOIN oms.purchase_orders po ON po.tenant_id = pl.tenant_id AND po.id = pl.po_id
		 WHERE pl.tenant_id = p_tenant AND po.state IN ('draft', 'sent', 'partially_received')
		   AND pl.qty_received + pl.qty_cancelled < pl.qty
		   AND (p_item_from IS NULL OR pl.item_id >= p_item_from) AND (p_item_to IS NULL OR pl.item_id <= p_item_to)
		UNION
		SELECT tl.item_id, t.to_location_id
		  FROM oms.transfer_order_lines tl
		  JOIN oms.transfer_orders t ON t.tenant_id = tl.tenant_id AND t.id = tl.transfer_id
		 WHERE tl.tenant_id = p_tenant AND t.state IN ('in_transit', 'partially_received')
		   AND tl.qty_received + tl.qty_cancelled < tl.qty
		   AND (p_item_from IS NULL OR tl.item_id >= p_item_from) AND (p_item_to IS NULL OR tl.item_id <= p_item_to)
	), hist AS (
		-- Demand per pair over its own history window, summing the rows as they are: exact when
		-- a pair has one row a day (one channel), which the min/max of the channel tells.
		SELECT pol.item_id, pol.location_id, pg_catalog.sum(h.ordered - h.cancelled) AS total,
			   pg_catalog.sum((h.ordered - h.cancelled) * (h.ordered - h.cancelled)) AS sumsq,
			   pg_catalog.min(h.channel_id) <> pg_catalog.max(h.channel_id) AS multi
		  FROM pol
		  JOIN oms.demand_history h ON h.tenant_id = p_tenant AND h.item_id = pol.item_id AND h.location_id = pol.location_id
		 WHERE h.day >= p_today - pol.history_days AND h.day < p_today
		 GROUP BY pol.item_id, pol.location_id
	), delta AS (
		SELECT d.item_id, d.location_id, d.day, d.ordered, d.cancelled
		  FROM pol
		  JOIN oms.demand_deltas d ON d.tenant_id = p_tenant AND d.item_id = pol.item_id AND d.location_id = pol.location_id
		 WHERE d.day >= p_today - pol.history_days AND d.day < p_today
	), exact AS (
		-- Pairs with several rows a day (several channels, or deltas not yet compacted): the
		-- day's demand first, then its square.
		SELECT x.item_id, x.location_id, pg_catalog.sum(x.q) AS total, pg_catalog.sum(x.q * x.q) AS sumsq
		  FROM (SELECT y.item_id, y.location_id, y.day, pg_catalog.sum(y.ordered - y.cancelled) AS q
				  FROM (SELECT h.item_id, h.location_id, h.day, h.ordered, h.cancelled
						  FROM (SELECT hs.item_id, hs.location_id FROM hist hs WHERE hs.multi
								UNION
								SELECT dl.item_id, dl.location_id FROM delta dl) e
						  JOIN pol ON pol.item_id = e.item_id AND pol.location_id = e.location_id
						  JOIN oms.demand_history h ON h.tenant_id = p_tenant AND h.item_id = e.item_id AND h.location_id = e.location_id
						 WHERE h.day >= p_today - pol.history_days AND h.day < p_today
						UNION ALL
						SELECT dl.item_id, dl.location_id, dl.day, dl.ordered, dl.cancelled FROM delta dl) y
				 GROUP BY y.item_id, y.location_id, y.day) x
		 GROUP BY x.item_id, x.location_id
	), base AS (
		SELECT pol.*,
			   coalesce(s.on_hand, 0) AS on_hand, coalesce(s.reserved, 0) AS reserved,
			   coalesce(s.safety_stock, 0) AS current_ss,
			   coalesce(inc.qty, 0)::bigint AS on_order,
			   (coalesce(w.qty, 0) + coalesce(u.qty, 0))::bigint AS backordered,
			   oo.item_id IS NOT NULL AS covered,
			   coalesce(ex.total, hs.total, 0)::double precision AS total,
			   coalesce(ex.sumsq, hs.sumsq, 0)::double precision AS sumsq
		  FROM pol
		  LEFT JOIN oms.stock s ON s.tenant_id = p_tenant AND s.item_id = pol.item_id AND s.location_id = pol.location_id
		  LEFT JOIN incoming inc ON inc.item_id = pol.item_id AND inc.location_id = pol.location_id
		  LEFT JOIN waiting w ON w.item_id = pol.item_id AND w.location_id = pol.location_id
		  LEFT JOIN unassigned u ON u.item_id = pol.item_id AND u.location_id = pol.location_id
		  LEFT JOIN open_orders oo ON oo.item_id = pol.item_id AND oo.location_id = pol.location_id
		  LEFT JOIN hist hs ON hs.item_id = pol.item_id AND hs.location_id = pol.location_id
		  LEFT JOIN exact ex ON ex.item_id = pol.item_id AND ex.location_id = pol.location_id
	), stats AS (
		SELECT b.*,
			   b.total / b.history_days AS mean,
			   pg_catalog.sqrt(GREATEST((b.sumsq - b.total * b.total / b.history_days) / (b.history_days - 1), 0)) AS sd,
			   b.lead_time_days + b.review_period_days AS protection,
			   b.on_hand - b.reserved + b.on_order - b.backordered AS inv_position
		  FROM base b
	), levels AS (
		SELECT st.*,
			   pg_catalog.ceil(pg_catalog.round(oms.safety_stock(st.service_level::double precision, st.sd,
						st.protection::double precision, st.mean, st.lead_time_sd::double precision)::numeric, 6))::bigint AS ss,
			   pg_catalog.round((st.mean * st.protection::double precision)::numeric, 6) AS ltd
		  FROM stats st
	), rop AS (
		SELECT lv.*,
			   pg_catalog.ceil(lv.ltd + lv.ss)::bigint AS rop,
			   coalesce(lv.order_qty, GREATEST(pg_catalog.ceil(pg_catalog.round((lv.mean * lv.lead_time_days::double precision)::numeric, 6)), 1))::bigint AS q
		  FROM levels lv
	), decision AS (
		SELECT r.*,
			   CASE WHEN r.method = 'min_max' THEN r.max_qty ELSE r.rop + r.q END AS s_level,
			   NOT r.covered AND CASE WHEN r.method = 'min_max' THEN r.inv_position <= r.min_qty
									  ELSE r.inv_position < r.rop OR (r.inv_position = r.rop AND r.rop > 0) END AS trig
		  FROM rop r
	)
	SELECT d.item_id, d.location_id, d.priority, d.code, d.method, d.supplier_id,
		   coalesce(d.unit_cost, it.unit_cost),
		   d.moq, d.pack_size, d.lead_time_days, d.rebalance, d.auto_send, d.update_safety_stock, d.overstock_days,
		   d.min_qty, d.max_qty, d.on_hand, d.reserved, d.current_ss, d.on_order, d.backordered, d.covered,
		   d.mean, d.sd, d.ltd, d.ss, d.rop, d.inv_position, d.s_level, d.trig,
		   CASE WHEN NOT d.trig THEN 0
				WHEN d.method = 'min_max' THEN d.max_qty - d.inv_position
				ELSE d.q * pg_catalog.ceil((d.rop - d.inv_position + 1)::numeric / d.q)::bigint END,
		   CASE WHEN d.trig THEN 0
				ELSE GREATEST(LEAST(d.on_hand - d.reserved - d.backordered, d.inv_position - d.s_level), 0) END
	  FROM decision d
	  LEFT JOIN oms.items it ON it.tenant_id = p_tenant AND it.id = d.item_id;
END;
COMMENT ON FUNCTION oms._replenishment_candidates(int, date, int, int) IS 'Internal: every SKU and location with a policy (items in the given id range): effective policy, stock, on order, backorders, demand mean and deviation, safety stock, reorder point, inventory position, whether it must order, how much, and its surplus';

-- Proposals: transfers from surplus first, purchases for the rest (after MOQ and packs), and the
-- safety stock to write (kind safety_stock: proposed_qty is the new stock.safety_stock) where the
-- policy asks for it, so that a run computes the candidates once.
CREATE FUNCTION oms._replenishment_proposals(p_tenant int, p_today date, p_item_from int DEFAULT NULL,
											 p_item_to int DEFAULT NULL)
	RETURNS TABLE (item_id int, location_id int, kind text, supplier_id int, from_location_id int, on_hand bigint,
				   reserved bigint, on_order bigint, backordered bigint, demand_mean double precision,
				   lead_time_demand numeric, safety_stock bigint, reorder_point bigint, proposed_qty bigint,
				   unit_cost numeric, expected_date date, auto_send boolean, reason text)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
	SET jit = off
BEGIN ATOMIC
	WITH c AS (
		SELECT * FROM oms._replenishment_candidates(p_tenant, p_today, p_item_from, p_item_to)
	), short AS (
		SELECT c.item_id, c.location_id, c.need,
			   pg_catalog.sum(c.need) OVER w - c.need AS from_n, pg_catalog.sum(c.need) OVER w AS to_n
		  FROM c WHERE c.need > 0 AND c.rebalance
		WINDOW w AS (PARTITION BY c.item_id ORDER BY c.priority, c.location_code)
	), spare AS (
		SELECT c.item_id, c.location_id, c.surplus,
			   pg_catalog.sum(c.surplus) OVER w - c.surplus AS from_n, pg_catalog.sum(c.surplus) OVER w AS to_n
		  FROM c WHERE c.surplus > 0
		WINDOW w AS (PARTITION BY c.item_id ORDER BY c.surplus DESC, c.priority, c.location_code)
	), moves AS (
		SELECT sh.item_id, sh.location_id, sp.location_id AS from_location_id,
			   (LEAST(sh.to_n, sp.to_n) - GREATEST(sh.from_n, sp.from_n))::bigint AS qty
		  FROM short sh JOIN spare sp ON sp.item_id = sh.item_id
		 WHERE LEAST(sh.to_n, sp.to_n) > GREATEST(sh.from_n, sp.from_n)
	), moved AS (
		SELECT m.item_id, m.location_id, pg_catalog.sum(m.qty) AS qty FROM moves m GROUP BY m.item_id, m.location_id
	), buy AS (
		SELECT c.*, c.need - coalesce(mv.qty, 0)::bigint AS rest
		  FROM c LEFT JOIN moved mv ON mv.item_id = c.item_id AND mv.location_id = c.location_id
		 WHERE c.need > 0
	), rounded AS (
		SELECT b.*, (pg_catalog.ceil(GREATEST(b.rest, b.moq)::numeric / b.pack_size) * b.pack_size)::bigint AS qty
		  FROM buy b WHERE b.rest > 0
	)
	SELECT r.item_id, r.location_id, 'purchase', r.supplier_id, NULL::int, r.on_hand, r.reserved, r.on_order, r.backordered,
		   r.demand_mean, r.lead_time_demand, r.safety_stock, r.reorder_point, r.qty, r.unit_cost,
		   p_today + pg_catalog.ceil(r.lead_time_days)::int, r.auto_send,
		   pg_catalog.concat_ws('; ',
			   CASE WHEN r.method = 'min_max'
					THEN pg_catalog.format('position %s <= min %s: up to max %s', r.inventory_position, r.min_qty, r.max_qty)
					ELSE pg_catalog.format('position %s <= reorder point %s', r.inventory_position, r.reorder_point) END,
			   CASE WHEN r.rest < r.need THEN pg_catalog.format('%s of %s by transfer', r.need - r.rest, r.need) END,
			   CASE WHEN r.qty <> r.rest THEN pg_catalog.format('%s rounded up to %s (moq %s, pack %s)', r.rest, r.qty, r.moq, r.pack_size) END,
			   CASE WHEN r.supplier_id IS NULL THEN 'no supplier in the policy: nothing will be ordered' END)
	  FROM rounded r
	UNION ALL
	SELECT m.item_id, m.location_id, 'transfer', NULL::int, m.from_location_id, c.on_hand, c.reserved, c.on_order, c.backordered,
		   c.demand_mean, c.lead_time_demand, c.safety_stock, c.reorder_point, m.qty, c.unit_cost, p_today + 1, false,
		   pg_catalog.format('surplus at %s', fl.code)
	  FROM moves m
	  JOIN c ON c.item_id = m.item_id AND c.location_id = m.location_id
	  JOIN oms.locations fl ON fl.tenant_id = p_tenant AND fl.id = m.from_location_id
	UNION ALL
	SELECT c.item_id, c.location_id, 'safety_stock', NULL::int, NULL::int, c.on_hand, c.reserved, c.on_order, c.backordered,
		   c.demand_mean, c.lead_time_demand, c.safety_stock, c.reorder_point, c.safety_stock, NULL::numeric, NULL::date, false,
		   pg_catalog.format('safety stock %s (was %s)', c.safety_stock, c.current_safety_stock)
	  FROM c
	 WHERE c.update_safety_stock AND c.safety_stock <> c.current_safety_stock;
END;
COMMENT ON FUNCTION oms._replenishment_proposals(int, date, int, int) IS 'Internal: what to transfer and what to buy for the SKUs in the given item id range, and the safety stock to write (kind safety_stock) where the policy asks for it';

CREATE FUNCTION oms.plan_replenishment(location text DEFAULT NULL)
	RETURNS TABLE (sku text, location text, kind text, supplier text, from_location text, on_hand bigint,
				   reserved bigint, on_order bigint, backordered bigint, demand_per_day numeric,
				   lead_time_demand numeric, safety_stock bigint, reorder_point bigint, proposed_qty bigint,
				   unit_cost numeric, expected_date date, reason text)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
	SET jit = off
AS $$
	WITH t AS (
		SELECT oms.current_tenant_id() AS id
	), f AS (
		SELECT t.id AS tenant_id, CASE WHEN $1 IS NOT NULL THEN oms._location_id(t.id, $1) END AS location_id FROM t
	)
	SELECT i.sku, l.code, p.kind, s.code, fl.code, p.on_hand, p.reserved, p.on_order, p.backordered,
		   pg_catalog.round(p.demand_mean::numeric, 3), pg_catalog.round(p.lead_time_demand, 2),
		   p.safety_stock, p.reorder_point, p.proposed_qty, p.unit_cost, p.expected_date, p.reason
	  FROM f
	 CROSS JOIN LATERAL oms._replenishment_proposals(f.tenant_id, oms.today()) p
	  JOIN oms.items i ON i.tenant_id = f.tenant_id AND i.id = p.item_id
	  JOIN oms.locations l ON l.tenant_id = f.tenant_id AND l.id = p.location_id
	  LEFT JOIN oms.suppliers s ON s.tenant_id = f.tenant_id AND s.id = p.supplier_id
	  LEFT JOIN oms.locations fl ON fl.tenant_id = f.tenant_id AND fl.id = p.from_location_id
	 WHERE p.kind <> 'safety_stock' AND (f.location_id IS NULL OR p.location_id = f.location_id)
	 ORDER BY i.sku, l.code, p.kind DESC, fl.code
$$;
COMMENT ON FUNCTION oms.plan_replenishment(text) IS 'What replenishment would order now, writing nothing: per SKU and location (all, or the given one) the transfers from surplus and the purchases, with on hand, reserved, on order, backordered, daily demand, lead time demand, safety stock, reorder point, proposed quantity (after MOQ and pack size) and the reason';

-- One run over the SKUs in an item id range: transfers, purchase orders (one per supplier and
-- location), and the safety stock of policies that write it. Returns what it created.
CREATE FUNCTION oms._run_replenishment(p_tenant int, p_today date, p_item_from int DEFAULT NULL, p_item_to int DEFAULT NULL)
	RETURNS TABLE (kind text, id bigint, supplier_id int, from_location_id int, location_id int, lines int, units bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
	SET jit = off
AS $$
#variable_conflict use_column
DECLARE
	r		record;
	v_id	bigint;
BEGIN
	CREATE TEMP TABLE pg_temp.oms_proposals ON COMMIT DROP AS
		SELECT * FROM oms._replenishment_proposals(p_tenant, p_today, p_item_from, p_item_to);

	FOR r IN SELECT p.from_location_id, p.location_id, array_agg(p.item_id ORDER BY p.item_id) AS items,
					array_agg(p.proposed_qty ORDER BY p.item_id) AS qtys, max(p.expected_date) AS expected
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'transfer'
			  GROUP BY p.from_location_id, p.location_id ORDER BY p.from_location_id, p.location_id LOOP
		BEGIN
			v_id := oms._new_transfer(p_tenant, r.from_location_id, r.location_id, r.expected, 'replenishment', r.items, r.qtys);
			kind := 'transfer'; id := v_id; supplier_id := NULL; from_location_id := r.from_location_id;
			location_id := r.location_id; lines := cardinality(r.items);
			units := (SELECT sum(q) FROM unnest(r.qtys) q);
			RETURN NEXT;
		EXCEPTION WHEN SQLSTATE 'OM002' THEN
			-- An order took the surplus since the plan was made: the next run buys instead.
			RAISE NOTICE 'transfer from location % to % skipped: %', r.from_location_id, r.location_id, SQLERRM;
		END;
	END LOOP;

	FOR r IN SELECT p.supplier_id, p.location_id, p.auto_send, array_agg(p.item_id ORDER BY p.item_id) AS items,
					array_agg(p.proposed_qty ORDER BY p.item_id) AS qtys, array_agg(p.unit_cost ORDER BY p.item_id) AS costs,
					array_agg(p.expected_date ORDER BY p.item_id) AS dates
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'purchase' AND p.supplier_id IS NOT NULL
			  GROUP BY p.supplier_id, p.location_id, p.auto_send ORDER BY p.supplier_id, p.location_id, p.auto_send LOOP
		v_id := oms._new_purchase_order(p_tenant, r.supplier_id, r.location_id,
										CASE WHEN r.auto_send THEN 'sent' ELSE 'draft' END, 'replenishment',
										r.items, r.qtys, r.costs, r.dates);
		kind := 'purchase_order'; id := v_id; supplier_id := r.supplier_id; from_location_id := NULL;
		location_id := r.location_id; lines := cardinality(r.items);
		units := (SELECT sum(q) FROM unnest(r.qtys) q);
		RETURN NEXT;
	END LOOP;

	FOR r IN SELECT p.item_id, p.location_id, p.proposed_qty AS safety_stock
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'safety_stock'
			  ORDER BY p.item_id, p.location_id LOOP
		INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, safety_stock)
			VALUES (p_tenant, r.item_id, r.location_id, r.safety_stock)
			ON CONFLICT (tenant_id, item_id, location_id)
			DO UPDATE SET safety_stock = EXCLUDED.safety_stock, updated_at = pg_catalog.now();
		kind := 'safety_stock'; id := NULL; supplier_id := NULL; from_location_id := NULL;
		location_id := r.location_id; lines := 1; units := r.safety_stock;
		RETURN NEXT;
	END LOOP;
	DROP TABLE pg_temp.oms_proposals;
END
$$;
COMMENT ON FUNCTION oms._run_replenishment(int, date, int, int) IS 'Internal: turns the proposals of an item id range into transfers and purchase orders, and writes the safety stock of policies that ask for it';

CREATE FUNCTION oms.run_replenishment()
	RETURNS TABLE (kind text, id bigint, supplier text, from_location text, location text, lines int, units bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
BEGIN
	IF NOT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('oms.replenishment'), v_tenant) THEN
		RAISE NOTICE 'replenishment of tenant "%" is already running in another session; this run does nothing',
			pg_catalog.current_setting('oms.tenant');
		RETURN;
	END IF;
	RETURN QUERY
	SELECT r.kind, r.id, s.code, f.code, l.code, r.lines, r.units
	  FROM oms._run_replenishment(v_tenant, oms.today()) r
	  LEFT JOIN oms.suppliers s ON s.tenant_id = v_tenant AND s.id = r.supplier_id
	  LEFT JOIN oms.locations f ON f.tenant_id = v_tenant AND f.id = r.from_location_id
	  JOIN oms.locations l ON l.tenant_id = v_tenant AND l.id = r.location_id;
END
$$;
COMMENT ON FUNCTION oms.run_replenishment() IS 'Turns the replenishment plan into transfers and purchase orders (draft, or sent when the policy says auto_send) with their incoming supply, and writes safety stock where the policy asks; a SKU and location with an open order is covered, so a second run creates nothing; a run while another is in progress does nothing and says so';

-- ===== sql/parts/85_alerts.sql
-- Stock and supply alerts, opened and resolved by oms.check_alerts() (the scheduled job "alerts").
--
-- An alert is open while its condition holds (resolved_at NULL) and never duplicated: one open
-- alert per kind and subject, which a partial unique index states. A check opens the new
-- conditions, refreshes the message of those still open and resolves those that have ended.
--
--	kind				severity	subject			condition (SKU and location with a policy)
--	stock_out			critical	SKU@location	available (on_hand - reserved - safety_stock) <= 0
--	low_stock			warning		SKU@location	0 < available <= reorder point (min for min_max)
--	overstock			info		SKU@location	on_hand > max (min_max), or > overstock_days of demand
--	late_purchase_order	warning		PO-id			open lines past their expected date
--	late_shipment		warning		order id		lines allocated but not shipped past their promised date

CREATE TABLE oms.alerts (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	kind			text NOT NULL CHECK (kind IN ('low_stock', 'stock_out', 'overstock', 'late_purchase_order', 'late_shipment')),
	severity		text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
	subject			text NOT NULL,
	item_id			int,
	location_id		int,
	purchase_order_id bigint,
	order_id		bigint,
	message			text NOT NULL,
	details			jsonb NOT NULL DEFAULT '{}',
	opened_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	checked_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	resolved_at		timestamptz,
	PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX alerts_open_key ON oms.alerts (tenant_id, kind, subject) WHERE resolved_at IS NULL;
CREATE INDEX alerts_location_idx ON oms.alerts (tenant_id, location_id) WHERE resolved_at IS NULL;
COMMENT ON TABLE oms.alerts IS 'Stock and supply alerts (low_stock, stock_out, overstock, late_purchase_order, late_shipment): open while resolved_at is NULL, at most one open per kind and subject';
COMMENT ON COLUMN oms.alerts.subject IS 'What the alert is about: SKU@location, PO-id of a purchase order, or the order id';

-- The conditions that hold now, one row per alert that should be open.
CREATE FUNCTION oms._alert_conditions(p_tenant int, p_today date)
	RETURNS TABLE (kind text, severity text, subject text, item_id int, location_id int, purchase_order_id bigint,
				   order_id bigint, message text, details jsonb)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	WITH c AS (
		SELECT c.*, c.on_hand - c.reserved - c.current_safety_stock AS available,
			   CASE WHEN c.method = 'min_max' THEN c.min_qty ELSE c.reorder_point END AS low_level,
			   i.sku
		  FROM oms._replenishment_candidates(p_tenant, p_today) c
		  JOIN oms.items i ON i.tenant_id = p_tenant AND i.id = c.item_id
	)
	SELECT CASE WHEN c.available <= 0 THEN 'stock_out' ELSE 'low_stock' END,
		   CASE WHEN c.available <= 0 THEN 'critical' ELSE 'warning' END,
		   c.sku || '@' || c.location_code, c.item_id, c.location_id, NULL::bigint, NULL::bigint,
		   CASE WHEN c.available <= 0
				THEN pg_catalog.format('SKU "%s" is out of stock at %s', c.sku, c.location_code)
				ELSE pg_catalog.format('SKU "%s" at %s: %s available, at or below %s %s', c.sku, c.location_code,
									   c.available, CASE WHEN c.method = 'min_max' THEN 'min' ELSE 'reorder point' END, c.low_level) END,
		   pg_catalog.jsonb_build_object('on_hand', c.on_hand, 'reserved', c.reserved, 'safety_stock', c.current_safety_stock,
										 'available', c.available, 'on_order', c.on_order, 'level', c.low_level)
	  FROM c
	 WHERE c.available <= 0 OR c.available <= c.low_level
	UNION ALL
	SELECT 'overstock', 'info', c.sku || '@' || c.location_code, c.item_id, c.location_id, NULL, NULL,
		   pg_catalog.format('SKU "%s" at %s: %s on hand, above %s', c.sku, c.location_code, c.on_hand,
							 CASE WHEN c.method = 'min_max' AND c.on_hand > c.max_qty THEN 'max ' || c.max_qty
								  ELSE pg_catalog.round(c.overstock_days) || ' days of demand ('
									   || pg_catalog.round((c.overstock_days::double precision * c.demand_mean)::numeric, 1) || ')' END),
		   pg_catalog.jsonb_build_object('on_hand', c.on_hand, 'max', c.max_qty, 'overstock_days', c.overstock_days,
										 'demand_per_day', pg_catalog.round(c.demand_mean::numeric, 3))
	  FROM c
	 WHERE (c.method = 'min_max' AND c.on_hand > c.max_qty)
		OR (c.overstock_days IS NOT NULL AND c.demand_mean > 0 AND c.on_hand > c.overstock_days::double precision * c.demand_mean)
	UNION ALL
	SELECT 'late_purchase_order', 'warning', 'PO-' || po.id, NULL, po.location_id, po.id, NULL,
		   pg_catalog.format('purchase order %s from %s is late: %s units expected by %s have not arrived', po.id, s.code,
							 pg_catalog.sum(l.qty - l.qty_received - l.qty_cancelled), pg_catalog.min(l.expected_date)),
		   pg_catalog.jsonb_build_object('supplier', s.code, 'expected_date', pg_catalog.min(l.expected_date),
										 'units_late', pg_catalog.sum(l.qty - l.qty_received - l.qty_cancelled),
										 'days_late', p_today - pg_catalog.min(l.expected_date))
	  FROM oms.purchase_orders po
	  JOIN oms.purchase_order_lines l ON l.tenant_id = po.tenant_id AND l.po_id = po.id
	  JOIN oms.suppliers s ON s.tenant_id = po.tenant_id AND s.id = po.supplier_id
	 WHERE po.tenant_id = p_tenant AND po.state IN ('draft', 'sent', 'partially_received')
	   AND l.expected_date < p_today AND l.qty_received + l.qty_cancelled < l.qty
	 GROUP BY po.id, po.location_id, s.code
	UNION ALL
	SELECT 'late_shipment', 'warning', o.external_id || ' (' || o.id || ')', NULL, NULL, NULL, o.id,
		   pg_catalog.format('order %s has %s line(s) not shipped by their promised date %s', o.external_id,
							 pg_catalog.count(*), pg_catalog.min(l.promised_date)),
		   pg_catalog.jsonb_build_object('promised_date', pg_catalog.min(l.promised_date), 'lines', pg_catalog.count(*))
	  FROM oms.order_lines l
	  JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
	 WHERE l.tenant_id = p_tenant AND l.promised_date < p_today AND l.qty_shipped + l.qty_cancelled < l.qty
	   AND l.state IN ('allocated'::oms.line_state, 'released'::oms.line_state, 'picked'::oms.line_state,
					   'packed'::oms.line_state, 'backordered'::oms.line_state, 'preordered'::oms.line_state)
	 GROUP BY o.id, o.external_id;
END;
COMMENT ON FUNCTION oms._alert_conditions(int, date) IS 'Internal: the alert conditions that hold for a tenant on a day, one row per alert that should be open';

CREATE FUNCTION oms.check_alerts() RETURNS TABLE (opened bigint, still_open bigint, resolved bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
BEGIN
	-- Two checks at once would only do the same work twice; the second waits for the first.
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('oms.alerts'), v_tenant);
	RETURN QUERY
	WITH cond AS (
		SELECT * FROM oms._alert_conditions(v_tenant, oms.today())
	), upserted AS (
		INSERT INTO oms.alerts AS a (tenant_id, kind, severity, subject, item_id, location_id, purchase_order_id,
									 order_id, message, details)
		SELECT v_tenant, c.kind, c.severity, c.subject, c.item_id, c.location_id, c.purchase_order_id, c.order_id,
			   c.message, c.details
		  FROM cond c
		 ORDER BY c.kind, c.subject
		ON CONFLICT (tenant_id, kind, subject) WHERE resolved_at IS NULL
		DO UPDATE SET severity = EXCLUDED.severity, message = EXCLUDED.message, details = EXCLUDED.details,
					  checked_at = pg_catalog.now()
		RETURNING (a.xmax = 0) AS inserted
	), ended AS (
		UPDATE oms.alerts a SET resolved_at = pg_catalog.now(), checked_at = pg_catalog.now()
		 WHERE a.tenant_id = v_tenant AND a.resolved_at IS NULL
		   AND NOT EXISTS (SELECT FROM cond c WHERE c.kind = a.kind AND c.subject = a.subject)
		RETURNING 1
	)
	SELECT (SELECT pg_catalog.count(*) FROM upserted u WHERE u.inserted),
		   (SELECT pg_catalog.count(*) FROM upserted u WHERE NOT u.inserted),
		   (SELECT pg_catalog.count(*) FROM ended);
END
$$;
COMMENT ON FUNCTION oms.check_alerts() IS 'Opens an alert for every condition that holds now (low_stock, stock_out, overstock, late_purchase_order, late_shipment) unless one is open, refreshes the open ones, resolves those whose condition ended; returns the counts';

CREATE VIEW oms.open_alerts AS
SELECT a.id, a.kind, a.severity, a.subject, i.sku, l.code AS location, a.message, a.details, a.opened_at, a.checked_at
  FROM oms.alerts a
  LEFT JOIN oms.items i ON i.tenant_id = a.tenant_id AND i.id = a.item_id
  LEFT JOIN oms.locations l ON l.tenant_id = a.tenant_id AND l.id = a.location_id
 WHERE a.tenant_id = oms.current_tenant_id() AND a.resolved_at IS NULL;
COMMENT ON VIEW oms.open_alerts IS 'The open alerts of the current tenant, with SKU and location codes';

SELECT pg_catalog.pg_extension_config_dump('oms.alerts', '');

-- ===== sql/parts/86_returns.sql
-- Returns: an RMA for shipped units (within the channel's return window), received at a location
-- with a disposition per line (restock: sellable again; damaged: recorded, not sellable; vendor:
-- sent back to the supplier), the refund computed on receipt and paid through oms.refund_payment
-- unless the channel refunds outside; exchanges: a new order for replacement items, paid by the
-- value of the returned units.
--
-- Refund policy, per receipt: the units received (not exchanged) at their line's unit price,
-- rounded to the currency; plus the order's shipping charge once, when after this receipt every
-- unit of the order has come back or was cancelled (and nothing of it was exchanged). What is refunded through the payments is at
-- most what was captured and not refunded yet; the rest stays recorded as due (refund_due).

CREATE TABLE oms.returns (
	tenant_id			int NOT NULL DEFAULT oms.current_tenant_id(),
	id					bigint GENERATED ALWAYS AS IDENTITY,
	order_id			bigint NOT NULL,
	reason				text NOT NULL CHECK (reason <> '' AND length(reason) <= 1000),
	state				text NOT NULL DEFAULT 'authorized' CHECK (state IN ('authorized', 'partially_received', 'received')),
	refund_amount		numeric NOT NULL DEFAULT 0 CHECK (refund_amount >= 0),
	refunded			numeric NOT NULL DEFAULT 0 CHECK (refunded >= 0),
	shipping_refunded	boolean NOT NULL DEFAULT false,
	exchange_order_id	bigint,
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	created_by			text NOT NULL,
	received_at			timestamptz,
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	FOREIGN KEY (tenant_id, exchange_order_id) REFERENCES oms.orders,
	CONSTRAINT returns_refunded_within_amount CHECK (refunded <= refund_amount)
);
CREATE INDEX returns_order_idx ON oms.returns (tenant_id, order_id);
COMMENT ON TABLE oms.returns IS 'Return authorisations (RMA; the id is the RMA number): reason, state, refund computed on receipt and the part refunded through the payments, the exchange order if any';
COMMENT ON COLUMN oms.returns.refund_amount IS 'Refund due for what was received (units at their price, plus shipping when the whole order came back)';
COMMENT ON COLUMN oms.returns.refunded IS 'Part of refund_amount refunded through oms.refund_payment (0 when the channel refunds outside)';

CREATE TABLE oms.return_lines (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	return_id		bigint NOT NULL,
	order_id		bigint NOT NULL,
	line_no			int NOT NULL,
	qty				int NOT NULL CHECK (qty > 0),
	qty_received	int NOT NULL DEFAULT 0,
	qty_exchanged	int NOT NULL DEFAULT 0,
	restocked		int NOT NULL DEFAULT 0 CHECK (restocked >= 0),
	damaged			int NOT NULL DEFAULT 0 CHECK (damaged >= 0),
	to_vendor		int NOT NULL DEFAULT 0 CHECK (to_vendor >= 0),
	exchange_sku	text,
	PRIMARY KEY (tenant_id, return_id, line_no),
	FOREIGN KEY (tenant_id, return_id) REFERENCES oms.returns,
	FOREIGN KEY (tenant_id, order_id, line_no) REFERENCES oms.order_lines,
	CONSTRAINT return_lines_received_within_qty CHECK (qty_received BETWEEN 0 AND qty),
	CONSTRAINT return_lines_exchanged_within_qty CHECK (qty_exchanged BETWEEN 0 AND qty),
	CONSTRAINT return_lines_dispositions CHECK (restocked + damaged + to_vendor = qty_received)
);
COMMENT ON TABLE oms.return_lines IS 'Units of order lines on a return: authorised, received (restocked, damaged, sent to the vendor), exchanged';

-- When the order's goods reached the customer (latest delivery or collection; shipment when not
-- delivered): the start of the return window.
CREATE FUNCTION oms._delivered_at(p_tenant int, p_order bigint) RETURNS timestamptz
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	SELECT max(t) FROM (
		SELECT coalesce(s.delivered_at, s.shipped_at) AS t FROM oms.shipments s
		 WHERE s.tenant_id = p_tenant AND s.order_id = p_order AND s.shipped_at IS NOT NULL
		UNION ALL
		SELECT p.collected_at FROM oms.pickups p WHERE p.tenant_id = p_tenant AND p.order_id = p_order) x;
END;
COMMENT ON FUNCTION oms._delivered_at(int, bigint) IS 'Internal: when an order''s goods last reached the customer (delivery, collection, or shipment when not delivered)';

CREATE FUNCTION oms.create_return(order_id bigint, lines jsonb, reason text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_days		int;
	v_since		timestamptz;
	v_id		bigint;
	v_req		record;
	l			record;
	v_pending	int;
BEGIN
	o := oms._lock_order(v_tenant, create_return.order_id);
	PERFORM oms._reason(reason, 'create a return');
	IF lines IS NULL THEN
		RAISE EXCEPTION 'lines to return are required'
			USING ERRCODE = '22023', HINT = 'For example [{"line_no": 1, "qty": 1}].';
	END IF;
	PERFORM oms._check_line_list(lines, 'lines to return', ARRAY['line_no', 'qty']);

	SELECT c.return_days INTO v_days FROM oms.channels c WHERE c.tenant_id = v_tenant AND c.id = o.channel_id;
	v_since := oms._delivered_at(v_tenant, o.id);
	IF v_days = 0 THEN
		RAISE EXCEPTION 'order % cannot be returned: its channel takes no returns', o.id
			USING ERRCODE = 'OM010', HINT = 'The channel''s return_days is 0.';
	END IF;
	IF v_since IS NOT NULL AND now() > v_since + make_interval(days => v_days) THEN
		RAISE EXCEPTION 'the return window of order % has closed', o.id
			USING ERRCODE = 'OM010',
			      DETAIL = format('Delivered %s; returns were accepted for %s days, until %s.', to_char(v_since, 'YYYY-MM-DD'),
							   v_days, to_char(v_since + make_interval(days => v_days), 'YYYY-MM-DD')),
			      HINT = 'The channel''s return_days sets the window.';
	END IF;

	INSERT INTO oms.returns (tenant_id, order_id, reason, created_by) VALUES (v_tenant, o.id, reason, oms._actor())
		RETURNING id INTO v_id;
	FOR v_req IN SELECT (x.v -> 'line_no')::numeric::int AS line_no, (x.v -> 'qty')::numeric::int AS qty
				   FROM jsonb_array_elements(lines) WITH ORDINALITY x(v, i) ORDER BY x.i
	LOOP
		SELECT x.state, x.qty_shipped, x.qty_returned INTO l FROM oms.order_lines x
			WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.line_no = v_req.line_no;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'order % has no line %', o.id, v_req.line_no
				USING ERRCODE = '22023', HINT = 'Lines are numbered from 1 in the order they were placed.';
		END IF;
		IF l.state NOT IN ('shipped', 'delivered', 'partially_returned') THEN
			RAISE EXCEPTION 'line % of order % cannot be returned: it is %', v_req.line_no, o.id, l.state
				USING ERRCODE = '55000', HINT = 'Only shipped or delivered lines are returned.';
		END IF;
		-- Units already on another return and not received yet count as returning.
		SELECT coalesce(sum(rl.qty - rl.qty_received), 0) INTO v_pending FROM oms.return_lines rl
			WHERE rl.tenant_id = v_tenant AND rl.order_id = o.id AND rl.line_no = v_req.line_no AND rl.return_id <> v_id;
		IF v_req.qty > l.qty_shipped - l.qty_returned - v_pending THEN
			RAISE EXCEPTION 'cannot return % units of line % of order %', v_req.qty, v_req.line_no, o.id
				USING ERRCODE = 'OM005',
				      DETAIL = format('Shipped %s, returned %s, on open returns %s: at most %s can be returned.',
									   l.qty_shipped, l.qty_returned, v_pending, l.qty_shipped - l.qty_returned - v_pending),
				      HINT = 'Return at most what was shipped and has not come back.';
		END IF;
		INSERT INTO oms.return_lines (tenant_id, return_id, order_id, line_no, qty)
			VALUES (v_tenant, v_id, o.id, v_req.line_no, v_req.qty);
	END LOOP;
	PERFORM oms._event(v_tenant, o.id, 'return_created',
		jsonb_build_object('rma', v_id, 'reason', reason,
			'lines', (SELECT jsonb_agg(jsonb_build_object('line_no', rl.line_no, 'sku', i.sku, 'name', i.name, 'qty', rl.qty)
									   ORDER BY rl.line_no)
						FROM oms.return_lines rl
						JOIN oms.order_lines l2 ON l2.tenant_id = rl.tenant_id AND l2.order_id = rl.order_id AND l2.line_no = rl.line_no
						JOIN oms.items i ON i.tenant_id = l2.tenant_id AND i.id = l2.item_id
					   WHERE rl.tenant_id = v_tenant AND rl.return_id = v_id)));
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms.create_return(bigint, jsonb, text) IS 'Authorises a return (RMA) of shipped units [{"line_no": 1, "qty": 1}] with a reason, within the channel''s return window (OM010 after it); more than shipped, not returned and not on another open return: OM005; event return_created; returns the RMA id';

-- The return, its order locked first; unknown return: 22023.
CREATE FUNCTION oms._lock_return(p_tenant int, p_return bigint) RETURNS oms.returns
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_order		bigint;
	r			oms.returns;
BEGIN
	SELECT x.order_id INTO v_order FROM oms.returns x WHERE x.tenant_id = p_tenant AND x.id = p_return;
	IF v_order IS NULL THEN
		RAISE EXCEPTION 'unknown return %', coalesce(p_return::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Returns are created by oms.create_return(); its result is the RMA id.';
	END IF;
	PERFORM oms._lock_order(p_tenant, v_order);
	SELECT * INTO r FROM oms.returns x WHERE x.tenant_id = p_tenant AND x.id = p_return FOR UPDATE;
	RETURN r;
END
$$;
COMMENT ON FUNCTION oms._lock_return(int, bigint) IS 'Internal: locks the order of a return, then the return, and returns it; unknown return: 22023';

CREATE FUNCTION oms.receive_return(rma_id bigint, lines jsonb) RETURNS numeric
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	r			oms.returns;
	o			oms.orders;
	v_minor		int;
	v_outside	boolean;
	v_req		record;
	rl			record;
	v_loc		int;
	v_on_hand	bigint;
	v_refund	numeric := 0;
	v_shipping	boolean := false;
	v_paid		numeric := 0;
	v_refundable numeric;
	v_received	jsonb := '[]';
	v_state		oms.order_state;
BEGIN
	r := oms._lock_return(v_tenant, receive_return.rma_id);
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = r.order_id;
	IF lines IS NULL THEN
		RAISE EXCEPTION 'lines received are required'
			USING ERRCODE = '22023',
			      HINT = 'For example [{"line_no": 1, "qty": 1, "disposition": "restock", "location": "WH-1"}].';
	END IF;
	PERFORM oms._check_line_list(lines, 'lines received', ARRAY['line_no', 'qty', 'disposition', 'location']);
	SELECT c.minor_units INTO v_minor FROM oms.currencies c WHERE c.code = o.currency;
	SELECT ch.refunds_outside INTO v_outside FROM oms.channels ch WHERE ch.tenant_id = v_tenant AND ch.id = o.channel_id;

	PERFORM set_config('oms.reason', 'return ' || r.id || ' received', true);
	-- Lines in item order: restocking locks stock rows in (item, location) order.
	FOR v_req IN
		SELECT (x.v -> 'line_no')::numeric::int AS line_no, (x.v -> 'qty')::numeric::int AS qty,
			   x.v -> 'disposition' AS disposition, x.v -> 'location' AS location, ol.item_id
		  FROM jsonb_array_elements(lines) WITH ORDINALITY x(v, i)
		  LEFT JOIN oms.order_lines ol ON ol.tenant_id = v_tenant AND ol.order_id = r.order_id
			   AND ol.line_no = (x.v -> 'line_no')::numeric::int
		 ORDER BY ol.item_id, x.i
	LOOP
		IF jsonb_typeof(v_req.disposition) IS DISTINCT FROM 'string'
		   OR v_req.disposition #>> '{}' NOT IN ('restock', 'damaged', 'vendor') THEN
			RAISE EXCEPTION 'invalid disposition % of line % of return %', coalesce(v_req.disposition::text, 'nothing'), v_req.line_no, r.id
				USING ERRCODE = '22023', HINT = 'Each line received is "restock" (sellable again, at "location"), "damaged" or "vendor".';
		END IF;
		SELECT x.* INTO rl FROM oms.return_lines x
			WHERE x.tenant_id = v_tenant AND x.return_id = r.id AND x.line_no = v_req.line_no FOR UPDATE;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'return % has no line %', r.id, v_req.line_no
				USING ERRCODE = '22023', HINT = 'Receive the lines the return authorised (oms.return_lines).';
		END IF;
		IF v_req.qty > rl.qty - rl.qty_received THEN
			RAISE EXCEPTION 'cannot receive % units of line % on return %', v_req.qty, v_req.line_no, r.id
				USING ERRCODE = 'OM005',
				      DETAIL = format('The return authorised %s, %s received already: at most %s can be received.',
									   rl.qty, rl.qty_received, rl.qty - rl.qty_received),
				      HINT = 'Create another return for more units.';
		END IF;

		IF v_req.disposition #>> '{}' = 'restock' THEN
			IF v_req.location IS NOT NULL THEN
				IF jsonb_typeof(v_req.location) <> 'string' THEN
					RAISE EXCEPTION 'invalid location % of line % of return %', v_req.location, v_req.line_no, r.id
						USING ERRCODE = '22023', HINT = 'A location code, e.g. "WH-1".';
				END IF;
				v_loc := oms._location_id(v_tenant, v_req.location #>> '{}');
			ELSE
				-- Where the line shipped from.
				SELECT s.location_id INTO v_loc FROM oms.shipment_lines sl
				  JOIN oms.shipments s ON s.tenant_id = sl.tenant_id AND s.id = sl.shipment_id
				 WHERE sl.tenant_id = v_tenant AND sl.order_id = r.order_id AND sl.line_no = v_req.line_no
				 ORDER BY s.id DESC LIMIT 1;
				v_loc := coalesce(v_loc, (SELECT ol.location_id FROM oms.order_lines ol
										   WHERE ol.tenant_id = v_tenant AND ol.order_id = r.order_id AND ol.line_no = v_req.line_no));
			END IF;
			INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, on_hand)
				VALUES (v_tenant, v_req.item_id, v_loc, v_req.qty)
				ON CONFLICT (tenant_id, item_id, location_id)
				DO UPDATE SET on_hand = s.on_hand + EXCLUDED.on_hand, updated_at = now()
				RETURNING s.on_hand INTO v_on_hand;
			INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, reference, moved_by)
				VALUES (v_tenant, v_req.item_id, v_loc, 'return', v_req.qty, v_on_hand,
						'returned: ' || r.reason, 'return ' || r.id, oms._actor());
		END IF;

		UPDATE oms.return_lines x
		   SET qty_received = x.qty_received + v_req.qty,
			   restocked = x.restocked + CASE WHEN v_req.disposition #>> '{}' = 'restock' THEN v_req.qty ELSE 0 END,
			   damaged = x.damaged + CASE WHEN v_req.disposition #>> '{}' = 'damaged' THEN v_req.qty ELSE 0 END,
			   to_vendor = x.to_vendor + CASE WHEN v_req.disposition #>> '{}' = 'vendor' THEN v_req.qty ELSE 0 END
		 WHERE x.tenant_id = v_tenant AND x.return_id = r.id AND x.line_no = v_req.line_no;
		UPDATE oms.order_lines x
		   SET qty_returned = x.qty_returned + v_req.qty,
			   state = CASE WHEN x.qty_returned + v_req.qty >= x.qty_shipped THEN 'returned' ELSE 'partially_returned' END::oms.line_state
		 WHERE x.tenant_id = v_tenant AND x.order_id = r.order_id AND x.line_no = v_req.line_no;

		-- Exchanged units are paid for by the exchange order, not refunded.
		-- The units' share of the line's gross (its tax included on a channel with net prices).
		v_refund := v_refund + (SELECT oms._units_value(ol.gross, ol.qty, ol.unit_price,
														greatest(v_req.qty - greatest(rl.qty_exchanged - rl.qty_received, 0), 0), v_minor)
								  FROM oms.order_lines ol
								 WHERE ol.tenant_id = v_tenant AND ol.order_id = r.order_id AND ol.line_no = v_req.line_no);
		v_received := v_received || jsonb_build_object('line_no', v_req.line_no, 'qty', v_req.qty,
													   'disposition', v_req.disposition #>> '{}');
	END LOOP;

	-- Shipping comes back once, with the last units of the order.
	IF o.shipping_amount > 0
	   AND NOT EXISTS (SELECT FROM oms.returns x WHERE x.tenant_id = v_tenant AND x.order_id = o.id
						 AND (x.shipping_refunded OR x.exchange_order_id IS NOT NULL))
	   AND NOT EXISTS (SELECT FROM oms.order_lines ol WHERE ol.tenant_id = v_tenant AND ol.order_id = o.id
						 AND ol.qty_returned + ol.qty_cancelled < ol.qty) THEN
		v_refund := v_refund + coalesce(o.shipping_net + o.shipping_tax, o.shipping_amount);
		v_shipping := true;
	END IF;

	IF v_refund > 0 AND NOT v_outside THEN
		SELECT coalesce(sum(p.captured - p.refunded), 0) INTO v_refundable FROM oms.payments p
			WHERE p.tenant_id = v_tenant AND p.order_id = o.id;
		v_paid := least(v_refund, v_refundable);
		IF v_paid > 0 THEN
			PERFORM oms.refund_payment(o.id, v_paid, 'return ' || r.id);
		END IF;
	ELSIF v_refund > 0 THEN
		-- The channel refunds outside oms: the invoiced goods still get their credit note.
		PERFORM oms._credit_refund(v_tenant, o.id, v_refund, 'return ' || r.id);
	END IF;
	UPDATE oms.returns x
	   SET refund_amount = x.refund_amount + v_refund, refunded = x.refunded + v_paid,
		   shipping_refunded = x.shipping_refunded OR v_shipping, received_at = now(),
		   state = CASE WHEN (SELECT bool_and(y.qty_received = y.qty) FROM oms.return_lines y
							   WHERE y.tenant_id = v_tenant AND y.return_id = r.id) THEN 'received' ELSE 'partially_received' END
	 WHERE x.tenant_id = v_tenant AND x.id = r.id;
	v_state := oms._rollup(v_tenant, o.id);
	PERFORM oms._event(v_tenant, o.id, 'return_received',
		jsonb_build_object('rma', r.id,
			'lines', (SELECT jsonb_agg(x.v || jsonb_build_object('sku', i.sku, 'name', i.name) ORDER BY (x.v -> 'line_no')::numeric::int)
						FROM jsonb_array_elements(v_received) x(v)
						JOIN oms.order_lines ol ON ol.tenant_id = v_tenant AND ol.order_id = o.id AND ol.line_no = (x.v -> 'line_no')::numeric::int
						JOIN oms.items i ON i.tenant_id = v_tenant AND i.id = ol.item_id),
			'refund', v_refund, 'refunded', v_paid, 'refund_due', v_refund - v_paid, 'shipping_refunded', v_shipping,
			'currency', o.currency, 'order_state', v_state::text));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_refund;
END
$$;
COMMENT ON FUNCTION oms.receive_return(bigint, jsonb) IS 'Receives units of a return [{"line_no": 1, "qty": 1, "disposition": "restock"|"damaged"|"vendor", "location": "WH-1"}]: restock adds to on_hand (movement "return", at the given location or where the line shipped from), the lines move to partially_returned/returned, the refund is computed (units at their price, plus shipping when the whole order is back), paid through oms.refund_payment up to what was captured unless the channel refunds outside; more than the return authorised and not received: OM005; returns the refund amount';

CREATE FUNCTION oms.exchange(rma_id bigint, lines jsonb) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	r			oms.returns;
	o			oms.orders;
	v_req		record;
	rl			record;
	v_payload	jsonb;
	v_lines		jsonb := '[]';
	v_new		bigint;
	v_total		numeric;
BEGIN
	r := oms._lock_return(v_tenant, exchange.rma_id);
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = r.order_id;
	IF r.exchange_order_id IS NOT NULL THEN
		RETURN r.exchange_order_id;		-- exchanged already: a retried call returns the same order
	END IF;
	IF r.state <> 'authorized' THEN
		RAISE EXCEPTION 'return % cannot be exchanged: it is %', r.id, r.state
			USING ERRCODE = '55000', HINT = 'An exchange is made before the returned units are received (and refunded).';
	END IF;
	IF lines IS NULL THEN
		RAISE EXCEPTION 'lines to exchange are required'
			USING ERRCODE = '22023', HINT = 'For example [{"line_no": 1, "qty": 1, "sku": "TEE-L"}]: returned line 1 replaced by TEE-L.';
	END IF;
	PERFORM oms._check_line_list(lines, 'lines to exchange', ARRAY['line_no', 'qty', 'sku']);

	-- Each replacement is priced as the returned unit it replaces.
	FOR v_req IN SELECT (x.v -> 'line_no')::numeric::int AS line_no, (x.v -> 'qty')::numeric::int AS qty, x.v -> 'sku' AS sku
				   FROM jsonb_array_elements(lines) WITH ORDINALITY x(v, i) ORDER BY x.i
	LOOP
		SELECT x.qty, x.qty_exchanged, i.sku AS old_sku, ol.unit_price INTO rl
		  FROM oms.return_lines x
		  JOIN oms.order_lines ol ON ol.tenant_id = x.tenant_id AND ol.order_id = x.order_id AND ol.line_no = x.line_no
		  JOIN oms.items i ON i.tenant_id = ol.tenant_id AND i.id = ol.item_id
		 WHERE x.tenant_id = v_tenant AND x.return_id = r.id AND x.line_no = v_req.line_no;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'return % has no line %', r.id, v_req.line_no
				USING ERRCODE = '22023', HINT = 'Exchange the lines the return authorised (oms.return_lines).';
		END IF;
		IF v_req.qty > rl.qty THEN
			RAISE EXCEPTION 'cannot exchange % units of line % on return %', v_req.qty, v_req.line_no, r.id
				USING ERRCODE = 'OM005', DETAIL = format('The return authorised %s.', rl.qty),
				      HINT = 'Exchange at most the units being returned.';
		END IF;
		IF v_req.sku IS NOT NULL AND jsonb_typeof(v_req.sku) <> 'string' THEN
			RAISE EXCEPTION 'invalid sku % of line % to exchange', v_req.sku, v_req.line_no
				USING ERRCODE = '22023', HINT = 'The SKU of the replacement; leave it out for the same item.';
		END IF;
		UPDATE oms.return_lines x SET qty_exchanged = v_req.qty, exchange_sku = coalesce(v_req.sku #>> '{}', rl.old_sku)
			WHERE x.tenant_id = v_tenant AND x.return_id = r.id AND x.line_no = v_req.line_no;
		v_lines := v_lines || jsonb_build_object('sku', coalesce(v_req.sku #>> '{}', rl.old_sku), 'qty', v_req.qty,
												 'unit_price', rl.unit_price);
	END LOOP;

	-- The new order, routed and reserved like any order, linked to the return.
	v_payload := jsonb_strip_nulls(jsonb_build_object(
		'channel', (SELECT c.code FROM oms.channels c WHERE c.tenant_id = v_tenant AND c.id = o.channel_id),
		'external_id', o.external_id || '/RMA-' || r.id,
		'currency', o.currency,
		'customer', nullif(jsonb_strip_nulls(jsonb_build_object('ref', o.customer_ref, 'email', o.customer_email,
															  'name', o.customer_name, 'phone', o.customer_phone)), '{}'),
		'ship_to', o.ship_to,
		'pickup', (SELECT l.code FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = o.pickup_location_id),
		'attributes', jsonb_build_object('exchange_for_order', o.id, 'exchange_for_return', r.id),
		'lines', v_lines));
	v_new := oms.place_order(v_payload);
	UPDATE oms.returns x SET exchange_order_id = v_new WHERE x.tenant_id = v_tenant AND x.id = r.id;

	-- Paid by the returned value: an authorisation whose reference is the return.
	SELECT x.total INTO v_total FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = v_new;
	IF v_total > 0 THEN
		PERFORM oms.authorize_payment(v_new, v_total, 'return:' || r.id);
	END IF;
	PERFORM oms._event(v_tenant, o.id, 'exchange_created',
		jsonb_build_object('rma', r.id, 'exchange_order_id', v_new, 'exchange_order_ref', o.external_id || '/RMA-' || r.id,
						   'lines', v_lines));
	RETURN v_new;
END
$$;
COMMENT ON FUNCTION oms.exchange(bigint, jsonb) IS 'Creates the replacement order of a return not yet received, [{"line_no": 1, "qty": 1, "sku": "TEE-L"}] (sku omitted: the same item), each replacement priced as the unit it replaces, placed (routed, reserved) like any order as <external_id>/RMA-<id>, paid by an authorisation of the returned value (reference return:<id>); the exchanged units are not refunded on receipt; returns the new order id';

-- ===== sql/parts/86_subscriptions.sql
-- Subscriptions (recurring orders): every N days, weeks or months from a first date, an order is
-- placed through oms.place_order, exactly once per period.
--
-- oms.run_subscriptions(on_date) (the job "subscriptions") handles every subscription due on or
-- before on_date: each period gets one row in oms.subscription_runs, whose primary key
-- (subscription, period) makes a second placement impossible, and the order's external id
-- (SUB-<id>-<period>) makes place_order itself idempotent as well. A period is
--   placed     the order was placed (its lines may be backordered if the items allow it);
--   skipped    with the reason: an item is discontinued, out of stock and not backorderable, the
--              subscription was paused, the period was missed (only the latest due period is
--              placed when runs were missed: nobody wants three deliveries at once), or any
--              other refusal of place_order (its message).
-- Periods are counted from the first date (period k is first_date + k x N units), so a monthly
-- subscription from 31 January comes on 29 February, then 31 March, without drifting.

CREATE TABLE oms.subscriptions (
	tenant_id			int NOT NULL DEFAULT oms.current_tenant_id(),
	id					bigint GENERATED ALWAYS AS IDENTITY,
	channel_id			int NOT NULL,
	customer			jsonb NOT NULL DEFAULT '{}',
	ship_to				jsonb,
	pickup_location_id	int,
	currency			char(3),
	lines				jsonb NOT NULL CHECK (jsonb_typeof(lines) = 'array' AND jsonb_array_length(lines) > 0),
	every				int NOT NULL CHECK (every BETWEEN 1 AND 1000),
	unit				text NOT NULL CHECK (unit IN ('day', 'week', 'month')),
	first_date			date NOT NULL,
	periods_done		int NOT NULL DEFAULT 0 CHECK (periods_done >= 0),
	next_date			date NOT NULL,
	state				text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'cancelled')),
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	changed_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, channel_id) REFERENCES oms.channels,
	FOREIGN KEY (tenant_id, pickup_location_id) REFERENCES oms.locations,
	CHECK ((ship_to IS NULL) <> (pickup_location_id IS NULL))
);
CREATE INDEX subscriptions_due_idx ON oms.subscriptions (tenant_id, next_date) WHERE state <> 'cancelled';
COMMENT ON TABLE oms.subscriptions IS 'Recurring orders: channel, customer, ship-to or pickup store, lines, every N days, weeks or months from first_date; next_date is the next period to place';

CREATE TABLE oms.subscription_runs (
	tenant_id			int NOT NULL,
	subscription_id		bigint NOT NULL,
	period				date NOT NULL,
	status				text NOT NULL CHECK (status IN ('placed', 'skipped')),
	order_id			bigint,
	reason				text,
	run_at				timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, subscription_id, period),
	FOREIGN KEY (tenant_id, subscription_id) REFERENCES oms.subscriptions,
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	CHECK ((status = 'placed') = (order_id IS NOT NULL)),
	CHECK (status = 'placed' OR reason IS NOT NULL)
);
COMMENT ON TABLE oms.subscription_runs IS 'One row per period of a subscription: the order placed, or why the period was skipped; the primary key makes every period happen once';

-- The date of period k of a subscription.
CREATE FUNCTION oms._subscription_period(p_first date, p_every int, p_unit text, p_k int) RETURNS date
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN CASE p_unit WHEN 'day' THEN p_first + p_k * p_every
					   WHEN 'week' THEN p_first + 7 * p_k * p_every
					   ELSE (p_first + pg_catalog.make_interval(months => p_k * p_every))::date END;
COMMENT ON FUNCTION oms._subscription_period(date, int, text, int) IS 'Internal: the date of period k (0 = the first date) of a subscription every N days, weeks or months';

CREATE FUNCTION oms.subscribe(subscription jsonb) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	p			jsonb := subscription;
	v_tenant	int := oms.current_tenant_id();
	v_what		text := 'subscription';
	v_channel	int;
	v_pickup	int;
	v_every		int;
	v_first		date;
	v_bad		record;
	v_sku		text;
	v_id		bigint;
	v_hint		text := 'A subscription is {"channel": "web", "customer": {...}, "ship_to": {...} or "pickup": "STORE", "lines": [{"sku": "SKU-1", "qty": 1, "unit_price": 9.90}], "every": 2, "unit": "week", "first_date": "2024-05-01"}.';
BEGIN
	IF p IS NULL OR jsonb_typeof(p) <> 'object' THEN
		RAISE EXCEPTION 'subscription must be a JSON object, got %', coalesce(left(p::text, 80), 'nothing')
			USING ERRCODE = '22023', HINT = v_hint;
	END IF;
	SELECT k INTO v_sku FROM jsonb_object_keys(p) k
	 WHERE k NOT IN ('channel', 'customer', 'ship_to', 'pickup', 'currency', 'lines', 'every', 'unit', 'first_date')
	 ORDER BY k LIMIT 1;
	IF v_sku IS NOT NULL THEN
		RAISE EXCEPTION 'subscription field "%" is not known', v_sku
			USING ERRCODE = '22023', HINT = 'Known fields: channel, currency, customer, every, first_date, lines, pickup, ship_to, unit.';
	END IF;
	SELECT c.id INTO v_channel FROM oms.channels c WHERE c.tenant_id = v_tenant AND c.code = p ->> 'channel';
	IF v_channel IS NULL THEN
		RAISE EXCEPTION 'unknown channel %', coalesce((p -> 'channel')::text, 'nothing')
			USING ERRCODE = '22023', HINT = 'Channels are rows of oms.channels of the current tenant.';
	END IF;
	IF (p ? 'ship_to') = (p ? 'pickup') THEN
		RAISE EXCEPTION 'subscription needs exactly one of "ship_to" and "pickup"'
			USING ERRCODE = '22023', HINT = 'Give "ship_to" (an address) to ship, or "pickup" (a store code) for click & collect.';
	END IF;
	IF p ? 'ship_to' AND jsonb_typeof(p -> 'ship_to') <> 'object' THEN
		RAISE EXCEPTION 'subscription field "ship_to" must be an address object, got %', left((p -> 'ship_to')::text, 80)
			USING ERRCODE = '22023', HINT = 'The same address object as in oms.place_order, e.g. {"country": "IT", "city": "Milano"}.';
	END IF;
	IF p ? 'pickup' THEN
		SELECT l.id INTO v_pickup FROM oms.locations l
		 WHERE l.tenant_id = v_tenant AND l.code = p ->> 'pickup' AND l.can_pickup;
		IF v_pickup IS NULL THEN
			RAISE EXCEPTION 'unknown pickup location %', (p -> 'pickup')::text
				USING ERRCODE = '22023', HINT = 'A pickup location is a row of oms.locations with can_pickup.';
		END IF;
	END IF;
	IF p ? 'customer' AND jsonb_typeof(p -> 'customer') <> 'object' THEN
		RAISE EXCEPTION 'subscription field "customer" must be an object, got %', left((p -> 'customer')::text, 80)
			USING ERRCODE = '22023', HINT = '{"ref": "C1", "email": "a@example.com", "name": "..."}.';
	END IF;
	IF jsonb_typeof(p -> 'lines') IS DISTINCT FROM 'array' OR jsonb_array_length(p -> 'lines') = 0 THEN
		RAISE EXCEPTION 'subscription field "lines" must be a non-empty array, got %', coalesce(left((p -> 'lines')::text, 80), 'nothing')
			USING ERRCODE = '22023', HINT = 'A subscription orders at least one line: [{"sku": "SKU-1", "qty": 1, "unit_price": 9.90}].';
	END IF;
	SELECT * INTO v_bad FROM oms._check_lines(p -> 'lines');
	IF v_bad.path IS NOT NULL THEN
		RAISE EXCEPTION 'subscription field "%" %, got %', v_bad.path, v_bad.problem, coalesce(v_bad.value::text, 'nothing')
			USING ERRCODE = '22023', HINT = v_bad.hint;
	END IF;
	SELECT l ->> 'sku' INTO v_sku FROM jsonb_array_elements(p -> 'lines') l
	 WHERE NOT EXISTS (SELECT FROM oms.items i WHERE i.tenant_id = v_tenant AND i.sku = l ->> 'sku') LIMIT 1;
	IF v_sku IS NOT NULL THEN
		RAISE EXCEPTION 'unknown SKU "%" in subscription', v_sku
			USING ERRCODE = '22023', HINT = 'Items are rows of oms.items of the current tenant.';
	END IF;
	SELECT l ->> 'sku' INTO v_sku FROM jsonb_array_elements(p -> 'lines') l GROUP BY 1 HAVING count(*) > 1 LIMIT 1;
	IF v_sku IS NOT NULL THEN
		RAISE EXCEPTION 'SKU "%" appears in more than one line of the subscription', v_sku
			USING ERRCODE = '22023', HINT = 'Send one line per SKU with the total quantity.';
	END IF;
	v_every := oms._json_number(p, v_what, 'every', 1, false, 1000, true,
								'"every": N and "unit": "day", "week" or "month" order every N units, N from 1 to 1000.');
	IF v_every IS NULL THEN
		RAISE EXCEPTION 'subscription field "every" is required'
			USING ERRCODE = '22023', HINT = '"every": 2, "unit": "week" orders every two weeks.';
	END IF;
	IF jsonb_typeof(p -> 'unit') IS DISTINCT FROM 'string' OR p ->> 'unit' NOT IN ('day', 'week', 'month') THEN
		RAISE EXCEPTION 'subscription field "unit" must be day, week or month, got %', coalesce((p -> 'unit')::text, 'nothing')
			USING ERRCODE = '22023', HINT = '"every": 2, "unit": "week" orders every two weeks.';
	END IF;
	IF p ? 'first_date' THEN
		BEGIN
			v_first := (p ->> 'first_date')::date;
		EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow THEN
			v_first := NULL;
		END;
		IF v_first IS NULL OR jsonb_typeof(p -> 'first_date') <> 'string' THEN
			RAISE EXCEPTION 'subscription field "first_date" must be a date, got %', (p -> 'first_date')::text
				USING ERRCODE = '22023', HINT = 'Write it as "2024-05-01".';
		END IF;
	ELSE
		v_first := oms.today();
	END IF;
	IF p ? 'currency' AND NOT EXISTS (SELECT FROM oms.currencies c WHERE c.code = p ->> 'currency') THEN
		RAISE EXCEPTION 'unsupported currency code %', (p -> 'currency')::text
			USING ERRCODE = '22023', HINT = 'Currencies are the ISO 4217 codes in oms.currencies, e.g. "EUR".';
	END IF;

	INSERT INTO oms.subscriptions AS s (tenant_id, channel_id, customer, ship_to, pickup_location_id, currency, lines,
										every, unit, first_date, next_date)
		VALUES (v_tenant, v_channel, coalesce(p -> 'customer', '{}'), p -> 'ship_to', v_pickup, p ->> 'currency',
				p -> 'lines', v_every, p ->> 'unit', v_first, v_first)
		RETURNING s.id INTO v_id;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms.subscribe(jsonb) IS 'Creates a subscription (recurring order): {"channel", "customer", "ship_to" or "pickup", "currency", "lines", "every": N, "unit": "day" | "week" | "month", "first_date"}; returns its id';

-- The subscription, locked; 22023 when unknown, 55000 when cancelled (unless allowed).
CREATE FUNCTION oms._lock_subscription(p_tenant int, p_id bigint) RETURNS oms.subscriptions
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v oms.subscriptions;
BEGIN
	SELECT * INTO v FROM oms.subscriptions s WHERE s.tenant_id = p_tenant AND s.id = p_id FOR UPDATE;
	IF v.id IS NULL THEN
		RAISE EXCEPTION 'unknown subscription %', coalesce(p_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Subscriptions are rows of oms.subscriptions of the current tenant.';
	END IF;
	RETURN v;
END
$$;
COMMENT ON FUNCTION oms._lock_subscription(int, bigint) IS 'Internal: locks and returns a subscription; 22023 when unknown';

CREATE FUNCTION oms._set_subscription_state(p_id bigint, p_from text[], p_to text) RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v			oms.subscriptions := oms._lock_subscription(v_tenant, p_id);
BEGIN
	IF v.state = p_to THEN
		RETURN v.state;
	END IF;
	IF v.state <> ALL (p_from) THEN
		RAISE EXCEPTION 'subscription % is %', v.id, v.state
			USING ERRCODE = '55000', HINT = format('Only a subscription that is %s can become %s.', array_to_string(p_from, ' or '), p_to);
	END IF;
	UPDATE oms.subscriptions s SET state = p_to, changed_at = pg_catalog.now()
	 WHERE s.tenant_id = v_tenant AND s.id = v.id;
	RETURN p_to;
END
$$;
COMMENT ON FUNCTION oms._set_subscription_state(bigint, text[], text) IS 'Internal: moves a subscription to a state from one of the given ones (55000 otherwise; a no-op when already there)';

CREATE FUNCTION oms.pause_subscription(subscription_id bigint) RETURNS text
	LANGUAGE sql
	SET search_path = oms, pg_catalog
	RETURN oms._set_subscription_state(subscription_id, ARRAY['active'], 'paused');
COMMENT ON FUNCTION oms.pause_subscription(bigint) IS 'Pauses a subscription: its periods are skipped (reason "paused") until it is resumed';

CREATE FUNCTION oms.resume_subscription(subscription_id bigint) RETURNS text
	LANGUAGE sql
	SET search_path = oms, pg_catalog
	RETURN oms._set_subscription_state(subscription_id, ARRAY['paused'], 'active');
COMMENT ON FUNCTION oms.resume_subscription(bigint) IS 'Resumes a paused subscription from its next period';

CREATE FUNCTION oms.cancel_subscription(subscription_id bigint) RETURNS text
	LANGUAGE sql
	SET search_path = oms, pg_catalog
	RETURN oms._set_subscription_state(subscription_id, ARRAY['active', 'paused'], 'cancelled');
COMMENT ON FUNCTION oms.cancel_subscription(bigint) IS 'Cancels a subscription: no period is placed any more';

-- One subscription's due periods up to p_on (the row locked by the caller).
CREATE FUNCTION oms._run_subscription(p_tenant int, p_sub oms.subscriptions, p_on date)
	RETURNS TABLE (subscription_id bigint, period date, status text, order_id bigint, reason text)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
	v_k			int := p_sub.periods_done;
	v_period	date;
	v_next		date;
	v_status	text;
	v_order		bigint;
	v_reason	text;
	v_sku		text;
	v_payload	jsonb;
BEGIN
	-- Every due period gets its row; only the latest due one is placed, earlier ones were missed.
	v_period := p_sub.next_date;
	WHILE v_period <= p_on LOOP
		v_next := oms._subscription_period(p_sub.first_date, p_sub.every, p_sub.unit, v_k + 1);
		v_order := NULL;
		v_reason := NULL;
		IF EXISTS (SELECT FROM oms.subscription_runs r
					WHERE r.tenant_id = p_tenant AND r.subscription_id = p_sub.id AND r.period = v_period) THEN
			v_status := NULL;		-- already handled (cannot happen while next_date moves with it)
		ELSIF p_sub.state = 'paused' THEN
			v_status := 'skipped';
			v_reason := 'paused';
		ELSIF v_next <= p_on THEN
			v_status := 'skipped';
			v_reason := pg_catalog.format('missed: the period ended on %s before any run; only the latest due period is placed', v_next - 1);
		ELSE
			SELECT l ->> 'sku' INTO v_sku FROM jsonb_array_elements(p_sub.lines) l
			 WHERE NOT EXISTS (SELECT FROM oms.items i WHERE i.tenant_id = p_tenant AND i.sku = l ->> 'sku' AND i.active)
			 LIMIT 1;
			IF v_sku IS NOT NULL THEN
				v_status := 'skipped';
				v_reason := pg_catalog.format('item "%s" is discontinued', v_sku);
			ELSE
				v_payload := pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
					'channel', (SELECT c.code FROM oms.channels c WHERE c.tenant_id = p_tenant AND c.id = p_sub.channel_id),
					'external_id', 'SUB-' || p_sub.id || '-' || pg_catalog.to_char(v_period, 'YYYYMMDD'),
					'customer', CASE WHEN p_sub.customer <> '{}' THEN p_sub.customer END,
					'ship_to', p_sub.ship_to,
					'pickup', (SELECT l.code FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = p_sub.pickup_location_id),
					'currency', p_sub.currency,
					'lines', p_sub.lines,
					'attributes', pg_catalog.jsonb_build_object('subscription', p_sub.id, 'period', v_period)));
				BEGIN
					v_order := oms.place_order(v_payload);
					v_status := 'placed';
				EXCEPTION
					WHEN SQLSTATE 'OM001' THEN
						GET STACKED DIAGNOSTICS v_reason = MESSAGE_TEXT;
						v_status := 'skipped';
						v_reason := 'out of stock and not backorderable: ' || v_reason;
					WHEN SQLSTATE '22023' OR SQLSTATE '55000' THEN
						GET STACKED DIAGNOSTICS v_reason = MESSAGE_TEXT;
						v_status := 'skipped';
				END;
			END IF;
		END IF;
		IF v_status IS NOT NULL THEN
			INSERT INTO oms.subscription_runs (tenant_id, subscription_id, period, status, order_id, reason)
				VALUES (p_tenant, p_sub.id, v_period, v_status, v_order, v_reason);
			subscription_id := p_sub.id;
			period := v_period;
			status := v_status;
			order_id := v_order;
			reason := v_reason;
			RETURN NEXT;
		END IF;
		v_k := v_k + 1;
		v_period := v_next;
	END LOOP;
	UPDATE oms.subscriptions s SET periods_done = v_k, next_date = v_period
	 WHERE s.tenant_id = p_tenant AND s.id = p_sub.id AND s.periods_done <> v_k;
END
$$;
COMMENT ON FUNCTION oms._run_subscription(int, oms.subscriptions, date) IS 'Internal: places or skips (with the reason) every due period of one locked subscription up to a date, and moves its next date';

CREATE FUNCTION oms.run_subscriptions(on_date date DEFAULT NULL)
	RETURNS TABLE (subscription_id bigint, period date, status text, order_id bigint, reason text)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_on		date := coalesce(on_date, oms.today());
	s			oms.subscriptions;
BEGIN
	-- SKIP LOCKED: a subscription that another run is placing right now is its business.
	FOR s IN SELECT * FROM oms.subscriptions x
			  WHERE x.tenant_id = v_tenant AND x.state <> 'cancelled' AND x.next_date <= v_on
			  ORDER BY x.next_date, x.id
			  FOR UPDATE SKIP LOCKED LOOP
		RETURN QUERY SELECT * FROM oms._run_subscription(v_tenant, s, v_on);
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms.run_subscriptions(date) IS 'Places the order of every subscription period due on or before on_date (default oms.today()) exactly once, records skipped periods with the reason (paused, missed, item discontinued, out of stock and not backorderable), moves next dates; returns what it did';

SELECT pg_catalog.pg_extension_config_dump('oms.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('oms.subscription_runs', '');

-- ===== sql/parts/87_jobs.sql
-- Scheduled jobs: one entry point, oms.run_job(job, tenant), that pg_cron calls, a record of every
-- run in oms.job_runs, and oms.schedule / oms.unschedule as thin wrappers over cron.schedule.
--
-- Jobs (per tenant):
--	replenishment	oms._run_replenishment over batches of batch_items item ids (default 1000), committing after each batch; rows = lines and safety stocks written
--	alerts			oms.check_alerts(); rows = alerts opened + refreshed + resolved
--	subscriptions	oms.run_subscriptions(); rows = periods handled (placed or skipped)
--	demand_history	oms.compact_demand_history(); rows = deltas folded
-- (Purging events is the background worker's, not a cron job.)
--
-- Overlap: a run takes the session advisory lock (hashtext('oms.' || job), tenant id); a second
-- run of the same job and tenant finds it taken, records a run with status 'skipped' and returns
-- at once with a notice. oms.run_replenishment() and oms.check_alerts() take the same key, so
-- a run by hand and a scheduled one do not overlap either.
--
-- Progress: oms.job_runs is written and committed as the run goes (status 'running', then
-- progress_done of progress_total batches after each committed batch), so other sessions see it
-- in oms.job_progress while the run works; no shared memory is needed, and a run killed midway
-- stays 'running' with its last progress until the next run of the job marks it 'failed'.

CREATE TABLE oms.job_runs (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id		int NOT NULL REFERENCES oms.tenants,
	job				text NOT NULL CHECK (job IN ('replenishment', 'alerts', 'subscriptions', 'demand_history', 'bi_summaries')),
	started_at		timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	finished_at		timestamptz,
	status			text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
	rows_touched	bigint NOT NULL DEFAULT 0,
	progress_done	bigint NOT NULL DEFAULT 0,
	progress_total	bigint,
	error			text,
	backend_pid		int NOT NULL DEFAULT pg_catalog.pg_backend_pid()
);
CREATE INDEX job_runs_job_idx ON oms.job_runs (tenant_id, job, started_at);
COMMENT ON TABLE oms.job_runs IS 'Every run of a scheduled job (oms.run_job): job, tenant, start and end, status (running, succeeded, failed, skipped when another run held the job), rows touched, progress in batches and the error of a failed run';

CREATE FUNCTION oms._check_job(p_job text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_job IS NULL OR p_job NOT IN ('replenishment', 'alerts', 'subscriptions', 'demand_history', 'bi_summaries') THEN
		RAISE EXCEPTION 'unknown job "%"', coalesce(p_job, 'NULL')
			USING ERRCODE = '22023',
				  HINT = 'The jobs are replenishment, alerts, subscriptions, demand_history and bi_summaries.';
	END IF;
	RETURN p_job;
END
$$;
COMMENT ON FUNCTION oms._check_job(text) IS 'Internal: the job name when it is one of replenishment, alerts, subscriptions, demand_history, bi_summaries; 22023 otherwise';

-- One step of a job: a batch of items for replenishment, the whole job for the others. Returns the
-- rows it touched.
CREATE FUNCTION oms._job_step(p_job text, p_tenant int, p_today date, p_item_from int, p_item_to int) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_rows	bigint;
BEGIN
	CASE p_job
	WHEN 'replenishment' THEN
		SELECT coalesce(sum(r.lines), 0) INTO v_rows FROM oms._run_replenishment(p_tenant, p_today, p_item_from, p_item_to) r;
	WHEN 'alerts' THEN
		SELECT a.opened + a.still_open + a.resolved INTO v_rows FROM oms.check_alerts() a;
	WHEN 'subscriptions' THEN
		SELECT count(*) INTO v_rows FROM oms.run_subscriptions(p_today);
	WHEN 'demand_history' THEN
		v_rows := oms.compact_demand_history();
	WHEN 'bi_summaries' THEN
		v_rows := oms.compact_bi_sales();	-- 95_bi_summaries.sql
	END CASE;
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms._job_step(text, int, date, int, int) IS 'Internal: one step of a scheduled job for a tenant (a batch of item ids for replenishment, the whole job otherwise); returns the rows it touched';

-- The entry point of every scheduled run: CALL oms.run_job('alerts', 'shop'). A procedure, so
-- that it can commit between batches; it therefore has no SET clause (a procedure with one
-- cannot commit) and names every object with its schema instead.
CREATE PROCEDURE oms.run_job(job text, tenant text DEFAULT NULL, batch_items int DEFAULT 1000)
	LANGUAGE plpgsql
AS $$
DECLARE
	v_job		text := oms._check_job(job);
	v_tenant	int;
	v_run		bigint;
	v_rows		bigint := 0;
	v_batch		int := batch_items;
	v_from		int;
	v_to		int;
	v_max		int;
	v_today		date;
	v_state		text;
	v_msg		text;
BEGIN
	IF batch_items IS NULL OR batch_items < 1 THEN
		RAISE EXCEPTION 'batch_items must be at least 1, got %', coalesce(batch_items::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'A replenishment run commits after every batch of this many item ids.';
	END IF;
	IF tenant IS NOT NULL THEN
		PERFORM pg_catalog.set_config('oms.tenant', tenant, false);
	END IF;
	v_tenant := oms.current_tenant_id();
	v_today := oms.today();

	IF NOT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext('oms.' || v_job), v_tenant) THEN
		INSERT INTO oms.job_runs (tenant_id, job, status, finished_at, error)
		VALUES (v_tenant, v_job, 'skipped', pg_catalog.clock_timestamp(), 'another run of this job was in progress');
		COMMIT;
		RAISE NOTICE 'job "%" of tenant "%" is already running in another session; this run does nothing',
			v_job, pg_catalog.current_setting('oms.tenant');
		RETURN;
	END IF;

	-- Runs left 'running' by a backend that is gone are closed as failed.
	UPDATE oms.job_runs r SET status = 'failed', finished_at = pg_catalog.clock_timestamp(),
							  error = 'the run ended without finishing (server restart or backend terminated)'
	 WHERE r.tenant_id = v_tenant AND r.job = v_job AND r.status = 'running';
	IF v_job = 'replenishment' THEN
		SELECT pg_catalog.min(i.id), pg_catalog.max(i.id) INTO v_from, v_max FROM oms.items i WHERE i.tenant_id = v_tenant;
	ELSE
		v_from := 0;
		v_max := 0;
		v_batch := 1;
	END IF;
	INSERT INTO oms.job_runs (tenant_id, job, status, progress_total)
	VALUES (v_tenant, v_job, 'running', coalesce(pg_catalog.ceil((v_max - v_from + 1)::numeric / v_batch), 0))
	RETURNING id INTO v_run;
	COMMIT;

	WHILE v_from <= v_max LOOP
		v_to := pg_catalog.int4(LEAST(v_from::bigint + v_batch - 1, v_max));
		BEGIN
			v_rows := v_rows + oms._job_step(v_job, v_tenant, v_today, v_from, v_to);
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
		END;
		IF v_msg IS NOT NULL THEN
			-- The batches committed so far stay; the run is recorded as failed and the error raised.
			UPDATE oms.job_runs SET status = 'failed', finished_at = pg_catalog.clock_timestamp(), rows_touched = v_rows,
									error = v_msg
			 WHERE id = v_run;
			COMMIT;
			PERFORM pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('oms.' || v_job), v_tenant);
			RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_msg,
				  DETAIL = pg_catalog.format('Job "%s", run %s: the batches before this one are committed.', v_job, v_run);
		END IF;
		UPDATE oms.job_runs SET progress_done = progress_done + 1, rows_touched = v_rows WHERE id = v_run;
		COMMIT;
		v_from := v_to + 1;
	END LOOP;

	UPDATE oms.job_runs SET status = 'succeeded', finished_at = pg_catalog.clock_timestamp() WHERE id = v_run;
	COMMIT;
	PERFORM pg_catalog.pg_advisory_unlock(pg_catalog.hashtext('oms.' || v_job), v_tenant);
END
$$;
-- Procedures are not covered by 90_security's REVOKE ON ALL FUNCTIONS.
REVOKE ALL ON PROCEDURE oms.run_job(text, text, int) FROM PUBLIC;
COMMENT ON PROCEDURE oms.run_job(text, text, int) IS 'Runs a scheduled job (replenishment, alerts, subscriptions, demand_history) for a tenant (default: the setting oms.tenant): records it in oms.job_runs, commits after each batch (replenishment: batch_items item ids at a time) with its progress, and does nothing but record a skipped run when the same job of the tenant is already running';

CREATE VIEW oms.job_progress AS
SELECT r.id, t.code AS tenant, r.job, r.status, r.started_at, r.progress_done, r.progress_total,
	   CASE WHEN r.progress_total > 0 THEN pg_catalog.round(100.0 * r.progress_done / r.progress_total, 1) END AS percent,
	   r.rows_touched, pg_catalog.clock_timestamp() - r.started_at AS elapsed, r.backend_pid
  FROM oms.job_runs r JOIN oms.tenants t ON t.id = r.tenant_id
 WHERE r.status = 'running';
COMMENT ON VIEW oms.job_progress IS 'The jobs running now, as committed batch by batch: batches done of the total, percent, rows touched so far, elapsed time and the backend running it';

-- pg_cron: job names are oms:<tenant>:<job>; the command calls oms.run_job for that tenant.
CREATE FUNCTION oms._cron_available() RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_cron') THEN
		RAISE EXCEPTION 'pg_cron is not installed in database "%"', current_database()
			USING ERRCODE = '55000',
				  HINT = pg_catalog.format('Add pg_cron to postgresql.conf: shared_preload_libraries = ''pg_cron,oms'' and cron.database_name = ''%s'', restart, then CREATE EXTENSION pg_cron in that database.', current_database());
	END IF;
END
$$;
COMMENT ON FUNCTION oms._cron_available() IS 'Internal: 55000 naming the shared_preload_libraries line when the pg_cron extension is not installed in this database';

CREATE FUNCTION oms.schedule(job text, cron text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_job		text := oms._check_job(job);
	v_tenant	text := pg_catalog.current_setting('oms.tenant', true);
	v_name		text;
	v_cmd		text;
	v_id		bigint;
BEGIN
	PERFORM oms.current_tenant_id();
	PERFORM oms._cron_available();
	v_name := 'oms:' || v_tenant || ':' || v_job;
	v_cmd := pg_catalog.format('CALL oms.run_job(%L, %L)', v_job, v_tenant);
	BEGIN
		IF current_database() = pg_catalog.current_setting('cron.database_name', true) THEN
			EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO v_id USING v_name, cron, v_cmd;
		ELSE
			EXECUTE 'SELECT cron.schedule_in_database($1, $2, $3, $4)' INTO v_id USING v_name, cron, v_cmd, current_database();
		END IF;
	EXCEPTION WHEN OTHERS THEN
		IF SQLERRM LIKE 'invalid schedule%' OR cron IS NULL THEN
			RAISE EXCEPTION 'invalid cron schedule "%" for job "%"', coalesce(cron, 'NULL'), v_job
				USING ERRCODE = '22023',
					  HINT = 'Write five cron fields (minute hour day month weekday, e.g. ''*/15 * * * *''), @daily-style names, or ''N seconds'' with N from 1 to 59.';
		END IF;
		RAISE;
	END;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms.schedule(text, text) IS 'Schedules a job (replenishment, alerts, subscriptions, demand_history) of the current tenant with pg_cron (cron.schedule; cron.schedule_in_database when pg_cron runs from another database): the command is CALL oms.run_job(job, tenant); scheduling again replaces the schedule; returns the pg_cron job id; 22023 for invalid cron text, 55000 when pg_cron is missing';

CREATE FUNCTION oms.unschedule(job text) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_job	text := oms._check_job(job);
	v_name	text;
	v_found	boolean;
BEGIN
	PERFORM oms.current_tenant_id();
	PERFORM oms._cron_available();
	v_name := 'oms:' || pg_catalog.current_setting('oms.tenant', true) || ':' || v_job;
	EXECUTE 'SELECT EXISTS (SELECT FROM cron.job WHERE jobname = $1 AND username = current_user)' INTO v_found USING v_name;
	IF v_found THEN
		EXECUTE 'SELECT cron.unschedule($1)' USING v_name;
	END IF;
	RETURN v_found;
END
$$;
COMMENT ON FUNCTION oms.unschedule(text) IS 'Removes the pg_cron schedule of a job of the current tenant; false when it was not scheduled';

-- ===== sql/parts/88_overdue.sql
-- Events that no API call raises, because they are about something that did not happen: an order
-- line whose promised date passed without it shipping (delayed), a click & collect order left at
-- the store past its pickup days (pickup_uncollected). The background worker calls
-- oms.raise_overdue_events() every round; each order is reported once per promised date, each
-- pickup once per staging. Orders locked by a running call are skipped until the next round.

CREATE TABLE oms.delay_notices (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	order_id		bigint NOT NULL,
	line_no			int NOT NULL,
	promised_date	date NOT NULL,
	notified_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, order_id, line_no, promised_date),
	FOREIGN KEY (tenant_id, order_id, line_no) REFERENCES oms.order_lines
);
COMMENT ON TABLE oms.delay_notices IS 'Lines reported late (event delayed) for a promised date; a new promised date can be reported again';

-- The lines that may be late: promised, and not all shipped or cancelled.
CREATE INDEX order_lines_promised_idx ON oms.order_lines (promised_date)
	WHERE promised_date IS NOT NULL AND qty_shipped + qty_cancelled < qty;

CREATE FUNCTION oms.raise_overdue_events(batch int DEFAULT 100) RETURNS int
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_n		int := 0;
	r		record;
BEGIN
	IF batch IS NULL OR batch < 1 OR batch > 10000 THEN
		RAISE EXCEPTION 'invalid batch size %', coalesce(batch::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Handle 1 to 10000 orders per call.';
	END IF;

	-- Late lines, per order (every tenant: the worker serves them all).
	FOR r IN
		SELECT l.tenant_id, l.order_id
		  FROM oms.order_lines l
		 WHERE l.promised_date IS NOT NULL AND l.qty_shipped + l.qty_cancelled < l.qty
		   AND l.promised_date < current_date
		   AND l.state NOT IN ('cancelled', 'shipped', 'delivered', 'returned', 'partially_returned')
		   AND NOT EXISTS (SELECT FROM oms.delay_notices d
							WHERE d.tenant_id = l.tenant_id AND d.order_id = l.order_id AND d.line_no = l.line_no
							  AND d.promised_date = l.promised_date)
		 GROUP BY l.tenant_id, l.order_id
		 ORDER BY l.tenant_id, l.order_id
		 LIMIT batch
	LOOP
		CONTINUE WHEN NOT EXISTS (SELECT FROM oms.orders o WHERE o.tenant_id = r.tenant_id AND o.id = r.order_id
								   AND o.state NOT IN ('cancelled', 'closed') FOR UPDATE SKIP LOCKED);
		WITH late AS (
			INSERT INTO oms.delay_notices (tenant_id, order_id, line_no, promised_date)
			SELECT l.tenant_id, l.order_id, l.line_no, l.promised_date
			  FROM oms.order_lines l
			 WHERE l.tenant_id = r.tenant_id AND l.order_id = r.order_id
			   AND l.promised_date IS NOT NULL AND l.qty_shipped + l.qty_cancelled < l.qty
			   AND l.promised_date < current_date
			   AND l.state NOT IN ('cancelled', 'shipped', 'delivered', 'returned', 'partially_returned')
			ON CONFLICT DO NOTHING
			RETURNING line_no)
		INSERT INTO oms.events (tenant_id, order_id, type, payload)
		SELECT r.tenant_id, r.order_id, 'delayed',
			   oms._order_header(r.tenant_id, r.order_id)
			   || jsonb_build_object('lines', jsonb_agg(jsonb_build_object(
					'line_no', l.line_no, 'sku', i.sku, 'name', i.name, 'qty', l.qty - l.qty_cancelled - l.qty_shipped,
					'promised_date', l.promised_date, 'state', l.state::text) ORDER BY l.line_no))
		  FROM late
		  JOIN oms.order_lines l ON l.tenant_id = r.tenant_id AND l.order_id = r.order_id AND l.line_no = late.line_no
		  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
		HAVING count(*) > 0;
		v_n := v_n + 1;
	END LOOP;

	-- Pickups waiting past their date.
	FOR r IN
		SELECT p.tenant_id, p.order_id, p.ready_at, p.collect_by, l.code, l.name
		  FROM oms.pickups p
		  JOIN oms.locations l ON l.tenant_id = p.tenant_id AND l.id = p.location_id
		  JOIN oms.orders o ON o.tenant_id = p.tenant_id AND o.id = p.order_id
		 WHERE p.collected_at IS NULL AND p.uncollected_at IS NULL AND p.collect_by < now()
		   AND o.state NOT IN ('cancelled', 'closed')
		 ORDER BY p.collect_by
		 LIMIT batch
	LOOP
		CONTINUE WHEN NOT EXISTS (SELECT FROM oms.orders o WHERE o.tenant_id = r.tenant_id AND o.id = r.order_id
								   AND o.state NOT IN ('cancelled', 'closed') FOR UPDATE SKIP LOCKED);
		UPDATE oms.pickups p SET uncollected_at = now() WHERE p.tenant_id = r.tenant_id AND p.order_id = r.order_id;
		PERFORM oms._event(r.tenant_id, r.order_id, 'pickup_uncollected',
			jsonb_build_object('store', jsonb_build_object('location', r.code, 'name', r.name),
							   'ready_at', r.ready_at, 'collect_by', r.collect_by));
		v_n := v_n + 1;
	END LOOP;
	RETURN v_n;
END
$$;
COMMENT ON FUNCTION oms.raise_overdue_events(int) IS 'Writes the events nobody''s call raises (every tenant): delayed for orders with lines past their promised date and not shipped, pickup_uncollected for click & collect orders past their store''s pickup days; each once; at most batch orders of each kind; returns how many orders it reported (the background worker calls it every round)';

-- ===== sql/parts/89_documents.sql
-- Invoices and credit notes (issue 11).
--
-- A document (invoice or credit note) is a row of oms.invoices with its lines in
-- oms.invoice_lines: copies of the seller, buyer and address as of issue, one line per order line
-- (and one for the shipping charge on the order's first invoice) with quantity, unit price, net,
-- tax rate, tax and gross, and the totals. Credit notes have negative quantities and amounts.
--
-- Numbering: gapless and increasing per tenant and series (INV-2026, CN-2026: a prefix and the
-- year of issue, settings in oms.document_settings). The document is written first with no
-- number; the last statement of the issuing transaction's work takes the next number from its
-- series' counter row (oms.document_counters, INSERT ... ON CONFLICT DO UPDATE) and writes it on
-- the document. The counter row stays locked only from that moment to the commit, so concurrent
-- issuers queue for a moment and nothing else (order placement never touches it); a transaction
-- that rolls back rolls its counter back too, so no number is lost.
--
-- Immutability: a trigger refuses UPDATE and DELETE of a numbered document and of any document's
-- lines (OM013); the one UPDATE allowed is the numbering itself.

CREATE TABLE oms.document_settings (
	tenant_id			int PRIMARY KEY DEFAULT oms.current_tenant_id() REFERENCES oms.tenants,
	seller				jsonb NOT NULL DEFAULT '{}' CHECK (pg_catalog.jsonb_typeof(seller) = 'object'),
	invoice_prefix		text NOT NULL DEFAULT 'INV' CHECK (invoice_prefix ~ '^[A-Z0-9]{1,10}$'),
	credit_note_prefix	text NOT NULL DEFAULT 'CN' CHECK (credit_note_prefix ~ '^[A-Z0-9]{1,10}$'),
	yearly_series		boolean NOT NULL DEFAULT true,
	gs1_company_prefix	text CHECK (gs1_company_prefix ~ '^[0-9]{6,12}$'),
	sscc_extension		int NOT NULL DEFAULT 0 CHECK (sscc_extension BETWEEN 0 AND 9)
);
COMMENT ON TABLE oms.document_settings IS 'Per tenant: the seller printed on documents, invoice and credit note series (prefix, one series per year), GS1 company prefix and SSCC extension digit; set with oms.set_document_settings()';

CREATE TABLE oms.document_counters (
	tenant_id		int NOT NULL REFERENCES oms.tenants,
	series			text NOT NULL,
	last			int NOT NULL CHECK (last > 0),
	PRIMARY KEY (tenant_id, series)
);
COMMENT ON TABLE oms.document_counters IS 'Last number issued per tenant and document series; updated only by the numbering of a document, at the end of the issuing transaction';

CREATE TABLE oms.invoices (
	tenant_id			int NOT NULL DEFAULT oms.current_tenant_id(),
	id					bigint GENERATED ALWAYS AS IDENTITY,
	kind				text NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
	series				text NOT NULL,
	seq					int,
	number				text,
	order_id			bigint NOT NULL,
	credited_invoice_id	bigint,
	issued_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	currency			char(3) NOT NULL REFERENCES oms.currencies,
	tax_mode			text NOT NULL,
	seller				jsonb NOT NULL,
	buyer				jsonb NOT NULL,
	address				jsonb,
	reason				text,
	net					numeric NOT NULL,
	tax					numeric NOT NULL,
	gross				numeric NOT NULL,
	PRIMARY KEY (tenant_id, id),
	CONSTRAINT invoices_number_key UNIQUE (tenant_id, number),
	CONSTRAINT invoices_seq_key UNIQUE (tenant_id, series, seq),
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	FOREIGN KEY (tenant_id, credited_invoice_id) REFERENCES oms.invoices,
	CHECK ((seq IS NULL) = (number IS NULL)),
	CHECK (gross = net + tax),
	CHECK ((kind = 'credit_note') = (credited_invoice_id IS NOT NULL)),
	CHECK (CASE kind WHEN 'invoice' THEN gross >= 0 ELSE gross <= 0 END)
);
CREATE INDEX invoices_order_idx ON oms.invoices (tenant_id, order_id);
COMMENT ON TABLE oms.invoices IS 'Issued invoices and credit notes (kind): gapless number per series, copies of seller, buyer and address as of issue, totals; immutable once numbered';
COMMENT ON COLUMN oms.invoices.credited_invoice_id IS 'For a credit note: the invoice it refers to (the order''s latest invoice)';

CREATE TABLE oms.invoice_lines (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	invoice_id		bigint NOT NULL,
	position		int NOT NULL CHECK (position > 0),
	line_no			int,
	sku				text,
	description		text NOT NULL,
	qty				int NOT NULL,
	unit_price		numeric,
	net				numeric NOT NULL,
	tax_rate		numeric,
	tax				numeric NOT NULL,
	gross			numeric NOT NULL,
	PRIMARY KEY (tenant_id, invoice_id, position),
	FOREIGN KEY (tenant_id, invoice_id) REFERENCES oms.invoices,
	CHECK (gross = net + tax)
);
COMMENT ON TABLE oms.invoice_lines IS 'Lines of an invoice or credit note: the order line (NULL: shipping or a refund adjustment), quantity (negative on a credit note; 0 for an adjustment), unit price, net, tax rate, tax, gross';

CREATE FUNCTION oms._documents_immutable() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_old	jsonb;
BEGIN
	IF TG_OP = 'INSERT' THEN	-- lines: only while their document is not numbered
		IF EXISTS (SELECT FROM oms.invoices i WHERE i.tenant_id = NEW.tenant_id AND i.id = NEW.invoice_id
					  AND i.number IS NOT NULL) THEN
			RAISE EXCEPTION 'document % is issued: lines cannot be added', NEW.invoice_id
				USING ERRCODE = 'OM013', HINT = 'Correct an issued invoice with a credit note.';
		END IF;
		RETURN NEW;
	END IF;
	v_old := pg_catalog.to_jsonb(OLD);
	IF TG_TABLE_NAME = 'invoices' AND TG_OP = 'UPDATE' THEN
		IF v_old ->> 'number' IS NULL AND pg_catalog.to_jsonb(NEW) ->> 'number' IS NOT NULL
		   AND (pg_catalog.to_jsonb(NEW) - 'number' - 'seq') = (v_old - 'number' - 'seq') THEN
			RETURN NEW;		-- the numbering of a document being issued
		END IF;
	END IF;
	RAISE EXCEPTION 'issued documents cannot be changed: % of % refused', TG_OP, TG_TABLE_NAME
		USING ERRCODE = 'OM013',
		      DETAIL = format('Document %s.', coalesce(v_old ->> 'number', v_old ->> 'invoice_id', v_old ->> 'id')),
		      HINT = 'An invoice is corrected by a credit note, never edited or deleted.';
END
$$;
COMMENT ON FUNCTION oms._documents_immutable() IS 'Internal: trigger refusing (OM013) UPDATE and DELETE of issued invoices and credit notes and of their lines; only the numbering is allowed';

CREATE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON oms.invoices
	FOR EACH ROW EXECUTE FUNCTION oms._documents_immutable();
COMMENT ON TRIGGER invoices_immutable ON oms.invoices IS 'An issued document is never changed or deleted';
CREATE TRIGGER invoice_lines_immutable BEFORE INSERT OR UPDATE OR DELETE ON oms.invoice_lines
	FOR EACH ROW EXECUTE FUNCTION oms._documents_immutable();
COMMENT ON TRIGGER invoice_lines_immutable ON oms.invoice_lines IS 'Lines of a document are written once, before it is numbered';

-- The outbox's event types, plus this part's two: the list of 46_events.sql as it stands, so that
-- types other parts add there are kept.
DO $$
DECLARE
	v_def	text;
BEGIN
	SELECT pg_catalog.pg_get_constraintdef(c.oid) INTO v_def FROM pg_catalog.pg_constraint c
	 WHERE c.conrelid = 'oms.events'::regclass AND c.conname = 'events_type_known';
	IF v_def IS NULL OR v_def !~ '\]\)\)\)$' THEN
		RAISE EXCEPTION 'unexpected constraint events_type_known: %', v_def;
	END IF;
	ALTER TABLE oms.events DROP CONSTRAINT events_type_known;
	EXECUTE pg_catalog.format('ALTER TABLE oms.events ADD CONSTRAINT events_type_known %s',
		pg_catalog.regexp_replace(v_def, '\]\)\)\)$', ', ''invoice_issued''::text, ''credit_note_issued''::text])))'));
END
$$;

-- ----- settings

CREATE FUNCTION oms.set_document_settings(settings jsonb) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_key		text;
	v_prefix	text;
BEGIN
	IF settings IS NULL OR jsonb_typeof(settings) <> 'object' THEN
		RAISE EXCEPTION 'document settings must be a JSON object'
			USING ERRCODE = '22023', HINT = 'For example {"seller": {"name": "Shop"}, "gs1_company_prefix": "0614141"}.';
	END IF;
	SELECT k INTO v_key FROM jsonb_object_keys(settings) k
	 WHERE k NOT IN ('seller', 'invoice_prefix', 'credit_note_prefix', 'yearly_series', 'gs1_company_prefix', 'sscc_extension')
	 ORDER BY k LIMIT 1;
	IF v_key IS NOT NULL THEN
		RAISE EXCEPTION 'unknown document setting "%"', oms._clip(v_key)
			USING ERRCODE = '22023',
			      HINT = 'Settings: seller, invoice_prefix, credit_note_prefix, yearly_series, gs1_company_prefix, sscc_extension.';
	END IF;
	IF settings ? 'gs1_company_prefix' AND jsonb_typeof(settings -> 'gs1_company_prefix') <> 'null' THEN
		v_prefix := settings ->> 'gs1_company_prefix';
		IF jsonb_typeof(settings -> 'gs1_company_prefix') <> 'string' OR v_prefix !~ '^[0-9]{6,12}$' THEN
			RAISE EXCEPTION 'invalid GS1 company prefix %', oms._clip((settings -> 'gs1_company_prefix')::text)
				USING ERRCODE = '22023',
				      HINT = 'A GS1 company prefix is a string of 6 to 12 digits, as GS1 assigned it (e.g. "0614141").';
		END IF;
	END IF;
	IF settings ? 'seller' AND jsonb_typeof(settings -> 'seller') <> 'object' THEN
		RAISE EXCEPTION 'seller must be a JSON object, got %', oms._clip((settings -> 'seller')::text)
			USING ERRCODE = '22023', HINT = 'For example {"name": "Shop S.r.l.", "address": ["Via Roma 1", "20121 Milano"], "vat_id": "IT01234567890"}.';
	END IF;
	IF settings ? 'sscc_extension' AND (jsonb_typeof(settings -> 'sscc_extension') <> 'number'
										OR (settings ->> 'sscc_extension') !~ '^[0-9]$') THEN
		RAISE EXCEPTION 'invalid SSCC extension digit %', oms._clip((settings -> 'sscc_extension')::text)
			USING ERRCODE = '22023', HINT = 'The extension digit is a number from 0 to 9.';
	END IF;
	IF (settings ? 'invoice_prefix' AND coalesce(settings ->> 'invoice_prefix', '') !~ '^[A-Z0-9]{1,10}$')
	   OR (settings ? 'credit_note_prefix' AND coalesce(settings ->> 'credit_note_prefix', '') !~ '^[A-Z0-9]{1,10}$') THEN
		RAISE EXCEPTION 'invalid document prefix %', oms._clip(coalesce(settings -> 'invoice_prefix', settings -> 'credit_note_prefix')::text)
			USING ERRCODE = '22023', HINT = 'A prefix has 1 to 10 capital letters or digits, e.g. "INV".';
	END IF;
	IF settings ? 'yearly_series' AND jsonb_typeof(settings -> 'yearly_series') <> 'boolean' THEN
		RAISE EXCEPTION 'yearly_series must be true or false'
			USING ERRCODE = '22023', HINT = 'true: a series per calendar year (INV-2026-000001); false: one series (INV-000001).';
	END IF;

	INSERT INTO oms.document_settings AS d (tenant_id) VALUES (v_tenant) ON CONFLICT (tenant_id) DO NOTHING;
	UPDATE oms.document_settings d
	   SET seller = CASE WHEN settings ? 'seller' THEN settings -> 'seller' ELSE d.seller END,
		   invoice_prefix = coalesce(settings ->> 'invoice_prefix', d.invoice_prefix),
		   credit_note_prefix = coalesce(settings ->> 'credit_note_prefix', d.credit_note_prefix),
		   yearly_series = coalesce((settings ->> 'yearly_series')::boolean, d.yearly_series),
		   gs1_company_prefix = CASE WHEN settings ? 'gs1_company_prefix' THEN v_prefix ELSE d.gs1_company_prefix END,
		   sscc_extension = coalesce((settings ->> 'sscc_extension')::int, d.sscc_extension)
	 WHERE d.tenant_id = v_tenant;
END
$$;
COMMENT ON FUNCTION oms.set_document_settings(jsonb) IS 'Sets the current tenant''s document settings: seller (object printed on documents), invoice_prefix, credit_note_prefix, yearly_series, gs1_company_prefix (6 to 12 digits), sscc_extension (0-9); keys not given keep their value';

-- ----- issuing

-- Numbers a document written by this transaction: the next number of its series, taken last.
CREATE FUNCTION oms._number_document(p_tenant int, p_id bigint) RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_series	text;
	v_seq		int;
	v_number	text;
BEGIN
	SELECT i.series INTO v_series FROM oms.invoices i WHERE i.tenant_id = p_tenant AND i.id = p_id;
	INSERT INTO oms.document_counters AS c (tenant_id, series, last) VALUES (p_tenant, v_series, 1)
		ON CONFLICT (tenant_id, series) DO UPDATE SET last = c.last + 1
		RETURNING c.last INTO v_seq;
	v_number := v_series || '-' || lpad(v_seq::text, 6, '0');
	UPDATE oms.invoices i SET seq = v_seq, number = v_number WHERE i.tenant_id = p_tenant AND i.id = p_id;
	RETURN v_number;
END
$$;
COMMENT ON FUNCTION oms._number_document(int, bigint) IS 'Internal: gives a document just written the next number of its series (counter row locked from here to commit; a rollback returns the number)';

-- Writes a document from its lines (jsonb array of line objects) and numbers it; returns its id.
CREATE FUNCTION oms._write_document(p_tenant int, o oms.orders, p_kind text, p_credited bigint, p_reason text,
									p_lines jsonb) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	s			oms.document_settings;
	v_id		bigint;
	v_number	text;
	v_tot		record;
BEGIN
	SELECT * INTO s FROM oms.document_settings d WHERE d.tenant_id = p_tenant;
	IF NOT FOUND THEN
		s.seller := '{}'; s.invoice_prefix := 'INV'; s.credit_note_prefix := 'CN'; s.yearly_series := true;
	END IF;
	SELECT sum(x.net) AS net, sum(x.tax) AS tax, sum(x.gross) AS gross INTO v_tot
		FROM jsonb_to_recordset(p_lines) x(net numeric, tax numeric, gross numeric);

	INSERT INTO oms.invoices (tenant_id, kind, series, order_id, credited_invoice_id, currency, tax_mode,
							  seller, buyer, address, reason, net, tax, gross)
		VALUES (p_tenant, p_kind,
				CASE p_kind WHEN 'invoice' THEN s.invoice_prefix ELSE s.credit_note_prefix END
				|| CASE WHEN s.yearly_series THEN to_char(now() AT TIME ZONE 'UTC', '-YYYY') ELSE '' END,
				o.id, p_credited, o.currency, o.tax_mode, s.seller,
				jsonb_strip_nulls(jsonb_build_object('ref', o.customer_ref, 'name', o.customer_name, 'email', o.customer_email,
													 'phone', o.customer_phone)),
				CASE WHEN o.pickup_location_id IS NOT NULL
					 THEN (SELECT jsonb_strip_nulls(jsonb_build_object('pickup', l.code, 'name', l.name, 'city', l.city,
																	  'postal_code', l.postal_code, 'country', l.country))
							 FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = o.pickup_location_id)
					 ELSE o.ship_to END,
				p_reason, v_tot.net, v_tot.tax, v_tot.gross)
		RETURNING id INTO v_id;
	INSERT INTO oms.invoice_lines (tenant_id, invoice_id, position, line_no, sku, description, qty, unit_price,
								   net, tax_rate, tax, gross)
		SELECT p_tenant, v_id, x.i, y.line_no, y.sku, y.description, y.qty, y.unit_price, y.net, y.tax_rate, y.tax, y.gross
		  FROM jsonb_array_elements(p_lines) WITH ORDINALITY x(v, i)
		 CROSS JOIN LATERAL jsonb_to_record(x.v) y(line_no int, sku text, description text, qty int, unit_price numeric,
												   net numeric, tax_rate numeric, tax numeric, gross numeric);

	v_number := oms._number_document(p_tenant, v_id);
	PERFORM oms._event(p_tenant, o.id, CASE p_kind WHEN 'invoice' THEN 'invoice_issued' ELSE 'credit_note_issued' END,
		jsonb_strip_nulls(jsonb_build_object('invoice_id', v_id, 'number', v_number, 'currency', o.currency,
			'net', v_tot.net, 'tax', v_tot.tax, 'gross', v_tot.gross,
			'credited_invoice', (SELECT i.number FROM oms.invoices i WHERE i.tenant_id = p_tenant AND i.id = p_credited),
			'reason', p_reason)));
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms._write_document(int, oms.orders, text, bigint, text, jsonb) IS 'Internal: writes an invoice or credit note of an order (copies of seller, buyer, address; lines; totals), numbers it last and writes its event; returns its id';

-- What each order line (and the shipping charge, line_no 0) has on documents: units invoiced, and
-- net of credit notes: units, net, tax, gross still invoiced.
CREATE FUNCTION oms._invoiced(p_tenant int, p_order bigint)
	RETURNS TABLE (line_no int, tax_rate numeric, invoiced_qty bigint, credited_qty bigint,
				   open_gross numeric, open_tax numeric, invoiced_gross numeric, invoiced_tax numeric)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	SELECT coalesce(il.line_no, 0), il.tax_rate,
		   coalesce(sum(il.qty) FILTER (WHERE i.kind = 'invoice'), 0)::bigint,
		   coalesce(-sum(il.qty) FILTER (WHERE i.kind = 'credit_note'), 0)::bigint,
		   sum(il.gross), sum(il.tax),
		   coalesce(sum(il.gross) FILTER (WHERE i.kind = 'invoice'), 0),
		   coalesce(sum(il.tax) FILTER (WHERE i.kind = 'invoice'), 0)
	  FROM oms.invoices i
	  JOIN oms.invoice_lines il ON il.tenant_id = i.tenant_id AND il.invoice_id = i.id
	 WHERE i.tenant_id = p_tenant AND i.order_id = p_order
	 GROUP BY coalesce(il.line_no, 0), il.tax_rate;
END;
COMMENT ON FUNCTION oms._invoiced(int, bigint) IS 'Internal: per order line (0: shipping and adjustments) and tax rate, units invoiced and credited and the gross and tax still invoiced after credit notes';

CREATE FUNCTION oms._issue_invoice(p_tenant int, o oms.orders, p_capture boolean) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_minor		int;
	v_lines		jsonb;
BEGIN
	SELECT c.minor_units INTO v_minor FROM oms.currencies c WHERE c.code = o.currency;
	-- Per line: the units to invoice now (shipped or collected; with invoicing on capture, every
	-- unit not cancelled) less those invoiced before. Amounts are cumulative shares of the line's
	-- amounts, so that the invoices of a line add up to its amounts exactly once it is all invoiced.
	WITH inv AS (SELECT * FROM oms._invoiced(p_tenant, o.id)),
	l AS (
		SELECT l.line_no, i.sku, i.name, l.qty, l.unit_price, l.tax_rate,
			   coalesce(l.gross, round(l.qty * l.unit_price, v_minor)) AS gross, coalesce(l.tax, 0) AS tax,
			   CASE WHEN p_capture THEN l.qty - l.qty_cancelled ELSE l.qty_shipped END AS due,
			   coalesce((SELECT sum(v.invoiced_qty) FROM inv v WHERE v.line_no = l.line_no), 0) AS done,
			   coalesce((SELECT sum(v.invoiced_gross) FROM inv v WHERE v.line_no = l.line_no), 0) AS done_gross,
			   coalesce((SELECT sum(v.invoiced_tax) FROM inv v WHERE v.line_no = l.line_no), 0) AS done_tax
		  FROM oms.order_lines l
		  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
		 WHERE l.tenant_id = p_tenant AND l.order_id = o.id),
	now_lines AS (
		SELECT l.line_no, l.sku, l.name, l.due - l.done AS q, l.unit_price, l.tax_rate,
			   round(l.gross * l.due / l.qty, v_minor) - l.done_gross AS gross,
			   round(l.tax * l.due / l.qty, v_minor) - l.done_tax AS tax
		  FROM l WHERE l.due > l.done),
	ship AS (
		SELECT 0 AS line_no, NULL::text AS sku, 'Shipping' AS name, 1 AS q, o.shipping_amount AS unit_price,
			   o.shipping_tax_rate AS tax_rate, coalesce(o.shipping_net + o.shipping_tax, o.shipping_amount) AS gross,
			   coalesce(o.shipping_tax, 0) AS tax
		 WHERE o.shipping_amount > 0 AND EXISTS (SELECT FROM now_lines)
		   AND NOT EXISTS (SELECT FROM inv v WHERE v.line_no = 0 AND v.invoiced_qty > 0))
	SELECT jsonb_agg(jsonb_build_object('line_no', nullif(x.line_no, 0), 'sku', x.sku, 'description', x.name, 'qty', x.q,
										'unit_price', x.unit_price, 'net', x.gross - x.tax, 'tax_rate', x.tax_rate,
										'tax', x.tax, 'gross', x.gross)
					 ORDER BY x.line_no = 0, x.line_no)
	  INTO v_lines
	  FROM (SELECT * FROM now_lines UNION ALL SELECT * FROM ship) x;

	IF v_lines IS NULL THEN
		RETURN NULL;
	END IF;
	RETURN oms._write_document(p_tenant, o, 'invoice', NULL, NULL, v_lines);
END
$$;
COMMENT ON FUNCTION oms._issue_invoice(int, oms.orders, boolean) IS 'Internal: invoices the units of a locked order due and not yet invoiced (shipped, or all not cancelled when p_capture) and the shipping charge on the first invoice; NULL when nothing is due';

CREATE FUNCTION oms.issue_invoice(order_id bigint) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_on		text;
	v_id		bigint;
	v_shipped	bigint;
BEGIN
	o := oms._lock_order(v_tenant, issue_invoice.order_id);
	SELECT c.invoice_on INTO v_on FROM oms.channels c WHERE c.tenant_id = v_tenant AND c.id = o.channel_id;
	IF v_on = 'capture' AND NOT EXISTS (SELECT FROM oms.payments p WHERE p.tenant_id = v_tenant AND p.order_id = o.id
										  AND p.captured > 0) THEN
		RAISE EXCEPTION 'order % has nothing to invoice: its payment is not captured', o.id
			USING ERRCODE = '55000',
			      HINT = 'The order''s channel invoices on capture: capture the payment (oms.capture_payment), which issues the invoice.';
	END IF;
	v_id := oms._issue_invoice(v_tenant, o, v_on = 'capture');
	IF v_id IS NULL THEN
		SELECT coalesce(sum(l.qty_shipped), 0) INTO v_shipped FROM oms.order_lines l
			WHERE l.tenant_id = v_tenant AND l.order_id = o.id;
		RAISE EXCEPTION 'order % has nothing to invoice', o.id
			USING ERRCODE = '55000',
			      DETAIL = format('The order is %s; units shipped or collected: %s, already invoiced: %s.', o.state, v_shipped,
							   (SELECT coalesce(sum(v.invoiced_qty), 0) FROM oms._invoiced(v_tenant, o.id) v WHERE v.line_no > 0)),
			      HINT = CASE WHEN o.state = 'cancelled' THEN 'A cancelled order is not invoiced.'
						  ELSE 'Invoice after shipping (oms.ship) or collection (oms.collect).' END;
	END IF;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms.issue_invoice(bigint) IS 'Issues an invoice for what the order has shipped or had collected and is not invoiced yet (the whole order, once captured, on a channel invoicing on capture); nothing to invoice: 55000; returns the invoice id';

-- Called by oms.capture_payment (76_payments.sql): on a channel that invoices on capture, issue the
-- invoice of everything not invoiced yet.
CREATE FUNCTION oms._invoice_on_capture(p_tenant int, p_order bigint) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	o	oms.orders;
BEGIN
	IF NOT EXISTS (SELECT FROM oms.orders x JOIN oms.channels c ON c.tenant_id = x.tenant_id AND c.id = x.channel_id
					WHERE x.tenant_id = p_tenant AND x.id = p_order AND c.invoice_on = 'capture') THEN
		RETURN NULL;
	END IF;
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = p_tenant AND x.id = p_order;
	RETURN oms._issue_invoice(p_tenant, o, true);
END
$$;
COMMENT ON FUNCTION oms._invoice_on_capture(int, bigint) IS 'Internal: after a capture, on a channel with invoice_on = capture, invoices what is not invoiced yet; returns the invoice id or NULL';

-- Called by oms.refund_payment (76_payments.sql) for every refund: a refund of invoiced goods
-- issues a credit note of the same amount (at most what is invoiced and not yet credited). Units
-- returned and not credited yet are credited first, at their share of their line's invoiced
-- amounts; what remains of the refund (a goodwill refund, shipping) is credited as one adjustment
-- per tax rate, in proportion to what is still invoiced at each rate.
CREATE FUNCTION oms._credit_refund(p_tenant int, p_order bigint, p_amount numeric, p_reason text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	o			oms.orders;
	v_minor		int;
	v_open		numeric;
	v_left		numeric;
	v_lines		jsonb := '[]';
	v_units		jsonb;
	v_units_g	numeric;
	v_last		bigint;
	r			record;
	v_n			int;
	v_k			int := 0;
	v_share		numeric;
	v_tax		numeric;
	v_done		numeric := 0;
BEGIN
	SELECT i.id INTO v_last FROM oms.invoices i
	 WHERE i.tenant_id = p_tenant AND i.order_id = p_order AND i.kind = 'invoice' ORDER BY i.id DESC LIMIT 1;
	IF v_last IS NULL THEN
		RETURN NULL;	-- nothing invoiced: a refund of what was never invoiced needs no credit note
	END IF;
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = p_tenant AND x.id = p_order;
	SELECT c.minor_units INTO v_minor FROM oms.currencies c WHERE c.code = o.currency;
	SELECT coalesce(sum(v.open_gross), 0) INTO v_open FROM oms._invoiced(p_tenant, p_order) v;
	v_left := least(p_amount, v_open);
	IF v_left <= 0 THEN
		RETURN NULL;
	END IF;

	-- Returned units invoiced and not yet credited, at their share of what is still invoiced.
	WITH inv AS (SELECT * FROM oms._invoiced(p_tenant, p_order) WHERE line_no > 0),
	u AS (
		SELECT l.line_no, i.sku, i.name, l.unit_price, v.tax_rate, v.invoiced_qty - v.credited_qty AS open_qty,
			   v.open_gross, v.open_tax,
			   least(l.qty_returned - v.credited_qty, v.invoiced_qty - v.credited_qty) AS q
		  FROM inv v
		  JOIN oms.order_lines l ON l.tenant_id = p_tenant AND l.order_id = p_order AND l.line_no = v.line_no
		  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id),
	c AS (
		SELECT u.*, round(u.open_gross * u.q / u.open_qty, v_minor) AS gross, round(u.open_tax * u.q / u.open_qty, v_minor) AS tax
		  FROM u WHERE u.q > 0)
	SELECT jsonb_agg(jsonb_build_object('line_no', c.line_no, 'sku', c.sku, 'description', c.name, 'qty', -c.q,
										'unit_price', c.unit_price, 'net', -(c.gross - c.tax), 'tax_rate', c.tax_rate,
										'tax', -c.tax, 'gross', -c.gross) ORDER BY c.line_no),
		   sum(c.gross)
	  INTO v_units, v_units_g
	  FROM c;
	IF v_units IS NOT NULL AND v_units_g <= v_left THEN
		v_lines := v_units;
		v_left := v_left - v_units_g;
	END IF;

	-- The rest: one adjustment per tax rate, in proportion to what is still invoiced at that rate.
	IF v_left > 0 THEN
		SELECT count(*) INTO v_n FROM (SELECT v.tax_rate FROM oms._invoiced(p_tenant, p_order) v
										GROUP BY v.tax_rate HAVING sum(v.open_gross) > 0) x;
		FOR r IN SELECT v.tax_rate, sum(v.open_gross) AS g FROM oms._invoiced(p_tenant, p_order) v
				  GROUP BY v.tax_rate HAVING sum(v.open_gross) > 0 ORDER BY v.tax_rate NULLS FIRST
		LOOP
			v_k := v_k + 1;
			v_share := CASE WHEN v_k = v_n THEN v_left - v_done ELSE round(v_left * r.g / v_open, v_minor) END;
			v_tax := round(v_share * coalesce(r.tax_rate, 0) / (1 + coalesce(r.tax_rate, 0)), v_minor);
			v_done := v_done + v_share;
			IF v_share <> 0 THEN
				v_lines := v_lines || jsonb_build_object('description', 'Refund: ' || p_reason, 'qty', 0,
					'net', -(v_share - v_tax), 'tax_rate', r.tax_rate, 'tax', -v_tax, 'gross', -v_share);
			END IF;
		END LOOP;
	END IF;
	IF v_lines = '[]' THEN
		RETURN NULL;
	END IF;
	RETURN oms._write_document(p_tenant, o, 'credit_note', v_last, p_reason, v_lines);
END
$$;
COMMENT ON FUNCTION oms._credit_refund(int, bigint, numeric, text) IS 'Internal: for a refund of an invoiced order, issues a credit note of the refund (at most what is invoiced and not credited): returned units first, the rest as an adjustment per tax rate; returns its id or NULL';

-- A credit note for a refund made outside oms (a channel with refunds_outside, a goodwill gesture
-- paid by the marketplace): the same document oms.refund_payment issues, without touching payments.
CREATE FUNCTION oms.issue_credit_note(order_id bigint, amount numeric, reason text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_open		numeric;
	v_id		bigint;
BEGIN
	o := oms._lock_order(v_tenant, issue_credit_note.order_id);
	PERFORM oms._reason(reason, 'issue a credit note');
	amount := oms._amount(amount, o.currency, 'credit');
	IF NOT EXISTS (SELECT FROM oms.invoices i WHERE i.tenant_id = v_tenant AND i.order_id = o.id AND i.kind = 'invoice') THEN
		RAISE EXCEPTION 'order % has no invoice to credit', o.id
			USING ERRCODE = '55000',
			      HINT = 'A credit note corrects an invoice: issue the invoice first (oms.issue_invoice); a refund of what was never invoiced needs no credit note.';
	END IF;
	SELECT coalesce(sum(v.open_gross), 0) INTO v_open FROM oms._invoiced(v_tenant, o.id) v;
	IF amount > v_open THEN
		RAISE EXCEPTION 'credit note of % % for order % exceeds what is invoiced and not credited', amount, o.currency, o.id
			USING ERRCODE = 'OM012',
			      DETAIL = format('Invoiced and not yet credited: %s %s.', v_open, o.currency),
			      HINT = 'Credit at most what is still invoiced.';
	END IF;
	v_id := oms._credit_refund(v_tenant, o.id, amount, reason);
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms.issue_credit_note(bigint, numeric, text) IS 'Issues a credit note of amount against the order''s invoices for a refund made outside oms (returned units not yet credited first, the rest per tax rate); no invoice: 55000; more than is invoiced and not credited: OM012; returns its id';

-- ----- documents

-- Text escaped for HTML.
CREATE FUNCTION oms._html(p_text text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN replace(replace(replace(replace(coalesce(p_text, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;');
COMMENT ON FUNCTION oms._html(text) IS 'Internal: text escaped for HTML (& < > ")';

-- An address object as lines of text.
CREATE FUNCTION oms._address_lines(p_addr jsonb) RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN array_remove(ARRAY[p_addr ->> 'name', p_addr ->> 'line1', p_addr ->> 'line2', p_addr ->> 'street',
							  nullif(concat_ws(' ', p_addr ->> 'postal_code', p_addr ->> 'city'), ''), p_addr ->> 'country'], NULL)
		   || coalesce(ARRAY(SELECT jsonb_array_elements_text(CASE WHEN jsonb_typeof(p_addr -> 'address') = 'array'
																   THEN p_addr -> 'address' ELSE '[]' END)), '{}');
COMMENT ON FUNCTION oms._address_lines(jsonb) IS 'Internal: the printable lines of an address object (name, line1, line2, street, postal code and city, country, address array)';

-- Checks a document format name.
CREATE FUNCTION oms._format(p_format text, p_allowed text[]) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_format IS NULL OR p_format <> ALL (p_allowed) THEN
		RAISE EXCEPTION 'unknown document format "%"', oms._clip(coalesce(p_format, 'NULL'))
			USING ERRCODE = '22023', HINT = format('Formats: %s.', array_to_string(p_allowed, ', '));
	END IF;
	RETURN p_format;
END
$$;
COMMENT ON FUNCTION oms._format(text, text[]) IS 'Internal: refuses (22023) a format name not in the list';

CREATE FUNCTION oms.invoice_document(invoice_id bigint, format text DEFAULT 'html') RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	d			jsonb;
	v_title		text;
	h			text;
	l			jsonb;
BEGIN
	PERFORM oms._format(format, ARRAY['html', 'json']);
	SELECT jsonb_build_object(
			'id', i.id, 'kind', i.kind, 'number', i.number, 'issued_at', i.issued_at,
			'issue_date', to_char(i.issued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
			'order_id', i.order_id, 'order_ref', o.external_id, 'currency', i.currency, 'tax_mode', i.tax_mode,
			'credited_invoice', ci.number, 'reason', i.reason,
			'seller', i.seller, 'buyer', i.buyer, 'address', i.address,
			'lines', (SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object('position', il.position, 'line_no', il.line_no,
						'sku', il.sku, 'description', il.description, 'qty', il.qty, 'unit_price', il.unit_price,
						'net', il.net, 'tax_rate', il.tax_rate, 'tax', il.tax, 'gross', il.gross)) ORDER BY il.position)
						FROM oms.invoice_lines il WHERE il.tenant_id = i.tenant_id AND il.invoice_id = i.id),
			'tax_summary', (SELECT jsonb_agg(jsonb_build_object('tax_rate', s.tax_rate, 'net', s.net, 'tax', s.tax, 'gross', s.gross)
											 ORDER BY s.tax_rate NULLS FIRST)
							  FROM (SELECT il.tax_rate, sum(il.net) AS net, sum(il.tax) AS tax, sum(il.gross) AS gross
									  FROM oms.invoice_lines il WHERE il.tenant_id = i.tenant_id AND il.invoice_id = i.id
									 GROUP BY il.tax_rate) s),
			'totals', jsonb_build_object('net', i.net, 'tax', i.tax, 'gross', i.gross))
	  INTO d
	  FROM oms.invoices i
	  JOIN oms.orders o ON o.tenant_id = i.tenant_id AND o.id = i.order_id
	  LEFT JOIN oms.invoices ci ON ci.tenant_id = i.tenant_id AND ci.id = i.credited_invoice_id
	 WHERE i.tenant_id = v_tenant AND i.id = invoice_document.invoice_id;
	IF d IS NULL THEN
		RAISE EXCEPTION 'unknown invoice %', coalesce(invoice_document.invoice_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Invoices and credit notes are rows of oms.invoices of the current tenant.';
	END IF;
	IF format = 'json' THEN
		RETURN jsonb_pretty(d);
	END IF;

	v_title := CASE WHEN d ->> 'kind' = 'invoice' THEN 'Invoice' ELSE 'Credit note' END || ' ' || (d ->> 'number');
	h := '<!DOCTYPE html>' || E'\n' || '<html><head><meta charset="utf-8"><title>' || oms._html(v_title) || '</title>' || E'\n'
		 || '<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;width:100%}'
		 || 'th,td{border-bottom:1px solid #ccc;padding:4px;text-align:left}td.n,th.n{text-align:right}'
		 || '.parties{display:flex;justify-content:space-between;margin:1em 0}</style></head><body>' || E'\n'
		 || '<h1>' || oms._html(v_title) || '</h1>' || E'\n'
		 || '<p>Date: ' || (d ->> 'issue_date') || ' &middot; Order: ' || oms._html(d ->> 'order_ref')
		 || ' &middot; Currency: ' || (d ->> 'currency')
		 || CASE WHEN d ->> 'credited_invoice' IS NOT NULL THEN ' &middot; Credits invoice ' || oms._html(d ->> 'credited_invoice') ELSE '' END
		 || '</p>' || E'\n'
		 || CASE WHEN d ->> 'reason' IS NOT NULL THEN '<p>Reason: ' || oms._html(d ->> 'reason') || '</p>' || E'\n' ELSE '' END
		 || '<div class="parties"><div><h3>Seller</h3>'
		 || coalesce((SELECT string_agg(oms._html(x), '<br>') FROM unnest(oms._address_lines(d -> 'seller')) x), '')
		 || CASE WHEN d -> 'seller' ->> 'vat_id' IS NOT NULL THEN '<br>VAT ' || oms._html(d -> 'seller' ->> 'vat_id') ELSE '' END
		 || '</div><div><h3>Bill to</h3>'
		 || coalesce((SELECT string_agg(oms._html(x), '<br>')
						FROM unnest(array_remove(ARRAY[d -> 'buyer' ->> 'name', d -> 'buyer' ->> 'email'], NULL)
									|| oms._address_lines(coalesce(d -> 'address', '{}') - 'name')) x), '')
		 || '</div></div>' || E'\n'
		 || '<table><tr><th>#</th><th>SKU</th><th>Description</th><th class="n">Qty</th><th class="n">Unit price</th>'
		 || '<th class="n">Net</th><th class="n">Tax rate</th><th class="n">Tax</th><th class="n">Gross</th></tr>' || E'\n';
	FOR l IN SELECT x FROM jsonb_array_elements(d -> 'lines') x LOOP
		h := h || '<tr><td>' || (l ->> 'position') || '</td><td>' || oms._html(l ->> 'sku') || '</td><td>'
			 || oms._html(l ->> 'description') || '</td><td class="n">' || (l ->> 'qty') || '</td><td class="n">'
			 || coalesce(l ->> 'unit_price', '') || '</td><td class="n">' || (l ->> 'net') || '</td><td class="n">'
			 || coalesce(((l ->> 'tax_rate')::numeric * 100)::numeric(6,2)::text || ' %', '') || '</td><td class="n">'
			 || (l ->> 'tax') || '</td><td class="n">' || (l ->> 'gross') || '</td></tr>' || E'\n';
	END LOOP;
	h := h || '</table>' || E'\n' || '<h3>Tax summary</h3><table><tr><th>Tax rate</th><th class="n">Net</th>'
		 || '<th class="n">Tax</th><th class="n">Gross</th></tr>' || E'\n';
	FOR l IN SELECT x FROM jsonb_array_elements(d -> 'tax_summary') x LOOP
		h := h || '<tr><td>' || coalesce(((l ->> 'tax_rate')::numeric * 100)::numeric(6,2)::text || ' %', 'no tax')
			 || '</td><td class="n">' || (l ->> 'net') || '</td><td class="n">' || (l ->> 'tax') || '</td><td class="n">'
			 || (l ->> 'gross') || '</td></tr>' || E'\n';
	END LOOP;
	h := h || '</table>' || E'\n' || '<h2>Total ' || (d -> 'totals' ->> 'gross') || ' ' || (d ->> 'currency')
		 || '</h2><p>Net ' || (d -> 'totals' ->> 'net') || ' + tax ' || (d -> 'totals' ->> 'tax') || '</p>' || E'\n'
		 || '</body></html>' || E'\n';
	RETURN h;
END
$$;
COMMENT ON FUNCTION oms.invoice_document(bigint, text) IS 'An invoice or credit note as a printable HTML page (format html) or as JSON (format json: seller, buyer, address, number, date, lines, tax summary, totals, currency); unknown invoice or format: 22023';

-- ----- shipping documents: SSCC, packing slip, shipping label, return label
--
-- Each package (shipment) gets an SSCC-18 when it is packed (a trigger on oms.shipments, so that
-- oms.pack itself is unchanged): the extension digit and GS1 company prefix of the tenant's
-- document settings, a serial reference from oms.sscc_serial_seq filling the 16 digits, and the
-- GS1 mod-10 check digit. A tenant without a company prefix gets no SSCC (and no label).

CREATE SEQUENCE oms.sscc_serial_seq AS bigint MINVALUE 1;
COMMENT ON SEQUENCE oms.sscc_serial_seq IS 'Serial references of SSCCs (shared by all tenants, so an SSCC is unique per tenant whatever the prefixes)';

ALTER TABLE oms.shipments
	ADD COLUMN sscc text CHECK (sscc ~ '^[0-9]{18}$'),
	ADD CONSTRAINT shipments_sscc_key UNIQUE (tenant_id, sscc);
COMMENT ON COLUMN oms.shipments.sscc IS 'Serial Shipping Container Code (18 digits, GS1 application identifier 00) of the package, given at pack when the tenant has a GS1 company prefix';

CREATE FUNCTION oms.gs1_check_digit(digits text) RETURNS int
	LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_sum	int := 0;
	n		int := length(digits);
BEGIN
	IF digits !~ '^[0-9]{1,40}$' THEN
		RAISE EXCEPTION 'invalid GS1 digits "%"', oms._clip(digits)
			USING ERRCODE = '22023', HINT = 'Give the digits of the key without its check digit (e.g. the 17 first digits of an SSCC).';
	END IF;
	-- From the right: weights 3, 1, 3, 1, ...
	FOR i IN 1 .. n LOOP
		v_sum := v_sum + substr(digits, n - i + 1, 1)::int * CASE WHEN i % 2 = 1 THEN 3 ELSE 1 END;
	END LOOP;
	RETURN (10 - v_sum % 10) % 10;
END
$$;
COMMENT ON FUNCTION oms.gs1_check_digit(text) IS 'GS1 mod-10 check digit of a key''s digits (GTIN, SSCC, GLN) given without the check digit';

CREATE FUNCTION oms.sscc(extension int, company_prefix text, serial bigint) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_body	text;
BEGIN
	IF company_prefix IS NULL OR company_prefix !~ '^[0-9]{6,12}$' THEN
		RAISE EXCEPTION 'invalid GS1 company prefix "%"', oms._clip(coalesce(company_prefix, 'NULL'))
			USING ERRCODE = '22023', HINT = 'A GS1 company prefix has 6 to 12 digits, as GS1 assigned it (e.g. "0614141").';
	END IF;
	IF extension IS NULL OR extension NOT BETWEEN 0 AND 9 THEN
		RAISE EXCEPTION 'invalid SSCC extension digit %', coalesce(extension::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'The extension digit is 0 to 9.';
	END IF;
	IF serial IS NULL OR serial < 0 THEN
		RAISE EXCEPTION 'invalid SSCC serial reference %', coalesce(serial::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'The serial reference is a number of 0 or more.';
	END IF;
	v_body := extension::text || company_prefix
			  || lpad((serial % (10::numeric ^ (16 - length(company_prefix)))::bigint)::text, 16 - length(company_prefix), '0');
	RETURN v_body || oms.gs1_check_digit(v_body);
END
$$;
COMMENT ON FUNCTION oms.sscc(int, text, bigint) IS 'An SSCC-18: extension digit, GS1 company prefix (6 to 12 digits), serial reference (the serial modulo the digits left), GS1 check digit';

CREATE FUNCTION oms._shipment_sscc() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	s	record;
BEGIN
	SELECT d.gs1_company_prefix, d.sscc_extension INTO s FROM oms.document_settings d WHERE d.tenant_id = NEW.tenant_id;
	IF s.gs1_company_prefix IS NOT NULL AND NEW.sscc IS NULL THEN
		NEW.sscc := oms.sscc(s.sscc_extension, s.gs1_company_prefix, nextval('oms.sscc_serial_seq'));
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION oms._shipment_sscc() IS 'Internal: trigger giving a new shipment its SSCC when the tenant has a GS1 company prefix';

CREATE TRIGGER shipments_sscc BEFORE INSERT ON oms.shipments
	FOR EACH ROW EXECUTE FUNCTION oms._shipment_sscc();
COMMENT ON TRIGGER shipments_sscc ON oms.shipments IS 'A package gets its SSCC when it is packed';

-- Code 128 (ISO/IEC 15417): the bar and space widths of symbol values 0 to 106 (106: stop,
-- with its final bar).
CREATE FUNCTION oms._code128_patterns() RETURNS text[]
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN ARRAY[
	'212222', '222122', '222221', '121223', '121322', '131222', '122213', '122312', '132212', '221213',
	'221312', '231212', '112232', '122132', '122231', '113222', '123122', '123221', '223211', '221132',
	'221231', '213212', '223112', '312131', '311222', '321122', '321221', '312212', '322112', '322211',
	'212123', '212321', '232121', '111323', '131123', '131321', '112313', '132113', '132311', '211313',
	'231113', '231311', '112133', '112331', '132131', '113123', '113321', '133121', '313121', '211331',
	'231131', '213113', '213311', '213131', '311123', '311321', '331121', '312113', '312311', '332111',
	'314111', '221411', '431111', '111224', '111422', '121124', '121421', '141122', '141221', '112214',
	'112412', '122114', '122411', '142112', '142211', '241211', '221114', '413111', '241112', '134111',
	'111242', '121142', '121241', '114212', '124112', '124211', '411212', '421112', '421211', '212141',
	'214121', '412121', '111143', '111341', '131141', '114113', '114311', '411113', '411311', '113141',
	'114131', '311141', '411131', '211412', '211214', '211232', '2331112'];
COMMENT ON FUNCTION oms._code128_patterns() IS 'Internal: Code 128 module widths (bar, space, ...) of symbol values 0-106';

-- The symbol values of a Code 128 barcode: code set C for an even number of digits, else B
-- (ASCII 32-126); GS1-128 starts with FNC1. Start, data, check (mod 103), stop.
CREATE FUNCTION oms.code128_values(data text, gs1 boolean DEFAULT false) RETURNS int[]
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v		int[];
	v_sum	int;
BEGIN
	IF data IS NULL OR data = '' OR length(data) > 80 OR data !~ '^[ -~]+$' THEN
		RAISE EXCEPTION 'cannot encode "%" in Code 128', oms._clip(coalesce(data, 'NULL'))
			USING ERRCODE = '22023', HINT = 'Barcode data is 1 to 80 printable ASCII characters.';
	END IF;
	IF data ~ '^([0-9]{2})+$' THEN
		v := ARRAY[105];
		IF gs1 THEN v := v || 102; END IF;
		v := v || ARRAY(SELECT substr(data, 2 * i - 1, 2)::int FROM generate_series(1, length(data) / 2) i ORDER BY i);
	ELSE
		v := ARRAY[104];
		IF gs1 THEN v := v || 102; END IF;
		v := v || ARRAY(SELECT ascii(substr(data, i, 1)) - 32 FROM generate_series(1, length(data)) i ORDER BY i);
	END IF;
	SELECT v[1] + coalesce(sum(v[i] * (i - 1)), 0) INTO v_sum FROM generate_series(2, cardinality(v)) i;
	RETURN v || (v_sum % 103) || 106;
END
$$;
COMMENT ON FUNCTION oms.code128_values(text, boolean) IS 'Symbol values of a Code 128 barcode of data (set C for digit pairs, else set B; FNC1 after the start for GS1-128), with check symbol and stop';

CREATE FUNCTION oms.barcode_svg(data text, gs1 boolean DEFAULT false, module numeric DEFAULT 2, height int DEFAULT 120)
	RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	p		text[] := oms._code128_patterns();
	x		int := 10;		-- quiet zone, in modules
	rects	text := '';
	w		int;
	s		int;
	pat		text;
BEGIN
	FOREACH s IN ARRAY oms.code128_values(data, gs1) LOOP
		pat := p[s + 1];
		FOR i IN 1 .. length(pat) LOOP
			w := substr(pat, i, 1)::int;
			IF i % 2 = 1 THEN
				rects := rects || format('<rect x="%s" y="0" width="%s" height="%s"/>', x * module, w * module, height);
			END IF;
			x := x + w;
		END LOOP;
	END LOOP;
	x := x + 10;
	RETURN format('<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s">',
				  x * module, height, x * module, height)
		   || '<rect width="100%" height="100%" fill="#fff"/><g fill="#000">' || rects || '</g></svg>';
END
$$;
COMMENT ON FUNCTION oms.barcode_svg(text, boolean, numeric, int) IS 'A Code 128 (gs1: GS1-128) barcode of data drawn as SVG: black bars, 10-module quiet zones, module width and height in pixels';

-- The SSCC as printed under its barcode: (00) extension, company prefix, serial, check digit.
CREATE FUNCTION oms._sscc_text(p_sscc text, p_prefix_len int) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN '(00) ' || substr(p_sscc, 1, 1) || ' ' || substr(p_sscc, 2, p_prefix_len) || ' '
		   || substr(p_sscc, 2 + p_prefix_len, 16 - p_prefix_len) || ' ' || substr(p_sscc, 18, 1);
COMMENT ON FUNCTION oms._sscc_text(text, int) IS 'Internal: human-readable SSCC with AI (00) and its parts separated';

-- Text for a ZPL field: no ^ or ~ (ZPL commands), at most 40 characters.
CREATE FUNCTION oms._zpl(p_text text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN left(translate(coalesce(p_text, ''), '^~', '  '), 40);
COMMENT ON FUNCTION oms._zpl(text) IS 'Internal: text safe inside a ZPL ^FD field (^ and ~ removed, 40 characters)';

-- A 4x6 inch label (203 dpi) in ZPL II or HTML: from, to, the facts lines, and a barcode.
CREATE FUNCTION oms._label(p_format text, p_title text, p_from text[], p_to text[], p_facts text[],
						   p_barcode text, p_gs1 boolean, p_barcode_text text) RETURNS text
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	z		text;
	y		int;
	v_line	text;
BEGIN
	IF p_format = 'zpl' THEN
		z := '^XA' || E'\n' || '^CI28' || E'\n' || '^PW812' || E'\n' || '^LL1218' || E'\n'
			 || '^FO40,30^A0N,40,40^FD' || oms._zpl(p_title) || '^FS' || E'\n'
			 || '^FO40,90^A0N,25,25^FDFROM^FS' || E'\n';
		y := 120;
		FOREACH v_line IN ARRAY p_from LOOP
			z := z || format('^FO40,%s^A0N,28,28^FD%s^FS', y, oms._zpl(v_line)) || E'\n';
			y := y + 32;
		END LOOP;
		z := z || '^FO30,290^GB752,3,3^FS' || E'\n' || '^FO40,310^A0N,25,25^FDTO^FS' || E'\n';
		y := 345;
		FOREACH v_line IN ARRAY p_to LOOP
			z := z || format('^FO40,%s^A0N,45,45^FD%s^FS', y, oms._zpl(v_line)) || E'\n';
			y := y + 52;
		END LOOP;
		z := z || '^FO30,640^GB752,3,3^FS' || E'\n';
		y := 660;
		FOREACH v_line IN ARRAY p_facts LOOP
			z := z || format('^FO40,%s^A0N,32,32^FD%s^FS', y, oms._zpl(v_line)) || E'\n';
			y := y + 40;
		END LOOP;
		z := z || '^FO30,880^GB752,3,3^FS' || E'\n'
			 -- GS1-128: start in subset C (>;), FNC1 (>8), then the digits; otherwise automatic subsets.
			 || '^FO60,910^BY3^BCN,200,N,N,N,N^FD'
			 || CASE WHEN p_gs1 THEN '>;>8' || p_barcode ELSE oms._zpl(p_barcode) END || '^FS' || E'\n'
			 || '^FO60,1125^A0N,36,36^FD' || oms._zpl(p_barcode_text) || '^FS' || E'\n'
			 || '^XZ' || E'\n';
		RETURN z;
	END IF;
	RETURN '<!DOCTYPE html>' || E'\n' || '<html><head><meta charset="utf-8"><title>' || oms._html(p_title) || '</title>' || E'\n'
		   || '<style>@page{size:4in 6in;margin:0}body{margin:0}.label{width:4in;height:6in;box-sizing:border-box;'
		   || 'padding:0.15in;font-family:sans-serif;border:1px solid #000}.to{font-size:20pt;font-weight:bold}'
		   || 'hr{border:0;border-top:2px solid #000}.small{font-size:9pt}</style></head><body>' || E'\n'
		   || '<div class="label"><div><b>' || oms._html(p_title) || '</b></div>' || E'\n'
		   || '<div class="small">FROM<br>' || array_to_string(ARRAY(SELECT oms._html(x) FROM unnest(p_from) x), '<br>') || '</div><hr>' || E'\n'
		   || '<div class="small">TO</div><div class="to">' || array_to_string(ARRAY(SELECT oms._html(x) FROM unnest(p_to) x), '<br>')
		   || '</div><hr>' || E'\n'
		   || '<div>' || array_to_string(ARRAY(SELECT oms._html(x) FROM unnest(p_facts) x), '<br>') || '</div><hr>' || E'\n'
		   || '<div>' || oms.barcode_svg(p_barcode, p_gs1, 1.5, 110) || '</div>' || E'\n'
		   || '<div>' || oms._html(p_barcode_text) || '</div></div>' || E'\n'
		   || '</body></html>' || E'\n';
END
$$;
COMMENT ON FUNCTION oms._label(text, text, text[], text[], text[], text, boolean, text) IS 'Internal: a 4x6 inch label in ZPL II (203 dpi) or HTML with SVG barcode: title, from, to, facts, barcode and its text';

-- The ship-to of an order as lines (the store for click & collect).
CREATE FUNCTION oms._ship_to_lines(p_tenant int, o oms.orders) RETURNS text[]
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
	RETURN CASE WHEN o.pickup_location_id IS NOT NULL
				THEN (SELECT array_remove(ARRAY[coalesce(o.customer_name, o.customer_ref), 'c/o ' || l.name,
												nullif(concat_ws(' ', l.postal_code, l.city), ''), l.country], NULL)
						FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = o.pickup_location_id)
				ELSE CASE WHEN o.ship_to ? 'name' THEN '{}'::text[] ELSE array_remove(ARRAY[o.customer_name], NULL) END
					 || oms._address_lines(o.ship_to) END;
COMMENT ON FUNCTION oms._ship_to_lines(int, oms.orders) IS 'Internal: the printable ship-to of an order (customer and store for click & collect)';

-- A location as lines (a label's ship-from).
CREATE FUNCTION oms._location_lines(p_tenant int, p_location int) RETURNS text[]
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	SELECT array_remove(ARRAY[coalesce(nullif(d.seller ->> 'name', ''), l.name), l.name,
							  nullif(concat_ws(' ', l.postal_code, l.city), ''), l.country], NULL)
	  FROM oms.locations l
	  LEFT JOIN oms.document_settings d ON d.tenant_id = l.tenant_id
	 WHERE l.tenant_id = p_tenant AND l.id = p_location;
END;
COMMENT ON FUNCTION oms._location_lines(int, int) IS 'Internal: the printable address of a location, under the seller''s name';

-- A package's number within its order (1, 2, ... in packing order), as slips and labels print it.
CREATE FUNCTION oms._package_no(p_tenant int, s oms.shipments) RETURNS bigint
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	SELECT count(*) FROM oms.shipments x WHERE x.tenant_id = p_tenant AND x.order_id = s.order_id AND x.id <= s.id;
END;
COMMENT ON FUNCTION oms._package_no(int, oms.shipments) IS 'Internal: the number of a package within its order (1 for the first packed)';

CREATE FUNCTION oms.packing_slip(shipment_id bigint, format text DEFAULT 'html') RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	s			oms.shipments;
	o			oms.orders;
	r			record;
	h			text;
	t			text;
	v_follow	text := '';
	v_tfollow	text := '';
	v_no		bigint;
BEGIN
	PERFORM oms._format(format, ARRAY['html', 'text']);
	SELECT * INTO s FROM oms.shipments x WHERE x.tenant_id = v_tenant AND x.id = packing_slip.shipment_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown shipment %', coalesce(packing_slip.shipment_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Shipments are created by oms.pack() and listed in oms.shipments.';
	END IF;
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = s.order_id;
	v_no := oms._package_no(v_tenant, s);
	h := '<!DOCTYPE html>' || E'\n' || '<html><head><meta charset="utf-8"><title>Packing slip ' || oms._html(o.external_id)
		 || '</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}'
		 || 'th,td{border-bottom:1px solid #ccc;padding:4px 12px;text-align:left}</style></head><body>' || E'\n'
		 || '<h1>Packing slip</h1>' || E'\n'
		 || '<p>Order ' || oms._html(o.external_id) || ' &middot; package ' || v_no
		 || coalesce(' &middot; SSCC ' || s.sscc, '') || '</p>' || E'\n'
		 || '<p><b>Ship to</b><br>' || array_to_string(ARRAY(SELECT oms._html(x) FROM unnest(oms._ship_to_lines(v_tenant, o)) x), '<br>')
		 || '</p>' || E'\n' || '<table><tr><th>Line</th><th>SKU</th><th>Item</th><th>Qty</th></tr>' || E'\n';
	t := 'PACKING SLIP' || E'\n' || 'Order ' || o.external_id || ', package ' || v_no || coalesce(', SSCC ' || s.sscc, '') || E'\n'
		 || 'Ship to: ' || array_to_string(oms._ship_to_lines(v_tenant, o), ', ') || E'\n' || 'In this package:' || E'\n';
	FOR r IN SELECT sl.line_no, i.sku, i.name, sl.qty FROM oms.shipment_lines sl
			   JOIN oms.order_lines l ON l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no
			   JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
			  WHERE sl.tenant_id = v_tenant AND sl.shipment_id = s.id ORDER BY sl.line_no
	LOOP
		h := h || format('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>', r.line_no, oms._html(r.sku), oms._html(r.name), r.qty) || E'\n';
		t := t || format('  %s  %s  %s  x %s', r.line_no, r.sku, r.name, r.qty) || E'\n';
	END LOOP;
	h := h || '</table>' || E'\n';
	-- To follow: units of each line not cancelled and not in this package or an earlier one.
	FOR r IN SELECT l.line_no, i.sku, i.name,
					l.qty - l.qty_cancelled - coalesce((SELECT sum(sl.qty) FROM oms.shipment_lines sl
														 WHERE sl.tenant_id = l.tenant_id AND sl.order_id = l.order_id
														   AND sl.line_no = l.line_no AND sl.shipment_id <= s.id), 0) AS qty
			   FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
			  WHERE l.tenant_id = v_tenant AND l.order_id = o.id ORDER BY l.line_no
	LOOP
		CONTINUE WHEN r.qty <= 0;
		v_follow := v_follow || format('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>', r.line_no, oms._html(r.sku),
									   oms._html(r.name), r.qty) || E'\n';
		v_tfollow := v_tfollow || format('  %s  %s  %s  x %s', r.line_no, r.sku, r.name, r.qty) || E'\n';
	END LOOP;
	IF v_follow = '' THEN
		h := h || '<p>This package completes your order.</p>' || E'\n';
		t := t || 'This package completes the order.' || E'\n';
	ELSE
		h := h || '<h3>To follow in other packages</h3><table><tr><th>Line</th><th>SKU</th><th>Item</th><th>Qty</th></tr>' || E'\n'
			 || v_follow || '</table>' || E'\n';
		t := t || 'To follow in other packages:' || E'\n' || v_tfollow;
	END IF;
	RETURN CASE format WHEN 'text' THEN t ELSE h || '</body></html>' || E'\n' END;
END
$$;
COMMENT ON FUNCTION oms.packing_slip(bigint, text) IS 'The packing slip of a package (html or text): order reference, SSCC, ship-to, the lines and quantities in it, and what is still to follow in other packages; unknown shipment or format: 22023';

CREATE FUNCTION oms.shipping_label(shipment_id bigint, format text DEFAULT 'zpl') RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	s			oms.shipments;
	o			oms.orders;
	v_prefix	text;
	v_weight	numeric;
BEGIN
	PERFORM oms._format(format, ARRAY['zpl', 'html']);
	SELECT * INTO s FROM oms.shipments x WHERE x.tenant_id = v_tenant AND x.id = shipping_label.shipment_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown shipment %', coalesce(shipping_label.shipment_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Shipments are created by oms.pack() and listed in oms.shipments.';
	END IF;
	IF s.sscc IS NULL THEN
		RAISE EXCEPTION 'shipment % has no SSCC', s.id
			USING ERRCODE = '55000',
			      HINT = 'Set the tenant''s GS1 company prefix (oms.set_document_settings) before packing: packages get their SSCC when packed.';
	END IF;
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = s.order_id;
	SELECT d.gs1_company_prefix INTO v_prefix FROM oms.document_settings d WHERE d.tenant_id = v_tenant;
	SELECT coalesce(sum(sl.qty * i.weight), 0) INTO v_weight
	  FROM oms.shipment_lines sl
	  JOIN oms.order_lines l ON l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no
	  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
	 WHERE sl.tenant_id = v_tenant AND sl.shipment_id = s.id;
	RETURN oms._label(format, 'Order ' || o.external_id || ' / package ' || oms._package_no(v_tenant, s),
					  oms._location_lines(v_tenant, s.location_id), oms._ship_to_lines(v_tenant, o),
					  ARRAY['Service: ' || coalesce(s.carrier || '.' || s.service, 'not shipped yet'),
							'Tracking: ' || coalesce(s.tracking, '-'),
							'Weight: ' || round(v_weight, 2) || ' kg'],
					  '00' || s.sscc, true, oms._sscc_text(s.sscc, coalesce(length(v_prefix), 7)));
END
$$;
COMMENT ON FUNCTION oms.shipping_label(bigint, text) IS 'A 4x6 inch shipping label of a package in ZPL II (format zpl) or HTML with an SVG barcode (format html): ship-from, ship-to, carrier service, tracking, weight, the SSCC as GS1-128 with its text; unknown shipment or format: 22023; no SSCC: 55000';

CREATE FUNCTION oms.return_label(rma_id bigint, format text DEFAULT 'zpl') RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	r			oms.returns;
	o			oms.orders;
	v_loc		int;
	v_items		text;
BEGIN
	PERFORM oms._format(format, ARRAY['zpl', 'html']);
	SELECT * INTO r FROM oms.returns x WHERE x.tenant_id = v_tenant AND x.id = return_label.rma_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown return %', coalesce(return_label.rma_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Returns (RMAs) are created by oms.create_return() and listed in oms.returns.';
	END IF;
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = r.order_id;
	-- Back to where the goods left from: the location of the order's first shipment.
	SELECT s.location_id INTO v_loc FROM oms.shipments s
	 WHERE s.tenant_id = v_tenant AND s.order_id = o.id ORDER BY s.id LIMIT 1;
	SELECT string_agg(i.sku || ' x ' || rl.qty, ', ' ORDER BY rl.line_no) INTO v_items
	  FROM oms.return_lines rl
	  JOIN oms.order_lines l ON l.tenant_id = rl.tenant_id AND l.order_id = rl.order_id AND l.line_no = rl.line_no
	  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
	 WHERE rl.tenant_id = v_tenant AND rl.return_id = r.id;
	RETURN oms._label(format, 'RETURN RMA-' || r.id || ' / order ' || o.external_id,
					  oms._ship_to_lines(v_tenant, o), coalesce(oms._location_lines(v_tenant, v_loc), '{}'),
					  ARRAY['Return of: ' || coalesce(v_items, '-'), 'Reason: ' || left(r.reason, 60)],
					  'RMA-' || r.id, false, 'RMA-' || r.id);
END
$$;
COMMENT ON FUNCTION oms.return_label(bigint, text) IS 'The return label of an RMA in ZPL II or HTML: from the customer to the location the order shipped from, the items returned and the RMA as a Code 128 barcode; unknown RMA or format: 22023';

-- ===== sql/parts/90_security.sql
-- Privileges and backups.
--
-- PostgreSQL lets PUBLIC execute every new function; oms takes that back, so that nobody can
-- place or cancel orders, or read stock, unless granted. The only functions left to PUBLIC are the
-- support functions of the state types (input, output, comparison, hashing) and the pure functions
-- of the state machine (transition, is_legal, legal_moves, rollup): they read no table, and any role
-- that may read a state column needs them. (PUBLIC still has no USAGE on schema oms.)

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA oms FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA oms FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA oms FROM PUBLIC;

DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN
		SELECT DISTINCT p.oid::regprocedure
		  FROM pg_catalog.pg_proc p
		 WHERE p.pronamespace = 'oms'::regnamespace
		   AND (p.oid IN (SELECT t.typinput FROM pg_catalog.pg_type t WHERE t.typnamespace = 'oms'::regnamespace
						  UNION ALL SELECT t.typoutput FROM pg_catalog.pg_type t WHERE t.typnamespace = 'oms'::regnamespace
						  UNION ALL SELECT t.typreceive FROM pg_catalog.pg_type t WHERE t.typnamespace = 'oms'::regnamespace
						  UNION ALL SELECT t.typsend FROM pg_catalog.pg_type t WHERE t.typnamespace = 'oms'::regnamespace)
				OR p.oid IN (SELECT o.oprcode FROM pg_catalog.pg_operator o WHERE o.oprnamespace = 'oms'::regnamespace)
				OR p.oid IN (SELECT a.amproc FROM pg_catalog.pg_amproc a
							   JOIN pg_catalog.pg_opfamily f ON f.oid = a.amprocfamily
							  WHERE f.opfnamespace = 'oms'::regnamespace)
				-- the pure functions of the state machine: they read no table
				OR p.proname IN ('transition', 'is_legal', 'legal_moves', 'rollup', 'state_rank', 'state_code'))
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
	END LOOP;
END
$$;

-- pg_dump leaves out the rows of extension tables unless they are marked: without this, a backup
-- of an oms database would have no orders. Rows the install script itself creates are filtered.
SELECT pg_catalog.pg_extension_config_dump('oms.tenants', 'WHERE code <> ''default''');
SELECT pg_catalog.pg_extension_config_dump('oms.currencies', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('oms.channels', '');
SELECT pg_catalog.pg_extension_config_dump('oms.locations', '');
SELECT pg_catalog.pg_extension_config_dump('oms.items', '');
SELECT pg_catalog.pg_extension_config_dump('oms.stock', '');
SELECT pg_catalog.pg_extension_config_dump('oms.supply', '');
SELECT pg_catalog.pg_extension_config_dump('oms.stock_movements', '');
SELECT pg_catalog.pg_extension_config_dump('oms.orders', '');
SELECT pg_catalog.pg_extension_config_dump('oms.order_lines', '');
SELECT pg_catalog.pg_extension_config_dump('oms.reservations', '');
SELECT pg_catalog.pg_extension_config_dump('oms.order_history', '');
SELECT pg_catalog.pg_extension_config_dump('oms.events', '');
SELECT pg_catalog.pg_extension_config_dump('oms.events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('oms.event_consumers', '');
SELECT pg_catalog.pg_extension_config_dump('oms.payments', '');
SELECT pg_catalog.pg_extension_config_dump('oms.payment_operations', '');
SELECT pg_catalog.pg_extension_config_dump('oms.order_holds', '');
SELECT pg_catalog.pg_extension_config_dump('oms.shipments', '');
SELECT pg_catalog.pg_extension_config_dump('oms.shipment_lines', '');
SELECT pg_catalog.pg_extension_config_dump('oms.tracking_events', '');
SELECT pg_catalog.pg_extension_config_dump('oms.fraud_rules', '');
SELECT pg_catalog.pg_extension_config_dump('oms.pickups', '');
SELECT pg_catalog.pg_extension_config_dump('oms.delay_notices', '');
SELECT pg_catalog.pg_extension_config_dump('oms.returns', '');
SELECT pg_catalog.pg_extension_config_dump('oms.return_lines', '');
-- routing (62_shipping.sql): the built-in profiles and country centroids are the install's own
SELECT pg_catalog.pg_extension_config_dump('oms.carrier_services', '');
SELECT pg_catalog.pg_extension_config_dump('oms.routing_profiles', 'WHERE tenant_id IS NOT NULL');
SELECT pg_catalog.pg_extension_config_dump('oms.country_centroids', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('oms.location_capacity_used', '');
SELECT pg_catalog.pg_extension_config_dump('oms.line_exclusions', '');
SELECT pg_catalog.pg_extension_config_dump('oms.job_runs', '');
SELECT pg_catalog.pg_extension_config_dump('oms.job_runs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('oms.tenant_grants', '');
SELECT pg_catalog.pg_extension_config_dump('oms.store_assignments', '');
-- replenishment (80..88)
SELECT pg_catalog.pg_extension_config_dump('oms.suppliers', '');
SELECT pg_catalog.pg_extension_config_dump('oms.replenishment_policies', '');
SELECT pg_catalog.pg_extension_config_dump('oms.demand_history', '');
SELECT pg_catalog.pg_extension_config_dump('oms.demand_deltas', '');
SELECT pg_catalog.pg_extension_config_dump('oms.purchase_orders', '');
SELECT pg_catalog.pg_extension_config_dump('oms.purchase_order_lines', '');
SELECT pg_catalog.pg_extension_config_dump('oms.transfer_orders', '');
SELECT pg_catalog.pg_extension_config_dump('oms.transfer_order_lines', '');
SELECT pg_catalog.pg_extension_config_dump('oms.alerts', '');
SELECT pg_catalog.pg_extension_config_dump('oms.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('oms.subscription_runs', '');
SELECT pg_catalog.pg_extension_config_dump('oms.tax_rates', '');
SELECT pg_catalog.pg_extension_config_dump('oms.document_settings', '');
SELECT pg_catalog.pg_extension_config_dump('oms.document_counters', '');
SELECT pg_catalog.pg_extension_config_dump('oms.invoices', '');
SELECT pg_catalog.pg_extension_config_dump('oms.invoice_lines', '');
SELECT pg_catalog.pg_extension_config_dump('oms.sscc_serial_seq', '');

-- ===== sql/parts/95_bi_summaries.sql
-- Reporting for BI tools (issue 9), part 1: exchange rates, the reporting currency and the daily
-- sales summary that the views of schema oms_bi (95_bi_views.sql) read.
--
-- The summary is kept like demand history (80_demand_history.sql), and for the same reason: a row
-- that every order updates is a hot row, and place_order must keep its throughput. So:
--   oms.bi_sales_deltas  append-only: statement triggers on order_lines (with transition tables)
--                        insert one row per summary key a statement changed; nothing is updated,
--                        so no order waits for another one here;
--   oms.bi_sales_daily   the summary: oms.compact_bi_sales() folds the deltas into it (schedule it,
--                        e.g. every minute with pg_cron; see the README).
-- The views read both (summary + deltas not yet folded), so they are exact as of the last commit:
-- compaction changes how fast they answer, never what they say.
--
-- Grain of a summary row: tenant, UTC day of placement, channel, the line's location (NULL: not
-- assigned, a backorder), SKU, the order's currency, ship-to country, seller and source page (the
-- order attributes "seller" and "source_page") as they were when the lines were written.
-- "orders" counts each order once, on the row of its line 1; every other counter counts lines or
-- units. "lines_backordered" counts lines that were backordered when placed (the INSERT trigger
-- only), on the row of the location they had then (NULL): fill and backorder rates are exact per
-- day and channel across locations.

CREATE TABLE oms.exchange_rates (
	rate_date		date NOT NULL,
	from_currency	char(3) NOT NULL REFERENCES oms.currencies,
	to_currency		char(3) NOT NULL REFERENCES oms.currencies,
	rate			numeric NOT NULL CHECK (rate > 0),
	PRIMARY KEY (rate_date, from_currency, to_currency),
	CHECK (from_currency <> to_currency)
);
COMMENT ON TABLE oms.exchange_rates IS 'Exchange rates per day: 1 unit of from_currency = rate units of to_currency; the BI views convert an order''s money with the rate of its UTC day of placement, and show NULL (counted in oms_bi.data_quality) when that rate is missing';
COMMENT ON COLUMN oms.exchange_rates.rate_date IS 'Day the rate applies to (orders placed that UTC day)';
COMMENT ON COLUMN oms.exchange_rates.rate IS 'Units of to_currency for one unit of from_currency';

CREATE FUNCTION oms.reporting_currency() RETURNS char(3)
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN upper(coalesce(nullif(pg_catalog.current_setting('oms_bi.reporting_currency', true), ''), 'EUR'))::char(3);
COMMENT ON FUNCTION oms.reporting_currency() IS 'The currency the BI views report money in: the setting oms_bi.reporting_currency (e.g. ALTER ROLE bi SET oms_bi.reporting_currency = ''USD''), else EUR';

CREATE FUNCTION oms.bi_today() RETURNS date
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN coalesce(nullif(pg_catalog.current_setting('oms.today', true), '')::date, CURRENT_DATE);
COMMENT ON FUNCTION oms.bi_today() IS 'Today for the BI views'' rolling periods: the setting oms.today when set, else the current date';

CREATE FUNCTION oms.bi_rate(p_day date, p_currency char(3)) RETURNS numeric
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN CASE WHEN p_currency = oms.reporting_currency() THEN 1::numeric
				ELSE (SELECT r.rate FROM oms.exchange_rates r
					   WHERE r.rate_date = p_day AND r.from_currency = p_currency
						 AND r.to_currency = oms.reporting_currency()) END;
COMMENT ON FUNCTION oms.bi_rate(date, char) IS 'Rate from a currency to the reporting currency on a day: 1 for the reporting currency itself, NULL when oms.exchange_rates has no rate for that day (never a guessed 1.0)';

CREATE TABLE oms.bi_sales_daily (
	tenant_id			int NOT NULL,
	day					date NOT NULL,
	channel_id			int NOT NULL,
	location_id			int,
	item_id				int NOT NULL,
	currency			char(3) NOT NULL,
	country				text,
	seller				text,
	page				text,
	orders				bigint NOT NULL DEFAULT 0,
	lines				bigint NOT NULL DEFAULT 0,
	lines_backordered	bigint NOT NULL DEFAULT 0,
	units				bigint NOT NULL DEFAULT 0,
	units_cancelled		bigint NOT NULL DEFAULT 0,
	units_shipped		bigint NOT NULL DEFAULT 0,
	units_returned		bigint NOT NULL DEFAULT 0,
	gross				numeric NOT NULL DEFAULT 0,
	cancelled_value		numeric NOT NULL DEFAULT 0,
	returned_value		numeric NOT NULL DEFAULT 0,
	CONSTRAINT bi_sales_daily_key UNIQUE NULLS NOT DISTINCT
		(tenant_id, day, channel_id, location_id, item_id, currency, country, seller, page)
);
COMMENT ON TABLE oms.bi_sales_daily IS 'Daily sales summary for BI per tenant, UTC day of placement, channel, line location, SKU, currency, country, seller and page; add oms.bi_sales_deltas (the views do) for the changes not yet compacted';
COMMENT ON COLUMN oms.bi_sales_daily.orders IS 'Orders, each counted once on the row of its line 1';
COMMENT ON COLUMN oms.bi_sales_daily.lines_backordered IS 'Lines backordered when placed (no location had the stock), counted at placement only';
COMMENT ON COLUMN oms.bi_sales_daily.gross IS 'Sum of qty * unit_price in the order currency';
COMMENT ON COLUMN oms.bi_sales_daily.cancelled_value IS 'Sum of qty_cancelled * unit_price in the order currency';
COMMENT ON COLUMN oms.bi_sales_daily.returned_value IS 'Sum of qty_returned * unit_price in the order currency';

CREATE TABLE oms.bi_sales_deltas (
	tenant_id			int NOT NULL,
	day					date NOT NULL,
	channel_id			int NOT NULL,
	location_id			int,
	item_id				int NOT NULL,
	currency			char(3) NOT NULL,
	country				text,
	seller				text,
	page				text,
	orders				bigint NOT NULL,
	lines				bigint NOT NULL,
	lines_backordered	bigint NOT NULL,
	units				bigint NOT NULL,
	units_cancelled		bigint NOT NULL,
	units_shipped		bigint NOT NULL,
	units_returned		bigint NOT NULL,
	gross				numeric NOT NULL,
	cancelled_value		numeric NOT NULL,
	returned_value		numeric NOT NULL
);
CREATE INDEX bi_sales_deltas_day_idx ON oms.bi_sales_deltas (tenant_id, day);
CREATE INDEX bi_sales_daily_day_idx ON oms.bi_sales_daily (tenant_id, day);
COMMENT ON TABLE oms.bi_sales_deltas IS 'Append-only changes of the BI sales summary written by the order_lines triggers, not yet folded into oms.bi_sales_daily by oms.compact_bi_sales()';

-- The triggers spell out the day expression (a function with a pinned search_path is not inlined).
CREATE FUNCTION oms._bi_lines_inserted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.bi_sales_deltas
	SELECT n.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, n.location_id, n.item_id, o.currency,
		   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
		   pg_catalog.count(*) FILTER (WHERE n.line_no = 1), pg_catalog.count(*),
		   pg_catalog.count(*) FILTER (WHERE n.state = 'backordered'),
		   pg_catalog.sum(n.qty), pg_catalog.sum(n.qty_cancelled), pg_catalog.sum(n.qty_shipped), pg_catalog.sum(n.qty_returned),
		   pg_catalog.sum(n.qty * n.unit_price), pg_catalog.sum(n.qty_cancelled * n.unit_price),
		   pg_catalog.sum(n.qty_returned * n.unit_price)
	  FROM new_lines n
	  JOIN oms.orders o ON o.tenant_id = n.tenant_id AND o.id = n.order_id
	 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_inserted() IS 'Internal: statement trigger on order_lines INSERT: adds the new lines to oms.bi_sales_deltas';

CREATE FUNCTION oms._bi_lines_updated() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.bi_sales_deltas
	SELECT c.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, c.location_id, c.item_id, o.currency,
		   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
		   pg_catalog.sum(c.orders), pg_catalog.sum(c.lines), 0,
		   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_shipped), pg_catalog.sum(c.qty_returned),
		   pg_catalog.sum(c.gross), pg_catalog.sum(c.cancelled_value), pg_catalog.sum(c.returned_value)
	  FROM (SELECT n.tenant_id, n.order_id, n.item_id, n.location_id, (n.line_no = 1)::int::bigint AS orders, 1::bigint AS lines,
				   n.qty::bigint AS qty, n.qty_cancelled::bigint AS qty_cancelled, n.qty_shipped::bigint AS qty_shipped,
				   n.qty_returned::bigint AS qty_returned, n.qty * n.unit_price AS gross,
				   n.qty_cancelled * n.unit_price AS cancelled_value, n.qty_returned * n.unit_price AS returned_value
			  FROM new_lines n
			UNION ALL
			SELECT d.tenant_id, d.order_id, d.item_id, d.location_id, -(d.line_no = 1)::int::bigint, -1,
				   -d.qty, -d.qty_cancelled, -d.qty_shipped, -d.qty_returned, -(d.qty * d.unit_price),
				   -(d.qty_cancelled * d.unit_price), -(d.qty_returned * d.unit_price)
			  FROM old_lines d) c
	  JOIN oms.orders o ON o.tenant_id = c.tenant_id AND o.id = c.order_id
	 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
	HAVING pg_catalog.sum(c.orders) <> 0 OR pg_catalog.sum(c.lines) <> 0 OR pg_catalog.sum(c.qty) <> 0
		OR pg_catalog.sum(c.qty_cancelled) <> 0 OR pg_catalog.sum(c.qty_shipped) <> 0
		OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.gross) <> 0;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_updated() IS 'Internal: statement trigger on order_lines UPDATE: writes to oms.bi_sales_deltas the net change of quantities, prices or location; a pure state change writes nothing';

CREATE FUNCTION oms._bi_lines_deleted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.bi_sales_deltas
	SELECT d.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, d.location_id, d.item_id, o.currency,
		   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
		   -pg_catalog.count(*) FILTER (WHERE d.line_no = 1), -pg_catalog.count(*), 0,
		   -pg_catalog.sum(d.qty), -pg_catalog.sum(d.qty_cancelled), -pg_catalog.sum(d.qty_shipped), -pg_catalog.sum(d.qty_returned),
		   -pg_catalog.sum(d.qty * d.unit_price), -pg_catalog.sum(d.qty_cancelled * d.unit_price),
		   -pg_catalog.sum(d.qty_returned * d.unit_price)
	  FROM old_lines d
	  JOIN oms.orders o ON o.tenant_id = d.tenant_id AND o.id = d.order_id
	 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_deleted() IS 'Internal: statement trigger on order_lines DELETE: takes the deleted lines out of the BI sales summary';

CREATE TRIGGER bi_lines_inserted AFTER INSERT ON oms.order_lines
	REFERENCING NEW TABLE AS new_lines
	FOR EACH STATEMENT EXECUTE FUNCTION oms._bi_lines_inserted();
COMMENT ON TRIGGER bi_lines_inserted ON oms.order_lines IS 'Keeps the BI sales summary: new lines count on their order''s day';
CREATE TRIGGER bi_lines_updated AFTER UPDATE ON oms.order_lines
	REFERENCING OLD TABLE AS old_lines NEW TABLE AS new_lines
	FOR EACH STATEMENT EXECUTE FUNCTION oms._bi_lines_updated();
COMMENT ON TRIGGER bi_lines_updated ON oms.order_lines IS 'Keeps the BI sales summary: cancelled, shipped and returned quantities and a line''s new location';
CREATE TRIGGER bi_lines_deleted AFTER DELETE ON oms.order_lines
	REFERENCING OLD TABLE AS old_lines
	FOR EACH STATEMENT EXECUTE FUNCTION oms._bi_lines_deleted();
COMMENT ON TRIGGER bi_lines_deleted ON oms.order_lines IS 'Keeps the BI sales summary: deleted lines no longer count';

-- The second level: per day, the sales of each value of each report dimension (channel with its
-- location, product, brand, category, country, seller, page), recomputed from oms.bi_sales_daily
-- for the days a compaction touched. The line-grain summary above has about one row per line of
-- a day; a 30-day top-N or KPI query reads this one instead (a few thousand rows a day at most).
CREATE TABLE oms.bi_sales_rollup (
	tenant_id			int NOT NULL,
	day					date NOT NULL,
	dimension			text NOT NULL CHECK (dimension IN ('channel', 'product', 'brand', 'category', 'country', 'seller', 'page')),
	key					text,
	label				text,
	location_id			int,
	currency			char(3) NOT NULL,
	orders				bigint NOT NULL,
	lines				bigint NOT NULL,
	lines_backordered	bigint NOT NULL,
	units				bigint NOT NULL,
	units_cancelled		bigint NOT NULL,
	units_shipped		bigint NOT NULL,
	units_returned		bigint NOT NULL,
	revenue				numeric NOT NULL,
	returned_value		numeric NOT NULL,
	CONSTRAINT bi_sales_rollup_key UNIQUE NULLS NOT DISTINCT (tenant_id, dimension, day, key, location_id, currency)
);
COMMENT ON TABLE oms.bi_sales_rollup IS 'BI sales per tenant, UTC day and value of a report dimension (channel and location, product, brand, category, country, seller, page) and currency, recomputed from oms.bi_sales_daily for the days each compaction touches';
COMMENT ON COLUMN oms.bi_sales_rollup.key IS 'Channel code, SKU, brand, category, country, seller or page (NULL: none)';
COMMENT ON COLUMN oms.bi_sales_rollup.label IS 'Item name for products, else the key';
COMMENT ON COLUMN oms.bi_sales_rollup.location_id IS 'Location of the lines for dimension channel; NULL otherwise';
COMMENT ON COLUMN oms.bi_sales_rollup.revenue IS 'Units not cancelled at their price, in the currency';

CREATE FUNCTION oms._bi_rollup_days(p_tenant int, p_days date[]) RETURNS void
	LANGUAGE sql
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	DELETE FROM oms.bi_sales_rollup r WHERE r.tenant_id = p_tenant AND (p_days IS NULL OR r.day = ANY (p_days));
	INSERT INTO oms.bi_sales_rollup
	SELECT h.tenant_id, h.day,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN 'channel' WHEN GROUPING(i.sku) = 0 THEN 'product'
				WHEN GROUPING(i.brand) = 0 THEN 'brand' WHEN GROUPING(i.category) = 0 THEN 'category'
				WHEN GROUPING(h.country) = 0 THEN 'country' WHEN GROUPING(h.seller) = 0 THEN 'seller' ELSE 'page' END,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN c.code WHEN GROUPING(i.sku) = 0 THEN i.sku
				WHEN GROUPING(i.brand) = 0 THEN i.brand WHEN GROUPING(i.category) = 0 THEN i.category
				WHEN GROUPING(h.country) = 0 THEN h.country WHEN GROUPING(h.seller) = 0 THEN h.seller ELSE h.page END,
		   CASE WHEN GROUPING(i.sku) = 0 THEN max(i.name)
				WHEN GROUPING(c.code, h.location_id) = 0 THEN c.code WHEN GROUPING(i.brand) = 0 THEN i.brand
				WHEN GROUPING(i.category) = 0 THEN i.category WHEN GROUPING(h.country) = 0 THEN h.country
				WHEN GROUPING(h.seller) = 0 THEN h.seller ELSE h.page END,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN h.location_id END,
		   h.currency, sum(h.orders), sum(h.lines), sum(h.lines_backordered), sum(h.units), sum(h.units_cancelled),
		   sum(h.units_shipped), sum(h.units_returned), sum(h.gross - h.cancelled_value), sum(h.returned_value)
	  FROM oms.bi_sales_daily h
	  JOIN oms.items i ON i.tenant_id = h.tenant_id AND i.id = h.item_id
	  JOIN oms.channels c ON c.tenant_id = h.tenant_id AND c.id = h.channel_id
	 WHERE h.tenant_id = p_tenant AND (p_days IS NULL OR h.day = ANY (p_days))
	 GROUP BY h.tenant_id, h.day, h.currency,
		   GROUPING SETS ((c.code, h.location_id), (i.sku), (i.brand), (i.category), (h.country), (h.seller), (h.page))
	HAVING sum(h.lines) <> 0;
END;
COMMENT ON FUNCTION oms._bi_rollup_days(int, date[]) IS 'Internal: recomputes a tenant''s oms.bi_sales_rollup for the given days (all days when NULL) from oms.bi_sales_daily';

CREATE FUNCTION oms.compact_bi_sales() RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_rows		bigint;
	v_days		date[];
BEGIN
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('oms.bi_sales_daily'), v_tenant);
	-- One statement: it adds exactly the deltas it deletes (later commits stay for the next run).
	WITH moved AS (
		DELETE FROM oms.bi_sales_deltas d WHERE d.tenant_id = v_tenant RETURNING d.*
	), summed AS (
		SELECT m.tenant_id, m.day, m.channel_id, m.location_id, m.item_id, m.currency, m.country, m.seller, m.page,
			   sum(m.orders) AS orders, sum(m.lines) AS lines, sum(m.lines_backordered) AS lines_backordered,
			   sum(m.units) AS units, sum(m.units_cancelled) AS units_cancelled, sum(m.units_shipped) AS units_shipped,
			   sum(m.units_returned) AS units_returned, sum(m.gross) AS gross, sum(m.cancelled_value) AS cancelled_value,
			   sum(m.returned_value) AS returned_value, count(*) AS deltas
		  FROM moved m
		 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
	), upserted AS (
		INSERT INTO oms.bi_sales_daily AS h
		SELECT s.tenant_id, s.day, s.channel_id, s.location_id, s.item_id, s.currency, s.country, s.seller, s.page,
			   s.orders, s.lines, s.lines_backordered, s.units, s.units_cancelled, s.units_shipped, s.units_returned,
			   s.gross, s.cancelled_value, s.returned_value
		  FROM summed s
		ON CONFLICT ON CONSTRAINT bi_sales_daily_key DO UPDATE
		   SET orders = h.orders + EXCLUDED.orders, lines = h.lines + EXCLUDED.lines,
			   lines_backordered = h.lines_backordered + EXCLUDED.lines_backordered,
			   units = h.units + EXCLUDED.units, units_cancelled = h.units_cancelled + EXCLUDED.units_cancelled,
			   units_shipped = h.units_shipped + EXCLUDED.units_shipped,
			   units_returned = h.units_returned + EXCLUDED.units_returned, gross = h.gross + EXCLUDED.gross,
			   cancelled_value = h.cancelled_value + EXCLUDED.cancelled_value,
			   returned_value = h.returned_value + EXCLUDED.returned_value
		RETURNING 1
	)
	SELECT coalesce(sum(s.deltas), 0), array_agg(DISTINCT s.day) INTO v_rows, v_days FROM summed s;
	IF v_days IS NOT NULL THEN
		PERFORM oms._bi_rollup_days(v_tenant, v_days);
	END IF;
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms.compact_bi_sales() IS 'Folds the current tenant''s oms.bi_sales_deltas into oms.bi_sales_daily; returns the number of deltas folded (schedule it, e.g. every minute with pg_cron)';

CREATE FUNCTION oms.rebuild_bi_sales() RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_rows		bigint;
BEGIN
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('oms.bi_sales_daily'), v_tenant);
	DELETE FROM oms.bi_sales_daily h WHERE h.tenant_id = v_tenant;
	-- One snapshot: orders committed before are counted from their lines and their deltas deleted.
	-- Backorders at placement come from the lines' first state in order_history.
	WITH gone AS (
		DELETE FROM oms.bi_sales_deltas d WHERE d.tenant_id = v_tenant RETURNING 1
	)
	INSERT INTO oms.bi_sales_daily
	SELECT l.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, l.location_id, l.item_id, o.currency,
		   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
		   count(*) FILTER (WHERE l.line_no = 1), count(*),
		   count(*) FILTER (WHERE EXISTS (SELECT FROM oms.order_history h
										   WHERE h.tenant_id = l.tenant_id AND h.order_id = l.order_id
											 AND h.line_no = l.line_no AND h.from_state IS NULL
											 AND h.to_state = 'backordered')),
		   sum(l.qty), sum(l.qty_cancelled), sum(l.qty_shipped), sum(l.qty_returned),
		   sum(l.qty * l.unit_price), sum(l.qty_cancelled * l.unit_price), sum(l.qty_returned * l.unit_price)
	  FROM oms.orders o
	  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
	 WHERE o.tenant_id = v_tenant
	 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	PERFORM oms._bi_rollup_days(v_tenant, NULL);
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms.rebuild_bi_sales() IS 'Recomputes the current tenant''s BI sales summary from its orders, lines and history (backorders at placement); returns the number of summary rows written';

-- Shipments are reported by the UTC day they shipped.
CREATE INDEX bi_shipments_day_idx ON oms.shipments (tenant_id, ((shipped_at AT TIME ZONE 'UTC')::date))
	WHERE shipped_at IS NOT NULL;

REVOKE ALL ON oms.exchange_rates, oms.bi_sales_daily, oms.bi_sales_deltas, oms.bi_sales_rollup FROM PUBLIC;
REVOKE ALL ON FUNCTION oms.reporting_currency(), oms.bi_today(), oms.bi_rate(date, char), oms._bi_lines_inserted(),
	oms._bi_lines_updated(), oms._bi_lines_deleted(), oms.compact_bi_sales(), oms.rebuild_bi_sales(), oms._bi_rollup_days(int, date[]) FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('oms.exchange_rates', '');
SELECT pg_catalog.pg_extension_config_dump('oms.bi_sales_daily', '');
SELECT pg_catalog.pg_extension_config_dump('oms.bi_sales_deltas', '');
SELECT pg_catalog.pg_extension_config_dump('oms.bi_sales_rollup', '');

-- ===== sql/parts/96_bi_views.sql
-- Reporting for BI tools (issue 9), part 2: schema oms_bi, its views and oms_bi.top().
--
-- Every view shows the current tenant's rows only (setting oms.tenant; give a BI login its tenant
-- with ALTER ROLE ... SET oms.tenant). Money is in the order's currency and, in the *_reporting
-- columns, in the reporting currency (oms.reporting_currency()) at the rate of the order's UTC day;
-- a missing rate gives NULL there, and a row in oms_bi.data_quality. Customer contact data (name,
-- e-mail, phone, street) is masked unless the user is a member of oms_operator or oms_admin.
--
-- Freshness: every view is exact as of the last commit. oms_bi.sales_daily, kpis_daily and top()
-- (but customer and order) read the daily summary plus its not yet compacted deltas; the fact
-- views read the tables.

CREATE SCHEMA oms_bi;
COMMENT ON SCHEMA oms_bi IS 'oms reporting for BI tools: facts, daily sales, KPIs, top-N reports (README: data dictionary)';
REVOKE ALL ON SCHEMA oms_bi FROM PUBLIC;

CREATE FUNCTION oms.bi_tenant_id() RETURNS int
	LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
	SET search_path = oms, pg_catalog
	RETURN oms.current_tenant_id();
COMMENT ON FUNCTION oms.bi_tenant_id() IS 'The current tenant''s id for the BI views, looked up with the rights of oms (a BI login has no access to schema oms)';

CREATE FUNCTION oms.bi_unmasked() RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN pg_catalog.pg_has_role(CURRENT_USER, 'oms_operator', 'USAGE')
		OR pg_catalog.pg_has_role(CURRENT_USER, 'oms_admin', 'USAGE');
COMMENT ON FUNCTION oms.bi_unmasked() IS 'Whether the BI views show customer contact data in clear: the user is a member of oms_operator or oms_admin (not of oms_reader alone)';

CREATE FUNCTION oms.bi_mask_name(p_name text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
	SET search_path = oms, pg_catalog
	RETURN (SELECT pg_catalog.string_agg(pg_catalog.upper(pg_catalog.left(w, 1)) || '.', ' ' ORDER BY n)
			  FROM pg_catalog.regexp_split_to_table(pg_catalog.btrim(p_name), '\s+') WITH ORDINALITY AS t(w, n)
			 WHERE w <> '');
COMMENT ON FUNCTION oms.bi_mask_name(text) IS 'A customer name as the BI views show it masked: its initials ("Jane Doe" -> "J. D.")';

CREATE FUNCTION oms.bi_mask_email(p_email text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
	SET search_path = oms, pg_catalog
	RETURN pg_catalog.left(p_email, 1) || '***'
		|| CASE WHEN pg_catalog.strpos(p_email, '@') > 0 THEN pg_catalog.substr(p_email, pg_catalog.strpos(p_email, '@')) ELSE '' END;
COMMENT ON FUNCTION oms.bi_mask_email(text) IS 'An e-mail address as the BI views show it masked: first character and domain ("jane@example.com" -> "j***@example.com")';

-- ----- facts

CREATE VIEW oms_bi.orders AS
SELECT o.id AS order_id, o.external_id, (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.placed_at,
	   c.code AS channel, c.kind AS channel_kind, o.state::text AS state,
	   o.customer_ref AS customer,
	   CASE WHEN oms.bi_unmasked() THEN o.customer_name ELSE oms.bi_mask_name(o.customer_name) END AS customer_name,
	   CASE WHEN oms.bi_unmasked() THEN o.customer_email ELSE oms.bi_mask_email(o.customer_email) END AS customer_email,
	   CASE WHEN oms.bi_unmasked() THEN o.customer_phone
			WHEN o.customer_phone IS NOT NULL THEN '***' || pg_catalog.right(o.customer_phone, 2) END AS customer_phone,
	   CASE WHEN oms.bi_unmasked() THEN o.ship_to ->> 'line1' WHEN o.ship_to ? 'line1' THEN '***' END AS ship_street,
	   o.ship_country AS country, o.ship_city AS city, pl.code AS pickup_location,
	   o.attributes ->> 'seller' AS seller, o.attributes ->> 'source_page' AS page,
	   o.currency::text AS currency, o.subtotal, o.shipping_amount, o.total,
	   o.total * r.rate AS total_reporting, p.rc::text AS reporting_currency
  FROM oms.orders o
  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
  LEFT JOIN oms.locations pl ON pl.tenant_id = o.tenant_id AND pl.id = o.pickup_location_id
 CROSS JOIN (SELECT oms.reporting_currency() AS rc OFFSET 0) p
  LEFT JOIN LATERAL (SELECT CASE WHEN o.currency = p.rc THEN 1::numeric
								 ELSE (SELECT x.rate FROM oms.exchange_rates x
										WHERE x.rate_date = (o.placed_at AT TIME ZONE 'UTC')::date
										  AND x.from_currency = o.currency AND x.to_currency = p.rc) END AS rate) r ON true
 WHERE o.tenant_id = (SELECT oms.bi_tenant_id());
COMMENT ON VIEW oms_bi.orders IS 'Fact: one row per order of the current tenant, with channel, customer (contact data masked for oms_reader), country, seller, page and totals in the order and the reporting currency';
COMMENT ON COLUMN oms_bi.orders.order_id IS 'Order id (oms.orders.id)';
COMMENT ON COLUMN oms_bi.orders.external_id IS 'The channel''s order number';
COMMENT ON COLUMN oms_bi.orders.day IS 'UTC day the order was placed';
COMMENT ON COLUMN oms_bi.orders.placed_at IS 'When the order was placed (filter on it to use the index)';
COMMENT ON COLUMN oms_bi.orders.channel IS 'Code of the sales channel';
COMMENT ON COLUMN oms_bi.orders.channel_kind IS 'Kind of the channel: web, marketplace, pos, app, social, call_centre';
COMMENT ON COLUMN oms_bi.orders.state IS 'Order state (rollup of its lines)';
COMMENT ON COLUMN oms_bi.orders.customer IS 'Customer reference given at placement';
COMMENT ON COLUMN oms_bi.orders.customer_name IS 'Customer name; initials only for oms_reader';
COMMENT ON COLUMN oms_bi.orders.customer_email IS 'Customer e-mail; first character and domain only for oms_reader';
COMMENT ON COLUMN oms_bi.orders.customer_phone IS 'Customer phone; last two digits only for oms_reader';
COMMENT ON COLUMN oms_bi.orders.ship_street IS 'Street line of the ship-to address; *** for oms_reader';
COMMENT ON COLUMN oms_bi.orders.country IS 'Ship-to country (ISO 3166 alpha-2)';
COMMENT ON COLUMN oms_bi.orders.city IS 'Ship-to city';
COMMENT ON COLUMN oms_bi.orders.pickup_location IS 'Store of a click & collect order';
COMMENT ON COLUMN oms_bi.orders.seller IS 'Seller: the order attribute "seller" (channel seller or store associate)';
COMMENT ON COLUMN oms_bi.orders.page IS 'Landing or referring page: the order attribute "source_page"';
COMMENT ON COLUMN oms_bi.orders.currency IS 'Currency of the order''s money';
COMMENT ON COLUMN oms_bi.orders.subtotal IS 'Sum of the lines at placement, order currency';
COMMENT ON COLUMN oms_bi.orders.shipping_amount IS 'Shipping charged, order currency';
COMMENT ON COLUMN oms_bi.orders.total IS 'Subtotal plus shipping, order currency';
COMMENT ON COLUMN oms_bi.orders.total_reporting IS 'Total in the reporting currency at the rate of the order''s day; NULL when the rate is missing';
COMMENT ON COLUMN oms_bi.orders.reporting_currency IS 'The reporting currency (setting oms.reporting_currency)';

CREATE VIEW oms_bi.order_lines AS
SELECT l.order_id, l.line_no, o.external_id, (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.placed_at,
	   c.code AS channel, lo.code AS location, i.sku, i.name AS item_name, i.brand, i.category,
	   o.customer_ref AS customer,
	   CASE WHEN oms.bi_unmasked() THEN o.customer_name ELSE oms.bi_mask_name(o.customer_name) END AS customer_name,
	   o.ship_country AS country, o.attributes ->> 'seller' AS seller, o.attributes ->> 'source_page' AS page,
	   l.state::text AS state, l.promised_date, l.qty, l.qty_cancelled, l.qty_shipped, l.qty_delivered, l.qty_returned,
	   l.unit_price, (l.qty - l.qty_cancelled) * l.unit_price AS revenue, o.currency::text AS currency,
	   (l.qty - l.qty_cancelled) * l.unit_price * r.rate AS revenue_reporting, p.rc::text AS reporting_currency
  FROM oms.order_lines l
  JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
  LEFT JOIN oms.locations lo ON lo.tenant_id = l.tenant_id AND lo.id = l.location_id
 CROSS JOIN (SELECT oms.reporting_currency() AS rc OFFSET 0) p
  LEFT JOIN LATERAL (SELECT CASE WHEN o.currency = p.rc THEN 1::numeric
								 ELSE (SELECT x.rate FROM oms.exchange_rates x
										WHERE x.rate_date = (o.placed_at AT TIME ZONE 'UTC')::date
										  AND x.from_currency = o.currency AND x.to_currency = p.rc) END AS rate) r ON true
 WHERE l.tenant_id = (SELECT oms.bi_tenant_id());
COMMENT ON VIEW oms_bi.order_lines IS 'Fact: one row per order line of the current tenant, with its order''s day, channel, customer, country, seller and page and its SKU, brand, category, location and quantity buckets';
COMMENT ON COLUMN oms_bi.order_lines.order_id IS 'Order id';
COMMENT ON COLUMN oms_bi.order_lines.line_no IS 'Line number in the order';
COMMENT ON COLUMN oms_bi.order_lines.external_id IS 'The channel''s order number';
COMMENT ON COLUMN oms_bi.order_lines.day IS 'UTC day the order was placed';
COMMENT ON COLUMN oms_bi.order_lines.placed_at IS 'When the order was placed';
COMMENT ON COLUMN oms_bi.order_lines.channel IS 'Code of the sales channel';
COMMENT ON COLUMN oms_bi.order_lines.location IS 'Code of the location serving the line; NULL while backordered';
COMMENT ON COLUMN oms_bi.order_lines.sku IS 'SKU of the item';
COMMENT ON COLUMN oms_bi.order_lines.item_name IS 'Name of the item';
COMMENT ON COLUMN oms_bi.order_lines.brand IS 'Brand of the item (oms.items.brand)';
COMMENT ON COLUMN oms_bi.order_lines.category IS 'Category of the item (oms.items.category)';
COMMENT ON COLUMN oms_bi.order_lines.customer IS 'Customer reference of the order';
COMMENT ON COLUMN oms_bi.order_lines.customer_name IS 'Customer name; initials only for oms_reader';
COMMENT ON COLUMN oms_bi.order_lines.country IS 'Ship-to country of the order';
COMMENT ON COLUMN oms_bi.order_lines.seller IS 'Order attribute "seller"';
COMMENT ON COLUMN oms_bi.order_lines.page IS 'Order attribute "source_page"';
COMMENT ON COLUMN oms_bi.order_lines.state IS 'Line state';
COMMENT ON COLUMN oms_bi.order_lines.promised_date IS 'Date promised to the customer for the line';
COMMENT ON COLUMN oms_bi.order_lines.qty IS 'Units ordered';
COMMENT ON COLUMN oms_bi.order_lines.qty_cancelled IS 'Units cancelled';
COMMENT ON COLUMN oms_bi.order_lines.qty_shipped IS 'Units shipped';
COMMENT ON COLUMN oms_bi.order_lines.qty_delivered IS 'Units delivered';
COMMENT ON COLUMN oms_bi.order_lines.qty_returned IS 'Units returned (received back)';
COMMENT ON COLUMN oms_bi.order_lines.unit_price IS 'Price of one unit, order currency';
COMMENT ON COLUMN oms_bi.order_lines.revenue IS 'Units not cancelled times the unit price, order currency (returns not deducted)';
COMMENT ON COLUMN oms_bi.order_lines.currency IS 'Currency of the order';
COMMENT ON COLUMN oms_bi.order_lines.revenue_reporting IS 'Revenue in the reporting currency; NULL when the rate of the day is missing';
COMMENT ON COLUMN oms_bi.order_lines.reporting_currency IS 'The reporting currency';

CREATE VIEW oms_bi.shipments AS
SELECT s.id AS shipment_id, s.order_id, (s.shipped_at AT TIME ZONE 'UTC')::date AS day, lo.code AS location,
	   c.code AS channel, s.carrier, s.service, s.state, s.packed_at, s.shipped_at, s.delivered_at,
	   sl.promised_date,
	   CASE WHEN s.shipped_at IS NOT NULL AND sl.promised_date IS NOT NULL
			THEN (s.shipped_at AT TIME ZONE 'UTC')::date <= sl.promised_date END AS on_time,
	   pg_catalog.round((EXTRACT(epoch FROM s.shipped_at - o.placed_at) / 3600)::numeric, 1) AS hours_to_ship,
	   pg_catalog.round((EXTRACT(epoch FROM s.delivered_at - o.placed_at) / 3600)::numeric, 1) AS hours_to_deliver,
	   sl.units
  FROM oms.shipments s
  JOIN oms.orders o ON o.tenant_id = s.tenant_id AND o.id = s.order_id
  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
  JOIN oms.locations lo ON lo.tenant_id = s.tenant_id AND lo.id = s.location_id
 CROSS JOIN LATERAL (SELECT pg_catalog.min(l.promised_date) AS promised_date, pg_catalog.sum(x.qty)::bigint AS units
					   FROM oms.shipment_lines x
					   JOIN oms.order_lines l ON l.tenant_id = x.tenant_id AND l.order_id = x.order_id AND l.line_no = x.line_no
					  WHERE x.tenant_id = s.tenant_id AND x.shipment_id = s.id) sl
 WHERE s.tenant_id = (SELECT oms.bi_tenant_id());
COMMENT ON VIEW oms_bi.shipments IS 'Fact: one row per shipment (package) of the current tenant: location, channel, carrier, times, promised date, on time or not, hours from placement to shipment and to delivery';
COMMENT ON COLUMN oms_bi.shipments.shipment_id IS 'Shipment id';
COMMENT ON COLUMN oms_bi.shipments.order_id IS 'Order id';
COMMENT ON COLUMN oms_bi.shipments.day IS 'UTC day the shipment left (NULL while packed)';
COMMENT ON COLUMN oms_bi.shipments.location IS 'Code of the shipping location';
COMMENT ON COLUMN oms_bi.shipments.channel IS 'Code of the order''s channel';
COMMENT ON COLUMN oms_bi.shipments.carrier IS 'Carrier';
COMMENT ON COLUMN oms_bi.shipments.service IS 'Carrier service';
COMMENT ON COLUMN oms_bi.shipments.state IS 'packed, shipped, in_transit, out_for_delivery, exception, delivered';
COMMENT ON COLUMN oms_bi.shipments.packed_at IS 'When it was packed';
COMMENT ON COLUMN oms_bi.shipments.shipped_at IS 'When it left';
COMMENT ON COLUMN oms_bi.shipments.delivered_at IS 'When it was delivered';
COMMENT ON COLUMN oms_bi.shipments.promised_date IS 'Earliest promised date of the lines in it';
COMMENT ON COLUMN oms_bi.shipments.on_time IS 'Shipped (UTC day) on or before the promised date; NULL when not shipped or nothing was promised';
COMMENT ON COLUMN oms_bi.shipments.hours_to_ship IS 'Hours from placement to shipment';
COMMENT ON COLUMN oms_bi.shipments.hours_to_deliver IS 'Hours from placement to delivery';
COMMENT ON COLUMN oms_bi.shipments.units IS 'Units in the shipment';

CREATE VIEW oms_bi.returns AS
SELECT r.id AS rma, r.order_id, (r.created_at AT TIME ZONE 'UTC')::date AS day, c.code AS channel, r.reason, r.state,
	   rl.units, rl.units_received, rl.restocked, rl.damaged, rl.to_vendor,
	   r.refund_amount, o.currency::text AS currency
  FROM oms.returns r
  JOIN oms.orders o ON o.tenant_id = r.tenant_id AND o.id = r.order_id
  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
 CROSS JOIN LATERAL (SELECT pg_catalog.sum(x.qty)::bigint AS units, pg_catalog.sum(x.qty_received)::bigint AS units_received,
							pg_catalog.sum(x.restocked)::bigint AS restocked, pg_catalog.sum(x.damaged)::bigint AS damaged,
							pg_catalog.sum(x.to_vendor)::bigint AS to_vendor
					   FROM oms.return_lines x WHERE x.tenant_id = r.tenant_id AND x.return_id = r.id) rl
 WHERE r.tenant_id = (SELECT oms.bi_tenant_id());
COMMENT ON VIEW oms_bi.returns IS 'Fact: one row per return (RMA) of the current tenant: day, channel, reason, state, units authorised and received with their disposition, refund';
COMMENT ON COLUMN oms_bi.returns.rma IS 'Return id (RMA number)';
COMMENT ON COLUMN oms_bi.returns.order_id IS 'Order id';
COMMENT ON COLUMN oms_bi.returns.day IS 'UTC day the return was authorised';
COMMENT ON COLUMN oms_bi.returns.channel IS 'Code of the order''s channel';
COMMENT ON COLUMN oms_bi.returns.reason IS 'Reason given for the return';
COMMENT ON COLUMN oms_bi.returns.state IS 'authorized, partially_received, received';
COMMENT ON COLUMN oms_bi.returns.units IS 'Units authorised';
COMMENT ON COLUMN oms_bi.returns.units_received IS 'Units received back';
COMMENT ON COLUMN oms_bi.returns.restocked IS 'Units received and put back in stock';
COMMENT ON COLUMN oms_bi.returns.damaged IS 'Units received damaged';
COMMENT ON COLUMN oms_bi.returns.to_vendor IS 'Units received and sent to the vendor';
COMMENT ON COLUMN oms_bi.returns.refund_amount IS 'Refund due for what was received, order currency';
COMMENT ON COLUMN oms_bi.returns.currency IS 'Currency of the order';

CREATE VIEW oms_bi.return_reasons AS
SELECT r.day, r.reason, pg_catalog.count(*) AS returns, pg_catalog.sum(r.units)::bigint AS units
  FROM oms_bi.returns r
 GROUP BY r.day, r.reason;
COMMENT ON VIEW oms_bi.return_reasons IS 'Returns and units authorised per UTC day and reason (the top return reasons: sum over a period, sort by returns)';
COMMENT ON COLUMN oms_bi.return_reasons.day IS 'UTC day the returns were authorised';
COMMENT ON COLUMN oms_bi.return_reasons.reason IS 'Reason given';
COMMENT ON COLUMN oms_bi.return_reasons.returns IS 'Returns (RMAs) with this reason';
COMMENT ON COLUMN oms_bi.return_reasons.units IS 'Units authorised on them';

CREATE VIEW oms_bi.stock_snapshot AS
SELECT i.sku, i.name AS item_name, i.brand, i.category, lo.code AS location, lo.kind AS location_kind,
	   lo.country, s.on_hand, s.reserved, s.safety_stock,
	   GREATEST(s.on_hand - s.reserved - s.safety_stock, 0) AS available,
	   i.unit_cost, s.on_hand * i.unit_cost AS stock_value, s.updated_at
  FROM oms.stock s
  JOIN oms.items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id
  JOIN oms.locations lo ON lo.tenant_id = s.tenant_id AND lo.id = s.location_id
 WHERE s.tenant_id = (SELECT oms.bi_tenant_id());
COMMENT ON VIEW oms_bi.stock_snapshot IS 'Fact: stock now per SKU and location of the current tenant, with its value at cost';
COMMENT ON COLUMN oms_bi.stock_snapshot.sku IS 'SKU';
COMMENT ON COLUMN oms_bi.stock_snapshot.item_name IS 'Name of the item';
COMMENT ON COLUMN oms_bi.stock_snapshot.brand IS 'Brand of the item';
COMMENT ON COLUMN oms_bi.stock_snapshot.category IS 'Category of the item';
COMMENT ON COLUMN oms_bi.stock_snapshot.location IS 'Code of the location';
COMMENT ON COLUMN oms_bi.stock_snapshot.location_kind IS 'warehouse, store, 3pl, vendor';
COMMENT ON COLUMN oms_bi.stock_snapshot.country IS 'Country of the location';
COMMENT ON COLUMN oms_bi.stock_snapshot.on_hand IS 'Units physically there';
COMMENT ON COLUMN oms_bi.stock_snapshot.reserved IS 'Units reserved for orders and carts';
COMMENT ON COLUMN oms_bi.stock_snapshot.safety_stock IS 'Units kept back from promises';
COMMENT ON COLUMN oms_bi.stock_snapshot.available IS 'on_hand - reserved - safety_stock, at least 0';
COMMENT ON COLUMN oms_bi.stock_snapshot.unit_cost IS 'Cost of one unit in the tenant''s accounting currency';
COMMENT ON COLUMN oms_bi.stock_snapshot.stock_value IS 'on_hand times unit_cost (NULL when the cost is unknown)';
COMMENT ON COLUMN oms_bi.stock_snapshot.updated_at IS 'Last change of the stock row';

CREATE VIEW oms_bi.stock_movements AS
SELECT m.id AS movement_id, (m.moved_at AT TIME ZONE 'UTC')::date AS day, m.moved_at, i.sku, i.brand, i.category,
	   lo.code AS location, m.kind, m.delta, m.on_hand_after, m.reason, m.reference
  FROM oms.stock_movements m
  JOIN oms.items i ON i.tenant_id = m.tenant_id AND i.id = m.item_id
  JOIN oms.locations lo ON lo.tenant_id = m.tenant_id AND lo.id = m.location_id
 WHERE m.tenant_id = (SELECT oms.bi_tenant_id());
COMMENT ON VIEW oms_bi.stock_movements IS 'Fact: every change of on_hand of the current tenant (the stock ledger)';
COMMENT ON COLUMN oms_bi.stock_movements.movement_id IS 'Movement id';
COMMENT ON COLUMN oms_bi.stock_movements.day IS 'UTC day of the movement';
COMMENT ON COLUMN oms_bi.stock_movements.moved_at IS 'When it happened';
COMMENT ON COLUMN oms_bi.stock_movements.sku IS 'SKU';
COMMENT ON COLUMN oms_bi.stock_movements.brand IS 'Brand of the item';
COMMENT ON COLUMN oms_bi.stock_movements.category IS 'Category of the item';
COMMENT ON COLUMN oms_bi.stock_movements.location IS 'Code of the location';
COMMENT ON COLUMN oms_bi.stock_movements.kind IS 'count, adjustment, receipt, shipment, return, transfer_in, transfer_out';
COMMENT ON COLUMN oms_bi.stock_movements.delta IS 'Signed change of on_hand';
COMMENT ON COLUMN oms_bi.stock_movements.on_hand_after IS 'on_hand after the movement';
COMMENT ON COLUMN oms_bi.stock_movements.reason IS 'Why';
COMMENT ON COLUMN oms_bi.stock_movements.reference IS 'Reference (order, shipment, receipt)';

CREATE VIEW oms_bi.purchase_orders AS
SELECT po.id AS po_id, pl.line_no, su.code AS supplier, lo.code AS location, po.state, po.origin,
	   (po.created_at AT TIME ZONE 'UTC')::date AS day, pl.expected_date, i.sku, i.brand, i.category,
	   pl.qty, pl.qty_received, pl.qty_cancelled, pl.qty - pl.qty_received - pl.qty_cancelled AS qty_open,
	   pl.unit_cost, pl.qty * pl.unit_cost AS value
  FROM oms.purchase_orders po
  JOIN oms.purchase_order_lines pl ON pl.tenant_id = po.tenant_id AND pl.po_id = po.id
  JOIN oms.suppliers su ON su.tenant_id = po.tenant_id AND su.id = po.supplier_id
  JOIN oms.locations lo ON lo.tenant_id = po.tenant_id AND lo.id = po.location_id
  JOIN oms.items i ON i.tenant_id = pl.tenant_id AND i.id = pl.item_id
 WHERE po.tenant_id = (SELECT oms.bi_tenant_id());
COMMENT ON VIEW oms_bi.purchase_orders IS 'Fact: one row per purchase order line of the current tenant: supplier, receiving location, state, SKU, quantities ordered, received, cancelled and open, cost';
COMMENT ON COLUMN oms_bi.purchase_orders.po_id IS 'Purchase order id';
COMMENT ON COLUMN oms_bi.purchase_orders.line_no IS 'Line number';
COMMENT ON COLUMN oms_bi.purchase_orders.supplier IS 'Code of the supplier';
COMMENT ON COLUMN oms_bi.purchase_orders.location IS 'Code of the receiving location';
COMMENT ON COLUMN oms_bi.purchase_orders.state IS 'draft, sent, partially_received, received, cancelled';
COMMENT ON COLUMN oms_bi.purchase_orders.origin IS 'manual or replenishment';
COMMENT ON COLUMN oms_bi.purchase_orders.day IS 'UTC day the purchase order was created';
COMMENT ON COLUMN oms_bi.purchase_orders.expected_date IS 'Expected arrival of the line';
COMMENT ON COLUMN oms_bi.purchase_orders.sku IS 'SKU';
COMMENT ON COLUMN oms_bi.purchase_orders.brand IS 'Brand of the item';
COMMENT ON COLUMN oms_bi.purchase_orders.category IS 'Category of the item';
COMMENT ON COLUMN oms_bi.purchase_orders.qty IS 'Units ordered';
COMMENT ON COLUMN oms_bi.purchase_orders.qty_received IS 'Units received';
COMMENT ON COLUMN oms_bi.purchase_orders.qty_cancelled IS 'Units cancelled';
COMMENT ON COLUMN oms_bi.purchase_orders.qty_open IS 'Units still expected';
COMMENT ON COLUMN oms_bi.purchase_orders.unit_cost IS 'Cost of one unit';
COMMENT ON COLUMN oms_bi.purchase_orders.value IS 'qty times unit_cost';

-- ----- the daily summary, with names and the reporting currency

CREATE VIEW oms_bi.sales_daily AS
SELECT x.day, c.code AS channel, lo.code AS location, i.sku, i.name AS item_name, i.brand, i.category,
	   x.currency::text AS currency, x.country, x.seller, x.page,
	   x.orders, x.lines, x.lines_backordered, x.units, x.units_cancelled, x.units_shipped, x.units_returned,
	   x.gross - x.cancelled_value AS revenue, x.returned_value,
	   (x.gross - x.cancelled_value) * r.rate AS revenue_reporting, p.rc::text AS reporting_currency
  FROM (SELECT u.day, u.channel_id, u.location_id, u.item_id, u.currency, u.country, u.seller, u.page,
			   pg_catalog.sum(u.orders)::bigint AS orders, pg_catalog.sum(u.lines)::bigint AS lines,
			   pg_catalog.sum(u.lines_backordered)::bigint AS lines_backordered, pg_catalog.sum(u.units)::bigint AS units,
			   pg_catalog.sum(u.units_cancelled)::bigint AS units_cancelled,
			   pg_catalog.sum(u.units_shipped)::bigint AS units_shipped,
			   pg_catalog.sum(u.units_returned)::bigint AS units_returned, pg_catalog.sum(u.gross) AS gross,
			   pg_catalog.sum(u.cancelled_value) AS cancelled_value, pg_catalog.sum(u.returned_value) AS returned_value
		  FROM (SELECT h.day, h.channel_id, h.location_id, h.item_id, h.currency, h.country, h.seller, h.page, h.orders,
					   h.lines, h.lines_backordered, h.units, h.units_cancelled, h.units_shipped, h.units_returned,
					   h.gross, h.cancelled_value, h.returned_value
				  FROM oms.bi_sales_daily h WHERE h.tenant_id = (SELECT oms.bi_tenant_id())
				UNION ALL
				SELECT d.day, d.channel_id, d.location_id, d.item_id, d.currency, d.country, d.seller, d.page, d.orders,
					   d.lines, d.lines_backordered, d.units, d.units_cancelled, d.units_shipped, d.units_returned,
					   d.gross, d.cancelled_value, d.returned_value
				  FROM oms.bi_sales_deltas d WHERE d.tenant_id = (SELECT oms.bi_tenant_id())) u
		 GROUP BY u.day, u.channel_id, u.location_id, u.item_id, u.currency, u.country, u.seller, u.page
		HAVING pg_catalog.sum(u.lines) <> 0) x
  JOIN oms.channels c ON c.tenant_id = (SELECT oms.bi_tenant_id()) AND c.id = x.channel_id
  JOIN oms.items i ON i.tenant_id = (SELECT oms.bi_tenant_id()) AND i.id = x.item_id
  LEFT JOIN oms.locations lo ON lo.tenant_id = (SELECT oms.bi_tenant_id()) AND lo.id = x.location_id
 CROSS JOIN (SELECT oms.reporting_currency() AS rc OFFSET 0) p
  LEFT JOIN oms.exchange_rates xr ON xr.rate_date = x.day AND xr.from_currency = x.currency AND xr.to_currency = p.rc
 CROSS JOIN LATERAL (SELECT CASE WHEN x.currency = p.rc THEN 1::numeric ELSE xr.rate END AS rate) r;
COMMENT ON VIEW oms_bi.sales_daily IS 'Sales per UTC day of placement, channel, location, SKU, currency, country, seller and page of the current tenant, from the daily summary (exact as of the last commit); the base of kpis_daily and top()';
COMMENT ON COLUMN oms_bi.sales_daily.day IS 'UTC day the orders were placed';
COMMENT ON COLUMN oms_bi.sales_daily.channel IS 'Code of the channel';
COMMENT ON COLUMN oms_bi.sales_daily.location IS 'Code of the location serving the lines; NULL: not assigned (backorder)';
COMMENT ON COLUMN oms_bi.sales_daily.sku IS 'SKU';
COMMENT ON COLUMN oms_bi.sales_daily.item_name IS 'Name of the item';
COMMENT ON COLUMN oms_bi.sales_daily.brand IS 'Brand of the item';
COMMENT ON COLUMN oms_bi.sales_daily.category IS 'Category of the item';
COMMENT ON COLUMN oms_bi.sales_daily.currency IS 'Currency of the orders';
COMMENT ON COLUMN oms_bi.sales_daily.country IS 'Ship-to country of the orders (at placement)';
COMMENT ON COLUMN oms_bi.sales_daily.seller IS 'Order attribute "seller"';
COMMENT ON COLUMN oms_bi.sales_daily.page IS 'Order attribute "source_page"';
COMMENT ON COLUMN oms_bi.sales_daily.orders IS 'Orders, each counted once, on the row of its line 1';
COMMENT ON COLUMN oms_bi.sales_daily.lines IS 'Order lines';
COMMENT ON COLUMN oms_bi.sales_daily.lines_backordered IS 'Lines backordered when placed (counted on the row of location NULL)';
COMMENT ON COLUMN oms_bi.sales_daily.units IS 'Units ordered';
COMMENT ON COLUMN oms_bi.sales_daily.units_cancelled IS 'Units cancelled';
COMMENT ON COLUMN oms_bi.sales_daily.units_shipped IS 'Units shipped';
COMMENT ON COLUMN oms_bi.sales_daily.units_returned IS 'Units returned';
COMMENT ON COLUMN oms_bi.sales_daily.revenue IS 'Value of the units not cancelled, order currency (returns not deducted)';
COMMENT ON COLUMN oms_bi.sales_daily.returned_value IS 'Value of the units returned, order currency';
COMMENT ON COLUMN oms_bi.sales_daily.revenue_reporting IS 'Revenue in the reporting currency at the rate of the day; NULL when the rate is missing';
COMMENT ON COLUMN oms_bi.sales_daily.reporting_currency IS 'The reporting currency';

CREATE VIEW oms_bi.sales_by_dimension AS
SELECT x.day, x.dimension, x.key, x.label, lo.code AS location, x.currency::text AS currency,
	   x.orders, x.lines, x.lines_backordered, x.units, x.units_cancelled, x.units_shipped, x.units_returned,
	   x.revenue, x.returned_value, x.revenue * r.rate AS revenue_reporting, p.rc::text AS reporting_currency
  FROM (SELECT u.day, u.dimension, u.key, pg_catalog.max(u.label) AS label, u.location_id, u.currency,
			   pg_catalog.sum(u.orders)::bigint AS orders, pg_catalog.sum(u.lines)::bigint AS lines,
			   pg_catalog.sum(u.lines_backordered)::bigint AS lines_backordered, pg_catalog.sum(u.units)::bigint AS units,
			   pg_catalog.sum(u.units_cancelled)::bigint AS units_cancelled,
			   pg_catalog.sum(u.units_shipped)::bigint AS units_shipped,
			   pg_catalog.sum(u.units_returned)::bigint AS units_returned, pg_catalog.sum(u.revenue) AS revenue,
			   pg_catalog.sum(u.returned_value) AS returned_value
		  FROM (SELECT r.day, r.dimension, r.key, r.label, r.location_id, r.currency, r.orders, r.lines, r.lines_backordered,
					   r.units, r.units_cancelled, r.units_shipped, r.units_returned, r.revenue, r.returned_value
				  FROM oms.bi_sales_rollup r WHERE r.tenant_id = (SELECT oms.bi_tenant_id())
				UNION ALL
				SELECT d.day, v.dimension,
					   CASE v.dimension WHEN 'channel' THEN c.code WHEN 'product' THEN i.sku WHEN 'brand' THEN i.brand
							WHEN 'category' THEN i.category WHEN 'country' THEN d.country WHEN 'seller' THEN d.seller ELSE d.page END,
					   CASE v.dimension WHEN 'channel' THEN c.code WHEN 'product' THEN i.name WHEN 'brand' THEN i.brand
							WHEN 'category' THEN i.category WHEN 'country' THEN d.country WHEN 'seller' THEN d.seller ELSE d.page END,
					   CASE WHEN v.dimension = 'channel' THEN d.location_id END, d.currency, d.orders, d.lines,
					   d.lines_backordered, d.units, d.units_cancelled, d.units_shipped, d.units_returned,
					   d.gross - d.cancelled_value, d.returned_value
				  FROM oms.bi_sales_deltas d
				  JOIN oms.items i ON i.tenant_id = d.tenant_id AND i.id = d.item_id
				  JOIN oms.channels c ON c.tenant_id = d.tenant_id AND c.id = d.channel_id
				 CROSS JOIN (VALUES ('channel'), ('product'), ('brand'), ('category'), ('country'), ('seller'), ('page')) v(dimension)
				 WHERE d.tenant_id = (SELECT oms.bi_tenant_id())) u
		 GROUP BY u.day, u.dimension, u.key, u.location_id, u.currency
		HAVING pg_catalog.sum(u.lines) <> 0) x
  LEFT JOIN oms.locations lo ON lo.tenant_id = (SELECT oms.bi_tenant_id()) AND lo.id = x.location_id
 CROSS JOIN (SELECT oms.reporting_currency() AS rc OFFSET 0) p
  LEFT JOIN oms.exchange_rates xr ON xr.rate_date = x.day AND xr.from_currency = x.currency AND xr.to_currency = p.rc
 CROSS JOIN LATERAL (SELECT CASE WHEN x.currency = p.rc THEN 1::numeric ELSE xr.rate END AS rate) r;
COMMENT ON VIEW oms_bi.sales_by_dimension IS 'Sales per UTC day and value of a report dimension (channel with location, product, brand, category, country, seller, page) and currency of the current tenant: the fast base of kpis_daily and top(); filter on dimension and day';
COMMENT ON COLUMN oms_bi.sales_by_dimension.day IS 'UTC day the orders were placed';
COMMENT ON COLUMN oms_bi.sales_by_dimension.dimension IS 'channel, product, brand, category, country, seller or page';
COMMENT ON COLUMN oms_bi.sales_by_dimension.key IS 'Channel code, SKU, brand, category, country, seller or page; NULL: none';
COMMENT ON COLUMN oms_bi.sales_by_dimension.label IS 'Item name for products, else the key';
COMMENT ON COLUMN oms_bi.sales_by_dimension.location IS 'Location of the lines (dimension channel only; NULL: backorders not assigned)';
COMMENT ON COLUMN oms_bi.sales_by_dimension.currency IS 'Currency of the orders';
COMMENT ON COLUMN oms_bi.sales_by_dimension.orders IS 'Orders (each counted once, with its line 1); meaningful for channel, country, seller, page';
COMMENT ON COLUMN oms_bi.sales_by_dimension.lines IS 'Order lines';
COMMENT ON COLUMN oms_bi.sales_by_dimension.lines_backordered IS 'Lines backordered when placed';
COMMENT ON COLUMN oms_bi.sales_by_dimension.units IS 'Units ordered';
COMMENT ON COLUMN oms_bi.sales_by_dimension.units_cancelled IS 'Units cancelled';
COMMENT ON COLUMN oms_bi.sales_by_dimension.units_shipped IS 'Units shipped';
COMMENT ON COLUMN oms_bi.sales_by_dimension.units_returned IS 'Units returned';
COMMENT ON COLUMN oms_bi.sales_by_dimension.revenue IS 'Value of the units not cancelled, order currency';
COMMENT ON COLUMN oms_bi.sales_by_dimension.returned_value IS 'Value of the units returned, order currency';
COMMENT ON COLUMN oms_bi.sales_by_dimension.revenue_reporting IS 'Revenue in the reporting currency; NULL when the rate of the day is missing';
COMMENT ON COLUMN oms_bi.sales_by_dimension.reporting_currency IS 'The reporting currency';

-- ----- KPIs

CREATE VIEW oms_bi.kpis_daily AS
SELECT k.day, k.channel, k.location, k.orders, k.revenue, k.reporting_currency,
	   pg_catalog.round(k.revenue / nullif(k.orders, 0), 2) AS average_order_value,
	   k.units, pg_catalog.round(k.units::numeric / nullif(k.orders, 0), 2) AS units_per_order,
	   k.lines, k.lines_backordered,
	   pg_catalog.round(1 - k.day_backordered::numeric / nullif(k.day_lines, 0), 4) AS fill_rate,
	   pg_catalog.round(k.day_backordered::numeric / nullif(k.day_lines, 0), 4) AS backorder_rate,
	   k.units_cancelled, pg_catalog.round(k.units_cancelled::numeric / nullif(k.units, 0), 4) AS cancellation_rate,
	   k.units_shipped, k.units_returned,
	   pg_catalog.round(k.units_returned::numeric / nullif(k.units_shipped, 0), 4) AS return_rate,
	   k.shipments, k.shipments_on_time,
	   pg_catalog.round(k.shipments_on_time::numeric / nullif(k.shipments_promised, 0), 4) AS on_time_ship_rate,
	   k.ship_hours_median, k.ship_hours_p90, k.deliver_hours_median, k.deliver_hours_p90
  FROM (SELECT g.*, pg_catalog.sum(g.lines) OVER w AS day_lines, pg_catalog.sum(g.lines_backordered) OVER w AS day_backordered
		  FROM (SELECT b.day, b.channel, b.location,
					   pg_catalog.sum(b.orders)::bigint AS orders,
					   CASE WHEN pg_catalog.bool_and(b.revenue_ok) THEN pg_catalog.sum(b.revenue) END AS revenue,
					   oms.reporting_currency()::text AS reporting_currency,
					   pg_catalog.sum(b.units)::bigint AS units, pg_catalog.sum(b.lines)::bigint AS lines,
					   pg_catalog.sum(b.lines_backordered)::bigint AS lines_backordered,
					   pg_catalog.sum(b.units_cancelled)::bigint AS units_cancelled,
					   pg_catalog.sum(b.units_shipped)::bigint AS units_shipped,
					   pg_catalog.sum(b.units_returned)::bigint AS units_returned,
					   pg_catalog.sum(b.shipments)::bigint AS shipments,
					   pg_catalog.sum(b.shipments_on_time)::bigint AS shipments_on_time,
					   pg_catalog.sum(b.shipments_promised)::bigint AS shipments_promised,
					   pg_catalog.max(b.ship_hours_median) AS ship_hours_median, pg_catalog.max(b.ship_hours_p90) AS ship_hours_p90,
					   pg_catalog.max(b.deliver_hours_median) AS deliver_hours_median,
					   pg_catalog.max(b.deliver_hours_p90) AS deliver_hours_p90
				  FROM (SELECT s.day, s.key AS channel, s.location, s.orders, s.revenue_reporting AS revenue,
							   s.revenue_reporting IS NOT NULL AS revenue_ok, s.units, s.lines, s.lines_backordered,
							   s.units_cancelled, s.units_shipped, s.units_returned,
							   NULL::bigint AS shipments, NULL::bigint AS shipments_on_time, NULL::bigint AS shipments_promised,
							   NULL::numeric AS ship_hours_median, NULL::numeric AS ship_hours_p90,
							   NULL::numeric AS deliver_hours_median, NULL::numeric AS deliver_hours_p90
						  FROM oms_bi.sales_by_dimension s
						 WHERE s.dimension = 'channel'
						UNION ALL
						SELECT h.day, h.channel, h.location, NULL, NULL, true, NULL, NULL, NULL, NULL, NULL, NULL,
							   pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE h.on_time),
							   pg_catalog.count(h.on_time),
							   pg_catalog.round(pg_catalog.percentile_cont(0.5) WITHIN GROUP (ORDER BY h.hours_to_ship)::numeric, 1),
							   pg_catalog.round(pg_catalog.percentile_cont(0.9) WITHIN GROUP (ORDER BY h.hours_to_ship)::numeric, 1),
							   pg_catalog.round(pg_catalog.percentile_cont(0.5) WITHIN GROUP (ORDER BY h.hours_to_deliver)::numeric, 1),
							   pg_catalog.round(pg_catalog.percentile_cont(0.9) WITHIN GROUP (ORDER BY h.hours_to_deliver)::numeric, 1)
						  FROM oms_bi.shipments h
						 WHERE h.day IS NOT NULL
						 GROUP BY h.day, h.channel, h.location) b
				 GROUP BY b.day, b.channel, b.location) g
		WINDOW w AS (PARTITION BY g.day, g.channel)) k;
COMMENT ON VIEW oms_bi.kpis_daily IS 'KPIs per UTC day, channel and location of the current tenant: sales counters from the daily summary by day of placement, shipment counters by day of shipment (README: definitions)';
COMMENT ON COLUMN oms_bi.kpis_daily.day IS 'UTC day (placement for sales, shipment for the shipment KPIs)';
COMMENT ON COLUMN oms_bi.kpis_daily.channel IS 'Code of the channel';
COMMENT ON COLUMN oms_bi.kpis_daily.location IS 'Code of the location; NULL: lines not assigned (backorders)';
COMMENT ON COLUMN oms_bi.kpis_daily.orders IS 'Orders placed (each counted at the location of its line 1)';
COMMENT ON COLUMN oms_bi.kpis_daily.revenue IS 'Revenue (units not cancelled at their price) in the reporting currency; NULL when a rate of the day is missing';
COMMENT ON COLUMN oms_bi.kpis_daily.reporting_currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.kpis_daily.average_order_value IS 'revenue / orders';
COMMENT ON COLUMN oms_bi.kpis_daily.units IS 'Units ordered';
COMMENT ON COLUMN oms_bi.kpis_daily.units_per_order IS 'units / orders';
COMMENT ON COLUMN oms_bi.kpis_daily.lines IS 'Order lines';
COMMENT ON COLUMN oms_bi.kpis_daily.lines_backordered IS 'Lines backordered when placed';
COMMENT ON COLUMN oms_bi.kpis_daily.fill_rate IS 'Share of the day''s and channel''s lines served in full from stock at placement (the same on every location row of the day and channel)';
COMMENT ON COLUMN oms_bi.kpis_daily.backorder_rate IS 'Share of the day''s and channel''s lines backordered at placement (1 - fill_rate)';
COMMENT ON COLUMN oms_bi.kpis_daily.units_cancelled IS 'Units cancelled';
COMMENT ON COLUMN oms_bi.kpis_daily.cancellation_rate IS 'units_cancelled / units';
COMMENT ON COLUMN oms_bi.kpis_daily.units_shipped IS 'Units shipped (of the orders placed that day)';
COMMENT ON COLUMN oms_bi.kpis_daily.units_returned IS 'Units returned (of the orders placed that day)';
COMMENT ON COLUMN oms_bi.kpis_daily.return_rate IS 'units_returned / units_shipped';
COMMENT ON COLUMN oms_bi.kpis_daily.shipments IS 'Shipments that left that day from the location';
COMMENT ON COLUMN oms_bi.kpis_daily.shipments_on_time IS 'Those shipped on or before their promised date';
COMMENT ON COLUMN oms_bi.kpis_daily.on_time_ship_rate IS 'shipments_on_time / shipments with a promised date';
COMMENT ON COLUMN oms_bi.kpis_daily.ship_hours_median IS 'Median hours from placement to shipment of those shipments';
COMMENT ON COLUMN oms_bi.kpis_daily.ship_hours_p90 IS '90th percentile of hours from placement to shipment';
COMMENT ON COLUMN oms_bi.kpis_daily.deliver_hours_median IS 'Median hours from placement to delivery of those shipments (delivered ones)';
COMMENT ON COLUMN oms_bi.kpis_daily.deliver_hours_p90 IS '90th percentile of hours from placement to delivery';

CREATE VIEW oms_bi.perfect_orders_daily AS
SELECT o.day, o.channel, pg_catalog.count(*) AS orders,
	   pg_catalog.count(*) FILTER (WHERE q.complete AND q.on_time AND NOT q.returned) AS perfect_orders,
	   pg_catalog.round((pg_catalog.count(*) FILTER (WHERE q.complete AND q.on_time AND NOT q.returned))::numeric
			/ pg_catalog.count(*), 4) AS perfect_order_rate
  FROM oms_bi.orders o
 CROSS JOIN LATERAL (
		SELECT pg_catalog.bool_and(l.qty_cancelled = 0 AND l.qty_shipped = l.qty) AS complete,
			   pg_catalog.bool_or(l.qty_returned > 0) OR EXISTS (SELECT FROM oms.returns r WHERE r.tenant_id = (SELECT oms.bi_tenant_id())
																	 AND r.order_id = o.order_id) AS returned,
			   NOT EXISTS (SELECT FROM oms_bi.shipments s WHERE s.order_id = o.order_id AND s.on_time IS FALSE) AS on_time
		  FROM oms.order_lines l
		 WHERE l.tenant_id = (SELECT oms.bi_tenant_id()) AND l.order_id = o.order_id) q
 GROUP BY o.day, o.channel;
COMMENT ON VIEW oms_bi.perfect_orders_daily IS 'Perfect-order rate per UTC day of placement and channel: orders shipped complete (nothing cancelled), every shipment on time, nothing returned; read from the tables (filter a few days)';
COMMENT ON COLUMN oms_bi.perfect_orders_daily.day IS 'UTC day of placement';
COMMENT ON COLUMN oms_bi.perfect_orders_daily.channel IS 'Code of the channel';
COMMENT ON COLUMN oms_bi.perfect_orders_daily.orders IS 'Orders placed';
COMMENT ON COLUMN oms_bi.perfect_orders_daily.perfect_orders IS 'Orders complete, on time and not returned';
COMMENT ON COLUMN oms_bi.perfect_orders_daily.perfect_order_rate IS 'perfect_orders / orders';

CREATE VIEW oms_bi.inventory_kpis AS
SELECT s.sku, s.item_name, s.brand, s.category, s.location, s.on_hand, s.available, s.safety_stock,
	   s.unit_cost, s.stock_value, m.units_shipped_30d,
	   pg_catalog.round(m.units_shipped_30d * 365.0 / 30 / nullif(s.on_hand, 0), 2) AS turnover,
	   pg_catalog.round(s.on_hand / nullif(m.units_shipped_30d / 30.0, 0), 1) AS days_of_cover
  FROM oms_bi.stock_snapshot s
 CROSS JOIN LATERAL (SELECT coalesce(-pg_catalog.sum(x.delta), 0)::bigint AS units_shipped_30d
					   FROM oms.stock_movements x
					   JOIN oms.items i ON i.tenant_id = x.tenant_id AND i.id = x.item_id
					   JOIN oms.locations lo ON lo.tenant_id = x.tenant_id AND lo.id = x.location_id
					  WHERE x.tenant_id = (SELECT oms.bi_tenant_id()) AND i.sku = s.sku AND lo.code = s.location
						AND x.kind = 'shipment'
						AND x.moved_at >= ((oms.bi_today() - 29)::timestamp AT TIME ZONE 'UTC')
						AND x.moved_at < ((oms.bi_today() + 1)::timestamp AT TIME ZONE 'UTC')) m;
COMMENT ON VIEW oms_bi.inventory_kpis IS 'Inventory KPIs per SKU and location: stock value at cost, units shipped in the 30 days to today, annualised turnover (units shipped per year / on hand) and days of cover (on hand / units shipped per day)';
COMMENT ON COLUMN oms_bi.inventory_kpis.sku IS 'SKU';
COMMENT ON COLUMN oms_bi.inventory_kpis.item_name IS 'Name of the item';
COMMENT ON COLUMN oms_bi.inventory_kpis.brand IS 'Brand of the item';
COMMENT ON COLUMN oms_bi.inventory_kpis.category IS 'Category of the item';
COMMENT ON COLUMN oms_bi.inventory_kpis.location IS 'Code of the location';
COMMENT ON COLUMN oms_bi.inventory_kpis.on_hand IS 'Units on hand';
COMMENT ON COLUMN oms_bi.inventory_kpis.available IS 'Units available to promise (on_hand - reserved - safety_stock, at least 0)';
COMMENT ON COLUMN oms_bi.inventory_kpis.safety_stock IS 'Safety stock';
COMMENT ON COLUMN oms_bi.inventory_kpis.unit_cost IS 'Cost of one unit';
COMMENT ON COLUMN oms_bi.inventory_kpis.stock_value IS 'on_hand times unit_cost';
COMMENT ON COLUMN oms_bi.inventory_kpis.units_shipped_30d IS 'Units shipped from there in the 30 days up to today (oms.today or the current date)';
COMMENT ON COLUMN oms_bi.inventory_kpis.turnover IS 'Annualised inventory turnover: units_shipped_30d * 365 / 30 / on_hand; NULL when nothing on hand';
COMMENT ON COLUMN oms_bi.inventory_kpis.days_of_cover IS 'Days the stock lasts at the last 30 days'' rate: on_hand / (units_shipped_30d / 30); NULL when nothing shipped';

-- ----- drill-down and data quality

CREATE VIEW oms_bi.customer_orders AS
SELECT o.customer, o.customer_name, o.customer_email, o.order_id, o.external_id, o.placed_at, o.channel,
	   o.state AS order_state, o.total, o.currency, l.line_no, l.sku, l.item_name, l.qty, l.state AS line_state,
	   l.qty_cancelled, l.qty_shipped, l.qty_delivered, l.qty_returned, l.location,
	   (SELECT pg_catalog.string_agg(s.shipment_id || ' ' || s.state || coalesce(' ' || s.carrier, ''), ', ' ORDER BY s.shipment_id)
		  FROM oms_bi.shipments s
		 WHERE s.order_id = o.order_id
		   AND EXISTS (SELECT FROM oms.shipment_lines x
						WHERE x.tenant_id = (SELECT oms.bi_tenant_id()) AND x.shipment_id = s.shipment_id
						  AND x.line_no = l.line_no)) AS shipments
  FROM oms_bi.orders o
  JOIN oms_bi.order_lines l ON l.order_id = o.order_id;
COMMENT ON VIEW oms_bi.customer_orders IS 'Drill-down: a customer''s orders with their lines, states and shipments (filter on customer; contact data masked for oms_reader)';
COMMENT ON COLUMN oms_bi.customer_orders.customer IS 'Customer reference';
COMMENT ON COLUMN oms_bi.customer_orders.customer_name IS 'Customer name (initials for oms_reader)';
COMMENT ON COLUMN oms_bi.customer_orders.customer_email IS 'Customer e-mail (masked for oms_reader)';
COMMENT ON COLUMN oms_bi.customer_orders.order_id IS 'Order id';
COMMENT ON COLUMN oms_bi.customer_orders.external_id IS 'The channel''s order number';
COMMENT ON COLUMN oms_bi.customer_orders.placed_at IS 'When the order was placed';
COMMENT ON COLUMN oms_bi.customer_orders.channel IS 'Code of the channel';
COMMENT ON COLUMN oms_bi.customer_orders.order_state IS 'Order state';
COMMENT ON COLUMN oms_bi.customer_orders.total IS 'Order total, order currency';
COMMENT ON COLUMN oms_bi.customer_orders.currency IS 'Currency of the order';
COMMENT ON COLUMN oms_bi.customer_orders.line_no IS 'Line number';
COMMENT ON COLUMN oms_bi.customer_orders.sku IS 'SKU';
COMMENT ON COLUMN oms_bi.customer_orders.item_name IS 'Name of the item';
COMMENT ON COLUMN oms_bi.customer_orders.qty IS 'Units ordered';
COMMENT ON COLUMN oms_bi.customer_orders.line_state IS 'Line state';
COMMENT ON COLUMN oms_bi.customer_orders.qty_cancelled IS 'Units cancelled';
COMMENT ON COLUMN oms_bi.customer_orders.qty_shipped IS 'Units shipped';
COMMENT ON COLUMN oms_bi.customer_orders.qty_delivered IS 'Units delivered';
COMMENT ON COLUMN oms_bi.customer_orders.qty_returned IS 'Units returned';
COMMENT ON COLUMN oms_bi.customer_orders.location IS 'Location serving the line';
COMMENT ON COLUMN oms_bi.customer_orders.shipments IS 'Shipments with units of the line: "id state carrier", comma separated';

CREATE VIEW oms_bi.data_quality AS
SELECT 'missing exchange rate'::text AS issue, s.day, s.currency, s.reporting_currency,
	   pg_catalog.sum(s.orders)::bigint AS orders, pg_catalog.sum(s.lines)::bigint AS lines,
	   pg_catalog.sum(s.revenue) AS amount
  FROM oms_bi.sales_by_dimension s
 WHERE s.dimension = 'channel' AND s.revenue_reporting IS NULL
 GROUP BY s.day, s.currency, s.reporting_currency;
COMMENT ON VIEW oms_bi.data_quality IS 'Data-quality problems of the reports: days and currencies whose orders have no exchange rate to the reporting currency (their reporting amounts are NULL)';
COMMENT ON COLUMN oms_bi.data_quality.issue IS 'What is wrong';
COMMENT ON COLUMN oms_bi.data_quality.day IS 'UTC day of the orders concerned';
COMMENT ON COLUMN oms_bi.data_quality.currency IS 'Their currency';
COMMENT ON COLUMN oms_bi.data_quality.reporting_currency IS 'The reporting currency the rate is missing to';
COMMENT ON COLUMN oms_bi.data_quality.orders IS 'Orders concerned';
COMMENT ON COLUMN oms_bi.data_quality.lines IS 'Order lines concerned';
COMMENT ON COLUMN oms_bi.data_quality.amount IS 'Their revenue in their own currency';

-- ----- top-N

-- The reporting currency, for oms_bi.top: a BI login has no USAGE on schema oms, and top() is
-- PL/pgSQL, whose queries look names up when they run; this body is bound when it is created.
CREATE FUNCTION oms_bi.reporting_currency() RETURNS char(3)
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = oms_bi, pg_catalog
	RETURN oms.reporting_currency();
COMMENT ON FUNCTION oms_bi.reporting_currency() IS 'The currency the BI views report money in (setting oms_bi.reporting_currency, else EUR)';
REVOKE ALL ON FUNCTION oms_bi.reporting_currency() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms_bi.reporting_currency() TO oms_reader, oms_admin;

CREATE FUNCTION oms_bi.top(dimension text, from_day date, to_day date, n int DEFAULT 10, metric text DEFAULT 'revenue')
	RETURNS TABLE (rank bigint, key text, label text, orders bigint, units bigint, revenue numeric, currency text,
				   returns bigint, last_order date)
	LANGUAGE plpgsql STABLE
	SET search_path = oms_bi, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	IF top.dimension IS NULL OR top.dimension NOT IN ('product', 'customer', 'order', 'country', 'brand', 'category', 'seller',
											 'channel', 'day', 'weekday', 'page') THEN
		RAISE EXCEPTION 'invalid dimension "%"', CASE WHEN length(top.dimension) > 100 THEN left(top.dimension, 100) || '...' ELSE top.dimension END
			USING ERRCODE = '22023',
				  HINT = 'Use product, customer, order, country, brand, category, seller, channel, day, weekday or page.';
	END IF;
	IF metric IS NULL OR metric NOT IN ('revenue', 'units', 'orders', 'returns') THEN
		RAISE EXCEPTION 'invalid metric "%"', CASE WHEN length(metric) > 100 THEN left(metric, 100) || '...' ELSE metric END
			USING ERRCODE = '22023', HINT = 'Use revenue, units, orders or returns.';
	END IF;
	IF from_day IS NULL OR to_day IS NULL OR n IS NULL OR n < 1 THEN
		RAISE EXCEPTION 'invalid period or count: from % to %, n %', from_day, to_day, n
			USING ERRCODE = '22023', HINT = 'Give both days and n >= 1.';
	END IF;
	IF top.dimension IN ('customer', 'order') THEN
		RETURN QUERY
		SELECT pg_catalog.row_number() OVER (ORDER BY CASE metric WHEN 'revenue' THEN g.revenue WHEN 'units' THEN g.units
																  WHEN 'orders' THEN g.orders ELSE g.returns END DESC NULLS LAST,
												  g.key),
			   g.key, g.label, g.orders, g.units, g.revenue, oms_bi.reporting_currency()::text, g.returns, g.last_order
		  FROM (SELECT CASE top.dimension WHEN 'customer' THEN l.customer ELSE l.order_id::text END AS key,
					   pg_catalog.max(CASE top.dimension WHEN 'customer' THEN l.customer_name ELSE l.external_id END) AS label,
					   pg_catalog.count(DISTINCT l.order_id) AS orders,
					   pg_catalog.sum(l.qty - l.qty_cancelled)::bigint AS units,
					   CASE WHEN pg_catalog.bool_and(l.revenue_reporting IS NOT NULL) THEN pg_catalog.sum(l.revenue_reporting) END AS revenue,
					   pg_catalog.sum(l.qty_returned)::bigint AS returns, pg_catalog.max(l.day) AS last_order
				  FROM oms_bi.order_lines l
				 WHERE l.placed_at >= (from_day::timestamp AT TIME ZONE 'UTC')
				   AND l.placed_at < ((to_day + 1)::timestamp AT TIME ZONE 'UTC')
				 GROUP BY 1) g
		 ORDER BY 1
		 LIMIT n;
	ELSE
		RETURN QUERY
		SELECT pg_catalog.row_number() OVER (ORDER BY CASE metric WHEN 'revenue' THEN g.revenue WHEN 'units' THEN g.units
																  WHEN 'orders' THEN g.orders ELSE g.returns END DESC NULLS LAST,
												  g.key),
			   g.key, coalesce(g.label, '(none)'), g.orders, g.units, g.revenue, oms_bi.reporting_currency()::text, g.returns,
			   g.last_order
		  FROM (SELECT CASE top.dimension WHEN 'day' THEN pg_catalog.to_char(s.day, 'YYYY-MM-DD')
									  WHEN 'weekday' THEN EXTRACT(isodow FROM s.day)::text ELSE s.key END AS key,
					   pg_catalog.max(CASE top.dimension WHEN 'day' THEN pg_catalog.to_char(s.day, 'YYYY-MM-DD Dy')
									  WHEN 'weekday' THEN pg_catalog.to_char(s.day, 'FMDay') ELSE s.label END) AS label,
					   CASE WHEN top.dimension IN ('product', 'brand', 'category') THEN pg_catalog.sum(s.lines)
							ELSE pg_catalog.sum(s.orders) END::bigint AS orders,
					   pg_catalog.sum(s.units - s.units_cancelled)::bigint AS units,
					   CASE WHEN pg_catalog.bool_and(s.revenue_reporting IS NOT NULL) THEN pg_catalog.sum(s.revenue_reporting) END AS revenue,
					   pg_catalog.sum(s.units_returned)::bigint AS returns, pg_catalog.max(s.day) AS last_order
				  FROM oms_bi.sales_by_dimension s
				 WHERE s.dimension = CASE WHEN top.dimension IN ('day', 'weekday') THEN 'channel' ELSE top.dimension END
				   AND s.day BETWEEN from_day AND to_day
				 GROUP BY 1) g
		 ORDER BY 1
		 LIMIT n;
	END IF;
END
$$;
COMMENT ON FUNCTION oms_bi.top(text, date, date, int, text) IS 'The top-N report of a dimension (product, customer, order, country, brand, category, seller, channel, day, weekday, page) over the UTC days from_day..to_day, ranked by revenue, units, orders or returns; revenue in the reporting currency (NULL when a rate is missing); orders are order lines for product, brand and category';

-- One view per report, over the last 30 days to today, for BI tools that cannot call functions.
CREATE VIEW oms_bi.top_products AS
SELECT t.* FROM oms_bi.top('product', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_products IS 'The top products: units, revenue, returns: top 10 over the 30 days to today (oms_bi.top(''product'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_products.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_products.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_products.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_products.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_products.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_products.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_products.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_products.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_products.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_customers AS
SELECT t.* FROM oms_bi.top('customer', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_customers IS 'The top customers: orders, revenue, last order (names masked for oms_reader): top 10 over the 30 days to today (oms_bi.top(''customer'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_customers.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_customers.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_customers.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_customers.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_customers.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_customers.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_customers.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_customers.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_customers.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_orders AS
SELECT t.* FROM oms_bi.top('order', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_orders IS 'The top orders by revenue: top 10 over the 30 days to today (oms_bi.top(''order'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_orders.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_orders.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_orders.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_orders.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_orders.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_orders.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_orders.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_orders.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_orders.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_countries AS
SELECT t.* FROM oms_bi.top('country', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_countries IS 'The top ship-to countries: top 10 over the 30 days to today (oms_bi.top(''country'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_countries.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_countries.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_countries.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_countries.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_countries.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_countries.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_countries.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_countries.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_countries.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_brands AS
SELECT t.* FROM oms_bi.top('brand', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_brands IS 'The top brands: top 10 over the 30 days to today (oms_bi.top(''brand'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_brands.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_brands.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_brands.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_brands.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_brands.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_brands.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_brands.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_brands.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_brands.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_categories AS
SELECT t.* FROM oms_bi.top('category', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_categories IS 'The top categories: top 10 over the 30 days to today (oms_bi.top(''category'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_categories.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_categories.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_categories.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_categories.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_categories.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_categories.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_categories.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_categories.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_categories.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_sellers AS
SELECT t.* FROM oms_bi.top('seller', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_sellers IS 'The top sellers (order attribute "seller"): top 10 over the 30 days to today (oms_bi.top(''seller'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_sellers.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_sellers.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_sellers.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_sellers.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_sellers.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_sellers.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_sellers.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_sellers.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_sellers.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_channels AS
SELECT t.* FROM oms_bi.top('channel', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_channels IS 'The top channels: top 10 over the 30 days to today (oms_bi.top(''channel'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_channels.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_channels.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_channels.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_channels.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_channels.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_channels.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_channels.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_channels.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_channels.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_days AS
SELECT t.* FROM oms_bi.top('day', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_days IS 'The top days: top 10 over the 30 days to today (oms_bi.top(''day'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_days.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_days.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_days.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_days.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_days.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_days.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_days.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_days.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_days.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_weekdays AS
SELECT t.* FROM oms_bi.top('weekday', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_weekdays IS 'The top weekdays (key: ISO day of week, 1 = Monday): top 10 over the 30 days to today (oms_bi.top(''weekday'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_weekdays.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_weekdays.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_weekdays.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_weekdays.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_weekdays.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_weekdays.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_weekdays.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_weekdays.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_weekdays.last_order IS 'Last day with an order';
CREATE VIEW oms_bi.top_pages AS
SELECT t.* FROM oms_bi.top('page', oms.bi_today() - 29, oms.bi_today(), 10) t;
COMMENT ON VIEW oms_bi.top_pages IS 'The top landing or referring pages (order attribute "source_page"): top 10 over the 30 days to today (oms_bi.top(''page'', today - 29, today))';
COMMENT ON COLUMN oms_bi.top_pages.rank IS 'Rank, 1 = first, by revenue in the reporting currency';
COMMENT ON COLUMN oms_bi.top_pages.key IS 'Key of the dimension value';
COMMENT ON COLUMN oms_bi.top_pages.label IS 'Readable label';
COMMENT ON COLUMN oms_bi.top_pages.orders IS 'Orders (order lines for product, brand, category)';
COMMENT ON COLUMN oms_bi.top_pages.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.top_pages.revenue IS 'Revenue in the reporting currency; NULL when a rate is missing';
COMMENT ON COLUMN oms_bi.top_pages.currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.top_pages.returns IS 'Units returned';
COMMENT ON COLUMN oms_bi.top_pages.last_order IS 'Last day with an order';

-- ----- privileges: oms_reader and oms_admin read the schema; nothing to PUBLIC.

REVOKE ALL ON ALL TABLES IN SCHEMA oms_bi FROM PUBLIC;
REVOKE ALL ON FUNCTION oms_bi.top(text, date, date, int, text), oms.bi_tenant_id(), oms.bi_unmasked(), oms.bi_mask_name(text),
	oms.bi_mask_email(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA oms_bi TO oms_reader, oms_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA oms_bi TO oms_reader, oms_admin;
GRANT EXECUTE ON FUNCTION oms_bi.top(text, date, date, int, text) TO oms_reader, oms_admin;
-- What the views call as the user who reads them (no USAGE on schema oms: not callable by name).
GRANT EXECUTE ON FUNCTION oms.bi_tenant_id(), oms.reporting_currency(), oms.bi_today(), oms.bi_unmasked(),
	oms.bi_mask_name(text), oms.bi_mask_email(text), oms._clip(text) TO oms_reader, oms_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON oms.exchange_rates TO oms_admin;
GRANT EXECUTE ON FUNCTION oms.compact_bi_sales(), oms.rebuild_bi_sales() TO oms_admin;

-- ===== sql/parts/97_self_service.sql
-- Customer self-service (issue 11): what a storefront's "where is my order" page shows, and a
-- return started by the customer. The storefront's role oms_storefront may execute these two
-- functions and nothing else: they run as SECURITY DEFINER (as the extension's owner) with a
-- pinned search_path, find the order by channel, external id and the customer's e-mail
-- (compared trimmed and case-insensitively), and answer about that order only. An unknown order,
-- an unknown channel and a wrong e-mail give the same answer, {"found": false, ...}, so that nobody
-- can learn which orders exist.
--
-- This part comes after 90_security.sql, so it takes EXECUTE back from PUBLIC itself.

-- The order of a channel, reference and e-mail; NULL when any of them does not match.
CREATE FUNCTION oms._customer_order(p_tenant int, p_channel text, p_external_id text, p_email text) RETURNS bigint
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT o.id
	  FROM oms.orders o
	  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	 WHERE o.tenant_id = p_tenant AND c.code = p_channel AND o.external_id = p_external_id
	   AND p_email IS NOT NULL AND btrim(p_email) <> ''
	   AND lower(btrim(o.customer_email)) = lower(btrim(p_email));
END;
COMMENT ON FUNCTION oms._customer_order(int, text, text, text) IS 'Internal: the id of the order with this channel, external id and customer e-mail (trimmed, case-insensitive), NULL when any does not match';

-- A state in the customer's words.
CREATE FUNCTION oms._plain_state(p_state text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog, pg_temp
	RETURN CASE p_state
		WHEN 'created' THEN 'received'
		WHEN 'on_hold' THEN 'being checked'
		WHEN 'confirmed' THEN 'confirmed'
		WHEN 'backordered' THEN 'waiting for stock'
		WHEN 'preordered' THEN 'pre-ordered'
		WHEN 'partially_allocated' THEN 'partly waiting for stock'
		WHEN 'allocated' THEN 'confirmed'
		WHEN 'released' THEN 'being prepared'
		WHEN 'picked' THEN 'being prepared'
		WHEN 'packed' THEN 'packed, about to ship'
		WHEN 'ready_for_pickup' THEN 'ready for pickup'
		WHEN 'partially_shipped' THEN 'partly shipped'
		WHEN 'shipped' THEN 'shipped'
		WHEN 'in_transit' THEN 'on its way'
		WHEN 'out_for_delivery' THEN 'out for delivery'
		WHEN 'exception' THEN 'delayed by the carrier'
		WHEN 'delivered' THEN 'delivered'
		WHEN 'partially_returned' THEN 'partly returned'
		WHEN 'returned' THEN 'returned'
		WHEN 'rejected' THEN 'could not be fulfilled'
		WHEN 'cancelled' THEN 'cancelled'
		WHEN 'closed' THEN 'completed'
		ELSE p_state END;
COMMENT ON FUNCTION oms._plain_state(text) IS 'Internal: an order, line or shipment state in the customer''s words';

CREATE FUNCTION oms._not_found() RETURNS jsonb
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog, pg_temp
	RETURN '{"found": false, "message": "No order matches this order number and e-mail address."}'::jsonb;
COMMENT ON FUNCTION oms._not_found() IS 'Internal: the one answer self-service gives for an unknown order, channel or a wrong e-mail';

-- The status of an order as the customer sees it.
CREATE FUNCTION oms._customer_view(p_tenant int, p_order bigint) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog, pg_temp
AS $$
DECLARE
	o			oms.orders;
	v_days		int;
	v_since		timestamptz;
	v_open		boolean;
	v_editable	boolean;
	v_returnable bigint;
BEGIN
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = p_tenant AND x.id = p_order;
	SELECT c.return_days INTO v_days FROM oms.channels c WHERE c.tenant_id = p_tenant AND c.id = o.channel_id;
	v_since := oms._delivered_at(p_tenant, o.id);
	v_open := o.state NOT IN ('cancelled', 'closed');
	SELECT bool_and(l.state = 'cancelled' OR oms._editable(l.state)) INTO v_editable
	  FROM oms.order_lines l WHERE l.tenant_id = p_tenant AND l.order_id = o.id;
	SELECT coalesce(sum(l.qty_shipped - l.qty_returned
						- coalesce((SELECT sum(rl.qty - rl.qty_received) FROM oms.return_lines rl
									 WHERE rl.tenant_id = l.tenant_id AND rl.order_id = l.order_id AND rl.line_no = l.line_no), 0)), 0)
	  INTO v_returnable
	  FROM oms.order_lines l
	 WHERE l.tenant_id = p_tenant AND l.order_id = o.id AND l.state IN ('shipped', 'delivered', 'partially_returned');

	RETURN jsonb_strip_nulls(jsonb_build_object(
		'found', true,
		'order', o.external_id,
		'status', oms._plain_state(o.state::text),
		'placed_at', o.placed_at,
		'currency', o.currency,
		'total', o.total,
		'lines', (SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
						'line_no', l.line_no, 'sku', i.sku, 'name', i.name, 'qty', l.qty,
						'status', oms._plain_state(l.state::text),
						'shipped', nullif(l.qty_shipped, 0), 'delivered', nullif(l.qty_delivered, 0),
						'returned', nullif(l.qty_returned, 0), 'cancelled', nullif(l.qty_cancelled, 0),
						'promised_date', CASE WHEN l.qty_shipped < l.qty - l.qty_cancelled THEN l.promised_date END))
					ORDER BY l.line_no)
					FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
				   WHERE l.tenant_id = p_tenant AND l.order_id = o.id),
		'shipments', (SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
						'package', oms._package_no(p_tenant, s), 'status', oms._plain_state(s.state),
						'carrier', s.carrier, 'service', s.service, 'tracking', s.tracking,
						'shipped_at', s.shipped_at, 'delivered_at', s.delivered_at,
						'last_scan', (SELECT jsonb_build_object('status', oms._plain_state(t.status), 'at', t.occurred_at,
																'location', t.payload ->> 'location')
										FROM oms.tracking_events t WHERE t.tenant_id = s.tenant_id AND t.shipment_id = s.id
									   ORDER BY t.occurred_at DESC LIMIT 1),
						'items', (SELECT jsonb_agg(jsonb_build_object('sku', i.sku, 'qty', sl.qty) ORDER BY sl.line_no)
									FROM oms.shipment_lines sl
									JOIN oms.order_lines l ON l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no
									JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
								   WHERE sl.tenant_id = s.tenant_id AND sl.shipment_id = s.id))) ORDER BY s.id)
						FROM oms.shipments s WHERE s.tenant_id = p_tenant AND s.order_id = o.id),
		'pickup', (SELECT jsonb_build_object('store', l.name, 'city', l.city)
					 FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = o.pickup_location_id),
		'delivered_at', (SELECT max(s.delivered_at) FROM oms.shipments s WHERE s.tenant_id = p_tenant AND s.order_id = o.id),
		'you_can', jsonb_build_object(
			'cancel', v_open AND coalesce(v_editable, false),
			'change_address', v_open AND coalesce(v_editable, false) AND o.pickup_location_id IS NULL,
			'return', v_returnable > 0 AND v_days > 0
					  AND (v_since IS NULL OR now() <= v_since + make_interval(days => v_days)),
			'return_until', CASE WHEN v_returnable > 0 AND v_days > 0 AND v_since IS NOT NULL
								 THEN to_char((v_since + make_interval(days => v_days)) AT TIME ZONE 'UTC', 'YYYY-MM-DD') END)));
END
$$;
COMMENT ON FUNCTION oms._customer_view(int, bigint) IS 'Internal: an order as its customer sees it: status in plain words, lines, shipments with carrier, tracking and last scan, delivery, and what the customer may still do (cancel, change address, return and until when)';

CREATE FUNCTION oms.order_status(channel text, external_id text, email text) RETURNS jsonb
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = oms, pg_catalog, pg_temp
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_order		bigint := oms._customer_order(v_tenant, order_status.channel, order_status.external_id, order_status.email);
BEGIN
	IF v_order IS NULL THEN
		RETURN oms._not_found();
	END IF;
	RETURN oms._customer_view(v_tenant, v_order);
END
$$;
COMMENT ON FUNCTION oms.order_status(text, text, text) IS 'Self-service "where is my order": the order of channel and external id whose customer e-mail matches, as the customer sees it (jsonb); unknown order, channel or wrong e-mail: the same {"found": false} answer';

CREATE FUNCTION oms.request_return(channel text, external_id text, email text, lines jsonb, reason text) RETURNS jsonb
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog, pg_temp
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_order		bigint := oms._customer_order(v_tenant, request_return.channel, request_return.external_id, request_return.email);
	v_rma		bigint;
	v_state		text;
	v_message	text;
	v_detail	text;
	v_hint		text;
BEGIN
	IF v_order IS NULL THEN
		RETURN oms._not_found();
	END IF;
	BEGIN
		v_rma := oms.create_return(v_order, lines, reason);
	EXCEPTION WHEN SQLSTATE 'OM005' OR SQLSTATE 'OM010' OR SQLSTATE '55000' OR SQLSTATE '22023' THEN
		GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL,
								v_hint = PG_EXCEPTION_HINT;
		-- The refusal in the customer's terms: no internal ids.
		RETURN jsonb_strip_nulls(jsonb_build_object('found', true, 'accepted', false, 'code', v_state,
			'reason', regexp_replace(v_message, 'order \d+', 'order ' || request_return.external_id, 'g'),
			'detail', nullif(v_detail, ''), 'hint', nullif(v_hint, '')));
	END;
	RETURN jsonb_build_object('found', true, 'accepted', true, 'rma', 'RMA-' || v_rma,
							  'return_label_zpl', oms.return_label(v_rma, 'zpl'),
							  'return_label_html', oms.return_label(v_rma, 'html'));
END
$$;
COMMENT ON FUNCTION oms.request_return(text, text, text, jsonb, text) IS 'Self-service return: for the order of channel, external id and matching e-mail, creates the RMA of [{"line_no": 1, "qty": 1}] with the reason (oms.create_return) and returns its code and return label (ZPL and HTML); outside the return window or more than delivered: {"accepted": false} with the reason; unknown order or wrong e-mail: {"found": false}';

REVOKE ALL ON FUNCTION oms._customer_order(int, text, text, text), oms._plain_state(text), oms._not_found(),
	oms._customer_view(int, bigint), oms.order_status(text, text, text),
	oms.request_return(text, text, text, jsonb, text) FROM PUBLIC;
GRANT USAGE ON SCHEMA oms TO oms_storefront;
GRANT EXECUTE ON FUNCTION oms.order_status(text, text, text), oms.request_return(text, text, text, jsonb, text)
	TO oms_storefront;

-- ===== sql/parts/99_access.sql
-- Privileges of the group roles, row level security, and the SECURITY DEFINER API.
--
-- Design. Tables are written only through the API (and by oms_admin directly). An API function
-- granted to a non-admin role runs as SECURITY DEFINER (its owner, the role that installed oms)
-- with its pinned search_path, so that its callers need no right on the tables. The owner is not
-- limited by row level security, so the definer functions check the caller's rights explicitly:
--   the tenant   every function finds its tenant through oms_tenant_id() (src/oms.c), which
--                refuses (42501) a tenant the caller was not granted (oms.grant_tenant);
--   the location a store role's writes at a location (shipments, pickups, stock movements) are
--                refused (42501) by the trigger oms._store_guard unless the location is assigned
--                to it (oms.assign_store).
-- The caller is the outer user (the session user or the role of a SET ROLE), never the owner.
-- Reads by non-admin roles go through row level security: every table with a tenant_id shows the
-- current tenant's rows only (and oms.current_tenant_id() refuses a tenant not granted), and the
-- store tables show a store role only its locations' rows. oms.atp() reads through indexes, where
-- no policy applies, and applies the tenant rule itself (src/atp.c).
--
--   oms_admin       EXECUTE on every function, every right on every table and sequence, all tenants
--   oms_operator    order operations, payments, returns, stock adjustments, replenishment; reads
--                   every table of its tenants
--   oms_store       the fulfilment steps at its locations (pack, ship, deliver, ready_for_pickup,
--                   collect, adjust_stock, set_stock); reads its locations' orders, lines, stock,
--                   reservations, shipments, pickups and alerts
--   oms_app         promise, place, cancel, holds, ATP, self-service; reads the catalogue and stock
--   oms_storefront  the self-service functions only (granted by the part that defines them)
--   oms_reader      nothing in schema oms (no USAGE): schema oms_bi only

GRANT USAGE ON SCHEMA oms TO oms_admin, oms_operator, oms_store, oms_app, oms_storefront;

GRANT ALL ON ALL TABLES IN SCHEMA oms TO oms_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA oms TO oms_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA oms TO oms_admin;

-- Everyone who may call oms at all may ask which tenant it works for (views of oms_bi call it).
GRANT EXECUTE ON FUNCTION oms.current_tenant_id() TO oms_operator, oms_store, oms_app, oms_storefront, oms_reader;
-- The store policies call these as the reading role.
GRANT EXECUTE ON FUNCTION oms._caller(), oms._store_locations() TO oms_store;

-- Reads, limited by the policies below.
DO $$
DECLARE
	v_table text;
BEGIN
	FOR v_table IN
		SELECT c.relname FROM pg_catalog.pg_class c
		 WHERE c.relnamespace = 'oms'::regnamespace AND c.relkind = 'r'
		   AND c.relname NOT IN ('tenant_grants')
	LOOP
		EXECUTE pg_catalog.format('GRANT SELECT ON oms.%I TO oms_operator', v_table);
	END LOOP;
END
$$;
GRANT SELECT ON oms.tenants, oms.currencies, oms.channels, oms.items, oms.locations, oms.stock, oms.supply
	TO oms_app, oms_store;
GRANT SELECT ON oms.orders, oms.order_lines, oms.reservations, oms.shipments, oms.shipment_lines,
	oms.pickups, oms.alerts, oms.store_assignments
	TO oms_store;

-- Row level security: the tenant rule on every table with a tenant_id (oms.tenants and
-- oms.currencies have none; oms.tenants shows codes and names, not data). The owner (the definer
-- functions, the worker) and superusers are not subject to it; oms_admin sees every tenant.
DO $$
DECLARE
	v_table text;
BEGIN
	FOR v_table IN
		SELECT c.relname FROM pg_catalog.pg_class c
		  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
		 WHERE c.relnamespace = 'oms'::regnamespace AND c.relkind = 'r'
		 ORDER BY 1
	LOOP
		EXECUTE pg_catalog.format('ALTER TABLE oms.%I ENABLE ROW LEVEL SECURITY', v_table);
		EXECUTE pg_catalog.format('CREATE POLICY tenant ON oms.%I USING (tenant_id OPERATOR(pg_catalog.=) (SELECT oms.current_tenant_id()))', v_table);
		EXECUTE pg_catalog.format('CREATE POLICY admin ON oms.%I TO oms_admin USING (true) WITH CHECK (true)', v_table);
	END LOOP;
END
$$;

-- Store staff: only the rows of the locations assigned to them (restrictive: on top of the tenant
-- rule). An order is a store's when it is picked up there or one of its lines is sourced there.
DO $$
DECLARE
	v_table text;
BEGIN
	FOREACH v_table IN ARRAY ARRAY['order_lines', 'stock', 'reservations', 'shipments', 'pickups', 'alerts']
	LOOP
		EXECUTE pg_catalog.format('CREATE POLICY store ON oms.%I AS RESTRICTIVE TO oms_store USING (location_id OPERATOR(pg_catalog.=) ANY ((SELECT oms._store_locations())::int[]))', v_table);
	END LOOP;
END
$$;
CREATE POLICY store ON oms.orders AS RESTRICTIVE TO oms_store
	USING (pickup_location_id = ANY ((SELECT oms._store_locations())::int[])
		   OR EXISTS (SELECT FROM oms.order_lines l
					   WHERE l.tenant_id = orders.tenant_id AND l.order_id = orders.id
						 AND l.location_id = ANY ((SELECT oms._store_locations())::int[])));
CREATE POLICY store ON oms.shipment_lines AS RESTRICTIVE TO oms_store
	USING (EXISTS (SELECT FROM oms.shipments s
					WHERE s.tenant_id = shipment_lines.tenant_id AND s.id = shipment_lines.shipment_id));
CREATE POLICY store ON oms.store_assignments AS RESTRICTIVE TO oms_store
	USING (pg_catalog.pg_has_role(oms._caller(), role, 'USAGE'));

-- The location check of store staff's writes (see 22_access.sql).
CREATE TRIGGER store_guard BEFORE INSERT OR UPDATE OF location_id, state ON oms.shipments
	FOR EACH ROW EXECUTE FUNCTION oms._store_guard();
CREATE TRIGGER store_guard BEFORE INSERT OR UPDATE ON oms.pickups
	FOR EACH ROW EXECUTE FUNCTION oms._store_guard();
CREATE TRIGGER store_guard BEFORE INSERT ON oms.stock_movements
	FOR EACH ROW EXECUTE FUNCTION oms._store_guard();

-- The API per role. Every function granted here to a non-admin role becomes SECURITY DEFINER
-- (they all pin search_path), except the readers that run as the caller on purpose: oms.atp()
-- (both forms: now, and time-phased) and oms.atp_by_location() (their callers read the tables,
-- under the policies; oms.atp(sku, location) applies the tenant rule itself). A name that no part
-- defines (yet) is skipped.
DO $$
DECLARE
	v_fn	text;
	v_roles	text;
	v_proc	regprocedure;
BEGIN
	FOR v_fn, v_roles IN
		VALUES
			('atp', 'oms_app, oms_operator'),
			('atp_by_location', 'oms_app, oms_operator, oms_store'),
			('promise', 'oms_app, oms_operator'),
			('route', 'oms_operator'),
			('route_explain', 'oms_operator'),
			('place_order', 'oms_app, oms_operator'),
			('cancel_order', 'oms_app, oms_operator'),
			('hold', 'oms_app, oms_operator'),
			('release_hold', 'oms_app, oms_operator'),
			('order_status', 'oms_app, oms_operator'),
			('request_return', 'oms_app, oms_operator'),
			('cancel_line', 'oms_app, oms_operator'),
			('change_address', 'oms_app, oms_operator'),
			('payment_totals', 'oms_operator'),
			('authorize_payment', 'oms_operator'),
			('capture_payment', 'oms_operator'),
			('refund_payment', 'oms_operator'),
			('void_payment', 'oms_operator'),
			('hold_order', 'oms_operator'),
			('resolve_hold', 'oms_operator'),
			('release_order', 'oms_operator'),
			('pack', 'oms_operator, oms_store'),
			('ship', 'oms_operator, oms_store'),
			('deliver', 'oms_operator, oms_store'),
			('ready_for_pickup', 'oms_operator, oms_store'),
			('collect', 'oms_operator, oms_store'),
			('adjust_stock', 'oms_operator, oms_store'),
			('set_stock', 'oms_operator, oms_store'),
			('create_return', 'oms_operator'),
			('receive_return', 'oms_operator'),
			('exchange', 'oms_operator'),
			('forecast', 'oms_operator'),
			('forecast_methods', 'oms_operator'),
			('policy', 'oms_operator'),
			('plan_replenishment', 'oms_operator'),
			('create_purchase_order', 'oms_operator'),
			('send_purchase_order', 'oms_operator'),
			('cancel_purchase_order', 'oms_operator'),
			('receive_purchase_order', 'oms_operator'),
			('create_transfer', 'oms_operator'),
			('receive_transfer', 'oms_operator'),
			('cancel_transfer', 'oms_operator'),
			('subscribe', 'oms_app, oms_operator'),
			('pause_subscription', 'oms_app, oms_operator'),
			('resume_subscription', 'oms_app, oms_operator'),
			('cancel_subscription', 'oms_app, oms_operator'),
			('check_stock_invariants', 'oms_operator'),
			('reject_line', 'oms_operator'),
			('tax_split', 'oms_app, oms_operator'),
			('issue_invoice', 'oms_operator'),
			('issue_credit_note', 'oms_operator'),
			('invoice_document', 'oms_operator'),
			('packing_slip', 'oms_operator, oms_store'),
			('shipping_label', 'oms_operator, oms_store'),
			('return_label', 'oms_operator')
	LOOP
		FOR v_proc IN
			SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
			 WHERE p.pronamespace = 'oms'::regnamespace AND p.proname = v_fn
		LOOP
			EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', v_proc, v_roles);
			IF v_fn NOT IN ('atp', 'atp_by_location') THEN
				EXECUTE pg_catalog.format('ALTER FUNCTION %s SECURITY DEFINER', v_proc);
			END IF;
		END LOOP;
	END LOOP;
END
$$;
