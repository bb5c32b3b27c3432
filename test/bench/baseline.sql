-- make bench: the honest baseline for oms.place_order (psql script, run after load.sql).
--
-- What a competent engineer would write by hand in plain PL/pgSQL to take a 3-line order in one
-- round trip, correctly: the caller names the location of every line (no routing), and the
-- function
--   1. inserts the order, idempotent on (channel, external_id) (a retry returns the first id);
--   2. resolves SKUs and location codes (oms.items, oms.locations) and inserts the lines;
--   3. takes the stock of each line with one UPDATE that checks and takes
--      (reserved = reserved + qty WHERE on_hand - reserved >= qty), lines in (item, location)
--      order so that concurrent orders never deadlock; a short line raises OM001 and the whole
--      order rolls back.
-- Its own tables (schema bench, copies of the shape of oms's): no state types, no history, no
-- reservation rows, no triggers, no foreign keys but lines -> order. Its stock is a copy of the
-- default tenant's, so it locks the rows oms.place_order would lock for the same SKUs, and its
-- order tables start with a copy of the same history of delivered orders (not reserved).
-- oms.place_order does all of this plus validation, routing, reservations, the state machine and
-- the audit trail; the ratio between the two is the price of those.

\set ON_ERROR_STOP on

CREATE TABLE bench.b_orders (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	channel		text NOT NULL,
	external_id	text NOT NULL,
	ship_to		jsonb NOT NULL,
	total		numeric NOT NULL,
	placed_at	timestamptz NOT NULL DEFAULT now(),
	UNIQUE (channel, external_id)
);

CREATE TABLE bench.b_order_lines (
	order_id	bigint NOT NULL REFERENCES bench.b_orders,
	line_no		int NOT NULL,
	item_id		int NOT NULL,
	location_id	int NOT NULL,
	qty			int NOT NULL CHECK (qty > 0),
	unit_price	numeric NOT NULL CHECK (unit_price >= 0),
	PRIMARY KEY (order_id, line_no)
);

CREATE TABLE bench.b_stock (
	item_id		int NOT NULL,
	location_id	int NOT NULL,
	on_hand		bigint NOT NULL,
	reserved	bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (item_id, location_id),
	CHECK (reserved >= 0 AND reserved <= on_hand)
) WITH (fillfactor = 80);

INSERT INTO bench.b_stock (item_id, location_id, on_hand)
SELECT s.item_id, s.location_id, s.on_hand
  FROM oms.stock s
 WHERE s.tenant_id = (SELECT t.id FROM oms.tenants t WHERE t.code = 'default')
 ORDER BY s.item_id, s.location_id;

INSERT INTO bench.b_orders (channel, external_id, ship_to, total, placed_at)
SELECT 'web', o.external_id, o.ship_to, o.total, o.placed_at
  FROM oms.orders o
 WHERE o.tenant_id = (SELECT t.id FROM oms.tenants t WHERE t.code = 'default') AND o.external_id LIKE 'hist-%'
 ORDER BY o.id;
INSERT INTO bench.b_order_lines (order_id, line_no, item_id, location_id, qty, unit_price)
SELECT b.id, l.line_no, l.item_id, l.location_id, l.qty, l.unit_price
  FROM oms.orders o
  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
  JOIN bench.b_orders b ON b.channel = 'web' AND b.external_id = o.external_id
 WHERE o.tenant_id = (SELECT t.id FROM oms.tenants t WHERE t.code = 'default') AND o.external_id LIKE 'hist-%'
 ORDER BY b.id, l.line_no;

-- p: {"channel", "external_id", "ship_to", "lines": [{"sku", "location", "qty", "unit_price"}]}
CREATE FUNCTION bench.place_order_baseline(p jsonb) RETURNS bigint
	LANGUAGE plpgsql
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_id		bigint;
	v_n			int;
	r			record;
BEGIN
	INSERT INTO bench.b_orders (channel, external_id, ship_to, total)
		VALUES (p ->> 'channel', p ->> 'external_id', p -> 'ship_to',
				(SELECT sum((l ->> 'qty')::int * (l ->> 'unit_price')::numeric)
				   FROM jsonb_array_elements(p -> 'lines') l))
		ON CONFLICT (channel, external_id) DO NOTHING
		RETURNING id INTO v_id;
	IF v_id IS NULL THEN
		SELECT o.id INTO v_id FROM bench.b_orders o
			WHERE o.channel = p ->> 'channel' AND o.external_id = p ->> 'external_id';
		RETURN v_id;
	END IF;

	INSERT INTO bench.b_order_lines (order_id, line_no, item_id, location_id, qty, unit_price)
	SELECT v_id, l.i, it.id, loc.id, (l.v ->> 'qty')::int, (l.v ->> 'unit_price')::numeric
	  FROM jsonb_array_elements(p -> 'lines') WITH ORDINALITY l(v, i)
	  JOIN oms.items it ON it.tenant_id = v_tenant AND it.sku = l.v ->> 'sku'
	  JOIN oms.locations loc ON loc.tenant_id = v_tenant AND loc.code = l.v ->> 'location';
	GET DIAGNOSTICS v_n = ROW_COUNT;
	IF v_n <> jsonb_array_length(p -> 'lines') THEN
		RAISE EXCEPTION 'unknown SKU or location in order %', p ->> 'external_id' USING ERRCODE = '22023';
	END IF;

	FOR r IN SELECT ol.item_id, ol.location_id, ol.qty FROM bench.b_order_lines ol
			  WHERE ol.order_id = v_id ORDER BY ol.item_id, ol.location_id
	LOOP
		UPDATE bench.b_stock s SET reserved = s.reserved + r.qty
		 WHERE s.item_id = r.item_id AND s.location_id = r.location_id
		   AND s.on_hand - s.reserved >= r.qty;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'insufficient stock for item % at location %', r.item_id, r.location_id
				USING ERRCODE = 'OM001';
		END IF;
	END LOOP;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION bench.place_order_baseline(jsonb) IS 'The honest baseline: a 3-line order at caller-chosen locations in one round trip, idempotent, stock taken in (item, location) order';
