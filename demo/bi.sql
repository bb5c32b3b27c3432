-- BI (issue 9): exchange rates for the reports in EUR (oms_bi, make report). The demo's
-- marketplace sells in RON; without a RON->EUR rate for a day its orders' EUR amounts would be
-- NULL and listed in oms_bi.data_quality.
INSERT INTO oms.exchange_rates (rate_date, from_currency, to_currency, rate)
SELECT d::date, 'RON', 'EUR', 0.2010
  FROM generate_series(CURRENT_DATE - 90, CURRENT_DATE, interval '1 day') d;
