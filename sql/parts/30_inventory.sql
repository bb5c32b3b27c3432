-- Inventory: stock per SKU and location, incoming supply, and the ledger of on_hand changes.

CREATE TABLE oms.stock (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	item_id			int NOT NULL,
	location_id		int NOT NULL,
	on_hand			bigint NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
	reserved		bigint NOT NULL DEFAULT 0,
	safety_stock	bigint NOT NULL DEFAULT 0 CHECK (safety_stock >= 0),
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, item_id, location_id),
	FOREIGN KEY (tenant_id, item_id) REFERENCES oms.items,
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations,
	CONSTRAINT stock_reserved_within_on_hand CHECK (reserved >= 0 AND reserved <= on_hand)
) WITH (fillfactor = 80);
CREATE INDEX stock_location_idx ON oms.stock (tenant_id, location_id);
COMMENT ON TABLE oms.stock IS 'On hand, reserved and safety stock per SKU and location; reserved moves only through oms.reservations';
COMMENT ON COLUMN oms.stock.reserved IS 'Sum of the live reservations of this SKU at this location, kept by the reservation trigger';
COMMENT ON COLUMN oms.stock.safety_stock IS 'Units kept back from promises (ATP = on_hand - reserved - safety_stock)';

CREATE TABLE oms.supply (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	item_id			int NOT NULL,
	location_id		int NOT NULL,
	qty				bigint NOT NULL CHECK (qty > 0),
	expected_date	date NOT NULL,
	kind			text NOT NULL DEFAULT 'purchase_order' CHECK (kind IN ('purchase_order', 'transfer', 'production')),
	reference		text,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, id),
	FOREIGN KEY (tenant_id, item_id) REFERENCES oms.items,
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations
);
CREATE INDEX supply_item_idx ON oms.supply (tenant_id, item_id, expected_date);
COMMENT ON TABLE oms.supply IS 'Incoming stock (purchase orders, transfers) per SKU and location with its expected date';

CREATE TABLE oms.stock_movements (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	id				bigint GENERATED ALWAYS AS IDENTITY,
	item_id			int NOT NULL,
	location_id		int NOT NULL,
	kind			text NOT NULL CHECK (kind IN ('count', 'adjustment', 'receipt', 'shipment', 'return', 'transfer_in', 'transfer_out')),
	delta			bigint NOT NULL,
	on_hand_after	bigint NOT NULL CHECK (on_hand_after >= 0),
	reason			text NOT NULL,
	reference		text,
	moved_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	moved_by		text NOT NULL DEFAULT session_user,
	PRIMARY KEY (tenant_id, id)
);
CREATE INDEX stock_movements_item_idx ON oms.stock_movements (tenant_id, item_id, location_id, moved_at);
COMMENT ON TABLE oms.stock_movements IS 'Append-only ledger of every change of on_hand: kind, signed delta, resulting on_hand, reason and reference';
