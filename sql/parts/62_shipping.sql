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

-- ----- which order counted where: so that an order that leaves a location gives its count back
CREATE TABLE oms.order_capacity (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	order_id		bigint NOT NULL,
	location_id		int NOT NULL,
	day				date NOT NULL,
	PRIMARY KEY (tenant_id, order_id, location_id),
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations
);
COMMENT ON TABLE oms.order_capacity IS 'The (location, day) each order is counted at in oms.location_capacity_used (one per order and location); the count is given back when the order no longer uses the location (cancelled, rejected, re-routed)';

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
SELECT pg_catalog.pg_extension_config_dump('oms.order_capacity', '');
SELECT pg_catalog.pg_extension_config_dump('oms.line_exclusions', '');
