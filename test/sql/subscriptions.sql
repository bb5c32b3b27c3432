-- Subscriptions place their orders exactly once per period; skipped periods say why.
SELECT oms.create_tenant('t_subs') > 0 AS created;
SET oms.tenant = 't_subs';
SET datestyle = 'ISO, YMD';
\set SHOW_CONTEXT never
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR');
INSERT INTO oms.locations (code, kind, name, priority, can_ship, can_pickup) VALUES
	('WH-1', 'warehouse', 'Warehouse 1', 1, true, false), ('STORE-1', 'store', 'Store 1', 5, false, true);
INSERT INTO oms.items (sku, name, backorderable) VALUES
	('COFFEE', 'Coffee beans', false), ('FILTER', 'Filters', false), ('MUG', 'Mug', true);
SELECT oms.set_stock('COFFEE', 'WH-1', 100, 'count'), oms.set_stock('FILTER', 'WH-1', 0, 'count'),
	   oms.set_stock('COFFEE', 'STORE-1', 10, 'count');

-- Weekly coffee from Monday 1 April; filters every 2 days (none in stock, not backorderable);
-- a monthly mug from 31 January (backorderable); coffee collected at the store every 3 days.
SELECT oms.subscribe('{"channel": "web", "customer": {"ref": "C1", "email": "anna@example.com"},
	"ship_to": {"country": "IT", "city": "Milano"}, "lines": [{"sku": "COFFEE", "qty": 2, "unit_price": 12.5}],
	"every": 1, "unit": "week", "first_date": "2024-04-01"}') AS weekly \gset
SELECT oms.subscribe('{"channel": "web", "ship_to": {"country": "IT"}, "lines": [{"sku": "FILTER", "qty": 1, "unit_price": 3}],
	"every": 2, "unit": "day", "first_date": "2024-04-01"}') AS filters \gset
SELECT oms.subscribe('{"channel": "web", "ship_to": {"country": "IT"}, "lines": [{"sku": "MUG", "qty": 1, "unit_price": 8}],
	"every": 1, "unit": "month", "first_date": "2024-01-31"}') AS monthly \gset
SELECT oms.subscribe('{"channel": "web", "pickup": "STORE-1", "lines": [{"sku": "COFFEE", "qty": 1, "unit_price": 12.5}],
	"every": 3, "unit": "day", "first_date": "2024-04-02"}') AS pickup \gset
CREATE TEMP VIEW subs AS
SELECT CASE s.id WHEN :weekly THEN 'weekly' WHEN :filters THEN 'filters' WHEN :monthly THEN 'monthly' ELSE 'pickup' END AS sub,
	   s.state, s.periods_done, s.next_date
  FROM oms.subscriptions s WHERE s.tenant_id = oms.current_tenant_id() ORDER BY s.id;
CREATE TEMP VIEW runs AS
SELECT CASE r.subscription_id WHEN :weekly THEN 'weekly' WHEN :filters THEN 'filters' WHEN :monthly THEN 'monthly' ELSE 'pickup' END AS sub,
	   r.period, r.status, o.external_id IS NOT NULL AS has_order, o.state AS order_state, r.reason
  FROM oms.subscription_runs r LEFT JOIN oms.orders o ON o.tenant_id = r.tenant_id AND o.id = r.order_id
 WHERE r.tenant_id = oms.current_tenant_id();
CREATE FUNCTION pg_temp.run(d date) RETURNS TABLE (sub text, period date, status text, reason text) LANGUAGE sql AS $$
	SELECT CASE x.subscription_id WHEN current_setting('test.weekly')::bigint THEN 'weekly'
								  WHEN current_setting('test.filters')::bigint THEN 'filters'
								  WHEN current_setting('test.monthly')::bigint THEN 'monthly' ELSE 'pickup' END,
		   x.period, x.status, x.reason
	  FROM oms.run_subscriptions(d) x ORDER BY 1, 2
$$;
SELECT set_config('test.weekly', :'weekly', false), set_config('test.filters', :'filters', false),
	   set_config('test.monthly', :'monthly', false) \gset

-- 1 April: coffee is placed; filters are out of stock; the mug's 31 January and 29 February were
-- missed (the job did not run) and 31 March is placed, backordered. The pickup starts on the 2nd.
SELECT * FROM pg_temp.run('2024-04-01');
-- Running the same day again places nothing.
SELECT * FROM pg_temp.run('2024-04-01');
SELECT * FROM subs;
-- 3 April: filters again (period 3 April); coffee not due until the 8th; the pickup's 2 April.
SELECT * FROM pg_temp.run('2024-04-03');
-- Paused coffee: 8 April is skipped as paused; resumed, 15 April is placed.
SELECT oms.pause_subscription(:weekly);
SELECT * FROM pg_temp.run('2024-04-08') WHERE sub = 'weekly';
SELECT oms.resume_subscription(:weekly);
SELECT * FROM pg_temp.run('2024-04-15') WHERE sub = 'weekly';
-- Coffee discontinued: 22 April is skipped with the item named.
UPDATE oms.items SET active = false WHERE tenant_id = oms.current_tenant_id() AND sku = 'COFFEE';
SELECT * FROM pg_temp.run('2024-04-22') WHERE sub = 'weekly';
-- Cancelled: nothing more.
SELECT oms.cancel_subscription(:weekly);
SELECT count(*) AS weekly_runs FROM pg_temp.run('2024-04-29') WHERE sub = 'weekly';
CREATE FUNCTION pg_temp.try_sql(p_sql text, OUT code text, OUT message text, OUT hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE p_sql;
	code := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
	message := regexp_replace(message, 'subscription \d+', 'subscription <id>');
END
$$;
SELECT * FROM pg_temp.try_sql('SELECT oms.resume_subscription(' || :weekly || ')');
SELECT * FROM pg_temp.try_sql('SELECT oms.pause_subscription(' || :weekly || ')');
-- Every period of the weekly subscription, once; its orders carry SUB-<id>-<period> ids.
SELECT * FROM runs WHERE sub = 'weekly' ORDER BY period;
SELECT regexp_replace(o.external_id, '^SUB-\d+-', 'SUB-<id>-') AS external_id, o.attributes ->> 'period' AS period, l.qty, o.customer_email
  FROM oms.orders o JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
 WHERE o.tenant_id = oms.current_tenant_id() AND (o.attributes ->> 'subscription')::bigint = :weekly ORDER BY o.id;
SELECT * FROM runs WHERE sub = 'monthly' ORDER BY period;
SELECT * FROM subs;

-- Bad subscriptions: SQLSTATE, message, hint; nothing written.
CREATE FUNCTION pg_temp.try(p jsonb, OUT code text, OUT message text, OUT hint text)
	LANGUAGE plpgsql AS $$
BEGIN
	PERFORM oms.subscribe(p);
	code := 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
END
$$;
SELECT count(*) AS before FROM oms.subscriptions WHERE tenant_id = oms.current_tenant_id() \gset
\x on
SELECT n, (pg_temp.try(p)).* FROM (VALUES
	(1, '{"channel": "web", "ship_to": {"country": "IT"}, "lines": [], "every": 1, "unit": "week"}'::jsonb),
	(2, '{"channel": "web", "ship_to": {"country": "IT"}, "lines": [{"sku": "COFFEE", "qty": 1, "unit_price": 1}], "every": 0, "unit": "week"}'),
	(3, '{"channel": "web", "ship_to": {"country": "IT"}, "lines": [{"sku": "COFFEE", "qty": 1, "unit_price": 1}], "every": 1, "unit": "year"}'),
	(4, '{"channel": "shop", "ship_to": {"country": "IT"}, "lines": [{"sku": "COFFEE", "qty": 1, "unit_price": 1}], "every": 1, "unit": "week"}'),
	(5, '{"channel": "web", "lines": [{"sku": "COFFEE", "qty": 1, "unit_price": 1}], "every": 1, "unit": "week"}'),
	(6, '{"channel": "web", "ship_to": {"country": "IT"}, "lines": [{"sku": "TEA", "qty": 1, "unit_price": 1}], "every": 1, "unit": "week"}'),
	(7, '{"channel": "web", "ship_to": {"country": "IT"}, "lines": [{"sku": "COFFEE", "qty": -1, "unit_price": 1}], "every": 1, "unit": "week"}'),
	(8, '{"channel": "web", "ship_to": {"country": "IT"}, "lines": [{"sku": "COFFEE", "qty": 1, "unit_price": 1}], "every": 1, "unit": "week", "first_date": "someday"}'),
	(9, '{"channel": "web", "ship_to": {"country": "IT"}, "lines": [{"sku": "COFFEE", "qty": 1, "unit_price": 1}], "unit": "week"}')) AS c(n, p)
 ORDER BY n;
\x off
SELECT count(*) - :before AS written FROM oms.subscriptions WHERE tenant_id = oms.current_tenant_id();
SELECT oms.pause_subscription(-1);
