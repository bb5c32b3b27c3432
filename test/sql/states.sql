-- The state types: I/O and its errors, lifecycle order, btree and hash support, every legal
-- transition and some illegal ones, and every rule of the rollup. No tenant data: only types.
-- The comparison operators live in schema oms; a user who writes state = 'x' puts oms in the path.
SET search_path = public, oms;

-- Every error below is shown as its SQLSTATE, message and hint.
CREATE FUNCTION pg_temp.try(sql text, OUT code text, OUT message text, OUT hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	code := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
END
$$;

-- ===== text I/O: every name, its stable code and its rank
SELECT s AS order_state, oms.state_code(s) AS code, oms.state_rank(s) AS rank, s::text = n AS round_trip
  FROM unnest('{created,on_hold,confirmed,backordered,partially_allocated,allocated,released,partially_shipped,shipped,delivered,partially_returned,returned,cancelled,closed}'::text[]) n,
	   LATERAL (SELECT n::oms.order_state AS s) x;
SELECT s AS line_state, oms.state_code(s) AS code, oms.state_rank(s) AS rank, s::text = n AS round_trip
  FROM unnest('{created,backordered,preordered,allocated,released,picked,packed,ready_for_pickup,partially_shipped,shipped,delivered,partially_returned,returned,rejected,cancelled}'::text[]) n,
	   LATERAL (SELECT n::oms.line_state AS s) x;

-- Casts both ways through text, and a state in a text context.
SELECT 'allocated'::text::oms.line_state AS from_text, 'on_hold'::oms.order_state::text || '!' AS to_text,
	   pg_typeof('shipped'::oms.line_state::text) AS type;

-- Unknown names: 22P02 naming the value and the type, the hint lists the valid names in order.
SELECT 'shiped'::oms.line_state;
SELECT * FROM pg_temp.try($$SELECT 'Shipped'::oms.line_state$$);
SELECT * FROM pg_temp.try($$SELECT ''::oms.order_state$$);
SELECT * FROM pg_temp.try($$SELECT 'closed'::oms.line_state$$);
SELECT * FROM pg_temp.try($$SELECT 'picked'::oms.order_state$$);
SELECT * FROM pg_temp.try($$SELECT ' created'::oms.order_state$$);

-- Binary output is the code as int4; binary COPY round-trips both types.
SELECT oms.line_state_send('shipped') AS shipped_code_10, oms.order_state_send('closed') AS closed_code_14;
CREATE TEMP TABLE bin (o oms.order_state, l oms.line_state);
INSERT INTO bin VALUES ('partially_returned', 'ready_for_pickup'), ('created', 'rejected');
COPY bin TO '/tmp/oms_states_test.copy' WITH (FORMAT binary);
CREATE TEMP TABLE bin2 (o oms.order_state, l oms.line_state);
COPY bin2 FROM '/tmp/oms_states_test.copy' WITH (FORMAT binary);
SELECT * FROM bin2 ORDER BY o;

-- ===== comparison in lifecycle order
SELECT 'created'::oms.order_state < 'on_hold' AS lt, 'closed'::oms.order_state > 'cancelled' AS gt,
	   'shipped'::oms.line_state <= 'shipped' AS le, 'shipped'::oms.line_state >= 'delivered' AS ge_false,
	   'picked'::oms.line_state = 'picked' AS eq, 'picked'::oms.line_state <> 'packed' AS ne;
-- Unqualified operators resolve only through the search path; qualified ones always do.
SELECT 'shipped'::oms.line_state OPERATOR(oms.>) 'released' AS qualified;

-- A table of lines: ORDER BY, DISTINCT, GROUP BY (sorted and hashed), comparisons in WHERE.
CREATE TEMP TABLE lines (id int PRIMARY KEY, state oms.line_state NOT NULL);
INSERT INTO lines
	SELECT i, (ARRAY['shipped', 'created', 'backordered', 'rejected', 'allocated', 'shipped', 'cancelled',
					 'backordered', 'created', 'ready_for_pickup', 'backordered', 'delivered']::oms.line_state[])[1 + (i - 1) % 12]
	  FROM generate_series(1, 1200) i;
ANALYZE lines;
SELECT state, count(*) FROM lines GROUP BY state ORDER BY state;
SELECT DISTINCT state FROM lines ORDER BY state DESC;
SELECT count(*) AS between_allocated_and_shipped FROM lines WHERE state BETWEEN 'allocated' AND 'shipped';
SET enable_hashagg = off;
EXPLAIN (COSTS OFF) SELECT state, count(*) FROM lines GROUP BY state;
SELECT state, count(*) FROM lines GROUP BY state;
RESET enable_hashagg;
SET enable_sort = off;
EXPLAIN (COSTS OFF) SELECT state, count(*) FROM lines GROUP BY state;
SELECT state, count(*) FROM lines GROUP BY state ORDER BY count(*), state;
RESET enable_sort;
-- A hash join on state.
SET enable_mergejoin = off;
SET enable_nestloop = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM lines a JOIN (VALUES ('rejected'::oms.line_state), ('delivered')) v(s) ON a.state = v.s;
SELECT count(*) FROM lines a JOIN (VALUES ('rejected'::oms.line_state), ('delivered')) v(s) ON a.state = v.s;
RESET enable_mergejoin;
RESET enable_nestloop;

-- Indexes: a btree, a hash index, and a partial index whose predicate uses a state.
CREATE INDEX lines_state_idx ON lines (state);
CREATE INDEX lines_state_hash ON lines USING hash (state);
CREATE INDEX lines_backordered_idx ON lines (id) WHERE state = 'backordered';
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM lines WHERE state = 'backordered' AND id < 40 ORDER BY id;
SELECT id FROM lines WHERE state = 'backordered' AND id < 40 ORDER BY id;
EXPLAIN (COSTS OFF) SELECT count(*) FROM lines WHERE state > 'shipped';
SELECT count(*) FROM lines WHERE state > 'shipped';
DROP INDEX lines_state_idx;
EXPLAIN (COSTS OFF) SELECT count(*) FROM lines WHERE state = 'rejected';
SELECT count(*) FROM lines WHERE state = 'rejected';
RESET enable_seqscan;
RESET enable_bitmapscan;
-- The btree index agrees with the rank order after inserts of every state.
CREATE INDEX lines_state_idx ON lines (state);
SET enable_seqscan = off;
SELECT array_agg(DISTINCT state) FROM lines WHERE state >= 'created';
RESET enable_seqscan;

-- ===== transitions: every legal move, applied with oms.transition() and checked with is_legal()
SELECT m.state_type, m.from_state, m.event, m.to_state,
	   CASE m.state_type
		   WHEN 'order_state' THEN oms.transition(m.from_state::oms.order_state, m.event)::text
		   ELSE oms.transition(m.from_state::oms.line_state, m.event)::text
	   END = m.to_state AS applies,
	   CASE m.state_type
		   WHEN 'order_state' THEN oms.is_legal(m.from_state::oms.order_state, m.to_state::oms.order_state)
		   ELSE oms.is_legal(m.from_state::oms.line_state, m.to_state::oms.line_state)
	   END AS is_legal
  FROM oms.legal_moves() m;

-- is_legal() is true exactly for the (from, to) pairs of legal_moves(): all 14*14 and 15*15 pairs.
SELECT 'order_state' AS type, count(*) FILTER (WHERE oms.is_legal(f, t)) AS legal_pairs,
	   count(*) FILTER (WHERE oms.is_legal(f, t) <> EXISTS (SELECT FROM oms.legal_moves() m
							WHERE m.state_type = 'order_state' AND m.from_state = f::text AND m.to_state = t::text)) AS disagreements
  FROM unnest('{created,on_hold,confirmed,backordered,partially_allocated,allocated,released,partially_shipped,shipped,delivered,partially_returned,returned,cancelled,closed}'::oms.order_state[]) f,
	   unnest('{created,on_hold,confirmed,backordered,partially_allocated,allocated,released,partially_shipped,shipped,delivered,partially_returned,returned,cancelled,closed}'::oms.order_state[]) t
UNION ALL
SELECT 'line_state', count(*) FILTER (WHERE oms.is_legal(f, t)),
	   count(*) FILTER (WHERE oms.is_legal(f, t) <> EXISTS (SELECT FROM oms.legal_moves() m
							WHERE m.state_type = 'line_state' AND m.from_state = f::text AND m.to_state = t::text))
  FROM unnest('{created,backordered,preordered,allocated,released,picked,packed,ready_for_pickup,partially_shipped,shipped,delivered,partially_returned,returned,rejected,cancelled}'::oms.line_state[]) f,
	   unnest('{created,backordered,preordered,allocated,released,picked,packed,ready_for_pickup,partially_shipped,shipped,delivered,partially_returned,returned,rejected,cancelled}'::oms.line_state[]) t;

-- The legal targets of each state in lifecycle order, as the state diagram shows them (a move to
-- the same state, such as a second partial shipment, is not a change and is left out).
SELECT state_type, from_state, string_agg(to_state, ', ' ORDER BY to_rank) AS legal_targets
  FROM (SELECT DISTINCT m.state_type, m.from_state, m.to_state,
			   CASE m.state_type WHEN 'order_state' THEN oms.state_rank(m.from_state::oms.order_state)
				   ELSE oms.state_rank(m.from_state::oms.line_state) END AS from_rank,
			   CASE m.state_type WHEN 'order_state' THEN oms.state_rank(m.to_state::oms.order_state)
				   ELSE oms.state_rank(m.to_state::oms.line_state) END AS to_rank
		  FROM oms.legal_moves() m
		 WHERE m.to_state <> m.from_state) t
 GROUP BY state_type, from_state, from_rank
 ORDER BY state_type DESC, from_rank;

-- A life: a line from created to returned, and an order along with it.
SELECT oms.transition(oms.transition(oms.transition(oms.transition(oms.transition(oms.transition(
	   'created'::oms.line_state, 'allocate'), 'release'), 'pick'), 'pack'), 'ship'), 'return') AS line;
SELECT oms.transition(oms.transition(oms.transition(oms.transition(
	   'created'::oms.order_state, 'hold'), 'allocate'), 'ship'), 'close') AS "order";

-- Illegal moves: 55000 naming the state and the event, hinting at the legal events.
SELECT oms.transition('shipped'::oms.line_state, 'cancel');
SELECT * FROM pg_temp.try($$SELECT oms.transition('allocated'::oms.line_state, 'collect')$$);
SELECT * FROM pg_temp.try($$SELECT oms.transition('backordered'::oms.line_state, 'ship')$$);
SELECT * FROM pg_temp.try($$SELECT oms.transition('returned'::oms.line_state, 'deliver')$$);
SELECT * FROM pg_temp.try($$SELECT oms.transition('cancelled'::oms.line_state, 'reroute')$$);
SELECT * FROM pg_temp.try($$SELECT oms.transition('partially_shipped'::oms.order_state, 'cancel')$$);
SELECT * FROM pg_temp.try($$SELECT oms.transition('shipped'::oms.order_state, 'hold')$$);
SELECT * FROM pg_temp.try($$SELECT oms.transition('closed'::oms.order_state, 'return')$$);
SELECT * FROM pg_temp.try($$SELECT oms.transition('on_hold'::oms.order_state, 'hold')$$);
-- Unknown events: 22023 listing the events of that type.
SELECT * FROM pg_temp.try($$SELECT oms.transition('created'::oms.line_state, 'teleport')$$);
SELECT * FROM pg_temp.try($$SELECT oms.transition('created'::oms.order_state, 'pick')$$);
-- NULL in, NULL out (the functions are strict).
SELECT oms.transition(NULL::oms.line_state, 'ship') IS NULL AS null_state,
	   oms.transition('created'::oms.order_state, NULL) IS NULL AS null_event;

-- ===== rollup: each rule, in the order they apply (array form)
SELECT rule, lines::text, oms.rollup(lines) AS "order"
  FROM (VALUES
	('no lines', '{}'::oms.line_state[]),
	('all cancelled', '{cancelled,cancelled}'),
	('all returned (cancelled ignored)', '{returned,cancelled,returned}'),
	('any returned', '{returned,delivered}'),
	('any partially returned', '{partially_returned,shipped,created}'),
	('all delivered', '{delivered,delivered,cancelled}'),
	('all shipped or delivered', '{shipped,delivered}'),
	('all shipped', '{shipped}'),
	('any partially shipped', '{partially_shipped,shipped}'),
	('any shipped', '{shipped,backordered}'),
	('any delivered', '{delivered,rejected}'),
	('all released (or further, before shipping)', '{released,picked,packed,ready_for_pickup}'),
	('all allocated or released', '{allocated,released,cancelled}'),
	('all allocated', '{allocated}'),
	('any allocated', '{allocated,backordered}'),
	('any released', '{picked,created}'),
	('any allocated, with a rejected line', '{rejected,allocated}'),
	('all backordered or preordered', '{backordered,preordered,cancelled}'),
	('all preordered', '{preordered}'),
	('all created', '{created,created,cancelled}'),
	('created and backordered', '{created,backordered}'),
	('rejected', '{rejected}'),
	('created and preordered', '{created,preordered}'),
	('NULL elements are skipped', '{NULL,allocated,NULL}'),
	('only NULL elements', '{NULL}')
  ) AS t(rule, lines);

-- The aggregate agrees with the array form, per group; no rows roll up to created.
CREATE TEMP TABLE order_lines_t (order_no int, line_no int, state oms.line_state);
INSERT INTO order_lines_t VALUES
	(1, 1, 'allocated'), (1, 2, 'backordered'), (1, 3, 'cancelled'),
	(2, 1, 'shipped'), (2, 2, 'delivered'),
	(3, 1, 'cancelled'), (3, 2, 'cancelled'),
	(4, 1, 'returned'), (4, 2, 'cancelled'),
	(5, 1, 'created'), (5, 2, 'rejected'),
	(6, 1, 'ready_for_pickup'), (6, 2, NULL);
SELECT order_no, oms.rollup(state) AS aggregate, oms.rollup(array_agg(state)) AS array_form
  FROM order_lines_t GROUP BY order_no ORDER BY order_no;
SELECT oms.rollup(state) AS no_rows FROM order_lines_t WHERE false;
-- The order state is itself sortable and groupable.
SELECT oms.rollup(state) AS "order", count(*) FROM order_lines_t GROUP BY order_no ORDER BY 1 DESC;

-- The aggregate runs in parallel: partial bitmasks are combined with int4or.
CREATE TABLE public.states_parallel (order_no int, state oms.line_state) WITH (parallel_workers = 2);
INSERT INTO public.states_parallel
	SELECT i % 4, CASE WHEN i % 4 = 0 THEN 'shipped' WHEN i = 99999 THEN 'released' ELSE 'allocated' END::oms.line_state
	  FROM generate_series(1, 100000) i;
ANALYZE public.states_parallel;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT oms.rollup(state) FROM public.states_parallel;
SELECT oms.rollup(state) FROM public.states_parallel;
SELECT oms.rollup(state) FROM public.states_parallel WHERE order_no <> 0;
SELECT oms.rollup(state) FROM public.states_parallel WHERE order_no = 3 AND state <> 'released';
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
DROP TABLE public.states_parallel;
