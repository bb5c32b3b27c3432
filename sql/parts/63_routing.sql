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

-- Backends keep each tenant's active locations for routing's pruned search (src/route_load.c);
-- any change of the locations or of the country centroids drops them everywhere.
CREATE FUNCTION oms._routing_data_changed() RETURNS trigger
	LANGUAGE c
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_routing_data_changed';
COMMENT ON FUNCTION oms._routing_data_changed() IS 'Internal: trigger invalidating every backend''s cached routing locations after a change of oms.locations or oms.country_centroids';
CREATE TRIGGER routing_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON oms.locations
	FOR EACH STATEMENT EXECUTE FUNCTION oms._routing_data_changed();
CREATE TRIGGER routing_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON oms.country_centroids
	FOR EACH STATEMENT EXECUTE FUNCTION oms._routing_data_changed();
