-- demo/walk/10_cart.sql: step 1 of one order's life, the cart.
-- The walk follows one web order from the cart to (in later steps) shipment, delivery and return.
-- Each step is one file, run in name order in the demo's psql session: to add a step, add a file
-- (e.g. 40_ship.sql) that finds the order with demo.walk_order() and says what it does with \echo.

\echo
\echo '4. One order, step by step: Giulia Rossi of Milano shops on albero-brad.com'
\echo
\echo '4.1 She looks at the Brera linen shirt. The product page asks oms where it can be promised'
\echo '    (ATP = on hand - reserved - safety stock):'
SELECT location, kind, on_hand, reserved, safety_stock AS safety, available
  FROM oms.atp_by_location('SHIRT-BRERA-M');
SELECT oms.atp('SHIRT-BRERA-M') AS shirt_atp_before, oms.atp('CUSHION-MARA') AS cushion_atp_before \gset

\echo
\echo '4.2 She puts 2 shirts and a Maramures cushion in her cart: oms.hold() sets them aside for'
\echo '    15 minutes at the location that would ship them, so nobody else can buy them meanwhile.'
SELECT 'SHIRT-BRERA-M' AS sku, h.held_location AS "held at", h.held_qty AS qty,
	   to_char(h.expires_at, 'HH24:MI:SS') AS "until"
  FROM oms.hold('cart-giulia-0042', 'SHIRT-BRERA-M', 2) h
UNION ALL
SELECT 'CUSHION-MARA', h.held_location, h.held_qty, to_char(h.expires_at, 'HH24:MI:SS')
  FROM oms.hold('cart-giulia-0042', 'CUSHION-MARA', 1) h;
SELECT :shirt_atp_before AS "shirt ATP before", oms.atp('SHIRT-BRERA-M') AS "with the hold",
	   :cushion_atp_before AS "cushion ATP before", oms.atp('CUSHION-MARA') AS "with the hold";
