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
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no, supply_id)
		SELECT p_tenant, p_items[p_line[n]], p_loc[n], p_qty[n], p_order, p_line[n], p_supply[n]
		  FROM generate_subscripts(p_line, 1) n
		 WHERE p_kind[n] = 'preorder'
		 ORDER BY p_items[p_line[n]], p_loc[n], p_supply[n];
END
$$;
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
