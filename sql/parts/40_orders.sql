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
