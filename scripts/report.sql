-- The BI dashboard (scripts/report.sh): one self-contained HTML page with hand-made SVG charts,
-- built from the views of schema oms_bi only, so that what it shows is what a BI tool sees.
-- Period: the 30 days up to the last day with sales (psql variables from_day and to_day).
-- Output: the page, on stdout (psql -At).
SELECT coalesce(max(day), CURRENT_DATE) AS to_day, coalesce(max(day), CURRENT_DATE) - 29 AS from_day
  FROM oms_bi.sales_daily \gset
SELECT oms_bi_report_tenant FROM (SELECT current_setting('oms.tenant', true) AS oms_bi_report_tenant) t \gset

WITH
palette AS (SELECT ARRAY['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7'] AS c),
-- Sales by day and channel: stacked bars.
days AS (SELECT d::date AS day, row_number() OVER (ORDER BY d) - 1 AS i
		   FROM generate_series(:'from_day'::date, :'to_day'::date, interval '1 day') d),
chans AS (SELECT channel, row_number() OVER (ORDER BY sum(revenue_reporting) DESC NULLS LAST, channel) AS ci
			FROM oms_bi.sales_daily WHERE day BETWEEN :'from_day' AND :'to_day' GROUP BY channel),
dc AS (SELECT s.day, s.channel, coalesce(sum(s.revenue_reporting), 0) AS revenue
		 FROM oms_bi.sales_daily s WHERE s.day BETWEEN :'from_day' AND :'to_day' GROUP BY 1, 2),
dmax AS (SELECT greatest(max(t), 1) AS m FROM (SELECT sum(revenue) AS t FROM dc GROUP BY day) x),
stack AS (SELECT dc.*, c.ci, days.i,
				 coalesce(sum(dc.revenue) OVER (PARTITION BY dc.day ORDER BY c.ci ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS below
			FROM dc JOIN chans c USING (channel) JOIN days USING (day)),
sales_svg AS (
	SELECT format('<svg viewBox="0 0 760 260" width="760" height="260" role="img" aria-label="Sales by day and channel">'
				  '<line x1="50" y1="220" x2="750" y2="220" stroke="#999"/>'
				  '<text x="45" y="24" text-anchor="end" font-size="10">%s</text><text x="45" y="222" text-anchor="end" font-size="10">0</text>%s%s%s</svg>',
				  round((SELECT m FROM dmax)),
				  (SELECT string_agg(format('<rect x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s %s: %s</title></rect>',
											52 + s.i * 23, round(220 - (s.below + s.revenue) / (SELECT m FROM dmax) * 200, 1), 19,
											round(s.revenue / (SELECT m FROM dmax) * 200, 1),
											(SELECT c[1 + (s.ci - 1) % 8] FROM palette), s.day, s.channel, round(s.revenue, 2)), '')
					 FROM stack s),
				  (SELECT string_agg(format('<text x="%s" y="236" font-size="9" text-anchor="middle">%s</text>', 62 + i * 23, to_char(day, 'DD')), '')
					 FROM days WHERE i % 2 = 0),
				  (SELECT string_agg(format('<rect x="%s" y="246" width="10" height="10" fill="%s"/><text x="%s" y="255" font-size="10">%s</text>',
											60 + (ci - 1) * 110, (SELECT c[1 + (ci - 1) % 8] FROM palette), 74 + (ci - 1) * 110, channel), '')
					 FROM chans)) AS svg),
-- Top products: horizontal bars.
tp AS (SELECT * FROM oms_bi.top('product', :'from_day', :'to_day', 10)),
tmax AS (SELECT greatest(max(revenue), 1) AS m FROM tp),
top_svg AS (
	SELECT format('<svg viewBox="0 0 560 %s" width="560" height="%s" role="img" aria-label="Top products">%s</svg>',
				  20 + 24 * count(*), 20 + 24 * count(*),
				  string_agg(format('<text x="150" y="%s" text-anchor="end" font-size="11">%s</text>'
									'<rect x="156" y="%s" width="%s" height="16" fill="#4e79a7"><title>%s units</title></rect>'
									'<text x="%s" y="%s" font-size="10">%s</text>',
									22 + (rank - 1) * 24, replace(replace(left(key || ' ' || label, 24), '&', '&amp;'), '<', '&lt;'),
									10 + (rank - 1) * 24, round(coalesce(revenue, 0) / (SELECT m FROM tmax) * 300, 1), units,
									162 + round(coalesce(revenue, 0) / (SELECT m FROM tmax) * 300, 1), 22 + (rank - 1) * 24,
									coalesce(round(revenue, 2)::text, 'n/a (rate missing)') || ' ' || currency), '' ORDER BY rank)) AS svg
	  FROM tp),
-- KPI tiles over the period.
k AS (SELECT sum(orders) AS orders,
			 CASE WHEN bool_and(revenue IS NOT NULL OR orders IS NULL) THEN sum(revenue) END AS revenue,
			 sum(units) AS units, sum(lines) AS lines, sum(lines_backordered) AS bo, sum(units_cancelled) AS canc,
			 sum(units_shipped) AS shipped, sum(units_returned) AS returned, sum(shipments) AS shipments,
			 sum(shipments_on_time) AS on_time
		FROM oms_bi.kpis_daily WHERE day BETWEEN :'from_day' AND :'to_day'),
sh AS (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY hours_to_ship) AS med,
			  percentile_cont(0.9) WITHIN GROUP (ORDER BY hours_to_ship) AS p90,
			  avg(on_time::int) AS on_time
		 FROM oms_bi.shipments WHERE day BETWEEN :'from_day' AND :'to_day'),
po AS (SELECT sum(perfect_orders)::numeric / nullif(sum(orders), 0) AS rate
		 FROM oms_bi.perfect_orders_daily WHERE day BETWEEN :'from_day' AND :'to_day'),
tiles AS (
	SELECT string_agg(format('<div class="tile"><div class="v">%s</div><div class="l">%s</div></div>', v, l), '' ORDER BY n) AS html
	  FROM (VALUES
			(1, (SELECT coalesce(orders, 0)::text FROM k), 'orders'),
			(2, (SELECT coalesce(round(revenue)::text, 'n/a') || ' ' || oms.reporting_currency() FROM k), 'revenue'),
			(3, (SELECT coalesce(round(revenue / nullif(orders, 0), 2)::text, 'n/a') FROM k), 'average order value'),
			(4, (SELECT coalesce(round(units::numeric / nullif(orders, 0), 2)::text, 'n/a') FROM k), 'units per order'),
			(5, (SELECT coalesce(round(100 - 100.0 * bo / nullif(lines, 0), 1)::text || ' %', 'n/a') FROM k), 'fill rate'),
			(6, (SELECT coalesce(round(100.0 * canc / nullif(units, 0), 1)::text || ' %', 'n/a') FROM k), 'cancellation rate'),
			(7, (SELECT coalesce(round(100.0 * on_time, 1)::text || ' %', 'n/a') FROM sh), 'on-time ship rate'),
			(8, (SELECT coalesce(round(med::numeric, 1)::text || ' h / ' || round(p90::numeric, 1)::text || ' h', 'n/a') FROM sh), 'placed to shipped, median / p90'),
			(9, (SELECT coalesce(round(100.0 * returned / nullif(shipped, 0), 1)::text || ' %', 'n/a') FROM k), 'return rate'),
			(10, (SELECT coalesce(round(100 * rate, 1)::text || ' %', 'n/a') FROM po), 'perfect orders'),
			(11, (SELECT coalesce(round(sum(stock_value))::text, 'n/a') FROM oms_bi.stock_snapshot), 'stock value at cost'),
			(12, (SELECT count(*)::text FROM oms_bi.data_quality), 'days/currencies without a rate')) t(n, v, l)),
alerts AS (
	SELECT coalesce(string_agg(format('<tr><td>%s</td><td>%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s</td></tr>',
							   sku, location, on_hand, available, safety_stock, coalesce(days_of_cover::text, '')), '' ORDER BY days_of_cover NULLS LAST, sku),
					'<tr><td colspan="6">none</td></tr>') AS html
	  FROM (SELECT * FROM oms_bi.inventory_kpis
			 WHERE available <= safety_stock OR days_of_cover < 14
			 ORDER BY days_of_cover NULLS LAST, sku LIMIT 15) a),
countries AS (
	SELECT coalesce(string_agg(format('<tr><td>%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s</td></tr>',
							   label, orders, units, coalesce(round(revenue, 2)::text, 'n/a')), '' ORDER BY rank), '') AS html
	  FROM oms_bi.top('country', :'from_day', :'to_day', 20)),
reasons AS (
	SELECT coalesce(string_agg(format('<tr><td>%s</td><td class="n">%s</td><td class="n">%s</td></tr>',
							   replace(replace(reason, '&', '&amp;'), '<', '&lt;'), returns, units), '' ORDER BY returns DESC, reason), '<tr><td colspan="3">none</td></tr>') AS html
	  FROM (SELECT reason, sum(returns) AS returns, sum(units) AS units FROM oms_bi.return_reasons
			 WHERE day BETWEEN :'from_day' AND :'to_day' GROUP BY reason ORDER BY 2 DESC, 1 LIMIT 5) r)
SELECT format($html$<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>oms dashboard %1$s to %2$s</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:20px} h2{font-size:15px;margin-top:28px}
.tiles{display:flex;flex-wrap:wrap;gap:10px}
.tile{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:150px}
.tile .v{font-size:20px;font-weight:600} .tile .l{font-size:12px;color:#666}
table{border-collapse:collapse;font-size:13px} td,th{border-bottom:1px solid #eee;padding:3px 10px;text-align:left}
td.n{text-align:right} .row{display:flex;flex-wrap:wrap;gap:40px}
</style></head><body>
<h1>oms dashboard: tenant %3$s, %1$s to %2$s, money in %4$s</h1>
<div class="tiles">%5$s</div>
<h2>Sales by day and channel (%4$s)</h2>%6$s
<div class="row"><div><h2>Top products by revenue</h2>%7$s</div>
<div><h2>By country</h2><table><tr><th>country</th><th>orders</th><th>units</th><th>revenue</th></tr>%8$s</table>
<h2>Top return reasons</h2><table><tr><th>reason</th><th>returns</th><th>units</th></tr>%10$s</table></div></div>
<h2>Stock alerts (available at or below safety stock, or under 14 days of cover)</h2>
<table><tr><th>SKU</th><th>location</th><th>on hand</th><th>available</th><th>safety</th><th>days of cover</th></tr>%9$s</table>
<p style="font-size:11px;color:#888">Generated %11$s from schema oms_bi (scripts/report.sh). Revenue: units not cancelled at their price, in the reporting currency at the rate of each order's day; n/a where a rate is missing (oms_bi.data_quality).</p>
</body></html>$html$,
	:'from_day', :'to_day', coalesce(nullif(:'oms_bi_report_tenant', ''), 'default'), oms.reporting_currency(),
	(SELECT html FROM tiles), (SELECT svg FROM sales_svg), (SELECT coalesce(svg, '<p>no sales</p>') FROM top_svg),
	(SELECT html FROM countries), (SELECT html FROM alerts), (SELECT html FROM reasons),
	to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'));
