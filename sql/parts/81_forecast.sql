-- Forecasts (src/forecast.c) and the statistics of planning (src/planning.c). The methods, their
-- formulas and what short histories give are described at the top of src/forecast.c and in the
-- README.

CREATE FUNCTION oms.forecast(sku text, location text DEFAULT NULL, horizon int DEFAULT 28, method text DEFAULT 'auto')
	RETURNS TABLE (day date, qty double precision, lower double precision, upper double precision, method text)
	LANGUAGE c STABLE ROWS 28
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_forecast';
COMMENT ON FUNCTION oms.forecast(text, text, int, text) IS 'Daily demand forecast of a SKU at a location (NULL: the network) for horizon days from oms.today(): qty, a 95% interval (lower, upper) and the method used (moving_average, exponential_smoothing, holt_winters; auto picks the lowest error on held-back days; none without history)';

CREATE FUNCTION oms.forecast_methods(sku text, location text DEFAULT NULL)
	RETURNS TABLE (method text, history_days int, held_back_days int, mae double precision, chosen boolean,
				   parameters text, sigma double precision)
	LANGUAGE c STABLE ROWS 3
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_forecast_methods';
COMMENT ON FUNCTION oms.forecast_methods(text, text) IS 'How oms.forecast''s auto chose for a SKU: per method, the mean absolute error on the held-back days, whether it was chosen, and the parameters and one-step error (sigma) of its fit on the whole history';

CREATE FUNCTION oms.inverse_normal(p double precision) RETURNS double precision
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_inverse_normal_sql';
COMMENT ON FUNCTION oms.inverse_normal(double precision) IS 'The standard normal quantile z of a probability p in (0, 1) (Acklam''s approximation refined by a Halley step): the z of a service level; 22023 outside (0, 1)';

CREATE FUNCTION oms.safety_stock(service_level double precision, demand_sd double precision,
								 lead_time_days double precision, demand_mean double precision DEFAULT 0,
								 lead_time_sd double precision DEFAULT 0)
	RETURNS double precision
	LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_safety_stock_sql';
COMMENT ON FUNCTION oms.safety_stock(double precision, double precision, double precision, double precision, double precision) IS 'Safety stock z(service_level) * sqrt(lead_time_days * demand_sd^2 + demand_mean^2 * lead_time_sd^2) (= z * demand_sd * sqrt(lead time) when the lead time does not vary); 22023 for a level outside (0, 1) or a negative input';
