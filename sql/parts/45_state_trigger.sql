-- The state trigger (src/transition.c): every change of an order's or a line's state must be a
-- legal move (error 55000 otherwise, hinting at the legal targets), and is recorded in
-- oms.order_history with who (oms.actor, else the session user) and why (oms.reason).
--
-- INSERT is handled AFTER the row is in: an INSERT ... ON CONFLICT DO NOTHING that skips the row
-- leaves no history. UPDATE is handled BEFORE, so that an illegal move fails before any index is
-- touched, and so that orders.updated_at can be set in the new row itself. The trigger names sort
-- after most names on purpose: BEFORE triggers fire in name order, and this one must see the final
-- state of the row.
--
-- The function is SECURITY DEFINER: the history is an audit trail, written whether or not the role
-- changing the order may write to oms.order_history itself. It runs no SQL built from its input.

CREATE FUNCTION oms.state_trigger() RETURNS trigger
	LANGUAGE c SECURITY DEFINER
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_state_trigger';
COMMENT ON FUNCTION oms.state_trigger() IS 'Trigger on orders (argument ''order'') and order_lines (''line''): checks every change of state against oms.is_legal, records it in oms.order_history, sets orders.updated_at';

CREATE TRIGGER zz_state_insert AFTER INSERT ON oms.orders
	FOR EACH ROW EXECUTE FUNCTION oms.state_trigger('order');
COMMENT ON TRIGGER zz_state_insert ON oms.orders IS 'Records the first state of a new order in oms.order_history';
CREATE TRIGGER zz_state_update BEFORE UPDATE ON oms.orders
	FOR EACH ROW EXECUTE FUNCTION oms.state_trigger('order');
COMMENT ON TRIGGER zz_state_update ON oms.orders IS 'Checks and records a change of the order''s state; sets updated_at';

CREATE TRIGGER zz_state_insert AFTER INSERT ON oms.order_lines
	FOR EACH ROW EXECUTE FUNCTION oms.state_trigger('line');
COMMENT ON TRIGGER zz_state_insert ON oms.order_lines IS 'Records the first state of a new order line in oms.order_history';
CREATE TRIGGER zz_state_update BEFORE UPDATE OF state ON oms.order_lines
	FOR EACH ROW EXECUTE FUNCTION oms.state_trigger('line');
COMMENT ON TRIGGER zz_state_update ON oms.order_lines IS 'Checks and records a change of the line''s state';
