-- demo/retailer.sql: the sample retailer of `make demo`.
--
-- "Albero & Brad" (fictional): fashion and home, Italian-Romanian. Two warehouses (Milano,
-- Bucharest), five stores that ship and offer click & collect (Milano, Roma, Torino, Bucuresti,
-- Cluj), one drop-ship furniture vendor, five sales channels, 500 SKUs with stock everywhere.
-- Reference data is plain SQL (tenant_id defaults to the current tenant); stock goes through
-- oms.set_stock so that every opening count is in the movement ledger.
-- Deterministic: setseed() fixes every random() below, so every run prints the same demo.

SET max_parallel_workers_per_gather = 0;	-- random() in one process, in one order
SET client_min_messages = warning;
-- Comparing oms.order_state / oms.line_state values with '=' needs their operators, which live in
-- schema oms: put it on the path (tables and functions are still written schema-qualified).
SET search_path = public, oms;

\echo
\echo '════════════════════════════════════════════════════════════════════════════════════'
\echo '  oms demo: Albero & Brad, fashion & home, Milano & Bucuresti (a fictional retailer)'
\echo '════════════════════════════════════════════════════════════════════════════════════'

-- The demo's own helpers live in schema demo, apart from the extension.
CREATE SCHEMA demo;

-- Places one order and records the outcome. A sold-out refusal (OM001) is an answer, not a
-- failure: it is kept with its message, as a checkout page would show it. Other errors stop the demo.
CREATE TABLE demo.outcomes (
	seq			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	scenario	text NOT NULL,
	channel		text NOT NULL,
	external_id	text NOT NULL,
	order_id	bigint,
	sqlstate	text,
	message		text,
	detail		text
);

CREATE FUNCTION demo.place(scenario text, payload jsonb) RETURNS bigint
	LANGUAGE plpgsql
AS $$
DECLARE
	v_id		bigint;
	v_state		text;
	v_message	text;
	v_detail	text;
BEGIN
	BEGIN
		v_id := oms.place_order(payload);
	EXCEPTION WHEN SQLSTATE 'OM001' THEN
		GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
								v_detail = PG_EXCEPTION_DETAIL;
	END;
	INSERT INTO demo.outcomes (scenario, channel, external_id, order_id, sqlstate, message, detail)
		VALUES (scenario, payload ->> 'channel', payload ->> 'external_id', v_id, v_state, v_message, v_detail);
	RETURN v_id;
END
$$;

-- The order that demo/walk/ follows through its life (placed in demo/walk/20_place_order.sql).
CREATE FUNCTION demo.walk_order() RETURNS bigint
	LANGUAGE sql STABLE
	RETURN (SELECT o.id FROM oms.orders o JOIN oms.channels c ON (c.tenant_id, c.id) = (o.tenant_id, o.channel_id)
			 WHERE c.code = 'web' AND o.external_id = 'AB-WEB-200001');

SELECT setseed(0.1968) \gset

-- ───────────────────────────────────────────────────────── locations and channels
INSERT INTO oms.locations (code, kind, name, country, city, postal_code, latitude, longitude,
						   can_ship, can_pickup, priority, daily_capacity) VALUES
	('WH-MI',       'warehouse', 'Magazzino Milano Pero',          'IT', 'Pero',         '20016',  45.5098,  9.0893, true, false,  10, 2500),
	('WH-BU',       'warehouse', 'Depozit Bucuresti Chiajna',      'RO', 'Chiajna',      '077040', 44.4586, 25.9726, true, false,  20, 1800),
	('STORE-MI-01', 'store',     'Albero & Brad Milano Brera',     'IT', 'Milano',       '20121',  45.4719,  9.1877, true, true,   50,   60),
	('STORE-RM-01', 'store',     'Albero & Brad Roma Via del Corso','IT', 'Roma',        '00186',  41.9009, 12.4801, true, true,   51,   60),
	('STORE-TO-01', 'store',     'Albero & Brad Torino Via Roma',  'IT', 'Torino',       '10123',  45.0677,  7.6824, true, true,   52,   40),
	('STORE-BU-01', 'store',     'Albero & Brad Bucuresti Victoriei','RO', 'Bucuresti',  '010063', 44.4378, 26.0969, true, true,   53,   60),
	('STORE-CJ-01', 'store',     'Albero & Brad Cluj Piata Unirii','RO', 'Cluj-Napoca',  '400098', 46.7694, 23.5899, true, true,   54,   40),
	('VENDOR-MOB',  'vendor',    'Mobila Bistrita (drop-ship)',    'RO', 'Bistrita',     '420005', 47.1325, 24.4900, true, false,  80,  100);

INSERT INTO oms.channels (code, kind, name, default_currency) VALUES
	('web',       'web',         'albero-brad.com',            'EUR'),
	('app',       'app',         'Albero & Brad app',          'EUR'),
	('amazon-it', 'marketplace', 'Amazon.it',                  'EUR'),
	('emag',      'marketplace', 'eMAG.ro',                    'RON'),
	('pos',       'pos',         'Store tills (IT in EUR, RO in RON)', 'EUR');

-- ───────────────────────────────────────────────────────── 494 generated SKUs
CREATE TABLE demo.categories (dept text, category text, prefix text, n int, nouns text[],
							  wmin numeric, wmax numeric, cost_min numeric, cost_max numeric, sized text);
INSERT INTO demo.categories VALUES
	('fashion', 'Dresses',     'DRS', 42, '{"Wrap dress","Midi dress","Shirt dress","Slip dress","Knit dress"}',           0.3,  0.9,  18,  55, 'XS S M L XL'),
	('fashion', 'Shirts',      'SHT', 48, '{"Linen shirt","Oxford shirt","Poplin shirt","Silk blouse","Denim shirt"}',      0.2,  0.4,  12,  35, 'XS S M L XL'),
	('fashion', 'Knitwear',    'KNT', 38, '{"Merino crew-neck","Cashmere cardigan","Cable-knit jumper","Wool turtleneck"}', 0.3, 0.7,  20,  80, 'XS S M L XL'),
	('fashion', 'Trousers',    'TRS', 38, '{"Chinos","Straight jeans","Pleated trousers","Wide-leg trousers"}',            0.4,  0.8,  15,  40, '38 40 42 44 46 48'),
	('fashion', 'Outerwear',   'OUT', 28, '{"Trench coat","Wool coat","Quilted jacket","Leather jacket"}',                 0.8,  2.2,  45, 160, 'XS S M L XL'),
	('fashion', 'Shoes',       'SHO', 38, '{"Leather loafers","Suede sneakers","Chelsea boots","Ballet flats"}',           0.6,  1.4,  25,  75, '36 37 38 39 40 41 42 43 44'),
	('fashion', 'Bags',        'BAG', 28, '{"Leather tote","Crossbody bag","Weekend bag","Card holder"}',                  0.1,  1.2,  10,  90, NULL),
	('fashion', 'Accessories', 'ACC', 34, '{"Silk scarf","Wool beanie","Leather belt","Sunglasses"}',                      0.05, 0.3,   5,  30, NULL),
	('home',    'Bed linen',   'BED', 30, '{"Linen duvet cover","Percale sheet set","Pillowcase pair","Waffle blanket"}',  0.8,  2.5,  20,  70, NULL),
	('home',    'Bath',        'BTH', 25, '{"Bath towel","Hand towel set","Bath mat","Bathrobe"}',                         0.3,  1.5,   6,  35, NULL),
	('home',    'Tableware',   'TBL', 35, '{"Dinner plate set","Pasta bowl set","Espresso cups","Serving platter"}',       1.0,  4.0,  10,  45, NULL),
	('home',    'Glassware',   'GLS', 20, '{"Wine glasses","Tumbler set","Carafe","Murano vase"}',                         0.5,  2.0,   8,  60, NULL),
	('home',    'Cushions',    'CSH', 25, '{"Linen cushion","Wool cushion","Velvet cushion","Embroidered cushion"}',       0.4,  1.0,   8,  25, NULL),
	('home',    'Rugs',        'RUG', 20, '{"Kilim rug","Wool runner","Jute rug","Cotton rug"}',                           2.0, 12.0,  30, 180, NULL),
	('home',    'Lighting',    'LMP', 20, '{"Ceramic table lamp","Rattan pendant","Brass floor lamp","Linen lampshade"}',  1.0,  8.0,  20, 120, NULL),
	('home',    'Furniture',   'FUR', 25, '{"Oak side table","Walnut bench","Rattan armchair","Oak sideboard","Beech chair"}', 6.0, 45.0, 60, 480, NULL);

INSERT INTO oms.items (sku, name, weight, unit_cost, brand, category, backorderable, preorderable)
SELECT c.prefix || '-' || lpad(g.i::text, 4, '0'),
	   c.nouns[1 + (g.i - 1) % cardinality(c.nouns)]
		 || ' ''' || (ARRAY['Brera','Navigli','Trastevere','Lingotto','Herastrau','Cotroceni','Sibiu','Bran',
							'Portofino','Amalfi','Lipscani','Dorobanti','Capri','Garda','Bucegi','Delta'])[1 + floor(random() * 16)::int]
		 || ''', '
		 || CASE WHEN c.dept = 'fashion'
				 THEN (ARRAY['white','black','navy','sand','terracotta','olive','burgundy','camel','sky blue','charcoal'])[1 + floor(random() * 10)::int]
				 ELSE (ARRAY['natural','ivory','sage','terracotta','indigo','ochre','charcoal','rose'])[1 + floor(random() * 8)::int] END
		 || coalesce(', ' || (string_to_array(c.sized, ' '))[1 + floor(random() * cardinality(string_to_array(c.sized, ' ')))::int], ''),
	   round(c.wmin + random()::numeric * (c.wmax - c.wmin), 2),
	   round(c.cost_min + random()::numeric * (c.cost_max - c.cost_min), 2),
	   CASE WHEN c.category = 'Furniture' THEN 'Mobila Bistrita'
			WHEN c.dept = 'fashion' THEN (ARRAY['Albero','Albero Studio','Brad Atelier','Lana di Biella','Carpathia Wool'])[1 + floor(random() * 5)::int]
			ELSE (ARRAY['Brad Home','Casa Albero','Maramures Craft','Ceramiche Deruta','Sticla Avrig'])[1 + floor(random() * 5)::int] END,
	   c.category,
	   c.category = 'Furniture' OR random() < 0.04,		-- furniture is made to order
	   false
  FROM demo.categories c
 CROSS JOIN LATERAL generate_series(1, c.n) g(i)
 ORDER BY c.prefix, g.i;

-- ───────────────────────────────────────────────────────── 6 hand-made SKUs the story uses
INSERT INTO oms.items (sku, name, weight, unit_cost, brand, category, backorderable, preorderable) VALUES
	('SHIRT-BRERA-M',   'Linen shirt ''Brera'', white, M',                   0.25,  21.40, 'Albero',          'Shirts',      false, false),
	('CUSHION-MARA',    'Cushion ''Maramures'', hand-woven wool, 45x45',      0.70,  14.80, 'Maramures Craft', 'Cushions',    false, false),
	('TRENCH-NAVIGLI-S','Trench coat ''Navigli'', sand, S',                  1.40,  78.00, 'Albero Studio',   'Outerwear',   false, false),
	('SCARF-SIGHISOARA','Silk scarf ''Sighisoara'', limited edition of 50',   0.08,  19.00, 'Brad Atelier',    'Accessories', false, false),
	('SIDEBOARD-CARPATI','Oak sideboard ''Carpati'', made to order',          42.00, 410.00, 'Mobila Bistrita', 'Furniture',   true,  false),
	('MOKA-CUPS-6',     'Espresso cups ''Moka'', set of 6',                  1.10,   9.90, 'Ceramiche Deruta','Tableware',   false, false);

-- ───────────────────────────────────────────────────────── opening stock (a count per row)
-- Warehouses carry everything but furniture; each store about half of the fashion and small
-- home goods; the vendor holds the furniture. A few rows start at zero (sold out).
CREATE TABLE demo.opening (sku text, location text, on_hand bigint, safety_stock bigint);
INSERT INTO demo.opening
SELECT i.sku, l.code,
	   CASE WHEN random() < 0.06 THEN 0
			WHEN l.code = 'WH-MI' THEN 5 + floor(random() * 76)::int
			WHEN l.code = 'WH-BU' THEN 3 + floor(random() * 48)::int
			WHEN l.kind = 'store' THEN 1 + floor(random() * 8)::int
			ELSE 2 + floor(random() * 14)::int END,
	   CASE l.kind WHEN 'warehouse' THEN 3 WHEN 'store' THEN 1 ELSE 0 END
  FROM oms.items i
  JOIN demo.categories c ON c.category = i.category
  JOIN oms.locations l ON CASE
		WHEN c.category = 'Furniture' THEN l.kind = 'vendor'
		WHEN l.kind = 'warehouse' THEN true
		WHEN l.kind = 'store' THEN (c.dept = 'fashion' OR c.category IN ('Cushions', 'Tableware', 'Glassware', 'Bath'))
								   AND random() < 0.5
		ELSE false END
 WHERE i.sku ~ '^[A-Z]{3}-[0-9]{4}$'
 ORDER BY i.sku, l.code;

-- The story's SKUs get stock a reader can follow by hand.
INSERT INTO demo.opening (sku, location, on_hand, safety_stock) VALUES
	('SHIRT-BRERA-M',     'WH-MI',        40, 3), ('SHIRT-BRERA-M',     'WH-BU',       12, 3),
	('SHIRT-BRERA-M',     'STORE-MI-01',   4, 1), ('SHIRT-BRERA-M',     'STORE-RM-01',  3, 1),
	('CUSHION-MARA',      'WH-MI',        10, 2), ('CUSHION-MARA',      'WH-BU',       25, 2),
	('CUSHION-MARA',      'STORE-CJ-01',   6, 1),
	('TRENCH-NAVIGLI-S',  'WH-MI',         8, 3), ('TRENCH-NAVIGLI-S',  'STORE-MI-01',  3, 1),
	('TRENCH-NAVIGLI-S',  'STORE-TO-01',   2, 1),
	('SCARF-SIGHISOARA',  'WH-MI',         0, 0), ('SCARF-SIGHISOARA',  'STORE-MI-01',  0, 0),
	('SIDEBOARD-CARPATI', 'VENDOR-MOB',    0, 0),
	('MOKA-CUPS-6',       'WH-MI',        30, 3), ('MOKA-CUPS-6',       'STORE-MI-01', 12, 1);

SELECT count(oms.set_stock(o.sku, o.location, o.on_hand, 'opening count')) AS stock_rows
  FROM demo.opening o \gset
UPDATE oms.stock s SET safety_stock = o.safety_stock
  FROM demo.opening o
  JOIN oms.items i ON i.sku = o.sku
  JOIN oms.locations l ON l.code = o.location
 WHERE s.item_id = i.id AND s.location_id = l.id AND s.tenant_id = i.tenant_id
   AND o.safety_stock > 0;

\echo
\echo '1. The retailer'
\echo '   Eight locations: lower priority numbers are tried first, so an order ships from the'
\echo '   Milano warehouse when it can, then Bucharest, then a store, and furniture from the vendor.'
\echo
SELECT l.code AS location, l.kind, l.city, l.country AS "ctry",
	   CASE WHEN l.can_ship THEN 'yes' ELSE '' END AS ships,
	   CASE WHEN l.can_pickup THEN 'yes' ELSE '' END AS pickup,
	   l.priority AS prio,
	   count(s.item_id) AS skus,
	   coalesce(sum(s.on_hand), 0) AS on_hand,
	   coalesce(sum(s.safety_stock), 0) AS safety
  FROM oms.locations l
  LEFT JOIN oms.stock s ON s.tenant_id = l.tenant_id AND s.location_id = l.id
 GROUP BY l.tenant_id, l.id
 ORDER BY l.priority, l.code;

\echo
SELECT c.code AS channel, c.kind, c.name, c.default_currency AS currency
  FROM oms.channels c
 ORDER BY c.id;

\echo
SELECT count(*) AS skus,
	   count(DISTINCT category) AS categories,
	   count(DISTINCT brand) AS brands,
	   count(*) FILTER (WHERE backorderable) AS backorderable,
	   :stock_rows AS "opening counts",
	   (SELECT sum(on_hand) FROM oms.stock) AS "units on hand",
	   (SELECT count(*) FROM oms.stock_movements) AS "ledger rows"
  FROM oms.items;
