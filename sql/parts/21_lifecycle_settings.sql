-- Settings of the fulfilment lifecycle that belong to channels and locations (issue 7). They are
-- added here, beside the tables of 20_reference.sql, so that each concept keeps its own file.

ALTER TABLE oms.channels
	ADD COLUMN requires_authorization boolean NOT NULL DEFAULT true,
	ADD COLUMN auto_release boolean NOT NULL DEFAULT false,
	ADD COLUMN return_days int NOT NULL DEFAULT 30 CHECK (return_days BETWEEN 0 AND 3650),
	ADD COLUMN refunds_outside boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN oms.channels.requires_authorization IS 'An order of this channel is released only once payments authorise its total (web, marketplace); false for channels paid at the till (POS)';
COMMENT ON COLUMN oms.channels.auto_release IS 'Release an order at placement (and when its last hold is resolved) when nothing blocks it';
COMMENT ON COLUMN oms.channels.return_days IS 'Days after delivery (or shipment, when not delivered) within which a return may be created; 0: no returns';
COMMENT ON COLUMN oms.channels.refunds_outside IS 'The channel refunds its customers itself (a marketplace): receiving a return records the refund due but does not call oms.refund_payment';

ALTER TABLE oms.locations
	ADD COLUMN pickup_days int NOT NULL DEFAULT 7 CHECK (pickup_days BETWEEN 1 AND 365);
COMMENT ON COLUMN oms.locations.pickup_days IS 'Days a click & collect order waits at this store once ready before the worker reports it uncollected (event pickup_uncollected)';
