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
