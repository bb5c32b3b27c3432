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
