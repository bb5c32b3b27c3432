-- Hot SKUs (flash sales): stock slots, so that the orders of one SKU do not queue on its stock row.
--
-- Every reservation takes its units with one check-and-take UPDATE of the stock row
-- (src/reservation.c), and the row stays locked until the order commits, WAL flush included: the
-- orders of one SKU at one location go one at a time. For a SKU declared hot (oms.set_hot), the
-- free units of each of its stock rows are spread over N slot rows (oms.stock_slots.free), taken
-- out of the stock row by counting them in stock.reserved. A reservation then takes from the slot
-- of its backend (pid mod N) with the same one-statement check-and-take; N orders go at once.
--
--   stock.reserved = the sum of the row's reservations + the free units of its slots
--   ATP = on_hand - reserved - safety_stock + the free units of its slots
--
-- so that every reader of stock.reserved other than ATP and routing (alerts, replenishment,
-- reports) sees the slots' units as not available, never more than there is; ATP and routing add
-- them back. An empty slot makes a reservation try the other slots without waiting (SKIP LOCKED),
-- then refill from the stock row (a batch of up to 1/(2N) of what is available, one lock of the
-- hot row per batch, not per order), then wait for the slots that still have units; only when
-- none has any is it refused (OM001). Giving units back (a cancel, a shipment, an expired hold)
-- goes to the stock row as for any SKU: those are not the burst. Slots are rows: a crash, an abort
-- and concurrency are PostgreSQL's business as for every other row.

ALTER TABLE oms.stock
	ADD COLUMN hot boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN oms.stock.hot IS 'The SKU is hot here (oms.set_hot): reservations take from oms.stock_slots, and reserved counts the slots'' free units too';

CREATE TABLE oms.stock_slots (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	item_id			int NOT NULL,
	location_id		int NOT NULL,
	slot			int NOT NULL CHECK (slot >= 0 AND slot < 64),
	free			bigint NOT NULL DEFAULT 0 CHECK (free >= 0),
	PRIMARY KEY (tenant_id, item_id, location_id, slot),
	FOREIGN KEY (tenant_id, item_id, location_id) REFERENCES oms.stock
) WITH (fillfactor = 20);
COMMENT ON TABLE oms.stock_slots IS 'Units of a hot SKU at a location set aside for concurrent orders: each slot is taken by its own orders (pid mod slots); free units count in stock.reserved and in ATP';

-- The stock row's side of moving units between a stock row and its slots: reserved moves by
-- delta (positive: units into the slots, only if that many are available; negative: back), with
-- the stock guard open for that row, as only the reservation trigger may otherwise move reserved.
CREATE FUNCTION oms._slot_units(p_tenant int, p_item int, p_location int, p_delta bigint) RETURNS boolean
	LANGUAGE c
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_slot_units';
COMMENT ON FUNCTION oms._slot_units(int, int, int, bigint) IS 'Internal: moves reserved of a hot stock row by delta for its slots (positive only within on_hand - reserved - safety_stock); false when the units are not there';

-- Every free unit of a stock row's slots back to the row (a stock count or a damage during a sale
-- needs them there); the caller has locked the stock row. Returns the units moved.
CREATE FUNCTION oms._unslot(p_tenant int, p_item int, p_location int) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_free	bigint;
BEGIN
	SELECT coalesce(sum(z.free), 0) INTO v_free
	  FROM (SELECT x.free FROM oms.stock_slots x
			 WHERE x.tenant_id = p_tenant AND x.item_id = p_item AND x.location_id = p_location
			 ORDER BY x.slot FOR UPDATE) z;
	IF v_free > 0 THEN
		UPDATE oms.stock_slots x SET free = 0
		 WHERE x.tenant_id = p_tenant AND x.item_id = p_item AND x.location_id = p_location AND x.free > 0;
		PERFORM oms._slot_units(p_tenant, p_item, p_location, -v_free);
	END IF;
	RETURN v_free;
END
$$;
COMMENT ON FUNCTION oms._unslot(int, int, int) IS 'Internal: moves the free units of a hot stock row''s slots back to the row (locked by the caller); returns how many';

CREATE FUNCTION oms.set_hot(sku text, hot boolean, slots int DEFAULT 16) RETURNS int
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int := oms._item_id(v_tenant, set_hot.sku);
	r			record;
	v_n			int := 0;
BEGIN
	IF set_hot.hot IS NULL THEN
		RAISE EXCEPTION 'hot must be true or false for SKU "%"', set_hot.sku
			USING ERRCODE = '22023', HINT = 'oms.set_hot(''SKU-1'', true) before a flash sale, false after it.';
	END IF;
	IF set_hot.slots IS NULL OR set_hot.slots < 2 OR set_hot.slots > 64 THEN
		RAISE EXCEPTION 'invalid number of slots % for SKU "%"', coalesce(set_hot.slots::text, 'NULL'), set_hot.sku
			USING ERRCODE = '22023', HINT = 'From 2 to 64; about the number of clients that buy at once (default 16).';
	END IF;
	-- Every stock row of the SKU, in lock order; its slots' free units go back to the row first.
	FOR r IN SELECT s.location_id, s.hot FROM oms.stock s
			  WHERE s.tenant_id = v_tenant AND s.item_id = v_item
			  ORDER BY s.location_id
			  FOR UPDATE
	LOOP
		PERFORM oms._unslot(v_tenant, v_item, r.location_id);
		DELETE FROM oms.stock_slots x
		 WHERE x.tenant_id = v_tenant AND x.item_id = v_item AND x.location_id = r.location_id;
		UPDATE oms.stock s SET hot = set_hot.hot
		 WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = r.location_id;
		IF set_hot.hot THEN
			-- Empty slots: the first orders fill them from the stock row.
			INSERT INTO oms.stock_slots (tenant_id, item_id, location_id, slot)
				SELECT v_tenant, v_item, r.location_id, n FROM generate_series(0, set_hot.slots - 1) n;
		END IF;
		v_n := v_n + 1;
	END LOOP;
	RETURN v_n;
END
$$;
COMMENT ON FUNCTION oms.set_hot(text, boolean, int) IS 'Declares a SKU hot (a flash sale) or not: its stock rows get slots that concurrent orders take from without queuing on one row (true), or give their free units back (false); returns the number of stock rows; unknown SKU: 22023';
