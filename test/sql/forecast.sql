-- Forecasts on histories whose forecasts can be worked out by hand: a constant demand, a linear
-- trend, a weekly pattern, a three-day history and no history at all. "Today" is 1 April 2024
-- (a Monday); the history is the 28 days from Monday 4 March to Sunday 31 March.
SELECT oms.create_tenant('t_forecast') > 0 AS created;
SET oms.tenant = 't_forecast';
SET datestyle = 'ISO, YMD';
SET oms.today = '2024-04-01';
INSERT INTO oms.channels (code, kind, name, default_currency) VALUES ('web', 'web', 'Web shop', 'EUR');
INSERT INTO oms.locations (code, kind, name, priority, can_ship, can_pickup) VALUES
	('WH-A', 'warehouse', 'Warehouse A', 1, true, false),
	('STORE-1', 'store', 'Store 1', 5, false, true);
INSERT INTO oms.items (sku, name) VALUES ('FC-CONST', 'Constant'), ('FC-TREND', 'Trend'),
	('FC-WEEK', 'Weekly'), ('FC-SHORT', 'Short'), ('FC-NONE', 'Never sold');
SELECT count(oms.set_stock(sku, 'WH-A', 100000, 'init')) FROM oms.items WHERE tenant_id = oms.current_tenant_id();

-- Day t = 0..27 (4 March + t): FC-CONST 5 a day; FC-TREND 10 + t; FC-WEEK 10 on weekdays and 30
-- on Saturday and Sunday; FC-SHORT 2, 4, 6 on the last three days only.
DO $$
BEGIN
	FOR t IN 0..27 LOOP
		PERFORM oms.place_order(jsonb_build_object('channel', 'web', 'external_id', 'FC-' || t,
			'placed_at', to_char(date '2024-03-04' + t, 'YYYY-MM-DD') || 'T12:00:00Z',
			'ship_to', '{"country": "IT"}'::jsonb,
			'lines', jsonb_build_array(
				jsonb_build_object('sku', 'FC-CONST', 'qty', 5, 'unit_price', 1),
				jsonb_build_object('sku', 'FC-TREND', 'qty', 10 + t, 'unit_price', 1),
				jsonb_build_object('sku', 'FC-WEEK', 'qty', CASE WHEN t % 7 IN (5, 6) THEN 30 ELSE 10 END, 'unit_price', 1))
			|| CASE WHEN t >= 25 THEN jsonb_build_array(jsonb_build_object('sku', 'FC-SHORT', 'qty', 2 * (t - 24), 'unit_price', 1))
					ELSE '[]'::jsonb END));
	END LOOP;
END
$$;
SELECT sku, count(*) AS days, min(day) AS first, max(day) AS last, sum(demand) AS units
  FROM oms.daily_demand GROUP BY sku ORDER BY sku;

-- Constant demand: every method is exact on the held-back week; auto takes the simplest, the
-- moving average: 5 a day, no spread.
SELECT day, round(qty::numeric, 2) AS qty, round(lower::numeric, 2) AS lower, round(upper::numeric, 2) AS upper, method
  FROM oms.forecast('FC-CONST', horizon => 3);
-- Linear trend: Holt-Winters starts from the first two weeks' means (13 and 20: trend 1, level
-- 16 on day 6, no season) and is exact; auto picks it: 38, 39, 40 (day 27 was 37).
SELECT day, round(qty::numeric, 2) AS qty, round(lower::numeric, 2) AS lower, round(upper::numeric, 2) AS upper, method
  FROM oms.forecast('FC-TREND', horizon => 3);
-- Why: 21 days fitted, 7 held back (31..37). The moving average forecasts 27 (mean of 24..30):
-- errors 4..10, mean 7. Exponential smoothing (alpha 0.95) lags the trend by 0.05/0.95 and
-- forecasts 30 - 0.0526: errors 1.0526..7.0526, mean 4.0526. Holt-Winters: 0.
SELECT method, history_days, held_back_days, round(mae::numeric, 4) AS mae, chosen, parameters, round(sigma::numeric, 4) AS sigma
  FROM oms.forecast_methods('FC-TREND');
-- The other methods on the whole trend: the moving average of the last week (31..37) is 34; the
-- smoothed level is 37 - 0.0526.
SELECT day, round(qty::numeric, 4) AS qty, method FROM oms.forecast('FC-TREND', 'WH-A', 2, 'moving_average');
SELECT day, round(qty::numeric, 4) AS qty, method FROM oms.forecast('FC-TREND', 'WH-A', 2, 'exponential_smoothing');
-- Weekly pattern: Holt-Winters repeats it (Monday 1 April is a weekday: 10; Saturday and Sunday 30).
SELECT day, to_char(day, 'Dy') AS weekday, round(qty::numeric, 2) AS qty, method
  FROM oms.forecast('FC-WEEK', horizon => 7);
-- The moving average would say 110/7 = 15.71 every day: on the held-back week its error is
-- (5 x 5.71 + 2 x 14.29) / 7 = 8.16.
SELECT method, round(mae::numeric, 4) AS mae, chosen, parameters FROM oms.forecast_methods('FC-WEEK');

-- Three days (2, 4, 6): too short to hold any back; the moving average of the 3 days, 4, with
-- s = 2 (their standard deviation): today 4 -/+ 1.96 x 2, tomorrow 4 -/+ 1.96 x 2 x sqrt(2) (lower
-- stops at 0). Holt-Winters asked for falls back to what 3 days can fit, and says so.
SELECT day, round(qty::numeric, 2) AS qty, round(lower::numeric, 2) AS lower, round(upper::numeric, 2) AS upper, method
  FROM oms.forecast('FC-SHORT', horizon => 2);
SELECT method, history_days, held_back_days, mae, chosen, parameters, round(sigma::numeric, 4) AS sigma
  FROM oms.forecast_methods('FC-SHORT');
SELECT DISTINCT method FROM oms.forecast('FC-SHORT', method => 'holt_winters');
-- No history at all, or none at that location: 0 a day, method "none".
SELECT day, qty, lower, upper, method FROM oms.forecast('FC-NONE', horizon => 2);
SELECT DISTINCT qty, method FROM oms.forecast('FC-CONST', 'STORE-1');
-- Only the history before today counts: seen from 18 March, FC-TREND has 14 days (10..23). Auto
-- holds 7 back, and 7 days are too few to fit Holt-Winters (it needs 14): exponential smoothing
-- (error 4.05) beats the moving average (7); fitted on all 14 days it forecasts 23 - 0.0526.
SET oms.today = '2024-03-18';
SELECT day, round(qty::numeric, 2) AS qty, method FROM oms.forecast('FC-TREND', horizon => 2);
SET oms.today = '2024-04-01';

-- Bad input: 22023 naming the value.
SELECT * FROM oms.forecast('NOPE');
SELECT * FROM oms.forecast('FC-CONST', 'NOWHERE');
SELECT * FROM oms.forecast('FC-CONST', horizon => 0);
SELECT * FROM oms.forecast('FC-CONST', method => 'arima');
SELECT * FROM oms.forecast(NULL);

-- The inverse normal: z of 50%, 90%, 95%, 97.5%, 99%, 99.9% service levels.
SELECT p, round(oms.inverse_normal(p)::numeric, 6) AS z
  FROM unnest(ARRAY[0.5, 0.9, 0.95, 0.975, 0.99, 0.999, 0.001]::float8[]) p;
SELECT oms.inverse_normal(1);
SELECT oms.inverse_normal(0);
