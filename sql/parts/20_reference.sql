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
