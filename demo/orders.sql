-- demo/orders.sql: a day of orders for the retailer of demo/retailer.sql.
--
-- First a few hundred orders from every channel, generated from a fixed random seed and each
-- placed in its own transaction, as the channels would; then the cases every OMS must get right,
-- one by one with a line of commentary: click & collect, a backordered line, a refusal (OM001),
-- a duplicate submission, a cancellation, and an abandoned cart that the background worker frees.
-- (A cart converted into an order is the walk's story: demo/walk/.)

SET max_parallel_workers_per_gather = 0;
SET client_min_messages = warning;
SELECT setseed(0.0707) \gset

-- Stock of the Milano Brera store before the day, for the summary's before/after.
CREATE TABLE demo.store_before AS
SELECT i.sku, s.on_hand, s.reserved, s.safety_stock
  FROM oms.stock s
  JOIN oms.items i ON (i.tenant_id, i.id) = (s.tenant_id, s.item_id)
  JOIN oms.locations l ON (l.tenant_id, l.id) = (s.tenant_id, s.location_id)
 WHERE l.code = 'STORE-MI-01';

-- ───────────────────────────────────────────────────────── customers' cities and names
CREATE TABLE demo.cities (country text, city text, postal_code text, lat numeric, lon numeric);
INSERT INTO demo.cities VALUES
	('IT', 'Milano', '20121', 45.4642, 9.1900), ('IT', 'Roma', '00184', 41.8919, 12.5113),
	('IT', 'Torino', '10121', 45.0703, 7.6869), ('IT', 'Napoli', '80121', 40.8518, 14.2681),
	('IT', 'Bologna', '40121', 44.4949, 11.3426), ('IT', 'Firenze', '50121', 43.7696, 11.2558),
	('IT', 'Genova', '16121', 44.4056, 8.9463), ('IT', 'Verona', '37121', 45.4384, 10.9916),
	('IT', 'Bari', '70121', 41.1171, 16.8719), ('IT', 'Palermo', '90133', 38.1157, 13.3615),
	('RO', 'Bucuresti', '010011', 44.4268, 26.1025), ('RO', 'Cluj-Napoca', '400001', 46.7712, 23.6236),
	('RO', 'Timisoara', '300001', 45.7489, 21.2087), ('RO', 'Iasi', '700001', 47.1585, 27.6014),
	('RO', 'Constanta', '900001', 44.1598, 28.6348), ('RO', 'Brasov', '500001', 45.6427, 25.5887),
	('RO', 'Sibiu', '550001', 45.7983, 24.1256), ('RO', 'Oradea', '410001', 47.0465, 21.9189);

CREATE TABLE demo.names (country text, first text[], last text[]);
INSERT INTO demo.names VALUES
	('IT', '{Giulia,Marco,Francesca,Luca,Chiara,Alessandro,Sara,Matteo,Elena,Davide,Valentina,Lorenzo}',
		   '{Rossi,Bianchi,Romano,Colombo,Ricci,Marino,Greco,Bruno,Gallo,Conti,Esposito,Ferrari}'),
	('RO', '{Andreea,Mihai,Ioana,Alexandru,Elena,Andrei,Maria,Stefan,Ana,Radu,Cristina,Vlad}',
		   '{Popescu,Ionescu,Popa,Dumitru,Stan,Stoica,Gheorghe,Rusu,Munteanu,Matei,Constantin,Serban}');

-- Prices: cost x 2.5 (fashion) or x 2.2 (home), ending in .90 in EUR, in .99 in RON (1 EUR = 4.97 RON).
CREATE FUNCTION demo.price(sku text, currency text) RETURNS numeric
	LANGUAGE sql STABLE
	RETURN (SELECT CASE WHEN currency = 'RON' THEN round(p * 4.97) - 0.01 ELSE p END
			  FROM (SELECT round(i.unit_cost * CASE WHEN c.dept = 'fashion' THEN 2.5 ELSE 2.2 END) - 0.10 AS p
					  FROM oms.items i LEFT JOIN demo.categories c USING (category)
					 WHERE i.sku = price.sku) x);

-- ───────────────────────────────────────────────────────── 320 orders from 5 channels
CREATE TABLE demo.feed_head AS
SELECT seq, channel, country, store, currency, nlines,
	   (SELECT first[1 + floor(random() * 12)::int] || ' ' || last[1 + floor(random() * 12)::int]
		  FROM demo.names n WHERE n.country = h.country AND seq > 0) AS customer,
	   (SELECT c FROM demo.cities c WHERE c.country = h.country AND seq > 0
		 ORDER BY random() LIMIT 1) AS city
  FROM (SELECT seq, channel,
			   CASE WHEN channel = 'emag' THEN 'RO' WHEN channel = 'amazon-it' THEN 'IT'
					WHEN channel = 'pos' THEN CASE WHEN store IN ('STORE-BU-01', 'STORE-CJ-01') THEN 'RO' ELSE 'IT' END
					WHEN r2 < 0.6 THEN 'IT' ELSE 'RO' END AS country,
			   store,
			   CASE WHEN channel = 'emag' OR store IN ('STORE-BU-01', 'STORE-CJ-01') THEN 'RON' ELSE 'EUR' END AS currency,
			   CASE WHEN channel = 'pos' THEN 1 + (r3 < 0.3)::int
					ELSE 1 + (r3 < 0.45)::int + (r4 < 0.2)::int + (r4 < 0.05)::int END AS nlines
		  FROM (SELECT seq, r2, r3, r4,
					   CASE WHEN r1 < 0.38 THEN 'web' WHEN r1 < 0.52 THEN 'app' WHEN r1 < 0.66 THEN 'amazon-it'
							WHEN r1 < 0.82 THEN 'emag' ELSE 'pos' END AS channel,
					   CASE WHEN r1 >= 0.82 THEN (ARRAY['STORE-MI-01','STORE-RM-01','STORE-TO-01','STORE-BU-01','STORE-CJ-01'])[1 + floor(r2 * 5)::int] END AS store
				  FROM (SELECT g AS seq, random() AS r1, random() AS r2, random() AS r3, random() AS r4
						  FROM generate_series(1, 320) g) r) x) h
 ORDER BY seq;

-- Lines: shipped orders pick any generated SKU; a till sells what is on that store's shelf.
CREATE TABLE demo.feed_lines AS
SELECT h.seq, p.sku,
	   CASE WHEN h.channel = 'pos' THEN 1 ELSE 1 + (random() < 0.15)::int + (random() < 0.05)::int END AS qty
  FROM demo.feed_head h
 CROSS JOIN LATERAL (
	SELECT o.sku FROM demo.opening o
	 WHERE CASE WHEN h.channel = 'pos' THEN o.location = h.store AND o.on_hand - o.safety_stock >= 2
				ELSE o.location IN ('WH-MI', 'VENDOR-MOB') END
	 ORDER BY random() + h.seq * 0
	 LIMIT h.nlines) p
 ORDER BY h.seq, p.sku;

CREATE TABLE demo.feed AS
SELECT h.seq, h.channel,
	   jsonb_strip_nulls(jsonb_build_object(
		'channel', h.channel,
		'external_id', CASE h.channel
			WHEN 'web' THEN 'AB-WEB-' || (100000 + h.seq)
			WHEN 'app' THEN 'AB-APP-' || (500000 + h.seq)
			WHEN 'amazon-it' THEN '402-' || lpad((1000000 + h.seq * 7919 % 8999999)::text, 7, '0') || '-' || lpad((h.seq * 104729 % 9999999)::text, 7, '0')
			WHEN 'emag' THEN (380000000 + h.seq * 137)::text
			ELSE 'POS-' || substr(h.store, 7, 2) || '-' || lpad(h.seq::text, 6, '0') END,
		'currency', h.currency,
		'customer', jsonb_build_object(
			'ref', 'C' || (10000 + abs(hashtext(h.customer)) % 5000),
			'name', h.customer,
			'email', lower(replace(h.customer, ' ', '.')) || '@example.com'),
		'ship_to', CASE WHEN h.channel <> 'pos' THEN jsonb_build_object(
			'name', h.customer, 'line1', 'Via/Strada ' || (1 + h.seq % 120),
			'city', (h.city).city, 'postal_code', (h.city).postal_code, 'country', (h.city).country,
			'lat', (h.city).lat, 'lon', (h.city).lon) END,
		'pickup', h.store,
		'shipping_amount', CASE WHEN h.channel IN ('pos', 'amazon-it') THEN 0
								WHEN h.currency = 'RON' AND sub.subtotal < 399 THEN 19.99
								WHEN h.currency = 'EUR' AND sub.subtotal < 79 THEN 4.90
								ELSE 0 END,
		'lines', sub.lines)) AS payload
  FROM demo.feed_head h
  JOIN LATERAL (SELECT jsonb_agg(jsonb_build_object('sku', l.sku, 'qty', l.qty,
									'unit_price', demo.price(l.sku, h.currency)) ORDER BY l.sku) AS lines,
					   sum(l.qty * demo.price(l.sku, h.currency)) AS subtotal
				  FROM demo.feed_lines l WHERE l.seq = h.seq) sub ON true
 ORDER BY h.seq;

\echo
\echo '2. A day of orders: 320 submissions from 5 channels, each oms.place_order() one transaction'
\o /dev/null
SELECT format('SELECT demo.place(%L, %L)', 'day', payload) FROM demo.feed ORDER BY seq \gexec
\o
\echo
SELECT f.channel,
	   count(*) AS submitted,
	   count(o.order_id) AS placed,
	   count(*) FILTER (WHERE o.sqlstate = 'OM001') AS "sold out",
	   (SELECT count(*) FROM oms.order_lines l JOIN demo.outcomes x ON x.order_id = l.order_id
		 WHERE x.channel = f.channel AND x.scenario = 'day') AS lines,
	   (SELECT sum(l.qty) FROM oms.order_lines l JOIN demo.outcomes x ON x.order_id = l.order_id
		 WHERE x.channel = f.channel AND x.scenario = 'day') AS units,
	   string_agg(DISTINCT (f.payload ->> 'currency'), ', ') AS currencies
  FROM demo.feed f
  JOIN demo.outcomes o ON o.scenario = 'day' AND o.external_id = f.payload ->> 'external_id'
  JOIN oms.channels c ON c.code = f.channel
 GROUP BY c.id, f.channel
 ORDER BY c.id;

\echo
\echo '   Refused (OM001) because no single location could serve a line in full, as the channel was told:'
SELECT channel, external_id, message
  FROM demo.outcomes WHERE scenario = 'day' AND sqlstate = 'OM001'
 ORDER BY seq LIMIT 5;

\echo
\echo '3. The cases every OMS must get right'

-- ───────────────────────────────────────────────────────── 3a click & collect
\echo
\echo '3a. Click & collect: Francesca reserves the Navigli trench coat at the Milano Brera store.'
\echo '    The line goes to the pickup store, whatever the warehouses hold.'
SELECT demo.place('click & collect', '{
	"channel": "web", "external_id": "AB-WEB-300001", "currency": "EUR",
	"customer": {"ref": "C20001", "name": "Francesca Conti", "email": "francesca.conti@example.com", "phone": "+39 02 555 0101"},
	"pickup": "STORE-MI-01",
	"lines": [{"sku": "TRENCH-NAVIGLI-S", "qty": 1, "unit_price": 194.90}]}') AS cc_id \gset
SELECT o.id AS "order", o.state, pl.code AS pickup, i.sku, l.qty, l.state AS "line state",
	   ll.code AS "line at", oms.atp(i.sku, 'STORE-MI-01') AS "store ATP now"
  FROM oms.orders o
  JOIN oms.locations pl ON (pl.tenant_id, pl.id) = (o.tenant_id, o.pickup_location_id)
  JOIN oms.order_lines l ON (l.tenant_id, l.order_id) = (o.tenant_id, o.id)
  JOIN oms.items i ON (i.tenant_id, i.id) = (l.tenant_id, l.item_id)
  LEFT JOIN oms.locations ll ON (ll.tenant_id, ll.id) = (l.tenant_id, l.location_id)
 WHERE o.id = :cc_id;

-- ───────────────────────────────────────────────────────── 3b a backordered line
\echo
\echo '3b. An order that cannot be fully served: the Carpati sideboard is made to order (vendor'
\echo '    stock 0, backorderable), so that line waits as backordered; the espresso cups ship now.'
SELECT demo.place('backorder', '{
	"channel": "app", "external_id": "AB-APP-900001", "currency": "EUR",
	"customer": {"ref": "C20002", "name": "Marco Ricci", "email": "marco.ricci@example.com"},
	"ship_to": {"name": "Marco Ricci", "line1": "Via Garibaldi 7", "city": "Torino", "postal_code": "10122", "country": "IT", "lat": 45.0731, "lon": 7.6814},
	"lines": [{"sku": "SIDEBOARD-CARPATI", "qty": 1, "unit_price": 1249.00},
			  {"sku": "MOKA-CUPS-6", "qty": 2, "unit_price": 24.90}]}') AS bo_id \gset
SELECT o.id AS "order", o.state, l.line_no AS line, i.sku, l.qty, l.state AS line_state,
	   coalesce(ll.code, '(none yet)') AS location
  FROM oms.orders o
  JOIN oms.order_lines l ON (l.tenant_id, l.order_id) = (o.tenant_id, o.id)
  JOIN oms.items i ON (i.tenant_id, i.id) = (l.tenant_id, l.item_id)
  LEFT JOIN oms.locations ll ON (ll.tenant_id, ll.id) = (l.tenant_id, l.location_id)
 WHERE o.id = :bo_id
 ORDER BY l.line_no;

-- ───────────────────────────────────────────────────────── 3c a refusal
\echo
\echo '3c. Refused: the limited-edition Sighisoara scarf is sold out and not backorderable. The'
\echo '    whole order fails with SQLSTATE OM001 and nothing is written; the shop shows "sold out".'
SELECT demo.place('sold out', '{
	"channel": "web", "external_id": "AB-WEB-300002", "currency": "EUR",
	"customer": {"ref": "C20003", "name": "Ioana Popescu", "email": "ioana.popescu@example.com"},
	"ship_to": {"name": "Ioana Popescu", "line1": "Strada Lipscani 12", "city": "Bucuresti", "postal_code": "030031", "country": "RO"},
	"lines": [{"sku": "SHIRT-BRERA-M", "qty": 1, "unit_price": 53.90},
			  {"sku": "SCARF-SIGHISOARA", "qty": 1, "unit_price": 69.00}]}') \gset
\x on
SELECT o.sqlstate, o.message, o.detail,
	   (SELECT count(*) FROM oms.orders x WHERE x.external_id = o.external_id) AS "orders written"
  FROM demo.outcomes o WHERE o.scenario = 'sold out';
\x off

-- ───────────────────────────────────────────────────────── 3d a duplicate submission
\echo
\echo '3d. A duplicate: the app lost the answer to 3b and sends the same order again. Same channel'
\echo '    and external_id give the same order id, and nothing changes (reserved units included).'
SELECT sum(reserved) AS reserved_before FROM oms.stock \gset
SELECT demo.place('duplicate', '{
	"channel": "app", "external_id": "AB-APP-900001", "currency": "EUR",
	"customer": {"ref": "C20002", "name": "Marco Ricci", "email": "marco.ricci@example.com"},
	"ship_to": {"name": "Marco Ricci", "line1": "Via Garibaldi 7", "city": "Torino", "postal_code": "10122", "country": "IT", "lat": 45.0731, "lon": 7.6814},
	"lines": [{"sku": "SIDEBOARD-CARPATI", "qty": 1, "unit_price": 1249.00},
			  {"sku": "MOKA-CUPS-6", "qty": 2, "unit_price": 24.90}]}') AS dup_id \gset
SELECT :bo_id AS "first id", :dup_id AS "retry id",
	   (SELECT count(*) FROM oms.orders WHERE external_id = 'AB-APP-900001') AS "orders with AB-APP-900001",
	   :reserved_before AS "units reserved before", (SELECT sum(reserved) FROM oms.stock) AS "after";

-- ───────────────────────────────────────────────────────── 3e a cancellation
\echo
\echo '3e. A cancellation: Andrei orders 4 Moka cup sets on eMAG, then changes his mind.'
\echo '    oms.cancel_order() releases the reservation; the units are available again at once.'
SELECT oms.atp('MOKA-CUPS-6') AS atp_before \gset
SELECT demo.place('cancellation', '{
	"channel": "emag", "external_id": "380999001", "currency": "RON",
	"customer": {"ref": "C20004", "name": "Andrei Stoica", "email": "andrei.stoica@example.com"},
	"ship_to": {"name": "Andrei Stoica", "line1": "Bulevardul Eroilor 3", "city": "Cluj-Napoca", "postal_code": "400129", "country": "RO"},
	"lines": [{"sku": "MOKA-CUPS-6", "qty": 4, "unit_price": 123.99}]}') AS cx_id \gset
SELECT oms.atp('MOKA-CUPS-6') AS atp_placed, (SELECT state FROM oms.orders WHERE id = :cx_id) AS state_placed \gset
SELECT oms.cancel_order(:cx_id, 'customer changed his mind') AS state_cancelled \gset
SELECT :cx_id AS "order", :'state_placed' AS "placed as", :'state_cancelled' AS "now",
	   :atp_before AS "cups ATP before", :atp_placed AS "after order", oms.atp('MOKA-CUPS-6') AS "after cancel",
	   (SELECT count(*) FROM oms.reservations WHERE order_id = :cx_id) AS "reservations left";

-- ───────────────────────────────────────────────────────── 3f an abandoned cart
\echo
\echo '3f. An abandoned cart: a shopper holds 3 Moka cup sets for 2 seconds and leaves. The oms'
\echo '    background worker deletes expired holds, and the stock returns to ATP by itself.'
SELECT oms.atp('MOKA-CUPS-6') AS atp_free \gset
SELECT held_qty AS held FROM oms.hold('cart-abandoned-77', 'MOKA-CUPS-6', 3, NULL, '2 seconds') \gset
SELECT oms.atp('MOKA-CUPS-6') AS atp_held \gset
-- Wait for the worker (it naps 1 s; right after the database was created it may still be in its
-- 10 s restart interval), at most 30 s.
DO $$
DECLARE
	deadline timestamptz := clock_timestamp() + interval '30 seconds';
BEGIN
	WHILE EXISTS (SELECT FROM oms.reservations WHERE cart = 'cart-abandoned-77')
		  AND clock_timestamp() < deadline LOOP
		PERFORM pg_sleep(0.2);
	END LOOP;
END
$$;
SELECT :atp_free AS "cups ATP", :atp_held AS "while held",
	   oms.atp('MOKA-CUPS-6') AS "after expiry",
	   CASE WHEN EXISTS (SELECT FROM oms.reservations WHERE cart = 'cart-abandoned-77')
			THEN 'still held: is the worker running? see /tmp/oms-demo/server.log'
			ELSE 'expired by the worker' END AS hold,
	   (SELECT backend_type || ' (pid ' || pid || ')' FROM pg_stat_activity
		 WHERE backend_type = 'oms worker') AS "who";
