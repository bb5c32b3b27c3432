-- oms 0.1.0 -> 0.2.0 (ALTER EXTENSION oms UPDATE). Every change to sql/parts since 0.1.0 appears
-- here too, so that an upgraded database equals a fresh install of 0.2.0: test/t/050_upgrade.pl
-- compares the two object by object and lists what this script lacks. Objects are schema-
-- qualified; CREATE OR REPLACE only replaces objects of the extension (PostgreSQL refuses others).
\echo Use "ALTER EXTENSION oms UPDATE TO '0.2.0'" to load this file. \quit

-- ===== Access: store staff print packing slips and labels, and reject lines, only at their own
-- locations (74_reject_line, 89_documents, 99_access).
CREATE OR REPLACE FUNCTION oms.reject_line(order_id bigint, line_no int, location text, reason text)
	RETURNS TABLE (routed_line int, routed_location text, routed_qty int, line_state oms.line_state,
				   eta date, detail text)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_order		record;
	v_line		record;
	v_loc		int;
	v_rejected	int;
	v_kept		int;
	v_attempt	int := 0;
	v_excl		int[];
	v_a_loc		int[];
	v_a_qty		int[];
	v_a_kind	text[];
	v_a_eta		date[];
	v_a_capday	date[];
	v_a_reason	text[];
	v_a_supply	bigint[];
	v_state		oms.line_state;
	v_new_loc	int;
	v_promised	date;
	r			record;
BEGIN
	IF reason IS NULL OR btrim(reason) = '' THEN
		RAISE EXCEPTION 'a reason is required to reject line % of order %', reject_line.line_no, reject_line.order_id
			USING ERRCODE = '22023', HINT = 'Say why the location cannot fulfil it (e.g. ''damaged''); it is kept in oms.order_history.';
	END IF;
	SELECT o.id, o.ship_to, o.pickup_location_id, o.state,
		   coalesce(o.routing_profile, c.routing_profile, 'balanced') AS profile
	  INTO v_order
	  FROM oms.orders o JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	 WHERE o.tenant_id = v_tenant AND o.id = reject_line.order_id
	   FOR UPDATE OF o;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown order %', coalesce(reject_line.order_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Orders are rows of oms.orders of the current tenant (setting oms.tenant).';
	END IF;
	SELECT l.line_no, l.item_id, l.state, l.qty, i.sku INTO v_line
	  FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
	 WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = reject_line.line_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order % has no line %', v_order.id, coalesce(reject_line.line_no::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Lines are numbered from 1 in the order they were placed (oms.order_lines.line_no).';
	END IF;
	v_loc := oms._location_id(v_tenant, reject_line.location);
	PERFORM oms._check_store_location(v_tenant, v_loc);		-- store staff reject at their own store only
	SELECT coalesce(sum(x.qty), 0) INTO v_rejected FROM oms.reservations x
	 WHERE x.tenant_id = v_tenant AND x.order_id = v_order.id AND x.line_no = v_line.line_no AND x.location_id = v_loc;
	IF v_rejected = 0 OR NOT oms.is_legal(v_line.state, 'rejected') THEN
		RAISE EXCEPTION 'line % of order % cannot be rejected at location "%": it is % %', v_line.line_no, v_order.id,
				oms._clip(reject_line.location), v_line.state, CASE WHEN v_rejected = 0 THEN 'with nothing reserved there' ELSE 'there' END
			USING ERRCODE = '55000',
			      HINT = 'A location rejects a line that is allocated, released or picked there (oms.reservations shows where).';
	END IF;

	-- The rejection: exclusion, then the line's state (history: why, by whom).
	INSERT INTO oms.line_exclusions (tenant_id, order_id, line_no, location_id, reason, excluded_by)
		VALUES (v_tenant, v_order.id, v_line.line_no, v_loc, reason, oms._actor())
		ON CONFLICT DO NOTHING;
	PERFORM pg_catalog.set_config('oms.reason', format('rejected at %s: %s', reject_line.location, left(reason, 1000)), true);
	UPDATE oms.order_lines l SET state = 'rejected', location_id = NULL
	 WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = v_line.line_no;
	SELECT array_agg(e.location_id ORDER BY e.location_id) INTO v_excl FROM oms.line_exclusions e
	 WHERE e.tenant_id = v_tenant AND e.order_id = v_order.id AND e.line_no = v_line.line_no;

	-- Route the rejected units again and move the reservation, in stock-lock order. A location
	-- that lost the race meanwhile (OM001, OM030) makes us route again, as place_order does.
	LOOP
		SELECT array_agg(rt.location_id ORDER BY rt.ord), array_agg(rt.qty ORDER BY rt.ord),
			   array_agg(rt.kind ORDER BY rt.ord), array_agg(rt.eta ORDER BY rt.ord),
			   array_agg(rt.capacity_day ORDER BY rt.ord), array_agg(rt.reason ORDER BY rt.ord),
			   array_agg(rt.supply_id ORDER BY rt.ord)
		  INTO v_a_loc, v_a_qty, v_a_kind, v_a_eta, v_a_capday, v_a_reason, v_a_supply
		  FROM oms._route(v_tenant, ARRAY[v_line.item_id], ARRAY[v_rejected], NULL, NULL,
						  array_fill(1, ARRAY[cardinality(v_excl)]), v_excl,
						  v_order.ship_to, v_order.pickup_location_id, v_order.profile)
			   WITH ORDINALITY AS rt(line_no, item_id, location_id, qty, kind, carrier_service, eta,
									 capacity_day, supply_id, reason, ord);
		BEGIN
			FOR r IN SELECT o.loc, o.qty
					   FROM (SELECT v_loc AS loc, 0 AS qty
							 UNION ALL
							 SELECT v_a_loc[n], v_a_qty[n] FROM generate_subscripts(v_a_loc, 1) n
							  WHERE v_a_kind[n] = ANY (oms._stock_kinds())) o
					  ORDER BY o.loc, o.qty
			LOOP
				IF r.loc = v_loc AND r.qty = 0 THEN
					DELETE FROM oms.reservations x
					 WHERE x.tenant_id = v_tenant AND x.order_id = v_order.id AND x.line_no = v_line.line_no
					   AND x.location_id = v_loc;
				ELSE
					INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no)
						VALUES (v_tenant, v_line.item_id, r.loc, r.qty, v_order.id, v_line.line_no);
				END IF;
			END LOOP;
			-- a pre-order reserves its supply, after the stock rows
			INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no, supply_id)
				SELECT v_tenant, v_line.item_id, v_a_loc[n], v_a_qty[n], v_order.id, v_line.line_no, v_a_supply[n]
				  FROM generate_subscripts(v_a_loc, 1) n
				 WHERE v_a_kind[n] = 'preorder';
			PERFORM oms._take_capacity(v_tenant, v_a_loc, v_a_capday);
			EXIT;
		EXCEPTION WHEN SQLSTATE 'OM001' OR SQLSTATE 'OM030' THEN
			v_attempt := v_attempt + 1;
			IF v_attempt >= 3 THEN
				RAISE;
			END IF;
		END;
	END LOOP;

	-- The line's new state: allocated where stock was found, else pre-ordered, else backordered
	-- (also when nothing can serve it: it waits for stock). Its location: the one place that holds
	-- all of it now, or NULL.
	v_state := CASE WHEN v_a_kind && oms._stock_kinds() THEN 'allocated'
					WHEN v_a_kind && ARRAY['preorder'] THEN 'preordered'
					ELSE 'backordered' END;
	SELECT CASE WHEN count(DISTINCT x.location_id) = 1 THEN min(x.location_id) END, coalesce(sum(x.qty), 0)
	  INTO v_new_loc, v_kept
	  FROM oms.reservations x
	 WHERE x.tenant_id = v_tenant AND x.order_id = v_order.id AND x.line_no = v_line.line_no
	   AND x.supply_id IS NULL;
	IF v_state = 'backordered' AND v_kept > 0 THEN
		-- Part of the line is still reserved elsewhere: the line stays allocated for that part.
		v_state := 'allocated';
	END IF;
	-- The date promised: the new route's, or the later of it and the old one while other parts of
	-- a split line are still reserved where they were.
	SELECT max(e) INTO v_promised FROM unnest(v_a_eta) e;
	IF v_kept > (SELECT coalesce(sum(v_a_qty[n]), 0) FROM generate_subscripts(v_a_loc, 1) n
				  WHERE v_a_kind[n] = ANY (oms._stock_kinds())) THEN
		v_promised := (SELECT greatest(v_promised, l.promised_date) FROM oms.order_lines l
						WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = v_line.line_no);
	END IF;
	PERFORM pg_catalog.set_config('oms.reason',
		format('rerouted after rejection at %s: %s', reject_line.location,
			   coalesce((SELECT string_agg(x, '; ') FROM unnest(v_a_reason) x), 'no route')), true);
	IF v_state = 'preordered' THEN
		v_new_loc := v_a_loc[1];
	END IF;
	UPDATE oms.order_lines l
	   SET state = v_state, location_id = CASE WHEN v_state IN ('allocated', 'preordered') THEN v_new_loc END,
		   promised_date = v_promised
	 WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = v_line.line_no;
	PERFORM oms._rollup(v_tenant, v_order.id);
	PERFORM pg_catalog.set_config('oms.reason', '', true);
	-- The customer hears of a line that now waits for stock (a line served elsewhere keeps its
	-- promise or gets the new date in the order's history and oms.order_status).
	IF v_state = 'backordered' THEN
		PERFORM oms._event(v_tenant, v_order.id, 'line_backordered',
			jsonb_build_object('lines', jsonb_build_array(jsonb_build_object(
				'line_no', v_line.line_no, 'sku', v_line.sku, 'qty', v_line.qty, 'promised_date', v_promised)),
				'reason', format('rejected at %s: %s', reject_line.location, left(reason, 1000))));
	END IF;

	RETURN QUERY
		SELECT v_line.line_no, l.code, v_a_qty[n], v_state, v_a_eta[n], v_a_reason[n]
		  FROM generate_subscripts(v_a_loc, 1) n
		  LEFT JOIN oms.locations l ON l.tenant_id = v_tenant AND l.id = v_a_loc[n]
								   AND v_a_kind[n] <> 'backorder'
		 ORDER BY n;
END
$$;
COMMENT ON FUNCTION oms.reject_line(bigint, int, text, text) IS 'A location cannot fulfil a line (damaged, not found): releases the line''s reservation there, excludes the location for the line, routes the units again under the order''s profile and reserves them (allocated, pre-ordered, or backordered when nothing can serve them); every move in order_history; returns the new route';

CREATE OR REPLACE FUNCTION oms.packing_slip(shipment_id bigint, format text DEFAULT 'html') RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	s			oms.shipments;
	o			oms.orders;
	r			record;
	h			text;
	t			text;
	v_follow	text := '';
	v_tfollow	text := '';
	v_no		bigint;
BEGIN
	PERFORM oms._format(format, ARRAY['html', 'text']);
	SELECT * INTO s FROM oms.shipments x WHERE x.tenant_id = v_tenant AND x.id = packing_slip.shipment_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown shipment %', coalesce(packing_slip.shipment_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Shipments are created by oms.pack() and listed in oms.shipments.';
	END IF;
	PERFORM oms._check_store_location(v_tenant, s.location_id);	-- store staff: their own locations' packages only
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = s.order_id;
	v_no := oms._package_no(v_tenant, s);
	h := '<!DOCTYPE html>' || E'\n' || '<html><head><meta charset="utf-8"><title>Packing slip ' || oms._html(o.external_id)
		 || '</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}'
		 || 'th,td{border-bottom:1px solid #ccc;padding:4px 12px;text-align:left}</style></head><body>' || E'\n'
		 || '<h1>Packing slip</h1>' || E'\n'
		 || '<p>Order ' || oms._html(o.external_id) || ' &middot; package ' || v_no
		 || coalesce(' &middot; SSCC ' || s.sscc, '') || '</p>' || E'\n'
		 || '<p><b>Ship to</b><br>' || array_to_string(ARRAY(SELECT oms._html(x) FROM unnest(oms._ship_to_lines(v_tenant, o)) x), '<br>')
		 || '</p>' || E'\n' || '<table><tr><th>Line</th><th>SKU</th><th>Item</th><th>Qty</th></tr>' || E'\n';
	t := 'PACKING SLIP' || E'\n' || 'Order ' || o.external_id || ', package ' || v_no || coalesce(', SSCC ' || s.sscc, '') || E'\n'
		 || 'Ship to: ' || array_to_string(oms._ship_to_lines(v_tenant, o), ', ') || E'\n' || 'In this package:' || E'\n';
	FOR r IN SELECT sl.line_no, i.sku, i.name, sl.qty FROM oms.shipment_lines sl
			   JOIN oms.order_lines l ON l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no
			   JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
			  WHERE sl.tenant_id = v_tenant AND sl.shipment_id = s.id ORDER BY sl.line_no
	LOOP
		h := h || format('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>', r.line_no, oms._html(r.sku), oms._html(r.name), r.qty) || E'\n';
		t := t || format('  %s  %s  %s  x %s', r.line_no, r.sku, r.name, r.qty) || E'\n';
	END LOOP;
	h := h || '</table>' || E'\n';
	-- To follow: units of each line not cancelled and not in this package or an earlier one.
	FOR r IN SELECT l.line_no, i.sku, i.name,
					l.qty - l.qty_cancelled - coalesce((SELECT sum(sl.qty) FROM oms.shipment_lines sl
														 WHERE sl.tenant_id = l.tenant_id AND sl.order_id = l.order_id
														   AND sl.line_no = l.line_no AND sl.shipment_id <= s.id), 0) AS qty
			   FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
			  WHERE l.tenant_id = v_tenant AND l.order_id = o.id ORDER BY l.line_no
	LOOP
		CONTINUE WHEN r.qty <= 0;
		v_follow := v_follow || format('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>', r.line_no, oms._html(r.sku),
									   oms._html(r.name), r.qty) || E'\n';
		v_tfollow := v_tfollow || format('  %s  %s  %s  x %s', r.line_no, r.sku, r.name, r.qty) || E'\n';
	END LOOP;
	IF v_follow = '' THEN
		h := h || '<p>This package completes your order.</p>' || E'\n';
		t := t || 'This package completes the order.' || E'\n';
	ELSE
		h := h || '<h3>To follow in other packages</h3><table><tr><th>Line</th><th>SKU</th><th>Item</th><th>Qty</th></tr>' || E'\n'
			 || v_follow || '</table>' || E'\n';
		t := t || 'To follow in other packages:' || E'\n' || v_tfollow;
	END IF;
	RETURN CASE format WHEN 'text' THEN t ELSE h || '</body></html>' || E'\n' END;
END
$$;
COMMENT ON FUNCTION oms.packing_slip(bigint, text) IS 'The packing slip of a package (html or text): order reference, SSCC, ship-to, the lines and quantities in it, and what is still to follow in other packages; unknown shipment or format: 22023';

CREATE OR REPLACE FUNCTION oms.shipping_label(shipment_id bigint, format text DEFAULT 'zpl') RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	s			oms.shipments;
	o			oms.orders;
	v_prefix	text;
	v_weight	numeric;
BEGIN
	PERFORM oms._format(format, ARRAY['zpl', 'html']);
	SELECT * INTO s FROM oms.shipments x WHERE x.tenant_id = v_tenant AND x.id = shipping_label.shipment_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown shipment %', coalesce(shipping_label.shipment_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Shipments are created by oms.pack() and listed in oms.shipments.';
	END IF;
	PERFORM oms._check_store_location(v_tenant, s.location_id);	-- store staff: their own locations' packages only
	IF s.sscc IS NULL THEN
		RAISE EXCEPTION 'shipment % has no SSCC', s.id
			USING ERRCODE = '55000',
			      HINT = 'Set the tenant''s GS1 company prefix (oms.set_document_settings) before packing: packages get their SSCC when packed.';
	END IF;
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = s.order_id;
	SELECT d.gs1_company_prefix INTO v_prefix FROM oms.document_settings d WHERE d.tenant_id = v_tenant;
	SELECT coalesce(sum(sl.qty * i.weight), 0) INTO v_weight
	  FROM oms.shipment_lines sl
	  JOIN oms.order_lines l ON l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no
	  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
	 WHERE sl.tenant_id = v_tenant AND sl.shipment_id = s.id;
	RETURN oms._label(format, 'Order ' || o.external_id || ' / package ' || oms._package_no(v_tenant, s),
					  oms._location_lines(v_tenant, s.location_id), oms._ship_to_lines(v_tenant, o),
					  ARRAY['Service: ' || coalesce(s.carrier || '.' || s.service, 'not shipped yet'),
							'Tracking: ' || coalesce(s.tracking, '-'),
							'Weight: ' || round(v_weight, 2) || ' kg'],
					  '00' || s.sscc, true, oms._sscc_text(s.sscc, coalesce(length(v_prefix), 7)));
END
$$;
COMMENT ON FUNCTION oms.shipping_label(bigint, text) IS 'A 4x6 inch shipping label of a package in ZPL II (format zpl) or HTML with an SVG barcode (format html): ship-from, ship-to, carrier service, tracking, weight, the SSCC as GS1-128 with its text; unknown shipment or format: 22023; no SSCC: 55000';

GRANT EXECUTE ON FUNCTION oms.reject_line(bigint, int, text, text) TO oms_store;
ALTER FUNCTION oms.reject_line(bigint, int, text, text) SECURITY DEFINER;
ALTER FUNCTION oms.packing_slip(bigint, text) SECURITY DEFINER;
ALTER FUNCTION oms.shipping_label(bigint, text) SECURITY DEFINER;

-- ===== Jobs: oms.run_job's work moves into functions that pin search_path; operators run jobs
-- (87_jobs, 99_access).
ALTER TABLE oms.job_runs
	ADD COLUMN error_code text,
	ADD COLUMN batch_items int,
	ADD COLUMN next_item int,
	ADD COLUMN last_item int,
	ADD COLUMN run_day date;
COMMENT ON COLUMN oms.job_runs.error_code IS 'SQLSTATE of the error of a failed run';
COMMENT ON COLUMN oms.job_runs.batch_items IS 'The run''s cursor: item ids per batch (replenishment; 1 for the other jobs), next_item the first id of the next batch, last_item the last id to plan, run_day the day it plans for';
CREATE FUNCTION oms._job_begin(p_job text, p_tenant text, p_batch_items int) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_job		text := oms._check_job(p_job);
	v_tenant	int;
	v_from		int := 0;
	v_max		int := 0;
	v_batch		int := p_batch_items;
	v_run		bigint;
BEGIN
	IF p_batch_items IS NULL OR p_batch_items < 1 THEN
		RAISE EXCEPTION 'batch_items must be at least 1, got %', coalesce(p_batch_items::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'A replenishment run commits after every batch of this many item ids.';
	END IF;
	IF p_tenant IS NOT NULL THEN
		PERFORM set_config('oms.tenant', p_tenant, false);
	END IF;
	v_tenant := oms.current_tenant_id();

	IF NOT pg_try_advisory_lock(hashtext('oms.' || v_job), v_tenant) THEN
		INSERT INTO oms.job_runs (tenant_id, job, status, finished_at, error)
		VALUES (v_tenant, v_job, 'skipped', clock_timestamp(), 'another run of this job was in progress');
		RAISE NOTICE 'job "%" of tenant "%" is already running in another session; this run does nothing',
			v_job, current_setting('oms.tenant');
		RETURN NULL;
	END IF;

	-- Runs left 'running' by a backend that is gone are closed as failed.
	UPDATE oms.job_runs r SET status = 'failed', finished_at = clock_timestamp(),
							  error = 'the run ended without finishing (server restart or backend terminated)'
	 WHERE r.tenant_id = v_tenant AND r.job = v_job AND r.status = 'running';
	IF v_job = 'replenishment' THEN
		SELECT min(i.id), max(i.id) INTO v_from, v_max FROM oms.items i WHERE i.tenant_id = v_tenant;
	ELSE
		v_batch := 1;
	END IF;
	INSERT INTO oms.job_runs (tenant_id, job, status, progress_total, batch_items, next_item, last_item, run_day)
	VALUES (v_tenant, v_job, 'running', coalesce(ceil((v_max - v_from + 1)::numeric / v_batch), 0),
			v_batch, v_from, v_max, oms.today())
	RETURNING id INTO v_run;
	RETURN v_run;
END
$$;
COMMENT ON FUNCTION oms._job_begin(text, text, int) IS 'Internal (oms.run_job): checks the job, takes its advisory lock for the tenant (or records a skipped run and returns NULL), closes runs left running, and records the new run with its cursor; returns its id';

CREATE FUNCTION oms._job_next(p_run bigint) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r		oms.job_runs;
	v_to	int;
	v_rows	bigint;
	v_state	text;
	v_msg	text;
BEGIN
	SELECT * INTO r FROM oms.job_runs x
	 WHERE x.id = p_run AND x.tenant_id = oms.current_tenant_id() AND x.status = 'running' AND x.backend_pid = pg_backend_pid();
	IF NOT FOUND THEN
		RAISE EXCEPTION 'job run % is not running in this session', coalesce(p_run::text, 'NULL')
			USING ERRCODE = '55000', HINT = 'Runs are started with CALL oms.run_job(job, tenant).';
	END IF;
	IF r.next_item IS NULL OR r.next_item > r.last_item THEN
		RETURN false;
	END IF;
	v_to := int4(LEAST(r.next_item::bigint + r.batch_items - 1, r.last_item));
	BEGIN
		v_rows := oms._job_step(r.job, r.tenant_id, r.run_day, r.next_item, v_to);
	EXCEPTION WHEN OTHERS THEN
		-- The batches before this one are committed; the run is recorded as failed, and
		-- oms._job_end raises the error once this record is committed.
		GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
		UPDATE oms.job_runs x SET status = 'failed', finished_at = clock_timestamp(), error = v_msg, error_code = v_state
		 WHERE x.id = p_run;
		RETURN false;
	END;
	UPDATE oms.job_runs x SET progress_done = x.progress_done + 1, rows_touched = x.rows_touched + v_rows, next_item = v_to + 1
	 WHERE x.id = p_run;
	RETURN v_to < r.last_item;
END
$$;
COMMENT ON FUNCTION oms._job_next(bigint) IS 'Internal (oms.run_job): runs the next batch of a run of this session and records its progress; false when nothing is left or the batch failed (recorded)';

CREATE FUNCTION oms._job_end(p_run bigint) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r	oms.job_runs;
BEGIN
	SELECT * INTO r FROM oms.job_runs x
	 WHERE x.id = p_run AND x.tenant_id = oms.current_tenant_id() AND x.backend_pid = pg_backend_pid();
	IF NOT FOUND THEN
		RAISE EXCEPTION 'job run % is not a run of this session', coalesce(p_run::text, 'NULL')
			USING ERRCODE = '55000', HINT = 'Runs are started with CALL oms.run_job(job, tenant).';
	END IF;
	IF r.status = 'running' THEN
		UPDATE oms.job_runs x SET status = 'succeeded', finished_at = clock_timestamp() WHERE x.id = p_run;
	END IF;
	PERFORM pg_advisory_unlock(hashtext('oms.' || r.job), r.tenant_id);
	IF r.status = 'failed' THEN
		RAISE EXCEPTION USING ERRCODE = coalesce(r.error_code, 'XX000'), MESSAGE = r.error,
			  DETAIL = format('Job "%s", run %s: the batches before this one are committed.', r.job, r.id);
	END IF;
END
$$;
COMMENT ON FUNCTION oms._job_end(bigint) IS 'Internal (oms.run_job): marks a finished run succeeded, releases the job''s advisory lock, and raises the recorded error of a failed run';

CREATE OR REPLACE PROCEDURE oms.run_job(job text, tenant text DEFAULT NULL, batch_items int DEFAULT 1000)
	LANGUAGE plpgsql
AS $$
DECLARE
	v_run	bigint;
BEGIN
	v_run := oms._job_begin(job, tenant, batch_items);
	COMMIT;
	IF v_run IS NULL THEN
		RETURN;
	END IF;
	WHILE oms._job_next(v_run) LOOP
		COMMIT;
	END LOOP;
	COMMIT;
	PERFORM oms._job_end(v_run);
	COMMIT;
END
$$;

REVOKE ALL ON FUNCTION oms._job_begin(text, text, int), oms._job_next(bigint), oms._job_end(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms._job_begin(text, text, int), oms._job_next(bigint), oms._job_end(bigint) TO oms_admin, oms_operator;
GRANT EXECUTE ON FUNCTION oms.run_replenishment(), oms.check_alerts(), oms.run_subscriptions(date),
	oms.compact_demand_history(), oms.compact_bi_sales() TO oms_operator;
ALTER FUNCTION oms._job_begin(text, text, int) SECURITY DEFINER;
ALTER FUNCTION oms._job_next(bigint) SECURITY DEFINER;
ALTER FUNCTION oms._job_end(bigint) SECURITY DEFINER;
ALTER FUNCTION oms.run_replenishment() SECURITY DEFINER;
ALTER FUNCTION oms.check_alerts() SECURITY DEFINER;
ALTER FUNCTION oms.run_subscriptions(date) SECURITY DEFINER;
ALTER FUNCTION oms.compact_demand_history() SECURITY DEFINER;
ALTER FUNCTION oms.compact_bi_sales() SECURITY DEFINER;
GRANT EXECUTE ON PROCEDURE oms.run_job(text, text, int) TO oms_operator;
COMMENT ON PROCEDURE oms.run_job(text, text, int) IS 'Runs a scheduled job (replenishment, alerts, subscriptions, demand_history, bi_summaries) for a tenant (default: the setting oms.tenant): records it in oms.job_runs, commits after each batch (replenishment: batch_items item ids at a time) with its progress, and does nothing but record a skipped run when the same job of the tenant is already running';

-- ===== Routing: backends keep each tenant's locations for the pruned search; changes of the
-- locations or the country centroids drop them (63_routing).
CREATE FUNCTION oms._routing_data_changed() RETURNS trigger
	LANGUAGE c
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_routing_data_changed';
COMMENT ON FUNCTION oms._routing_data_changed() IS 'Internal: trigger invalidating every backend''s cached routing locations after a change of oms.locations or oms.country_centroids';
REVOKE ALL ON FUNCTION oms._routing_data_changed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms._routing_data_changed() TO oms_admin;
CREATE TRIGGER routing_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON oms.locations
	FOR EACH STATEMENT EXECUTE FUNCTION oms._routing_data_changed();
CREATE TRIGGER routing_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON oms.country_centroids
	FOR EACH STATEMENT EXECUTE FUNCTION oms._routing_data_changed();

-- ===== Capacity follows the order: oms.order_capacity records where each order counts, and an
-- order that leaves a location (cancelled, a line rejected, a new address) gives its count back
-- (62_shipping, 67_route_apply, 70_place_order, 74_reject_line, 75_cancel, 84_order_edits).
-- Orders placed before 0.2.0 have no row there: their counts stay taken (as in 0.1.0).
CREATE TABLE oms.order_capacity (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	order_id		bigint NOT NULL,
	location_id		int NOT NULL,
	day				date NOT NULL,
	PRIMARY KEY (tenant_id, order_id, location_id),
	FOREIGN KEY (tenant_id, order_id) REFERENCES oms.orders,
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations
);
COMMENT ON TABLE oms.order_capacity IS 'The (location, day) each order is counted at in oms.location_capacity_used (one per order and location); the count is given back when the order no longer uses the location (cancelled, rejected, re-routed)';
SELECT pg_catalog.pg_extension_config_dump('oms.order_capacity', '');
GRANT ALL ON oms.order_capacity TO oms_admin;
GRANT SELECT ON oms.order_capacity TO oms_operator;
ALTER TABLE oms.order_capacity ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON oms.order_capacity USING (tenant_id OPERATOR(pg_catalog.=) (SELECT oms.current_tenant_id()));
CREATE POLICY admin ON oms.order_capacity TO oms_admin USING (true) WITH CHECK (true);
CREATE FUNCTION oms._take_order_capacity(p_tenant int, p_order bigint, p_loc int[], p_day date[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_loc	int[];
	v_day	date[];
BEGIN
	-- The first (lowest) day per location the order is not yet counted at, in location order.
	SELECT array_agg(x.location_id ORDER BY x.location_id, x.day), array_agg(x.day ORDER BY x.location_id, x.day)
	  INTO v_loc, v_day
	  FROM (SELECT DISTINCT ON (p_loc[n]) p_loc[n] AS location_id, p_day[n] AS day
			  FROM generate_subscripts(p_loc, 1) n
			 WHERE p_day[n] IS NOT NULL
			   AND NOT EXISTS (SELECT FROM oms.order_capacity c
								WHERE c.tenant_id = p_tenant AND c.order_id = p_order AND c.location_id = p_loc[n])
			 ORDER BY p_loc[n], p_day[n]) x;
	IF v_loc IS NULL THEN
		RETURN;
	END IF;
	PERFORM oms._take_capacity(p_tenant, v_loc, v_day);
	INSERT INTO oms.order_capacity (tenant_id, order_id, location_id, day)
		SELECT p_tenant, p_order, v_loc[n], v_day[n] FROM generate_subscripts(v_loc, 1) n
		 WHERE EXISTS (SELECT FROM oms.locations l
						WHERE l.tenant_id = p_tenant AND l.id = v_loc[n] AND l.daily_capacity > 0);
END
$$;
COMMENT ON FUNCTION oms._take_order_capacity(int, bigint, int[], date[]) IS 'Internal: counts an order at the locations (and their days) a route sends it to, once per order and location (oms.order_capacity); OM030 when a day''s capacity is gone';
CREATE FUNCTION oms._release_order_capacity(p_tenant int, p_order bigint)
	RETURNS TABLE (location_id int, day date)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r	record;
BEGIN
	FOR r IN SELECT c.location_id, c.day FROM oms.order_capacity c
			  WHERE c.tenant_id = p_tenant AND c.order_id = p_order
				AND NOT EXISTS (SELECT FROM oms.reservations x
								 WHERE x.tenant_id = p_tenant AND x.order_id = p_order
								   AND x.location_id = c.location_id)
				AND NOT EXISTS (SELECT FROM oms.shipments s
								 WHERE s.tenant_id = p_tenant AND s.order_id = p_order
								   AND s.location_id = c.location_id)
			  ORDER BY c.location_id, c.day
	LOOP
		UPDATE oms.location_capacity_used u SET used = u.used - 1
		 WHERE u.tenant_id = p_tenant AND u.location_id = r.location_id AND u.day = r.day AND u.used > 0;
		DELETE FROM oms.order_capacity c
		 WHERE c.tenant_id = p_tenant AND c.order_id = p_order AND c.location_id = r.location_id;
		location_id := r.location_id;
		day := r.day;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._release_order_capacity(int, bigint) IS 'Internal: gives back the daily capacity an order counted at locations it no longer uses (no reservation there, nothing shipped from there); returns those (location, day)';
REVOKE ALL ON FUNCTION oms._take_order_capacity(int, bigint, int[], date[]), oms._release_order_capacity(int, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms._take_order_capacity(int, bigint, int[], date[]), oms._release_order_capacity(int, bigint) TO oms_admin;
-- ===== Flash sales: stock slots for hot SKUs (56_stock_slots, 55_reservation, 65_allocation,
-- 99_access).
ALTER TABLE oms.stock
	ADD COLUMN hot boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN oms.stock.hot IS 'The SKU is hot here (oms.set_hot): reservations take from oms.stock_slots, and reserved counts the slots'' free units too';

CREATE TABLE oms.stock_slots (
	tenant_id		int NOT NULL DEFAULT oms.current_tenant_id(),
	item_id			int NOT NULL,
	location_id		int NOT NULL,
	slot			int NOT NULL CHECK (slot >= 0 AND slot < 64),
	free			bigint NOT NULL DEFAULT 0 CHECK (free >= 0),
	PRIMARY KEY (tenant_id, item_id, location_id, slot),
	FOREIGN KEY (tenant_id, item_id, location_id) REFERENCES oms.stock
) WITH (fillfactor = 20);
COMMENT ON TABLE oms.stock_slots IS 'Units of a hot SKU at a location set aside for concurrent orders: each slot is taken by its own orders (pid mod slots); free units count in stock.reserved and in ATP';

-- The stock row's side of moving units between a stock row and its slots: reserved moves by
-- delta (positive: units into the slots, only if that many are available; negative: back), with
-- the stock guard open for that row, as only the reservation trigger may otherwise move reserved.
CREATE FUNCTION oms._slot_units(p_tenant int, p_item int, p_location int, p_delta bigint) RETURNS boolean
	LANGUAGE c
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_slot_units';
COMMENT ON FUNCTION oms._slot_units(int, int, int, bigint) IS 'Internal: moves reserved of a hot stock row by delta for its slots (positive only within on_hand - reserved - safety_stock); false when the units are not there';

CREATE FUNCTION oms.set_hot(sku text, hot boolean, slots int DEFAULT 16) RETURNS int
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int := oms._item_id(v_tenant, set_hot.sku);
	r			record;
	v_free		bigint;
	v_n			int := 0;
BEGIN
	IF set_hot.hot IS NULL THEN
		RAISE EXCEPTION 'hot must be true or false for SKU "%"', set_hot.sku
			USING ERRCODE = '22023', HINT = 'oms.set_hot(''SKU-1'', true) before a flash sale, false after it.';
	END IF;
	IF set_hot.slots IS NULL OR set_hot.slots < 2 OR set_hot.slots > 64 THEN
		RAISE EXCEPTION 'invalid number of slots % for SKU "%"', coalesce(set_hot.slots::text, 'NULL'), set_hot.sku
			USING ERRCODE = '22023', HINT = 'From 2 to 64; about the number of clients that buy at once (default 16).';
	END IF;
	-- Every stock row of the SKU, in lock order; its slots' free units go back to the row first.
	FOR r IN SELECT s.location_id, s.hot FROM oms.stock s
			  WHERE s.tenant_id = v_tenant AND s.item_id = v_item
			  ORDER BY s.location_id
			  FOR UPDATE
	LOOP
		SELECT coalesce(sum(x.free), 0) INTO v_free FROM oms.stock_slots x
		 WHERE x.tenant_id = v_tenant AND x.item_id = v_item AND x.location_id = r.location_id;
		IF v_free > 0 THEN
			PERFORM oms._slot_units(v_tenant, v_item, r.location_id, -v_free);
		END IF;
		DELETE FROM oms.stock_slots x
		 WHERE x.tenant_id = v_tenant AND x.item_id = v_item AND x.location_id = r.location_id;
		UPDATE oms.stock s SET hot = set_hot.hot
		 WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = r.location_id;
		IF set_hot.hot THEN
			-- Empty slots: the first orders fill them from the stock row.
			INSERT INTO oms.stock_slots (tenant_id, item_id, location_id, slot)
				SELECT v_tenant, v_item, r.location_id, n FROM generate_series(0, set_hot.slots - 1) n;
		END IF;
		v_n := v_n + 1;
	END LOOP;
	RETURN v_n;
END
$$;
COMMENT ON FUNCTION oms.set_hot(text, boolean, int) IS 'Declares a SKU hot (a flash sale) or not: its stock rows get slots that concurrent orders take from without queuing on one row (true), or give their free units back (false); returns the number of stock rows; unknown SKU: 22023';
SELECT pg_catalog.pg_extension_config_dump('oms.stock_slots', '');
GRANT ALL ON oms.stock_slots TO oms_admin;
GRANT SELECT ON oms.stock_slots TO oms_operator, oms_app, oms_store;
ALTER TABLE oms.stock_slots ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON oms.stock_slots USING (tenant_id OPERATOR(pg_catalog.=) (SELECT oms.current_tenant_id()));
CREATE POLICY admin ON oms.stock_slots TO oms_admin USING (true) WITH CHECK (true);
CREATE POLICY store ON oms.stock_slots AS RESTRICTIVE TO oms_store USING (location_id OPERATOR(pg_catalog.=) ANY ((SELECT oms._store_locations())::int[]));
REVOKE ALL ON FUNCTION oms._slot_units(int, int, int, bigint), oms.set_hot(text, boolean, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms._slot_units(int, int, int, bigint), oms.set_hot(text, boolean, int) TO oms_admin;
GRANT EXECUTE ON FUNCTION oms.set_hot(text, boolean, int) TO oms_operator;
ALTER FUNCTION oms.set_hot(text, boolean, int) SECURITY DEFINER;


-- ===== BI at a million orders (session 4): summaries at the grain of the reports that a daily
-- total cannot answer: per order (oms.bi_order_sales: top customers and orders, perfect orders),
-- per shipment that left (oms.bi_shipments: the shipment KPIs), per SKU and day
-- (oms.bi_product_daily, instead of the product rows of oms.bi_sales_rollup); a changed country,
-- seller or page of an order moves its sales; a backorder's count moves with its line. Filled for
-- every tenant by oms._bi_rebuild at the end.
CREATE TABLE oms.bi_order_sales (
	tenant_id			int NOT NULL,
	order_id			bigint NOT NULL,
	day					date NOT NULL,
	channel_id			int NOT NULL,
	customer			text,
	currency			char(3) NOT NULL,
	lines				int NOT NULL,
	units				int NOT NULL,
	revenue				numeric NOT NULL,
	units_returned		int NOT NULL,
	lines_incomplete	int NOT NULL,
	late_shipments		int NOT NULL DEFAULT 0,
	returns				int NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, order_id)
);
CREATE INDEX bi_order_sales_day_idx ON oms.bi_order_sales (tenant_id, day);
COMMENT ON TABLE oms.bi_order_sales IS 'BI summary, one row per order with lines: its UTC day of placement, channel, customer and currency, and what its lines add up to; kept in place by the triggers on order_lines, orders, shipments and returns (exact as of the last commit)';
COMMENT ON COLUMN oms.bi_order_sales.customer IS 'Customer reference of the order';
COMMENT ON COLUMN oms.bi_order_sales.lines IS 'Order lines';
COMMENT ON COLUMN oms.bi_order_sales.units IS 'Units not cancelled';
COMMENT ON COLUMN oms.bi_order_sales.revenue IS 'Units not cancelled at their price, order currency';
COMMENT ON COLUMN oms.bi_order_sales.units_returned IS 'Units returned (received back)';
COMMENT ON COLUMN oms.bi_order_sales.lines_incomplete IS 'Lines with a unit cancelled or not shipped';
COMMENT ON COLUMN oms.bi_order_sales.late_shipments IS 'Shipments of the order that left after their promised date (oms.bi_shipments.on_time false)';
COMMENT ON COLUMN oms.bi_order_sales.returns IS 'Returns (RMAs) authorised for the order';

CREATE TABLE oms.bi_shipments (
	tenant_id			int NOT NULL,
	shipment_id			bigint NOT NULL,
	order_id			bigint NOT NULL,
	day					date NOT NULL,
	channel_id			int NOT NULL,
	location_id			int NOT NULL,
	promised_date		date,
	on_time				boolean,
	hours_to_ship		double precision,
	hours_to_deliver	double precision,
	PRIMARY KEY (tenant_id, shipment_id)
);
CREATE INDEX bi_shipments_by_day_idx ON oms.bi_shipments (tenant_id, day);
COMMENT ON TABLE oms.bi_shipments IS 'BI summary, one row per shipment that left: UTC day shipped, the order''s channel, the shipping location, promised date (earliest of its lines), on time or not, hours from placement to shipment and to delivery; kept in place by the triggers on shipments and order_lines (exact as of the last commit)';
COMMENT ON COLUMN oms.bi_shipments.promised_date IS 'Earliest promised date of the order lines in the shipment';
COMMENT ON COLUMN oms.bi_shipments.on_time IS 'Shipped (UTC day) on or before the promised date; NULL when nothing was promised';
COMMENT ON COLUMN oms.bi_shipments.hours_to_ship IS 'Hours from placement to shipment, rounded to 0.1 (as oms_bi.shipments shows them; a float for the percentiles of kpis_daily)';
COMMENT ON COLUMN oms.bi_shipments.hours_to_deliver IS 'Hours from placement to delivery, rounded to 0.1; NULL until delivered';

-- Products have the most values by far (a row per SKU and day): they get a narrow table of their
-- own, written a day at a time (rows of a day together), instead of rows of oms.bi_sales_rollup.
CREATE TABLE oms.bi_product_daily (
	tenant_id			int NOT NULL,
	day					date NOT NULL,
	item_id				int NOT NULL,
	currency			char(3) NOT NULL,
	orders				bigint NOT NULL,
	lines				bigint NOT NULL,
	lines_backordered	bigint NOT NULL,
	units				bigint NOT NULL,
	units_cancelled		bigint NOT NULL,
	units_shipped		bigint NOT NULL,
	units_returned		bigint NOT NULL,
	revenue				numeric NOT NULL,
	returned_value		numeric NOT NULL,
	PRIMARY KEY (tenant_id, day, item_id, currency)
);
COMMENT ON TABLE oms.bi_product_daily IS 'BI sales per tenant, UTC day, SKU and currency, recomputed from oms.bi_sales_daily for the days each compaction touches (the product rows of oms_bi.sales_by_dimension)';
COMMENT ON COLUMN oms.bi_product_daily.revenue IS 'Units not cancelled at their price, in the currency';
ALTER TABLE oms.bi_order_sales ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON oms.bi_order_sales USING (tenant_id OPERATOR(pg_catalog.=) (SELECT oms.current_tenant_id()));
CREATE POLICY admin ON oms.bi_order_sales TO oms_admin USING (true) WITH CHECK (true);
ALTER TABLE oms.bi_shipments ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON oms.bi_shipments USING (tenant_id OPERATOR(pg_catalog.=) (SELECT oms.current_tenant_id()));
CREATE POLICY admin ON oms.bi_shipments TO oms_admin USING (true) WITH CHECK (true);
ALTER TABLE oms.bi_product_daily ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON oms.bi_product_daily USING (tenant_id OPERATOR(pg_catalog.=) (SELECT oms.current_tenant_id()));
CREATE POLICY admin ON oms.bi_product_daily TO oms_admin USING (true) WITH CHECK (true);
REVOKE ALL ON oms.bi_order_sales, oms.bi_shipments, oms.bi_product_daily FROM PUBLIC;
GRANT ALL ON oms.bi_order_sales, oms.bi_shipments, oms.bi_product_daily TO oms_admin;
GRANT SELECT ON oms.bi_order_sales, oms.bi_shipments, oms.bi_product_daily TO oms_operator;
SELECT pg_catalog.pg_extension_config_dump('oms.bi_order_sales', '');
SELECT pg_catalog.pg_extension_config_dump('oms.bi_shipments', '');
SELECT pg_catalog.pg_extension_config_dump('oms.bi_product_daily', '');

COMMENT ON TABLE oms.bi_sales_rollup IS 'BI sales per tenant, UTC day and value of a report dimension (channel and location, brand, category, country, seller, page) and currency, recomputed from oms.bi_sales_daily for the days each compaction touches (products: oms.bi_product_daily)';
COMMENT ON COLUMN oms.bi_sales_rollup.key IS 'Channel code, brand, category, country, seller or page (NULL: none)';
COMMENT ON COLUMN oms.bi_sales_rollup.label IS 'Readable label: the key';

CREATE OR REPLACE FUNCTION oms._bi_lines_inserted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	WITH l AS MATERIALIZED (
		SELECT n.tenant_id, n.order_id, n.line_no, n.item_id, n.location_id, n.state, n.qty, n.qty_cancelled, n.qty_shipped,
			   n.qty_returned, n.unit_price, (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, o.currency,
			   o.ship_country, o.attributes, o.customer_ref
		  FROM new_lines n
		  JOIN oms.orders o ON o.tenant_id = n.tenant_id AND o.id = n.order_id
	), deltas AS (
		INSERT INTO oms.bi_sales_deltas
		SELECT l.tenant_id, l.day, l.channel_id, l.location_id, l.item_id, l.currency,
			   l.ship_country, l.attributes ->> 'seller', l.attributes ->> 'source_page',
			   pg_catalog.count(*) FILTER (WHERE l.line_no = 1), pg_catalog.count(*),
			   pg_catalog.count(*) FILTER (WHERE l.state = 'backordered'),
			   pg_catalog.sum(l.qty), pg_catalog.sum(l.qty_cancelled), pg_catalog.sum(l.qty_shipped), pg_catalog.sum(l.qty_returned),
			   pg_catalog.sum(l.qty * l.unit_price), pg_catalog.sum(l.qty_cancelled * l.unit_price),
			   pg_catalog.sum(l.qty_returned * l.unit_price)
		  FROM l
		 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
	)
	INSERT INTO oms.bi_order_sales AS b (tenant_id, order_id, day, channel_id, customer, currency, lines, units, revenue,
										 units_returned, lines_incomplete)
	SELECT l.tenant_id, l.order_id, l.day, l.channel_id, l.customer_ref, l.currency, pg_catalog.count(*),
		   pg_catalog.sum(l.qty - l.qty_cancelled), pg_catalog.sum((l.qty - l.qty_cancelled) * l.unit_price),
		   pg_catalog.sum(l.qty_returned), pg_catalog.count(*) FILTER (WHERE l.qty_cancelled > 0 OR l.qty_shipped < l.qty)
	  FROM l
	 GROUP BY 1, 2, 3, 4, 5, 6
	ON CONFLICT (tenant_id, order_id) DO UPDATE
	   SET lines = b.lines + EXCLUDED.lines, units = b.units + EXCLUDED.units, revenue = b.revenue + EXCLUDED.revenue,
		   units_returned = b.units_returned + EXCLUDED.units_returned,
		   lines_incomplete = b.lines_incomplete + EXCLUDED.lines_incomplete;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_inserted() IS 'Internal: statement trigger on order_lines INSERT: adds the new lines to oms.bi_sales_deltas and to their order''s row of oms.bi_order_sales';

CREATE OR REPLACE FUNCTION oms._bi_lines_updated() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_shipments	bigint[];
	v_tenant	int;
BEGIN
	WITH changed AS MATERIALIZED (
		SELECT n.tenant_id, n.order_id, n.line_no,
			   n.item_id AS n_item, n.location_id AS n_loc, n.qty AS n_qty, n.qty_cancelled AS n_cancelled,
			   n.qty_shipped AS n_shipped, n.qty_returned AS n_returned, n.unit_price AS n_price,
			   d.item_id AS d_item, d.location_id AS d_loc, d.qty AS d_qty, d.qty_cancelled AS d_cancelled,
			   d.qty_shipped AS d_shipped, d.qty_returned AS d_returned, d.unit_price AS d_price,
			   n.location_id IS DISTINCT FROM d.location_id
				   AND EXISTS (SELECT FROM oms.order_history h
								WHERE h.tenant_id = n.tenant_id AND h.order_id = n.order_id AND h.line_no = n.line_no
								  AND h.from_state IS NULL AND h.to_state = 'backordered') AS moved_backorder
		  FROM new_lines n
		  JOIN old_lines d ON d.tenant_id = n.tenant_id AND d.order_id = n.order_id AND d.line_no = n.line_no
		 WHERE (n.item_id, n.location_id, n.qty, n.qty_cancelled, n.qty_shipped, n.qty_returned, n.unit_price)
			   IS DISTINCT FROM (d.item_id, d.location_id, d.qty, d.qty_cancelled, d.qty_shipped, d.qty_returned, d.unit_price)
	), c AS MATERIALIZED (
		SELECT x.tenant_id, x.order_id, v.item_id, v.location_id, v.sign * (x.line_no = 1)::int AS orders, v.sign AS lines,
			   v.sign * x.moved_backorder::int AS lines_backordered, v.sign * v.qty AS qty,
			   v.sign * v.qty_cancelled AS qty_cancelled, v.sign * v.qty_shipped AS qty_shipped,
			   v.sign * v.qty_returned AS qty_returned, v.sign * v.qty * v.unit_price AS gross,
			   v.sign * v.qty_cancelled * v.unit_price AS cancelled_value, v.sign * v.qty_returned * v.unit_price AS returned_value,
			   v.sign * (v.qty_cancelled > 0 OR v.qty_shipped < v.qty)::int AS incomplete,
			   (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, o.currency, o.ship_country, o.attributes, o.customer_ref
		  FROM changed x
		 CROSS JOIN LATERAL (VALUES (1, x.n_item, x.n_loc, x.n_qty::bigint, x.n_cancelled::bigint, x.n_shipped::bigint,
									 x.n_returned::bigint, x.n_price),
									(-1, x.d_item, x.d_loc, x.d_qty, x.d_cancelled, x.d_shipped, x.d_returned, x.d_price))
			   v(sign, item_id, location_id, qty, qty_cancelled, qty_shipped, qty_returned, unit_price)
		  JOIN oms.orders o ON o.tenant_id = x.tenant_id AND o.id = x.order_id
	), deltas AS (
		INSERT INTO oms.bi_sales_deltas
		SELECT c.tenant_id, c.day, c.channel_id, c.location_id, c.item_id, c.currency,
			   c.ship_country, c.attributes ->> 'seller', c.attributes ->> 'source_page',
			   pg_catalog.sum(c.orders), pg_catalog.sum(c.lines), pg_catalog.sum(c.lines_backordered),
			   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_shipped), pg_catalog.sum(c.qty_returned),
			   pg_catalog.sum(c.gross), pg_catalog.sum(c.cancelled_value), pg_catalog.sum(c.returned_value)
		  FROM c
		 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
		HAVING pg_catalog.sum(c.orders) <> 0 OR pg_catalog.sum(c.lines) <> 0 OR pg_catalog.sum(c.lines_backordered) <> 0
			OR pg_catalog.sum(c.qty) <> 0 OR pg_catalog.sum(c.qty_cancelled) <> 0 OR pg_catalog.sum(c.qty_shipped) <> 0
			OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.gross) <> 0 OR pg_catalog.sum(c.cancelled_value) <> 0
			OR pg_catalog.sum(c.returned_value) <> 0
	)
	INSERT INTO oms.bi_order_sales AS b (tenant_id, order_id, day, channel_id, customer, currency, lines, units, revenue,
										 units_returned, lines_incomplete)
	SELECT c.tenant_id, c.order_id, c.day, c.channel_id, c.customer_ref, c.currency, pg_catalog.sum(c.lines),
		   pg_catalog.sum(c.qty - c.qty_cancelled), pg_catalog.sum(c.gross - c.cancelled_value),
		   pg_catalog.sum(c.qty_returned), pg_catalog.sum(c.incomplete)
	  FROM c
	 GROUP BY 1, 2, 3, 4, 5, 6
	HAVING pg_catalog.sum(c.qty - c.qty_cancelled) <> 0 OR pg_catalog.sum(c.gross - c.cancelled_value) <> 0
		OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.incomplete) <> 0
	ON CONFLICT (tenant_id, order_id) DO UPDATE
	   SET lines = b.lines + EXCLUDED.lines, units = b.units + EXCLUDED.units, revenue = b.revenue + EXCLUDED.revenue,
		   units_returned = b.units_returned + EXCLUDED.units_returned,
		   lines_incomplete = b.lines_incomplete + EXCLUDED.lines_incomplete;

	FOR v_tenant, v_shipments IN
		SELECT x.tenant_id, pg_catalog.array_agg(DISTINCT x.shipment_id)
		  FROM new_lines n
		  JOIN old_lines d ON d.tenant_id = n.tenant_id AND d.order_id = n.order_id AND d.line_no = n.line_no
		  JOIN oms.shipment_lines x ON x.tenant_id = n.tenant_id AND x.order_id = n.order_id AND x.line_no = n.line_no
		 WHERE n.promised_date IS DISTINCT FROM d.promised_date AND n.qty_shipped > 0
		 GROUP BY x.tenant_id
	LOOP
		PERFORM oms._bi_refresh_shipments(v_tenant, v_shipments);
	END LOOP;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_updated() IS 'Internal: statement trigger on order_lines UPDATE: writes to oms.bi_sales_deltas and oms.bi_order_sales the net change of the lines whose quantities, price, item or location changed (a pure state change writes nothing); a shipped line''s new promised date re-evaluates its shipments in oms.bi_shipments';

CREATE OR REPLACE FUNCTION oms._bi_lines_deleted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	WITH l AS MATERIALIZED (
		SELECT d.tenant_id, d.order_id, d.line_no, d.item_id, d.location_id, d.qty, d.qty_cancelled, d.qty_shipped,
			   d.qty_returned, d.unit_price, (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, o.currency,
			   o.ship_country, o.attributes, o.customer_ref,
			   EXISTS (SELECT FROM oms.order_history h
						WHERE h.tenant_id = d.tenant_id AND h.order_id = d.order_id AND h.line_no = d.line_no
						  AND h.from_state IS NULL AND h.to_state = 'backordered') AS backordered
		  FROM old_lines d
		  JOIN oms.orders o ON o.tenant_id = d.tenant_id AND o.id = d.order_id
	), deltas AS (
		INSERT INTO oms.bi_sales_deltas
		SELECT l.tenant_id, l.day, l.channel_id, l.location_id, l.item_id, l.currency,
			   l.ship_country, l.attributes ->> 'seller', l.attributes ->> 'source_page',
			   -pg_catalog.count(*) FILTER (WHERE l.line_no = 1), -pg_catalog.count(*), -pg_catalog.count(*) FILTER (WHERE l.backordered),
			   -pg_catalog.sum(l.qty), -pg_catalog.sum(l.qty_cancelled), -pg_catalog.sum(l.qty_shipped), -pg_catalog.sum(l.qty_returned),
			   -pg_catalog.sum(l.qty * l.unit_price), -pg_catalog.sum(l.qty_cancelled * l.unit_price),
			   -pg_catalog.sum(l.qty_returned * l.unit_price)
		  FROM l
		 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
	)
	UPDATE oms.bi_order_sales b
	   SET lines = b.lines - g.lines, units = b.units - g.units, revenue = b.revenue - g.revenue,
		   units_returned = b.units_returned - g.units_returned, lines_incomplete = b.lines_incomplete - g.incomplete
	  FROM (SELECT l.tenant_id, l.order_id, pg_catalog.count(*) AS lines, pg_catalog.sum(l.qty - l.qty_cancelled) AS units,
				   pg_catalog.sum((l.qty - l.qty_cancelled) * l.unit_price) AS revenue, pg_catalog.sum(l.qty_returned) AS units_returned,
				   pg_catalog.count(*) FILTER (WHERE l.qty_cancelled > 0 OR l.qty_shipped < l.qty) AS incomplete
			  FROM l GROUP BY 1, 2) g
	 WHERE b.tenant_id = g.tenant_id AND b.order_id = g.order_id;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_deleted() IS 'Internal: statement trigger on order_lines DELETE: takes the deleted lines out of the BI sales summary and their order''s row of oms.bi_order_sales';

CREATE FUNCTION oms._bi_order_changed() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.bi_sales_deltas
	SELECT l.tenant_id, v.day, v.channel_id, l.location_id, l.item_id, v.currency, v.country, v.seller, v.page,
		   v.sign * pg_catalog.count(*) FILTER (WHERE l.line_no = 1), v.sign * pg_catalog.count(*),
		   v.sign * pg_catalog.count(*) FILTER (WHERE EXISTS (SELECT FROM oms.order_history h
															   WHERE h.tenant_id = l.tenant_id AND h.order_id = l.order_id
																 AND h.line_no = l.line_no AND h.from_state IS NULL
																 AND h.to_state = 'backordered')),
		   v.sign * pg_catalog.sum(l.qty), v.sign * pg_catalog.sum(l.qty_cancelled), v.sign * pg_catalog.sum(l.qty_shipped),
		   v.sign * pg_catalog.sum(l.qty_returned), v.sign * pg_catalog.sum(l.qty * l.unit_price),
		   v.sign * pg_catalog.sum(l.qty_cancelled * l.unit_price), v.sign * pg_catalog.sum(l.qty_returned * l.unit_price)
	  FROM oms.order_lines l
	 CROSS JOIN (VALUES (-1, (OLD.placed_at AT TIME ZONE 'UTC')::date, OLD.channel_id, OLD.currency, OLD.ship_country,
						 OLD.attributes ->> 'seller', OLD.attributes ->> 'source_page'),
						(1, (NEW.placed_at AT TIME ZONE 'UTC')::date, NEW.channel_id, NEW.currency, NEW.ship_country,
						 NEW.attributes ->> 'seller', NEW.attributes ->> 'source_page'))
		   v(sign, day, channel_id, currency, country, seller, page)
	 WHERE l.tenant_id = NEW.tenant_id AND l.order_id = NEW.id
	 GROUP BY l.tenant_id, v.sign, v.day, v.channel_id, l.location_id, l.item_id, v.currency, v.country, v.seller, v.page;
	UPDATE oms.bi_order_sales b
	   SET day = (NEW.placed_at AT TIME ZONE 'UTC')::date, channel_id = NEW.channel_id, customer = NEW.customer_ref,
		   currency = NEW.currency
	 WHERE b.tenant_id = NEW.tenant_id AND b.order_id = NEW.id;
	UPDATE oms.bi_shipments f SET channel_id = NEW.channel_id WHERE f.tenant_id = NEW.tenant_id AND f.order_id = NEW.id;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_order_changed() IS 'Internal: row trigger on orders UPDATE of what the BI summaries are keyed by (day of placement, channel, currency, country, seller, page, customer): moves the order''s sales from the old keys to the new ones';
CREATE TRIGGER bi_order_changed AFTER UPDATE OF placed_at, channel_id, currency, ship_country, attributes, customer_ref ON oms.orders
	FOR EACH ROW
	WHEN (OLD.placed_at IS DISTINCT FROM NEW.placed_at OR OLD.channel_id IS DISTINCT FROM NEW.channel_id
		  OR OLD.currency IS DISTINCT FROM NEW.currency OR OLD.ship_country IS DISTINCT FROM NEW.ship_country
		  OR (OLD.attributes ->> 'seller') IS DISTINCT FROM (NEW.attributes ->> 'seller')
		  OR (OLD.attributes ->> 'source_page') IS DISTINCT FROM (NEW.attributes ->> 'source_page')
		  OR OLD.customer_ref IS DISTINCT FROM NEW.customer_ref)
	EXECUTE FUNCTION oms._bi_order_changed();
COMMENT ON TRIGGER bi_order_changed ON oms.orders IS 'Keeps the BI summaries: a changed address (country), seller, page, customer, channel, currency or day of placement moves the order''s sales';

CREATE FUNCTION oms._bi_refresh_shipments(p_tenant int, p_ids bigint[]) RETURNS void
	LANGUAGE sql
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	WITH gone AS (
		DELETE FROM oms.bi_shipments f
		 WHERE f.tenant_id = p_tenant AND (p_ids IS NULL OR f.shipment_id = ANY (p_ids))
		RETURNING f.order_id, f.on_time
	)
	UPDATE oms.bi_order_sales b SET late_shipments = b.late_shipments - g.late
	  FROM (SELECT gone.order_id, count(*) AS late FROM gone WHERE gone.on_time IS FALSE GROUP BY gone.order_id) g
	 WHERE b.tenant_id = p_tenant AND b.order_id = g.order_id;
	WITH added AS (
		INSERT INTO oms.bi_shipments
		SELECT s.tenant_id, s.id, s.order_id, (s.shipped_at AT TIME ZONE 'UTC')::date, o.channel_id, s.location_id,
			   min(l.promised_date),
			   (s.shipped_at AT TIME ZONE 'UTC')::date <= min(l.promised_date),
			   round((EXTRACT(epoch FROM s.shipped_at - o.placed_at) / 3600)::numeric, 1)::double precision,
			   round((EXTRACT(epoch FROM s.delivered_at - o.placed_at) / 3600)::numeric, 1)::double precision
		  FROM oms.shipments s
		  JOIN oms.orders o ON o.tenant_id = s.tenant_id AND o.id = s.order_id
		  LEFT JOIN oms.shipment_lines x ON x.tenant_id = s.tenant_id AND x.shipment_id = s.id
		  LEFT JOIN oms.order_lines l ON l.tenant_id = x.tenant_id AND l.order_id = x.order_id AND l.line_no = x.line_no
		 WHERE s.tenant_id = p_tenant AND (p_ids IS NULL OR s.id = ANY (p_ids)) AND s.shipped_at IS NOT NULL
		 GROUP BY s.tenant_id, s.id, o.channel_id, o.placed_at
		 ORDER BY 4, 2
		RETURNING order_id, on_time
	)
	UPDATE oms.bi_order_sales b SET late_shipments = b.late_shipments + g.late
	  FROM (SELECT added.order_id, count(*) AS late FROM added WHERE added.on_time IS FALSE GROUP BY added.order_id) g
	 WHERE b.tenant_id = p_tenant AND b.order_id = g.order_id;
END;
COMMENT ON FUNCTION oms._bi_refresh_shipments(int, bigint[]) IS 'Internal: recomputes the rows of oms.bi_shipments of the given shipments of a tenant (all when NULL) and their orders'' count of late shipments in oms.bi_order_sales';

CREATE FUNCTION oms._bi_shipment_changed() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	PERFORM oms._bi_refresh_shipments(NEW.tenant_id, ARRAY[NEW.id]);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_shipment_changed() IS 'Internal: row trigger on shipments: a shipment that left, was delivered or moved gets its row of oms.bi_shipments recomputed';
CREATE TRIGGER bi_shipment_changed AFTER INSERT OR UPDATE OF shipped_at, delivered_at, location_id, order_id ON oms.shipments
	FOR EACH ROW WHEN (NEW.shipped_at IS NOT NULL)
	EXECUTE FUNCTION oms._bi_shipment_changed();
COMMENT ON TRIGGER bi_shipment_changed ON oms.shipments IS 'Keeps the BI shipment summary (oms.bi_shipments): shipped, delivered';

CREATE FUNCTION oms._bi_return_added() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	UPDATE oms.bi_order_sales b SET returns = b.returns + 1 WHERE b.tenant_id = NEW.tenant_id AND b.order_id = NEW.order_id;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_return_added() IS 'Internal: row trigger on returns INSERT: counts the return on its order''s row of oms.bi_order_sales (perfect orders)';
CREATE TRIGGER bi_return_added AFTER INSERT ON oms.returns
	FOR EACH ROW EXECUTE FUNCTION oms._bi_return_added();
COMMENT ON TRIGGER bi_return_added ON oms.returns IS 'Keeps the BI order summary: an order with a return is not a perfect order';

CREATE OR REPLACE FUNCTION oms._bi_rollup_days(p_tenant int, p_days date[]) RETURNS void
	LANGUAGE sql
	SET search_path = oms, pg_catalog
BEGIN ATOMIC
	DELETE FROM oms.bi_sales_rollup r WHERE r.tenant_id = p_tenant AND (p_days IS NULL OR r.day = ANY (p_days));
	INSERT INTO oms.bi_sales_rollup
	SELECT h.tenant_id, h.day,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN 'channel'
				WHEN GROUPING(i.brand) = 0 THEN 'brand' WHEN GROUPING(i.category) = 0 THEN 'category'
				WHEN GROUPING(h.country) = 0 THEN 'country' WHEN GROUPING(h.seller) = 0 THEN 'seller' ELSE 'page' END,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN c.code
				WHEN GROUPING(i.brand) = 0 THEN i.brand WHEN GROUPING(i.category) = 0 THEN i.category
				WHEN GROUPING(h.country) = 0 THEN h.country WHEN GROUPING(h.seller) = 0 THEN h.seller ELSE h.page END,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN c.code WHEN GROUPING(i.brand) = 0 THEN i.brand
				WHEN GROUPING(i.category) = 0 THEN i.category WHEN GROUPING(h.country) = 0 THEN h.country
				WHEN GROUPING(h.seller) = 0 THEN h.seller ELSE h.page END,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN h.location_id END,
		   h.currency, sum(h.orders), sum(h.lines), sum(h.lines_backordered), sum(h.units), sum(h.units_cancelled),
		   sum(h.units_shipped), sum(h.units_returned), sum(h.gross - h.cancelled_value), sum(h.returned_value)
	  FROM oms.bi_sales_daily h
	  JOIN oms.items i ON i.tenant_id = h.tenant_id AND i.id = h.item_id
	  JOIN oms.channels c ON c.tenant_id = h.tenant_id AND c.id = h.channel_id
	 WHERE h.tenant_id = p_tenant AND (p_days IS NULL OR h.day = ANY (p_days))
	 GROUP BY h.tenant_id, h.day, h.currency,
		   GROUPING SETS ((c.code, h.location_id), (i.brand), (i.category), (h.country), (h.seller), (h.page))
	HAVING sum(h.lines) <> 0;
	DELETE FROM oms.bi_product_daily p WHERE p.tenant_id = p_tenant AND (p_days IS NULL OR p.day = ANY (p_days));
	INSERT INTO oms.bi_product_daily
	SELECT h.tenant_id, h.day, h.item_id, h.currency, sum(h.orders), sum(h.lines), sum(h.lines_backordered), sum(h.units),
		   sum(h.units_cancelled), sum(h.units_shipped), sum(h.units_returned), sum(h.gross - h.cancelled_value),
		   sum(h.returned_value)
	  FROM oms.bi_sales_daily h
	 WHERE h.tenant_id = p_tenant AND (p_days IS NULL OR h.day = ANY (p_days))
	 GROUP BY h.tenant_id, h.day, h.item_id, h.currency
	HAVING sum(h.lines) <> 0
	 ORDER BY h.day, h.item_id, h.currency;
END;
COMMENT ON FUNCTION oms._bi_rollup_days(int, date[]) IS 'Internal: recomputes a tenant''s oms.bi_sales_rollup and oms.bi_product_daily for the given days (all days when NULL) from oms.bi_sales_daily';

CREATE FUNCTION oms._bi_rebuild(p_tenant int) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_rows		bigint;
BEGIN
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('oms.bi_sales_daily'), p_tenant);
	DELETE FROM oms.bi_sales_daily h WHERE h.tenant_id = p_tenant;
	-- One snapshot: orders committed before are counted from their lines and their deltas deleted.
	-- Backorders at placement come from the lines' first state in order_history.
	WITH gone AS (
		DELETE FROM oms.bi_sales_deltas d WHERE d.tenant_id = p_tenant RETURNING 1
	)
	INSERT INTO oms.bi_sales_daily
	SELECT l.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, l.location_id, l.item_id, o.currency,
		   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
		   count(*) FILTER (WHERE l.line_no = 1), count(*),
		   count(*) FILTER (WHERE EXISTS (SELECT FROM oms.order_history h
										   WHERE h.tenant_id = l.tenant_id AND h.order_id = l.order_id
											 AND h.line_no = l.line_no AND h.from_state IS NULL
											 AND h.to_state = 'backordered')),
		   sum(l.qty), sum(l.qty_cancelled), sum(l.qty_shipped), sum(l.qty_returned),
		   sum(l.qty * l.unit_price), sum(l.qty_cancelled * l.unit_price), sum(l.qty_returned * l.unit_price)
	  FROM oms.orders o
	  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
	 WHERE o.tenant_id = p_tenant
	 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	PERFORM oms._bi_rollup_days(p_tenant, NULL);
	-- The order and shipment summaries (their rows are locked by whoever changes them: a
	-- concurrent change waits for this transaction, or this one for it).
	DELETE FROM oms.bi_shipments f WHERE f.tenant_id = p_tenant;
	DELETE FROM oms.bi_order_sales b WHERE b.tenant_id = p_tenant;
	INSERT INTO oms.bi_order_sales (tenant_id, order_id, day, channel_id, customer, currency, lines, units, revenue,
									units_returned, lines_incomplete, returns)
	SELECT o.tenant_id, o.id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, o.customer_ref, o.currency,
		   l.lines, l.units, l.revenue, l.units_returned, l.incomplete, coalesce(r.returns, 0)
	  FROM oms.orders o
	  JOIN (SELECT l.order_id, count(*) AS lines, sum(l.qty - l.qty_cancelled) AS units,
				   sum((l.qty - l.qty_cancelled) * l.unit_price) AS revenue, sum(l.qty_returned) AS units_returned,
				   count(*) FILTER (WHERE l.qty_cancelled > 0 OR l.qty_shipped < l.qty) AS incomplete
			  FROM oms.order_lines l WHERE l.tenant_id = p_tenant GROUP BY l.order_id) l ON l.order_id = o.id
	  LEFT JOIN (SELECT r.order_id, count(*) AS returns FROM oms.returns r WHERE r.tenant_id = p_tenant GROUP BY r.order_id) r
		ON r.order_id = o.id
	 WHERE o.tenant_id = p_tenant
	 ORDER BY 3, 2;
	PERFORM oms._bi_refresh_shipments(p_tenant, NULL);
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms._bi_rebuild(int) IS 'Internal: recomputes a tenant''s BI summaries (sales per day and dimension, per order, per shipment) from its orders, lines, history, shipments and returns; returns the number of rows of oms.bi_sales_daily written';

CREATE OR REPLACE FUNCTION oms.rebuild_bi_sales() RETURNS bigint
	LANGUAGE sql
	SET search_path = oms, pg_catalog
	RETURN oms._bi_rebuild(oms.current_tenant_id());
COMMENT ON FUNCTION oms.rebuild_bi_sales() IS 'Recomputes the current tenant''s BI summaries from its orders, lines, history (backorders at placement), shipments and returns; returns the number of rows of the daily sales summary written';

REVOKE ALL ON FUNCTION oms._bi_order_changed(), oms._bi_refresh_shipments(int, bigint[]), oms._bi_shipment_changed(),
	oms._bi_return_added(), oms._bi_rebuild(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms._bi_order_changed(), oms._bi_refresh_shipments(int, bigint[]), oms._bi_shipment_changed(),
	oms._bi_return_added(), oms._bi_rebuild(int) TO oms_admin;

CREATE OR REPLACE VIEW oms_bi.sales_by_dimension AS
SELECT x.day, x.dimension, x.key, x.label, lo.code AS location, x.currency::text AS currency,
	   x.orders, x.lines, x.lines_backordered, x.units, x.units_cancelled, x.units_shipped, x.units_returned,
	   x.revenue, x.returned_value, x.revenue * r.rate AS revenue_reporting, p.rc::text AS reporting_currency
  FROM (SELECT u.day, u.dimension, u.key, pg_catalog.max(u.label) AS label, u.location_id, u.currency,
			   pg_catalog.sum(u.orders)::bigint AS orders, pg_catalog.sum(u.lines)::bigint AS lines,
			   pg_catalog.sum(u.lines_backordered)::bigint AS lines_backordered, pg_catalog.sum(u.units)::bigint AS units,
			   pg_catalog.sum(u.units_cancelled)::bigint AS units_cancelled,
			   pg_catalog.sum(u.units_shipped)::bigint AS units_shipped,
			   pg_catalog.sum(u.units_returned)::bigint AS units_returned, pg_catalog.sum(u.revenue) AS revenue,
			   pg_catalog.sum(u.returned_value) AS returned_value
		  FROM (SELECT r.day, r.dimension, r.key, r.label, r.location_id, r.currency, r.orders, r.lines, r.lines_backordered,
					   r.units, r.units_cancelled, r.units_shipped, r.units_returned, r.revenue, r.returned_value
				  FROM oms.bi_sales_rollup r WHERE r.tenant_id = (SELECT oms.bi_tenant_id())
				UNION ALL
				SELECT p.day, 'product', i.sku, i.name, NULL::int, p.currency, p.orders, p.lines, p.lines_backordered,
					   p.units, p.units_cancelled, p.units_shipped, p.units_returned, p.revenue, p.returned_value
				  FROM oms.bi_product_daily p
				  JOIN oms.items i ON i.tenant_id = p.tenant_id AND i.id = p.item_id
				 WHERE p.tenant_id = (SELECT oms.bi_tenant_id())
				UNION ALL
				SELECT d.day, v.dimension,
					   CASE v.dimension WHEN 'channel' THEN c.code WHEN 'product' THEN i.sku WHEN 'brand' THEN i.brand
							WHEN 'category' THEN i.category WHEN 'country' THEN d.country WHEN 'seller' THEN d.seller ELSE d.page END,
					   CASE v.dimension WHEN 'channel' THEN c.code WHEN 'product' THEN i.name WHEN 'brand' THEN i.brand
							WHEN 'category' THEN i.category WHEN 'country' THEN d.country WHEN 'seller' THEN d.seller ELSE d.page END,
					   CASE WHEN v.dimension = 'channel' THEN d.location_id END, d.currency, d.orders, d.lines,
					   d.lines_backordered, d.units, d.units_cancelled, d.units_shipped, d.units_returned,
					   d.gross - d.cancelled_value, d.returned_value
				  FROM oms.bi_sales_deltas d
				  JOIN oms.items i ON i.tenant_id = d.tenant_id AND i.id = d.item_id
				  JOIN oms.channels c ON c.tenant_id = d.tenant_id AND c.id = d.channel_id
				 CROSS JOIN (VALUES ('channel'), ('product'), ('brand'), ('category'), ('country'), ('seller'), ('page')) v(dimension)
				 WHERE d.tenant_id = (SELECT oms.bi_tenant_id())) u
		 GROUP BY u.day, u.dimension, u.key, u.location_id, u.currency
		HAVING pg_catalog.sum(u.lines) <> 0) x
  LEFT JOIN oms.locations lo ON lo.tenant_id = (SELECT oms.bi_tenant_id()) AND lo.id = x.location_id
 CROSS JOIN (SELECT oms.reporting_currency() AS rc OFFSET 0) p
  LEFT JOIN oms.exchange_rates xr ON xr.rate_date = x.day AND xr.from_currency = x.currency AND xr.to_currency = p.rc
 CROSS JOIN LATERAL (SELECT CASE WHEN x.currency = p.rc THEN 1::numeric ELSE xr.rate END AS rate) r;
COMMENT ON VIEW oms_bi.sales_by_dimension IS 'Sales per UTC day and value of a report dimension (channel with location, product, brand, category, country, seller, page) and currency of the current tenant: the fast base of kpis_daily and top(); filter on dimension and day';
COMMENT ON COLUMN oms_bi.sales_by_dimension.day IS 'UTC day the orders were placed';
COMMENT ON COLUMN oms_bi.sales_by_dimension.dimension IS 'channel, product, brand, category, country, seller or page';
COMMENT ON COLUMN oms_bi.sales_by_dimension.key IS 'Channel code, SKU, brand, category, country, seller or page; NULL: none';
COMMENT ON COLUMN oms_bi.sales_by_dimension.label IS 'Item name for products, else the key';
COMMENT ON COLUMN oms_bi.sales_by_dimension.location IS 'Location of the lines (dimension channel only; NULL: backorders not assigned)';
COMMENT ON COLUMN oms_bi.sales_by_dimension.currency IS 'Currency of the orders';
COMMENT ON COLUMN oms_bi.sales_by_dimension.orders IS 'Orders (each counted once, with its line 1); meaningful for channel, country, seller, page';
COMMENT ON COLUMN oms_bi.sales_by_dimension.lines IS 'Order lines';
COMMENT ON COLUMN oms_bi.sales_by_dimension.lines_backordered IS 'Lines backordered when placed';
COMMENT ON COLUMN oms_bi.sales_by_dimension.units IS 'Units ordered';
COMMENT ON COLUMN oms_bi.sales_by_dimension.units_cancelled IS 'Units cancelled';
COMMENT ON COLUMN oms_bi.sales_by_dimension.units_shipped IS 'Units shipped';
COMMENT ON COLUMN oms_bi.sales_by_dimension.units_returned IS 'Units returned';
COMMENT ON COLUMN oms_bi.sales_by_dimension.revenue IS 'Value of the units not cancelled, order currency';
COMMENT ON COLUMN oms_bi.sales_by_dimension.returned_value IS 'Value of the units returned, order currency';
COMMENT ON COLUMN oms_bi.sales_by_dimension.revenue_reporting IS 'Revenue in the reporting currency; NULL when the rate of the day is missing';
COMMENT ON COLUMN oms_bi.sales_by_dimension.reporting_currency IS 'The reporting currency';

CREATE VIEW oms_bi.order_sales AS
SELECT b.order_id, b.day, c.code AS channel, b.customer, b.currency::text AS currency, b.lines, b.units, b.revenue,
	   b.revenue * r.rate AS revenue_reporting, p.rc::text AS reporting_currency, b.units_returned,
	   b.lines_incomplete = 0 AS complete, b.late_shipments = 0 AS on_time, b.units_returned > 0 OR b.returns > 0 AS returned,
	   b.lines_incomplete = 0 AND b.late_shipments = 0 AND b.units_returned = 0 AND b.returns = 0 AS perfect
  FROM oms.bi_order_sales b
  LEFT JOIN oms.channels c ON c.tenant_id = b.tenant_id AND c.id = b.channel_id
 CROSS JOIN (SELECT oms.reporting_currency() AS rc OFFSET 0) p
  LEFT JOIN oms.exchange_rates xr ON xr.rate_date = b.day AND xr.from_currency = b.currency AND xr.to_currency = p.rc
 CROSS JOIN LATERAL (SELECT CASE WHEN b.currency = p.rc THEN 1::numeric ELSE xr.rate END AS rate) r
 WHERE b.tenant_id = (SELECT oms.bi_tenant_id()) AND b.lines <> 0;
COMMENT ON VIEW oms_bi.order_sales IS 'Sales per order of the current tenant, from the order summary kept by triggers (exact as of the last commit): day, channel, customer, units and revenue not cancelled, returns, and whether it is a perfect order; the base of top() for customers and orders and of perfect_orders_daily; filter on day';
COMMENT ON COLUMN oms_bi.order_sales.order_id IS 'Order id';
COMMENT ON COLUMN oms_bi.order_sales.day IS 'UTC day the order was placed';
COMMENT ON COLUMN oms_bi.order_sales.channel IS 'Code of the channel';
COMMENT ON COLUMN oms_bi.order_sales.customer IS 'Customer reference of the order';
COMMENT ON COLUMN oms_bi.order_sales.currency IS 'Currency of the order';
COMMENT ON COLUMN oms_bi.order_sales.lines IS 'Order lines';
COMMENT ON COLUMN oms_bi.order_sales.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.order_sales.revenue IS 'Units not cancelled times their price, order currency (shipping and returns not deducted)';
COMMENT ON COLUMN oms_bi.order_sales.revenue_reporting IS 'Revenue in the reporting currency at the rate of the order''s day; NULL when the rate is missing';
COMMENT ON COLUMN oms_bi.order_sales.reporting_currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.order_sales.units_returned IS 'Units returned (received back)';
COMMENT ON COLUMN oms_bi.order_sales.complete IS 'Every line shipped in full, nothing cancelled';
COMMENT ON COLUMN oms_bi.order_sales.on_time IS 'No shipment of the order left after its promised date';
COMMENT ON COLUMN oms_bi.order_sales.returned IS 'A return was authorised or a unit returned';
COMMENT ON COLUMN oms_bi.order_sales.perfect IS 'Complete, on time and not returned (a perfect order)';

CREATE OR REPLACE VIEW oms_bi.kpis_daily AS
SELECT k.day, k.channel, k.location, k.orders, k.revenue, k.reporting_currency,
	   pg_catalog.round(k.revenue / nullif(k.orders, 0), 2) AS average_order_value,
	   k.units, pg_catalog.round(k.units::numeric / nullif(k.orders, 0), 2) AS units_per_order,
	   k.lines, k.lines_backordered,
	   pg_catalog.round(1 - k.day_backordered::numeric / nullif(k.day_lines, 0), 4) AS fill_rate,
	   pg_catalog.round(k.day_backordered::numeric / nullif(k.day_lines, 0), 4) AS backorder_rate,
	   k.units_cancelled, pg_catalog.round(k.units_cancelled::numeric / nullif(k.units, 0), 4) AS cancellation_rate,
	   k.units_shipped, k.units_returned,
	   pg_catalog.round(k.units_returned::numeric / nullif(k.units_shipped, 0), 4) AS return_rate,
	   k.shipments, k.shipments_on_time,
	   pg_catalog.round(k.shipments_on_time::numeric / nullif(k.shipments_promised, 0), 4) AS on_time_ship_rate,
	   k.ship_hours_median, k.ship_hours_p90, k.deliver_hours_median, k.deliver_hours_p90
  FROM (SELECT g.*, pg_catalog.sum(g.lines) OVER w AS day_lines, pg_catalog.sum(g.lines_backordered) OVER w AS day_backordered
		  FROM (SELECT b.day, b.channel, b.location,
					   pg_catalog.sum(b.orders)::bigint AS orders,
					   CASE WHEN pg_catalog.bool_and(b.revenue_ok) THEN pg_catalog.sum(b.revenue) END AS revenue,
					   oms.reporting_currency()::text AS reporting_currency,
					   pg_catalog.sum(b.units)::bigint AS units, pg_catalog.sum(b.lines)::bigint AS lines,
					   pg_catalog.sum(b.lines_backordered)::bigint AS lines_backordered,
					   pg_catalog.sum(b.units_cancelled)::bigint AS units_cancelled,
					   pg_catalog.sum(b.units_shipped)::bigint AS units_shipped,
					   pg_catalog.sum(b.units_returned)::bigint AS units_returned,
					   pg_catalog.sum(b.shipments)::bigint AS shipments,
					   pg_catalog.sum(b.shipments_on_time)::bigint AS shipments_on_time,
					   pg_catalog.sum(b.shipments_promised)::bigint AS shipments_promised,
					   pg_catalog.max(b.ship_hours_median) AS ship_hours_median, pg_catalog.max(b.ship_hours_p90) AS ship_hours_p90,
					   pg_catalog.max(b.deliver_hours_median) AS deliver_hours_median,
					   pg_catalog.max(b.deliver_hours_p90) AS deliver_hours_p90
				  FROM (SELECT s.day, s.key AS channel, s.location, s.orders, s.revenue_reporting AS revenue,
							   s.revenue_reporting IS NOT NULL AS revenue_ok, s.units, s.lines, s.lines_backordered,
							   s.units_cancelled, s.units_shipped, s.units_returned,
							   NULL::bigint AS shipments, NULL::bigint AS shipments_on_time, NULL::bigint AS shipments_promised,
							   NULL::numeric AS ship_hours_median, NULL::numeric AS ship_hours_p90,
							   NULL::numeric AS deliver_hours_median, NULL::numeric AS deliver_hours_p90
						  FROM oms_bi.sales_by_dimension s
						 WHERE s.dimension = 'channel'
						UNION ALL
						SELECT h.day, c.code, lo.code, NULL, NULL, true, NULL, NULL, NULL, NULL, NULL, NULL,
							   h.shipments, h.shipments_on_time, h.shipments_promised,
							   pg_catalog.round(h.ship_hours[1]::numeric, 1), pg_catalog.round(h.ship_hours[2]::numeric, 1),
							   pg_catalog.round(h.deliver_hours[1]::numeric, 1), pg_catalog.round(h.deliver_hours[2]::numeric, 1)
						  FROM (SELECT f.day, f.channel_id, f.location_id, pg_catalog.count(*) AS shipments,
									   pg_catalog.count(*) FILTER (WHERE f.on_time) AS shipments_on_time,
									   pg_catalog.count(f.on_time) AS shipments_promised,
									   pg_catalog.percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY f.hours_to_ship) AS ship_hours,
									   pg_catalog.percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY f.hours_to_deliver) AS deliver_hours
								  FROM oms.bi_shipments f
								 WHERE f.tenant_id = (SELECT oms.bi_tenant_id())
								 GROUP BY f.day, f.channel_id, f.location_id) h
						  JOIN oms.channels c ON c.tenant_id = (SELECT oms.bi_tenant_id()) AND c.id = h.channel_id
						  JOIN oms.locations lo ON lo.tenant_id = (SELECT oms.bi_tenant_id()) AND lo.id = h.location_id) b
				 GROUP BY b.day, b.channel, b.location) g
		WINDOW w AS (PARTITION BY g.day, g.channel)) k;
COMMENT ON VIEW oms_bi.kpis_daily IS 'KPIs per UTC day, channel and location of the current tenant: sales counters from the daily summary by day of placement, shipment counters from the shipment summary (oms.bi_shipments) by day of shipment (README: definitions)';
COMMENT ON COLUMN oms_bi.kpis_daily.day IS 'UTC day (placement for sales, shipment for the shipment KPIs)';
COMMENT ON COLUMN oms_bi.kpis_daily.channel IS 'Code of the channel';
COMMENT ON COLUMN oms_bi.kpis_daily.location IS 'Code of the location; NULL: lines not assigned (backorders)';
COMMENT ON COLUMN oms_bi.kpis_daily.orders IS 'Orders placed (each counted at the location of its line 1)';
COMMENT ON COLUMN oms_bi.kpis_daily.revenue IS 'Revenue (units not cancelled at their price) in the reporting currency; NULL when a rate of the day is missing';
COMMENT ON COLUMN oms_bi.kpis_daily.reporting_currency IS 'The reporting currency';
COMMENT ON COLUMN oms_bi.kpis_daily.average_order_value IS 'revenue / orders';
COMMENT ON COLUMN oms_bi.kpis_daily.units IS 'Units ordered';
COMMENT ON COLUMN oms_bi.kpis_daily.units_per_order IS 'units / orders';
COMMENT ON COLUMN oms_bi.kpis_daily.lines IS 'Order lines';
COMMENT ON COLUMN oms_bi.kpis_daily.lines_backordered IS 'Lines backordered when placed';
COMMENT ON COLUMN oms_bi.kpis_daily.fill_rate IS 'Share of the day''s and channel''s lines served in full from stock at placement (the same on every location row of the day and channel)';
COMMENT ON COLUMN oms_bi.kpis_daily.backorder_rate IS 'Share of the day''s and channel''s lines backordered at placement (1 - fill_rate)';
COMMENT ON COLUMN oms_bi.kpis_daily.units_cancelled IS 'Units cancelled';
COMMENT ON COLUMN oms_bi.kpis_daily.cancellation_rate IS 'units_cancelled / units';
COMMENT ON COLUMN oms_bi.kpis_daily.units_shipped IS 'Units shipped (of the orders placed that day)';
COMMENT ON COLUMN oms_bi.kpis_daily.units_returned IS 'Units returned (of the orders placed that day)';
COMMENT ON COLUMN oms_bi.kpis_daily.return_rate IS 'units_returned / units_shipped';
COMMENT ON COLUMN oms_bi.kpis_daily.shipments IS 'Shipments that left that day from the location';
COMMENT ON COLUMN oms_bi.kpis_daily.shipments_on_time IS 'Those shipped on or before their promised date';
COMMENT ON COLUMN oms_bi.kpis_daily.on_time_ship_rate IS 'shipments_on_time / shipments with a promised date';
COMMENT ON COLUMN oms_bi.kpis_daily.ship_hours_median IS 'Median hours from placement to shipment of those shipments';
COMMENT ON COLUMN oms_bi.kpis_daily.ship_hours_p90 IS '90th percentile of hours from placement to shipment';
COMMENT ON COLUMN oms_bi.kpis_daily.deliver_hours_median IS 'Median hours from placement to delivery of those shipments (delivered ones)';
COMMENT ON COLUMN oms_bi.kpis_daily.deliver_hours_p90 IS '90th percentile of hours from placement to delivery';

CREATE OR REPLACE VIEW oms_bi.perfect_orders_daily AS
SELECT o.day, o.channel, pg_catalog.count(*) AS orders, pg_catalog.count(*) FILTER (WHERE o.perfect) AS perfect_orders,
	   pg_catalog.round((pg_catalog.count(*) FILTER (WHERE o.perfect))::numeric / pg_catalog.count(*), 4) AS perfect_order_rate
  FROM oms_bi.order_sales o
 GROUP BY o.day, o.channel;
COMMENT ON VIEW oms_bi.perfect_orders_daily IS 'Perfect-order rate per UTC day of placement and channel: orders shipped complete (nothing cancelled), every shipment on time, nothing returned; from the order summary (oms_bi.order_sales)';
COMMENT ON COLUMN oms_bi.perfect_orders_daily.day IS 'UTC day of placement';
COMMENT ON COLUMN oms_bi.perfect_orders_daily.channel IS 'Code of the channel';
COMMENT ON COLUMN oms_bi.perfect_orders_daily.orders IS 'Orders placed';
COMMENT ON COLUMN oms_bi.perfect_orders_daily.perfect_orders IS 'Orders complete, on time and not returned';
COMMENT ON COLUMN oms_bi.perfect_orders_daily.perfect_order_rate IS 'perfect_orders / orders';

CREATE INDEX bi_stock_movements_shipped_idx ON oms.stock_movements (tenant_id, moved_at) WHERE kind = 'shipment';
CREATE OR REPLACE VIEW oms_bi.inventory_kpis AS
SELECT s.sku, s.item_name, s.brand, s.category, s.location, s.on_hand, s.available, s.safety_stock,
	   s.unit_cost, s.stock_value, q.units_shipped_30d,
	   pg_catalog.round(q.units_shipped_30d * 365.0 / 30 / nullif(s.on_hand, 0), 2) AS turnover,
	   pg_catalog.round(s.on_hand / nullif(q.units_shipped_30d / 30.0, 0), 1) AS days_of_cover
  FROM oms_bi.stock_snapshot s
  -- The 30 days' shipments summed once per SKU and location (not looked up per stock row).
  LEFT JOIN (SELECT i.sku, lo.code AS location, -pg_catalog.sum(x.delta) AS units
			   FROM oms.stock_movements x
			   JOIN oms.items i ON i.tenant_id = x.tenant_id AND i.id = x.item_id
			   JOIN oms.locations lo ON lo.tenant_id = x.tenant_id AND lo.id = x.location_id
			  WHERE x.tenant_id = (SELECT oms.bi_tenant_id()) AND x.kind = 'shipment'
				AND x.moved_at >= ((oms.bi_today() - 29)::timestamp AT TIME ZONE 'UTC')
				AND x.moved_at < ((oms.bi_today() + 1)::timestamp AT TIME ZONE 'UTC')
			  GROUP BY i.sku, lo.code) m ON m.sku = s.sku AND m.location = s.location
 CROSS JOIN LATERAL (SELECT coalesce(m.units, 0)::bigint AS units_shipped_30d) q;
COMMENT ON VIEW oms_bi.inventory_kpis IS 'Inventory KPIs per SKU and location: stock value at cost, units shipped in the 30 days to today, annualised turnover (units shipped per year / on hand) and days of cover (on hand / units shipped per day)';
COMMENT ON COLUMN oms_bi.inventory_kpis.sku IS 'SKU';
COMMENT ON COLUMN oms_bi.inventory_kpis.item_name IS 'Name of the item';
COMMENT ON COLUMN oms_bi.inventory_kpis.brand IS 'Brand of the item';
COMMENT ON COLUMN oms_bi.inventory_kpis.category IS 'Category of the item';
COMMENT ON COLUMN oms_bi.inventory_kpis.location IS 'Code of the location';
COMMENT ON COLUMN oms_bi.inventory_kpis.on_hand IS 'Units on hand';
COMMENT ON COLUMN oms_bi.inventory_kpis.available IS 'Units available to promise (on_hand - reserved - safety_stock, at least 0)';
COMMENT ON COLUMN oms_bi.inventory_kpis.safety_stock IS 'Safety stock';
COMMENT ON COLUMN oms_bi.inventory_kpis.unit_cost IS 'Cost of one unit';
COMMENT ON COLUMN oms_bi.inventory_kpis.stock_value IS 'on_hand times unit_cost';
COMMENT ON COLUMN oms_bi.inventory_kpis.units_shipped_30d IS 'Units shipped from there in the 30 days up to today (oms.today or the current date)';
COMMENT ON COLUMN oms_bi.inventory_kpis.turnover IS 'Annualised inventory turnover: units_shipped_30d * 365 / 30 / on_hand; NULL when nothing on hand';
COMMENT ON COLUMN oms_bi.inventory_kpis.days_of_cover IS 'Days the stock lasts at the last 30 days'' rate: on_hand / (units_shipped_30d / 30); NULL when nothing shipped';

-- The product ranking's sums, per SKU, for oms_bi.top: with the rights of oms (a BI login has no
-- access to schema oms), for the caller's tenant only. Products have a row per SKU and day: this
-- reads oms.bi_product_daily and the deltas not yet compacted once, summed per item, and looks
-- the SKU and name up for the sums only.
CREATE FUNCTION oms._bi_product_sales(p_from date, p_to date)
	RETURNS TABLE (key text, label text, orders bigint, units bigint, revenue numeric, returns bigint, last_order date)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = oms, pg_catalog
	SET work_mem = '64MB'
	SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_rc		char(3) := oms.reporting_currency();
BEGIN
	RETURN QUERY
	SELECT i.sku, i.name, g.lines, g.units, g.revenue, g.returns, g.last_order
	  FROM (SELECT u.item_id, sum(u.lines)::bigint AS lines, sum(u.units)::bigint AS units,
				   CASE WHEN count(*) FILTER (WHERE u.currency <> v_rc AND u.rate IS NULL) = 0
						THEN sum(CASE WHEN u.currency = v_rc THEN u.revenue ELSE u.revenue * u.rate END) END AS revenue,
				   sum(u.units_returned)::bigint AS returns, max(u.day) AS last_order
			  FROM (SELECT p.item_id, p.day, p.currency, p.lines::int AS lines, (p.units - p.units_cancelled)::int AS units,
						   p.revenue, p.units_returned::int AS units_returned, x.rate
					  FROM oms.bi_product_daily p
					  LEFT JOIN oms.exchange_rates x ON x.rate_date = p.day AND x.from_currency = p.currency AND x.to_currency = v_rc
					 WHERE p.tenant_id = v_tenant AND p.day BETWEEN p_from AND p_to
					UNION ALL
					SELECT d.item_id, d.day, d.currency, d.lines::int, (d.units - d.units_cancelled)::int, d.gross - d.cancelled_value,
						   d.units_returned::int, x.rate
					  FROM oms.bi_sales_deltas d
					  LEFT JOIN oms.exchange_rates x ON x.rate_date = d.day AND x.from_currency = d.currency AND x.to_currency = v_rc
					 WHERE d.tenant_id = v_tenant AND d.day BETWEEN p_from AND p_to) u
			 GROUP BY u.item_id
			HAVING sum(u.lines) <> 0) g
	  JOIN oms.items i ON i.tenant_id = v_tenant AND i.id = g.item_id;
END
$$;
COMMENT ON FUNCTION oms._bi_product_sales(date, date) IS 'Internal: sales per SKU of the current tenant over the UTC days p_from..p_to (lines, units not cancelled, revenue in the reporting currency, NULL when a rate is missing, units returned, last day), for oms_bi.top(''product'', ...)';
REVOKE ALL ON FUNCTION oms._bi_product_sales(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms._bi_product_sales(date, date) TO oms_reader, oms_admin;
CREATE FUNCTION oms_bi.product_sales(from_day date, to_day date)
	RETURNS TABLE (sku text, item_name text, lines bigint, units bigint, revenue numeric, returns bigint, last_order date)
	LANGUAGE sql STABLE
	SET search_path = oms_bi, pg_catalog
BEGIN ATOMIC
	SELECT * FROM oms._bi_product_sales(from_day, to_day);
END;
COMMENT ON FUNCTION oms_bi.product_sales(date, date) IS 'Sales per SKU over the UTC days from_day..to_day: order lines, units not cancelled, revenue in the reporting currency (NULL when a rate is missing), units returned, last day with an order (the base of top(''product'', ...))';
REVOKE ALL ON FUNCTION oms_bi.product_sales(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms_bi.product_sales(date, date) TO oms_reader, oms_admin;

-- The ranking of customers or orders for oms_bi.top, with the rights of oms, for the caller's
-- tenant only: one pass over the period's rows of oms.bi_order_sales (an order is its own group);
-- money in the reporting currency, multiplied by a rate only for the other currencies; the n first
-- taken by a bounded sort before they are numbered. Customers are grouped by sorting (most have
-- one order in a period: a hash table of ~70k numeric sums is slower than a sort of their rows).
CREATE FUNCTION oms_bi.order_ranking(dimension text, from_day date, to_day date, n int, metric text)
	RETURNS TABLE (rank bigint, key text, orders bigint, units bigint, revenue numeric, returns bigint, last_order date)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = oms_bi, pg_catalog
	SET work_mem = '64MB'
	SET enable_hashagg = off
	SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
	v_tenant	int := oms.bi_tenant_id();
	v_rc		char(3) := oms.reporting_currency();
BEGIN
	RETURN QUERY
	SELECT pg_catalog.row_number() OVER (ORDER BY t.sort_key DESC NULLS LAST, t.key),
		   t.key, t.orders, t.units, t.revenue, t.returns, t.last_order
	  FROM (SELECT g.*, CASE metric WHEN 'revenue' THEN g.revenue WHEN 'units' THEN g.units
									WHEN 'orders' THEN g.orders ELSE g.returns END AS sort_key
			  FROM (SELECT b.customer AS key, pg_catalog.count(*) AS orders, pg_catalog.sum(b.units)::bigint AS units,
						   CASE WHEN pg_catalog.count(*) FILTER (WHERE b.currency <> v_rc AND x.rate IS NULL) = 0
								THEN pg_catalog.sum(CASE WHEN b.currency = v_rc THEN b.revenue ELSE b.revenue * x.rate END) END AS revenue,
						   pg_catalog.sum(b.units_returned)::bigint AS returns, pg_catalog.max(b.day) AS last_order
					  FROM oms.bi_order_sales b
					  LEFT JOIN oms.exchange_rates x ON x.rate_date = b.day AND x.from_currency = b.currency AND x.to_currency = v_rc
					 WHERE order_ranking.dimension = 'customer' AND b.tenant_id = v_tenant
					   AND b.day BETWEEN from_day AND to_day AND b.lines <> 0
					 GROUP BY b.customer
					UNION ALL
					SELECT b.order_id::text, 1::bigint, b.units::bigint,
						   CASE WHEN b.currency = v_rc THEN b.revenue ELSE b.revenue * x.rate END, b.units_returned::bigint, b.day
					  FROM oms.bi_order_sales b
					  LEFT JOIN oms.exchange_rates x ON x.rate_date = b.day AND x.from_currency = b.currency AND x.to_currency = v_rc
					 WHERE order_ranking.dimension = 'order' AND b.tenant_id = v_tenant
					   AND b.day BETWEEN from_day AND to_day AND b.lines <> 0) g
			 ORDER BY sort_key DESC NULLS LAST, g.key
			 LIMIT n) t
	 ORDER BY 1;
END
$$;
COMMENT ON FUNCTION oms_bi.order_ranking(text, date, date, int, text) IS 'The ranking behind top(''customer'' | ''order'', ...), without labels: rank, key (customer reference or order id), orders, units not cancelled, revenue in the reporting currency (NULL when a rate is missing), units returned, last day with an order';
REVOKE ALL ON FUNCTION oms_bi.order_ranking(text, date, date, int, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms_bi.order_ranking(text, date, date, int, text) TO oms_reader, oms_admin;

CREATE OR REPLACE FUNCTION oms_bi.top(dimension text, from_day date, to_day date, n int DEFAULT 10, metric text DEFAULT 'revenue')
	RETURNS TABLE (rank bigint, key text, label text, orders bigint, units bigint, revenue numeric, currency text,
				   returns bigint, last_order date)
	LANGUAGE plpgsql STABLE
	SET search_path = oms_bi, pg_catalog
	SET work_mem = '64MB'
AS $$
#variable_conflict use_column
BEGIN
	IF top.dimension IS NULL OR top.dimension NOT IN ('product', 'customer', 'order', 'country', 'brand', 'category', 'seller',
											 'channel', 'day', 'weekday', 'page') THEN
		RAISE EXCEPTION 'invalid dimension "%"', CASE WHEN length(top.dimension) > 100 THEN left(top.dimension, 100) || '...' ELSE top.dimension END
			USING ERRCODE = '22023',
				  HINT = 'Use product, customer, order, country, brand, category, seller, channel, day, weekday or page.';
	END IF;
	IF metric IS NULL OR metric NOT IN ('revenue', 'units', 'orders', 'returns') THEN
		RAISE EXCEPTION 'invalid metric "%"', CASE WHEN length(metric) > 100 THEN left(metric, 100) || '...' ELSE metric END
			USING ERRCODE = '22023', HINT = 'Use revenue, units, orders or returns.';
	END IF;
	IF from_day IS NULL OR to_day IS NULL OR n IS NULL OR n < 1 THEN
		RAISE EXCEPTION 'invalid period or count: from % to %, n %', from_day, to_day, n
			USING ERRCODE = '22023', HINT = 'Give both days and n >= 1.';
	END IF;
	IF top.dimension IN ('customer', 'order') THEN
		RETURN QUERY
		-- Ranked from the order summary; the labels (external id, customer name masked for
		-- oms_reader) are looked up for the n winners only.
		SELECT t.rank, t.key,
			   CASE WHEN t.key IS NULL THEN '(none)'
					WHEN top.dimension = 'order' THEN (SELECT o.external_id FROM oms_bi.orders o WHERE o.order_id = t.key::bigint)
					ELSE (SELECT pg_catalog.max(o.customer_name) FROM oms_bi.orders o
						   WHERE o.customer = t.key AND o.placed_at >= (from_day::timestamp AT TIME ZONE 'UTC')
							 AND o.placed_at < ((to_day + 1)::timestamp AT TIME ZONE 'UTC')) END,
			   t.orders, t.units, t.revenue, oms_bi.reporting_currency()::text, t.returns, t.last_order
		  FROM oms_bi.order_ranking(top.dimension, from_day, to_day, n, metric) t
		 ORDER BY t.rank;
	ELSIF top.dimension = 'product' THEN
		RETURN QUERY
		SELECT pg_catalog.row_number() OVER (ORDER BY t.sort_key DESC NULLS LAST, t.key),
			   t.key, t.label, t.orders, t.units, t.revenue, oms_bi.reporting_currency()::text, t.returns, t.last_order
		  FROM (SELECT g.*, CASE metric WHEN 'revenue' THEN g.revenue WHEN 'units' THEN g.units
										WHEN 'orders' THEN g.orders ELSE g.returns END AS sort_key
				  FROM oms_bi.product_sales(from_day, to_day) g(key, label, orders, units, revenue, returns, last_order)
				 ORDER BY sort_key DESC NULLS LAST, g.key
				 LIMIT n) t
		 ORDER BY 1;
	ELSE
		RETURN QUERY
		SELECT pg_catalog.row_number() OVER (ORDER BY CASE metric WHEN 'revenue' THEN g.revenue WHEN 'units' THEN g.units
																  WHEN 'orders' THEN g.orders ELSE g.returns END DESC NULLS LAST,
												  g.key),
			   g.key, coalesce(g.label, '(none)'), g.orders, g.units, g.revenue, oms_bi.reporting_currency()::text, g.returns,
			   g.last_order
		  FROM (SELECT CASE top.dimension WHEN 'day' THEN pg_catalog.to_char(s.day, 'YYYY-MM-DD')
									  WHEN 'weekday' THEN EXTRACT(isodow FROM s.day)::text ELSE s.key END AS key,
					   pg_catalog.max(CASE top.dimension WHEN 'day' THEN pg_catalog.to_char(s.day, 'YYYY-MM-DD Dy')
									  WHEN 'weekday' THEN pg_catalog.to_char(s.day, 'FMDay') ELSE s.label END) AS label,
					   CASE WHEN top.dimension IN ('product', 'brand', 'category') THEN pg_catalog.sum(s.lines)
							ELSE pg_catalog.sum(s.orders) END::bigint AS orders,
					   pg_catalog.sum(s.units - s.units_cancelled)::bigint AS units,
					   CASE WHEN pg_catalog.bool_and(s.revenue_reporting IS NOT NULL) THEN pg_catalog.sum(s.revenue_reporting) END AS revenue,
					   pg_catalog.sum(s.units_returned)::bigint AS returns, pg_catalog.max(s.day) AS last_order
				  FROM oms_bi.sales_by_dimension s
				 WHERE s.dimension = CASE WHEN top.dimension IN ('day', 'weekday') THEN 'channel' ELSE top.dimension END
				   AND s.day BETWEEN from_day AND to_day
				 GROUP BY 1) g
		 ORDER BY 1
		 LIMIT n;
	END IF;
END
$$;
COMMENT ON FUNCTION oms_bi.top(text, date, date, int, text) IS 'The top-N report of a dimension (product, customer, order, country, brand, category, seller, channel, day, weekday, page) over the UTC days from_day..to_day, ranked by revenue, units, orders or returns; revenue in the reporting currency (NULL when a rate is missing); orders are order lines for product, brand and category';

REVOKE ALL ON oms_bi.order_sales FROM PUBLIC;
GRANT SELECT ON oms_bi.order_sales TO oms_reader, oms_admin;

SELECT pg_catalog.count(oms._bi_rebuild(t.id)) AS bi_summaries_rebuilt FROM oms.tenants t;

-- ===== Planning at a million SKU-locations (session 4): per SKU-location demand statistics kept
-- by compaction (oms.demand_stats, oms.refresh_demand_stats), the levels computed in C
-- (oms._replenishment_candidates over oms._replenishment_base), the replenishment job and
-- oms.run_replenishment() move the statistics to today's windows before they plan, and
-- oms.job_batch_pause spaces a job's batches.
CREATE TABLE oms.demand_stats (
	tenant_id		int NOT NULL,
	item_id			int NOT NULL,
	location_id		int NOT NULL,
	window_end		date,
	window_days		int NOT NULL CHECK (window_days > 0),
	total			bigint NOT NULL,
	sumsq			bigint NOT NULL,
	PRIMARY KEY (tenant_id, item_id, location_id)
) WITH (fillfactor = 50);
COMMENT ON TABLE oms.demand_stats IS 'Per SKU and location, the sum (total) and sum of squares (sumsq) of the daily demand (ordered - cancelled, all channels) over the days [window_end - window_days, window_end) of oms.demand_history (window_end NULL: stale, to be recomputed); kept by compaction and oms.refresh_demand_stats() for planning';

CREATE INDEX demand_history_day_idx ON oms.demand_history (tenant_id, day);

CREATE FUNCTION oms._demand_history_written() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF pg_catalog.current_setting('oms._stats_kept', true) = 'on' THEN
		RETURN NULL;
	END IF;
	IF TG_OP IN ('INSERT', 'UPDATE') THEN
		INSERT INTO oms.demand_stats AS st (tenant_id, item_id, location_id, window_end, window_days, total, sumsq)
		SELECT DISTINCT n.tenant_id, n.item_id, n.location_id, NULL::date, 1, 0, 0
		  FROM new_rows n WHERE n.location_id IS NOT NULL
		ON CONFLICT (tenant_id, item_id, location_id) DO UPDATE SET window_end = NULL;
	END IF;
	IF TG_OP IN ('UPDATE', 'DELETE') THEN
		UPDATE oms.demand_stats st SET window_end = NULL
		  FROM (SELECT DISTINCT o.tenant_id, o.item_id, o.location_id FROM old_rows o WHERE o.location_id IS NOT NULL) o
		 WHERE st.tenant_id = o.tenant_id AND st.item_id = o.item_id AND st.location_id = o.location_id;
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._demand_history_written() IS 'Internal: statement trigger on oms.demand_history: a write by anything but compaction or rebuild marks the statistics of the SKU-locations it touches stale (oms.demand_stats.window_end NULL)';
CREATE TRIGGER demand_history_inserted AFTER INSERT ON oms.demand_history
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION oms._demand_history_written();
CREATE TRIGGER demand_history_updated AFTER UPDATE ON oms.demand_history
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION oms._demand_history_written();
CREATE TRIGGER demand_history_deleted AFTER DELETE ON oms.demand_history
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION oms._demand_history_written();
COMMENT ON TRIGGER demand_history_inserted ON oms.demand_history IS 'A direct insert marks the demand statistics of its SKU-locations stale';
COMMENT ON TRIGGER demand_history_updated ON oms.demand_history IS 'A direct update marks the demand statistics of its SKU-locations stale';
COMMENT ON TRIGGER demand_history_deleted ON oms.demand_history IS 'A direct delete marks the demand statistics of its SKU-locations stale';

CREATE FUNCTION oms._history_days(p_tenant int, p_item int, p_location int) RETURNS int
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
	RETURN coalesce((SELECT coalesce(s.history_days, d.history_days)
					   FROM (SELECT 1) one
					   LEFT JOIN oms.replenishment_policies s
						 ON s.tenant_id = p_tenant AND s.location_id = p_location AND s.item_id = p_item
					   LEFT JOIN oms.replenishment_policies d
						 ON d.tenant_id = p_tenant AND d.location_id = p_location AND d.item_id IS NULL),
					(oms._policy_defaults() ->> 'history_days')::int);
COMMENT ON FUNCTION oms._history_days(int, int, int) IS 'Internal: the days of demand history planning reads for an item at a location (its policy, the location default, else 90)';

CREATE OR REPLACE FUNCTION oms.compact_demand_history() RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_today		date := oms.today();
	v_rows		bigint;
BEGIN
	PERFORM oms._lock_demand_history(v_tenant);
	PERFORM pg_catalog.set_config('oms._stats_kept', 'on', true);
	-- One statement: the deltas it deletes are exactly those it adds (deltas that commit later
	-- are not in its snapshot and stay for the next run). Every part reads the summary as it was
	-- before the statement, so a day's demand before (q) and its change (dq) give the change of
	-- the statistics: total + dq, sumsq + (q + dq)^2 - q^2, for the rows whose window holds the
	-- day; a SKU-location seen for the first time gets its row, with the window planning would
	-- read today.
	WITH moved AS (
		DELETE FROM oms.demand_deltas d WHERE d.tenant_id = v_tenant RETURNING d.*
	), summed AS (
		SELECT m.tenant_id, m.item_id, m.location_id, m.channel_id, m.day, pg_catalog.sum(m.ordered) AS ordered,
			   pg_catalog.sum(m.cancelled) AS cancelled, pg_catalog.sum(m.returned) AS returned,
			   pg_catalog.sum(m.lines) AS lines, pg_catalog.count(*) AS deltas
		  FROM moved m
		 GROUP BY m.tenant_id, m.item_id, m.location_id, m.channel_id, m.day
	), upserted AS (
		INSERT INTO oms.demand_history AS h (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
		SELECT s.tenant_id, s.item_id, s.location_id, s.channel_id, s.day, s.ordered, s.cancelled, s.returned, s.lines
		  FROM summed s
		 ORDER BY s.item_id, s.location_id, s.channel_id, s.day
		ON CONFLICT ON CONSTRAINT demand_history_key DO UPDATE
		   SET ordered = h.ordered + EXCLUDED.ordered, cancelled = h.cancelled + EXCLUDED.cancelled,
			   returned = h.returned + EXCLUDED.returned, lines = h.lines + EXCLUDED.lines
		RETURNING 1
	), day_change AS (
		SELECT s.item_id, s.location_id, s.day, pg_catalog.sum(s.ordered - s.cancelled) AS dq
		  FROM summed s
		 WHERE s.location_id IS NOT NULL
		 GROUP BY s.item_id, s.location_id, s.day
	), day_before AS (
		SELECT c.item_id, c.location_id, c.day, c.dq,
			   coalesce((SELECT pg_catalog.sum(h.ordered - h.cancelled) FROM oms.demand_history h
						  WHERE h.tenant_id = v_tenant AND h.item_id = c.item_id AND h.location_id = c.location_id
							AND h.day = c.day), 0) AS q
		  FROM day_change c
	), stats_changed AS (
		UPDATE oms.demand_stats st
		   SET total = st.total + x.dtotal, sumsq = st.sumsq + x.dsumsq
		  FROM (SELECT b.item_id, b.location_id, st2.window_end, st2.window_days,
					   pg_catalog.sum(b.dq) AS dtotal, pg_catalog.sum((b.q + b.dq) * (b.q + b.dq) - b.q * b.q) AS dsumsq
				  FROM day_before b
				  JOIN oms.demand_stats st2 ON st2.tenant_id = v_tenant AND st2.item_id = b.item_id AND st2.location_id = b.location_id
				 WHERE b.day >= st2.window_end - st2.window_days AND b.day < st2.window_end
				 GROUP BY b.item_id, b.location_id, st2.window_end, st2.window_days) x
		 WHERE st.tenant_id = v_tenant AND st.item_id = x.item_id AND st.location_id = x.location_id
		   AND (x.dtotal <> 0 OR x.dsumsq <> 0)
		RETURNING 1
	), stats_added AS (
		INSERT INTO oms.demand_stats (tenant_id, item_id, location_id, window_end, window_days, total, sumsq)
		SELECT v_tenant, n.item_id, n.location_id, v_today, n.days,
			   coalesce(pg_catalog.sum(b.dq) FILTER (WHERE b.day >= v_today - n.days AND b.day < v_today), 0),
			   coalesce(pg_catalog.sum(b.dq * b.dq) FILTER (WHERE b.day >= v_today - n.days AND b.day < v_today), 0)
		  FROM (SELECT DISTINCT b.item_id, b.location_id,
					   oms._history_days(v_tenant, b.item_id, b.location_id) AS days
				  FROM day_before b
				 WHERE NOT EXISTS (SELECT FROM oms.demand_stats st
									WHERE st.tenant_id = v_tenant AND st.item_id = b.item_id AND st.location_id = b.location_id)) n
		  JOIN day_before b ON b.item_id = n.item_id AND b.location_id = n.location_id
		 GROUP BY n.item_id, n.location_id, n.days
		ON CONFLICT (tenant_id, item_id, location_id) DO NOTHING
		RETURNING 1
	)
	SELECT coalesce(pg_catalog.sum(s.deltas), 0) INTO v_rows FROM summed s;
	-- A new day (or stale rows): the windows move (the days that enter and leave them).
	IF EXISTS (SELECT FROM oms.demand_stats st WHERE st.tenant_id = v_tenant AND st.window_end IS DISTINCT FROM v_today) THEN
		PERFORM oms.refresh_demand_stats();
	END IF;
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms.compact_demand_history() IS 'Folds the current tenant''s oms.demand_deltas into oms.demand_history and its per SKU-location statistics (oms.demand_stats); returns the number of deltas folded (the scheduled job "demand_history" runs it)';

CREATE FUNCTION oms.refresh_demand_stats(recompute boolean DEFAULT false) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_today		date := oms.today();
	v_default	int := (oms._policy_defaults() ->> 'history_days')::int;
	v_rows		bigint;
	v_stale		bigint;
	b			record;
BEGIN
	PERFORM oms._lock_demand_history(v_tenant);
	IF recompute THEN
		DELETE FROM oms.demand_stats st WHERE st.tenant_id = v_tenant;
		WITH pairs AS (
			SELECT DISTINCT h.item_id, h.location_id FROM oms.demand_history h
			 WHERE h.tenant_id = v_tenant AND h.location_id IS NOT NULL
		), target AS (
			SELECT p.item_id, p.location_id, coalesce(s.history_days, d.history_days, v_default) AS days
			  FROM pairs p
			  LEFT JOIN oms.replenishment_policies s
				ON s.tenant_id = v_tenant AND s.location_id = p.location_id AND s.item_id = p.item_id
			  LEFT JOIN oms.replenishment_policies d
				ON d.tenant_id = v_tenant AND d.location_id = p.location_id AND d.item_id IS NULL
		)
		INSERT INTO oms.demand_stats (tenant_id, item_id, location_id, window_end, window_days, total, sumsq)
		SELECT v_tenant, t.item_id, t.location_id, v_today, t.days,
			   coalesce(pg_catalog.sum(x.q), 0), coalesce(pg_catalog.sum(x.q * x.q), 0)
		  FROM target t
		  LEFT JOIN (SELECT h.item_id, h.location_id, h.day, pg_catalog.sum(h.ordered - h.cancelled) AS q
					   FROM oms.demand_history h
					  WHERE h.tenant_id = v_tenant AND h.location_id IS NOT NULL
					  GROUP BY h.item_id, h.location_id, h.day) x
			ON x.item_id = t.item_id AND x.location_id = t.location_id
		   AND x.day >= v_today - t.days AND x.day < v_today
		 GROUP BY t.item_id, t.location_id, t.days
		 ORDER BY t.item_id, t.location_id;
		GET DIAGNOSTICS v_rows = ROW_COUNT;
		RETURN v_rows;
	END IF;

	-- Stale rows (written around compaction): recomputed from the history.
	UPDATE oms.demand_stats st
	   SET window_end = v_today, window_days = x.days, total = x.total, sumsq = x.sumsq
	  FROM (SELECT s0.item_id, s0.location_id, t.days,
				   coalesce((SELECT pg_catalog.sum(y.q) FROM (
								SELECT pg_catalog.sum(h.ordered - h.cancelled) AS q FROM oms.demand_history h
								 WHERE h.tenant_id = v_tenant AND h.item_id = s0.item_id AND h.location_id = s0.location_id
								   AND h.day >= v_today - t.days AND h.day < v_today
								 GROUP BY h.day) y), 0) AS total,
				   coalesce((SELECT pg_catalog.sum(y.q * y.q) FROM (
								SELECT pg_catalog.sum(h.ordered - h.cancelled) AS q FROM oms.demand_history h
								 WHERE h.tenant_id = v_tenant AND h.item_id = s0.item_id AND h.location_id = s0.location_id
								   AND h.day >= v_today - t.days AND h.day < v_today
								 GROUP BY h.day) y), 0) AS sumsq
			  FROM oms.demand_stats s0
			 CROSS JOIN LATERAL (SELECT oms._history_days(v_tenant, s0.item_id, s0.location_id) AS days) t
			 WHERE s0.tenant_id = v_tenant AND s0.window_end IS NULL) x
	 WHERE st.tenant_id = v_tenant AND st.item_id = x.item_id AND st.location_id = x.location_id;
	GET DIAGNOSTICS v_stale = ROW_COUNT;

	-- The rows whose window is not today's, with their old window [os, oe) and the new [ns, ne).
	CREATE TEMP TABLE pg_temp.oms_stats_moves ON COMMIT DROP AS
	SELECT t.item_id, t.location_id, t.window_end - t.window_days AS os, t.window_end AS oe,
		   v_today - t.days AS ns, v_today AS ne, t.days
	  FROM (SELECT st.item_id, st.location_id, st.window_end, st.window_days,
				   coalesce(s.history_days, d.history_days, v_default) AS days
			  FROM oms.demand_stats st
			  LEFT JOIN oms.replenishment_policies s
				ON s.tenant_id = v_tenant AND s.location_id = st.location_id AND s.item_id = st.item_id
			  LEFT JOIN oms.replenishment_policies d
				ON d.tenant_id = v_tenant AND d.location_id = st.location_id AND d.item_id IS NULL
			 WHERE st.tenant_id = v_tenant) t
	 WHERE t.window_end <> v_today OR t.window_days <> t.days;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	IF v_rows = 0 THEN
		DROP TABLE pg_temp.oms_stats_moves;
		RETURN v_stale;
	END IF;
	ANALYZE pg_temp.oms_stats_moves;
	-- Only the days at the two edges change: [min(os, ns), max(os, ns)) and [min(oe, ne),
	-- max(oe, ne)); a day counts +1 when only the new window holds it, -1 when only the old one does.
	SELECT min(LEAST(m.os, m.ns)) AS lo1, max(GREATEST(m.os, m.ns)) AS hi1,
		   min(LEAST(m.oe, m.ne)) AS lo2, max(GREATEST(m.oe, m.ne)) AS hi2
	  INTO b FROM pg_temp.oms_stats_moves m;
	UPDATE oms.demand_stats st
	   SET window_end = m.ne, window_days = m.days,
		   total = st.total + coalesce(c.dtotal, 0), sumsq = st.sumsq + coalesce(c.dsumsq, 0)
	  FROM pg_temp.oms_stats_moves m
	  LEFT JOIN (SELECT y.item_id, y.location_id, pg_catalog.sum(y.sign * y.q) AS dtotal,
						pg_catalog.sum(y.sign * y.q * y.q) AS dsumsq
				   FROM (SELECT m2.item_id, m2.location_id, h.day,
								(h.day >= m2.ns AND h.day < m2.ne)::int - (h.day >= m2.os AND h.day < m2.oe)::int AS sign,
								pg_catalog.sum(h.ordered - h.cancelled) AS q
						   FROM oms.demand_history h
						   JOIN pg_temp.oms_stats_moves m2 ON m2.item_id = h.item_id AND m2.location_id = h.location_id
						  WHERE h.tenant_id = v_tenant
							AND ((h.day >= b.lo1 AND h.day < b.hi1) OR (h.day >= b.lo2 AND h.day < b.hi2))
							AND ((h.day >= LEAST(m2.os, m2.ns) AND h.day < GREATEST(m2.os, m2.ns))
								 OR (h.day >= LEAST(m2.oe, m2.ne) AND h.day < GREATEST(m2.oe, m2.ne)))
						  GROUP BY m2.item_id, m2.location_id, h.day, m2.ns, m2.ne, m2.os, m2.oe) y
				  WHERE y.sign <> 0
				  GROUP BY y.item_id, y.location_id) c
		ON c.item_id = m.item_id AND c.location_id = m.location_id
	 WHERE st.tenant_id = v_tenant AND st.item_id = m.item_id AND st.location_id = m.location_id;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	DROP TABLE pg_temp.oms_stats_moves;
	RETURN v_stale + v_rows;
END
$$;
COMMENT ON FUNCTION oms.refresh_demand_stats(boolean) IS 'Moves the current tenant''s demand statistics (oms.demand_stats) to the windows planning reads today (adding the days that enter, subtracting those that leave); recompute: recomputes them from oms.demand_history; returns the rows changed';

CREATE OR REPLACE FUNCTION oms.rebuild_demand_history("from" date DEFAULT NULL) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_rows		bigint;
BEGIN
	PERFORM oms._lock_demand_history(v_tenant);
	PERFORM pg_catalog.set_config('oms._stats_kept', 'on', true);
	DELETE FROM oms.demand_history h
	 WHERE h.tenant_id = v_tenant AND ($1 IS NULL OR h.day >= $1);
	-- One statement, one snapshot: an order committed before it is counted from its lines and its
	-- deltas are deleted; an order committed after it keeps its deltas. (A data-modifying WITH
	-- runs to completion whether or not the rest of the statement reads it.)
	WITH gone AS (
		DELETE FROM oms.demand_deltas d
		 WHERE d.tenant_id = v_tenant AND ($1 IS NULL OR d.day >= $1)
		RETURNING 1
	)
	INSERT INTO oms.demand_history (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
	SELECT l.tenant_id, l.item_id, l.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
		   pg_catalog.sum(l.qty), pg_catalog.sum(l.qty_cancelled), pg_catalog.sum(l.qty_returned), pg_catalog.count(*)
	  FROM oms.orders o
	  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
	 WHERE o.tenant_id = v_tenant
	   AND ($1 IS NULL OR o.placed_at >= ($1::timestamp AT TIME ZONE 'UTC'))
	 GROUP BY l.tenant_id, l.item_id, l.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	-- The statistics follow the summary they are kept from.
	PERFORM oms.refresh_demand_stats(true);
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms.rebuild_demand_history(date) IS 'Recomputes the current tenant''s demand history from its order lines, for the days from the given date on (all days when NULL); returns the number of summary rows written';

CREATE FUNCTION oms._replenishment_base(p_tenant int, p_today date, p_item_from int DEFAULT NULL,
										p_item_to int DEFAULT NULL)
	RETURNS TABLE (item_id int, location_id int, priority int, location_code text, method text, supplier_id int,
				   unit_cost numeric, moq bigint, pack_size bigint, lead_time_days numeric, rebalance boolean,
				   auto_send boolean, update_safety_stock boolean, overstock_days numeric, min_qty bigint,
				   max_qty bigint, on_hand bigint, reserved bigint, current_safety_stock bigint, on_order bigint,
				   backordered bigint, covered boolean, order_qty bigint, service_level double precision,
				   lead_time_sd double precision, protection double precision, lead_time double precision,
				   history_days int, total double precision, sumsq double precision, exact boolean)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
	SET jit = off
	SET enable_nestloop = off
BEGIN ATOMIC
	WITH extra AS (
		-- SKU-locations planned that are not a stock row at a location with a default policy: SKU
		-- overrides, and lines waiting at a location with a default policy.
		SELECT r.item_id, r.location_id FROM oms.replenishment_policies r
		 WHERE r.tenant_id = p_tenant AND r.item_id IS NOT NULL
		   AND r.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		UNION
		SELECT l.item_id, l.location_id FROM oms.order_lines l
		 WHERE l.tenant_id = p_tenant AND l.state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state)
		   AND l.location_id IS NOT NULL
		   AND l.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		   AND EXISTS (SELECT FROM oms.replenishment_policies d
						WHERE d.tenant_id = p_tenant AND d.location_id = l.location_id AND d.item_id IS NULL)
	), pairs AS NOT MATERIALIZED (
		-- Every SKU-location planned, once: the stock rows at locations with a default policy,
		-- and the others above.
		SELECT s.item_id, s.location_id, s.on_hand, s.reserved, s.safety_stock
		  FROM oms.stock s
		 WHERE s.tenant_id = p_tenant
		   AND s.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		   AND EXISTS (SELECT FROM oms.replenishment_policies d
						WHERE d.tenant_id = p_tenant AND d.location_id = s.location_id AND d.item_id IS NULL)
		UNION ALL
		SELECT e.item_id, e.location_id, s.on_hand, s.reserved, s.safety_stock
		  FROM extra e
		  LEFT JOIN oms.stock s ON s.tenant_id = p_tenant AND s.item_id = e.item_id AND s.location_id = e.location_id
		 WHERE s.item_id IS NULL
			OR NOT EXISTS (SELECT FROM oms.replenishment_policies d
							WHERE d.tenant_id = p_tenant AND d.location_id = e.location_id AND d.item_id IS NULL)
	), unassigned AS (
		-- Backorders of shipped orders not yet at a location count at the preferred location that
		-- can ship and has a policy for the SKU.
		SELECT DISTINCT ON (u.item_id) u.item_id, c.location_id, u.qty
		  FROM (SELECT l.item_id, pg_catalog.sum(l.qty - l.qty_cancelled) AS qty
				  FROM oms.order_lines l
				  JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
				 WHERE l.tenant_id = p_tenant AND l.state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state)
				   AND l.location_id IS NULL AND o.pickup_location_id IS NULL
				   AND l.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
				 GROUP BY l.item_id) u
		 CROSS JOIN LATERAL (
				SELECT p.location_id, loc.priority, loc.code
				  FROM pairs p
				  JOIN oms.locations loc ON loc.tenant_id = p_tenant AND loc.id = p.location_id AND loc.active AND loc.can_ship
				 WHERE p.item_id = u.item_id) c
		 ORDER BY u.item_id, c.priority, c.code
	), waiting AS (
		SELECT l.item_id, l.location_id, pg_catalog.sum(l.qty - l.qty_cancelled) AS qty
		  FROM oms.order_lines l
		 WHERE l.tenant_id = p_tenant AND l.state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state)
		   AND l.location_id IS NOT NULL
		   AND l.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		 GROUP BY l.item_id, l.location_id
	), incoming AS (
		SELECT su.item_id, su.location_id, pg_catalog.sum(su.qty) AS qty
		  FROM oms.supply su
		 WHERE su.tenant_id = p_tenant
		   AND su.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		 GROUP BY su.item_id, su.location_id
	), open_orders AS (
		SELECT pl.item_id, po.location_id
		  FROM oms.purchase_order_lines pl
		  JOIN oms.purchase_orders po ON po.tenant_id = pl.tenant_id AND po.id = pl.po_id
		 WHERE pl.tenant_id = p_tenant AND po.state IN ('draft', 'sent', 'partially_received')
		   AND pl.qty_received + pl.qty_cancelled < pl.qty
		   AND pl.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		UNION
		SELECT tl.item_id, t.to_location_id
		  FROM oms.transfer_order_lines tl
		  JOIN oms.transfer_orders t ON t.tenant_id = tl.tenant_id AND t.id = tl.transfer_id
		 WHERE tl.tenant_id = p_tenant AND t.state IN ('in_transit', 'partially_received')
		   AND tl.qty_received + tl.qty_cancelled < tl.qty
		   AND tl.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
	), delta AS (
		-- SKU-locations with demand not yet compacted inside their window: their statistics
		-- cannot be used.
		SELECT DISTINCT dl.item_id, dl.location_id
		  FROM oms.demand_deltas dl
		  LEFT JOIN oms.replenishment_policies s
			ON s.tenant_id = p_tenant AND s.location_id = dl.location_id AND s.item_id = dl.item_id
		  LEFT JOIN oms.replenishment_policies d
			ON d.tenant_id = p_tenant AND d.location_id = dl.location_id AND d.item_id IS NULL
		 WHERE dl.tenant_id = p_tenant AND dl.location_id IS NOT NULL
		   AND dl.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		   AND dl.day < p_today
		   AND dl.day >= p_today - coalesce(s.history_days, d.history_days, (oms._policy_defaults() ->> 'history_days')::int)
	), pol AS (
		-- The effective policy (as oms._effective_policy: the SKU's setting, else the location
		-- default's, else the built-in default), joined for all pairs at once.
		SELECT p.item_id, p.location_id, loc.priority, loc.code,
			   coalesce(s.method, d.method, oms._policy_defaults() ->> 'method') AS method,
			   coalesce(s.service_level, d.service_level, (oms._policy_defaults() ->> 'service_level')::numeric) AS service_level,
			   coalesce(s.lead_time_days, d.lead_time_days, (oms._policy_defaults() ->> 'lead_time_days')::numeric) AS lead_time_days,
			   coalesce(s.lead_time_sd, d.lead_time_sd, (oms._policy_defaults() ->> 'lead_time_sd')::numeric) AS lead_time_sd,
			   coalesce(s.review_period_days, d.review_period_days, (oms._policy_defaults() ->> 'review_period_days')::numeric) AS review_period_days,
			   coalesce(s.history_days, d.history_days, (oms._policy_defaults() ->> 'history_days')::int) AS history_days,
			   coalesce(s.min_qty, d.min_qty) AS min_qty, coalesce(s.max_qty, d.max_qty) AS max_qty,
			   coalesce(s.order_qty, d.order_qty) AS order_qty,
			   coalesce(s.moq, d.moq, (oms._policy_defaults() ->> 'moq')::bigint) AS moq,
			   coalesce(s.pack_size, d.pack_size, (oms._policy_defaults() ->> 'pack_size')::bigint) AS pack_size,
			   coalesce(s.supplier_id, d.supplier_id) AS supplier_id, coalesce(s.unit_cost, d.unit_cost) AS unit_cost,
			   coalesce(s.overstock_days, d.overstock_days) AS overstock_days,
			   coalesce(s.update_safety_stock, d.update_safety_stock, (oms._policy_defaults() ->> 'update_safety_stock')::boolean) AS update_safety_stock,
			   coalesce(s.rebalance, d.rebalance, (oms._policy_defaults() ->> 'rebalance')::boolean) AS rebalance,
			   coalesce(s.auto_send, d.auto_send, (oms._policy_defaults() ->> 'auto_send')::boolean) AS auto_send,
			   coalesce(p.on_hand, 0) AS on_hand, coalesce(p.reserved, 0) AS reserved,
			   coalesce(p.safety_stock, 0) AS current_ss
		  FROM pairs p
		  JOIN oms.locations loc ON loc.tenant_id = p_tenant AND loc.id = p.location_id AND loc.active
		  LEFT JOIN oms.replenishment_policies s
			ON s.tenant_id = p_tenant AND s.location_id = p.location_id AND s.item_id = p.item_id
		  LEFT JOIN oms.replenishment_policies d
			ON d.tenant_id = p_tenant AND d.location_id = p.location_id AND d.item_id IS NULL
		 WHERE s.id IS NOT NULL OR d.id IS NOT NULL
	)
	-- The demand: the statistics row when its window is this pair's; exact (summed from the history
	-- by oms._replenishment_candidates) when it is not, or when deltas are pending; none without a row.
	SELECT pol.item_id, pol.location_id, pol.priority, pol.code, pol.method, pol.supplier_id,
		   coalesce(pol.unit_cost, it.unit_cost),
		   pol.moq, pol.pack_size, pol.lead_time_days, pol.rebalance, pol.auto_send, pol.update_safety_stock,
		   pol.overstock_days, pol.min_qty, pol.max_qty, pol.on_hand, pol.reserved, pol.current_ss,
		   coalesce(inc.qty, 0)::bigint, (coalesce(w.qty, 0) + coalesce(u.qty, 0))::bigint, oo.item_id IS NOT NULL,
		   pol.order_qty, pol.service_level::double precision, pol.lead_time_sd::double precision,
		   (pol.lead_time_days + pol.review_period_days)::double precision, pol.lead_time_days::double precision,
		   pol.history_days,
		   CASE WHEN ds.window_end = p_today AND ds.window_days = pol.history_days THEN ds.total ELSE 0 END::double precision,
		   CASE WHEN ds.window_end = p_today AND ds.window_days = pol.history_days THEN ds.sumsq ELSE 0 END::double precision,
		   dl.item_id IS NOT NULL
			OR (ds.item_id IS NOT NULL AND NOT coalesce(ds.window_end = p_today AND ds.window_days = pol.history_days, false))
	  FROM pol
	  LEFT JOIN oms.demand_stats ds ON ds.tenant_id = p_tenant AND ds.item_id = pol.item_id AND ds.location_id = pol.location_id
		   AND ds.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
	  LEFT JOIN incoming inc ON inc.item_id = pol.item_id AND inc.location_id = pol.location_id
	  LEFT JOIN waiting w ON w.item_id = pol.item_id AND w.location_id = pol.location_id
	  LEFT JOIN unassigned u ON u.item_id = pol.item_id AND u.location_id = pol.location_id
	  LEFT JOIN open_orders oo ON oo.item_id = pol.item_id AND oo.location_id = pol.location_id
	  LEFT JOIN delta dl ON dl.item_id = pol.item_id AND dl.location_id = pol.location_id
	  LEFT JOIN oms.items it ON it.tenant_id = p_tenant AND it.id = pol.item_id;
END;
COMMENT ON FUNCTION oms._replenishment_base(int, date, int, int) IS 'Internal: what planning reads for every SKU and location with a policy (items in the given id range): effective policy, stock, on order, backorders, whether an open order covers it, and the sum and sum of squares of its daily demand over its history window from oms.demand_stats (exact: to be summed from the history instead)';

CREATE OR REPLACE FUNCTION oms._replenishment_candidates(p_tenant int, p_today date, p_item_from int DEFAULT NULL,
											  p_item_to int DEFAULT NULL)
	RETURNS TABLE (item_id int, location_id int, priority int, location_code text, method text, supplier_id int,
				   unit_cost numeric, moq bigint, pack_size bigint, lead_time_days numeric, rebalance boolean,
				   auto_send boolean, update_safety_stock boolean, overstock_days numeric, min_qty bigint,
				   max_qty bigint, on_hand bigint, reserved bigint, current_safety_stock bigint, on_order bigint,
				   backordered bigint, covered boolean, demand_mean double precision, demand_sd double precision,
				   lead_time_demand numeric, safety_stock bigint, reorder_point bigint, inventory_position bigint,
				   order_up_to bigint, triggered boolean, need bigint, surplus bigint)
	LANGUAGE c STABLE
	SET search_path = oms, pg_catalog
	SET work_mem = '128MB'
	AS 'MODULE_PATHNAME', 'oms_replenishment_candidates';
COMMENT ON FUNCTION oms._replenishment_candidates(int, date, int, int) IS 'Internal: every SKU and location with a policy (items in the given id range): effective policy, stock, on order, backorders, demand mean and deviation, safety stock, reorder point, inventory position, whether it must order, how much, and its surplus';

CREATE OR REPLACE FUNCTION oms._replenishment_proposals(p_tenant int, p_today date, p_item_from int DEFAULT NULL,
											 p_item_to int DEFAULT NULL)
	RETURNS TABLE (item_id int, location_id int, kind text, supplier_id int, from_location_id int, on_hand bigint,
				   reserved bigint, on_order bigint, backordered bigint, demand_mean double precision,
				   lead_time_demand numeric, safety_stock bigint, reorder_point bigint, proposed_qty bigint,
				   unit_cost numeric, expected_date date, auto_send boolean, reason text)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
	SET jit = off
	SET work_mem = '128MB'
BEGIN ATOMIC
	WITH c AS (
		-- Only what can make a proposal: a need, a surplus, a safety stock to write.
		SELECT * FROM oms._replenishment_candidates(p_tenant, p_today, p_item_from, p_item_to) c
		 WHERE c.need > 0 OR c.surplus > 0 OR (c.update_safety_stock AND c.safety_stock <> c.current_safety_stock)
	), short AS (
		SELECT c.item_id, c.location_id, c.need,
			   pg_catalog.sum(c.need) OVER w - c.need AS from_n, pg_catalog.sum(c.need) OVER w AS to_n
		  FROM c WHERE c.need > 0 AND c.rebalance
		WINDOW w AS (PARTITION BY c.item_id ORDER BY c.priority, c.location_code)
	), spare AS (
		SELECT c.item_id, c.location_id, c.surplus,
			   pg_catalog.sum(c.surplus) OVER w - c.surplus AS from_n, pg_catalog.sum(c.surplus) OVER w AS to_n
		  FROM c WHERE c.surplus > 0
		WINDOW w AS (PARTITION BY c.item_id ORDER BY c.surplus DESC, c.priority, c.location_code)
	), segments AS (
		-- Short locations take the units [from_n, to_n) of the item's need, surplus locations give
		-- [from_n, to_n) of its surplus; a transfer is where the two overlap. The ends of both cut
		-- [0, total) into segments, each inside one short and one surplus range: those that end
		-- first at or after it. Linear in the locations of an item (comparing every short location
		-- with every surplus one was quadratic: 17 million pairs for 10,000 SKUs x 100 locations).
		SELECT b.item_id,
			   b.p - coalesce(pg_catalog.lag(b.p) OVER (PARTITION BY b.item_id ORDER BY b.p), 0) AS len,
			   pg_catalog.min(b.p) FILTER (WHERE b.is_short) OVER (PARTITION BY b.item_id ORDER BY b.p DESC) AS short_end,
			   pg_catalog.min(b.p) FILTER (WHERE b.is_spare) OVER (PARTITION BY b.item_id ORDER BY b.p DESC) AS spare_end
		  FROM (SELECT e.item_id, e.p, pg_catalog.bool_or(e.is_short) AS is_short, pg_catalog.bool_or(NOT e.is_short) AS is_spare
				  FROM (SELECT sh.item_id, sh.to_n AS p, true AS is_short FROM short sh
						UNION ALL
						SELECT sp.item_id, sp.to_n, false FROM spare sp) e
				 GROUP BY e.item_id, e.p) b
	), moves AS (
		SELECT sh.item_id, sh.location_id, sp.location_id AS from_location_id, pg_catalog.sum(g.len)::bigint AS qty
		  FROM segments g
		  JOIN short sh ON sh.item_id = g.item_id AND sh.to_n = g.short_end
		  JOIN spare sp ON sp.item_id = g.item_id AND sp.to_n = g.spare_end
		 GROUP BY sh.item_id, sh.location_id, sp.location_id
	), moved AS (
		SELECT m.item_id, m.location_id, pg_catalog.sum(m.qty) AS qty FROM moves m GROUP BY m.item_id, m.location_id
	), buy AS (
		SELECT c.*, c.need - coalesce(mv.qty, 0)::bigint AS rest
		  FROM c LEFT JOIN moved mv ON mv.item_id = c.item_id AND mv.location_id = c.location_id
		 WHERE c.need > 0
	), rounded AS (
		SELECT b.*, (pg_catalog.ceil(GREATEST(b.rest, b.moq)::numeric / b.pack_size) * b.pack_size)::bigint AS qty
		  FROM buy b WHERE b.rest > 0
	)
	SELECT r.item_id, r.location_id, 'purchase', r.supplier_id, NULL::int, r.on_hand, r.reserved, r.on_order, r.backordered,
		   r.demand_mean, r.lead_time_demand, r.safety_stock, r.reorder_point, r.qty, r.unit_cost,
		   p_today + pg_catalog.ceil(r.lead_time_days)::int, r.auto_send,
		   pg_catalog.concat_ws('; ',
			   CASE WHEN r.method = 'min_max'
					THEN pg_catalog.format('position %s <= min %s: up to max %s', r.inventory_position, r.min_qty, r.max_qty)
					ELSE pg_catalog.format('position %s <= reorder point %s', r.inventory_position, r.reorder_point) END,
			   CASE WHEN r.rest < r.need THEN pg_catalog.format('%s of %s by transfer', r.need - r.rest, r.need) END,
			   CASE WHEN r.qty <> r.rest THEN pg_catalog.format('%s rounded up to %s (moq %s, pack %s)', r.rest, r.qty, r.moq, r.pack_size) END,
			   CASE WHEN r.supplier_id IS NULL THEN 'no supplier in the policy: nothing will be ordered' END)
	  FROM rounded r
	UNION ALL
	SELECT m.item_id, m.location_id, 'transfer', NULL::int, m.from_location_id, c.on_hand, c.reserved, c.on_order, c.backordered,
		   c.demand_mean, c.lead_time_demand, c.safety_stock, c.reorder_point, m.qty, c.unit_cost, p_today + 1, false,
		   pg_catalog.format('surplus at %s', fl.code)
	  FROM moves m
	  JOIN c ON c.item_id = m.item_id AND c.location_id = m.location_id
	  JOIN oms.locations fl ON fl.tenant_id = p_tenant AND fl.id = m.from_location_id
	UNION ALL
	SELECT c.item_id, c.location_id, 'safety_stock', NULL::int, NULL::int, c.on_hand, c.reserved, c.on_order, c.backordered,
		   c.demand_mean, c.lead_time_demand, c.safety_stock, c.reorder_point, c.safety_stock, NULL::numeric, NULL::date, false,
		   pg_catalog.format('safety stock %s (was %s)', c.safety_stock, c.current_safety_stock)
	  FROM c
	 WHERE c.update_safety_stock AND c.safety_stock <> c.current_safety_stock;
END;
COMMENT ON FUNCTION oms._replenishment_proposals(int, date, int, int) IS 'Internal: what to transfer and what to buy for the SKUs in the given item id range, and the safety stock to write (kind safety_stock) where the policy asks for it';

CREATE FUNCTION oms._analyze_written(p_lines bigint) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF (SELECT c.reltuples FROM pg_catalog.pg_class c WHERE c.oid = 'oms.supply'::pg_catalog.regclass) < p_lines THEN
		ANALYZE oms.supply, oms.transfer_orders, oms.purchase_orders;
		RETURN true;
	END IF;
	RETURN false;
END
$$;
COMMENT ON FUNCTION oms._analyze_written(bigint) IS 'Internal: analyzes oms.supply, oms.transfer_orders and oms.purchase_orders when the statistics of oms.supply count fewer rows than a replenishment run has just written (so that the foreign-key checks of the next lines read the indexes)';

CREATE OR REPLACE FUNCTION oms._run_replenishment(p_tenant int, p_today date, p_item_from int DEFAULT NULL, p_item_to int DEFAULT NULL)
	RETURNS TABLE (kind text, id bigint, supplier_id int, from_location_id int, location_id int, lines int, units bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
	SET jit = off
AS $$
#variable_conflict use_column
DECLARE
	r			record;
	v_id		bigint;
	v_lines		bigint := 0;
	v_analyzed	boolean := false;
BEGIN
	CREATE TEMP TABLE pg_temp.oms_proposals ON COMMIT DROP AS
		SELECT * FROM oms._replenishment_proposals(p_tenant, p_today, p_item_from, p_item_to);

	FOR r IN SELECT p.from_location_id, p.location_id, array_agg(p.item_id ORDER BY p.item_id) AS items,
					array_agg(p.proposed_qty ORDER BY p.item_id) AS qtys, max(p.expected_date) AS expected
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'transfer'
			  GROUP BY p.from_location_id, p.location_id ORDER BY p.from_location_id, p.location_id LOOP
		BEGIN
			v_id := oms._new_transfer(p_tenant, r.from_location_id, r.location_id, r.expected, 'replenishment', r.items, r.qtys);
			v_lines := v_lines + cardinality(r.items);
			IF NOT v_analyzed AND v_lines >= 1000 THEN
				v_analyzed := true;
				PERFORM oms._analyze_written(v_lines);
			END IF;
			kind := 'transfer'; id := v_id; supplier_id := NULL; from_location_id := r.from_location_id;
			location_id := r.location_id; lines := cardinality(r.items);
			units := (SELECT sum(q) FROM unnest(r.qtys) q);
			RETURN NEXT;
		EXCEPTION WHEN SQLSTATE 'OM002' THEN
			-- An order took the surplus since the plan was made: the next run buys instead.
			RAISE NOTICE 'transfer from location % to % skipped: %', r.from_location_id, r.location_id, SQLERRM;
		END;
	END LOOP;

	FOR r IN SELECT p.supplier_id, p.location_id, p.auto_send, array_agg(p.item_id ORDER BY p.item_id) AS items,
					array_agg(p.proposed_qty ORDER BY p.item_id) AS qtys, array_agg(p.unit_cost ORDER BY p.item_id) AS costs,
					array_agg(p.expected_date ORDER BY p.item_id) AS dates
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'purchase' AND p.supplier_id IS NOT NULL
			  GROUP BY p.supplier_id, p.location_id, p.auto_send ORDER BY p.supplier_id, p.location_id, p.auto_send LOOP
		v_id := oms._new_purchase_order(p_tenant, r.supplier_id, r.location_id,
										CASE WHEN r.auto_send THEN 'sent' ELSE 'draft' END, 'replenishment',
										r.items, r.qtys, r.costs, r.dates);
		v_lines := v_lines + cardinality(r.items);
		IF NOT v_analyzed AND v_lines >= 1000 THEN
			v_analyzed := true;
			PERFORM oms._analyze_written(v_lines);
		END IF;
		kind := 'purchase_order'; id := v_id; supplier_id := r.supplier_id; from_location_id := NULL;
		location_id := r.location_id; lines := cardinality(r.items);
		units := (SELECT sum(q) FROM unnest(r.qtys) q);
		RETURN NEXT;
	END LOOP;

	FOR r IN SELECT p.item_id, p.location_id, p.proposed_qty AS safety_stock
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'safety_stock'
			  ORDER BY p.item_id, p.location_id LOOP
		INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, safety_stock)
			VALUES (p_tenant, r.item_id, r.location_id, r.safety_stock)
			ON CONFLICT (tenant_id, item_id, location_id)
			DO UPDATE SET safety_stock = EXCLUDED.safety_stock, updated_at = pg_catalog.now();
		kind := 'safety_stock'; id := NULL; supplier_id := NULL; from_location_id := NULL;
		location_id := r.location_id; lines := 1; units := r.safety_stock;
		RETURN NEXT;
	END LOOP;
	DROP TABLE pg_temp.oms_proposals;
END
$$;
COMMENT ON FUNCTION oms._run_replenishment(int, date, int, int) IS 'Internal: turns the proposals of an item id range into transfers and purchase orders, and writes the safety stock of policies that ask for it';

CREATE OR REPLACE FUNCTION oms.run_replenishment()
	RETURNS TABLE (kind text, id bigint, supplier text, from_location text, location text, lines int, units bigint)
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
BEGIN
	IF NOT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('oms.replenishment'), v_tenant) THEN
		RAISE NOTICE 'replenishment of tenant "%" is already running in another session; this run does nothing',
			pg_catalog.current_setting('oms.tenant');
		RETURN;
	END IF;
	-- The demand statistics in today's windows (a no-op once they are).
	PERFORM oms.refresh_demand_stats();
	RETURN QUERY
	SELECT r.kind, r.id, s.code, f.code, l.code, r.lines, r.units
	  FROM oms._run_replenishment(v_tenant, oms.today()) r
	  LEFT JOIN oms.suppliers s ON s.tenant_id = v_tenant AND s.id = r.supplier_id
	  LEFT JOIN oms.locations f ON f.tenant_id = v_tenant AND f.id = r.from_location_id
	  JOIN oms.locations l ON l.tenant_id = v_tenant AND l.id = r.location_id;
END
$$;
COMMENT ON FUNCTION oms.run_replenishment() IS 'Turns the replenishment plan into transfers and purchase orders (draft, or sent when the policy says auto_send) with their incoming supply, and writes safety stock where the policy asks; a SKU and location with an open order is covered, so a second run creates nothing; a run while another is in progress does nothing and says so';

CREATE OR REPLACE FUNCTION oms._job_begin(p_job text, p_tenant text, p_batch_items int) RETURNS bigint
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_job		text := oms._check_job(p_job);
	v_tenant	int;
	v_from		int := 0;
	v_max		int := 0;
	v_batch		int := p_batch_items;
	v_run		bigint;
BEGIN
	IF p_batch_items IS NULL OR p_batch_items < 1 THEN
		RAISE EXCEPTION 'batch_items must be at least 1, got %', coalesce(p_batch_items::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'A replenishment run commits after every batch of this many item ids.';
	END IF;
	IF p_tenant IS NOT NULL THEN
		PERFORM set_config('oms.tenant', p_tenant, false);
	END IF;
	v_tenant := oms.current_tenant_id();

	IF NOT pg_try_advisory_lock(hashtext('oms.' || v_job), v_tenant) THEN
		INSERT INTO oms.job_runs (tenant_id, job, status, finished_at, error)
		VALUES (v_tenant, v_job, 'skipped', clock_timestamp(), 'another run of this job was in progress');
		RAISE NOTICE 'job "%" of tenant "%" is already running in another session; this run does nothing',
			v_job, current_setting('oms.tenant');
		RETURN NULL;
	END IF;

	-- Runs left 'running' by a backend that is gone are closed as failed.
	UPDATE oms.job_runs r SET status = 'failed', finished_at = clock_timestamp(),
							  error = 'the run ended without finishing (server restart or backend terminated)'
	 WHERE r.tenant_id = v_tenant AND r.job = v_job AND r.status = 'running';
	IF v_job = 'replenishment' THEN
		-- The demand statistics in today's windows before the batches read them.
		PERFORM oms.refresh_demand_stats();
		SELECT min(i.id), max(i.id) INTO v_from, v_max FROM oms.items i WHERE i.tenant_id = v_tenant;
	ELSE
		v_batch := 1;
	END IF;
	INSERT INTO oms.job_runs (tenant_id, job, status, progress_total, batch_items, next_item, last_item, run_day)
	VALUES (v_tenant, v_job, 'running', coalesce(ceil((v_max - v_from + 1)::numeric / v_batch), 0),
			v_batch, v_from, v_max, oms.today())
	RETURNING id INTO v_run;
	RETURN v_run;
END
$$;
COMMENT ON FUNCTION oms._job_begin(text, text, int) IS 'Internal (oms.run_job): checks the job, takes its advisory lock for the tenant (or records a skipped run and returns NULL), closes runs left running, and records the new run with its cursor; returns its id';

CREATE OR REPLACE FUNCTION oms._job_next(p_run bigint) RETURNS boolean
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r		oms.job_runs;
	v_to	int;
	v_rows	bigint;
	v_state	text;
	v_msg	text;
BEGIN
	SELECT * INTO r FROM oms.job_runs x
	 WHERE x.id = p_run AND x.tenant_id = oms.current_tenant_id() AND x.status = 'running' AND x.backend_pid = pg_backend_pid();
	IF NOT FOUND THEN
		RAISE EXCEPTION 'job run % is not running in this session', coalesce(p_run::text, 'NULL')
			USING ERRCODE = '55000', HINT = 'Runs are started with CALL oms.run_job(job, tenant).';
	END IF;
	IF r.next_item IS NULL OR r.next_item > r.last_item THEN
		RETURN false;
	END IF;
	-- The pause between batches (oms.job_batch_pause), before this batch takes any lock.
	IF r.progress_done > 0 AND current_setting('oms.job_batch_pause') NOT IN ('0', '0ms') THEN
		PERFORM pg_sleep_for(current_setting('oms.job_batch_pause')::interval);
	END IF;
	v_to := int4(LEAST(r.next_item::bigint + r.batch_items - 1, r.last_item));
	BEGIN
		v_rows := oms._job_step(r.job, r.tenant_id, r.run_day, r.next_item, v_to);
	EXCEPTION WHEN OTHERS THEN
		-- The batches before this one are committed; the run is recorded as failed, and
		-- oms._job_end raises the error once this record is committed.
		GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
		UPDATE oms.job_runs x SET status = 'failed', finished_at = clock_timestamp(), error = v_msg, error_code = v_state
		 WHERE x.id = p_run;
		RETURN false;
	END;
	UPDATE oms.job_runs x SET progress_done = x.progress_done + 1, rows_touched = x.rows_touched + v_rows, next_item = v_to + 1
	 WHERE x.id = p_run;
	RETURN v_to < r.last_item;
END
$$;
COMMENT ON FUNCTION oms._job_next(bigint) IS 'Internal (oms.run_job): runs the next batch of a run of this session and records its progress; false when nothing is left or the batch failed (recorded)';

REVOKE ALL ON FUNCTION oms._demand_history_written(), oms._history_days(int, int, int),
	oms.refresh_demand_stats(boolean), oms._replenishment_base(int, date, int, int), oms._analyze_written(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms._demand_history_written(), oms._history_days(int, int, int),
	oms.refresh_demand_stats(boolean), oms._replenishment_base(int, date, int, int), oms._analyze_written(bigint) TO oms_admin;
GRANT EXECUTE ON FUNCTION oms.refresh_demand_stats(boolean) TO oms_operator;
ALTER FUNCTION oms.refresh_demand_stats(boolean) SECURITY DEFINER;
REVOKE ALL ON oms.demand_stats FROM PUBLIC;
GRANT ALL ON oms.demand_stats TO oms_admin;
GRANT SELECT ON oms.demand_stats TO oms_operator;
ALTER TABLE oms.demand_stats ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON oms.demand_stats USING (tenant_id OPERATOR(pg_catalog.=) (SELECT oms.current_tenant_id()));
CREATE POLICY admin ON oms.demand_stats TO oms_admin USING (true) WITH CHECK (true);
SELECT pg_catalog.pg_extension_config_dump('oms.demand_stats', '');
-- The history already kept: every SKU-location with demand gets a stale row, which planning
-- reads as "sum the history" until the first refresh (the next compaction or replenishment run)
-- computes it.
INSERT INTO oms.demand_stats (tenant_id, item_id, location_id, window_end, window_days, total, sumsq)
SELECT DISTINCT h.tenant_id, h.item_id, h.location_id, NULL::date, 1, 0::bigint, 0::bigint
  FROM oms.demand_history h WHERE h.location_id IS NOT NULL;
-- ===== Citus scale-out (session 4): oms.distribute(), the tenant-explicit API forms, and the
-- statements Citus cannot run in their former shape, rewritten (same results on one node):
-- SQL-language helpers become PL/pgSQL (Citus plans no parameters of SQL functions), the order
-- line triggers read the orders apart from their transition tables on a shard, upserts take
-- EXCLUDED columns instead of now(), documents read their address before the INSERT.
CREATE OR REPLACE FUNCTION oms._events_to_announce(after bigint)
	RETURNS TABLE (tenant text, up_to bigint)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	WITH safe AS (
		SELECT pg_catalog.max(m.id) AS up_to
		  FROM oms.tenants t
		 CROSS JOIN LATERAL (
			SELECT e.id FROM oms.events e
			 WHERE e.tenant_id = t.id AND e.id > after
			   AND e.xid_horizon OPERATOR(pg_catalog.<=) pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())
			 ORDER BY e.id DESC LIMIT 1) m)
	SELECT t.code, s.up_to
	  FROM safe s, oms.tenants t
	 WHERE s.up_to IS NOT NULL
	   AND EXISTS (SELECT FROM oms.events e WHERE e.tenant_id = t.id AND e.id > after AND e.id <= s.up_to)
	 ORDER BY t.code;
END
$$;

CREATE OR REPLACE FUNCTION oms.check_stock_invariants(tenant text)
	RETURNS TABLE (sku text, location text, on_hand bigint, reserved bigint, reservations_sum bigint,
				   problem text)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant_id int;
BEGIN
	SELECT t.id INTO v_tenant_id FROM oms.tenants t WHERE t.code = check_stock_invariants.tenant;
	IF v_tenant_id IS NULL THEN
		RAISE EXCEPTION 'unknown tenant "%"', oms._clip(check_stock_invariants.tenant)
			USING ERRCODE = '22023',
			      HINT = 'Tenants are listed in oms.tenants.';
	END IF;
	RETURN QUERY
	WITH r AS (
		SELECT r.item_id, r.location_id, pg_catalog.sum(r.qty)::bigint AS qty
		  FROM oms.reservations r
		 WHERE r.tenant_id = v_tenant_id AND r.supply_id IS NULL	-- pre-orders take supply (64_preorders.sql)
		 GROUP BY r.item_id, r.location_id
	), s AS (
		-- a hot SKU's stock row also counts the free units of its slots (56_stock_slots.sql)
		SELECT s.item_id, s.location_id, s.on_hand, s.reserved, s.hot,
			   (SELECT coalesce(pg_catalog.sum(z.free), 0) FROM oms.stock_slots z
				 WHERE z.tenant_id = v_tenant_id AND z.item_id = s.item_id AND z.location_id = s.location_id)::bigint AS slot_free
		  FROM oms.stock s
		 WHERE s.tenant_id = v_tenant_id
	)
	SELECT i.sku, l.code, s.on_hand, s.reserved, coalesce(r.qty, 0), p.problem
	  FROM s FULL JOIN r ON r.item_id = s.item_id AND r.location_id = s.location_id
	  JOIN oms.items i ON i.tenant_id = v_tenant_id AND i.id = coalesce(s.item_id, r.item_id)
	  JOIN oms.locations l ON l.tenant_id = v_tenant_id AND l.id = coalesce(s.location_id, r.location_id)
	 CROSS JOIN LATERAL (VALUES
		(CASE WHEN s.item_id IS NULL THEN 'reservations without a stock row' END),
		(CASE WHEN s.reserved <> coalesce(r.qty, 0) + s.slot_free THEN 'reserved differs from the sum of reservations' END),
		(CASE WHEN s.slot_free > 0 AND NOT s.hot THEN 'stock slots hold units of a SKU that is not hot' END),
		(CASE WHEN s.reserved > s.on_hand THEN 'reserved exceeds on_hand' END),
		(CASE WHEN s.reserved < 0 THEN 'reserved is negative' END)) AS p(problem)
	 WHERE p.problem IS NOT NULL
	UNION ALL
	-- Supply: promised equals the sum of its pre-order reservations, within [0, qty].
	SELECT i.sku, l.code, u.qty, u.promised, coalesce(x.qty, 0), p.problem
	  FROM oms.supply u
	  JOIN oms.items i ON i.tenant_id = u.tenant_id AND i.id = u.item_id
	  JOIN oms.locations l ON l.tenant_id = u.tenant_id AND l.id = u.location_id
	  LEFT JOIN (SELECT r.supply_id, pg_catalog.sum(r.qty)::bigint AS qty FROM oms.reservations r
				  WHERE r.tenant_id = v_tenant_id AND r.supply_id IS NOT NULL GROUP BY r.supply_id) x
			 ON x.supply_id = u.id
	 CROSS JOIN LATERAL (VALUES
		(CASE WHEN u.promised <> coalesce(x.qty, 0) THEN format('promised of supply %s differs from the sum of its pre-orders', u.id) END),
		(CASE WHEN u.promised > u.qty OR u.promised < 0 THEN format('promised of supply %s outside 0 to qty', u.id) END)) AS p(problem)
	 WHERE u.tenant_id = v_tenant_id AND p.problem IS NOT NULL
	 ORDER BY 1, 2, 6;
END
$$;

CREATE OR REPLACE FUNCTION oms.adjust_stock(sku text, location text, delta bigint, reason text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int := oms._item_id(v_tenant, sku);
	v_loc		int := oms._location_id(v_tenant, location);
	v_new		bigint;
	v_old		bigint;
	v_reserved	bigint;
BEGIN
	PERFORM oms._check_reason(reason);
	IF delta IS NULL OR delta = 0 OR delta NOT BETWEEN -1000000000000 AND 1000000000000 THEN	-- (abs(-2^63) overflows)
		RAISE EXCEPTION 'invalid delta % for SKU "%" at location "%"', coalesce(delta::text, 'NULL'), sku, location
			USING ERRCODE = '22023', HINT = 'delta is the signed change of on hand, not 0 and at most 10^12 either way: +5 for found units, -2 for damaged ones.';
	END IF;

	-- One statement checks and changes, so concurrent adjustments and reservations cannot race.
	UPDATE oms.stock s SET on_hand = s.on_hand + delta, updated_at = pg_catalog.now()
		WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc
		  AND s.on_hand + delta >= s.reserved
		RETURNING s.on_hand INTO v_new;
	IF v_new IS NULL AND delta < 0 THEN
		-- A hot SKU's slots may hold the units: back to the stock row (locked first, as every
		-- path locks it before its slots), then once more.
		PERFORM FROM oms.stock s
		  WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc AND s.hot
		  FOR UPDATE;
		IF FOUND AND oms._unslot(v_tenant, v_item, v_loc) > 0 THEN
			UPDATE oms.stock s SET on_hand = s.on_hand + delta, updated_at = pg_catalog.now()
				WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc
				  AND s.on_hand + delta >= s.reserved
				RETURNING s.on_hand INTO v_new;
		END IF;
	END IF;
	IF v_new IS NULL THEN
		SELECT s.on_hand, s.reserved INTO v_old, v_reserved
			FROM oms.stock s
			WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc;
		IF v_old IS NULL AND delta > 0 THEN
			INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, on_hand)
				VALUES (v_tenant, v_item, v_loc, delta)
				ON CONFLICT (tenant_id, item_id, location_id)
				DO UPDATE SET on_hand = s.on_hand + EXCLUDED.on_hand, updated_at = EXCLUDED.updated_at
				RETURNING s.on_hand INTO v_new;
		ELSE
			RAISE EXCEPTION 'on hand of SKU "%" at location "%" cannot go below %', sku, location,
					CASE WHEN coalesce(v_reserved, 0) > 0 THEN 'what is reserved' ELSE '0' END
				USING ERRCODE = 'OM002',
				      DETAIL = format('On hand %s, reserved %s, delta %s.', coalesce(v_old, 0), coalesce(v_reserved, 0), delta),
				      HINT = 'On hand never goes below reserved or below 0; cancel or move the orders that hold this stock first.';
		END IF;
	END IF;
	INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, moved_by)
		VALUES (v_tenant, v_item, v_loc, 'adjustment', delta, v_new, reason, oms._actor());
	RETURN v_new;
END
$$;

CREATE OR REPLACE FUNCTION oms._reserve_supply(p_tenant int, p_order bigint, p_items int[], p_line int[], p_loc int[],
									p_qty int[], p_kind text[], p_supply bigint[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no, supply_id)
		SELECT p_tenant, p_items[p_line[n]], p_loc[n], p_qty[n], p_order, p_line[n], p_supply[n]
		  FROM generate_subscripts(p_line, 1) n
		 WHERE p_kind[n] = 'preorder'
		 ORDER BY p_items[p_line[n]], p_loc[n], p_supply[n];
END
$$;

CREATE OR REPLACE FUNCTION oms._choose_locations(
	p_tenant	int,
	p_items		int[],
	p_qtys		int[],
	p_prefer	int[],		-- per line: preferred location (a hold's), or NULL
	p_credit	bigint[],	-- per line: units already held at the preferred location
	p_only		int			-- a pickup store: choose only it, or nothing
) RETURNS TABLE (idx int, location_id int)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT DISTINCT ON (l.idx) l.idx::int, s.location_id
	  FROM unnest(p_items, p_qtys, p_prefer, p_credit) WITH ORDINALITY AS l(item_id, qty, prefer, credit, idx)
	  JOIN oms.stock s ON s.tenant_id = p_tenant AND s.item_id = l.item_id
	  JOIN oms.locations loc ON loc.tenant_id = p_tenant AND loc.id = s.location_id
	 WHERE loc.active
	   AND (CASE WHEN p_only IS NOT NULL THEN loc.id = p_only ELSE loc.can_ship END)
	   AND s.on_hand - s.reserved - s.safety_stock
	       + (CASE WHEN s.location_id = l.prefer THEN coalesce(l.credit, 0) ELSE 0 END)
	       + (CASE WHEN s.hot THEN (SELECT coalesce(pg_catalog.sum(z.free), 0) FROM oms.stock_slots z
									 WHERE z.tenant_id = p_tenant AND z.item_id = s.item_id
									   AND z.location_id = s.location_id) ELSE 0 END) >= l.qty
	 ORDER BY l.idx, (s.location_id = l.prefer) IS TRUE DESC, loc.priority, loc.code;
END
$$;

CREATE OR REPLACE FUNCTION oms._take_capacity(p_tenant int, p_loc int[], p_day date[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r		record;
	v_used	int;
	v_cap	int;
BEGIN
	FOR r IN SELECT DISTINCT p_loc[n] AS location_id, p_day[n] AS day
			   FROM generate_subscripts(p_loc, 1) n
			  WHERE p_day[n] IS NOT NULL
			  ORDER BY 1, 2
	LOOP
		v_used := NULL;
		-- The capacity is read first (on Citus an upsert cannot hold a query of another table).
		SELECT l.daily_capacity INTO v_cap FROM oms.locations l
		 WHERE l.tenant_id = p_tenant AND l.id = r.location_id;
		IF v_cap > 0 THEN
			INSERT INTO oms.location_capacity_used AS u (tenant_id, location_id, day, used)
				VALUES (p_tenant, r.location_id, r.day, 1)
				ON CONFLICT (tenant_id, location_id, day) DO UPDATE SET used = u.used + 1
				 WHERE u.used < v_cap
				RETURNING u.used INTO v_used;
		END IF;
		IF v_used IS NULL THEN
			RAISE EXCEPTION 'location "%" has no capacity left for %',
					(SELECT l.code FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = r.location_id), r.day
				USING ERRCODE = 'OM030',
				      DETAIL = format('Its daily_capacity is %s orders.',
									  (SELECT l.daily_capacity FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = r.location_id)),
				      HINT = 'Route again: oms.route() skips locations whose capacity for the day is taken.';
		END IF;
	END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION oms.place_order("order" jsonb) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	p				jsonb := $1;
	v_tenant		int := oms.current_tenant_id();
	v_channel_id	int;
	v_channel_cur	text;
	v_channel_on	boolean;
	v_ext			text;
	v_currency		text;
	v_minor			int;
	v_customer		jsonb;
	v_ship_to		jsonb;
	v_country		text;
	v_lat			double precision;
	v_lon			double precision;
	v_pickup		int;
	v_cart			text;
	v_shipping		numeric := 0;
	v_attributes	jsonb := '{}';
	v_lines			jsonb;
	v_bad			record;
	v_skus			text[];
	v_qtys			int[];
	v_prices		numeric[];
	v_items			int[];
	v_backorder		boolean[];
	v_prefer		int[];
	v_credit		bigint[];
	v_locs			int[];
	v_promised		date[];
	v_profile		text;
	v_channel_profile text;
	v_a_line		int[];
	v_a_loc			int[];
	v_a_qty			int[];
	v_a_kind		text[];
	v_a_eta			date[];
	v_a_capday		date[];
	v_a_reason		text[];
	v_a_supply		bigint[];
	v_states		oms.line_state[];
	v_state			oms.order_state;
	v_order_id		bigint;
	v_subtotal		numeric;
	v_attempt		int := 0;
	v_sku			text;
	v_i				int;
	v_placed_at		timestamptz;
	v_tax_mode		text;
	v_tax_country	text;
	v_tax_day		date;
	v_classes		text[];
	v_rates			numeric[];
	v_net			numeric[];
	v_tax			numeric[];
	v_gross			numeric[];
	v_amount		numeric;
	v_ship_rate		numeric;
	v_ship_net		numeric;
	v_ship_gross	numeric;
	v_total			numeric;
	r				record;
BEGIN
	-- 1. The fields that identify the order, then idempotency: a retry returns the first result.
	IF p IS NULL OR jsonb_typeof(p) <> 'object' THEN
		PERFORM oms._payload_error('order', 'must be a JSON object', p,
			'See the README for the shape: {"channel": "web", "external_id": "W-1", "lines": [...], ...}.');
	END IF;
	PERFORM oms._check_keys(p, '', ARRAY['attributes', 'cart', 'channel', 'currency', 'customer',
										 'external_id', 'lines', 'pickup', 'placed_at', 'routing', 'ship_to',
										 'shipping_amount']);
	IF jsonb_typeof(p -> 'channel') IS DISTINCT FROM 'string' THEN
		PERFORM oms._payload_error('channel', 'must be a channel code', p -> 'channel',
			'Channels are rows of oms.channels, e.g. "web".');
	END IF;
	SELECT c.id, c.default_currency, c.active, c.routing_profile, c.tax_mode
	  INTO v_channel_id, v_channel_cur, v_channel_on, v_channel_profile, v_tax_mode
		FROM oms.channels c WHERE c.tenant_id = v_tenant AND c.code = p ->> 'channel';
	IF v_channel_id IS NULL THEN
		RAISE EXCEPTION 'unknown channel "%"', oms._clip(p ->> 'channel')
			USING ERRCODE = '22023', HINT = 'Channels are rows of oms.channels of the current tenant (setting oms.tenant).';
	END IF;
	IF jsonb_typeof(p -> 'external_id') IS DISTINCT FROM 'string' OR p ->> 'external_id' = ''
	   OR length(p ->> 'external_id') > 200 THEN
		PERFORM oms._payload_error('external_id', 'must be the channel''s order id (text of 1 to 200 characters)',
			p -> 'external_id', 'The same channel and external_id always give the same order: a retry is safe.');
	END IF;
	v_ext := p ->> 'external_id';

	SELECT o.id INTO v_order_id FROM oms.orders o
		WHERE o.tenant_id = v_tenant AND o.channel_id = v_channel_id AND o.external_id = v_ext;
	IF v_order_id IS NOT NULL THEN
		RETURN v_order_id;
	END IF;
	IF NOT v_channel_on THEN
		RAISE EXCEPTION 'channel "%" is not active', p ->> 'channel'
			USING ERRCODE = '22023', HINT = 'An inactive channel cannot place new orders; set oms.channels.active to true.';
	END IF;

	-- 2. The rest of the header.
	IF p ? 'currency' THEN
		IF jsonb_typeof(p -> 'currency') IS DISTINCT FROM 'string' THEN
			PERFORM oms._payload_error('currency', 'must be an ISO 4217 code', p -> 'currency', 'For example "EUR" or "RON".');
		END IF;
		v_currency := p ->> 'currency';
	ELSE
		v_currency := v_channel_cur;
	END IF;
	SELECT c.minor_units INTO v_minor FROM oms.currencies c WHERE c.code = v_currency;
	IF v_minor IS NULL OR v_currency !~ '^[A-Z]{3}$' THEN
		RAISE EXCEPTION 'unsupported currency code "%"', oms._clip(v_currency)
			USING ERRCODE = '22023', HINT = 'Currencies are the ISO 4217 codes in oms.currencies, e.g. "EUR".';
	END IF;

	IF p ? 'customer' THEN
		v_customer := p -> 'customer';
		IF jsonb_typeof(v_customer) <> 'object' THEN
			PERFORM oms._payload_error('customer', 'must be an object', v_customer,
				'{"ref": "C1", "email": "a@example.com", "name": "...", "phone": "..."}, every field optional.');
		END IF;
		PERFORM oms._check_keys(v_customer, 'customer.', ARRAY['email', 'name', 'phone', 'ref']);
		SELECT k INTO v_sku FROM jsonb_each(v_customer) AS f(k, v)
			WHERE jsonb_typeof(f.v) <> 'string' OR length(f.v #>> '{}') > 320 ORDER BY k LIMIT 1;
		IF v_sku IS NOT NULL THEN
			PERFORM oms._payload_error('customer.' || v_sku, 'must be text of at most 320 characters',
				v_customer -> v_sku, 'Customer fields are text.');
		END IF;
		IF v_customer ? 'email' AND v_customer ->> 'email' !~ '^[^@\s]+@[^@\s]+$' THEN
			PERFORM oms._payload_error('customer.email', 'must be an e-mail address', v_customer -> 'email',
				'For example "anna@example.com".');
		END IF;
	END IF;

	IF p ? 'ship_to' AND p ? 'pickup' THEN
		RAISE EXCEPTION 'order payload has both "ship_to" and "pickup"'
			USING ERRCODE = '22023', HINT = 'Give "ship_to" (an address) to ship, or "pickup" (a store code) for click & collect.';
	ELSIF p ? 'ship_to' THEN
		v_ship_to := p -> 'ship_to';
		IF jsonb_typeof(v_ship_to) <> 'object' THEN
			PERFORM oms._payload_error('ship_to', 'must be an address object', v_ship_to,
				'{"name": "...", "line1": "...", "city": "Milano", "postal_code": "20121", "country": "IT", "lat": 45.46, "lon": 9.19}.');
		END IF;
		PERFORM oms._check_keys(v_ship_to, 'ship_to.', ARRAY['city', 'company', 'country', 'lat', 'line1', 'line2',
															 'lon', 'name', 'phone', 'postal_code', 'region']);
		SELECT k INTO v_sku FROM jsonb_each(v_ship_to) AS f(k, v)
			WHERE k NOT IN ('lat', 'lon') AND (jsonb_typeof(f.v) <> 'string' OR length(f.v #>> '{}') > 200)
			ORDER BY k LIMIT 1;
		IF v_sku IS NOT NULL THEN
			PERFORM oms._payload_error('ship_to.' || v_sku, 'must be text of at most 200 characters',
				v_ship_to -> v_sku, 'Address fields are text; lat and lon are numbers.');
		END IF;
		IF jsonb_typeof(v_ship_to -> 'country') IS DISTINCT FROM 'string' OR v_ship_to ->> 'country' !~ '^[A-Za-z]{2}$' THEN
			PERFORM oms._payload_error('ship_to.country', 'must be an ISO 3166 country code', v_ship_to -> 'country',
				'Two letters, e.g. "IT" or "RO".');
		END IF;
		v_country := upper(v_ship_to ->> 'country');
		v_ship_to := jsonb_set(v_ship_to, '{country}', to_jsonb(v_country));
		IF (v_ship_to ? 'lat') <> (v_ship_to ? 'lon') THEN
			PERFORM oms._payload_error(CASE WHEN v_ship_to ? 'lat' THEN 'ship_to.lon' ELSE 'ship_to.lat' END,
				'is required with the other coordinate', NULL, 'Give both lat and lon, or neither.');
		END IF;
		IF v_ship_to ? 'lat' THEN
			IF jsonb_typeof(v_ship_to -> 'lat') <> 'number' OR abs((v_ship_to ->> 'lat')::numeric) > 90 THEN
				PERFORM oms._payload_error('ship_to.lat', 'must be a latitude between -90 and 90', v_ship_to -> 'lat',
					'Decimal degrees, e.g. 45.4642.');
			END IF;
			IF jsonb_typeof(v_ship_to -> 'lon') <> 'number' OR abs((v_ship_to ->> 'lon')::numeric) > 180 THEN
				PERFORM oms._payload_error('ship_to.lon', 'must be a longitude between -180 and 180', v_ship_to -> 'lon',
					'Decimal degrees, e.g. 9.19.');
			END IF;
			v_lat := round((v_ship_to ->> 'lat')::numeric, 12)::double precision;	-- (1e-400 would underflow)
			v_lon := round((v_ship_to ->> 'lon')::numeric, 12)::double precision;
		END IF;
	ELSIF p ? 'pickup' THEN
		IF jsonb_typeof(p -> 'pickup') IS DISTINCT FROM 'string' THEN
			PERFORM oms._payload_error('pickup', 'must be a store''s location code', p -> 'pickup',
				'Click & collect names the store, e.g. "STORE-MI-01".');
		END IF;
		SELECT l.id INTO v_pickup FROM oms.locations l
			WHERE l.tenant_id = v_tenant AND l.code = p ->> 'pickup';
		IF v_pickup IS NULL THEN
			RAISE EXCEPTION 'unknown location "%"', oms._clip(p ->> 'pickup')
				USING ERRCODE = '22023', HINT = 'A pickup location is a row of oms.locations with can_pickup.';
		END IF;
		IF NOT EXISTS (SELECT FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = v_pickup AND l.active AND l.can_pickup) THEN
			RAISE EXCEPTION 'location "%" does not offer pickup', p ->> 'pickup'
				USING ERRCODE = '22023', HINT = 'Choose an active location with can_pickup for click & collect.';
		END IF;
	ELSE
		RAISE EXCEPTION 'order payload has neither "ship_to" nor "pickup"'
			USING ERRCODE = '22023', HINT = 'Give "ship_to" (an address) to ship, or "pickup" (a store code) for click & collect.';
	END IF;

	IF p ? 'cart' THEN
		IF jsonb_typeof(p -> 'cart') IS DISTINCT FROM 'string' OR p ->> 'cart' = '' OR length(p ->> 'cart') > 200 THEN
			PERFORM oms._payload_error('cart', 'must be a cart id (text of 1 to 200 characters)', p -> 'cart',
				'The cart whose holds (oms.hold) this order takes over.');
		END IF;
		v_cart := p ->> 'cart';
	END IF;
	IF p ? 'shipping_amount' THEN
		IF jsonb_typeof(p -> 'shipping_amount') IS DISTINCT FROM 'number' OR (p ->> 'shipping_amount')::numeric < 0
		   OR (p ->> 'shipping_amount')::numeric >= 1e15 THEN
			PERFORM oms._payload_error('shipping_amount', 'must be an amount of 0 or more', p -> 'shipping_amount',
				'The shipping charged to the customer, in the order''s currency.');
		END IF;
		v_shipping := round((p ->> 'shipping_amount')::numeric, v_minor);
	END IF;
	IF p ? 'routing' AND (jsonb_typeof(p -> 'routing') IS DISTINCT FROM 'string' OR p ->> 'routing' = '') THEN
		PERFORM oms._payload_error('routing', 'must be a routing profile code', p -> 'routing',
			'For example "cheapest", "fastest", "greenest" or "balanced" (oms.routing_profiles); default: the channel''s.');
	END IF;
	IF p ? 'attributes' THEN
		IF jsonb_typeof(p -> 'attributes') IS DISTINCT FROM 'object' THEN
			PERFORM oms._payload_error('attributes', 'must be an object', p -> 'attributes',
				'Free key/value data kept with the order, e.g. {"gift": true}.');
		END IF;
		v_attributes := p -> 'attributes';
	END IF;

	-- 3. The lines: shape, then SKUs (one line per SKU), then items.
	v_lines := p -> 'lines';
	IF jsonb_typeof(v_lines) IS DISTINCT FROM 'array' OR jsonb_array_length(v_lines) = 0 THEN
		PERFORM oms._payload_error('lines', 'must be a non-empty array', v_lines,
			'An order has 1 to 10000 lines: [{"sku": "SKU-1", "qty": 2, "unit_price": 19.90}].');
	END IF;
	IF jsonb_array_length(v_lines) > 10000 THEN
		RAISE EXCEPTION 'order payload field "lines" has % lines, more than 10000', jsonb_array_length(v_lines)
			USING ERRCODE = '22023', HINT = 'Split the order: one order has at most 10000 lines.';
	END IF;
	SELECT * INTO v_bad FROM oms._check_lines(v_lines);
	IF v_bad.path IS NOT NULL THEN
		PERFORM oms._payload_error(v_bad.path, v_bad.problem, v_bad.value, v_bad.hint);
	END IF;
	SELECT array_agg(a.v ->> 'sku' ORDER BY a.i), array_agg((a.v -> 'qty')::numeric::int ORDER BY a.i),
		   array_agg((a.v ->> 'unit_price')::numeric ORDER BY a.i)
	  INTO v_skus, v_qtys, v_prices
	  FROM jsonb_array_elements(v_lines) WITH ORDINALITY a(v, i);
	SELECT s INTO v_sku FROM unnest(v_skus) s GROUP BY s HAVING count(*) > 1 ORDER BY s LIMIT 1;
	IF v_sku IS NOT NULL THEN
		RAISE EXCEPTION 'SKU "%" appears in more than one line', v_sku
			USING ERRCODE = '22023', HINT = 'Send one line per SKU with the total quantity.';
	END IF;
	SELECT array_agg(it.id ORDER BY u.i), array_agg(it.backorderable ORDER BY u.i),
		   min(u.i) FILTER (WHERE it.id IS NULL), min(u.i) FILTER (WHERE NOT it.active),
		   array_agg(it.tax_class ORDER BY u.i)
	  INTO v_items, v_backorder, v_i, v_attempt, v_classes
	  FROM unnest(v_skus) WITH ORDINALITY u(sku, i)
	  LEFT JOIN oms.items it ON it.tenant_id = v_tenant AND it.sku = u.sku;
	IF v_i IS NOT NULL THEN
		RAISE EXCEPTION 'unknown SKU "%" in order payload field "lines[%].sku"', v_skus[v_i], v_i - 1
			USING ERRCODE = '22023', HINT = 'Items are rows of oms.items of the current tenant (setting oms.tenant).';
	END IF;
	IF v_attempt IS NOT NULL THEN
		RAISE EXCEPTION 'item "%" in order payload field "lines[%].sku" is not active', v_skus[v_attempt], v_attempt - 1
			USING ERRCODE = '22023', HINT = 'Inactive items cannot be sold; remove the line or reactivate the item.';
	END IF;
	v_attempt := 0;
	v_subtotal := (SELECT sum(round(v_qtys[i] * v_prices[i], v_minor)) FROM generate_subscripts(v_qtys, 1) i);
	v_total := v_subtotal + v_shipping;
	v_placed_at := coalesce(oms._payload_placed_at(p -> 'placed_at'), pg_catalog.now());

	-- Tax (71_tax.sql), on a channel with a tax mode: each line's rate (its item's class, in the
	-- country of the ship-to address or of the pickup store, valid on the order's UTC day), net,
	-- tax and gross, rounded per line to the currency's minor units as oms.tax_split does; the
	-- shipping charge is taxed at the standard rate. A missing rate refuses the order (OM011).
	IF v_tax_mode <> 'none' THEN
		v_tax_day := (v_placed_at AT TIME ZONE 'UTC')::date;
		v_tax_country := coalesce((SELECT l.country FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = v_pickup),
								  v_country);
		SELECT array_agg(cr.rate ORDER BY u.i) INTO v_rates
		  FROM unnest(v_classes) WITH ORDINALITY u(tax_class, i)
		  LEFT JOIN LATERAL (SELECT tr.rate FROM oms.tax_rates tr
							  WHERE tr.tenant_id = v_tenant AND tr.country = v_tax_country
								AND tr.tax_class = u.tax_class AND tr.valid_from <= v_tax_day
							  ORDER BY tr.valid_from DESC LIMIT 1) cr ON true;
		IF v_shipping > 0 THEN
			SELECT tr.rate INTO v_ship_rate FROM oms.tax_rates tr
			 WHERE tr.tenant_id = v_tenant AND tr.country = v_tax_country AND tr.tax_class = 'standard'
			   AND tr.valid_from <= v_tax_day
			 ORDER BY tr.valid_from DESC LIMIT 1;
		END IF;
		SELECT min(x.tax_class) INTO v_sku
		  FROM (SELECT v_classes[i] AS tax_class FROM generate_subscripts(v_rates, 1) i WHERE v_rates[i] IS NULL
				UNION ALL SELECT 'standard' WHERE v_shipping > 0 AND v_ship_rate IS NULL) x;
		IF v_sku IS NOT NULL THEN
			RAISE EXCEPTION 'no tax rate for country "%" and tax class "%"', coalesce(v_tax_country, 'NULL'), v_sku
				USING ERRCODE = 'OM011',
				      DETAIL = format('The channel''s tax mode is %s; the order is dated %s.', v_tax_mode, to_char(v_tax_day, 'YYYY-MM-DD')),
				      HINT = 'Add the rate to oms.tax_rates (country, tax_class, rate, valid_from), or set the channel''s tax_mode to none.';
		END IF;
		FOR v_i IN 1 .. cardinality(v_items) LOOP
			v_amount := round(v_qtys[v_i] * v_prices[v_i], v_minor);
			IF v_tax_mode = 'excluded' THEN
				v_net[v_i] := v_amount;
				v_gross[v_i] := v_amount + round(v_amount * v_rates[v_i], v_minor);
			ELSE
				v_net[v_i] := round(v_amount / (1 + v_rates[v_i]), v_minor);
				v_gross[v_i] := v_amount;
			END IF;
			v_tax[v_i] := v_gross[v_i] - v_net[v_i];
		END LOOP;
		v_amount := round(v_shipping, v_minor);
		IF v_tax_mode = 'excluded' THEN
			v_ship_net := v_amount;
			v_ship_gross := v_amount + round(v_amount * coalesce(v_ship_rate, 0), v_minor);
		ELSE
			v_ship_net := round(v_amount / (1 + coalesce(v_ship_rate, 0)), v_minor);
			v_ship_gross := v_amount;
		END IF;
		-- subtotal: the lines' net (excluded) or gross (included), both the sum of qty x price
		v_total := (SELECT sum(g) FROM unnest(v_gross) g) + v_ship_gross;
	END IF;

	-- 4. The cart's live holds are credited at their location (locked, so that the worker does not
	--    expire them under us).
	IF v_cart IS NOT NULL THEN
		PERFORM FROM oms.reservations h WHERE h.tenant_id = v_tenant AND h.cart = v_cart FOR UPDATE;
		SELECT array_agg(h.location_id ORDER BY u.i), array_agg(h.qty::bigint ORDER BY u.i)
		  INTO v_prefer, v_credit
		  FROM unnest(v_items) WITH ORDINALITY u(item_id, i)
		  LEFT JOIN oms.reservations h ON h.tenant_id = v_tenant AND h.cart = v_cart
			   AND h.item_id = u.item_id AND h.expires_at > pg_catalog.now();
	END IF;

	-- 5. Route (oms._route, under the profile the payload names in "routing", else the channel's),
	--    insert, reserve, count capacity. A location that lost the race for its last units (OM001
	--    from the reservation trigger) or for its last order of the day (OM030) makes us route
	--    again on fresh data, up to three times: the line goes to the next best location.
	v_profile := coalesce(p ->> 'routing', v_channel_profile);
	IF NOT EXISTS (SELECT FROM oms.routing_profiles rp
					WHERE rp.code = v_profile AND (rp.tenant_id = v_tenant OR rp.tenant_id IS NULL)) THEN
		RAISE EXCEPTION 'unknown routing profile "%" in %', oms._clip(v_profile),
				CASE WHEN p ? 'routing' THEN 'order payload field "routing"'
					 ELSE format('the default of channel "%s"', oms._clip(p ->> 'channel')) END
			USING ERRCODE = '22023',
			      HINT = 'Routing profiles are rows of oms.routing_profiles: balanced, cheapest, fastest, greenest, or the tenant''s own.';
	END IF;
	LOOP
		-- One row per line and location (a split line has several).
		SELECT array_agg(rt.line_no ORDER BY rt.ord), array_agg(rt.location_id ORDER BY rt.ord),
			   array_agg(rt.qty ORDER BY rt.ord), array_agg(rt.kind ORDER BY rt.ord),
			   array_agg(rt.eta ORDER BY rt.ord), array_agg(rt.capacity_day ORDER BY rt.ord),
			   array_agg(rt.reason ORDER BY rt.ord), array_agg(rt.supply_id ORDER BY rt.ord)
		  INTO v_a_line, v_a_loc, v_a_qty, v_a_kind, v_a_eta, v_a_capday, v_a_reason, v_a_supply
		  FROM oms._route(v_tenant, v_items, v_qtys, v_prefer, v_credit::int[], NULL, NULL,
						  v_ship_to, v_pickup, v_profile) WITH ORDINALITY AS rt(line_no, item_id, location_id, qty, kind,
																			 carrier_service, eta, capacity_day,
																			 supply_id, reason, ord);
		v_i := NULL;
		SELECT min(a.n) INTO v_i FROM generate_subscripts(v_a_kind, 1) a(n) WHERE v_a_kind[a.n] = 'unservable';
		IF v_i IS NOT NULL THEN
			RAISE EXCEPTION 'insufficient stock for SKU "%"%', v_skus[v_a_line[v_i]],
					CASE WHEN v_pickup IS NOT NULL THEN format(' for pickup at "%s"', p ->> 'pickup') ELSE '' END
				USING ERRCODE = 'OM001',
				      DETAIL = format('Requested %s: %s.', v_qtys[v_a_line[v_i]], regexp_replace(v_a_reason[v_i], '^unservable: ', '')),
				      HINT = 'Lower the quantity or remove the line; oms.atp_by_location() shows where the stock is, oms.route_explain() why it cannot be used.';
		END IF;
		-- Per line: its state, its location (NULL when split over several, or backordered) and
		-- the date promised (the latest of its parts).
		SELECT array_agg(CASE WHEN x.kinds && ARRAY['ship', 'drop-ship', 'pickup', 'transfer'] THEN 'allocated'
							  WHEN x.kinds && ARRAY['preorder'] THEN 'preordered'
							  ELSE 'backordered' END::oms.line_state ORDER BY x.line_no),
			   -- a click & collect line waiting for stock waits at its store (a receipt there serves it)
			   array_agg(CASE WHEN x.nlocs = 1 AND NOT x.kinds && ARRAY['backorder'] THEN x.loc
							  WHEN x.kinds = ARRAY['backorder'] THEN v_pickup END ORDER BY x.line_no),
			   array_agg(x.eta ORDER BY x.line_no)
		  INTO v_states, v_locs, v_promised
		  FROM (SELECT v_a_line[a.n] AS line_no, array_agg(DISTINCT v_a_kind[a.n]) AS kinds,
					   count(DISTINCT v_a_loc[a.n]) AS nlocs, min(v_a_loc[a.n]) AS loc, max(v_a_eta[a.n]) AS eta
				  FROM generate_subscripts(v_a_line, 1) a(n)
				 GROUP BY v_a_line[a.n]) x;
		v_state := oms.rollup(v_states);

		IF v_order_id IS NULL THEN
			INSERT INTO oms.orders AS o (tenant_id, channel_id, external_id, state, customer_ref, customer_email,
										 customer_name, customer_phone, ship_to, ship_country, ship_postal_code,
										 ship_city, ship_lat, ship_lon, pickup_location_id, currency, subtotal,
										 shipping_amount, total, cart, attributes, placed_at, routing_profile,
										 tax_mode, tax_country, shipping_tax_rate, shipping_net, shipping_tax,
										 net_total, tax_total)
				VALUES (v_tenant, v_channel_id, v_ext, v_state, v_customer ->> 'ref', v_customer ->> 'email',
						v_customer ->> 'name', v_customer ->> 'phone', v_ship_to, v_country,
						v_ship_to ->> 'postal_code', v_ship_to ->> 'city', v_lat, v_lon, v_pickup, v_currency,
						v_subtotal, v_shipping, v_total, v_cart, v_attributes, v_placed_at, v_profile,
						v_tax_mode, CASE WHEN v_tax_mode <> 'none' THEN v_tax_country END, v_ship_rate, v_ship_net,
						v_ship_gross - v_ship_net,
						oms._array_sum(v_net) + v_ship_net,
						oms._array_sum(v_tax) + v_ship_gross - v_ship_net)
				ON CONFLICT ON CONSTRAINT orders_channel_external_id_key DO NOTHING
				RETURNING o.id INTO v_order_id;
			IF v_order_id IS NULL THEN
				-- A concurrent submission of the same order committed first: return its result.
				SELECT o.id INTO v_order_id FROM oms.orders o
					WHERE o.tenant_id = v_tenant AND o.channel_id = v_channel_id AND o.external_id = v_ext;
				RETURN v_order_id;
			END IF;
		ELSE
			UPDATE oms.orders o SET state = v_state
				WHERE o.tenant_id = v_tenant AND o.id = v_order_id AND o.state <> v_state;
		END IF;

		BEGIN
			INSERT INTO oms.order_lines (tenant_id, order_id, line_no, item_id, qty, unit_price, state, location_id,
										 promised_date, tax_rate, net, tax, gross)
				SELECT v_tenant, v_order_id, i, v_items[i], v_qtys[i], v_prices[i], v_states[i], v_locs[i], v_promised[i],
					   v_rates[i], v_net[i], v_tax[i], v_gross[i]
				  FROM generate_subscripts(v_items, 1) i;
			PERFORM oms._reserve_routed(v_tenant, v_order_id, v_cart, v_items, v_a_line, v_a_loc, v_a_qty, v_a_kind,
										v_a_supply);
			PERFORM oms._take_order_capacity(v_tenant, v_order_id, v_a_loc, v_a_capday);
			EXIT;
		EXCEPTION WHEN SQLSTATE 'OM001' OR SQLSTATE 'OM030' THEN
			v_attempt := v_attempt + 1;
			IF v_attempt >= 3 THEN
				RAISE;
			END IF;
		END;
	END LOOP;

	-- 6. What follows the capture of a new order (events): sql/parts/72_placed.sql.
	PERFORM oms._order_placed(v_tenant, v_order_id);
	RETURN v_order_id;
END
$$;

CREATE OR REPLACE FUNCTION oms._order_placed(p_tenant int, p_order bigint) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_o			record;
BEGIN
	-- The order is read first, then its events are written from it: as one statement (a CTE feeding
	-- the INSERT), Citus would send the CTE's rows to every node (README "Scale-out on Citus").
	SELECT jsonb_build_object(
				'order_id', o.id, 'order_ref', o.external_id, 'channel', c.code,
				'customer', jsonb_strip_nulls(jsonb_build_object('ref', o.customer_ref, 'name', o.customer_name,
																 'email', o.customer_email, 'phone', o.customer_phone))) AS header,
		   o.state, o.placed_at, o.currency, o.subtotal, o.shipping_amount, o.total, o.ship_to,
		   pl.code AS pickup_code, pl.name AS pickup_name, c.auto_release,
		   EXISTS (SELECT FROM oms.fraud_rules r WHERE r.tenant_id = p_tenant AND r.active) AS screen
	  INTO v_o
	  FROM oms.orders o
	  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	  LEFT JOIN oms.locations pl ON pl.tenant_id = o.tenant_id AND pl.id = o.pickup_location_id
	 WHERE o.tenant_id = p_tenant AND o.id = p_order;
	INSERT INTO oms.events (tenant_id, order_id, type, payload)
	SELECT p_tenant, p_order, ev.type, ev.payload
	  FROM (SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'sku', i.sku, 'name', i.name, 'qty', l.qty,
												'unit_price', l.unit_price, 'state', l.state::text)
							 ORDER BY l.line_no) AS lines,
				   jsonb_agg(jsonb_build_object('line_no', l.line_no, 'sku', i.sku, 'name', i.name, 'qty', l.qty,
												'promised_date', l.promised_date)
							 ORDER BY l.line_no) FILTER (WHERE l.state = 'backordered') AS backordered
			  FROM oms.order_lines l
			  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
			 WHERE l.tenant_id = p_tenant AND l.order_id = p_order) l
	 CROSS JOIN LATERAL (VALUES
			('order_received',
			 v_o.header || jsonb_build_object(
				'state', v_o.state::text, 'placed_at', v_o.placed_at, 'currency', v_o.currency, 'subtotal', v_o.subtotal,
				'shipping_amount', v_o.shipping_amount, 'total', v_o.total, 'lines', l.lines)
			 || CASE WHEN v_o.pickup_code IS NOT NULL
					 THEN jsonb_build_object('pickup', jsonb_build_object('location', v_o.pickup_code, 'name', v_o.pickup_name))
					 ELSE jsonb_build_object('ship_to', v_o.ship_to) END),
			('line_backordered',
			 CASE WHEN l.backordered IS NOT NULL THEN v_o.header || jsonb_build_object('lines', l.backordered) END)
		) ev(type, payload)
	 WHERE ev.payload IS NOT NULL;

	IF v_o.screen THEN
		PERFORM oms._screen_order(p_tenant, p_order);
	END IF;
	IF v_o.auto_release THEN
		PERFORM oms._auto_release(p_tenant, p_order);
	END IF;
END
$$;

CREATE OR REPLACE FUNCTION oms._event(p_tenant int, p_order bigint, p_type text, p_payload jsonb) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	-- Read before the INSERT, not inside it: on Citus a query of a distributed table cannot run
	-- inside another (README "Scale-out on Citus").
	v_payload	jsonb := oms._order_header(p_tenant, p_order) || coalesce(p_payload, '{}');
BEGIN
	INSERT INTO oms.events (tenant_id, order_id, type, payload)
		VALUES (p_tenant, p_order, p_type, v_payload);
END
$$;

CREATE OR REPLACE FUNCTION oms.cancel_order(order_id bigint, reason text) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_state		oms.order_state;
	v_blocking	oms.line_state;
	r			record;
BEGIN
	IF reason IS NULL OR btrim(reason) = '' THEN
		RAISE EXCEPTION 'a reason is required to cancel order %', cancel_order.order_id
			USING ERRCODE = '22023', HINT = 'Say why (e.g. ''customer request''); it is kept in oms.order_history.';
	END IF;
	SELECT o.state INTO v_state FROM oms.orders o
		WHERE o.tenant_id = v_tenant AND o.id = cancel_order.order_id
		FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown order %', coalesce(cancel_order.order_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Orders are rows of oms.orders of the current tenant (setting oms.tenant).';
	END IF;
	IF v_state = 'cancelled' THEN
		RETURN v_state;
	END IF;

	-- Goods that have left (or are staged for the customer) cannot be cancelled.
	SELECT l.state INTO v_blocking FROM oms.order_lines l
		WHERE l.tenant_id = v_tenant AND l.order_id = cancel_order.order_id
		  AND (l.qty_shipped > 0 OR l.state IN ('partially_shipped', 'shipped', 'delivered', 'partially_returned', 'returned'))
		ORDER BY l.line_no LIMIT 1;
	-- Nor can goods packed into a shipment that has not left yet: shipping it would find its
	-- reservation gone (ship it, and return it, instead).
	IF v_blocking IS NULL AND EXISTS (SELECT FROM oms.shipments s
									   WHERE s.tenant_id = v_tenant AND s.order_id = cancel_order.order_id
										 AND s.state = 'packed') THEN
		v_blocking := 'packed';
	END IF;
	IF v_blocking IS NOT NULL OR v_state IN ('partially_shipped', 'shipped', 'delivered', 'partially_returned', 'returned', 'closed') THEN
		RAISE EXCEPTION 'order % cannot be cancelled: it is %', cancel_order.order_id,
				coalesce(v_blocking::text, v_state::text)
			USING ERRCODE = '55000',
			      HINT = 'Only orders with nothing shipped can be cancelled; return what was shipped instead.';
	END IF;

	PERFORM pg_catalog.set_config('oms.reason', reason, true);
	FOR r IN SELECT x.id FROM oms.reservations x
			  WHERE x.tenant_id = v_tenant AND x.order_id = cancel_order.order_id
			  ORDER BY x.supply_id IS NOT NULL, x.item_id, x.location_id, x.supply_id
	LOOP
		DELETE FROM oms.reservations x WHERE x.tenant_id = v_tenant AND x.id = r.id;
	END LOOP;
	UPDATE oms.order_lines l SET state = 'cancelled', qty_cancelled = l.qty - l.qty_shipped
		WHERE l.tenant_id = v_tenant AND l.order_id = cancel_order.order_id AND l.state <> 'cancelled';
	UPDATE oms.orders o SET state = 'cancelled'
		WHERE o.tenant_id = v_tenant AND o.id = cancel_order.order_id;
	PERFORM pg_catalog.set_config('oms.reason', '', true);
	PERFORM oms._release_order_capacity(v_tenant, cancel_order.order_id);
	-- The payload is read first, then written: on Citus a query of a distributed table cannot run
	-- inside another.
	<<event>>
	DECLARE
		v_payload	jsonb := oms._order_header(v_tenant, cancel_order.order_id);
	BEGIN
	v_payload := v_payload
		   || jsonb_build_object('reason', cancel_order.reason,
				'lines', (SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'sku', i.sku, 'name', i.name,
															  'qty', l.qty_cancelled) ORDER BY l.line_no)
							FROM oms.order_lines l
							JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
						   WHERE l.tenant_id = v_tenant AND l.order_id = cancel_order.order_id));
	INSERT INTO oms.events (tenant_id, order_id, type, payload)
	VALUES (v_tenant, cancel_order.order_id, 'cancelled', v_payload);
	END event;
	RETURN 'cancelled'::oms.order_state;
END
$$;

CREATE OR REPLACE FUNCTION oms.payment_totals(order_id bigint)
	RETURNS TABLE (currency char(3), authorized numeric, captured numeric, refunded numeric, voided numeric,
				   capturable numeric, refundable numeric)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT o.currency, coalesce(sum(p.authorized), 0), coalesce(sum(p.captured), 0),
		   coalesce(sum(p.refunded), 0), coalesce(sum(p.voided), 0),
		   coalesce(sum(p.authorized - p.captured - p.voided), 0), coalesce(sum(p.captured - p.refunded), 0)
	  FROM oms.orders o
	  LEFT JOIN oms.payments p ON p.tenant_id = o.tenant_id AND p.order_id = o.id
	 WHERE o.tenant_id = oms.current_tenant_id() AND o.id = payment_totals.order_id
	 GROUP BY o.currency;
END
$$;

CREATE OR REPLACE FUNCTION oms._release_blockers(p_tenant int, p_order bigint,
									  OUT holds text, OUT payment_missing numeric, OUT authorized numeric)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_required	boolean;
	v_total		numeric;
BEGIN
	SELECT string_agg(h.reason, ', ' ORDER BY h.id) INTO holds FROM oms.order_holds h
		WHERE h.tenant_id = p_tenant AND h.order_id = p_order AND h.resolved_at IS NULL;
	-- What is due: the total less the cancelled units (oms.cancel_line).
	SELECT c.requires_authorization,
		   o.total - coalesce((SELECT sum(oms._units_value(l.gross, l.qty, l.unit_price, l.qty_cancelled, cur.minor_units))
								 FROM oms.order_lines l
								WHERE l.tenant_id = p_tenant AND l.order_id = p_order), 0)
	  INTO v_required, v_total
	  FROM oms.orders o
	  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	  JOIN oms.currencies cur ON cur.code = o.currency
	 WHERE o.tenant_id = p_tenant AND o.id = p_order;
	IF v_required THEN
		SELECT coalesce(sum(p.authorized - p.voided), 0) INTO authorized FROM oms.payments p
			WHERE p.tenant_id = p_tenant AND p.order_id = p_order;
		IF authorized < v_total THEN
			payment_missing := v_total - authorized;
		END IF;
	END IF;
END
$$;

CREATE OR REPLACE FUNCTION oms._packed_qty(p_tenant int, p_order bigint, p_line int, p_location int) RETURNS bigint
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT coalesce(sum(sl.qty), 0)::bigint
	  FROM oms.shipment_lines sl
	  JOIN oms.shipments s ON s.tenant_id = sl.tenant_id AND s.id = sl.shipment_id
	 WHERE sl.tenant_id = p_tenant AND sl.order_id = p_order AND sl.line_no = p_line
	   AND s.state = 'packed' AND (p_location IS NULL OR s.location_id = p_location));
END
$$;

CREATE OR REPLACE FUNCTION oms._shipment_lines_json(p_tenant int, p_shipment bigint) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT jsonb_agg(jsonb_build_object('line_no', sl.line_no, 'sku', i.sku, 'name', i.name, 'qty', sl.qty)
					 ORDER BY sl.line_no)
	  FROM oms.shipment_lines sl
	  JOIN oms.order_lines l ON l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no
	  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
	 WHERE sl.tenant_id = p_tenant AND sl.shipment_id = p_shipment);
END
$$;

CREATE OR REPLACE FUNCTION oms.ready_for_pickup(order_id bigint) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_store		record;
	v_lines		jsonb;
	v_by		timestamptz;
	v_state		oms.order_state;
BEGIN
	o := oms._lock_order(v_tenant, ready_for_pickup.order_id);
	IF o.pickup_location_id IS NULL THEN
		RAISE EXCEPTION 'order % is not a click & collect order', o.id
			USING ERRCODE = '22023', HINT = 'Only orders placed with "pickup" are staged for the customer; ship the others.';
	END IF;
	PERFORM oms._check_not_held(v_tenant, o.id, 'staged for pickup');
	SELECT l.code, l.name, l.city, l.pickup_days INTO v_store
		FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = o.pickup_location_id;

	PERFORM set_config('oms.reason', 'ready for pickup at ' || v_store.code, true);
	WITH staged AS (
		UPDATE oms.order_lines l SET state = 'ready_for_pickup'
		 WHERE l.tenant_id = v_tenant AND l.order_id = o.id AND l.state IN ('released', 'picked', 'packed')
		RETURNING l.line_no, l.item_id, l.qty - l.qty_cancelled - l.qty_shipped AS qty)
	SELECT jsonb_agg(jsonb_build_object('line_no', s.line_no, 'sku', i.sku, 'name', i.name, 'qty', s.qty) ORDER BY s.line_no)
	  INTO v_lines
	  FROM staged s JOIN oms.items i ON i.tenant_id = v_tenant AND i.id = s.item_id;
	IF v_lines IS NULL THEN
		IF o.state = 'released' AND EXISTS (SELECT FROM oms.pickups p WHERE p.tenant_id = v_tenant AND p.order_id = o.id) THEN
			RETURN o.state;		-- staged already: a retried call changes nothing
		END IF;
		RAISE EXCEPTION 'order % has no released line to stage for pickup: it is %', o.id, o.state
			USING ERRCODE = '55000', HINT = 'Release the order first (oms.release_order).';
	END IF;
	v_by := now() + make_interval(days => v_store.pickup_days);
	INSERT INTO oms.pickups AS p (tenant_id, order_id, location_id, collect_by)
		VALUES (v_tenant, o.id, o.pickup_location_id, v_by)
		ON CONFLICT ON CONSTRAINT pickups_pkey
		DO UPDATE SET ready_at = EXCLUDED.ready_at, collect_by = EXCLUDED.collect_by, uncollected_at = NULL;
	v_state := oms._rollup(v_tenant, o.id);
	PERFORM oms._event(v_tenant, o.id, 'ready_for_pickup',
		jsonb_build_object('store', jsonb_build_object('location', v_store.code, 'name', v_store.name, 'city', v_store.city),
						   'collect_by', v_by, 'lines', v_lines));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;

CREATE OR REPLACE FUNCTION oms._demand_lines_inserted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_rows		oms.demand_deltas[];
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		INSERT INTO oms.demand_deltas (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
		SELECT n.tenant_id, n.item_id, n.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
			   pg_catalog.sum(n.qty), pg_catalog.sum(n.qty_cancelled), pg_catalog.sum(n.qty_returned), pg_catalog.count(*)
		  FROM new_lines n
		  JOIN oms.orders o ON o.tenant_id = n.tenant_id AND o.id = n.order_id
		 GROUP BY n.tenant_id, n.item_id, n.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus"): Citus cannot join a transition
	-- table with a distributed table, so the orders are read first, per tenant, and the rows
	-- are written from an array.
	FOR v_tenant IN SELECT DISTINCT x.tenant_id FROM (SELECT t.tenant_id FROM new_lines t) x LOOP
		v_ids := ARRAY(SELECT t.order_id FROM new_lines t WHERE t.tenant_id = v_tenant);
		SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o
		 WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
		SELECT pg_catalog.array_agg(ROW(r.*)::oms.demand_deltas) INTO v_rows FROM (
			SELECT n.tenant_id, n.item_id, n.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
				   pg_catalog.sum(n.qty), pg_catalog.sum(n.qty_cancelled), pg_catalog.sum(n.qty_returned), pg_catalog.count(*)
			  FROM new_lines n
			  JOIN pg_catalog.unnest(v_orders) o ON o.tenant_id = n.tenant_id AND o.id = n.order_id
			 WHERE n.tenant_id = v_tenant
			 GROUP BY n.tenant_id, n.item_id, n.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date) r;
		INSERT INTO oms.demand_deltas SELECT * FROM pg_catalog.unnest(v_rows);
	END LOOP;
	RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION oms._demand_lines_updated() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_rows		oms.demand_deltas[];
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		INSERT INTO oms.demand_deltas (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
		SELECT c.tenant_id, c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
			   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_returned), pg_catalog.sum(c.lines)
		  FROM (SELECT n.tenant_id, n.order_id, n.item_id, n.location_id, n.qty::bigint AS qty,
					   n.qty_cancelled::bigint AS qty_cancelled, n.qty_returned::bigint AS qty_returned, 1::bigint AS lines
				  FROM new_lines n
				UNION ALL
				SELECT d.tenant_id, d.order_id, d.item_id, d.location_id, -d.qty, -d.qty_cancelled, -d.qty_returned, -1
				  FROM old_lines d) c
		  JOIN oms.orders o ON o.tenant_id = c.tenant_id AND o.id = c.order_id
		 GROUP BY c.tenant_id, c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date
		HAVING pg_catalog.sum(c.qty) <> 0 OR pg_catalog.sum(c.qty_cancelled) <> 0
			OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.lines) <> 0;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus"): Citus cannot join a transition
	-- table with a distributed table, so the orders are read first, per tenant, and the rows
	-- are written from an array.
	FOR v_tenant IN SELECT DISTINCT x.tenant_id FROM (SELECT t.tenant_id FROM new_lines t UNION ALL SELECT t.tenant_id FROM old_lines t) x LOOP
		v_ids := ARRAY(SELECT t.order_id FROM new_lines t WHERE t.tenant_id = v_tenant UNION SELECT t.order_id FROM old_lines t WHERE t.tenant_id = v_tenant);
		SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o
		 WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
		SELECT pg_catalog.array_agg(ROW(r.*)::oms.demand_deltas) INTO v_rows FROM (
			SELECT c.tenant_id, c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
				   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_returned), pg_catalog.sum(c.lines)
			  FROM (SELECT n.tenant_id, n.order_id, n.item_id, n.location_id, n.qty::bigint AS qty,
						   n.qty_cancelled::bigint AS qty_cancelled, n.qty_returned::bigint AS qty_returned, 1::bigint AS lines
					  FROM new_lines n
					UNION ALL
					SELECT d.tenant_id, d.order_id, d.item_id, d.location_id, -d.qty, -d.qty_cancelled, -d.qty_returned, -1
					  FROM old_lines d) c
			  JOIN pg_catalog.unnest(v_orders) o ON o.tenant_id = c.tenant_id AND o.id = c.order_id
			 WHERE c.tenant_id = v_tenant
			 GROUP BY c.tenant_id, c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date
			HAVING pg_catalog.sum(c.qty) <> 0 OR pg_catalog.sum(c.qty_cancelled) <> 0
				OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.lines) <> 0) r;
		INSERT INTO oms.demand_deltas SELECT * FROM pg_catalog.unnest(v_rows);
	END LOOP;
	RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION oms._demand_lines_deleted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_rows		oms.demand_deltas[];
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		INSERT INTO oms.demand_deltas (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
		SELECT d.tenant_id, d.item_id, d.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
			   -pg_catalog.sum(d.qty), -pg_catalog.sum(d.qty_cancelled), -pg_catalog.sum(d.qty_returned), -pg_catalog.count(*)
		  FROM old_lines d
		  JOIN oms.orders o ON o.tenant_id = d.tenant_id AND o.id = d.order_id
		 GROUP BY d.tenant_id, d.item_id, d.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus"): Citus cannot join a transition
	-- table with a distributed table, so the orders are read first, per tenant, and the rows
	-- are written from an array.
	FOR v_tenant IN SELECT DISTINCT x.tenant_id FROM (SELECT t.tenant_id FROM old_lines t) x LOOP
		v_ids := ARRAY(SELECT t.order_id FROM old_lines t WHERE t.tenant_id = v_tenant);
		SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o
		 WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
		SELECT pg_catalog.array_agg(ROW(r.*)::oms.demand_deltas) INTO v_rows FROM (
			SELECT d.tenant_id, d.item_id, d.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
				   -pg_catalog.sum(d.qty), -pg_catalog.sum(d.qty_cancelled), -pg_catalog.sum(d.qty_returned), -pg_catalog.count(*)
			  FROM old_lines d
			  JOIN pg_catalog.unnest(v_orders) o ON o.tenant_id = d.tenant_id AND o.id = d.order_id
			 WHERE d.tenant_id = v_tenant
			 GROUP BY d.tenant_id, d.item_id, d.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date) r;
		INSERT INTO oms.demand_deltas SELECT * FROM pg_catalog.unnest(v_rows);
	END LOOP;
	RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION oms._effective_policy(p_tenant int, p_location int, p_item int)
	RETURNS TABLE (policy_id int, default_id int, method text, service_level numeric, lead_time_days numeric,
				   lead_time_sd numeric, review_period_days numeric, history_days int, min_qty bigint,
				   max_qty bigint, order_qty bigint, moq bigint, pack_size bigint, supplier_id int,
				   unit_cost numeric, overstock_days numeric, update_safety_stock boolean, rebalance boolean,
				   auto_send boolean)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT s.id, d.id,
		   coalesce(s.method, d.method, oms._policy_defaults() ->> 'method'),
		   coalesce(s.service_level, d.service_level, (oms._policy_defaults() ->> 'service_level')::numeric),
		   coalesce(s.lead_time_days, d.lead_time_days, (oms._policy_defaults() ->> 'lead_time_days')::numeric),
		   coalesce(s.lead_time_sd, d.lead_time_sd, (oms._policy_defaults() ->> 'lead_time_sd')::numeric),
		   coalesce(s.review_period_days, d.review_period_days, (oms._policy_defaults() ->> 'review_period_days')::numeric),
		   coalesce(s.history_days, d.history_days, (oms._policy_defaults() ->> 'history_days')::int),
		   coalesce(s.min_qty, d.min_qty), coalesce(s.max_qty, d.max_qty), coalesce(s.order_qty, d.order_qty),
		   coalesce(s.moq, d.moq, (oms._policy_defaults() ->> 'moq')::bigint),
		   coalesce(s.pack_size, d.pack_size, (oms._policy_defaults() ->> 'pack_size')::bigint),
		   coalesce(s.supplier_id, d.supplier_id), coalesce(s.unit_cost, d.unit_cost),
		   coalesce(s.overstock_days, d.overstock_days),
		   coalesce(s.update_safety_stock, d.update_safety_stock, (oms._policy_defaults() ->> 'update_safety_stock')::boolean),
		   coalesce(s.rebalance, d.rebalance, (oms._policy_defaults() ->> 'rebalance')::boolean),
		   coalesce(s.auto_send, d.auto_send, (oms._policy_defaults() ->> 'auto_send')::boolean)
	  FROM (SELECT 1) one
	  LEFT JOIN oms.replenishment_policies s
		ON s.tenant_id = p_tenant AND s.location_id = p_location AND s.item_id = p_item
	  LEFT JOIN oms.replenishment_policies d
		ON d.tenant_id = p_tenant AND d.location_id = p_location AND d.item_id IS NULL
	 WHERE s.id IS NOT NULL OR d.id IS NOT NULL;
END
$$;

CREATE OR REPLACE FUNCTION oms._lock_waiting_orders(p_tenant int, p_items int[], p_location int) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	PERFORM pg_catalog.count(*) FROM (
		SELECT o.id FROM oms.orders o
		 WHERE o.tenant_id = p_tenant
		   AND o.id IN (SELECT l.order_id FROM oms.order_lines l
						 WHERE l.tenant_id = p_tenant AND l.item_id = ANY (p_items)
						   AND l.state IN ('backordered', 'preordered')
						   AND (l.location_id = p_location OR l.location_id IS NULL))
		 ORDER BY o.id
		 FOR UPDATE) x;
END
$$;

CREATE OR REPLACE FUNCTION oms._receive_stock(p_tenant int, p_item int, p_location int, p_qty bigint, p_kind text,
								   p_reason text, p_reference text,
								   OUT on_hand bigint, OUT lines_allocated int, OUT units_allocated bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, on_hand)
		VALUES (p_tenant, p_item, p_location, p_qty)
		ON CONFLICT (tenant_id, item_id, location_id)
		DO UPDATE SET on_hand = s.on_hand + EXCLUDED.on_hand, updated_at = EXCLUDED.updated_at
		RETURNING s.on_hand INTO on_hand;
	INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, reference, moved_by)
		VALUES (p_tenant, p_item, p_location, p_kind, p_qty, on_hand, p_reason, p_reference, oms._actor());
	SELECT pg_catalog.count(*), coalesce(pg_catalog.sum(a.qty), 0) INTO lines_allocated, units_allocated
	  FROM oms._allocate_backorders(p_tenant, p_item, p_location) a;
END
$$;

CREATE OR REPLACE FUNCTION oms._run_replenishment(p_tenant int, p_today date, p_item_from int DEFAULT NULL, p_item_to int DEFAULT NULL)
	RETURNS TABLE (kind text, id bigint, supplier_id int, from_location_id int, location_id int, lines int, units bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
	SET jit = off
AS $$
#variable_conflict use_column
DECLARE
	r		record;
	v_id	bigint;
BEGIN
	CREATE TEMP TABLE pg_temp.oms_proposals ON COMMIT DROP AS
		SELECT * FROM oms._replenishment_proposals(p_tenant, p_today, p_item_from, p_item_to);

	FOR r IN SELECT p.from_location_id, p.location_id, array_agg(p.item_id ORDER BY p.item_id) AS items,
					array_agg(p.proposed_qty ORDER BY p.item_id) AS qtys, max(p.expected_date) AS expected
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'transfer'
			  GROUP BY p.from_location_id, p.location_id ORDER BY p.from_location_id, p.location_id LOOP
		BEGIN
			v_id := oms._new_transfer(p_tenant, r.from_location_id, r.location_id, r.expected, 'replenishment', r.items, r.qtys);
			kind := 'transfer'; id := v_id; supplier_id := NULL; from_location_id := r.from_location_id;
			location_id := r.location_id; lines := cardinality(r.items);
			units := (SELECT sum(q) FROM unnest(r.qtys) q);
			RETURN NEXT;
		EXCEPTION WHEN SQLSTATE 'OM002' THEN
			-- An order took the surplus since the plan was made: the next run buys instead.
			RAISE NOTICE 'transfer from location % to % skipped: %', r.from_location_id, r.location_id, SQLERRM;
		END;
	END LOOP;

	FOR r IN SELECT p.supplier_id, p.location_id, p.auto_send, array_agg(p.item_id ORDER BY p.item_id) AS items,
					array_agg(p.proposed_qty ORDER BY p.item_id) AS qtys, array_agg(p.unit_cost ORDER BY p.item_id) AS costs,
					array_agg(p.expected_date ORDER BY p.item_id) AS dates
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'purchase' AND p.supplier_id IS NOT NULL
			  GROUP BY p.supplier_id, p.location_id, p.auto_send ORDER BY p.supplier_id, p.location_id, p.auto_send LOOP
		v_id := oms._new_purchase_order(p_tenant, r.supplier_id, r.location_id,
										CASE WHEN r.auto_send THEN 'sent' ELSE 'draft' END, 'replenishment',
										r.items, r.qtys, r.costs, r.dates);
		kind := 'purchase_order'; id := v_id; supplier_id := r.supplier_id; from_location_id := NULL;
		location_id := r.location_id; lines := cardinality(r.items);
		units := (SELECT sum(q) FROM unnest(r.qtys) q);
		RETURN NEXT;
	END LOOP;

	FOR r IN SELECT p.item_id, p.location_id, p.proposed_qty AS safety_stock
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'safety_stock'
			  ORDER BY p.item_id, p.location_id LOOP
		INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, safety_stock)
			VALUES (p_tenant, r.item_id, r.location_id, r.safety_stock)
			ON CONFLICT (tenant_id, item_id, location_id)
			DO UPDATE SET safety_stock = EXCLUDED.safety_stock, updated_at = EXCLUDED.updated_at;
		kind := 'safety_stock'; id := NULL; supplier_id := NULL; from_location_id := NULL;
		location_id := r.location_id; lines := 1; units := r.safety_stock;
		RETURN NEXT;
	END LOOP;
	DROP TABLE pg_temp.oms_proposals;
END
$$;

CREATE OR REPLACE FUNCTION oms._alert_conditions(p_tenant int, p_today date)
	RETURNS TABLE (kind text, severity text, subject text, item_id int, location_id int, purchase_order_id bigint,
				   order_id bigint, message text, details jsonb)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	WITH c AS (
		SELECT c.*, c.on_hand - c.reserved - c.current_safety_stock AS available,
			   CASE WHEN c.method = 'min_max' THEN c.min_qty ELSE c.reorder_point END AS low_level,
			   i.sku
		  FROM oms._replenishment_candidates(p_tenant, p_today) c
		  JOIN oms.items i ON i.tenant_id = p_tenant AND i.id = c.item_id
	)
	SELECT CASE WHEN c.available <= 0 THEN 'stock_out' ELSE 'low_stock' END,
		   CASE WHEN c.available <= 0 THEN 'critical' ELSE 'warning' END,
		   c.sku || '@' || c.location_code, c.item_id, c.location_id, NULL::bigint, NULL::bigint,
		   CASE WHEN c.available <= 0
				THEN pg_catalog.format('SKU "%s" is out of stock at %s', c.sku, c.location_code)
				ELSE pg_catalog.format('SKU "%s" at %s: %s available, at or below %s %s', c.sku, c.location_code,
									   c.available, CASE WHEN c.method = 'min_max' THEN 'min' ELSE 'reorder point' END, c.low_level) END,
		   pg_catalog.jsonb_build_object('on_hand', c.on_hand, 'reserved', c.reserved, 'safety_stock', c.current_safety_stock,
										 'available', c.available, 'on_order', c.on_order, 'level', c.low_level)
	  FROM c
	 WHERE c.available <= 0 OR c.available <= c.low_level
	UNION ALL
	SELECT 'overstock', 'info', c.sku || '@' || c.location_code, c.item_id, c.location_id, NULL, NULL,
		   pg_catalog.format('SKU "%s" at %s: %s on hand, above %s', c.sku, c.location_code, c.on_hand,
							 CASE WHEN c.method = 'min_max' AND c.on_hand > c.max_qty THEN 'max ' || c.max_qty
								  ELSE pg_catalog.round(c.overstock_days) || ' days of demand ('
									   || pg_catalog.round((c.overstock_days::double precision * c.demand_mean)::numeric, 1) || ')' END),
		   pg_catalog.jsonb_build_object('on_hand', c.on_hand, 'max', c.max_qty, 'overstock_days', c.overstock_days,
										 'demand_per_day', pg_catalog.round(c.demand_mean::numeric, 3))
	  FROM c
	 WHERE (c.method = 'min_max' AND c.on_hand > c.max_qty)
		OR (c.overstock_days IS NOT NULL AND c.demand_mean > 0 AND c.on_hand > c.overstock_days::double precision * c.demand_mean)
	UNION ALL
	SELECT 'late_purchase_order', 'warning', 'PO-' || po.id, NULL, po.location_id, po.id, NULL,
		   pg_catalog.format('purchase order %s from %s is late: %s units expected by %s have not arrived', po.id, s.code,
							 pg_catalog.sum(l.qty - l.qty_received - l.qty_cancelled), pg_catalog.min(l.expected_date)),
		   pg_catalog.jsonb_build_object('supplier', s.code, 'expected_date', pg_catalog.min(l.expected_date),
										 'units_late', pg_catalog.sum(l.qty - l.qty_received - l.qty_cancelled),
										 'days_late', p_today - pg_catalog.min(l.expected_date))
	  FROM oms.purchase_orders po
	  JOIN oms.purchase_order_lines l ON l.tenant_id = po.tenant_id AND l.po_id = po.id
	  JOIN oms.suppliers s ON s.tenant_id = po.tenant_id AND s.id = po.supplier_id
	 WHERE po.tenant_id = p_tenant AND po.state IN ('draft', 'sent', 'partially_received')
	   AND l.expected_date < p_today AND l.qty_received + l.qty_cancelled < l.qty
	 GROUP BY po.id, po.location_id, s.code
	UNION ALL
	SELECT 'late_shipment', 'warning', o.external_id || ' (' || o.id || ')', NULL, NULL, NULL, o.id,
		   pg_catalog.format('order %s has %s line(s) not shipped by their promised date %s', o.external_id,
							 pg_catalog.count(*), pg_catalog.min(l.promised_date)),
		   pg_catalog.jsonb_build_object('promised_date', pg_catalog.min(l.promised_date), 'lines', pg_catalog.count(*))
	  FROM oms.order_lines l
	  JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
	 WHERE l.tenant_id = p_tenant AND l.promised_date < p_today AND l.qty_shipped + l.qty_cancelled < l.qty
	   AND l.state IN ('allocated'::oms.line_state, 'released'::oms.line_state, 'picked'::oms.line_state,
					   'packed'::oms.line_state, 'backordered'::oms.line_state, 'preordered'::oms.line_state)
	 GROUP BY o.id, o.external_id;
END
$$;

CREATE OR REPLACE FUNCTION oms.check_alerts() RETURNS TABLE (opened bigint, still_open bigint, resolved bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
BEGIN
	-- Two checks at once would only do the same work twice; the second waits for the first.
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('oms.alerts'), v_tenant);
	RETURN QUERY
	WITH cond AS (
		SELECT * FROM oms._alert_conditions(v_tenant, oms.today())
	), upserted AS (
		INSERT INTO oms.alerts AS a (tenant_id, kind, severity, subject, item_id, location_id, purchase_order_id,
									 order_id, message, details)
		SELECT v_tenant, c.kind, c.severity, c.subject, c.item_id, c.location_id, c.purchase_order_id, c.order_id,
			   c.message, c.details
		  FROM cond c
		 ORDER BY c.kind, c.subject
		ON CONFLICT (tenant_id, kind, subject) WHERE resolved_at IS NULL
		DO UPDATE SET severity = EXCLUDED.severity, message = EXCLUDED.message, details = EXCLUDED.details,
					  checked_at = EXCLUDED.checked_at
		RETURNING (a.xmax = 0) AS inserted
	), ended AS (
		UPDATE oms.alerts a SET resolved_at = pg_catalog.now(), checked_at = pg_catalog.now()
		 WHERE a.tenant_id = v_tenant AND a.resolved_at IS NULL
		   AND NOT EXISTS (SELECT FROM cond c WHERE c.kind = a.kind AND c.subject = a.subject)
		RETURNING 1
	)
	SELECT (SELECT pg_catalog.count(*) FROM upserted u WHERE u.inserted),
		   (SELECT pg_catalog.count(*) FROM upserted u WHERE NOT u.inserted),
		   (SELECT pg_catalog.count(*) FROM ended);
END
$$;

CREATE OR REPLACE FUNCTION oms._delivered_at(p_tenant int, p_order bigint) RETURNS timestamptz
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT max(t) FROM (
		SELECT coalesce(s.delivered_at, s.shipped_at) AS t FROM oms.shipments s
		 WHERE s.tenant_id = p_tenant AND s.order_id = p_order AND s.shipped_at IS NOT NULL
		UNION ALL
		SELECT p.collected_at FROM oms.pickups p WHERE p.tenant_id = p_tenant AND p.order_id = p_order) x);
END
$$;

CREATE OR REPLACE FUNCTION oms.receive_return(rma_id bigint, lines jsonb) RETURNS numeric
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	r			oms.returns;
	o			oms.orders;
	v_minor		int;
	v_outside	boolean;
	v_req		record;
	rl			record;
	v_loc		int;
	v_on_hand	bigint;
	v_refund	numeric := 0;
	v_shipping	boolean := false;
	v_paid		numeric := 0;
	v_refundable numeric;
	v_received	jsonb := '[]';
	v_state		oms.order_state;
BEGIN
	r := oms._lock_return(v_tenant, receive_return.rma_id);
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = r.order_id;
	IF lines IS NULL THEN
		RAISE EXCEPTION 'lines received are required'
			USING ERRCODE = '22023',
			      HINT = 'For example [{"line_no": 1, "qty": 1, "disposition": "restock", "location": "WH-1"}].';
	END IF;
	PERFORM oms._check_line_list(lines, 'lines received', ARRAY['line_no', 'qty', 'disposition', 'location']);
	SELECT c.minor_units INTO v_minor FROM oms.currencies c WHERE c.code = o.currency;
	SELECT ch.refunds_outside INTO v_outside FROM oms.channels ch WHERE ch.tenant_id = v_tenant AND ch.id = o.channel_id;

	PERFORM set_config('oms.reason', 'return ' || r.id || ' received', true);
	-- Lines in item order: restocking locks stock rows in (item, location) order.
	FOR v_req IN
		SELECT (x.v -> 'line_no')::numeric::int AS line_no, (x.v -> 'qty')::numeric::int AS qty,
			   x.v -> 'disposition' AS disposition, x.v -> 'location' AS location, ol.item_id
		  FROM jsonb_array_elements(lines) WITH ORDINALITY x(v, i)
		  LEFT JOIN oms.order_lines ol ON ol.tenant_id = v_tenant AND ol.order_id = r.order_id
			   AND ol.line_no = (x.v -> 'line_no')::numeric::int
		 ORDER BY ol.item_id, x.i
	LOOP
		IF jsonb_typeof(v_req.disposition) IS DISTINCT FROM 'string'
		   OR v_req.disposition #>> '{}' NOT IN ('restock', 'damaged', 'vendor') THEN
			RAISE EXCEPTION 'invalid disposition % of line % of return %', coalesce(v_req.disposition::text, 'nothing'), v_req.line_no, r.id
				USING ERRCODE = '22023', HINT = 'Each line received is "restock" (sellable again, at "location"), "damaged" or "vendor".';
		END IF;
		SELECT x.* INTO rl FROM oms.return_lines x
			WHERE x.tenant_id = v_tenant AND x.return_id = r.id AND x.line_no = v_req.line_no FOR UPDATE;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'return % has no line %', r.id, v_req.line_no
				USING ERRCODE = '22023', HINT = 'Receive the lines the return authorised (oms.return_lines).';
		END IF;
		IF v_req.qty > rl.qty - rl.qty_received THEN
			RAISE EXCEPTION 'cannot receive % units of line % on return %', v_req.qty, v_req.line_no, r.id
				USING ERRCODE = 'OM005',
				      DETAIL = format('The return authorised %s, %s received already: at most %s can be received.',
									   rl.qty, rl.qty_received, rl.qty - rl.qty_received),
				      HINT = 'Create another return for more units.';
		END IF;

		IF v_req.disposition #>> '{}' = 'restock' THEN
			IF v_req.location IS NOT NULL THEN
				IF jsonb_typeof(v_req.location) <> 'string' THEN
					RAISE EXCEPTION 'invalid location % of line % of return %', v_req.location, v_req.line_no, r.id
						USING ERRCODE = '22023', HINT = 'A location code, e.g. "WH-1".';
				END IF;
				v_loc := oms._location_id(v_tenant, v_req.location #>> '{}');
			ELSE
				-- Where the line shipped from.
				SELECT s.location_id INTO v_loc FROM oms.shipment_lines sl
				  JOIN oms.shipments s ON s.tenant_id = sl.tenant_id AND s.id = sl.shipment_id
				 WHERE sl.tenant_id = v_tenant AND sl.order_id = r.order_id AND sl.line_no = v_req.line_no
				 ORDER BY s.id DESC LIMIT 1;
				v_loc := coalesce(v_loc, (SELECT ol.location_id FROM oms.order_lines ol
										   WHERE ol.tenant_id = v_tenant AND ol.order_id = r.order_id AND ol.line_no = v_req.line_no));
			END IF;
			INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, on_hand)
				VALUES (v_tenant, v_req.item_id, v_loc, v_req.qty)
				ON CONFLICT (tenant_id, item_id, location_id)
				DO UPDATE SET on_hand = s.on_hand + EXCLUDED.on_hand, updated_at = EXCLUDED.updated_at
				RETURNING s.on_hand INTO v_on_hand;
			INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, reference, moved_by)
				VALUES (v_tenant, v_req.item_id, v_loc, 'return', v_req.qty, v_on_hand,
						'returned: ' || r.reason, 'return ' || r.id, oms._actor());
		END IF;

		UPDATE oms.return_lines x
		   SET qty_received = x.qty_received + v_req.qty,
			   restocked = x.restocked + CASE WHEN v_req.disposition #>> '{}' = 'restock' THEN v_req.qty ELSE 0 END,
			   damaged = x.damaged + CASE WHEN v_req.disposition #>> '{}' = 'damaged' THEN v_req.qty ELSE 0 END,
			   to_vendor = x.to_vendor + CASE WHEN v_req.disposition #>> '{}' = 'vendor' THEN v_req.qty ELSE 0 END
		 WHERE x.tenant_id = v_tenant AND x.return_id = r.id AND x.line_no = v_req.line_no;
		UPDATE oms.order_lines x
		   SET qty_returned = x.qty_returned + v_req.qty,
			   state = CASE WHEN x.qty_returned + v_req.qty >= x.qty_shipped THEN 'returned' ELSE 'partially_returned' END::oms.line_state
		 WHERE x.tenant_id = v_tenant AND x.order_id = r.order_id AND x.line_no = v_req.line_no;

		-- Exchanged units are paid for by the exchange order, not refunded.
		-- The units' share of the line's gross (its tax included on a channel with net prices).
		v_refund := v_refund + (SELECT oms._units_value(ol.gross, ol.qty, ol.unit_price,
														greatest(v_req.qty - greatest(rl.qty_exchanged - rl.qty_received, 0), 0), v_minor)
								  FROM oms.order_lines ol
								 WHERE ol.tenant_id = v_tenant AND ol.order_id = r.order_id AND ol.line_no = v_req.line_no);
		v_received := v_received || jsonb_build_object('line_no', v_req.line_no, 'qty', v_req.qty,
													   'disposition', v_req.disposition #>> '{}');
	END LOOP;

	-- Shipping comes back once, with the last units of the order.
	IF o.shipping_amount > 0
	   AND NOT EXISTS (SELECT FROM oms.returns x WHERE x.tenant_id = v_tenant AND x.order_id = o.id
						 AND (x.shipping_refunded OR x.exchange_order_id IS NOT NULL))
	   AND NOT EXISTS (SELECT FROM oms.order_lines ol WHERE ol.tenant_id = v_tenant AND ol.order_id = o.id
						 AND ol.qty_returned + ol.qty_cancelled < ol.qty) THEN
		v_refund := v_refund + coalesce(o.shipping_net + o.shipping_tax, o.shipping_amount);
		v_shipping := true;
	END IF;

	IF v_refund > 0 AND NOT v_outside THEN
		SELECT coalesce(sum(p.captured - p.refunded), 0) INTO v_refundable FROM oms.payments p
			WHERE p.tenant_id = v_tenant AND p.order_id = o.id;
		v_paid := least(v_refund, v_refundable);
		IF v_paid > 0 THEN
			PERFORM oms.refund_payment(o.id, v_paid, 'return ' || r.id);
		END IF;
	ELSIF v_refund > 0 THEN
		-- The channel refunds outside oms: the invoiced goods still get their credit note.
		PERFORM oms._credit_refund(v_tenant, o.id, v_refund, 'return ' || r.id);
	END IF;
	UPDATE oms.returns x
	   SET refund_amount = x.refund_amount + v_refund, refunded = x.refunded + v_paid,
		   shipping_refunded = x.shipping_refunded OR v_shipping, received_at = now(),
		   state = CASE WHEN (SELECT bool_and(y.qty_received = y.qty) FROM oms.return_lines y
							   WHERE y.tenant_id = v_tenant AND y.return_id = r.id) THEN 'received' ELSE 'partially_received' END
	 WHERE x.tenant_id = v_tenant AND x.id = r.id;
	v_state := oms._rollup(v_tenant, o.id);
	PERFORM oms._event(v_tenant, o.id, 'return_received',
		jsonb_build_object('rma', r.id,
			'lines', (SELECT jsonb_agg(x.v || jsonb_build_object('sku', i.sku, 'name', i.name) ORDER BY (x.v -> 'line_no')::numeric::int)
						FROM jsonb_array_elements(v_received) x(v)
						JOIN oms.order_lines ol ON ol.tenant_id = v_tenant AND ol.order_id = o.id AND ol.line_no = (x.v -> 'line_no')::numeric::int
						JOIN oms.items i ON i.tenant_id = v_tenant AND i.id = ol.item_id),
			'refund', v_refund, 'refunded', v_paid, 'refund_due', v_refund - v_paid, 'shipping_refunded', v_shipping,
			'currency', o.currency, 'order_state', v_state::text));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_refund;
END
$$;

CREATE OR REPLACE FUNCTION oms.raise_overdue_events(batch int DEFAULT 100) RETURNS int
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_n		int := 0;
	v_header	jsonb;
	r		record;
BEGIN
	IF batch IS NULL OR batch < 1 OR batch > 10000 THEN
		RAISE EXCEPTION 'invalid batch size %', coalesce(batch::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Handle 1 to 10000 orders per call.';
	END IF;

	-- Late lines, per order (every tenant: the worker serves them all).
	FOR r IN
		SELECT l.tenant_id, l.order_id
		  FROM oms.order_lines l
		 WHERE l.promised_date IS NOT NULL AND l.qty_shipped + l.qty_cancelled < l.qty
		   AND l.promised_date < current_date
		   AND l.state NOT IN ('cancelled', 'shipped', 'delivered', 'returned', 'partially_returned')
		   AND NOT EXISTS (SELECT FROM oms.delay_notices d
							WHERE d.tenant_id = l.tenant_id AND d.order_id = l.order_id AND d.line_no = l.line_no
							  AND d.promised_date = l.promised_date)
		 GROUP BY l.tenant_id, l.order_id
		 ORDER BY l.tenant_id, l.order_id
		 LIMIT batch
	LOOP
		CONTINUE WHEN NOT EXISTS (SELECT FROM oms.orders o WHERE o.tenant_id = r.tenant_id AND o.id = r.order_id
								   AND o.state NOT IN ('cancelled', 'closed') FOR UPDATE SKIP LOCKED);
		-- The header is read first: on Citus a query of a distributed table cannot run inside another.
		v_header := oms._order_header(r.tenant_id, r.order_id);
		WITH late AS (
			INSERT INTO oms.delay_notices (tenant_id, order_id, line_no, promised_date)
			SELECT l.tenant_id, l.order_id, l.line_no, l.promised_date
			  FROM oms.order_lines l
			 WHERE l.tenant_id = r.tenant_id AND l.order_id = r.order_id
			   AND l.promised_date IS NOT NULL AND l.qty_shipped + l.qty_cancelled < l.qty
			   AND l.promised_date < current_date
			   AND l.state NOT IN ('cancelled', 'shipped', 'delivered', 'returned', 'partially_returned')
			ON CONFLICT DO NOTHING
			RETURNING line_no)
		INSERT INTO oms.events (tenant_id, order_id, type, payload)
		SELECT r.tenant_id, r.order_id, 'delayed',
			   v_header
			   || jsonb_build_object('lines', jsonb_agg(jsonb_build_object(
					'line_no', l.line_no, 'sku', i.sku, 'name', i.name, 'qty', l.qty - l.qty_cancelled - l.qty_shipped,
					'promised_date', l.promised_date, 'state', l.state::text) ORDER BY l.line_no))
		  FROM late
		  JOIN oms.order_lines l ON l.tenant_id = r.tenant_id AND l.order_id = r.order_id AND l.line_no = late.line_no
		  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
		HAVING count(*) > 0;
		v_n := v_n + 1;
	END LOOP;

	-- Pickups waiting past their date.
	FOR r IN
		SELECT p.tenant_id, p.order_id, p.ready_at, p.collect_by, l.code, l.name
		  FROM oms.pickups p
		  JOIN oms.locations l ON l.tenant_id = p.tenant_id AND l.id = p.location_id
		  JOIN oms.orders o ON o.tenant_id = p.tenant_id AND o.id = p.order_id
		 WHERE p.collected_at IS NULL AND p.uncollected_at IS NULL AND p.collect_by < now()
		   AND o.state NOT IN ('cancelled', 'closed')
		 ORDER BY p.collect_by
		 LIMIT batch
	LOOP
		CONTINUE WHEN NOT EXISTS (SELECT FROM oms.orders o WHERE o.tenant_id = r.tenant_id AND o.id = r.order_id
								   AND o.state NOT IN ('cancelled', 'closed') FOR UPDATE SKIP LOCKED);
		UPDATE oms.pickups p SET uncollected_at = now() WHERE p.tenant_id = r.tenant_id AND p.order_id = r.order_id;
		PERFORM oms._event(r.tenant_id, r.order_id, 'pickup_uncollected',
			jsonb_build_object('store', jsonb_build_object('location', r.code, 'name', r.name),
							   'ready_at', r.ready_at, 'collect_by', r.collect_by));
		v_n := v_n + 1;
	END LOOP;
	RETURN v_n;
END
$$;

CREATE OR REPLACE FUNCTION oms._documents_immutable() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_old	jsonb;
	-- the table's name, also on a shard of a Citus cluster (invoices_102550: invoices)
	v_table	text := pg_catalog.regexp_replace(TG_TABLE_NAME, '_[0-9]+$', '');
BEGIN
	IF TG_OP = 'INSERT' THEN	-- lines: only while their document is not numbered
		IF EXISTS (SELECT FROM oms.invoices i WHERE i.tenant_id = NEW.tenant_id AND i.id = NEW.invoice_id
					  AND i.number IS NOT NULL) THEN
			RAISE EXCEPTION 'document % is issued: lines cannot be added', NEW.invoice_id
				USING ERRCODE = 'OM013', HINT = 'Correct an issued invoice with a credit note.';
		END IF;
		RETURN NEW;
	END IF;
	v_old := pg_catalog.to_jsonb(OLD);
	IF v_table = 'invoices' AND TG_OP = 'UPDATE' THEN
		IF v_old ->> 'number' IS NULL AND pg_catalog.to_jsonb(NEW) ->> 'number' IS NOT NULL
		   AND (pg_catalog.to_jsonb(NEW) - 'number' - 'seq') = (v_old - 'number' - 'seq') THEN
			RETURN NEW;		-- the numbering of a document being issued
		END IF;
	END IF;
	RAISE EXCEPTION 'issued documents cannot be changed: % of % refused', TG_OP, v_table
		USING ERRCODE = 'OM013',
		      DETAIL = format('Document %s.', coalesce(v_old ->> 'number', v_old ->> 'invoice_id', v_old ->> 'id')),
		      HINT = 'An invoice is corrected by a credit note, never edited or deleted.';
END
$$;

CREATE OR REPLACE FUNCTION oms._write_document(p_tenant int, o oms.orders, p_kind text, p_credited bigint, p_reason text,
									p_lines jsonb) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	s			oms.document_settings;
	v_id		bigint;
	v_number	text;
	v_tot		record;
	v_address	jsonb := o.ship_to;
BEGIN
	SELECT * INTO s FROM oms.document_settings d WHERE d.tenant_id = p_tenant;
	IF NOT FOUND THEN
		s.seller := '{}'; s.invoice_prefix := 'INV'; s.credit_note_prefix := 'CN'; s.yearly_series := true;
	END IF;
	SELECT sum(x.net) AS net, sum(x.tax) AS tax, sum(x.gross) AS gross INTO v_tot
		FROM jsonb_to_recordset(p_lines) x(net numeric, tax numeric, gross numeric);
	-- Read before the INSERT: Citus takes no subquery in an INSERT's VALUES.
	IF o.pickup_location_id IS NOT NULL THEN
		SELECT jsonb_strip_nulls(jsonb_build_object('pickup', l.code, 'name', l.name, 'city', l.city,
													 'postal_code', l.postal_code, 'country', l.country))
		  INTO v_address
		  FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = o.pickup_location_id;
	END IF;

	INSERT INTO oms.invoices (tenant_id, kind, series, order_id, credited_invoice_id, currency, tax_mode,
							  seller, buyer, address, reason, net, tax, gross)
		VALUES (p_tenant, p_kind,
				CASE p_kind WHEN 'invoice' THEN s.invoice_prefix ELSE s.credit_note_prefix END
				|| CASE WHEN s.yearly_series THEN to_char(now() AT TIME ZONE 'UTC', '-YYYY') ELSE '' END,
				o.id, p_credited, o.currency, o.tax_mode, s.seller,
				jsonb_strip_nulls(jsonb_build_object('ref', o.customer_ref, 'name', o.customer_name, 'email', o.customer_email,
													 'phone', o.customer_phone)),
				v_address,
				p_reason, v_tot.net, v_tot.tax, v_tot.gross)
		RETURNING id INTO v_id;
	INSERT INTO oms.invoice_lines (tenant_id, invoice_id, position, line_no, sku, description, qty, unit_price,
								   net, tax_rate, tax, gross)
		SELECT p_tenant, v_id, x.i, y.line_no, y.sku, y.description, y.qty, y.unit_price, y.net, y.tax_rate, y.tax, y.gross
		  FROM jsonb_array_elements(p_lines) WITH ORDINALITY x(v, i)
		 CROSS JOIN LATERAL jsonb_to_record(x.v) y(line_no int, sku text, description text, qty int, unit_price numeric,
												   net numeric, tax_rate numeric, tax numeric, gross numeric);

	v_number := oms._number_document(p_tenant, v_id);
	PERFORM oms._event(p_tenant, o.id, CASE p_kind WHEN 'invoice' THEN 'invoice_issued' ELSE 'credit_note_issued' END,
		jsonb_strip_nulls(jsonb_build_object('invoice_id', v_id, 'number', v_number, 'currency', o.currency,
			'net', v_tot.net, 'tax', v_tot.tax, 'gross', v_tot.gross,
			'credited_invoice', (SELECT i.number FROM oms.invoices i WHERE i.tenant_id = p_tenant AND i.id = p_credited),
			'reason', p_reason)));
	RETURN v_id;
END
$$;

CREATE OR REPLACE FUNCTION oms._invoiced(p_tenant int, p_order bigint)
	RETURNS TABLE (line_no int, tax_rate numeric, invoiced_qty bigint, credited_qty bigint,
				   open_gross numeric, open_tax numeric, invoiced_gross numeric, invoiced_tax numeric)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT coalesce(il.line_no, 0), il.tax_rate,
		   coalesce(sum(il.qty) FILTER (WHERE i.kind = 'invoice'), 0)::bigint,
		   coalesce(-sum(il.qty) FILTER (WHERE i.kind = 'credit_note'), 0)::bigint,
		   sum(il.gross), sum(il.tax),
		   coalesce(sum(il.gross) FILTER (WHERE i.kind = 'invoice'), 0),
		   coalesce(sum(il.tax) FILTER (WHERE i.kind = 'invoice'), 0)
	  FROM oms.invoices i
	  JOIN oms.invoice_lines il ON il.tenant_id = i.tenant_id AND il.invoice_id = i.id
	 WHERE i.tenant_id = p_tenant AND i.order_id = p_order
	 GROUP BY coalesce(il.line_no, 0), il.tax_rate;
END
$$;

CREATE OR REPLACE FUNCTION oms._issue_invoice(p_tenant int, o oms.orders, p_capture boolean) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_minor		int;
	v_lines		jsonb;
	v_no		int[];
	v_qty		bigint[];
	v_gross		numeric[];
	v_tax		numeric[];
BEGIN
	SELECT c.minor_units INTO v_minor FROM oms.currencies c WHERE c.code = o.currency;
	-- What was invoiced before, read first: on Citus a query of the tenant's tables inside
	-- another would be sent to the shard's node on a connection of its own (README "Scale-out
	-- on Citus").
	SELECT pg_catalog.array_agg(v.line_no), pg_catalog.array_agg(v.invoiced_qty),
		   pg_catalog.array_agg(v.invoiced_gross), pg_catalog.array_agg(v.invoiced_tax)
	  INTO v_no, v_qty, v_gross, v_tax
	  FROM oms._invoiced(p_tenant, o.id) v;
	-- Per line: the units to invoice now (shipped or collected; with invoicing on capture, every
	-- unit not cancelled) less those invoiced before. Amounts are cumulative shares of the line's
	-- amounts, so that the invoices of a line add up to its amounts exactly once it is all invoiced.
	WITH inv AS (SELECT * FROM unnest(v_no, v_qty, v_gross, v_tax)
						AS v(line_no, invoiced_qty, invoiced_gross, invoiced_tax)),
	l AS (
		SELECT l.line_no, i.sku, i.name, l.qty, l.unit_price, l.tax_rate,
			   coalesce(l.gross, round(l.qty * l.unit_price, v_minor)) AS gross, coalesce(l.tax, 0) AS tax,
			   CASE WHEN p_capture THEN l.qty - l.qty_cancelled ELSE l.qty_shipped END AS due,
			   coalesce((SELECT sum(v.invoiced_qty) FROM inv v WHERE v.line_no = l.line_no), 0) AS done,
			   coalesce((SELECT sum(v.invoiced_gross) FROM inv v WHERE v.line_no = l.line_no), 0) AS done_gross,
			   coalesce((SELECT sum(v.invoiced_tax) FROM inv v WHERE v.line_no = l.line_no), 0) AS done_tax
		  FROM oms.order_lines l
		  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
		 WHERE l.tenant_id = p_tenant AND l.order_id = o.id),
	now_lines AS (
		SELECT l.line_no, l.sku, l.name, l.due - l.done AS q, l.unit_price, l.tax_rate,
			   round(l.gross * l.due / l.qty, v_minor) - l.done_gross AS gross,
			   round(l.tax * l.due / l.qty, v_minor) - l.done_tax AS tax
		  FROM l WHERE l.due > l.done),
	ship AS (
		SELECT 0 AS line_no, NULL::text AS sku, 'Shipping' AS name, 1 AS q, o.shipping_amount AS unit_price,
			   o.shipping_tax_rate AS tax_rate, coalesce(o.shipping_net + o.shipping_tax, o.shipping_amount) AS gross,
			   coalesce(o.shipping_tax, 0) AS tax
		 WHERE o.shipping_amount > 0 AND EXISTS (SELECT FROM now_lines)
		   AND NOT EXISTS (SELECT FROM inv v WHERE v.line_no = 0 AND v.invoiced_qty > 0))
	SELECT jsonb_agg(jsonb_build_object('line_no', nullif(x.line_no, 0), 'sku', x.sku, 'description', x.name, 'qty', x.q,
										'unit_price', x.unit_price, 'net', x.gross - x.tax, 'tax_rate', x.tax_rate,
										'tax', x.tax, 'gross', x.gross)
					 ORDER BY x.line_no = 0, x.line_no)
	  INTO v_lines
	  FROM (SELECT * FROM now_lines UNION ALL SELECT * FROM ship) x;

	IF v_lines IS NULL THEN
		RETURN NULL;
	END IF;
	RETURN oms._write_document(p_tenant, o, 'invoice', NULL, NULL, v_lines);
END
$$;

CREATE OR REPLACE FUNCTION oms._ship_to_lines(p_tenant int, o oms.orders) RETURNS text[]
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN CASE WHEN o.pickup_location_id IS NOT NULL
				THEN (SELECT array_remove(ARRAY[coalesce(o.customer_name, o.customer_ref), 'c/o ' || l.name,
												nullif(concat_ws(' ', l.postal_code, l.city), ''), l.country], NULL)
						FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = o.pickup_location_id)
				ELSE CASE WHEN o.ship_to ? 'name' THEN '{}'::text[] ELSE array_remove(ARRAY[o.customer_name], NULL) END
					 || oms._address_lines(o.ship_to) END;
END
$$;

CREATE OR REPLACE FUNCTION oms._location_lines(p_tenant int, p_location int) RETURNS text[]
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT array_remove(ARRAY[coalesce(nullif(d.seller ->> 'name', ''), l.name), l.name,
							  nullif(concat_ws(' ', l.postal_code, l.city), ''), l.country], NULL)
	  FROM oms.locations l
	  LEFT JOIN oms.document_settings d ON d.tenant_id = l.tenant_id
	 WHERE l.tenant_id = p_tenant AND l.id = p_location);
END
$$;

CREATE OR REPLACE FUNCTION oms._package_no(p_tenant int, s oms.shipments) RETURNS bigint
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT count(*) FROM oms.shipments x WHERE x.tenant_id = p_tenant AND x.order_id = s.order_id AND x.id <= s.id);
END
$$;

CREATE OR REPLACE FUNCTION oms.bi_rate(p_day date, p_currency char(3)) RETURNS numeric
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN CASE WHEN p_currency = oms.reporting_currency() THEN 1::numeric
				ELSE (SELECT r.rate FROM oms.exchange_rates r
					   WHERE r.rate_date = p_day AND r.from_currency = p_currency
						 AND r.to_currency = oms.reporting_currency()) END;
END
$$;

CREATE OR REPLACE FUNCTION oms._bi_lines_inserted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_rows		oms.bi_sales_deltas[];
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		INSERT INTO oms.bi_sales_deltas
		SELECT n.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, n.location_id, n.item_id, o.currency,
			   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
			   pg_catalog.count(*) FILTER (WHERE n.line_no = 1), pg_catalog.count(*),
			   pg_catalog.count(*) FILTER (WHERE n.state = 'backordered'),
			   pg_catalog.sum(n.qty), pg_catalog.sum(n.qty_cancelled), pg_catalog.sum(n.qty_shipped), pg_catalog.sum(n.qty_returned),
			   pg_catalog.sum(n.qty * n.unit_price), pg_catalog.sum(n.qty_cancelled * n.unit_price),
			   pg_catalog.sum(n.qty_returned * n.unit_price)
		  FROM new_lines n
		  JOIN oms.orders o ON o.tenant_id = n.tenant_id AND o.id = n.order_id
		 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus"): Citus cannot join a transition
	-- table with a distributed table, so the orders are read first, per tenant, and the rows
	-- are written from an array.
	FOR v_tenant IN SELECT DISTINCT x.tenant_id FROM (SELECT t.tenant_id FROM new_lines t) x LOOP
		v_ids := ARRAY(SELECT t.order_id FROM new_lines t WHERE t.tenant_id = v_tenant);
		SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o
		 WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
		SELECT pg_catalog.array_agg(ROW(r.*)::oms.bi_sales_deltas) INTO v_rows FROM (
			SELECT n.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, n.location_id, n.item_id, o.currency,
				   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
				   pg_catalog.count(*) FILTER (WHERE n.line_no = 1), pg_catalog.count(*),
				   pg_catalog.count(*) FILTER (WHERE n.state = 'backordered'),
				   pg_catalog.sum(n.qty), pg_catalog.sum(n.qty_cancelled), pg_catalog.sum(n.qty_shipped), pg_catalog.sum(n.qty_returned),
				   pg_catalog.sum(n.qty * n.unit_price), pg_catalog.sum(n.qty_cancelled * n.unit_price),
				   pg_catalog.sum(n.qty_returned * n.unit_price)
			  FROM new_lines n
			  JOIN pg_catalog.unnest(v_orders) o ON o.tenant_id = n.tenant_id AND o.id = n.order_id
			 WHERE n.tenant_id = v_tenant
			 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9) r;
		INSERT INTO oms.bi_sales_deltas SELECT * FROM pg_catalog.unnest(v_rows);
	END LOOP;
	RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION oms._bi_lines_updated() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_rows		oms.bi_sales_deltas[];
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		INSERT INTO oms.bi_sales_deltas
		SELECT c.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, c.location_id, c.item_id, o.currency,
			   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
			   pg_catalog.sum(c.orders), pg_catalog.sum(c.lines), 0,
			   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_shipped), pg_catalog.sum(c.qty_returned),
			   pg_catalog.sum(c.gross), pg_catalog.sum(c.cancelled_value), pg_catalog.sum(c.returned_value)
		  FROM (SELECT n.tenant_id, n.order_id, n.item_id, n.location_id, (n.line_no = 1)::int::bigint AS orders, 1::bigint AS lines,
					   n.qty::bigint AS qty, n.qty_cancelled::bigint AS qty_cancelled, n.qty_shipped::bigint AS qty_shipped,
					   n.qty_returned::bigint AS qty_returned, n.qty * n.unit_price AS gross,
					   n.qty_cancelled * n.unit_price AS cancelled_value, n.qty_returned * n.unit_price AS returned_value
				  FROM new_lines n
				UNION ALL
				SELECT d.tenant_id, d.order_id, d.item_id, d.location_id, -(d.line_no = 1)::int::bigint, -1,
					   -d.qty, -d.qty_cancelled, -d.qty_shipped, -d.qty_returned, -(d.qty * d.unit_price),
					   -(d.qty_cancelled * d.unit_price), -(d.qty_returned * d.unit_price)
				  FROM old_lines d) c
		  JOIN oms.orders o ON o.tenant_id = c.tenant_id AND o.id = c.order_id
		 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
		HAVING pg_catalog.sum(c.orders) <> 0 OR pg_catalog.sum(c.lines) <> 0 OR pg_catalog.sum(c.qty) <> 0
			OR pg_catalog.sum(c.qty_cancelled) <> 0 OR pg_catalog.sum(c.qty_shipped) <> 0
			OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.gross) <> 0;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus"): Citus cannot join a transition
	-- table with a distributed table, so the orders are read first, per tenant, and the rows
	-- are written from an array.
	FOR v_tenant IN SELECT DISTINCT x.tenant_id FROM (SELECT t.tenant_id FROM new_lines t UNION ALL SELECT t.tenant_id FROM old_lines t) x LOOP
		v_ids := ARRAY(SELECT t.order_id FROM new_lines t WHERE t.tenant_id = v_tenant UNION SELECT t.order_id FROM old_lines t WHERE t.tenant_id = v_tenant);
		SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o
		 WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
		SELECT pg_catalog.array_agg(ROW(r.*)::oms.bi_sales_deltas) INTO v_rows FROM (
			SELECT c.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, c.location_id, c.item_id, o.currency,
				   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
				   pg_catalog.sum(c.orders), pg_catalog.sum(c.lines), 0,
				   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_shipped), pg_catalog.sum(c.qty_returned),
				   pg_catalog.sum(c.gross), pg_catalog.sum(c.cancelled_value), pg_catalog.sum(c.returned_value)
			  FROM (SELECT n.tenant_id, n.order_id, n.item_id, n.location_id, (n.line_no = 1)::int::bigint AS orders, 1::bigint AS lines,
						   n.qty::bigint AS qty, n.qty_cancelled::bigint AS qty_cancelled, n.qty_shipped::bigint AS qty_shipped,
						   n.qty_returned::bigint AS qty_returned, n.qty * n.unit_price AS gross,
						   n.qty_cancelled * n.unit_price AS cancelled_value, n.qty_returned * n.unit_price AS returned_value
					  FROM new_lines n
					UNION ALL
					SELECT d.tenant_id, d.order_id, d.item_id, d.location_id, -(d.line_no = 1)::int::bigint, -1,
						   -d.qty, -d.qty_cancelled, -d.qty_shipped, -d.qty_returned, -(d.qty * d.unit_price),
						   -(d.qty_cancelled * d.unit_price), -(d.qty_returned * d.unit_price)
					  FROM old_lines d) c
			  JOIN pg_catalog.unnest(v_orders) o ON o.tenant_id = c.tenant_id AND o.id = c.order_id
			 WHERE c.tenant_id = v_tenant
			 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
			HAVING pg_catalog.sum(c.orders) <> 0 OR pg_catalog.sum(c.lines) <> 0 OR pg_catalog.sum(c.qty) <> 0
				OR pg_catalog.sum(c.qty_cancelled) <> 0 OR pg_catalog.sum(c.qty_shipped) <> 0
				OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.gross) <> 0) r;
		INSERT INTO oms.bi_sales_deltas SELECT * FROM pg_catalog.unnest(v_rows);
	END LOOP;
	RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION oms._bi_lines_deleted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_rows		oms.bi_sales_deltas[];
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		INSERT INTO oms.bi_sales_deltas
		SELECT d.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, d.location_id, d.item_id, o.currency,
			   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
			   -pg_catalog.count(*) FILTER (WHERE d.line_no = 1), -pg_catalog.count(*), 0,
			   -pg_catalog.sum(d.qty), -pg_catalog.sum(d.qty_cancelled), -pg_catalog.sum(d.qty_shipped), -pg_catalog.sum(d.qty_returned),
			   -pg_catalog.sum(d.qty * d.unit_price), -pg_catalog.sum(d.qty_cancelled * d.unit_price),
			   -pg_catalog.sum(d.qty_returned * d.unit_price)
		  FROM old_lines d
		  JOIN oms.orders o ON o.tenant_id = d.tenant_id AND o.id = d.order_id
		 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus"): Citus cannot join a transition
	-- table with a distributed table, so the orders are read first, per tenant, and the rows
	-- are written from an array.
	FOR v_tenant IN SELECT DISTINCT x.tenant_id FROM (SELECT t.tenant_id FROM old_lines t) x LOOP
		v_ids := ARRAY(SELECT t.order_id FROM old_lines t WHERE t.tenant_id = v_tenant);
		SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o
		 WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
		SELECT pg_catalog.array_agg(ROW(r.*)::oms.bi_sales_deltas) INTO v_rows FROM (
			SELECT d.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, d.location_id, d.item_id, o.currency,
				   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
				   -pg_catalog.count(*) FILTER (WHERE d.line_no = 1), -pg_catalog.count(*), 0,
				   -pg_catalog.sum(d.qty), -pg_catalog.sum(d.qty_cancelled), -pg_catalog.sum(d.qty_shipped), -pg_catalog.sum(d.qty_returned),
				   -pg_catalog.sum(d.qty * d.unit_price), -pg_catalog.sum(d.qty_cancelled * d.unit_price),
				   -pg_catalog.sum(d.qty_returned * d.unit_price)
			  FROM old_lines d
			  JOIN pg_catalog.unnest(v_orders) o ON o.tenant_id = d.tenant_id AND o.id = d.order_id
			 WHERE d.tenant_id = v_tenant
			 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9) r;
		INSERT INTO oms.bi_sales_deltas SELECT * FROM pg_catalog.unnest(v_rows);
	END LOOP;
	RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION oms._customer_order(p_tenant int, p_channel text, p_external_id text, p_email text) RETURNS bigint
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog, pg_temp
AS $$
BEGIN
	RETURN (
	SELECT o.id
	  FROM oms.orders o
	  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	 WHERE o.tenant_id = p_tenant AND c.code = p_channel AND o.external_id = p_external_id
	   AND p_email IS NOT NULL AND btrim(p_email) <> ''
	   AND lower(btrim(o.customer_email)) = lower(btrim(p_email)));
END
$$;

-- The new objects of sql/parts/98_citus.sql.
-- Scale-out on Citus (README "Scale-out on Citus"): tenant-explicit forms of the write API, and
-- oms.distribute(), which distributes every per-tenant table by tenant_id on a Citus cluster.
--
-- Citus sends a call of a distributed function whole to the node that holds the shard of one of
-- its arguments; it never routes by a setting such as oms.tenant. So every write entry point has a
-- form whose first argument is the tenant's id (int, the distribution column's type: Citus hashes
-- the argument's value, and a tenant code would hash to another shard than its id):
--   SELECT oms.place_order(oms.tenant_id('brand-x'), '{...}');
-- The form sets oms.tenant for the duration of the call only (set_config(..., true), restored
-- before it returns; an error rolls it back with the transaction or subtransaction) and delegates
-- to the form without the tenant, so both behave alike and the tenant is checked the same way
-- (oms_tenant_id(), 42501 for a tenant the caller may not act for). The forms take no parameter
-- defaults: with them a call of the existing form could match both.
-- On Citus the call runs on the tenant's node, where oms's functions call helpers that read the
-- tenant's tables from inside other queries of them. Citus refuses such nested queries unless
-- citus.allow_nested_distributed_execution is on, because a nested query sent to another node
-- would not see the transaction's own writes; here every query names the one tenant of the call,
-- whose shards are all on this node, so they all run locally in the same transaction. The forms
-- set it for their own duration only (a SET clause; a mere placeholder without Citus).

CREATE FUNCTION oms.tenant_id(code text) RETURNS int
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_id	int;
BEGIN
	SELECT t.id INTO v_id FROM oms.tenants t WHERE t.code = tenant_id.code;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown tenant "%"', oms._clip(tenant_id.code)
			USING ERRCODE = '22023', HINT = 'Tenants are listed in oms.tenants; oms.create_tenant() creates one.';
	END IF;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms.tenant_id(text) IS 'Id of the tenant with this code (the first argument of the tenant-explicit API forms); 22023 when unknown';

CREATE FUNCTION oms._tenant_code(p_tenant int) RETURNS text
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_code	text;
BEGIN
	SELECT t.code INTO v_code FROM oms.tenants t WHERE t.id = p_tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown tenant id %', coalesce(p_tenant::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'oms.tenant_id(code) gives the id of a tenant; tenants are listed in oms.tenants.';
	END IF;
	RETURN v_code;
END
$$;
COMMENT ON FUNCTION oms._tenant_code(int) IS 'Internal: the code of the tenant with this id (the tenant-explicit API forms set oms.tenant to it); 22023 when unknown';

-- The names of the entry points that get a tenant-explicit form (every overload of each).
CREATE FUNCTION oms._tenant_entry_points() RETURNS text[]
	LANGUAGE sql IMMUTABLE
	SET search_path = oms, pg_catalog
	RETURN ARRAY['place_order', 'cancel_order', 'cancel_line', 'change_address', 'hold', 'release_hold',
				 'hold_order', 'resolve_hold', 'release_order',
				 'authorize_payment', 'capture_payment', 'refund_payment', 'void_payment',
				 'pack', 'ship', 'deliver', 'ready_for_pickup', 'collect', 'tracking_update', 'reject_line',
				 'adjust_stock', 'set_stock',
				 'create_return', 'receive_return', 'exchange', 'request_return',
				 'issue_invoice', 'issue_credit_note',
				 'subscribe', 'pause_subscription', 'resume_subscription', 'cancel_subscription',
				 'create_purchase_order', 'send_purchase_order', 'cancel_purchase_order', 'receive_purchase_order',
				 'create_transfer', 'receive_transfer', 'cancel_transfer',
				 'next_events', 'ack_events'];
COMMENT ON FUNCTION oms._tenant_entry_points() IS 'Internal: the API functions that have a tenant-explicit form (tenant int first), registered with Citus by oms.distribute()';

-- Creates the tenant-explicit form of every overload of those functions: same arguments without
-- defaults, the tenant first, the same result. Run once at install (and by the upgrade script).
CREATE FUNCTION oms._create_tenant_forms() RETURNS int
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_proc		record;
	v_args		text;
	v_call		text;
	v_body		text;
	v_count		int := 0;
BEGIN
	FOR v_proc IN
		SELECT p.oid, p.proname, p.proretset, p.pronargs,
			   pg_catalog.pg_get_function_identity_arguments(p.oid) AS args,
			   pg_catalog.pg_get_function_result(p.oid) AS result
		  FROM pg_catalog.pg_proc p
		 WHERE p.pronamespace = 'oms'::regnamespace
		   AND p.proname = ANY (oms._tenant_entry_points())
		   AND p.prokind = 'f'
		   AND coalesce(p.proargnames[1], '') <> 'tenant'
		 ORDER BY p.proname, p.pronargs
	LOOP
		v_args := 'tenant int' || CASE WHEN v_proc.args <> '' THEN ', ' || v_proc.args ELSE '' END;
		SELECT pg_catalog.format('oms.%I(%s)', v_proc.proname,
								 coalesce(pg_catalog.string_agg('$' || (i + 1), ', ' ORDER BY i), ''))
		  INTO v_call FROM pg_catalog.generate_series(1, v_proc.pronargs) i;
		IF v_proc.proretset THEN
			v_body := pg_catalog.format($f$
DECLARE
	v_prev	text := pg_catalog.current_setting('oms.tenant');
BEGIN
	PERFORM pg_catalog.set_config('oms.tenant', oms._tenant_code(tenant), true);
	RETURN QUERY SELECT * FROM %s;
	PERFORM pg_catalog.set_config('oms.tenant', v_prev, true);
END
$f$, v_call);
		ELSE
			v_body := pg_catalog.format($f$
DECLARE
	v_prev		text := pg_catalog.current_setting('oms.tenant');
	v_result	%s;
BEGIN
	PERFORM pg_catalog.set_config('oms.tenant', oms._tenant_code(tenant), true);
	v_result := %s;
	PERFORM pg_catalog.set_config('oms.tenant', v_prev, true);
	RETURN v_result;
END
$f$, v_proc.result, v_call);
		END IF;
		EXECUTE pg_catalog.format('CREATE FUNCTION oms.%I(%s) RETURNS %s LANGUAGE plpgsql SET search_path = oms, pg_catalog'
								  ' SET citus.allow_nested_distributed_execution = on AS %L',
								  v_proc.proname, v_args, v_proc.result, v_body);
		EXECUTE pg_catalog.format('COMMENT ON FUNCTION oms.%I(%s) IS %L', v_proc.proname, v_args,
								  pg_catalog.format('oms.%s for the tenant with this id (Citus routes the call to the tenant''s node); see oms.%s(%s)',
													v_proc.proname, v_proc.proname, v_proc.args));
		EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION oms.%I(%s) FROM PUBLIC', v_proc.proname, v_args);
		v_count := v_count + 1;
	END LOOP;
	RETURN v_count;
END
$$;
COMMENT ON FUNCTION oms._create_tenant_forms() IS 'Internal: creates the tenant-explicit form of every overload of the entry points of oms._tenant_entry_points() (used by the install and upgrade scripts)';

SELECT oms._create_tenant_forms();
DROP FUNCTION oms._create_tenant_forms();

-- The sum of an array's elements (NULL when empty): place_order's totals in its INSERT, where Citus
-- takes a function call but no subquery.
CREATE FUNCTION oms._array_sum(p_values numeric[]) RETURNS numeric
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	RETURN (SELECT pg_catalog.sum(x) FROM pg_catalog.unnest(p_values) x);
COMMENT ON FUNCTION oms._array_sum(numeric[]) IS 'Internal: the sum of the elements of an array, NULL when it has none';

-- oms.atp() reads its four tables through their indexes (src/atp.c); on Citus those tables are
-- empty shells and the rows are in shards, so it asks this function instead: the same answer
-- from SQL, run as the caller under the policies (the tenant rule), free units of hot SKUs' stock
-- slots included.
CREATE FUNCTION oms._atp_distributed(p_sku text, p_location text) RETURNS bigint
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int;
	v_location	int;
	v_active	boolean;
	v_atp		bigint;
BEGIN
	SELECT i.id INTO v_item FROM oms.items i WHERE i.tenant_id = v_tenant AND i.sku = p_sku;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown SKU "%"', oms._clip(p_sku)
			USING ERRCODE = '22023',
				  HINT = pg_catalog.format('Items of tenant "%s" are listed in oms.items; SKUs are case sensitive.',
										   pg_catalog.current_setting('oms.tenant'));
	END IF;
	IF p_location IS NOT NULL THEN
		SELECT l.id, l.active INTO v_location, v_active
		  FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.code = p_location;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'unknown location "%"', oms._clip(p_location)
				USING ERRCODE = '22023',
					  HINT = pg_catalog.format('Locations of tenant "%s" are listed in oms.locations; pass NULL for the whole network.',
											   pg_catalog.current_setting('oms.tenant'));
		END IF;
		IF NOT v_active THEN
			RETURN 0;
		END IF;
		SELECT greatest(s.on_hand - s.reserved - s.safety_stock, 0)
			   + CASE WHEN s.hot THEN (SELECT coalesce(pg_catalog.sum(z.free), 0)::bigint FROM oms.stock_slots z
										WHERE z.tenant_id = v_tenant AND z.item_id = v_item AND z.location_id = v_location)
					  ELSE 0 END
		  INTO v_atp
		  FROM oms.stock s
		 WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_location;
		RETURN coalesce(v_atp, 0);
	END IF;
	SELECT coalesce(pg_catalog.sum(greatest(s.on_hand - s.reserved - s.safety_stock, 0)), 0)::bigint
		   + coalesce((SELECT pg_catalog.sum(z.free) FROM oms.stock_slots z
						 JOIN oms.stock s2 ON s2.tenant_id = z.tenant_id AND s2.item_id = z.item_id
										 AND s2.location_id = z.location_id AND s2.hot
						 JOIN oms.locations l2 ON l2.tenant_id = z.tenant_id AND l2.id = z.location_id
						WHERE z.tenant_id = v_tenant AND s2.tenant_id = v_tenant AND l2.tenant_id = v_tenant
						  AND z.item_id = v_item AND l2.active AND l2.can_ship), 0)::bigint
	  INTO v_atp
	  FROM oms.stock s
	  JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id
	 WHERE s.tenant_id = v_tenant AND l.tenant_id = v_tenant AND s.item_id = v_item AND l.active AND l.can_ship;
	RETURN v_atp;
END
$$;
COMMENT ON FUNCTION oms._atp_distributed(text, text) IS 'Internal: oms.atp(sku, location) from SQL, which oms.atp() calls on a Citus cluster (its tables are shells there)';

-- ------------------------------------------------------------------------------------------------
-- oms.distribute(): the tables on Citus.
--
-- Per-tenant tables (every table with a tenant_id but those below) become distributed tables on
-- tenant_id, all co-located with oms.orders, so that a tenant's rows of every table live in one
-- shard group on one node. Shared data becomes reference tables (a copy on every node): tenants
-- and the grants (read by the tenant check of every call), currencies, exchange rates, country
-- centroids, routing profiles (built-in ones are shared). oms.job_runs stays a local table of the
-- coordinator, where pg_cron runs the jobs.
-- Citus refuses, on distributed tables, foreign keys to local tables and policies with
-- subqueries, so the foreign keys are dropped and added back once every table is distributed, and
-- the policies are created again with the same rule written without a subquery.

CREATE FUNCTION oms._store_sees_order(p_tenant int, p_order bigint) RETURNS boolean
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = oms, pg_catalog
	RETURN EXISTS (SELECT FROM oms.order_lines l
					WHERE l.tenant_id = p_tenant AND l.order_id = p_order
					  AND l.location_id = ANY (oms._store_locations()));
COMMENT ON FUNCTION oms._store_sees_order(int, bigint) IS 'Internal: does a line of this order come from a location of the calling store role (the store policy of oms.orders on Citus)';

CREATE FUNCTION oms._store_sees_shipment(p_tenant int, p_shipment bigint) RETURNS boolean
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = oms, pg_catalog
	RETURN EXISTS (SELECT FROM oms.shipments s
					WHERE s.tenant_id = p_tenant AND s.id = p_shipment
					  AND s.location_id = ANY (oms._store_locations()));
COMMENT ON FUNCTION oms._store_sees_shipment(int, bigint) IS 'Internal: was this shipment packed at a location of the calling store role (the store policy of oms.shipment_lines on Citus)';

CREATE FUNCTION oms._supply_detach() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	UPDATE oms.purchase_order_lines l SET supply_id = NULL
	 WHERE l.tenant_id = OLD.tenant_id AND l.supply_id = OLD.id;
	UPDATE oms.transfer_order_lines l SET supply_id = NULL
	 WHERE l.tenant_id = OLD.tenant_id AND l.supply_id = OLD.id;
	RETURN OLD;
END
$$;
COMMENT ON FUNCTION oms._supply_detach() IS 'Internal: trigger before a supply row is deleted on Citus: its purchase order and transfer lines no longer point to it (what ON DELETE SET NULL (supply_id) does on one node)';

-- Ids unique across nodes. A sequence is per node, and a tenant's rows are written on its node
-- (the tenant-explicit forms run there): each node draws from its own range, chosen by its Citus
-- group id g (0 on the coordinator): bigint sequences from g * 2^48, as Citus does itself for
-- the sequences it creates, int sequences (catalogue rows, mostly written through the
-- coordinator) from g * 2^26. Run on every node by oms.distribute(); a node already in its range
-- keeps its position.
CREATE FUNCTION oms._node_sequences() RETURNS int
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_group		bigint;
	v_seq		record;
	v_shift		int;
	v_first		bigint;
	v_last		bigint;
	v_count		int := 0;
BEGIN
	EXECUTE 'SELECT groupid FROM pg_catalog.pg_dist_local_group' INTO v_group;
	PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true);
	FOR v_seq IN
		SELECT c.relname, s.seqtypid, s.seqmin, s.seqmax
		  FROM pg_catalog.pg_sequence s
		  JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
		 WHERE c.relnamespace = 'oms'::regnamespace AND s.seqtypid IN ('int4'::regtype, 'int8'::regtype)
		 ORDER BY c.relname
	LOOP
		v_shift := CASE WHEN v_seq.seqtypid = 'int8'::regtype THEN 48 ELSE 26 END;
		v_first := (v_group << v_shift) + 1;
		v_last := ((v_group + 1) << v_shift) - 1;
		IF v_seq.seqmin = v_first AND v_seq.seqmax = v_last THEN
			CONTINUE;
		END IF;
		IF v_group = 0 THEN
			EXECUTE pg_catalog.format('ALTER SEQUENCE oms.%I MAXVALUE %s', v_seq.relname, v_last);
		ELSE
			EXECUTE pg_catalog.format('ALTER SEQUENCE oms.%I MINVALUE %s MAXVALUE %s START %s RESTART',
									  v_seq.relname, v_first, v_last, v_first);
		END IF;
		v_count := v_count + 1;
	END LOOP;
	RETURN v_count;
END
$$;
COMMENT ON FUNCTION oms._node_sequences() IS 'Internal: puts the sequences of schema oms on this Citus node in the node''s own range (bigint from group * 2^48, int from group * 2^26), so that ids stay unique across nodes';

CREATE FUNCTION oms.distribute(shard_count int DEFAULT 32)
	RETURNS TABLE (table_name text, distribution text)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_version	text;
	v_reference	text[] := ARRAY['tenants', 'tenant_grants', 'currencies', 'exchange_rates',
								'country_centroids', 'routing_profiles'];
	v_local		text[] := ARRAY['job_runs'];
	v_todo		text[];
	v_rel		record;
	v_fk		record;
	v_pol		record;
	v_proc		regprocedure;
	v_qual		text;
	v_check		text;
	v_detach	boolean := false;
	v_try		int;
BEGIN
	SELECT e.extversion INTO v_version FROM pg_catalog.pg_extension e WHERE e.extname = 'citus';
	IF v_version IS NULL THEN
		RAISE EXCEPTION 'oms.distribute() needs the citus extension, which is not installed in database "%"', pg_catalog.current_database()
			USING ERRCODE = '55000',
				  HINT = 'Install Citus 12 or later on the coordinator and every worker, CREATE EXTENSION citus, add the workers (citus_add_node), then call oms.distribute() on the coordinator.';
	END IF;
	IF pg_catalog.split_part(v_version, '.', 1)::int < 12 THEN
		RAISE EXCEPTION 'oms.distribute() needs Citus 12 or later, found citus %', v_version
			USING ERRCODE = '55000', HINT = 'Upgrade Citus (ALTER EXTENSION citus UPDATE after installing the new version on every node).';
	END IF;
	IF shard_count IS NULL OR shard_count < 1 OR shard_count > 64000 THEN
		RAISE EXCEPTION 'invalid shard count %', coalesce(shard_count::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Give 1 to 64000 shards (default 32; a few per worker core).';
	END IF;

	-- The tables not yet distributed (none on a second call).
	SELECT coalesce(pg_catalog.array_agg(c.relname ORDER BY c.relname), '{}') INTO v_todo
	  FROM pg_catalog.pg_class c
	 WHERE c.relnamespace = 'oms'::regnamespace AND c.relkind = 'r'
	   AND NOT c.relname = ANY (v_local)
	   AND (c.relname = ANY (v_reference)
			OR EXISTS (SELECT FROM pg_catalog.pg_attribute a
						WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
	   AND NOT EXISTS (SELECT FROM pg_catalog.pg_class d
						WHERE d.oid = c.oid
						  AND d.oid IN (SELECT p.logicalrelid FROM pg_dist_partition p));

	IF pg_catalog.cardinality(v_todo) > 0 THEN
		-- Every table first, all at once: the background worker's round reads several, and
		-- would deadlock with DDL that took them one by one (retried when it does all the same).
		FOR v_try IN 1..10 LOOP
			BEGIN
				EXECUTE (SELECT 'LOCK TABLE ' || pg_catalog.string_agg('oms.' || pg_catalog.quote_ident(r), ', ')
								|| ' IN ACCESS EXCLUSIVE MODE'
						   FROM pg_catalog.unnest(v_todo) r);
				EXIT;
			EXCEPTION WHEN deadlock_detected OR lock_not_available THEN
				IF v_try = 10 THEN
					RAISE;
				END IF;
				PERFORM pg_catalog.pg_sleep(0.2);
			END;
		END LOOP;
		-- Triggers on distributed tables: each of oms's touches only rows of its own row's tenant,
		-- which Citus runs on the same node (README: what keeps working distributed).
		PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
		PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);

		-- Foreign keys and policies of every table of oms: dropped now, created again at the end.
		CREATE TEMPORARY TABLE oms_distribute_fks ON COMMIT DROP AS
		SELECT 'oms.' || pg_catalog.quote_ident(c.relname) AS rel, c.relname::text AS relname,
			   k.conname::text AS name, pg_catalog.pg_get_constraintdef(k.oid) AS def,
			   (SELECT t.relname::text FROM pg_catalog.pg_class t WHERE t.oid = k.confrelid) AS target
		  FROM pg_catalog.pg_constraint k
		  JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
		 WHERE k.contype = 'f' AND c.relnamespace = 'oms'::regnamespace;
		CREATE TEMPORARY TABLE oms_distribute_policies ON COMMIT DROP AS
		SELECT 'oms.' || pg_catalog.quote_ident(c.relname) AS rel, p.polname::text AS name, p.polpermissive AS permissive,
			   p.polcmd AS cmd, p.polroles AS roles,
			   pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS qual,
			   pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS with_check
		  FROM pg_catalog.pg_policy p
		  JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
		 WHERE c.relnamespace = 'oms'::regnamespace AND c.relname = ANY (v_todo);
		-- The workers' tables are oms's own (their CREATE EXTENSION made them), which Citus takes
		-- as the shell tables it would otherwise create; they lose the same keys and policies, so
		-- that adding them back below reaches the shells and the shards alike. (Those commands
		-- commit on the workers at once: a failed call leaves them dropped there, and the next
		-- call, which drops IF EXISTS, goes on.)
		FOR v_pol IN SELECT * FROM oms_distribute_policies LOOP
			EXECUTE pg_catalog.format('DROP POLICY %I ON %s', v_pol.name, v_pol.rel);
			PERFORM run_command_on_workers(pg_catalog.format('DROP POLICY IF EXISTS %I ON %s', v_pol.name, v_pol.rel));
		END LOOP;
		FOR v_fk IN SELECT * FROM oms_distribute_fks LOOP
			EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', v_fk.rel, v_fk.name);
			PERFORM run_command_on_workers(pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', v_fk.rel, v_fk.name));
		END LOOP;

		FOR v_rel IN SELECT r FROM pg_catalog.unnest(v_todo) r WHERE r = ANY (v_reference) LOOP
			EXECUTE pg_catalog.format('SELECT create_reference_table(%L)', 'oms.' || v_rel.r);
		END LOOP;
		IF 'orders' = ANY (v_todo) THEN
			EXECUTE pg_catalog.format('SELECT create_distributed_table(%L, %L, shard_count := %s, colocate_with := %L)',
									  'oms.orders', 'tenant_id', shard_count, 'none');
		END IF;
		FOR v_rel IN SELECT r FROM pg_catalog.unnest(v_todo) r
					  WHERE NOT r = ANY (v_reference) AND r <> 'orders' ORDER BY r LOOP
			EXECUTE pg_catalog.format('SELECT create_distributed_table(%L, %L, colocate_with := %L)',
									  'oms.' || v_rel.r, 'tenant_id', 'oms.orders');
		END LOOP;

		-- The foreign keys again; oms.job_runs (local to the coordinator) can no longer point to
		-- oms.tenants, a reference table.
		-- Citus refuses ON DELETE SET NULL on a key that holds the distribution column: the
		-- purchase order and transfer lines that point to a supply row are let go of by the
		-- trigger oms._supply_detach instead.
		FOR v_fk IN SELECT * FROM oms_distribute_fks
					 WHERE NOT relname = ANY (v_local) LOOP
			IF v_fk.def ~ 'ON DELETE SET NULL \(supply_id\)$' THEN
				v_fk.def := pg_catalog.regexp_replace(v_fk.def, ' ON DELETE SET NULL \(supply_id\)$', '');
				v_detach := true;
			END IF;
			EXECUTE pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', v_fk.rel, v_fk.name, v_fk.def);
		END LOOP;
		IF v_detach THEN
			CREATE TRIGGER supply_detach BEFORE DELETE ON oms.supply
				FOR EACH ROW EXECUTE FUNCTION oms._supply_detach();
		END IF;
		FOR v_fk IN SELECT * FROM oms_distribute_fks
					 WHERE relname = ANY (v_local) AND NOT target = ANY (v_local) LOOP
			RAISE NOTICE 'foreign key % of % dropped: a local table cannot reference a distributed or reference table', v_fk.name, v_fk.rel;
		END LOOP;

		-- The policies again, their rule without subqueries (Citus evaluates the policy on the
		-- shard; oms.current_tenant_id() is stable, so it is still evaluated once per scan).
		FOR v_pol IN SELECT * FROM oms_distribute_policies LOOP
			v_qual := v_pol.qual;
			v_check := v_pol.with_check;
			IF v_pol.rel = 'oms.orders' AND v_pol.name = 'store' THEN
				v_qual := '(pickup_location_id = ANY (oms._store_locations())) OR oms._store_sees_order(tenant_id, id)';
			ELSIF v_pol.rel = 'oms.shipment_lines' AND v_pol.name = 'store' THEN
				v_qual := 'oms._store_sees_shipment(tenant_id, shipment_id)';
			ELSE
				v_qual := pg_catalog.regexp_replace(v_qual, '\(\s*SELECT (?:oms\.)?(\w+)\(\) AS \w+\)', 'oms.\1()', 'g');
			END IF;
			IF v_qual ~* '\mselect\M' OR coalesce(v_check, '') ~* '\mselect\M' THEN
				RAISE EXCEPTION 'policy % on % has a subquery that oms.distribute() cannot rewrite: %', v_pol.name, v_pol.rel, v_qual
					USING ERRCODE = 'XX000';
			END IF;
			EXECUTE pg_catalog.format('CREATE POLICY %I ON %s AS %s FOR %s TO %s USING (%s)%s',
				v_pol.name, v_pol.rel,
				CASE WHEN v_pol.permissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
				CASE v_pol.cmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
							   WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
				CASE WHEN v_pol.roles = '{0}' THEN 'PUBLIC'
					 ELSE (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(r.rolname), ', ')
							 FROM pg_catalog.pg_roles r WHERE r.oid = ANY (v_pol.roles)) END,
				v_qual,
				CASE WHEN v_check IS NOT NULL THEN ' WITH CHECK (' || v_check || ')' ELSE '' END);
		END LOOP;
	END IF;

	-- Every node's sequences in its own range.
	PERFORM run_command_on_all_nodes('SELECT oms._node_sequences()');

	-- Every tenant-explicit form: its call goes whole to the node of its first argument.
	FOR v_proc IN
		SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
		 WHERE p.pronamespace = 'oms'::regnamespace AND p.proname = ANY (oms._tenant_entry_points())
		   AND p.proargnames[1] = 'tenant' AND p.proargtypes[0] = 'int4'::regtype
		   AND NOT EXISTS (SELECT FROM pg_dist_object o
							WHERE o.classid = 'pg_proc'::regclass AND o.objid = p.oid
							  AND o.distribution_argument_index = 0)
	LOOP
		EXECUTE pg_catalog.format('SELECT create_distributed_function(%L, %L, colocate_with := %L)',
								  v_proc::text, '$1', 'oms.orders');
	END LOOP;

	RETURN QUERY
	SELECT c.relname::text,
		   CASE p.partmethod WHEN 'h' THEN 'distributed by ' || p.column_name ||
										  ' (co-location group ' || p.colocationid || ')'
							 WHEN 'n' THEN 'reference' END
	  FROM pg_catalog.pg_class c
	  JOIN (SELECT d.logicalrelid, d.partmethod, d.colocationid,
				   pg_catalog.column_to_column_name(d.logicalrelid, d.partkey) AS column_name
			  FROM pg_dist_partition d) p ON p.logicalrelid = c.oid
	 WHERE c.relnamespace = 'oms'::regnamespace
	 ORDER BY 2, 1;
END
$$;
COMMENT ON FUNCTION oms.distribute(int) IS 'Distributes oms on Citus (12 or later): per-tenant tables by tenant_id, co-located; shared data as reference tables; the tenant-explicit API forms routed by their tenant. Idempotent; 55000 without Citus';
REVOKE ALL ON FUNCTION oms.distribute(int) FROM PUBLIC;

REVOKE ALL ON FUNCTION oms.tenant_id(text), oms._tenant_code(int), oms._tenant_entry_points(),
	oms._store_sees_order(int, bigint), oms._store_sees_shipment(int, bigint), oms._supply_detach(),
	oms._node_sequences(), oms._array_sum(numeric[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms.tenant_id(text), oms._tenant_code(int)
	TO oms_operator, oms_store, oms_app;
REVOKE ALL ON FUNCTION oms._atp_distributed(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms._atp_distributed(text, text) TO oms_operator, oms_store, oms_app;
GRANT EXECUTE ON FUNCTION oms._store_sees_order(int, bigint), oms._store_sees_shipment(int, bigint) TO oms_store;

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA oms TO oms_admin;
-- The API per role. Every function granted here to a non-admin role becomes SECURITY DEFINER
-- (they all pin search_path), except the readers that run as the caller on purpose: oms.atp()
-- (both forms: now, and time-phased) and oms.atp_by_location() (their callers read the tables,
-- under the policies; oms.atp(sku, location) applies the tenant rule itself). A name that no part
-- defines (yet) is skipped.
DO $$
DECLARE
	v_fn	text;
	v_roles	text;
	v_proc	regprocedure;
BEGIN
	FOR v_fn, v_roles IN
		VALUES
			('atp', 'oms_app, oms_operator'),
			('atp_by_location', 'oms_app, oms_operator, oms_store'),
			('promise', 'oms_app, oms_operator'),
			('route', 'oms_operator'),
			('route_explain', 'oms_operator'),
			('place_order', 'oms_app, oms_operator'),
			('cancel_order', 'oms_app, oms_operator'),
			('hold', 'oms_app, oms_operator'),
			('release_hold', 'oms_app, oms_operator'),
			('order_status', 'oms_app, oms_operator'),
			('request_return', 'oms_app, oms_operator'),
			('cancel_line', 'oms_app, oms_operator'),
			('change_address', 'oms_app, oms_operator'),
			('payment_totals', 'oms_operator'),
			('authorize_payment', 'oms_operator'),
			('capture_payment', 'oms_operator'),
			('refund_payment', 'oms_operator'),
			('void_payment', 'oms_operator'),
			('hold_order', 'oms_operator'),
			('resolve_hold', 'oms_operator'),
			('release_order', 'oms_operator'),
			('pack', 'oms_operator, oms_store'),
			('ship', 'oms_operator, oms_store'),
			('deliver', 'oms_operator, oms_store'),
			('ready_for_pickup', 'oms_operator, oms_store'),
			('collect', 'oms_operator, oms_store'),
			('adjust_stock', 'oms_operator, oms_store'),
			('set_stock', 'oms_operator, oms_store'),
			('set_hot', 'oms_operator'),
			('create_return', 'oms_operator'),
			('receive_return', 'oms_operator'),
			('exchange', 'oms_operator'),
			('forecast', 'oms_operator'),
			('forecast_methods', 'oms_operator'),
			('policy', 'oms_operator'),
			('plan_replenishment', 'oms_operator'),
			('run_replenishment', 'oms_operator'),
			('check_alerts', 'oms_operator'),
			('run_subscriptions', 'oms_operator'),
			('compact_demand_history', 'oms_operator'),
			('compact_bi_sales', 'oms_operator'),
			('_job_begin', 'oms_operator'),
			('_job_next', 'oms_operator'),
			('_job_end', 'oms_operator'),
			('create_purchase_order', 'oms_operator'),
			('send_purchase_order', 'oms_operator'),
			('cancel_purchase_order', 'oms_operator'),
			('receive_purchase_order', 'oms_operator'),
			('create_transfer', 'oms_operator'),
			('receive_transfer', 'oms_operator'),
			('cancel_transfer', 'oms_operator'),
			('subscribe', 'oms_app, oms_operator'),
			('pause_subscription', 'oms_app, oms_operator'),
			('resume_subscription', 'oms_app, oms_operator'),
			('cancel_subscription', 'oms_app, oms_operator'),
			('check_stock_invariants', 'oms_operator'),
			('reject_line', 'oms_operator, oms_store'),
			('tax_split', 'oms_app, oms_operator'),
			('issue_invoice', 'oms_operator'),
			('issue_credit_note', 'oms_operator'),
			('invoice_document', 'oms_operator'),
			('packing_slip', 'oms_operator, oms_store'),
			('shipping_label', 'oms_operator, oms_store'),
			('return_label', 'oms_operator')
	LOOP
		FOR v_proc IN
			SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
			 WHERE p.pronamespace = 'oms'::regnamespace AND p.proname = v_fn
		LOOP
			EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', v_proc, v_roles);
			IF v_fn NOT IN ('atp', 'atp_by_location') THEN
				EXECUTE pg_catalog.format('ALTER FUNCTION %s SECURITY DEFINER', v_proc);
			END IF;
		END LOOP;
	END LOOP;
END
$$;

-- ===== BI across tenants (session 5)
CREATE VIEW oms_bi.platform_daily AS
SELECT t.code AS tenant, g.day, g.currency::text AS currency, g.orders, g.units, g.revenue, g.perfect_orders, g.orders_returned
  FROM (SELECT b.tenant_id, b.day, b.currency, pg_catalog.count(*) AS orders, pg_catalog.sum(b.units)::bigint AS units,
			   pg_catalog.sum(b.revenue) AS revenue,
			   pg_catalog.count(*) FILTER (WHERE b.lines_incomplete = 0 AND b.late_shipments = 0 AND b.units_returned = 0
												 AND b.returns = 0) AS perfect_orders,
			   pg_catalog.count(*) FILTER (WHERE b.units_returned > 0 OR b.returns > 0) AS orders_returned
		  FROM oms.bi_order_sales b
		 WHERE b.lines <> 0
		 GROUP BY b.tenant_id, b.day, b.currency) g
  JOIN oms.tenants t ON t.id = g.tenant_id;
COMMENT ON VIEW oms_bi.platform_daily IS 'Every tenant''s orders per UTC day of placement and currency (administrators only; on Citus one query over every node): orders, units and revenue not cancelled, perfect orders, orders with a return';
COMMENT ON COLUMN oms_bi.platform_daily.tenant IS 'Tenant code';
COMMENT ON COLUMN oms_bi.platform_daily.day IS 'UTC day of placement';
COMMENT ON COLUMN oms_bi.platform_daily.currency IS 'Order currency';
COMMENT ON COLUMN oms_bi.platform_daily.orders IS 'Orders with lines';
COMMENT ON COLUMN oms_bi.platform_daily.units IS 'Units not cancelled';
COMMENT ON COLUMN oms_bi.platform_daily.revenue IS 'Units not cancelled at their price, order currency';
COMMENT ON COLUMN oms_bi.platform_daily.perfect_orders IS 'Orders complete, on time and without a return';
COMMENT ON COLUMN oms_bi.platform_daily.orders_returned IS 'Orders with a return';
GRANT SELECT ON oms_bi.platform_daily TO oms_admin;

-- >>> functions changed in 0.2.0, at their latest definition
CREATE OR REPLACE FUNCTION oms.reject_line(order_id bigint, line_no int, location text, reason text)
	RETURNS TABLE (routed_line int, routed_location text, routed_qty int, line_state oms.line_state,
				   eta date, detail text)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_order		record;
	v_line		record;
	v_loc		int;
	v_rejected	int;
	v_kept		int;
	v_attempt	int := 0;
	v_excl		int[];
	v_a_loc		int[];
	v_a_qty		int[];
	v_a_kind	text[];
	v_a_eta		date[];
	v_a_capday	date[];
	v_a_reason	text[];
	v_a_supply	bigint[];
	v_state		oms.line_state;
	v_new_loc	int;
	v_promised	date;
	r			record;
BEGIN
	IF reason IS NULL OR btrim(reason) = '' THEN
		RAISE EXCEPTION 'a reason is required to reject line % of order %', reject_line.line_no, reject_line.order_id
			USING ERRCODE = '22023', HINT = 'Say why the location cannot fulfil it (e.g. ''damaged''); it is kept in oms.order_history.';
	END IF;
	SELECT o.id, o.ship_to, o.pickup_location_id, o.state,
		   coalesce(o.routing_profile, c.routing_profile, 'balanced') AS profile
	  INTO v_order
	  FROM oms.orders o JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	 WHERE o.tenant_id = v_tenant AND o.id = reject_line.order_id
	   FOR UPDATE OF o;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown order %', coalesce(reject_line.order_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Orders are rows of oms.orders of the current tenant (setting oms.tenant).';
	END IF;
	SELECT l.line_no, l.item_id, l.state, l.qty, i.sku INTO v_line
	  FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
	 WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = reject_line.line_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order % has no line %', v_order.id, coalesce(reject_line.line_no::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Lines are numbered from 1 in the order they were placed (oms.order_lines.line_no).';
	END IF;
	v_loc := oms._location_id(v_tenant, reject_line.location);
	PERFORM oms._check_store_location(v_tenant, v_loc);		-- store staff reject at their own store only
	SELECT coalesce(sum(x.qty), 0) INTO v_rejected FROM oms.reservations x
	 WHERE x.tenant_id = v_tenant AND x.order_id = v_order.id AND x.line_no = v_line.line_no AND x.location_id = v_loc;
	IF v_rejected = 0 OR NOT oms.is_legal(v_line.state, 'rejected') THEN
		RAISE EXCEPTION 'line % of order % cannot be rejected at location "%": it is % %', v_line.line_no, v_order.id,
				oms._clip(reject_line.location), v_line.state, CASE WHEN v_rejected = 0 THEN 'with nothing reserved there' ELSE 'there' END
			USING ERRCODE = '55000',
			      HINT = 'A location rejects a line that is allocated, released or picked there (oms.reservations shows where).';
	END IF;

	-- The rejection: exclusion, then the line's state (history: why, by whom).
	INSERT INTO oms.line_exclusions (tenant_id, order_id, line_no, location_id, reason, excluded_by)
		VALUES (v_tenant, v_order.id, v_line.line_no, v_loc, reason, oms._actor())
		ON CONFLICT DO NOTHING;
	PERFORM pg_catalog.set_config('oms.reason', format('rejected at %s: %s', reject_line.location, left(reason, 1000)), true);
	UPDATE oms.order_lines l SET state = 'rejected', location_id = NULL
	 WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = v_line.line_no;
	SELECT array_agg(e.location_id ORDER BY e.location_id) INTO v_excl FROM oms.line_exclusions e
	 WHERE e.tenant_id = v_tenant AND e.order_id = v_order.id AND e.line_no = v_line.line_no;

	-- Route the rejected units again and move the reservation, in stock-lock order. A location
	-- that lost the race meanwhile (OM001, OM030) makes us route again, as place_order does.
	LOOP
		SELECT array_agg(rt.location_id ORDER BY rt.ord), array_agg(rt.qty ORDER BY rt.ord),
			   array_agg(rt.kind ORDER BY rt.ord), array_agg(rt.eta ORDER BY rt.ord),
			   array_agg(rt.capacity_day ORDER BY rt.ord), array_agg(rt.reason ORDER BY rt.ord),
			   array_agg(rt.supply_id ORDER BY rt.ord)
		  INTO v_a_loc, v_a_qty, v_a_kind, v_a_eta, v_a_capday, v_a_reason, v_a_supply
		  FROM oms._route(v_tenant, ARRAY[v_line.item_id], ARRAY[v_rejected], NULL, NULL,
						  array_fill(1, ARRAY[cardinality(v_excl)]), v_excl,
						  v_order.ship_to, v_order.pickup_location_id, v_order.profile)
			   WITH ORDINALITY AS rt(line_no, item_id, location_id, qty, kind, carrier_service, eta,
									 capacity_day, supply_id, reason, ord);
		BEGIN
			FOR r IN SELECT o.loc, o.qty
					   FROM (SELECT v_loc AS loc, 0 AS qty
							 UNION ALL
							 SELECT v_a_loc[n], v_a_qty[n] FROM generate_subscripts(v_a_loc, 1) n
							  WHERE v_a_kind[n] = ANY (oms._stock_kinds())) o
					  ORDER BY o.loc, o.qty
			LOOP
				IF r.loc = v_loc AND r.qty = 0 THEN
					DELETE FROM oms.reservations x
					 WHERE x.tenant_id = v_tenant AND x.order_id = v_order.id AND x.line_no = v_line.line_no
					   AND x.location_id = v_loc;
				ELSE
					INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no)
						VALUES (v_tenant, v_line.item_id, r.loc, r.qty, v_order.id, v_line.line_no);
				END IF;
			END LOOP;
			-- a pre-order reserves its supply, after the stock rows
			INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no, supply_id)
				SELECT v_tenant, v_line.item_id, v_a_loc[n], v_a_qty[n], v_order.id, v_line.line_no, v_a_supply[n]
				  FROM generate_subscripts(v_a_loc, 1) n
				 WHERE v_a_kind[n] = 'preorder';
			PERFORM oms._take_order_capacity(v_tenant, v_order.id, v_a_loc, v_a_capday);
			EXIT;
		EXCEPTION WHEN SQLSTATE 'OM001' OR SQLSTATE 'OM030' THEN
			v_attempt := v_attempt + 1;
			IF v_attempt >= 3 THEN
				RAISE;
			END IF;
		END;
	END LOOP;

	-- The line's new state: allocated where stock was found, else pre-ordered, else backordered
	-- (also when nothing can serve it: it waits for stock). Its location: the one place that holds
	-- all of it now, or NULL.
	v_state := CASE WHEN v_a_kind && oms._stock_kinds() THEN 'allocated'
					WHEN v_a_kind && ARRAY['preorder'] THEN 'preordered'
					ELSE 'backordered' END;
	SELECT CASE WHEN count(DISTINCT x.location_id) = 1 THEN min(x.location_id) END, coalesce(sum(x.qty), 0)
	  INTO v_new_loc, v_kept
	  FROM oms.reservations x
	 WHERE x.tenant_id = v_tenant AND x.order_id = v_order.id AND x.line_no = v_line.line_no
	   AND x.supply_id IS NULL;
	IF v_state = 'backordered' AND v_kept > 0 THEN
		-- Part of the line is still reserved elsewhere: the line stays allocated for that part.
		v_state := 'allocated';
	END IF;
	-- The date promised: the new route's, or the later of it and the old one while other parts of
	-- a split line are still reserved where they were.
	SELECT max(e) INTO v_promised FROM unnest(v_a_eta) e;
	IF v_kept > (SELECT coalesce(sum(v_a_qty[n]), 0) FROM generate_subscripts(v_a_loc, 1) n
				  WHERE v_a_kind[n] = ANY (oms._stock_kinds())) THEN
		v_promised := (SELECT greatest(v_promised, l.promised_date) FROM oms.order_lines l
						WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = v_line.line_no);
	END IF;
	PERFORM pg_catalog.set_config('oms.reason',
		format('rerouted after rejection at %s: %s', reject_line.location,
			   coalesce((SELECT string_agg(x, '; ') FROM unnest(v_a_reason) x), 'no route')), true);
	IF v_state = 'preordered' THEN
		v_new_loc := v_a_loc[1];
	END IF;
	UPDATE oms.order_lines l
	   SET state = v_state, location_id = CASE WHEN v_state IN ('allocated', 'preordered') THEN v_new_loc END,
		   promised_date = v_promised
	 WHERE l.tenant_id = v_tenant AND l.order_id = v_order.id AND l.line_no = v_line.line_no;
	PERFORM oms._rollup(v_tenant, v_order.id);
	PERFORM pg_catalog.set_config('oms.reason', '', true);
	-- The rejecting location's daily capacity comes back when the order no longer uses it.
	PERFORM oms._release_order_capacity(v_tenant, v_order.id);
	-- The customer hears of a line that now waits for stock (a line served elsewhere keeps its
	-- promise or gets the new date in the order's history and oms.order_status).
	IF v_state = 'backordered' THEN
		PERFORM oms._event(v_tenant, v_order.id, 'line_backordered',
			jsonb_build_object('lines', jsonb_build_array(jsonb_build_object(
				'line_no', v_line.line_no, 'sku', v_line.sku, 'qty', v_line.qty, 'promised_date', v_promised)),
				'reason', format('rejected at %s: %s', reject_line.location, left(reason, 1000))));
	END IF;

	RETURN QUERY
		SELECT v_line.line_no, l.code, v_a_qty[n], v_state, v_a_eta[n], v_a_reason[n]
		  FROM generate_subscripts(v_a_loc, 1) n
		  LEFT JOIN oms.locations l ON l.tenant_id = v_tenant AND l.id = v_a_loc[n]
								   AND v_a_kind[n] <> 'backorder'
		 ORDER BY n;
END
$$;
COMMENT ON FUNCTION oms.reject_line(bigint, int, text, text) IS 'A location cannot fulfil a line (damaged, not found): releases the line''s reservation there, excludes the location for the line, routes the units again under the order''s profile and reserves them (allocated, pre-ordered, or backordered when nothing can serve them); every move in order_history; returns the new route';
CREATE OR REPLACE FUNCTION oms.packing_slip(shipment_id bigint, format text DEFAULT 'html') RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	s			oms.shipments;
	o			oms.orders;
	r			record;
	h			text;
	t			text;
	v_follow	text := '';
	v_tfollow	text := '';
	v_no		bigint;
BEGIN
	PERFORM oms._format(format, ARRAY['html', 'text']);
	SELECT * INTO s FROM oms.shipments x WHERE x.tenant_id = v_tenant AND x.id = packing_slip.shipment_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown shipment %', coalesce(packing_slip.shipment_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Shipments are created by oms.pack() and listed in oms.shipments.';
	END IF;
	PERFORM oms._check_store_location(v_tenant, s.location_id);	-- store staff: their own locations' packages only
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = s.order_id;
	v_no := oms._package_no(v_tenant, s);
	h := '<!DOCTYPE html>' || E'\n' || '<html><head><meta charset="utf-8"><title>Packing slip ' || oms._html(o.external_id)
		 || '</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}'
		 || 'th,td{border-bottom:1px solid #ccc;padding:4px 12px;text-align:left}</style></head><body>' || E'\n'
		 || '<h1>Packing slip</h1>' || E'\n'
		 || '<p>Order ' || oms._html(o.external_id) || ' &middot; package ' || v_no
		 || coalesce(' &middot; SSCC ' || s.sscc, '') || '</p>' || E'\n'
		 || '<p><b>Ship to</b><br>' || array_to_string(ARRAY(SELECT oms._html(x) FROM unnest(oms._ship_to_lines(v_tenant, o)) x), '<br>')
		 || '</p>' || E'\n' || '<table><tr><th>Line</th><th>SKU</th><th>Item</th><th>Qty</th></tr>' || E'\n';
	t := 'PACKING SLIP' || E'\n' || 'Order ' || o.external_id || ', package ' || v_no || coalesce(', SSCC ' || s.sscc, '') || E'\n'
		 || 'Ship to: ' || array_to_string(oms._ship_to_lines(v_tenant, o), ', ') || E'\n' || 'In this package:' || E'\n';
	FOR r IN SELECT sl.line_no, i.sku, i.name, sl.qty FROM oms.shipment_lines sl
			   JOIN oms.order_lines l ON l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no
			   JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
			  WHERE sl.tenant_id = v_tenant AND sl.shipment_id = s.id ORDER BY sl.line_no
	LOOP
		h := h || format('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>', r.line_no, oms._html(r.sku), oms._html(r.name), r.qty) || E'\n';
		t := t || format('  %s  %s  %s  x %s', r.line_no, r.sku, r.name, r.qty) || E'\n';
	END LOOP;
	h := h || '</table>' || E'\n';
	-- To follow: units of each line not cancelled and not in this package or an earlier one.
	FOR r IN SELECT l.line_no, i.sku, i.name,
					l.qty - l.qty_cancelled - coalesce((SELECT sum(sl.qty) FROM oms.shipment_lines sl
														 WHERE sl.tenant_id = l.tenant_id AND sl.order_id = l.order_id
														   AND sl.line_no = l.line_no AND sl.shipment_id <= s.id), 0) AS qty
			   FROM oms.order_lines l JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
			  WHERE l.tenant_id = v_tenant AND l.order_id = o.id ORDER BY l.line_no
	LOOP
		CONTINUE WHEN r.qty <= 0;
		v_follow := v_follow || format('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>', r.line_no, oms._html(r.sku),
									   oms._html(r.name), r.qty) || E'\n';
		v_tfollow := v_tfollow || format('  %s  %s  %s  x %s', r.line_no, r.sku, r.name, r.qty) || E'\n';
	END LOOP;
	IF v_follow = '' THEN
		h := h || '<p>This package completes your order.</p>' || E'\n';
		t := t || 'This package completes the order.' || E'\n';
	ELSE
		h := h || '<h3>To follow in other packages</h3><table><tr><th>Line</th><th>SKU</th><th>Item</th><th>Qty</th></tr>' || E'\n'
			 || v_follow || '</table>' || E'\n';
		t := t || 'To follow in other packages:' || E'\n' || v_tfollow;
	END IF;
	RETURN CASE format WHEN 'text' THEN t ELSE h || '</body></html>' || E'\n' END;
END
$$;
COMMENT ON FUNCTION oms.packing_slip(bigint, text) IS 'The packing slip of a package (html or text): order reference, SSCC, ship-to, the lines and quantities in it, and what is still to follow in other packages; unknown shipment or format: 22023';
CREATE OR REPLACE FUNCTION oms.shipping_label(shipment_id bigint, format text DEFAULT 'zpl') RETURNS text
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	s			oms.shipments;
	o			oms.orders;
	v_prefix	text;
	v_weight	numeric;
BEGIN
	PERFORM oms._format(format, ARRAY['zpl', 'html']);
	SELECT * INTO s FROM oms.shipments x WHERE x.tenant_id = v_tenant AND x.id = shipping_label.shipment_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown shipment %', coalesce(shipping_label.shipment_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Shipments are created by oms.pack() and listed in oms.shipments.';
	END IF;
	PERFORM oms._check_store_location(v_tenant, s.location_id);	-- store staff: their own locations' packages only
	IF s.sscc IS NULL THEN
		RAISE EXCEPTION 'shipment % has no SSCC', s.id
			USING ERRCODE = '55000',
			      HINT = 'Set the tenant''s GS1 company prefix (oms.set_document_settings) before packing: packages get their SSCC when packed.';
	END IF;
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = s.order_id;
	SELECT d.gs1_company_prefix INTO v_prefix FROM oms.document_settings d WHERE d.tenant_id = v_tenant;
	SELECT coalesce(sum(sl.qty * i.weight), 0) INTO v_weight
	  FROM oms.shipment_lines sl
	  JOIN oms.order_lines l ON l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no
	  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
	 WHERE sl.tenant_id = v_tenant AND sl.shipment_id = s.id;
	RETURN oms._label(format, 'Order ' || o.external_id || ' / package ' || oms._package_no(v_tenant, s),
					  oms._location_lines(v_tenant, s.location_id), oms._ship_to_lines(v_tenant, o),
					  ARRAY['Service: ' || coalesce(s.carrier || '.' || s.service, 'not shipped yet'),
							'Tracking: ' || coalesce(s.tracking, '-'),
							'Weight: ' || round(v_weight, 2) || ' kg'],
					  '00' || s.sscc, true, oms._sscc_text(s.sscc, coalesce(length(v_prefix), 7)));
END
$$;
COMMENT ON FUNCTION oms.shipping_label(bigint, text) IS 'A 4x6 inch shipping label of a package in ZPL II (format zpl) or HTML with an SVG barcode (format html): ship-from, ship-to, carrier service, tracking, weight, the SSCC as GS1-128 with its text; unknown shipment or format: 22023; no SSCC: 55000';
CREATE OR REPLACE FUNCTION oms._job_begin(p_job text, p_tenant text, p_batch_items int) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_job		text := oms._check_job(p_job);
	v_tenant	int;
	v_from		int := 0;
	v_max		int := 0;
	v_batch		int := p_batch_items;
	v_run		bigint;
BEGIN
	IF p_batch_items IS NULL OR p_batch_items < 1 THEN
		RAISE EXCEPTION 'batch_items must be at least 1, got %', coalesce(p_batch_items::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'A replenishment run commits after every batch of this many item ids.';
	END IF;
	IF p_tenant IS NOT NULL THEN
		PERFORM set_config('oms.tenant', p_tenant, false);
	END IF;
	v_tenant := oms.current_tenant_id();

	IF NOT pg_try_advisory_lock(hashtext('oms.' || v_job), v_tenant) THEN
		INSERT INTO oms.job_runs (tenant_id, job, status, finished_at, error)
		VALUES (v_tenant, v_job, 'skipped', clock_timestamp(), 'another run of this job was in progress');
		RAISE NOTICE 'job "%" of tenant "%" is already running in another session; this run does nothing',
			v_job, current_setting('oms.tenant');
		RETURN NULL;
	END IF;

	-- Runs left 'running' by a backend that is gone are closed as failed.
	UPDATE oms.job_runs r SET status = 'failed', finished_at = clock_timestamp(),
							  error = 'the run ended without finishing (server restart or backend terminated)'
	 WHERE r.tenant_id = v_tenant AND r.job = v_job AND r.status = 'running';
	IF v_job = 'replenishment' THEN
		-- The demand statistics in today's windows before the batches read them.
		PERFORM oms.refresh_demand_stats();
		SELECT min(i.id), max(i.id) INTO v_from, v_max FROM oms.items i WHERE i.tenant_id = v_tenant;
	ELSE
		v_batch := 1;
	END IF;
	INSERT INTO oms.job_runs (tenant_id, job, status, progress_total, batch_items, next_item, last_item, run_day)
	VALUES (v_tenant, v_job, 'running', coalesce(ceil((v_max - v_from + 1)::numeric / v_batch), 0),
			v_batch, v_from, v_max, oms.today())
	RETURNING id INTO v_run;
	RETURN v_run;
END
$$;
COMMENT ON FUNCTION oms._job_begin(text, text, int) IS 'Internal (oms.run_job): checks the job, takes its advisory lock for the tenant (or records a skipped run and returns NULL), closes runs left running, and records the new run with its cursor; returns its id';
CREATE OR REPLACE FUNCTION oms._job_next(p_run bigint) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r		oms.job_runs;
	v_to	int;
	v_rows	bigint;
	v_state	text;
	v_msg	text;
BEGIN
	SELECT * INTO r FROM oms.job_runs x
	 WHERE x.id = p_run AND x.tenant_id = oms.current_tenant_id() AND x.status = 'running' AND x.backend_pid = pg_backend_pid();
	IF NOT FOUND THEN
		RAISE EXCEPTION 'job run % is not running in this session', coalesce(p_run::text, 'NULL')
			USING ERRCODE = '55000', HINT = 'Runs are started with CALL oms.run_job(job, tenant).';
	END IF;
	IF r.next_item IS NULL OR r.next_item > r.last_item THEN
		RETURN false;
	END IF;
	-- The pause between batches (oms.job_batch_pause), before this batch takes any lock.
	IF r.progress_done > 0 AND current_setting('oms.job_batch_pause') NOT IN ('0', '0ms') THEN
		PERFORM pg_sleep_for(current_setting('oms.job_batch_pause')::interval);
	END IF;
	v_to := int4(LEAST(r.next_item::bigint + r.batch_items - 1, r.last_item));
	BEGIN
		v_rows := oms._job_step(r.job, r.tenant_id, r.run_day, r.next_item, v_to);
	EXCEPTION WHEN OTHERS THEN
		-- The batches before this one are committed; the run is recorded as failed, and
		-- oms._job_end raises the error once this record is committed.
		GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
		UPDATE oms.job_runs x SET status = 'failed', finished_at = clock_timestamp(), error = v_msg, error_code = v_state
		 WHERE x.id = p_run;
		RETURN false;
	END;
	UPDATE oms.job_runs x SET progress_done = x.progress_done + 1, rows_touched = x.rows_touched + v_rows, next_item = v_to + 1
	 WHERE x.id = p_run;
	RETURN v_to < r.last_item;
END
$$;
COMMENT ON FUNCTION oms._job_next(bigint) IS 'Internal (oms.run_job): runs the next batch of a run of this session and records its progress; false when nothing is left or the batch failed (recorded)';
CREATE OR REPLACE FUNCTION oms._job_end(p_run bigint) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r	oms.job_runs;
BEGIN
	SELECT * INTO r FROM oms.job_runs x
	 WHERE x.id = p_run AND x.tenant_id = oms.current_tenant_id() AND x.backend_pid = pg_backend_pid();
	IF NOT FOUND THEN
		RAISE EXCEPTION 'job run % is not a run of this session', coalesce(p_run::text, 'NULL')
			USING ERRCODE = '55000', HINT = 'Runs are started with CALL oms.run_job(job, tenant).';
	END IF;
	IF r.status = 'running' THEN
		UPDATE oms.job_runs x SET status = 'succeeded', finished_at = clock_timestamp() WHERE x.id = p_run;
	END IF;
	PERFORM pg_advisory_unlock(hashtext('oms.' || r.job), r.tenant_id);
	IF r.status = 'failed' THEN
		RAISE EXCEPTION USING ERRCODE = coalesce(r.error_code, 'XX000'), MESSAGE = r.error,
			  DETAIL = format('Job "%s", run %s: the batches before this one are committed.', r.job, r.id);
	END IF;
END
$$;
COMMENT ON FUNCTION oms._job_end(bigint) IS 'Internal (oms.run_job): marks a finished run succeeded, releases the job''s advisory lock, and raises the recorded error of a failed run';
CREATE OR REPLACE PROCEDURE oms.run_job(job text, tenant text DEFAULT NULL, batch_items int DEFAULT 1000)
	LANGUAGE plpgsql
AS $$
DECLARE
	v_run	bigint;
BEGIN
	v_run := oms._job_begin(job, tenant, batch_items);
	COMMIT;
	IF v_run IS NULL THEN
		RETURN;
	END IF;
	WHILE oms._job_next(v_run) LOOP
		COMMIT;
	END LOOP;
	COMMIT;
	PERFORM oms._job_end(v_run);
	COMMIT;
END
$$;
CREATE OR REPLACE FUNCTION oms._routing_data_changed() RETURNS trigger
	LANGUAGE c
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_routing_data_changed';
COMMENT ON FUNCTION oms._routing_data_changed() IS 'Internal: trigger invalidating every backend''s cached routing locations after a change of oms.locations or oms.country_centroids';
CREATE OR REPLACE FUNCTION oms._take_order_capacity(p_tenant int, p_order bigint, p_loc int[], p_day date[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_loc	int[];
	v_day	date[];
BEGIN
	-- The first (lowest) day per location the order is not yet counted at, in location order.
	SELECT array_agg(x.location_id ORDER BY x.location_id, x.day), array_agg(x.day ORDER BY x.location_id, x.day)
	  INTO v_loc, v_day
	  FROM (SELECT DISTINCT ON (p_loc[n]) p_loc[n] AS location_id, p_day[n] AS day
			  FROM generate_subscripts(p_loc, 1) n
			 WHERE p_day[n] IS NOT NULL
			   AND NOT EXISTS (SELECT FROM oms.order_capacity c
								WHERE c.tenant_id = p_tenant AND c.order_id = p_order AND c.location_id = p_loc[n])
			 ORDER BY p_loc[n], p_day[n]) x;
	IF v_loc IS NULL THEN
		RETURN;
	END IF;
	PERFORM oms._take_capacity(p_tenant, v_loc, v_day);
	INSERT INTO oms.order_capacity (tenant_id, order_id, location_id, day)
		SELECT p_tenant, p_order, v_loc[n], v_day[n] FROM generate_subscripts(v_loc, 1) n
		 WHERE EXISTS (SELECT FROM oms.locations l
						WHERE l.tenant_id = p_tenant AND l.id = v_loc[n] AND l.daily_capacity > 0);
END
$$;
COMMENT ON FUNCTION oms._take_order_capacity(int, bigint, int[], date[]) IS 'Internal: counts an order at the locations (and their days) a route sends it to, once per order and location (oms.order_capacity); OM030 when a day''s capacity is gone';
CREATE OR REPLACE FUNCTION oms._release_order_capacity(p_tenant int, p_order bigint)
	RETURNS TABLE (location_id int, day date)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r	record;
BEGIN
	FOR r IN SELECT c.location_id, c.day FROM oms.order_capacity c
			  WHERE c.tenant_id = p_tenant AND c.order_id = p_order
				AND NOT EXISTS (SELECT FROM oms.reservations x
								 WHERE x.tenant_id = p_tenant AND x.order_id = p_order
								   AND x.location_id = c.location_id)
				AND NOT EXISTS (SELECT FROM oms.shipments s
								 WHERE s.tenant_id = p_tenant AND s.order_id = p_order
								   AND s.location_id = c.location_id)
			  ORDER BY c.location_id, c.day
	LOOP
		UPDATE oms.location_capacity_used u SET used = u.used - 1
		 WHERE u.tenant_id = p_tenant AND u.location_id = r.location_id AND u.day = r.day AND u.used > 0;
		DELETE FROM oms.order_capacity c
		 WHERE c.tenant_id = p_tenant AND c.order_id = p_order AND c.location_id = r.location_id;
		location_id := r.location_id;
		day := r.day;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._release_order_capacity(int, bigint) IS 'Internal: gives back the daily capacity an order counted at locations it no longer uses (no reservation there, nothing shipped from there); returns those (location, day)';
CREATE OR REPLACE FUNCTION oms._slot_units(p_tenant int, p_item int, p_location int, p_delta bigint) RETURNS boolean
	LANGUAGE c
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_slot_units';
COMMENT ON FUNCTION oms._slot_units(int, int, int, bigint) IS 'Internal: moves reserved of a hot stock row by delta for its slots (positive only within on_hand - reserved - safety_stock); false when the units are not there';
CREATE OR REPLACE FUNCTION oms.set_hot(sku text, hot boolean, slots int DEFAULT 16) RETURNS int
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int := oms._item_id(v_tenant, set_hot.sku);
	r			record;
	v_n			int := 0;
BEGIN
	IF set_hot.hot IS NULL THEN
		RAISE EXCEPTION 'hot must be true or false for SKU "%"', set_hot.sku
			USING ERRCODE = '22023', HINT = 'oms.set_hot(''SKU-1'', true) before a flash sale, false after it.';
	END IF;
	IF set_hot.slots IS NULL OR set_hot.slots < 2 OR set_hot.slots > 64 THEN
		RAISE EXCEPTION 'invalid number of slots % for SKU "%"', coalesce(set_hot.slots::text, 'NULL'), set_hot.sku
			USING ERRCODE = '22023', HINT = 'From 2 to 64; about the number of clients that buy at once (default 16).';
	END IF;
	-- Every stock row of the SKU, in lock order; its slots' free units go back to the row first.
	FOR r IN SELECT s.location_id, s.hot FROM oms.stock s
			  WHERE s.tenant_id = v_tenant AND s.item_id = v_item
			  ORDER BY s.location_id
			  FOR UPDATE
	LOOP
		PERFORM oms._unslot(v_tenant, v_item, r.location_id);
		DELETE FROM oms.stock_slots x
		 WHERE x.tenant_id = v_tenant AND x.item_id = v_item AND x.location_id = r.location_id;
		UPDATE oms.stock s SET hot = set_hot.hot
		 WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = r.location_id;
		IF set_hot.hot THEN
			-- Empty slots: the first orders fill them from the stock row.
			INSERT INTO oms.stock_slots (tenant_id, item_id, location_id, slot)
				SELECT v_tenant, v_item, r.location_id, n FROM generate_series(0, set_hot.slots - 1) n;
		END IF;
		v_n := v_n + 1;
	END LOOP;
	RETURN v_n;
END
$$;
COMMENT ON FUNCTION oms.set_hot(text, boolean, int) IS 'Declares a SKU hot (a flash sale) or not: its stock rows get slots that concurrent orders take from without queuing on one row (true), or give their free units back (false); returns the number of stock rows; unknown SKU: 22023';
CREATE OR REPLACE FUNCTION oms._bi_lines_inserted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		WITH l AS MATERIALIZED (
			SELECT n.tenant_id, n.order_id, n.line_no, n.item_id, n.location_id, n.state, n.qty, n.qty_cancelled, n.qty_shipped,
				   n.qty_returned, n.unit_price, (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, o.currency,
				   o.ship_country, o.attributes, o.customer_ref
			  FROM new_lines n
			  JOIN oms.orders o ON o.tenant_id = n.tenant_id AND o.id = n.order_id
		), deltas AS (
			INSERT INTO oms.bi_sales_deltas
			SELECT l.tenant_id, l.day, l.channel_id, l.location_id, l.item_id, l.currency,
				   l.ship_country, l.attributes ->> 'seller', l.attributes ->> 'source_page',
				   pg_catalog.count(*) FILTER (WHERE l.line_no = 1), pg_catalog.count(*),
				   pg_catalog.count(*) FILTER (WHERE l.state = 'backordered'),
				   pg_catalog.sum(l.qty), pg_catalog.sum(l.qty_cancelled), pg_catalog.sum(l.qty_shipped), pg_catalog.sum(l.qty_returned),
				   pg_catalog.sum(l.qty * l.unit_price), pg_catalog.sum(l.qty_cancelled * l.unit_price),
				   pg_catalog.sum(l.qty_returned * l.unit_price)
			  FROM l
			 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
		)
		INSERT INTO oms.bi_order_sales AS b (tenant_id, order_id, day, channel_id, customer, currency, lines, units, revenue,
											 units_returned, lines_incomplete)
		SELECT l.tenant_id, l.order_id, l.day, l.channel_id, l.customer_ref, l.currency, pg_catalog.count(*),
			   pg_catalog.sum(l.qty - l.qty_cancelled), pg_catalog.sum((l.qty - l.qty_cancelled) * l.unit_price),
			   pg_catalog.sum(l.qty_returned), pg_catalog.count(*) FILTER (WHERE l.qty_cancelled > 0 OR l.qty_shipped < l.qty)
		  FROM l
		 GROUP BY 1, 2, 3, 4, 5, 6
		ON CONFLICT (tenant_id, order_id) DO UPDATE
		   SET lines = b.lines + EXCLUDED.lines, units = b.units + EXCLUDED.units, revenue = b.revenue + EXCLUDED.revenue,
			   units_returned = b.units_returned + EXCLUDED.units_returned,
			   lines_incomplete = b.lines_incomplete + EXCLUDED.lines_incomplete;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus")
	PERFORM oms._bi_lines_on_shard(TG_OP, ARRAY(SELECT ROW(t.*)::oms.order_lines FROM new_lines t), NULL);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_inserted() IS 'Internal: statement trigger on order_lines INSERT: adds the new lines to oms.bi_sales_deltas and to their order''s row of oms.bi_order_sales';
CREATE OR REPLACE FUNCTION oms._bi_lines_updated() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_shipments	bigint[];
	v_tenant	int;
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		WITH changed AS MATERIALIZED (
			SELECT n.tenant_id, n.order_id, n.line_no,
				   n.item_id AS n_item, n.location_id AS n_loc, n.qty AS n_qty, n.qty_cancelled AS n_cancelled,
				   n.qty_shipped AS n_shipped, n.qty_returned AS n_returned, n.unit_price AS n_price,
				   d.item_id AS d_item, d.location_id AS d_loc, d.qty AS d_qty, d.qty_cancelled AS d_cancelled,
				   d.qty_shipped AS d_shipped, d.qty_returned AS d_returned, d.unit_price AS d_price,
				   n.location_id IS DISTINCT FROM d.location_id
					   AND EXISTS (SELECT FROM oms.order_history h
									WHERE h.tenant_id = n.tenant_id AND h.order_id = n.order_id AND h.line_no = n.line_no
									  AND h.from_state IS NULL AND h.to_state = 'backordered') AS moved_backorder
			  FROM new_lines n
			  JOIN old_lines d ON d.tenant_id = n.tenant_id AND d.order_id = n.order_id AND d.line_no = n.line_no
			 WHERE (n.item_id, n.location_id, n.qty, n.qty_cancelled, n.qty_shipped, n.qty_returned, n.unit_price)
				   IS DISTINCT FROM (d.item_id, d.location_id, d.qty, d.qty_cancelled, d.qty_shipped, d.qty_returned, d.unit_price)
		), c AS MATERIALIZED (
			SELECT x.tenant_id, x.order_id, v.item_id, v.location_id, v.sign * (x.line_no = 1)::int AS orders, v.sign AS lines,
				   v.sign * x.moved_backorder::int AS lines_backordered, v.sign * v.qty AS qty,
				   v.sign * v.qty_cancelled AS qty_cancelled, v.sign * v.qty_shipped AS qty_shipped,
				   v.sign * v.qty_returned AS qty_returned, v.sign * v.qty * v.unit_price AS gross,
				   v.sign * v.qty_cancelled * v.unit_price AS cancelled_value, v.sign * v.qty_returned * v.unit_price AS returned_value,
				   v.sign * (v.qty_cancelled > 0 OR v.qty_shipped < v.qty)::int AS incomplete,
				   (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, o.currency, o.ship_country, o.attributes, o.customer_ref
			  FROM changed x
			 CROSS JOIN LATERAL (VALUES (1, x.n_item, x.n_loc, x.n_qty::bigint, x.n_cancelled::bigint, x.n_shipped::bigint,
										 x.n_returned::bigint, x.n_price),
										(-1, x.d_item, x.d_loc, x.d_qty, x.d_cancelled, x.d_shipped, x.d_returned, x.d_price))
				   v(sign, item_id, location_id, qty, qty_cancelled, qty_shipped, qty_returned, unit_price)
			  JOIN oms.orders o ON o.tenant_id = x.tenant_id AND o.id = x.order_id
		), deltas AS (
			INSERT INTO oms.bi_sales_deltas
			SELECT c.tenant_id, c.day, c.channel_id, c.location_id, c.item_id, c.currency,
				   c.ship_country, c.attributes ->> 'seller', c.attributes ->> 'source_page',
				   pg_catalog.sum(c.orders), pg_catalog.sum(c.lines), pg_catalog.sum(c.lines_backordered),
				   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_shipped), pg_catalog.sum(c.qty_returned),
				   pg_catalog.sum(c.gross), pg_catalog.sum(c.cancelled_value), pg_catalog.sum(c.returned_value)
			  FROM c
			 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
			HAVING pg_catalog.sum(c.orders) <> 0 OR pg_catalog.sum(c.lines) <> 0 OR pg_catalog.sum(c.lines_backordered) <> 0
				OR pg_catalog.sum(c.qty) <> 0 OR pg_catalog.sum(c.qty_cancelled) <> 0 OR pg_catalog.sum(c.qty_shipped) <> 0
				OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.gross) <> 0 OR pg_catalog.sum(c.cancelled_value) <> 0
				OR pg_catalog.sum(c.returned_value) <> 0
		)
		INSERT INTO oms.bi_order_sales AS b (tenant_id, order_id, day, channel_id, customer, currency, lines, units, revenue,
											 units_returned, lines_incomplete)
		SELECT c.tenant_id, c.order_id, c.day, c.channel_id, c.customer_ref, c.currency, pg_catalog.sum(c.lines),
			   pg_catalog.sum(c.qty - c.qty_cancelled), pg_catalog.sum(c.gross - c.cancelled_value),
			   pg_catalog.sum(c.qty_returned), pg_catalog.sum(c.incomplete)
		  FROM c
		 GROUP BY 1, 2, 3, 4, 5, 6
		HAVING pg_catalog.sum(c.qty - c.qty_cancelled) <> 0 OR pg_catalog.sum(c.gross - c.cancelled_value) <> 0
			OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.incomplete) <> 0
		ON CONFLICT (tenant_id, order_id) DO UPDATE
		   SET lines = b.lines + EXCLUDED.lines, units = b.units + EXCLUDED.units, revenue = b.revenue + EXCLUDED.revenue,
			   units_returned = b.units_returned + EXCLUDED.units_returned,
			   lines_incomplete = b.lines_incomplete + EXCLUDED.lines_incomplete;

		FOR v_tenant, v_shipments IN
			SELECT x.tenant_id, pg_catalog.array_agg(DISTINCT x.shipment_id)
			  FROM new_lines n
			  JOIN old_lines d ON d.tenant_id = n.tenant_id AND d.order_id = n.order_id AND d.line_no = n.line_no
			  JOIN oms.shipment_lines x ON x.tenant_id = n.tenant_id AND x.order_id = n.order_id AND x.line_no = n.line_no
			 WHERE n.promised_date IS DISTINCT FROM d.promised_date AND n.qty_shipped > 0
			 GROUP BY x.tenant_id
		LOOP
			PERFORM oms._bi_refresh_shipments(v_tenant, v_shipments);
		END LOOP;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus")
	PERFORM oms._bi_lines_on_shard(TG_OP, ARRAY(SELECT ROW(t.*)::oms.order_lines FROM new_lines t),
								 ARRAY(SELECT ROW(t.*)::oms.order_lines FROM old_lines t));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_updated() IS 'Internal: statement trigger on order_lines UPDATE: writes to oms.bi_sales_deltas and oms.bi_order_sales the net change of the lines whose quantities, price, item or location changed (a pure state change writes nothing); a shipped line''s new promised date re-evaluates its shipments in oms.bi_shipments';
CREATE OR REPLACE FUNCTION oms._bi_lines_deleted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		WITH l AS MATERIALIZED (
			SELECT d.tenant_id, d.order_id, d.line_no, d.item_id, d.location_id, d.qty, d.qty_cancelled, d.qty_shipped,
				   d.qty_returned, d.unit_price, (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, o.currency,
				   o.ship_country, o.attributes, o.customer_ref,
				   EXISTS (SELECT FROM oms.order_history h
							WHERE h.tenant_id = d.tenant_id AND h.order_id = d.order_id AND h.line_no = d.line_no
							  AND h.from_state IS NULL AND h.to_state = 'backordered') AS backordered
			  FROM old_lines d
			  JOIN oms.orders o ON o.tenant_id = d.tenant_id AND o.id = d.order_id
		), deltas AS (
			INSERT INTO oms.bi_sales_deltas
			SELECT l.tenant_id, l.day, l.channel_id, l.location_id, l.item_id, l.currency,
				   l.ship_country, l.attributes ->> 'seller', l.attributes ->> 'source_page',
				   -pg_catalog.count(*) FILTER (WHERE l.line_no = 1), -pg_catalog.count(*), -pg_catalog.count(*) FILTER (WHERE l.backordered),
				   -pg_catalog.sum(l.qty), -pg_catalog.sum(l.qty_cancelled), -pg_catalog.sum(l.qty_shipped), -pg_catalog.sum(l.qty_returned),
				   -pg_catalog.sum(l.qty * l.unit_price), -pg_catalog.sum(l.qty_cancelled * l.unit_price),
				   -pg_catalog.sum(l.qty_returned * l.unit_price)
			  FROM l
			 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
		)
		UPDATE oms.bi_order_sales b
		   SET lines = b.lines - g.lines, units = b.units - g.units, revenue = b.revenue - g.revenue,
			   units_returned = b.units_returned - g.units_returned, lines_incomplete = b.lines_incomplete - g.incomplete
		  FROM (SELECT l.tenant_id, l.order_id, pg_catalog.count(*) AS lines, pg_catalog.sum(l.qty - l.qty_cancelled) AS units,
					   pg_catalog.sum((l.qty - l.qty_cancelled) * l.unit_price) AS revenue, pg_catalog.sum(l.qty_returned) AS units_returned,
					   pg_catalog.count(*) FILTER (WHERE l.qty_cancelled > 0 OR l.qty_shipped < l.qty) AS incomplete
				  FROM l GROUP BY 1, 2) g
		 WHERE b.tenant_id = g.tenant_id AND b.order_id = g.order_id;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus")
	PERFORM oms._bi_lines_on_shard(TG_OP, NULL, ARRAY(SELECT ROW(t.*)::oms.order_lines FROM old_lines t));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_deleted() IS 'Internal: statement trigger on order_lines DELETE: takes the deleted lines out of the BI sales summary and their order''s row of oms.bi_order_sales';
CREATE OR REPLACE FUNCTION oms._bi_order_changed() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.bi_sales_deltas
	SELECT l.tenant_id, v.day, v.channel_id, l.location_id, l.item_id, v.currency, v.country, v.seller, v.page,
		   v.sign * pg_catalog.count(*) FILTER (WHERE l.line_no = 1), v.sign * pg_catalog.count(*),
		   v.sign * pg_catalog.count(*) FILTER (WHERE EXISTS (SELECT FROM oms.order_history h
															   WHERE h.tenant_id = l.tenant_id AND h.order_id = l.order_id
																 AND h.line_no = l.line_no AND h.from_state IS NULL
																 AND h.to_state = 'backordered')),
		   v.sign * pg_catalog.sum(l.qty), v.sign * pg_catalog.sum(l.qty_cancelled), v.sign * pg_catalog.sum(l.qty_shipped),
		   v.sign * pg_catalog.sum(l.qty_returned), v.sign * pg_catalog.sum(l.qty * l.unit_price),
		   v.sign * pg_catalog.sum(l.qty_cancelled * l.unit_price), v.sign * pg_catalog.sum(l.qty_returned * l.unit_price)
	  FROM oms.order_lines l
	 CROSS JOIN (VALUES (-1, (OLD.placed_at AT TIME ZONE 'UTC')::date, OLD.channel_id, OLD.currency, OLD.ship_country,
						 OLD.attributes ->> 'seller', OLD.attributes ->> 'source_page'),
						(1, (NEW.placed_at AT TIME ZONE 'UTC')::date, NEW.channel_id, NEW.currency, NEW.ship_country,
						 NEW.attributes ->> 'seller', NEW.attributes ->> 'source_page'))
		   v(sign, day, channel_id, currency, country, seller, page)
	 WHERE l.tenant_id = NEW.tenant_id AND l.order_id = NEW.id
	 GROUP BY l.tenant_id, v.sign, v.day, v.channel_id, l.location_id, l.item_id, v.currency, v.country, v.seller, v.page;
	UPDATE oms.bi_order_sales b
	   SET day = (NEW.placed_at AT TIME ZONE 'UTC')::date, channel_id = NEW.channel_id, customer = NEW.customer_ref,
		   currency = NEW.currency
	 WHERE b.tenant_id = NEW.tenant_id AND b.order_id = NEW.id;
	UPDATE oms.bi_shipments f SET channel_id = NEW.channel_id WHERE f.tenant_id = NEW.tenant_id AND f.order_id = NEW.id;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_order_changed() IS 'Internal: row trigger on orders UPDATE of what the BI summaries are keyed by (day of placement, channel, currency, country, seller, page, customer): moves the order''s sales from the old keys to the new ones';
CREATE OR REPLACE FUNCTION oms._bi_refresh_shipments(p_tenant int, p_ids bigint[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	WITH gone AS (
		DELETE FROM oms.bi_shipments f
		 WHERE f.tenant_id = p_tenant AND (p_ids IS NULL OR f.shipment_id = ANY (p_ids))
		RETURNING f.order_id, f.on_time
	)
	UPDATE oms.bi_order_sales b SET late_shipments = b.late_shipments - g.late
	  FROM (SELECT gone.order_id, count(*) AS late FROM gone WHERE gone.on_time IS FALSE GROUP BY gone.order_id) g
	 WHERE b.tenant_id = p_tenant AND b.order_id = g.order_id;
	WITH added AS (
		INSERT INTO oms.bi_shipments
		SELECT s.tenant_id, s.id, s.order_id, (s.shipped_at AT TIME ZONE 'UTC')::date, o.channel_id, s.location_id,
			   min(l.promised_date),
			   (s.shipped_at AT TIME ZONE 'UTC')::date <= min(l.promised_date),
			   round((EXTRACT(epoch FROM s.shipped_at - o.placed_at) / 3600)::numeric, 1)::double precision,
			   round((EXTRACT(epoch FROM s.delivered_at - o.placed_at) / 3600)::numeric, 1)::double precision
		  FROM oms.shipments s
		  JOIN oms.orders o ON o.tenant_id = s.tenant_id AND o.id = s.order_id
		  LEFT JOIN oms.shipment_lines x ON x.tenant_id = s.tenant_id AND x.shipment_id = s.id
		  LEFT JOIN oms.order_lines l ON l.tenant_id = x.tenant_id AND l.order_id = x.order_id AND l.line_no = x.line_no
		 WHERE s.tenant_id = p_tenant AND (p_ids IS NULL OR s.id = ANY (p_ids)) AND s.shipped_at IS NOT NULL
		 GROUP BY s.tenant_id, s.id, o.channel_id, o.placed_at
		 ORDER BY 4, 2
		RETURNING order_id, on_time
	)
	UPDATE oms.bi_order_sales b SET late_shipments = b.late_shipments + g.late
	  FROM (SELECT added.order_id, count(*) AS late FROM added WHERE added.on_time IS FALSE GROUP BY added.order_id) g
	 WHERE b.tenant_id = p_tenant AND b.order_id = g.order_id;
END
$$;
COMMENT ON FUNCTION oms._bi_refresh_shipments(int, bigint[]) IS 'Internal: recomputes the rows of oms.bi_shipments of the given shipments of a tenant (all when NULL) and their orders'' count of late shipments in oms.bi_order_sales';
CREATE OR REPLACE FUNCTION oms._bi_shipment_changed() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	PERFORM oms._bi_refresh_shipments(NEW.tenant_id, ARRAY[NEW.id]);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_shipment_changed() IS 'Internal: row trigger on shipments: a shipment that left, was delivered or moved gets its row of oms.bi_shipments recomputed';
CREATE OR REPLACE FUNCTION oms._bi_return_added() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	UPDATE oms.bi_order_sales b SET returns = b.returns + 1 WHERE b.tenant_id = NEW.tenant_id AND b.order_id = NEW.order_id;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._bi_return_added() IS 'Internal: row trigger on returns INSERT: counts the return on its order''s row of oms.bi_order_sales (perfect orders)';
CREATE OR REPLACE FUNCTION oms._bi_rollup_days(p_tenant int, p_days date[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	DELETE FROM oms.bi_sales_rollup r WHERE r.tenant_id = p_tenant AND (p_days IS NULL OR r.day = ANY (p_days));
	INSERT INTO oms.bi_sales_rollup
	SELECT h.tenant_id, h.day,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN 'channel'
				WHEN GROUPING(i.brand) = 0 THEN 'brand' WHEN GROUPING(i.category) = 0 THEN 'category'
				WHEN GROUPING(h.country) = 0 THEN 'country' WHEN GROUPING(h.seller) = 0 THEN 'seller' ELSE 'page' END,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN c.code
				WHEN GROUPING(i.brand) = 0 THEN i.brand WHEN GROUPING(i.category) = 0 THEN i.category
				WHEN GROUPING(h.country) = 0 THEN h.country WHEN GROUPING(h.seller) = 0 THEN h.seller ELSE h.page END,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN c.code WHEN GROUPING(i.brand) = 0 THEN i.brand
				WHEN GROUPING(i.category) = 0 THEN i.category WHEN GROUPING(h.country) = 0 THEN h.country
				WHEN GROUPING(h.seller) = 0 THEN h.seller ELSE h.page END,
		   CASE WHEN GROUPING(c.code, h.location_id) = 0 THEN h.location_id END,
		   h.currency, sum(h.orders), sum(h.lines), sum(h.lines_backordered), sum(h.units), sum(h.units_cancelled),
		   sum(h.units_shipped), sum(h.units_returned), sum(h.gross - h.cancelled_value), sum(h.returned_value)
	  FROM oms.bi_sales_daily h
	  JOIN oms.items i ON i.tenant_id = h.tenant_id AND i.id = h.item_id
	  JOIN oms.channels c ON c.tenant_id = h.tenant_id AND c.id = h.channel_id
	 WHERE h.tenant_id = p_tenant AND (p_days IS NULL OR h.day = ANY (p_days))
	 GROUP BY h.tenant_id, h.day, h.currency,
		   GROUPING SETS ((c.code, h.location_id), (i.brand), (i.category), (h.country), (h.seller), (h.page))
	HAVING sum(h.lines) <> 0;
	DELETE FROM oms.bi_product_daily p WHERE p.tenant_id = p_tenant AND (p_days IS NULL OR p.day = ANY (p_days));
	INSERT INTO oms.bi_product_daily
	SELECT h.tenant_id, h.day, h.item_id, h.currency, sum(h.orders), sum(h.lines), sum(h.lines_backordered), sum(h.units),
		   sum(h.units_cancelled), sum(h.units_shipped), sum(h.units_returned), sum(h.gross - h.cancelled_value),
		   sum(h.returned_value)
	  FROM oms.bi_sales_daily h
	 WHERE h.tenant_id = p_tenant AND (p_days IS NULL OR h.day = ANY (p_days))
	 GROUP BY h.tenant_id, h.day, h.item_id, h.currency
	HAVING sum(h.lines) <> 0
	 ORDER BY h.day, h.item_id, h.currency;
END
$$;
COMMENT ON FUNCTION oms._bi_rollup_days(int, date[]) IS 'Internal: recomputes a tenant''s oms.bi_sales_rollup and oms.bi_product_daily for the given days (all days when NULL) from oms.bi_sales_daily';
CREATE OR REPLACE FUNCTION oms._bi_rebuild(p_tenant int) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_rows		bigint;
BEGIN
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('oms.bi_sales_daily'), p_tenant);
	DELETE FROM oms.bi_sales_daily h WHERE h.tenant_id = p_tenant;
	-- One snapshot: orders committed before are counted from their lines and their deltas deleted.
	-- Backorders at placement come from the lines' first state in order_history.
	WITH gone AS (
		DELETE FROM oms.bi_sales_deltas d WHERE d.tenant_id = p_tenant RETURNING 1
	)
	INSERT INTO oms.bi_sales_daily
	SELECT l.tenant_id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, l.location_id, l.item_id, o.currency,
		   o.ship_country, o.attributes ->> 'seller', o.attributes ->> 'source_page',
		   count(*) FILTER (WHERE l.line_no = 1), count(*),
		   count(*) FILTER (WHERE EXISTS (SELECT FROM oms.order_history h
										   WHERE h.tenant_id = l.tenant_id AND h.order_id = l.order_id
											 AND h.line_no = l.line_no AND h.from_state IS NULL
											 AND h.to_state = 'backordered')),
		   sum(l.qty), sum(l.qty_cancelled), sum(l.qty_shipped), sum(l.qty_returned),
		   sum(l.qty * l.unit_price), sum(l.qty_cancelled * l.unit_price), sum(l.qty_returned * l.unit_price)
	  FROM oms.orders o
	  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
	 WHERE o.tenant_id = p_tenant
	 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	PERFORM oms._bi_rollup_days(p_tenant, NULL);
	-- The order and shipment summaries (their rows are locked by whoever changes them: a
	-- concurrent change waits for this transaction, or this one for it).
	DELETE FROM oms.bi_shipments f WHERE f.tenant_id = p_tenant;
	DELETE FROM oms.bi_order_sales b WHERE b.tenant_id = p_tenant;
	INSERT INTO oms.bi_order_sales (tenant_id, order_id, day, channel_id, customer, currency, lines, units, revenue,
									units_returned, lines_incomplete, returns)
	SELECT o.tenant_id, o.id, (o.placed_at AT TIME ZONE 'UTC')::date, o.channel_id, o.customer_ref, o.currency,
		   l.lines, l.units, l.revenue, l.units_returned, l.incomplete, coalesce(r.returns, 0)
	  FROM oms.orders o
	  JOIN (SELECT l.order_id, count(*) AS lines, sum(l.qty - l.qty_cancelled) AS units,
				   sum((l.qty - l.qty_cancelled) * l.unit_price) AS revenue, sum(l.qty_returned) AS units_returned,
				   count(*) FILTER (WHERE l.qty_cancelled > 0 OR l.qty_shipped < l.qty) AS incomplete
			  FROM oms.order_lines l WHERE l.tenant_id = p_tenant GROUP BY l.order_id) l ON l.order_id = o.id
	  LEFT JOIN (SELECT r.order_id, count(*) AS returns FROM oms.returns r WHERE r.tenant_id = p_tenant GROUP BY r.order_id) r
		ON r.order_id = o.id
	 WHERE o.tenant_id = p_tenant
	 ORDER BY 3, 2;
	PERFORM oms._bi_refresh_shipments(p_tenant, NULL);
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms._bi_rebuild(int) IS 'Internal: recomputes a tenant''s BI summaries (sales per day and dimension, per order, per shipment) from its orders, lines, history, shipments and returns; returns the number of rows of oms.bi_sales_daily written';
CREATE OR REPLACE FUNCTION oms.rebuild_bi_sales() RETURNS bigint
	LANGUAGE sql
	SET search_path = oms, pg_catalog
	RETURN oms._bi_rebuild(oms.current_tenant_id());
COMMENT ON FUNCTION oms.rebuild_bi_sales() IS 'Recomputes the current tenant''s BI summaries from its orders, lines, history (backorders at placement), shipments and returns; returns the number of rows of the daily sales summary written';
CREATE OR REPLACE FUNCTION oms._bi_product_sales(p_from date, p_to date, p_tenant int)
	RETURNS TABLE (key text, label text, orders bigint, units bigint, revenue numeric, returns bigint, last_order date)
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = oms, pg_catalog
	SET work_mem = '64MB'
	SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
	v_tenant	int := p_tenant;
	v_rc		char(3) := oms.reporting_currency();
BEGIN
	RETURN QUERY
	SELECT i.sku, i.name, g.lines, g.units, g.revenue, g.returns, g.last_order
	  FROM (SELECT u.item_id, sum(u.lines)::bigint AS lines, sum(u.units)::bigint AS units,
				   CASE WHEN count(*) FILTER (WHERE u.currency <> v_rc AND u.rate IS NULL) = 0
						THEN sum(CASE WHEN u.currency = v_rc THEN u.revenue ELSE u.revenue * u.rate END) END AS revenue,
				   sum(u.units_returned)::bigint AS returns, max(u.day) AS last_order
			  FROM (SELECT p.item_id, p.day, p.currency, p.lines::int AS lines, (p.units - p.units_cancelled)::int AS units,
						   p.revenue, p.units_returned::int AS units_returned, x.rate
					  FROM oms.bi_product_daily p
					  LEFT JOIN oms.exchange_rates x ON x.rate_date = p.day AND x.from_currency = p.currency AND x.to_currency = v_rc
					 WHERE p.tenant_id = v_tenant AND p.day BETWEEN p_from AND p_to
					UNION ALL
					SELECT d.item_id, d.day, d.currency, d.lines::int, (d.units - d.units_cancelled)::int, d.gross - d.cancelled_value,
						   d.units_returned::int, x.rate
					  FROM oms.bi_sales_deltas d
					  LEFT JOIN oms.exchange_rates x ON x.rate_date = d.day AND x.from_currency = d.currency AND x.to_currency = v_rc
					 WHERE d.tenant_id = v_tenant AND d.day BETWEEN p_from AND p_to) u
			 GROUP BY u.item_id
			HAVING sum(u.lines) <> 0) g
	  JOIN oms.items i ON i.tenant_id = v_tenant AND i.id = g.item_id;
END
$$;
COMMENT ON FUNCTION oms._bi_product_sales(date, date, int) IS 'Internal: sales per SKU of a tenant over the UTC days p_from..p_to (lines, units not cancelled, revenue in the reporting currency, NULL when a rate is missing, units returned, last day), for oms_bi.top(''product'', ...)';
CREATE OR REPLACE FUNCTION oms._demand_history_written() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF pg_catalog.current_setting('oms._stats_kept', true) = 'on' THEN
		RETURN NULL;
	END IF;
	IF TG_OP IN ('INSERT', 'UPDATE') THEN
		INSERT INTO oms.demand_stats AS st (tenant_id, item_id, location_id, window_end, window_days, total, sumsq)
		SELECT DISTINCT n.tenant_id, n.item_id, n.location_id, NULL::date, 1, 0, 0
		  FROM new_rows n WHERE n.location_id IS NOT NULL
		ON CONFLICT (tenant_id, item_id, location_id) DO UPDATE SET window_end = NULL;
	END IF;
	IF TG_OP IN ('UPDATE', 'DELETE') THEN
		UPDATE oms.demand_stats st SET window_end = NULL
		  FROM (SELECT DISTINCT o.tenant_id, o.item_id, o.location_id FROM old_rows o WHERE o.location_id IS NOT NULL) o
		 WHERE st.tenant_id = o.tenant_id AND st.item_id = o.item_id AND st.location_id = o.location_id;
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._demand_history_written() IS 'Internal: statement trigger on oms.demand_history: a write by anything but compaction or rebuild marks the statistics of the SKU-locations it touches stale (oms.demand_stats.window_end NULL)';
CREATE OR REPLACE FUNCTION oms._history_days(p_tenant int, p_item int, p_location int) RETURNS int
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
	RETURN coalesce((SELECT coalesce(s.history_days, d.history_days)
					   FROM (SELECT 1) one
					   LEFT JOIN oms.replenishment_policies s
						 ON s.tenant_id = p_tenant AND s.location_id = p_location AND s.item_id = p_item
					   LEFT JOIN oms.replenishment_policies d
						 ON d.tenant_id = p_tenant AND d.location_id = p_location AND d.item_id IS NULL),
					(oms._policy_defaults() ->> 'history_days')::int);
COMMENT ON FUNCTION oms._history_days(int, int, int) IS 'Internal: the days of demand history planning reads for an item at a location (its policy, the location default, else 90)';
CREATE OR REPLACE FUNCTION oms.compact_demand_history() RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_today		date := oms.today();
	v_rows		bigint;
BEGIN
	PERFORM oms._lock_demand_history(v_tenant);
	PERFORM pg_catalog.set_config('oms._stats_kept', 'on', true);
	-- One statement: the deltas it deletes are exactly those it adds (deltas that commit later
	-- are not in its snapshot and stay for the next run). Every part reads the summary as it was
	-- before the statement, so a day's demand before (q) and its change (dq) give the change of
	-- the statistics: total + dq, sumsq + (q + dq)^2 - q^2, for the rows whose window holds the
	-- day; a SKU-location seen for the first time gets its row, with the window planning would
	-- read today.
	WITH moved AS (
		DELETE FROM oms.demand_deltas d WHERE d.tenant_id = v_tenant RETURNING d.*
	), summed AS (
		SELECT m.tenant_id, m.item_id, m.location_id, m.channel_id, m.day, pg_catalog.sum(m.ordered) AS ordered,
			   pg_catalog.sum(m.cancelled) AS cancelled, pg_catalog.sum(m.returned) AS returned,
			   pg_catalog.sum(m.lines) AS lines, pg_catalog.count(*) AS deltas
		  FROM moved m
		 GROUP BY m.tenant_id, m.item_id, m.location_id, m.channel_id, m.day
	), upserted AS (
		INSERT INTO oms.demand_history AS h (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
		SELECT s.tenant_id, s.item_id, s.location_id, s.channel_id, s.day, s.ordered, s.cancelled, s.returned, s.lines
		  FROM summed s
		 ORDER BY s.item_id, s.location_id, s.channel_id, s.day
		ON CONFLICT ON CONSTRAINT demand_history_key DO UPDATE
		   SET ordered = h.ordered + EXCLUDED.ordered, cancelled = h.cancelled + EXCLUDED.cancelled,
			   returned = h.returned + EXCLUDED.returned, lines = h.lines + EXCLUDED.lines
		RETURNING 1
	), day_change AS (
		SELECT s.item_id, s.location_id, s.day, pg_catalog.sum(s.ordered - s.cancelled) AS dq
		  FROM summed s
		 WHERE s.location_id IS NOT NULL
		 GROUP BY s.item_id, s.location_id, s.day
	), day_before AS (
		SELECT c.item_id, c.location_id, c.day, c.dq,
			   coalesce((SELECT pg_catalog.sum(h.ordered - h.cancelled) FROM oms.demand_history h
						  WHERE h.tenant_id = v_tenant AND h.item_id = c.item_id AND h.location_id = c.location_id
							AND h.day = c.day), 0) AS q
		  FROM day_change c
	), stats_changed AS (
		UPDATE oms.demand_stats st
		   SET total = st.total + x.dtotal, sumsq = st.sumsq + x.dsumsq
		  FROM (SELECT b.item_id, b.location_id, st2.window_end, st2.window_days,
					   pg_catalog.sum(b.dq) AS dtotal, pg_catalog.sum((b.q + b.dq) * (b.q + b.dq) - b.q * b.q) AS dsumsq
				  FROM day_before b
				  JOIN oms.demand_stats st2 ON st2.tenant_id = v_tenant AND st2.item_id = b.item_id AND st2.location_id = b.location_id
				 WHERE b.day >= st2.window_end - st2.window_days AND b.day < st2.window_end
				 GROUP BY b.item_id, b.location_id, st2.window_end, st2.window_days) x
		 WHERE st.tenant_id = v_tenant AND st.item_id = x.item_id AND st.location_id = x.location_id
		   AND (x.dtotal <> 0 OR x.dsumsq <> 0)
		RETURNING 1
	), stats_added AS (
		INSERT INTO oms.demand_stats (tenant_id, item_id, location_id, window_end, window_days, total, sumsq)
		SELECT v_tenant, n.item_id, n.location_id, v_today, n.days,
			   coalesce(pg_catalog.sum(b.dq) FILTER (WHERE b.day >= v_today - n.days AND b.day < v_today), 0),
			   coalesce(pg_catalog.sum(b.dq * b.dq) FILTER (WHERE b.day >= v_today - n.days AND b.day < v_today), 0)
		  FROM (SELECT DISTINCT b.item_id, b.location_id,
					   oms._history_days(v_tenant, b.item_id, b.location_id) AS days
				  FROM day_before b
				 WHERE NOT EXISTS (SELECT FROM oms.demand_stats st
									WHERE st.tenant_id = v_tenant AND st.item_id = b.item_id AND st.location_id = b.location_id)) n
		  JOIN day_before b ON b.item_id = n.item_id AND b.location_id = n.location_id
		 GROUP BY n.item_id, n.location_id, n.days
		ON CONFLICT (tenant_id, item_id, location_id) DO NOTHING
		RETURNING 1
	)
	SELECT coalesce(pg_catalog.sum(s.deltas), 0) INTO v_rows FROM summed s;
	-- A new day (or stale rows): the windows move (the days that enter and leave them).
	IF EXISTS (SELECT FROM oms.demand_stats st WHERE st.tenant_id = v_tenant AND st.window_end IS DISTINCT FROM v_today) THEN
		PERFORM oms.refresh_demand_stats();
	END IF;
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms.compact_demand_history() IS 'Folds the current tenant''s oms.demand_deltas into oms.demand_history and its per SKU-location statistics (oms.demand_stats); returns the number of deltas folded (the scheduled job "demand_history" runs it)';
CREATE OR REPLACE FUNCTION oms.refresh_demand_stats(recompute boolean DEFAULT false) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_today		date := oms.today();
	v_default	int := (oms._policy_defaults() ->> 'history_days')::int;
	v_rows		bigint;
	v_stale		bigint;
	b			record;
BEGIN
	PERFORM oms._lock_demand_history(v_tenant);
	IF recompute THEN
		DELETE FROM oms.demand_stats st WHERE st.tenant_id = v_tenant;
		WITH pairs AS (
			SELECT DISTINCT h.item_id, h.location_id FROM oms.demand_history h
			 WHERE h.tenant_id = v_tenant AND h.location_id IS NOT NULL
		), target AS (
			SELECT p.item_id, p.location_id, coalesce(s.history_days, d.history_days, v_default) AS days
			  FROM pairs p
			  LEFT JOIN oms.replenishment_policies s
				ON s.tenant_id = v_tenant AND s.location_id = p.location_id AND s.item_id = p.item_id
			  LEFT JOIN oms.replenishment_policies d
				ON d.tenant_id = v_tenant AND d.location_id = p.location_id AND d.item_id IS NULL
		)
		INSERT INTO oms.demand_stats (tenant_id, item_id, location_id, window_end, window_days, total, sumsq)
		SELECT v_tenant, t.item_id, t.location_id, v_today, t.days,
			   coalesce(pg_catalog.sum(x.q), 0), coalesce(pg_catalog.sum(x.q * x.q), 0)
		  FROM target t
		  LEFT JOIN (SELECT h.item_id, h.location_id, h.day, pg_catalog.sum(h.ordered - h.cancelled) AS q
					   FROM oms.demand_history h
					  WHERE h.tenant_id = v_tenant AND h.location_id IS NOT NULL
					  GROUP BY h.item_id, h.location_id, h.day) x
			ON x.item_id = t.item_id AND x.location_id = t.location_id
		   AND x.day >= v_today - t.days AND x.day < v_today
		 GROUP BY t.item_id, t.location_id, t.days
		 ORDER BY t.item_id, t.location_id;
		GET DIAGNOSTICS v_rows = ROW_COUNT;
		RETURN v_rows;
	END IF;

	-- Stale rows (written around compaction): recomputed from the history.
	UPDATE oms.demand_stats st
	   SET window_end = v_today, window_days = x.days, total = x.total, sumsq = x.sumsq
	  FROM (SELECT s0.item_id, s0.location_id, t.days,
				   coalesce((SELECT pg_catalog.sum(y.q) FROM (
								SELECT pg_catalog.sum(h.ordered - h.cancelled) AS q FROM oms.demand_history h
								 WHERE h.tenant_id = v_tenant AND h.item_id = s0.item_id AND h.location_id = s0.location_id
								   AND h.day >= v_today - t.days AND h.day < v_today
								 GROUP BY h.day) y), 0) AS total,
				   coalesce((SELECT pg_catalog.sum(y.q * y.q) FROM (
								SELECT pg_catalog.sum(h.ordered - h.cancelled) AS q FROM oms.demand_history h
								 WHERE h.tenant_id = v_tenant AND h.item_id = s0.item_id AND h.location_id = s0.location_id
								   AND h.day >= v_today - t.days AND h.day < v_today
								 GROUP BY h.day) y), 0) AS sumsq
			  FROM oms.demand_stats s0
			 CROSS JOIN LATERAL (SELECT oms._history_days(v_tenant, s0.item_id, s0.location_id) AS days) t
			 WHERE s0.tenant_id = v_tenant AND s0.window_end IS NULL) x
	 WHERE st.tenant_id = v_tenant AND st.item_id = x.item_id AND st.location_id = x.location_id;
	GET DIAGNOSTICS v_stale = ROW_COUNT;

	-- The rows whose window is not today's, with their old window [os, oe) and the new [ns, ne).
	CREATE TEMP TABLE pg_temp.oms_stats_moves ON COMMIT DROP AS
	SELECT t.item_id, t.location_id, t.window_end - t.window_days AS os, t.window_end AS oe,
		   v_today - t.days AS ns, v_today AS ne, t.days
	  FROM (SELECT st.item_id, st.location_id, st.window_end, st.window_days,
				   coalesce(s.history_days, d.history_days, v_default) AS days
			  FROM oms.demand_stats st
			  LEFT JOIN oms.replenishment_policies s
				ON s.tenant_id = v_tenant AND s.location_id = st.location_id AND s.item_id = st.item_id
			  LEFT JOIN oms.replenishment_policies d
				ON d.tenant_id = v_tenant AND d.location_id = st.location_id AND d.item_id IS NULL
			 WHERE st.tenant_id = v_tenant) t
	 WHERE t.window_end <> v_today OR t.window_days <> t.days;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	IF v_rows = 0 THEN
		DROP TABLE pg_temp.oms_stats_moves;
		RETURN v_stale;
	END IF;
	ANALYZE pg_temp.oms_stats_moves;
	-- Only the days at the two edges change: [min(os, ns), max(os, ns)) and [min(oe, ne),
	-- max(oe, ne)); a day counts +1 when only the new window holds it, -1 when only the old one does.
	SELECT min(LEAST(m.os, m.ns)) AS lo1, max(GREATEST(m.os, m.ns)) AS hi1,
		   min(LEAST(m.oe, m.ne)) AS lo2, max(GREATEST(m.oe, m.ne)) AS hi2
	  INTO b FROM pg_temp.oms_stats_moves m;
	UPDATE oms.demand_stats st
	   SET window_end = m.ne, window_days = m.days,
		   total = st.total + coalesce(c.dtotal, 0), sumsq = st.sumsq + coalesce(c.dsumsq, 0)
	  FROM pg_temp.oms_stats_moves m
	  LEFT JOIN (SELECT y.item_id, y.location_id, pg_catalog.sum(y.sign * y.q) AS dtotal,
						pg_catalog.sum(y.sign * y.q * y.q) AS dsumsq
				   FROM (SELECT m2.item_id, m2.location_id, h.day,
								(h.day >= m2.ns AND h.day < m2.ne)::int - (h.day >= m2.os AND h.day < m2.oe)::int AS sign,
								pg_catalog.sum(h.ordered - h.cancelled) AS q
						   FROM oms.demand_history h
						   JOIN pg_temp.oms_stats_moves m2 ON m2.item_id = h.item_id AND m2.location_id = h.location_id
						  WHERE h.tenant_id = v_tenant
							AND ((h.day >= b.lo1 AND h.day < b.hi1) OR (h.day >= b.lo2 AND h.day < b.hi2))
							AND ((h.day >= LEAST(m2.os, m2.ns) AND h.day < GREATEST(m2.os, m2.ns))
								 OR (h.day >= LEAST(m2.oe, m2.ne) AND h.day < GREATEST(m2.oe, m2.ne)))
						  GROUP BY m2.item_id, m2.location_id, h.day, m2.ns, m2.ne, m2.os, m2.oe) y
				  WHERE y.sign <> 0
				  GROUP BY y.item_id, y.location_id) c
		ON c.item_id = m.item_id AND c.location_id = m.location_id
	 WHERE st.tenant_id = v_tenant AND st.item_id = m.item_id AND st.location_id = m.location_id;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	DROP TABLE pg_temp.oms_stats_moves;
	RETURN v_stale + v_rows;
END
$$;
COMMENT ON FUNCTION oms.refresh_demand_stats(boolean) IS 'Moves the current tenant''s demand statistics (oms.demand_stats) to the windows planning reads today (adding the days that enter, subtracting those that leave); recompute: recomputes them from oms.demand_history; returns the rows changed';
CREATE OR REPLACE FUNCTION oms.rebuild_demand_history("from" date DEFAULT NULL) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_rows		bigint;
BEGIN
	PERFORM oms._lock_demand_history(v_tenant);
	PERFORM pg_catalog.set_config('oms._stats_kept', 'on', true);
	DELETE FROM oms.demand_history h
	 WHERE h.tenant_id = v_tenant AND ($1 IS NULL OR h.day >= $1);
	-- One statement, one snapshot: an order committed before it is counted from its lines and its
	-- deltas are deleted; an order committed after it keeps its deltas. (A data-modifying WITH
	-- runs to completion whether or not the rest of the statement reads it.)
	WITH gone AS (
		DELETE FROM oms.demand_deltas d
		 WHERE d.tenant_id = v_tenant AND ($1 IS NULL OR d.day >= $1)
		RETURNING 1
	)
	INSERT INTO oms.demand_history (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
	SELECT l.tenant_id, l.item_id, l.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
		   pg_catalog.sum(l.qty), pg_catalog.sum(l.qty_cancelled), pg_catalog.sum(l.qty_returned), pg_catalog.count(*)
	  FROM oms.orders o
	  JOIN oms.order_lines l ON l.tenant_id = o.tenant_id AND l.order_id = o.id
	 WHERE o.tenant_id = v_tenant
	   AND ($1 IS NULL OR o.placed_at >= ($1::timestamp AT TIME ZONE 'UTC'))
	 GROUP BY l.tenant_id, l.item_id, l.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date;
	GET DIAGNOSTICS v_rows = ROW_COUNT;
	-- The statistics follow the summary they are kept from.
	PERFORM oms.refresh_demand_stats(true);
	RETURN v_rows;
END
$$;
COMMENT ON FUNCTION oms.rebuild_demand_history(date) IS 'Recomputes the current tenant''s demand history from its order lines, for the days from the given date on (all days when NULL); returns the number of summary rows written';
CREATE OR REPLACE FUNCTION oms._replenishment_base(p_tenant int, p_today date, p_item_from int DEFAULT NULL,
										p_item_to int DEFAULT NULL)
	RETURNS TABLE (item_id int, location_id int, priority int, location_code text, method text, supplier_id int,
				   unit_cost numeric, moq bigint, pack_size bigint, lead_time_days numeric, rebalance boolean,
				   auto_send boolean, update_safety_stock boolean, overstock_days numeric, min_qty bigint,
				   max_qty bigint, on_hand bigint, reserved bigint, current_safety_stock bigint, on_order bigint,
				   backordered bigint, covered boolean, order_qty bigint, service_level double precision,
				   lead_time_sd double precision, protection double precision, lead_time double precision,
				   history_days int, total double precision, sumsq double precision, exact boolean)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
	SET citus.allow_nested_distributed_execution = on
	SET jit = off
	SET enable_nestloop = off
AS $$
#variable_conflict use_column
BEGIN
	-- PL/pgSQL, not SQL: Citus cannot plan the parameters of an SQL function's statements.
	RETURN QUERY
	WITH extra AS (
		-- SKU-locations planned that are not a stock row at a location with a default policy: SKU
		-- overrides, and lines waiting at a location with a default policy.
		SELECT r.item_id, r.location_id FROM oms.replenishment_policies r
		 WHERE r.tenant_id = p_tenant AND r.item_id IS NOT NULL
		   AND r.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		UNION
		SELECT l.item_id, l.location_id FROM oms.order_lines l
		 WHERE l.tenant_id = p_tenant AND l.state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state)
		   AND l.location_id IS NOT NULL
		   AND l.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		   AND EXISTS (SELECT FROM oms.replenishment_policies d
						WHERE d.tenant_id = p_tenant AND d.location_id = l.location_id AND d.item_id IS NULL)
	), pairs AS NOT MATERIALIZED (
		-- Every SKU-location planned, once: the stock rows at locations with a default policy,
		-- and the others above.
		SELECT s.item_id, s.location_id, s.on_hand, s.reserved, s.safety_stock
		  FROM oms.stock s
		 WHERE s.tenant_id = p_tenant
		   AND s.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		   AND EXISTS (SELECT FROM oms.replenishment_policies d
						WHERE d.tenant_id = p_tenant AND d.location_id = s.location_id AND d.item_id IS NULL)
		UNION ALL
		SELECT e.item_id, e.location_id, s.on_hand, s.reserved, s.safety_stock
		  FROM extra e
		  LEFT JOIN oms.stock s ON s.tenant_id = p_tenant AND s.item_id = e.item_id AND s.location_id = e.location_id
		 WHERE s.item_id IS NULL
			OR NOT EXISTS (SELECT FROM oms.replenishment_policies d
							WHERE d.tenant_id = p_tenant AND d.location_id = e.location_id AND d.item_id IS NULL)
	), unassigned AS (
		-- Backorders of shipped orders not yet at a location count at the preferred location that
		-- can ship and has a policy for the SKU.
		SELECT DISTINCT ON (u.item_id) u.item_id, c.location_id, u.qty
		  FROM (SELECT l.item_id, pg_catalog.sum(l.qty - l.qty_cancelled) AS qty
				  FROM oms.order_lines l
				  JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
				 WHERE l.tenant_id = p_tenant AND l.state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state)
				   AND l.location_id IS NULL AND o.pickup_location_id IS NULL
				   AND l.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
				 GROUP BY l.item_id) u
		 CROSS JOIN LATERAL (
				SELECT p.location_id, loc.priority, loc.code
				  FROM pairs p
				  JOIN oms.locations loc ON loc.tenant_id = p_tenant AND loc.id = p.location_id AND loc.active AND loc.can_ship
				 WHERE p.item_id = u.item_id) c
		 ORDER BY u.item_id, c.priority, c.code
	), waiting AS (
		SELECT l.item_id, l.location_id, pg_catalog.sum(l.qty - l.qty_cancelled) AS qty
		  FROM oms.order_lines l
		 WHERE l.tenant_id = p_tenant AND l.state IN ('backordered'::oms.line_state, 'preordered'::oms.line_state)
		   AND l.location_id IS NOT NULL
		   AND l.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		 GROUP BY l.item_id, l.location_id
	), incoming AS (
		SELECT su.item_id, su.location_id, pg_catalog.sum(su.qty) AS qty
		  FROM oms.supply su
		 WHERE su.tenant_id = p_tenant
		   AND su.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		 GROUP BY su.item_id, su.location_id
	), open_orders AS (
		SELECT pl.item_id, po.location_id
		  FROM oms.purchase_order_lines pl
		  JOIN oms.purchase_orders po ON po.tenant_id = pl.tenant_id AND po.id = pl.po_id
		 WHERE pl.tenant_id = p_tenant AND po.state IN ('draft', 'sent', 'partially_received')
		   AND pl.qty_received + pl.qty_cancelled < pl.qty
		   AND pl.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		UNION
		SELECT tl.item_id, t.to_location_id
		  FROM oms.transfer_order_lines tl
		  JOIN oms.transfer_orders t ON t.tenant_id = tl.tenant_id AND t.id = tl.transfer_id
		 WHERE tl.tenant_id = p_tenant AND t.state IN ('in_transit', 'partially_received')
		   AND tl.qty_received + tl.qty_cancelled < tl.qty
		   AND tl.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
	), delta AS (
		-- SKU-locations with demand not yet compacted inside their window: their statistics
		-- cannot be used.
		SELECT DISTINCT dl.item_id, dl.location_id
		  FROM oms.demand_deltas dl
		  LEFT JOIN oms.replenishment_policies s
			ON s.tenant_id = p_tenant AND s.location_id = dl.location_id AND s.item_id = dl.item_id
		  LEFT JOIN oms.replenishment_policies d
			ON d.tenant_id = p_tenant AND d.location_id = dl.location_id AND d.item_id IS NULL
		 WHERE dl.tenant_id = p_tenant AND dl.location_id IS NOT NULL
		   AND dl.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
		   AND dl.day < p_today
		   AND dl.day >= p_today - coalesce(s.history_days, d.history_days, (oms._policy_defaults() ->> 'history_days')::int)
	), pol AS (
		-- The effective policy (as oms._effective_policy: the SKU's setting, else the location
		-- default's, else the built-in default), joined for all pairs at once.
		SELECT p.item_id, p.location_id, loc.priority, loc.code,
			   coalesce(s.method, d.method, oms._policy_defaults() ->> 'method') AS method,
			   coalesce(s.service_level, d.service_level, (oms._policy_defaults() ->> 'service_level')::numeric) AS service_level,
			   coalesce(s.lead_time_days, d.lead_time_days, (oms._policy_defaults() ->> 'lead_time_days')::numeric) AS lead_time_days,
			   coalesce(s.lead_time_sd, d.lead_time_sd, (oms._policy_defaults() ->> 'lead_time_sd')::numeric) AS lead_time_sd,
			   coalesce(s.review_period_days, d.review_period_days, (oms._policy_defaults() ->> 'review_period_days')::numeric) AS review_period_days,
			   coalesce(s.history_days, d.history_days, (oms._policy_defaults() ->> 'history_days')::int) AS history_days,
			   coalesce(s.min_qty, d.min_qty) AS min_qty, coalesce(s.max_qty, d.max_qty) AS max_qty,
			   coalesce(s.order_qty, d.order_qty) AS order_qty,
			   coalesce(s.moq, d.moq, (oms._policy_defaults() ->> 'moq')::bigint) AS moq,
			   coalesce(s.pack_size, d.pack_size, (oms._policy_defaults() ->> 'pack_size')::bigint) AS pack_size,
			   coalesce(s.supplier_id, d.supplier_id) AS supplier_id, coalesce(s.unit_cost, d.unit_cost) AS unit_cost,
			   coalesce(s.overstock_days, d.overstock_days) AS overstock_days,
			   coalesce(s.update_safety_stock, d.update_safety_stock, (oms._policy_defaults() ->> 'update_safety_stock')::boolean) AS update_safety_stock,
			   coalesce(s.rebalance, d.rebalance, (oms._policy_defaults() ->> 'rebalance')::boolean) AS rebalance,
			   coalesce(s.auto_send, d.auto_send, (oms._policy_defaults() ->> 'auto_send')::boolean) AS auto_send,
			   coalesce(p.on_hand, 0) AS on_hand, coalesce(p.reserved, 0) AS reserved,
			   coalesce(p.safety_stock, 0) AS current_ss
		  FROM pairs p
		  JOIN oms.locations loc ON loc.tenant_id = p_tenant AND loc.id = p.location_id AND loc.active
		  LEFT JOIN oms.replenishment_policies s
			ON s.tenant_id = p_tenant AND s.location_id = p.location_id AND s.item_id = p.item_id
		  LEFT JOIN oms.replenishment_policies d
			ON d.tenant_id = p_tenant AND d.location_id = p.location_id AND d.item_id IS NULL
		 WHERE s.id IS NOT NULL OR d.id IS NOT NULL
	)
	-- The demand: the statistics row when its window is this pair's; exact (summed from the history
	-- by oms._replenishment_candidates) when it is not, or when deltas are pending; none without a row.
	SELECT pol.item_id, pol.location_id, pol.priority, pol.code, pol.method, pol.supplier_id,
		   coalesce(pol.unit_cost, it.unit_cost),
		   pol.moq, pol.pack_size, pol.lead_time_days, pol.rebalance, pol.auto_send, pol.update_safety_stock,
		   pol.overstock_days, pol.min_qty, pol.max_qty, pol.on_hand, pol.reserved, pol.current_ss,
		   coalesce(inc.qty, 0)::bigint, (coalesce(w.qty, 0) + coalesce(u.qty, 0))::bigint, oo.item_id IS NOT NULL,
		   pol.order_qty, pol.service_level::double precision, pol.lead_time_sd::double precision,
		   (pol.lead_time_days + pol.review_period_days)::double precision, pol.lead_time_days::double precision,
		   pol.history_days,
		   CASE WHEN ds.window_end = p_today AND ds.window_days = pol.history_days THEN ds.total ELSE 0 END::double precision,
		   CASE WHEN ds.window_end = p_today AND ds.window_days = pol.history_days THEN ds.sumsq ELSE 0 END::double precision,
		   dl.item_id IS NOT NULL
			OR (ds.item_id IS NOT NULL AND NOT coalesce(ds.window_end = p_today AND ds.window_days = pol.history_days, false))
	  FROM pol
	  LEFT JOIN oms.demand_stats ds ON ds.tenant_id = p_tenant AND ds.item_id = pol.item_id AND ds.location_id = pol.location_id
		   AND ds.item_id BETWEEN coalesce(p_item_from, -2147483648) AND coalesce(p_item_to, 2147483647)
	  LEFT JOIN incoming inc ON inc.item_id = pol.item_id AND inc.location_id = pol.location_id
	  LEFT JOIN waiting w ON w.item_id = pol.item_id AND w.location_id = pol.location_id
	  LEFT JOIN unassigned u ON u.item_id = pol.item_id AND u.location_id = pol.location_id
	  LEFT JOIN open_orders oo ON oo.item_id = pol.item_id AND oo.location_id = pol.location_id
	  LEFT JOIN delta dl ON dl.item_id = pol.item_id AND dl.location_id = pol.location_id
	  LEFT JOIN oms.items it ON it.tenant_id = p_tenant AND it.id = pol.item_id;
END
$$;
COMMENT ON FUNCTION oms._replenishment_base(int, date, int, int) IS 'Internal: what planning reads for every SKU and location with a policy (items in the given id range): effective policy, stock, on order, backorders, whether an open order covers it, and the sum and sum of squares of its daily demand over its history window from oms.demand_stats (exact: to be summed from the history instead)';
CREATE OR REPLACE FUNCTION oms._replenishment_candidates(p_tenant int, p_today date, p_item_from int DEFAULT NULL,
											  p_item_to int DEFAULT NULL)
	RETURNS TABLE (item_id int, location_id int, priority int, location_code text, method text, supplier_id int,
				   unit_cost numeric, moq bigint, pack_size bigint, lead_time_days numeric, rebalance boolean,
				   auto_send boolean, update_safety_stock boolean, overstock_days numeric, min_qty bigint,
				   max_qty bigint, on_hand bigint, reserved bigint, current_safety_stock bigint, on_order bigint,
				   backordered bigint, covered boolean, demand_mean double precision, demand_sd double precision,
				   lead_time_demand numeric, safety_stock bigint, reorder_point bigint, inventory_position bigint,
				   order_up_to bigint, triggered boolean, need bigint, surplus bigint)
	LANGUAGE c STABLE
	SET search_path = oms, pg_catalog
	SET citus.allow_nested_distributed_execution = on
	SET work_mem = '128MB'
	AS 'MODULE_PATHNAME', 'oms_replenishment_candidates';
COMMENT ON FUNCTION oms._replenishment_candidates(int, date, int, int) IS 'Internal: every SKU and location with a policy (items in the given id range): effective policy, stock, on order, backorders, demand mean and deviation, safety stock, reorder point, inventory position, whether it must order, how much, and its surplus';
CREATE OR REPLACE FUNCTION oms._replenishment_proposals(p_tenant int, p_today date, p_item_from int DEFAULT NULL,
											 p_item_to int DEFAULT NULL)
	RETURNS TABLE (item_id int, location_id int, kind text, supplier_id int, from_location_id int, on_hand bigint,
				   reserved bigint, on_order bigint, backordered bigint, demand_mean double precision,
				   lead_time_demand numeric, safety_stock bigint, reorder_point bigint, proposed_qty bigint,
				   unit_cost numeric, expected_date date, auto_send boolean, reason text)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
	SET citus.allow_nested_distributed_execution = on
	SET jit = off
	SET work_mem = '128MB'
AS $$
#variable_conflict use_column
BEGIN
	-- PL/pgSQL, not SQL: Citus cannot plan the parameters of an SQL function's statements.
	RETURN QUERY
	WITH c AS (
		-- Only what can make a proposal: a need, a surplus, a safety stock to write.
		SELECT * FROM oms._replenishment_candidates(p_tenant, p_today, p_item_from, p_item_to) c
		 WHERE c.need > 0 OR c.surplus > 0 OR (c.update_safety_stock AND c.safety_stock <> c.current_safety_stock)
	), short AS (
		SELECT c.item_id, c.location_id, c.need,
			   pg_catalog.sum(c.need) OVER w - c.need AS from_n, pg_catalog.sum(c.need) OVER w AS to_n
		  FROM c WHERE c.need > 0 AND c.rebalance
		WINDOW w AS (PARTITION BY c.item_id ORDER BY c.priority, c.location_code)
	), spare AS (
		SELECT c.item_id, c.location_id, c.surplus,
			   pg_catalog.sum(c.surplus) OVER w - c.surplus AS from_n, pg_catalog.sum(c.surplus) OVER w AS to_n
		  FROM c WHERE c.surplus > 0
		WINDOW w AS (PARTITION BY c.item_id ORDER BY c.surplus DESC, c.priority, c.location_code)
	), segments AS (
		-- Short locations take the units [from_n, to_n) of the item's need, surplus locations give
		-- [from_n, to_n) of its surplus; a transfer is where the two overlap. The ends of both cut
		-- [0, total) into segments, each inside one short and one surplus range: those that end
		-- first at or after it. Linear in the locations of an item (comparing every short location
		-- with every surplus one was quadratic: 17 million pairs for 10,000 SKUs x 100 locations).
		SELECT b.item_id,
			   b.p - coalesce(pg_catalog.lag(b.p) OVER (PARTITION BY b.item_id ORDER BY b.p), 0) AS len,
			   pg_catalog.min(b.p) FILTER (WHERE b.is_short) OVER (PARTITION BY b.item_id ORDER BY b.p DESC) AS short_end,
			   pg_catalog.min(b.p) FILTER (WHERE b.is_spare) OVER (PARTITION BY b.item_id ORDER BY b.p DESC) AS spare_end
		  FROM (SELECT e.item_id, e.p, pg_catalog.bool_or(e.is_short) AS is_short, pg_catalog.bool_or(NOT e.is_short) AS is_spare
				  FROM (SELECT sh.item_id, sh.to_n AS p, true AS is_short FROM short sh
						UNION ALL
						SELECT sp.item_id, sp.to_n, false FROM spare sp) e
				 GROUP BY e.item_id, e.p) b
	), moves AS (
		SELECT sh.item_id, sh.location_id, sp.location_id AS from_location_id, pg_catalog.sum(g.len)::bigint AS qty
		  FROM segments g
		  JOIN short sh ON sh.item_id = g.item_id AND sh.to_n = g.short_end
		  JOIN spare sp ON sp.item_id = g.item_id AND sp.to_n = g.spare_end
		 GROUP BY sh.item_id, sh.location_id, sp.location_id
	), moved AS (
		SELECT m.item_id, m.location_id, pg_catalog.sum(m.qty) AS qty FROM moves m GROUP BY m.item_id, m.location_id
	), buy AS (
		SELECT c.*, c.need - coalesce(mv.qty, 0)::bigint AS rest
		  FROM c LEFT JOIN moved mv ON mv.item_id = c.item_id AND mv.location_id = c.location_id
		 WHERE c.need > 0
	), rounded AS (
		SELECT b.*, (pg_catalog.ceil(GREATEST(b.rest, b.moq)::numeric / b.pack_size) * b.pack_size)::bigint AS qty
		  FROM buy b WHERE b.rest > 0
	)
	SELECT r.item_id, r.location_id, 'purchase', r.supplier_id, NULL::int, r.on_hand, r.reserved, r.on_order, r.backordered,
		   r.demand_mean, r.lead_time_demand, r.safety_stock, r.reorder_point, r.qty, r.unit_cost,
		   p_today + pg_catalog.ceil(r.lead_time_days)::int, r.auto_send,
		   pg_catalog.concat_ws('; ',
			   CASE WHEN r.method = 'min_max'
					THEN pg_catalog.format('position %s <= min %s: up to max %s', r.inventory_position, r.min_qty, r.max_qty)
					ELSE pg_catalog.format('position %s <= reorder point %s', r.inventory_position, r.reorder_point) END,
			   CASE WHEN r.rest < r.need THEN pg_catalog.format('%s of %s by transfer', r.need - r.rest, r.need) END,
			   CASE WHEN r.qty <> r.rest THEN pg_catalog.format('%s rounded up to %s (moq %s, pack %s)', r.rest, r.qty, r.moq, r.pack_size) END,
			   CASE WHEN r.supplier_id IS NULL THEN 'no supplier in the policy: nothing will be ordered' END)
	  FROM rounded r
	UNION ALL
	SELECT m.item_id, m.location_id, 'transfer', NULL::int, m.from_location_id, c.on_hand, c.reserved, c.on_order, c.backordered,
		   c.demand_mean, c.lead_time_demand, c.safety_stock, c.reorder_point, m.qty, c.unit_cost, p_today + 1, false,
		   pg_catalog.format('surplus at %s', fl.code)
	  FROM moves m
	  JOIN c ON c.item_id = m.item_id AND c.location_id = m.location_id
	  JOIN oms.locations fl ON fl.tenant_id = p_tenant AND fl.id = m.from_location_id
	UNION ALL
	SELECT c.item_id, c.location_id, 'safety_stock', NULL::int, NULL::int, c.on_hand, c.reserved, c.on_order, c.backordered,
		   c.demand_mean, c.lead_time_demand, c.safety_stock, c.reorder_point, c.safety_stock, NULL::numeric, NULL::date, false,
		   pg_catalog.format('safety stock %s (was %s)', c.safety_stock, c.current_safety_stock)
	  FROM c
	 WHERE c.update_safety_stock AND c.safety_stock <> c.current_safety_stock;
END
$$;
COMMENT ON FUNCTION oms._replenishment_proposals(int, date, int, int) IS 'Internal: what to transfer and what to buy for the SKUs in the given item id range, and the safety stock to write (kind safety_stock) where the policy asks for it';
CREATE OR REPLACE FUNCTION oms._analyze_written(p_lines bigint) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF (SELECT c.reltuples FROM pg_catalog.pg_class c WHERE c.oid = 'oms.supply'::pg_catalog.regclass) < p_lines THEN
		ANALYZE oms.supply, oms.transfer_orders, oms.purchase_orders;
		RETURN true;
	END IF;
	RETURN false;
END
$$;
COMMENT ON FUNCTION oms._analyze_written(bigint) IS 'Internal: analyzes oms.supply, oms.transfer_orders and oms.purchase_orders when the statistics of oms.supply count fewer rows than a replenishment run has just written (so that the foreign-key checks of the next lines read the indexes)';
CREATE OR REPLACE FUNCTION oms._run_replenishment(p_tenant int, p_today date, p_item_from int DEFAULT NULL, p_item_to int DEFAULT NULL)
	RETURNS TABLE (kind text, id bigint, supplier_id int, from_location_id int, location_id int, lines int, units bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
	SET jit = off
AS $$
#variable_conflict use_column
DECLARE
	r			record;
	v_id		bigint;
	v_lines		bigint := 0;
	v_analyzed	boolean := false;
BEGIN
	CREATE TEMP TABLE pg_temp.oms_proposals ON COMMIT DROP AS
		SELECT * FROM oms._replenishment_proposals(p_tenant, p_today, p_item_from, p_item_to);

	FOR r IN SELECT p.from_location_id, p.location_id, array_agg(p.item_id ORDER BY p.item_id) AS items,
					array_agg(p.proposed_qty ORDER BY p.item_id) AS qtys, max(p.expected_date) AS expected
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'transfer'
			  GROUP BY p.from_location_id, p.location_id ORDER BY p.from_location_id, p.location_id LOOP
		BEGIN
			v_id := oms._new_transfer(p_tenant, r.from_location_id, r.location_id, r.expected, 'replenishment', r.items, r.qtys);
			v_lines := v_lines + cardinality(r.items);
			IF NOT v_analyzed AND v_lines >= 1000 THEN
				v_analyzed := true;
				PERFORM oms._analyze_written(v_lines);
			END IF;
			kind := 'transfer'; id := v_id; supplier_id := NULL; from_location_id := r.from_location_id;
			location_id := r.location_id; lines := cardinality(r.items);
			units := (SELECT sum(q) FROM unnest(r.qtys) q);
			RETURN NEXT;
		EXCEPTION WHEN SQLSTATE 'OM002' THEN
			-- An order took the surplus since the plan was made: the next run buys instead.
			RAISE NOTICE 'transfer from location % to % skipped: %', r.from_location_id, r.location_id, SQLERRM;
		END;
	END LOOP;

	FOR r IN SELECT p.supplier_id, p.location_id, p.auto_send, array_agg(p.item_id ORDER BY p.item_id) AS items,
					array_agg(p.proposed_qty ORDER BY p.item_id) AS qtys, array_agg(p.unit_cost ORDER BY p.item_id) AS costs,
					array_agg(p.expected_date ORDER BY p.item_id) AS dates
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'purchase' AND p.supplier_id IS NOT NULL
			  GROUP BY p.supplier_id, p.location_id, p.auto_send ORDER BY p.supplier_id, p.location_id, p.auto_send LOOP
		v_id := oms._new_purchase_order(p_tenant, r.supplier_id, r.location_id,
										CASE WHEN r.auto_send THEN 'sent' ELSE 'draft' END, 'replenishment',
										r.items, r.qtys, r.costs, r.dates);
		v_lines := v_lines + cardinality(r.items);
		IF NOT v_analyzed AND v_lines >= 1000 THEN
			v_analyzed := true;
			PERFORM oms._analyze_written(v_lines);
		END IF;
		kind := 'purchase_order'; id := v_id; supplier_id := r.supplier_id; from_location_id := NULL;
		location_id := r.location_id; lines := cardinality(r.items);
		units := (SELECT sum(q) FROM unnest(r.qtys) q);
		RETURN NEXT;
	END LOOP;

	FOR r IN SELECT p.item_id, p.location_id, p.proposed_qty AS safety_stock
			   FROM pg_temp.oms_proposals p WHERE p.kind = 'safety_stock'
			  ORDER BY p.item_id, p.location_id LOOP
		INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, safety_stock)
			VALUES (p_tenant, r.item_id, r.location_id, r.safety_stock)
			ON CONFLICT (tenant_id, item_id, location_id)
			DO UPDATE SET safety_stock = EXCLUDED.safety_stock, updated_at = EXCLUDED.updated_at;
		kind := 'safety_stock'; id := NULL; supplier_id := NULL; from_location_id := NULL;
		location_id := r.location_id; lines := 1; units := r.safety_stock;
		RETURN NEXT;
	END LOOP;
	DROP TABLE pg_temp.oms_proposals;
END
$$;
COMMENT ON FUNCTION oms._run_replenishment(int, date, int, int) IS 'Internal: turns the proposals of an item id range into transfers and purchase orders, and writes the safety stock of policies that ask for it';
CREATE OR REPLACE FUNCTION oms.run_replenishment()
	RETURNS TABLE (kind text, id bigint, supplier text, from_location text, location text, lines int, units bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
BEGIN
	IF NOT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('oms.replenishment'), v_tenant) THEN
		RAISE NOTICE 'replenishment of tenant "%" is already running in another session; this run does nothing',
			pg_catalog.current_setting('oms.tenant');
		RETURN;
	END IF;
	-- The demand statistics in today's windows (a no-op once they are).
	PERFORM oms.refresh_demand_stats();
	RETURN QUERY
	SELECT r.kind, r.id, s.code, f.code, l.code, r.lines, r.units
	  FROM oms._run_replenishment(v_tenant, oms.today()) r
	  LEFT JOIN oms.suppliers s ON s.tenant_id = v_tenant AND s.id = r.supplier_id
	  LEFT JOIN oms.locations f ON f.tenant_id = v_tenant AND f.id = r.from_location_id
	  JOIN oms.locations l ON l.tenant_id = v_tenant AND l.id = r.location_id;
END
$$;
COMMENT ON FUNCTION oms.run_replenishment() IS 'Turns the replenishment plan into transfers and purchase orders (draft, or sent when the policy says auto_send) with their incoming supply, and writes safety stock where the policy asks; a SKU and location with an open order is covered, so a second run creates nothing; a run while another is in progress does nothing and says so';
CREATE OR REPLACE FUNCTION oms._events_to_announce(after bigint)
	RETURNS TABLE (tenant text, up_to bigint)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	WITH safe AS (
		SELECT pg_catalog.max(m.id) AS up_to
		  FROM oms.tenants t
		 CROSS JOIN LATERAL (
			SELECT e.id FROM oms.events e
			 WHERE e.tenant_id = t.id AND e.id > after
			   AND e.xid_horizon OPERATOR(pg_catalog.<=) pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())
			 ORDER BY e.id DESC LIMIT 1) m)
	SELECT t.code, s.up_to
	  FROM safe s, oms.tenants t
	 WHERE s.up_to IS NOT NULL
	   AND EXISTS (SELECT FROM oms.events e WHERE e.tenant_id = t.id AND e.id > after AND e.id <= s.up_to)
	 ORDER BY t.code;
END
$$;
COMMENT ON FUNCTION oms._events_to_announce(bigint) IS 'Internal (worker, oms.notify_events = worker): the tenants with events after the given id up to the newest safe one, and that id';
CREATE OR REPLACE FUNCTION oms.check_stock_invariants(tenant text)
	RETURNS TABLE (sku text, location text, on_hand bigint, reserved bigint, reservations_sum bigint,
				   problem text)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant_id int;
BEGIN
	SELECT t.id INTO v_tenant_id FROM oms.tenants t WHERE t.code = check_stock_invariants.tenant;
	IF v_tenant_id IS NULL THEN
		RAISE EXCEPTION 'unknown tenant "%"', oms._clip(check_stock_invariants.tenant)
			USING ERRCODE = '22023',
			      HINT = 'Tenants are listed in oms.tenants.';
	END IF;
	RETURN QUERY
	WITH r AS (
		SELECT r.item_id, r.location_id, pg_catalog.sum(r.qty)::bigint AS qty
		  FROM oms.reservations r
		 WHERE r.tenant_id = v_tenant_id AND r.supply_id IS NULL	-- pre-orders take supply (64_preorders.sql)
		 GROUP BY r.item_id, r.location_id
	), s AS (
		-- a hot SKU's stock row also counts the free units of its slots (56_stock_slots.sql)
		SELECT s.item_id, s.location_id, s.on_hand, s.reserved, s.hot,
			   (SELECT coalesce(pg_catalog.sum(z.free), 0) FROM oms.stock_slots z
				 WHERE z.tenant_id = v_tenant_id AND z.item_id = s.item_id AND z.location_id = s.location_id)::bigint AS slot_free
		  FROM oms.stock s
		 WHERE s.tenant_id = v_tenant_id
	)
	SELECT i.sku, l.code, s.on_hand, s.reserved, coalesce(r.qty, 0), p.problem
	  FROM s FULL JOIN r ON r.item_id = s.item_id AND r.location_id = s.location_id
	  JOIN oms.items i ON i.tenant_id = v_tenant_id AND i.id = coalesce(s.item_id, r.item_id)
	  JOIN oms.locations l ON l.tenant_id = v_tenant_id AND l.id = coalesce(s.location_id, r.location_id)
	 CROSS JOIN LATERAL (VALUES
		(CASE WHEN s.item_id IS NULL THEN 'reservations without a stock row' END),
		(CASE WHEN s.reserved <> coalesce(r.qty, 0) + s.slot_free THEN 'reserved differs from the sum of reservations' END),
		(CASE WHEN s.slot_free > 0 AND NOT s.hot THEN 'stock slots hold units of a SKU that is not hot' END),
		(CASE WHEN s.reserved > s.on_hand THEN 'reserved exceeds on_hand' END),
		(CASE WHEN s.reserved < 0 THEN 'reserved is negative' END)) AS p(problem)
	 WHERE p.problem IS NOT NULL
	UNION ALL
	-- Supply: promised equals the sum of its pre-order reservations, within [0, qty].
	SELECT i.sku, l.code, u.qty, u.promised, coalesce(x.qty, 0), p.problem
	  FROM oms.supply u
	  JOIN oms.items i ON i.tenant_id = u.tenant_id AND i.id = u.item_id
	  JOIN oms.locations l ON l.tenant_id = u.tenant_id AND l.id = u.location_id
	  LEFT JOIN (SELECT r.supply_id, pg_catalog.sum(r.qty)::bigint AS qty FROM oms.reservations r
				  WHERE r.tenant_id = v_tenant_id AND r.supply_id IS NOT NULL GROUP BY r.supply_id) x
			 ON x.supply_id = u.id
	 CROSS JOIN LATERAL (VALUES
		(CASE WHEN u.promised <> coalesce(x.qty, 0) THEN format('promised of supply %s differs from the sum of its pre-orders', u.id) END),
		(CASE WHEN u.promised > u.qty OR u.promised < 0 THEN format('promised of supply %s outside 0 to qty', u.id) END)) AS p(problem)
	 WHERE u.tenant_id = v_tenant_id AND p.problem IS NOT NULL
	 ORDER BY 1, 2, 6;
END
$$;
COMMENT ON FUNCTION oms.check_stock_invariants(text) IS 'Stock rows of the given tenant that break an invariant (reserved = sum of its reservations, 0 <= reserved <= on_hand, no reservation without a stock row), and supply whose promised differs from its pre-orders (on_hand: supply qty, reserved: promised); one row per problem; empty when healthy';
CREATE OR REPLACE FUNCTION oms.check_stock_invariants()
	RETURNS TABLE (sku text, location text, on_hand bigint, reserved bigint, reservations_sum bigint,
				   problem text)
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
AS $$
	SELECT * FROM oms.check_stock_invariants(pg_catalog.current_setting('oms.tenant'))
$$;
COMMENT ON FUNCTION oms.check_stock_invariants() IS 'Stock rows of the current tenant that break an invariant (reserved = sum of its reservations, 0 <= reserved <= on_hand), one row per problem; empty when healthy';
CREATE OR REPLACE FUNCTION oms.adjust_stock(sku text, location text, delta bigint, reason text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int := oms._item_id(v_tenant, sku);
	v_loc		int := oms._location_id(v_tenant, location);
	v_new		bigint;
	v_old		bigint;
	v_reserved	bigint;
BEGIN
	PERFORM oms._check_reason(reason);
	IF delta IS NULL OR delta = 0 OR delta NOT BETWEEN -1000000000000 AND 1000000000000 THEN	-- (abs(-2^63) overflows)
		RAISE EXCEPTION 'invalid delta % for SKU "%" at location "%"', coalesce(delta::text, 'NULL'), sku, location
			USING ERRCODE = '22023', HINT = 'delta is the signed change of on hand, not 0 and at most 10^12 either way: +5 for found units, -2 for damaged ones.';
	END IF;

	-- One statement checks and changes, so concurrent adjustments and reservations cannot race.
	UPDATE oms.stock s SET on_hand = s.on_hand + delta, updated_at = pg_catalog.now()
		WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc
		  AND s.on_hand + delta >= s.reserved
		RETURNING s.on_hand INTO v_new;
	IF v_new IS NULL AND delta < 0 THEN
		-- A hot SKU's slots may hold the units: back to the stock row (locked first, as every
		-- path locks it before its slots), then once more.
		PERFORM FROM oms.stock s
		  WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc AND s.hot
		  FOR UPDATE;
		IF FOUND AND oms._unslot(v_tenant, v_item, v_loc) > 0 THEN
			UPDATE oms.stock s SET on_hand = s.on_hand + delta, updated_at = pg_catalog.now()
				WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc
				  AND s.on_hand + delta >= s.reserved
				RETURNING s.on_hand INTO v_new;
		END IF;
	END IF;
	IF v_new IS NULL THEN
		SELECT s.on_hand, s.reserved INTO v_old, v_reserved
			FROM oms.stock s
			WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc;
		IF v_old IS NULL AND delta > 0 THEN
			INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, on_hand)
				VALUES (v_tenant, v_item, v_loc, delta)
				ON CONFLICT (tenant_id, item_id, location_id)
				DO UPDATE SET on_hand = s.on_hand + EXCLUDED.on_hand, updated_at = EXCLUDED.updated_at
				RETURNING s.on_hand INTO v_new;
		ELSE
			RAISE EXCEPTION 'on hand of SKU "%" at location "%" cannot go below %', sku, location,
					CASE WHEN coalesce(v_reserved, 0) > 0 THEN 'what is reserved' ELSE '0' END
				USING ERRCODE = 'OM002',
				      DETAIL = format('On hand %s, reserved %s, delta %s.', coalesce(v_old, 0), coalesce(v_reserved, 0), delta),
				      HINT = 'On hand never goes below reserved or below 0; cancel or move the orders that hold this stock first.';
		END IF;
	END IF;
	INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, moved_by)
		VALUES (v_tenant, v_item, v_loc, 'adjustment', delta, v_new, reason, oms._actor());
	RETURN v_new;
END
$$;
COMMENT ON FUNCTION oms.adjust_stock(text, text, bigint, text) IS 'Adds a signed delta to on hand of a SKU at a location and records the movement; returns the new on hand';
CREATE OR REPLACE FUNCTION oms._reserve_supply(p_tenant int, p_order bigint, p_items int[], p_line int[], p_loc int[],
									p_qty int[], p_kind text[], p_supply bigint[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no, supply_id)
		SELECT p_tenant, p_items[p_line[n]], p_loc[n], p_qty[n], p_order, p_line[n], p_supply[n]
		  FROM generate_subscripts(p_line, 1) n
		 WHERE p_kind[n] = 'preorder'
		 ORDER BY p_items[p_line[n]], p_loc[n], p_supply[n];
END
$$;
COMMENT ON FUNCTION oms._reserve_supply(int, bigint, int[], int[], int[], int[], text[], bigint[]) IS 'Internal: reserves the supply a route assigns to an order''s pre-ordered lines (OM001 when the supply was promised meanwhile)';
CREATE OR REPLACE FUNCTION oms._choose_locations(
	p_tenant	int,
	p_items		int[],
	p_qtys		int[],
	p_prefer	int[],		-- per line: preferred location (a hold's), or NULL
	p_credit	bigint[],	-- per line: units already held at the preferred location
	p_only		int			-- a pickup store: choose only it, or nothing
) RETURNS TABLE (idx int, location_id int)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT DISTINCT ON (l.idx) l.idx::int, s.location_id
	  FROM unnest(p_items, p_qtys, p_prefer, p_credit) WITH ORDINALITY AS l(item_id, qty, prefer, credit, idx)
	  JOIN oms.stock s ON s.tenant_id = p_tenant AND s.item_id = l.item_id
	  JOIN oms.locations loc ON loc.tenant_id = p_tenant AND loc.id = s.location_id
	 WHERE loc.active
	   AND (CASE WHEN p_only IS NOT NULL THEN loc.id = p_only ELSE loc.can_ship END)
	   AND s.on_hand - s.reserved - s.safety_stock
	       + (CASE WHEN s.location_id = l.prefer THEN coalesce(l.credit, 0) ELSE 0 END)
	       + (CASE WHEN s.hot THEN (SELECT coalesce(pg_catalog.sum(z.free), 0) FROM oms.stock_slots z
									 WHERE z.tenant_id = p_tenant AND z.item_id = s.item_id
									   AND z.location_id = s.location_id) ELSE 0 END) >= l.qty
	 ORDER BY l.idx, (s.location_id = l.prefer) IS TRUE DESC, loc.priority, loc.code;
END
$$;
COMMENT ON FUNCTION oms._choose_locations(int, int[], int[], int[], bigint[], int) IS 'Internal: per line, the location that serves it in full (preferred, else lowest priority number); no row when none can';
CREATE OR REPLACE FUNCTION oms._take_capacity(p_tenant int, p_loc int[], p_day date[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r		record;
	v_used	int;
	v_cap	int;
BEGIN
	FOR r IN SELECT DISTINCT p_loc[n] AS location_id, p_day[n] AS day
			   FROM generate_subscripts(p_loc, 1) n
			  WHERE p_day[n] IS NOT NULL
			  ORDER BY 1, 2
	LOOP
		v_used := NULL;
		-- The capacity is read first (on Citus an upsert cannot hold a query of another table).
		SELECT l.daily_capacity INTO v_cap FROM oms.locations l
		 WHERE l.tenant_id = p_tenant AND l.id = r.location_id;
		IF v_cap > 0 THEN
			INSERT INTO oms.location_capacity_used AS u (tenant_id, location_id, day, used)
				VALUES (p_tenant, r.location_id, r.day, 1)
				ON CONFLICT (tenant_id, location_id, day) DO UPDATE SET used = u.used + 1
				 WHERE u.used < v_cap
				RETURNING u.used INTO v_used;
		END IF;
		IF v_used IS NULL THEN
			RAISE EXCEPTION 'location "%" has no capacity left for %',
					(SELECT l.code FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = r.location_id), r.day
				USING ERRCODE = 'OM030',
				      DETAIL = format('Its daily_capacity is %s orders.',
									  (SELECT l.daily_capacity FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = r.location_id)),
				      HINT = 'Route again: oms.route() skips locations whose capacity for the day is taken.';
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._take_capacity(int, int[], date[]) IS 'Internal: counts one order per (location, day) in oms.location_capacity_used, checking and taking in one statement; OM030 when the day''s capacity is gone';
CREATE OR REPLACE FUNCTION oms.place_order("order" jsonb) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	p				jsonb := $1;
	v_tenant		int := oms.current_tenant_id();
	v_channel_id	int;
	v_channel_cur	text;
	v_channel_on	boolean;
	v_ext			text;
	v_currency		text;
	v_minor			int;
	v_customer		jsonb;
	v_ship_to		jsonb;
	v_country		text;
	v_lat			double precision;
	v_lon			double precision;
	v_pickup		int;
	v_cart			text;
	v_shipping		numeric := 0;
	v_attributes	jsonb := '{}';
	v_lines			jsonb;
	v_bad			record;
	v_skus			text[];
	v_qtys			int[];
	v_prices		numeric[];
	v_items			int[];
	v_backorder		boolean[];
	v_prefer		int[];
	v_credit		bigint[];
	v_locs			int[];
	v_promised		date[];
	v_profile		text;
	v_channel_profile text;
	v_a_line		int[];
	v_a_loc			int[];
	v_a_qty			int[];
	v_a_kind		text[];
	v_a_eta			date[];
	v_a_capday		date[];
	v_a_reason		text[];
	v_a_supply		bigint[];
	v_states		oms.line_state[];
	v_state			oms.order_state;
	v_order_id		bigint;
	v_subtotal		numeric;
	v_attempt		int := 0;
	v_sku			text;
	v_i				int;
	v_placed_at		timestamptz;
	v_tax_mode		text;
	v_tax_country	text;
	v_tax_day		date;
	v_classes		text[];
	v_rates			numeric[];
	v_net			numeric[];
	v_tax			numeric[];
	v_gross			numeric[];
	v_amount		numeric;
	v_ship_rate		numeric;
	v_ship_net		numeric;
	v_ship_gross	numeric;
	v_total			numeric;
	v_net_total		numeric;
	v_tax_total		numeric;
	v_rate			numeric;
	v_j				int;
	r				record;
BEGIN
	-- 1. The fields that identify the order, then idempotency: a retry returns the first result.
	IF p IS NULL OR jsonb_typeof(p) <> 'object' THEN
		PERFORM oms._payload_error('order', 'must be a JSON object', p,
			'See the README for the shape: {"channel": "web", "external_id": "W-1", "lines": [...], ...}.');
	END IF;
	PERFORM oms._check_keys(p, '', ARRAY['attributes', 'cart', 'channel', 'currency', 'customer',
										 'external_id', 'lines', 'pickup', 'placed_at', 'routing', 'ship_to',
										 'shipping_amount']);
	IF jsonb_typeof(p -> 'channel') IS DISTINCT FROM 'string' THEN
		PERFORM oms._payload_error('channel', 'must be a channel code', p -> 'channel',
			'Channels are rows of oms.channels, e.g. "web".');
	END IF;
	SELECT c.id, c.default_currency, c.active, c.routing_profile, c.tax_mode
	  INTO v_channel_id, v_channel_cur, v_channel_on, v_channel_profile, v_tax_mode
		FROM oms.channels c WHERE c.tenant_id = v_tenant AND c.code = p ->> 'channel';
	IF v_channel_id IS NULL THEN
		RAISE EXCEPTION 'unknown channel "%"', oms._clip(p ->> 'channel')
			USING ERRCODE = '22023', HINT = 'Channels are rows of oms.channels of the current tenant (setting oms.tenant).';
	END IF;
	IF jsonb_typeof(p -> 'external_id') IS DISTINCT FROM 'string' OR p ->> 'external_id' = ''
	   OR length(p ->> 'external_id') > 200 THEN
		PERFORM oms._payload_error('external_id', 'must be the channel''s order id (text of 1 to 200 characters)',
			p -> 'external_id', 'The same channel and external_id always give the same order: a retry is safe.');
	END IF;
	v_ext := p ->> 'external_id';

	SELECT o.id INTO v_order_id FROM oms.orders o
		WHERE o.tenant_id = v_tenant AND o.channel_id = v_channel_id AND o.external_id = v_ext;
	IF v_order_id IS NOT NULL THEN
		RETURN v_order_id;
	END IF;
	IF NOT v_channel_on THEN
		RAISE EXCEPTION 'channel "%" is not active', p ->> 'channel'
			USING ERRCODE = '22023', HINT = 'An inactive channel cannot place new orders; set oms.channels.active to true.';
	END IF;

	-- 2. The rest of the header.
	IF p ? 'currency' THEN
		IF jsonb_typeof(p -> 'currency') IS DISTINCT FROM 'string' THEN
			PERFORM oms._payload_error('currency', 'must be an ISO 4217 code', p -> 'currency', 'For example "EUR" or "RON".');
		END IF;
		v_currency := p ->> 'currency';
	ELSE
		v_currency := v_channel_cur;
	END IF;
	SELECT c.minor_units INTO v_minor FROM oms.currencies c WHERE c.code = v_currency;
	IF v_minor IS NULL OR v_currency !~ '^[A-Z]{3}$' THEN
		RAISE EXCEPTION 'unsupported currency code "%"', oms._clip(v_currency)
			USING ERRCODE = '22023', HINT = 'Currencies are the ISO 4217 codes in oms.currencies, e.g. "EUR".';
	END IF;

	IF p ? 'customer' THEN
		v_customer := p -> 'customer';
		IF jsonb_typeof(v_customer) <> 'object' THEN
			PERFORM oms._payload_error('customer', 'must be an object', v_customer,
				'{"ref": "C1", "email": "a@example.com", "name": "...", "phone": "..."}, every field optional.');
		END IF;
		PERFORM oms._check_keys(v_customer, 'customer.', ARRAY['email', 'name', 'phone', 'ref']);
		SELECT k INTO v_sku FROM jsonb_each(v_customer) AS f(k, v)
			WHERE jsonb_typeof(f.v) <> 'string' OR length(f.v #>> '{}') > 320 ORDER BY k LIMIT 1;
		IF v_sku IS NOT NULL THEN
			PERFORM oms._payload_error('customer.' || v_sku, 'must be text of at most 320 characters',
				v_customer -> v_sku, 'Customer fields are text.');
		END IF;
		IF v_customer ? 'email' AND v_customer ->> 'email' !~ '^[^@\s]+@[^@\s]+$' THEN
			PERFORM oms._payload_error('customer.email', 'must be an e-mail address', v_customer -> 'email',
				'For example "anna@example.com".');
		END IF;
	END IF;

	IF p ? 'ship_to' AND p ? 'pickup' THEN
		RAISE EXCEPTION 'order payload has both "ship_to" and "pickup"'
			USING ERRCODE = '22023', HINT = 'Give "ship_to" (an address) to ship, or "pickup" (a store code) for click & collect.';
	ELSIF p ? 'ship_to' THEN
		v_ship_to := p -> 'ship_to';
		IF jsonb_typeof(v_ship_to) <> 'object' THEN
			PERFORM oms._payload_error('ship_to', 'must be an address object', v_ship_to,
				'{"name": "...", "line1": "...", "city": "Milano", "postal_code": "20121", "country": "IT", "lat": 45.46, "lon": 9.19}.');
		END IF;
		PERFORM oms._check_keys(v_ship_to, 'ship_to.', ARRAY['city', 'company', 'country', 'lat', 'line1', 'line2',
															 'lon', 'name', 'phone', 'postal_code', 'region']);
		SELECT k INTO v_sku FROM jsonb_each(v_ship_to) AS f(k, v)
			WHERE k NOT IN ('lat', 'lon') AND (jsonb_typeof(f.v) <> 'string' OR length(f.v #>> '{}') > 200)
			ORDER BY k LIMIT 1;
		IF v_sku IS NOT NULL THEN
			PERFORM oms._payload_error('ship_to.' || v_sku, 'must be text of at most 200 characters',
				v_ship_to -> v_sku, 'Address fields are text; lat and lon are numbers.');
		END IF;
		IF jsonb_typeof(v_ship_to -> 'country') IS DISTINCT FROM 'string' OR v_ship_to ->> 'country' !~ '^[A-Za-z]{2}$' THEN
			PERFORM oms._payload_error('ship_to.country', 'must be an ISO 3166 country code', v_ship_to -> 'country',
				'Two letters, e.g. "IT" or "RO".');
		END IF;
		v_country := upper(v_ship_to ->> 'country');
		v_ship_to := jsonb_set(v_ship_to, '{country}', to_jsonb(v_country));
		IF (v_ship_to ? 'lat') <> (v_ship_to ? 'lon') THEN
			PERFORM oms._payload_error(CASE WHEN v_ship_to ? 'lat' THEN 'ship_to.lon' ELSE 'ship_to.lat' END,
				'is required with the other coordinate', NULL, 'Give both lat and lon, or neither.');
		END IF;
		IF v_ship_to ? 'lat' THEN
			IF jsonb_typeof(v_ship_to -> 'lat') <> 'number' OR abs((v_ship_to ->> 'lat')::numeric) > 90 THEN
				PERFORM oms._payload_error('ship_to.lat', 'must be a latitude between -90 and 90', v_ship_to -> 'lat',
					'Decimal degrees, e.g. 45.4642.');
			END IF;
			IF jsonb_typeof(v_ship_to -> 'lon') <> 'number' OR abs((v_ship_to ->> 'lon')::numeric) > 180 THEN
				PERFORM oms._payload_error('ship_to.lon', 'must be a longitude between -180 and 180', v_ship_to -> 'lon',
					'Decimal degrees, e.g. 9.19.');
			END IF;
			v_lat := round((v_ship_to ->> 'lat')::numeric, 12)::double precision;	-- (1e-400 would underflow)
			v_lon := round((v_ship_to ->> 'lon')::numeric, 12)::double precision;
		END IF;
	ELSIF p ? 'pickup' THEN
		IF jsonb_typeof(p -> 'pickup') IS DISTINCT FROM 'string' THEN
			PERFORM oms._payload_error('pickup', 'must be a store''s location code', p -> 'pickup',
				'Click & collect names the store, e.g. "STORE-MI-01".');
		END IF;
		SELECT l.id INTO v_pickup FROM oms.locations l
			WHERE l.tenant_id = v_tenant AND l.code = p ->> 'pickup';
		IF v_pickup IS NULL THEN
			RAISE EXCEPTION 'unknown location "%"', oms._clip(p ->> 'pickup')
				USING ERRCODE = '22023', HINT = 'A pickup location is a row of oms.locations with can_pickup.';
		END IF;
		IF NOT EXISTS (SELECT FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = v_pickup AND l.active AND l.can_pickup) THEN
			RAISE EXCEPTION 'location "%" does not offer pickup', p ->> 'pickup'
				USING ERRCODE = '22023', HINT = 'Choose an active location with can_pickup for click & collect.';
		END IF;
	ELSE
		RAISE EXCEPTION 'order payload has neither "ship_to" nor "pickup"'
			USING ERRCODE = '22023', HINT = 'Give "ship_to" (an address) to ship, or "pickup" (a store code) for click & collect.';
	END IF;

	IF p ? 'cart' THEN
		IF jsonb_typeof(p -> 'cart') IS DISTINCT FROM 'string' OR p ->> 'cart' = '' OR length(p ->> 'cart') > 200 THEN
			PERFORM oms._payload_error('cart', 'must be a cart id (text of 1 to 200 characters)', p -> 'cart',
				'The cart whose holds (oms.hold) this order takes over.');
		END IF;
		v_cart := p ->> 'cart';
	END IF;
	IF p ? 'shipping_amount' THEN
		IF jsonb_typeof(p -> 'shipping_amount') IS DISTINCT FROM 'number' OR (p ->> 'shipping_amount')::numeric < 0
		   OR (p ->> 'shipping_amount')::numeric >= 1e15 THEN
			PERFORM oms._payload_error('shipping_amount', 'must be an amount of 0 or more', p -> 'shipping_amount',
				'The shipping charged to the customer, in the order''s currency.');
		END IF;
		v_shipping := round((p ->> 'shipping_amount')::numeric, v_minor);
	END IF;
	IF p ? 'routing' AND (jsonb_typeof(p -> 'routing') IS DISTINCT FROM 'string' OR p ->> 'routing' = '') THEN
		PERFORM oms._payload_error('routing', 'must be a routing profile code', p -> 'routing',
			'For example "cheapest", "fastest", "greenest" or "balanced" (oms.routing_profiles); default: the channel''s.');
	END IF;
	IF p ? 'attributes' THEN
		IF jsonb_typeof(p -> 'attributes') IS DISTINCT FROM 'object' THEN
			PERFORM oms._payload_error('attributes', 'must be an object', p -> 'attributes',
				'Free key/value data kept with the order, e.g. {"gift": true}.');
		END IF;
		v_attributes := p -> 'attributes';
	END IF;

	-- 3. The lines: shape, then SKUs (one line per SKU), then items.
	v_lines := p -> 'lines';
	IF jsonb_typeof(v_lines) IS DISTINCT FROM 'array' OR jsonb_array_length(v_lines) = 0 THEN
		PERFORM oms._payload_error('lines', 'must be a non-empty array', v_lines,
			'An order has 1 to 10000 lines: [{"sku": "SKU-1", "qty": 2, "unit_price": 19.90}].');
	END IF;
	IF jsonb_array_length(v_lines) > 10000 THEN
		RAISE EXCEPTION 'order payload field "lines" has % lines, more than 10000', jsonb_array_length(v_lines)
			USING ERRCODE = '22023', HINT = 'Split the order: one order has at most 10000 lines.';
	END IF;
	SELECT * INTO v_bad FROM oms._check_lines(v_lines);
	IF v_bad.path IS NOT NULL THEN
		PERFORM oms._payload_error(v_bad.path, v_bad.problem, v_bad.value, v_bad.hint);
	END IF;
	SELECT array_agg(a.v ->> 'sku' ORDER BY a.i), array_agg((a.v -> 'qty')::numeric::int ORDER BY a.i),
		   array_agg((a.v ->> 'unit_price')::numeric ORDER BY a.i)
	  INTO v_skus, v_qtys, v_prices
	  FROM jsonb_array_elements(v_lines) WITH ORDINALITY a(v, i);
	SELECT s INTO v_sku FROM unnest(v_skus) s GROUP BY s HAVING count(*) > 1 ORDER BY s LIMIT 1;
	IF v_sku IS NOT NULL THEN
		RAISE EXCEPTION 'SKU "%" appears in more than one line', v_sku
			USING ERRCODE = '22023', HINT = 'Send one line per SKU with the total quantity.';
	END IF;
	SELECT array_agg(it.id ORDER BY u.i), array_agg(it.backorderable ORDER BY u.i),
		   min(u.i) FILTER (WHERE it.id IS NULL), min(u.i) FILTER (WHERE NOT it.active),
		   array_agg(it.tax_class ORDER BY u.i)
	  INTO v_items, v_backorder, v_i, v_attempt, v_classes
	  FROM unnest(v_skus) WITH ORDINALITY u(sku, i)
	  LEFT JOIN oms.items it ON it.tenant_id = v_tenant AND it.sku = u.sku;
	IF v_i IS NOT NULL THEN
		RAISE EXCEPTION 'unknown SKU "%" in order payload field "lines[%].sku"', v_skus[v_i], v_i - 1
			USING ERRCODE = '22023', HINT = 'Items are rows of oms.items of the current tenant (setting oms.tenant).';
	END IF;
	IF v_attempt IS NOT NULL THEN
		RAISE EXCEPTION 'item "%" in order payload field "lines[%].sku" is not active', v_skus[v_attempt], v_attempt - 1
			USING ERRCODE = '22023', HINT = 'Inactive items cannot be sold; remove the line or reactivate the item.';
	END IF;
	v_attempt := 0;
	v_subtotal := 0;
	FOR v_i IN 1 .. cardinality(v_qtys) LOOP
		v_subtotal := v_subtotal + round(v_qtys[v_i] * v_prices[v_i], v_minor);
	END LOOP;
	v_total := v_subtotal + v_shipping;
	v_placed_at := coalesce(oms._payload_placed_at(p -> 'placed_at'), pg_catalog.now());

	-- Tax (71_tax.sql), on a channel with a tax mode: each line's rate (its item's class, in the
	-- country of the ship-to address or of the pickup store, valid on the order's UTC day), net,
	-- tax and gross, rounded per line to the currency's minor units as oms.tax_split does; the
	-- shipping charge is taxed at the standard rate. A missing rate refuses the order (OM011).
	IF v_tax_mode <> 'none' THEN
		v_tax_day := (v_placed_at AT TIME ZONE 'UTC')::date;
		v_tax_country := coalesce((SELECT l.country FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = v_pickup),
								  v_country);
		-- One look-up per tax class of the order (plain parameters: the plan is kept), then the
		-- amounts line by line.
		v_sku := NULL;
		FOR v_i IN 1 .. cardinality(v_items) LOOP
			v_j := array_position(v_classes, v_classes[v_i]);
			IF v_j < v_i THEN
				v_rates[v_i] := v_rates[v_j];
			ELSE
				v_rate := NULL;
				SELECT tr.rate INTO v_rate FROM oms.tax_rates tr
				 WHERE tr.tenant_id = v_tenant AND tr.country = v_tax_country AND tr.tax_class = v_classes[v_i]
				   AND tr.valid_from <= v_tax_day
				 ORDER BY tr.valid_from DESC LIMIT 1;
				v_rates[v_i] := v_rate;
			END IF;
			IF v_rates[v_i] IS NULL AND (v_sku IS NULL OR v_classes[v_i] < v_sku) THEN
				v_sku := v_classes[v_i];	-- the first class without a rate, by name
			END IF;
		END LOOP;
		IF v_shipping > 0 THEN
			SELECT tr.rate INTO v_ship_rate FROM oms.tax_rates tr
			 WHERE tr.tenant_id = v_tenant AND tr.country = v_tax_country AND tr.tax_class = 'standard'
			   AND tr.valid_from <= v_tax_day
			 ORDER BY tr.valid_from DESC LIMIT 1;
			IF v_ship_rate IS NULL AND (v_sku IS NULL OR 'standard' < v_sku) THEN
				v_sku := 'standard';
			END IF;
		END IF;
		IF v_sku IS NOT NULL THEN
			RAISE EXCEPTION 'no tax rate for country "%" and tax class "%"', coalesce(v_tax_country, 'NULL'), v_sku
				USING ERRCODE = 'OM011',
				      DETAIL = format('The channel''s tax mode is %s; the order is dated %s.', v_tax_mode, to_char(v_tax_day, 'YYYY-MM-DD')),
				      HINT = 'Add the rate to oms.tax_rates (country, tax_class, rate, valid_from), or set the channel''s tax_mode to none.';
		END IF;
		v_net_total := 0;
		v_tax_total := 0;
		v_total := 0;
		FOR v_i IN 1 .. cardinality(v_items) LOOP
			v_amount := round(v_qtys[v_i] * v_prices[v_i], v_minor);
			IF v_tax_mode = 'excluded' THEN
				v_net[v_i] := v_amount;
				v_gross[v_i] := v_amount + round(v_amount * v_rates[v_i], v_minor);
			ELSE
				v_net[v_i] := round(v_amount / (1 + v_rates[v_i]), v_minor);
				v_gross[v_i] := v_amount;
			END IF;
			v_tax[v_i] := v_gross[v_i] - v_net[v_i];
			v_net_total := v_net_total + v_net[v_i];
			v_tax_total := v_tax_total + v_tax[v_i];
			v_total := v_total + v_gross[v_i];
		END LOOP;
		v_amount := round(v_shipping, v_minor);
		IF v_tax_mode = 'excluded' THEN
			v_ship_net := v_amount;
			v_ship_gross := v_amount + round(v_amount * coalesce(v_ship_rate, 0), v_minor);
		ELSE
			v_ship_net := round(v_amount / (1 + coalesce(v_ship_rate, 0)), v_minor);
			v_ship_gross := v_amount;
		END IF;
		-- subtotal: the lines' net (excluded) or gross (included), both the sum of qty x price
		v_net_total := v_net_total + v_ship_net;
		v_tax_total := v_tax_total + v_ship_gross - v_ship_net;
		v_total := v_total + v_ship_gross;
	END IF;

	-- 4. The cart's live holds are credited at their location (locked, so that the worker does not
	--    expire them under us).
	IF v_cart IS NOT NULL THEN
		PERFORM FROM oms.reservations h WHERE h.tenant_id = v_tenant AND h.cart = v_cart FOR UPDATE;
		SELECT array_agg(h.location_id ORDER BY u.i), array_agg(h.qty::bigint ORDER BY u.i)
		  INTO v_prefer, v_credit
		  FROM unnest(v_items) WITH ORDINALITY u(item_id, i)
		  LEFT JOIN oms.reservations h ON h.tenant_id = v_tenant AND h.cart = v_cart
			   AND h.item_id = u.item_id AND h.expires_at > pg_catalog.now();
	END IF;

	-- 5. Route (oms._route, under the profile the payload names in "routing", else the channel's),
	--    insert, reserve, count capacity. A location that lost the race for its last units (OM001
	--    from the reservation trigger) or for its last order of the day (OM030) makes us route
	--    again on fresh data, up to three times: the line goes to the next best location.
	v_profile := coalesce(p ->> 'routing', v_channel_profile);
	IF NOT EXISTS (SELECT FROM oms.routing_profiles rp
					WHERE rp.code = v_profile AND (rp.tenant_id = v_tenant OR rp.tenant_id IS NULL)) THEN
		RAISE EXCEPTION 'unknown routing profile "%" in %', oms._clip(v_profile),
				CASE WHEN p ? 'routing' THEN 'order payload field "routing"'
					 ELSE format('the default of channel "%s"', oms._clip(p ->> 'channel')) END
			USING ERRCODE = '22023',
			      HINT = 'Routing profiles are rows of oms.routing_profiles: balanced, cheapest, fastest, greenest, or the tenant''s own.';
	END IF;
	LOOP
		-- One row per line and location (a split line has several).
		SELECT array_agg(rt.line_no ORDER BY rt.ord), array_agg(rt.location_id ORDER BY rt.ord),
			   array_agg(rt.qty ORDER BY rt.ord), array_agg(rt.kind ORDER BY rt.ord),
			   array_agg(rt.eta ORDER BY rt.ord), array_agg(rt.capacity_day ORDER BY rt.ord),
			   array_agg(rt.reason ORDER BY rt.ord), array_agg(rt.supply_id ORDER BY rt.ord)
		  INTO v_a_line, v_a_loc, v_a_qty, v_a_kind, v_a_eta, v_a_capday, v_a_reason, v_a_supply
		  FROM oms._route(v_tenant, v_items, v_qtys, v_prefer, v_credit::int[], NULL, NULL,
						  v_ship_to, v_pickup, v_profile) WITH ORDINALITY AS rt(line_no, item_id, location_id, qty, kind,
																			 carrier_service, eta, capacity_day,
																			 supply_id, reason, ord);
		v_i := NULL;
		SELECT min(a.n) INTO v_i FROM generate_subscripts(v_a_kind, 1) a(n) WHERE v_a_kind[a.n] = 'unservable';
		IF v_i IS NOT NULL THEN
			RAISE EXCEPTION 'insufficient stock for SKU "%"%', v_skus[v_a_line[v_i]],
					CASE WHEN v_pickup IS NOT NULL THEN format(' for pickup at "%s"', p ->> 'pickup') ELSE '' END
				USING ERRCODE = 'OM001',
				      DETAIL = format('Requested %s: %s.', v_qtys[v_a_line[v_i]], regexp_replace(v_a_reason[v_i], '^unservable: ', '')),
				      HINT = 'Lower the quantity or remove the line; oms.atp_by_location() shows where the stock is, oms.route_explain() why it cannot be used.';
		END IF;
		-- Per line: its state, its location (NULL when split over several, or backordered) and
		-- the date promised (the latest of its parts).
		SELECT array_agg(CASE WHEN x.kinds && ARRAY['ship', 'drop-ship', 'pickup', 'transfer'] THEN 'allocated'
							  WHEN x.kinds && ARRAY['preorder'] THEN 'preordered'
							  ELSE 'backordered' END::oms.line_state ORDER BY x.line_no),
			   -- a click & collect line waiting for stock waits at its store (a receipt there serves it)
			   array_agg(CASE WHEN x.nlocs = 1 AND NOT x.kinds && ARRAY['backorder'] THEN x.loc
							  WHEN x.kinds = ARRAY['backorder'] THEN v_pickup END ORDER BY x.line_no),
			   array_agg(x.eta ORDER BY x.line_no)
		  INTO v_states, v_locs, v_promised
		  FROM (SELECT v_a_line[a.n] AS line_no, array_agg(DISTINCT v_a_kind[a.n]) AS kinds,
					   count(DISTINCT v_a_loc[a.n]) AS nlocs, min(v_a_loc[a.n]) AS loc, max(v_a_eta[a.n]) AS eta
				  FROM generate_subscripts(v_a_line, 1) a(n)
				 GROUP BY v_a_line[a.n]) x;
		v_state := oms.rollup(v_states);

		IF v_order_id IS NULL THEN
			INSERT INTO oms.orders AS o (tenant_id, channel_id, external_id, state, customer_ref, customer_email,
										 customer_name, customer_phone, ship_to, ship_country, ship_postal_code,
										 ship_city, ship_lat, ship_lon, pickup_location_id, currency, subtotal,
										 shipping_amount, total, cart, attributes, placed_at, routing_profile,
										 tax_mode, tax_country, shipping_tax_rate, shipping_net, shipping_tax,
										 net_total, tax_total)
				VALUES (v_tenant, v_channel_id, v_ext, v_state, v_customer ->> 'ref', v_customer ->> 'email',
						v_customer ->> 'name', v_customer ->> 'phone', v_ship_to, v_country,
						v_ship_to ->> 'postal_code', v_ship_to ->> 'city', v_lat, v_lon, v_pickup, v_currency,
						v_subtotal, v_shipping, v_total, v_cart, v_attributes, v_placed_at, v_profile,
						v_tax_mode, CASE WHEN v_tax_mode <> 'none' THEN v_tax_country END, v_ship_rate, v_ship_net,
						v_ship_gross - v_ship_net, v_net_total, v_tax_total)
				ON CONFLICT ON CONSTRAINT orders_channel_external_id_key DO NOTHING
				RETURNING o.id INTO v_order_id;
			IF v_order_id IS NULL THEN
				-- A concurrent submission of the same order committed first: return its result.
				SELECT o.id INTO v_order_id FROM oms.orders o
					WHERE o.tenant_id = v_tenant AND o.channel_id = v_channel_id AND o.external_id = v_ext;
				RETURN v_order_id;
			END IF;
		ELSE
			UPDATE oms.orders o SET state = v_state
				WHERE o.tenant_id = v_tenant AND o.id = v_order_id AND o.state <> v_state;
		END IF;

		BEGIN
			INSERT INTO oms.order_lines (tenant_id, order_id, line_no, item_id, qty, unit_price, state, location_id,
										 promised_date, tax_rate, net, tax, gross)
				SELECT v_tenant, v_order_id, i, v_items[i], v_qtys[i], v_prices[i], v_states[i], v_locs[i], v_promised[i],
					   v_rates[i], v_net[i], v_tax[i], v_gross[i]
				  FROM generate_subscripts(v_items, 1) i;
			PERFORM oms._reserve_routed(v_tenant, v_order_id, v_cart, v_items, v_a_line, v_a_loc, v_a_qty, v_a_kind,
										v_a_supply);
			PERFORM oms._take_order_capacity(v_tenant, v_order_id, v_a_loc, v_a_capday);
			EXIT;
		EXCEPTION WHEN SQLSTATE 'OM001' OR SQLSTATE 'OM030' THEN
			v_attempt := v_attempt + 1;
			IF v_attempt >= 3 THEN
				RAISE;
			END IF;
		END;
	END LOOP;

	-- 6. What follows the capture of a new order (events): sql/parts/72_placed.sql.
	PERFORM oms._order_placed(v_tenant, v_order_id);
	RETURN v_order_id;
END
$$;
COMMENT ON FUNCTION oms.place_order(jsonb) IS 'Places an order from any channel in one call: validates, deduplicates on (channel, external_id), chooses locations, reserves stock, records history, writes its events; returns the order id';
CREATE OR REPLACE FUNCTION oms._order_placed(p_tenant int, p_order bigint) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_o			record;
BEGIN
	-- The order is read first, then its events are written from it: as one statement (a CTE feeding
	-- the INSERT), Citus would send the CTE's rows to every node (README "Scale-out on Citus").
	SELECT jsonb_build_object(
				'order_id', o.id, 'order_ref', o.external_id, 'channel', c.code,
				'customer', jsonb_strip_nulls(jsonb_build_object('ref', o.customer_ref, 'name', o.customer_name,
																 'email', o.customer_email, 'phone', o.customer_phone))) AS header,
		   o.state, o.placed_at, o.currency, o.subtotal, o.shipping_amount, o.total, o.ship_to,
		   pl.code AS pickup_code, pl.name AS pickup_name, c.auto_release,
		   EXISTS (SELECT FROM oms.fraud_rules r WHERE r.tenant_id = p_tenant AND r.active) AS screen
	  INTO v_o
	  FROM oms.orders o
	  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	  LEFT JOIN oms.locations pl ON pl.tenant_id = o.tenant_id AND pl.id = o.pickup_location_id
	 WHERE o.tenant_id = p_tenant AND o.id = p_order;
	INSERT INTO oms.events (tenant_id, order_id, type, payload)
	SELECT p_tenant, p_order, ev.type, ev.payload
	  FROM (SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'sku', i.sku, 'name', i.name, 'qty', l.qty,
												'unit_price', l.unit_price, 'state', l.state::text)
							 ORDER BY l.line_no) AS lines,
				   jsonb_agg(jsonb_build_object('line_no', l.line_no, 'sku', i.sku, 'name', i.name, 'qty', l.qty,
												'promised_date', l.promised_date)
							 ORDER BY l.line_no) FILTER (WHERE l.state = 'backordered') AS backordered
			  FROM oms.order_lines l
			  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
			 WHERE l.tenant_id = p_tenant AND l.order_id = p_order) l
	 CROSS JOIN LATERAL (VALUES
			('order_received',
			 v_o.header || jsonb_build_object(
				'state', v_o.state::text, 'placed_at', v_o.placed_at, 'currency', v_o.currency, 'subtotal', v_o.subtotal,
				'shipping_amount', v_o.shipping_amount, 'total', v_o.total, 'lines', l.lines)
			 || CASE WHEN v_o.pickup_code IS NOT NULL
					 THEN jsonb_build_object('pickup', jsonb_build_object('location', v_o.pickup_code, 'name', v_o.pickup_name))
					 ELSE jsonb_build_object('ship_to', v_o.ship_to) END),
			('line_backordered',
			 CASE WHEN l.backordered IS NOT NULL THEN v_o.header || jsonb_build_object('lines', l.backordered) END)
		) ev(type, payload)
	 WHERE ev.payload IS NOT NULL;

	IF v_o.screen THEN
		PERFORM oms._screen_order(p_tenant, p_order);
	END IF;
	IF v_o.auto_release THEN
		PERFORM oms._auto_release(p_tenant, p_order);
	END IF;
END
$$;
COMMENT ON FUNCTION oms._order_placed(int, bigint) IS 'Internal: what follows the capture of a new order in place_order''s transaction: its events (order_received, line_backordered), fraud rules, automatic release';
CREATE OR REPLACE FUNCTION oms._event(p_tenant int, p_order bigint, p_type text, p_payload jsonb) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	-- Read before the INSERT, not inside it: on Citus a query of a distributed table cannot run
	-- inside another (README "Scale-out on Citus").
	v_payload	jsonb := oms._order_header(p_tenant, p_order) || coalesce(p_payload, '{}');
BEGIN
	INSERT INTO oms.events (tenant_id, order_id, type, payload)
		VALUES (p_tenant, p_order, p_type, v_payload);
END
$$;
COMMENT ON FUNCTION oms._event(int, bigint, text, jsonb) IS 'Internal: writes an event of an order, its payload the order header (reference, channel, customer) and the given fields';
CREATE OR REPLACE FUNCTION oms.cancel_order(order_id bigint, reason text) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_state		oms.order_state;
	v_blocking	oms.line_state;
	r			record;
BEGIN
	IF reason IS NULL OR btrim(reason) = '' THEN
		RAISE EXCEPTION 'a reason is required to cancel order %', cancel_order.order_id
			USING ERRCODE = '22023', HINT = 'Say why (e.g. ''customer request''); it is kept in oms.order_history.';
	END IF;
	SELECT o.state INTO v_state FROM oms.orders o
		WHERE o.tenant_id = v_tenant AND o.id = cancel_order.order_id
		FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown order %', coalesce(cancel_order.order_id::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Orders are rows of oms.orders of the current tenant (setting oms.tenant).';
	END IF;
	IF v_state = 'cancelled' THEN
		RETURN v_state;
	END IF;

	-- Goods that have left (or are staged for the customer) cannot be cancelled.
	SELECT l.state INTO v_blocking FROM oms.order_lines l
		WHERE l.tenant_id = v_tenant AND l.order_id = cancel_order.order_id
		  AND (l.qty_shipped > 0 OR l.state IN ('partially_shipped', 'shipped', 'delivered', 'partially_returned', 'returned'))
		ORDER BY l.line_no LIMIT 1;
	-- Nor can goods packed into a shipment that has not left yet: shipping it would find its
	-- reservation gone (ship it, and return it, instead).
	IF v_blocking IS NULL AND EXISTS (SELECT FROM oms.shipments s
									   WHERE s.tenant_id = v_tenant AND s.order_id = cancel_order.order_id
										 AND s.state = 'packed') THEN
		v_blocking := 'packed';
	END IF;
	IF v_blocking IS NOT NULL OR v_state IN ('partially_shipped', 'shipped', 'delivered', 'partially_returned', 'returned', 'closed') THEN
		RAISE EXCEPTION 'order % cannot be cancelled: it is %', cancel_order.order_id,
				coalesce(v_blocking::text, v_state::text)
			USING ERRCODE = '55000',
			      HINT = 'Only orders with nothing shipped can be cancelled; return what was shipped instead.';
	END IF;

	PERFORM pg_catalog.set_config('oms.reason', reason, true);
	FOR r IN SELECT x.id FROM oms.reservations x
			  WHERE x.tenant_id = v_tenant AND x.order_id = cancel_order.order_id
			  ORDER BY x.supply_id IS NOT NULL, x.item_id, x.location_id, x.supply_id
	LOOP
		DELETE FROM oms.reservations x WHERE x.tenant_id = v_tenant AND x.id = r.id;
	END LOOP;
	UPDATE oms.order_lines l SET state = 'cancelled', qty_cancelled = l.qty - l.qty_shipped
		WHERE l.tenant_id = v_tenant AND l.order_id = cancel_order.order_id AND l.state <> 'cancelled';
	UPDATE oms.orders o SET state = 'cancelled'
		WHERE o.tenant_id = v_tenant AND o.id = cancel_order.order_id;
	PERFORM pg_catalog.set_config('oms.reason', '', true);
	PERFORM oms._release_order_capacity(v_tenant, cancel_order.order_id);
	-- The payload is read first, then written: on Citus a query of a distributed table cannot run
	-- inside another.
	<<event>>
	DECLARE
		v_payload	jsonb := oms._order_header(v_tenant, cancel_order.order_id);
	BEGIN
	v_payload := v_payload
		   || jsonb_build_object('reason', cancel_order.reason,
				'lines', (SELECT jsonb_agg(jsonb_build_object('line_no', l.line_no, 'sku', i.sku, 'name', i.name,
															  'qty', l.qty_cancelled) ORDER BY l.line_no)
							FROM oms.order_lines l
							JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
						   WHERE l.tenant_id = v_tenant AND l.order_id = cancel_order.order_id));
	INSERT INTO oms.events (tenant_id, order_id, type, payload)
	VALUES (v_tenant, cancel_order.order_id, 'cancelled', v_payload);
	END event;
	RETURN 'cancelled'::oms.order_state;
END
$$;
COMMENT ON FUNCTION oms.cancel_order(bigint, text) IS 'Cancels an order with nothing shipped or packed: releases its reservations, moves order and lines to cancelled, writes the cancelled event; a no-op when already cancelled';
CREATE OR REPLACE FUNCTION oms.payment_totals(order_id bigint)
	RETURNS TABLE (currency char(3), authorized numeric, captured numeric, refunded numeric, voided numeric,
				   capturable numeric, refundable numeric)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT o.currency, coalesce(sum(p.authorized), 0), coalesce(sum(p.captured), 0),
		   coalesce(sum(p.refunded), 0), coalesce(sum(p.voided), 0),
		   coalesce(sum(p.authorized - p.captured - p.voided), 0), coalesce(sum(p.captured - p.refunded), 0)
	  FROM oms.orders o
	  LEFT JOIN oms.payments p ON p.tenant_id = o.tenant_id AND p.order_id = o.id
	 WHERE o.tenant_id = oms.current_tenant_id() AND o.id = payment_totals.order_id
	 GROUP BY o.currency;
END
$$;
COMMENT ON FUNCTION oms.payment_totals(bigint) IS 'An order''s payments summed: authorized, captured, refunded, voided, still capturable (authorized - captured - voided) and refundable (captured - refunded); no row for an unknown order';
CREATE OR REPLACE FUNCTION oms._release_blockers(p_tenant int, p_order bigint,
									  OUT holds text, OUT payment_missing numeric, OUT authorized numeric)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_required	boolean;
	v_total		numeric;
BEGIN
	SELECT string_agg(h.reason, ', ' ORDER BY h.id) INTO holds FROM oms.order_holds h
		WHERE h.tenant_id = p_tenant AND h.order_id = p_order AND h.resolved_at IS NULL;
	-- What is due: the total less the cancelled units (oms.cancel_line).
	SELECT c.requires_authorization,
		   o.total - coalesce((SELECT sum(oms._units_value(l.gross, l.qty, l.unit_price, l.qty_cancelled, cur.minor_units))
								 FROM oms.order_lines l
								WHERE l.tenant_id = p_tenant AND l.order_id = p_order), 0)
	  INTO v_required, v_total
	  FROM oms.orders o
	  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	  JOIN oms.currencies cur ON cur.code = o.currency
	 WHERE o.tenant_id = p_tenant AND o.id = p_order;
	IF v_required THEN
		SELECT coalesce(sum(p.authorized - p.voided), 0) INTO authorized FROM oms.payments p
			WHERE p.tenant_id = p_tenant AND p.order_id = p_order;
		IF authorized < v_total THEN
			payment_missing := v_total - authorized;
		END IF;
	END IF;
END
$$;
COMMENT ON FUNCTION oms._release_blockers(int, bigint) IS 'Internal: the open holds of an order and, when its channel requires authorisation, how much of what is due (total less cancelled units) is not authorised';
CREATE OR REPLACE FUNCTION oms._packed_qty(p_tenant int, p_order bigint, p_line int, p_location int) RETURNS bigint
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT coalesce(sum(sl.qty), 0)::bigint
	  FROM oms.shipment_lines sl
	  JOIN oms.shipments s ON s.tenant_id = sl.tenant_id AND s.id = sl.shipment_id
	 WHERE sl.tenant_id = p_tenant AND sl.order_id = p_order AND sl.line_no = p_line
	   AND s.state = 'packed' AND (p_location IS NULL OR s.location_id = p_location));
END
$$;
COMMENT ON FUNCTION oms._packed_qty(int, bigint, int, int) IS 'Internal: units of an order line in shipments packed and not yet shipped (at a location, or anywhere)';
CREATE OR REPLACE FUNCTION oms._shipment_lines_json(p_tenant int, p_shipment bigint) RETURNS jsonb
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT jsonb_agg(jsonb_build_object('line_no', sl.line_no, 'sku', i.sku, 'name', i.name, 'qty', sl.qty)
					 ORDER BY sl.line_no)
	  FROM oms.shipment_lines sl
	  JOIN oms.order_lines l ON l.tenant_id = sl.tenant_id AND l.order_id = sl.order_id AND l.line_no = sl.line_no
	  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
	 WHERE sl.tenant_id = p_tenant AND sl.shipment_id = p_shipment);
END
$$;
COMMENT ON FUNCTION oms._shipment_lines_json(int, bigint) IS 'Internal: the lines of a shipment (line_no, sku, name, qty) as JSON';
CREATE OR REPLACE FUNCTION oms.ready_for_pickup(order_id bigint) RETURNS oms.order_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	v_store		record;
	v_lines		jsonb;
	v_by		timestamptz;
	v_state		oms.order_state;
BEGIN
	o := oms._lock_order(v_tenant, ready_for_pickup.order_id);
	IF o.pickup_location_id IS NULL THEN
		RAISE EXCEPTION 'order % is not a click & collect order', o.id
			USING ERRCODE = '22023', HINT = 'Only orders placed with "pickup" are staged for the customer; ship the others.';
	END IF;
	PERFORM oms._check_not_held(v_tenant, o.id, 'staged for pickup');
	SELECT l.code, l.name, l.city, l.pickup_days INTO v_store
		FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.id = o.pickup_location_id;

	PERFORM set_config('oms.reason', 'ready for pickup at ' || v_store.code, true);
	WITH staged AS (
		UPDATE oms.order_lines l SET state = 'ready_for_pickup'
		 WHERE l.tenant_id = v_tenant AND l.order_id = o.id AND l.state IN ('released', 'picked', 'packed')
		RETURNING l.line_no, l.item_id, l.qty - l.qty_cancelled - l.qty_shipped AS qty)
	SELECT jsonb_agg(jsonb_build_object('line_no', s.line_no, 'sku', i.sku, 'name', i.name, 'qty', s.qty) ORDER BY s.line_no)
	  INTO v_lines
	  FROM staged s JOIN oms.items i ON i.tenant_id = v_tenant AND i.id = s.item_id;
	IF v_lines IS NULL THEN
		IF o.state = 'released' AND EXISTS (SELECT FROM oms.pickups p WHERE p.tenant_id = v_tenant AND p.order_id = o.id) THEN
			RETURN o.state;		-- staged already: a retried call changes nothing
		END IF;
		RAISE EXCEPTION 'order % has no released line to stage for pickup: it is %', o.id, o.state
			USING ERRCODE = '55000', HINT = 'Release the order first (oms.release_order).';
	END IF;
	v_by := now() + make_interval(days => v_store.pickup_days);
	INSERT INTO oms.pickups AS p (tenant_id, order_id, location_id, collect_by)
		VALUES (v_tenant, o.id, o.pickup_location_id, v_by)
		ON CONFLICT ON CONSTRAINT pickups_pkey
		DO UPDATE SET ready_at = EXCLUDED.ready_at, collect_by = EXCLUDED.collect_by, uncollected_at = NULL;
	v_state := oms._rollup(v_tenant, o.id);
	PERFORM oms._event(v_tenant, o.id, 'ready_for_pickup',
		jsonb_build_object('store', jsonb_build_object('location', v_store.code, 'name', v_store.name, 'city', v_store.city),
						   'collect_by', v_by, 'lines', v_lines));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms.ready_for_pickup(bigint) IS 'Stages the released lines of a click & collect order at its store (line state ready_for_pickup) and tells the customer (event ready_for_pickup with the store and the date until which it is kept); returns the order state';
CREATE OR REPLACE FUNCTION oms._demand_lines_inserted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		INSERT INTO oms.demand_deltas (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
		SELECT n.tenant_id, n.item_id, n.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
			   pg_catalog.sum(n.qty), pg_catalog.sum(n.qty_cancelled), pg_catalog.sum(n.qty_returned), pg_catalog.count(*)
		  FROM new_lines n
		  JOIN oms.orders o ON o.tenant_id = n.tenant_id AND o.id = n.order_id
		 GROUP BY n.tenant_id, n.item_id, n.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus")
	PERFORM oms._demand_lines_on_shard(ARRAY(SELECT ROW(t.*)::oms.order_lines FROM new_lines t), NULL);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._demand_lines_inserted() IS 'Internal: statement trigger on order_lines INSERT: adds the new lines to oms.demand_deltas';
CREATE OR REPLACE FUNCTION oms._demand_lines_updated() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		INSERT INTO oms.demand_deltas (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
		SELECT c.tenant_id, c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
			   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_returned), pg_catalog.sum(c.lines)
		  FROM (SELECT n.tenant_id, n.order_id, n.item_id, n.location_id, n.qty::bigint AS qty,
					   n.qty_cancelled::bigint AS qty_cancelled, n.qty_returned::bigint AS qty_returned, 1::bigint AS lines
				  FROM new_lines n
				UNION ALL
				SELECT d.tenant_id, d.order_id, d.item_id, d.location_id, -d.qty, -d.qty_cancelled, -d.qty_returned, -1
				  FROM old_lines d) c
		  JOIN oms.orders o ON o.tenant_id = c.tenant_id AND o.id = c.order_id
		 GROUP BY c.tenant_id, c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date
		HAVING pg_catalog.sum(c.qty) <> 0 OR pg_catalog.sum(c.qty_cancelled) <> 0
			OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.lines) <> 0;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus")
	PERFORM oms._demand_lines_on_shard(ARRAY(SELECT ROW(t.*)::oms.order_lines FROM new_lines t),
									 ARRAY(SELECT ROW(t.*)::oms.order_lines FROM old_lines t));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._demand_lines_updated() IS 'Internal: statement trigger on order_lines UPDATE: writes to oms.demand_deltas the net change of qty, qty_cancelled, qty_returned or location';
CREATE OR REPLACE FUNCTION oms._demand_lines_deleted() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF TG_TABLE_NAME = 'order_lines' THEN
		INSERT INTO oms.demand_deltas (tenant_id, item_id, location_id, channel_id, day, ordered, cancelled, returned, lines)
		SELECT d.tenant_id, d.item_id, d.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
			   -pg_catalog.sum(d.qty), -pg_catalog.sum(d.qty_cancelled), -pg_catalog.sum(d.qty_returned), -pg_catalog.count(*)
		  FROM old_lines d
		  JOIN oms.orders o ON o.tenant_id = d.tenant_id AND o.id = d.order_id
		 GROUP BY d.tenant_id, d.item_id, d.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date;
		RETURN NULL;
	END IF;
	-- A shard of a Citus cluster (README "Scale-out on Citus")
	PERFORM oms._demand_lines_on_shard(NULL, ARRAY(SELECT ROW(t.*)::oms.order_lines FROM old_lines t));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION oms._demand_lines_deleted() IS 'Internal: statement trigger on order_lines DELETE: takes the deleted lines out of demand';
CREATE OR REPLACE FUNCTION oms._effective_policy(p_tenant int, p_location int, p_item int)
	RETURNS TABLE (policy_id int, default_id int, method text, service_level numeric, lead_time_days numeric,
				   lead_time_sd numeric, review_period_days numeric, history_days int, min_qty bigint,
				   max_qty bigint, order_qty bigint, moq bigint, pack_size bigint, supplier_id int,
				   unit_cost numeric, overstock_days numeric, update_safety_stock boolean, rebalance boolean,
				   auto_send boolean)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT s.id, d.id,
		   coalesce(s.method, d.method, oms._policy_defaults() ->> 'method'),
		   coalesce(s.service_level, d.service_level, (oms._policy_defaults() ->> 'service_level')::numeric),
		   coalesce(s.lead_time_days, d.lead_time_days, (oms._policy_defaults() ->> 'lead_time_days')::numeric),
		   coalesce(s.lead_time_sd, d.lead_time_sd, (oms._policy_defaults() ->> 'lead_time_sd')::numeric),
		   coalesce(s.review_period_days, d.review_period_days, (oms._policy_defaults() ->> 'review_period_days')::numeric),
		   coalesce(s.history_days, d.history_days, (oms._policy_defaults() ->> 'history_days')::int),
		   coalesce(s.min_qty, d.min_qty), coalesce(s.max_qty, d.max_qty), coalesce(s.order_qty, d.order_qty),
		   coalesce(s.moq, d.moq, (oms._policy_defaults() ->> 'moq')::bigint),
		   coalesce(s.pack_size, d.pack_size, (oms._policy_defaults() ->> 'pack_size')::bigint),
		   coalesce(s.supplier_id, d.supplier_id), coalesce(s.unit_cost, d.unit_cost),
		   coalesce(s.overstock_days, d.overstock_days),
		   coalesce(s.update_safety_stock, d.update_safety_stock, (oms._policy_defaults() ->> 'update_safety_stock')::boolean),
		   coalesce(s.rebalance, d.rebalance, (oms._policy_defaults() ->> 'rebalance')::boolean),
		   coalesce(s.auto_send, d.auto_send, (oms._policy_defaults() ->> 'auto_send')::boolean)
	  FROM (SELECT 1) one
	  LEFT JOIN oms.replenishment_policies s
		ON s.tenant_id = p_tenant AND s.location_id = p_location AND s.item_id = p_item
	  LEFT JOIN oms.replenishment_policies d
		ON d.tenant_id = p_tenant AND d.location_id = p_location AND d.item_id IS NULL
	 WHERE s.id IS NOT NULL OR d.id IS NOT NULL;
END
$$;
COMMENT ON FUNCTION oms._effective_policy(int, int, int) IS 'Internal: the effective policy of an item at a location (item NULL: the location default), every setting resolved; no row when there is no policy';
CREATE OR REPLACE FUNCTION oms._lock_waiting_orders(p_tenant int, p_items int[], p_location int) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	PERFORM pg_catalog.count(*) FROM (
		SELECT o.id FROM oms.orders o
		 WHERE o.tenant_id = p_tenant
		   AND o.id IN (SELECT l.order_id FROM oms.order_lines l
						 WHERE l.tenant_id = p_tenant AND l.item_id = ANY (p_items)
						   AND l.state IN ('backordered', 'preordered')
						   AND (l.location_id = p_location OR l.location_id IS NULL))
		 ORDER BY o.id
		 FOR UPDATE) x;
END
$$;
COMMENT ON FUNCTION oms._lock_waiting_orders(int, int[], int) IS 'Internal: locks, in id order, the orders whose backorders a receipt of these items at this location may serve';
CREATE OR REPLACE FUNCTION oms._receive_stock(p_tenant int, p_item int, p_location int, p_qty bigint, p_kind text,
								   p_reason text, p_reference text,
								   OUT on_hand bigint, OUT lines_allocated int, OUT units_allocated bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, on_hand)
		VALUES (p_tenant, p_item, p_location, p_qty)
		ON CONFLICT (tenant_id, item_id, location_id)
		DO UPDATE SET on_hand = s.on_hand + EXCLUDED.on_hand, updated_at = EXCLUDED.updated_at
		RETURNING s.on_hand INTO on_hand;
	INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, reference, moved_by)
		VALUES (p_tenant, p_item, p_location, p_kind, p_qty, on_hand, p_reason, p_reference, oms._actor());
	SELECT pg_catalog.count(*), coalesce(pg_catalog.sum(a.qty), 0) INTO lines_allocated, units_allocated
	  FROM oms._allocate_backorders(p_tenant, p_item, p_location) a;
END
$$;
COMMENT ON FUNCTION oms._receive_stock(int, int, int, bigint, text, text, text) IS 'Internal: adds received units to on_hand with a movement, then allocates the backorders they can serve';
CREATE OR REPLACE FUNCTION oms._alert_conditions(p_tenant int, p_today date)
	RETURNS TABLE (kind text, severity text, subject text, item_id int, location_id int, purchase_order_id bigint,
				   order_id bigint, message text, details jsonb)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
	SET citus.allow_nested_distributed_execution = on
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	WITH c AS (
		SELECT c.*, c.on_hand - c.reserved - c.current_safety_stock AS available,
			   CASE WHEN c.method = 'min_max' THEN c.min_qty ELSE c.reorder_point END AS low_level,
			   i.sku
		  FROM oms._replenishment_candidates(p_tenant, p_today) c
		  JOIN oms.items i ON i.tenant_id = p_tenant AND i.id = c.item_id
	)
	SELECT CASE WHEN c.available <= 0 THEN 'stock_out' ELSE 'low_stock' END,
		   CASE WHEN c.available <= 0 THEN 'critical' ELSE 'warning' END,
		   c.sku || '@' || c.location_code, c.item_id, c.location_id, NULL::bigint, NULL::bigint,
		   CASE WHEN c.available <= 0
				THEN pg_catalog.format('SKU "%s" is out of stock at %s', c.sku, c.location_code)
				ELSE pg_catalog.format('SKU "%s" at %s: %s available, at or below %s %s', c.sku, c.location_code,
									   c.available, CASE WHEN c.method = 'min_max' THEN 'min' ELSE 'reorder point' END, c.low_level) END,
		   pg_catalog.jsonb_build_object('on_hand', c.on_hand, 'reserved', c.reserved, 'safety_stock', c.current_safety_stock,
										 'available', c.available, 'on_order', c.on_order, 'level', c.low_level)
	  FROM c
	 WHERE c.available <= 0 OR c.available <= c.low_level
	UNION ALL
	SELECT 'overstock', 'info', c.sku || '@' || c.location_code, c.item_id, c.location_id, NULL, NULL,
		   pg_catalog.format('SKU "%s" at %s: %s on hand, above %s', c.sku, c.location_code, c.on_hand,
							 CASE WHEN c.method = 'min_max' AND c.on_hand > c.max_qty THEN 'max ' || c.max_qty
								  ELSE pg_catalog.round(c.overstock_days) || ' days of demand ('
									   || pg_catalog.round((c.overstock_days::double precision * c.demand_mean)::numeric, 1) || ')' END),
		   pg_catalog.jsonb_build_object('on_hand', c.on_hand, 'max', c.max_qty, 'overstock_days', c.overstock_days,
										 'demand_per_day', pg_catalog.round(c.demand_mean::numeric, 3))
	  FROM c
	 WHERE (c.method = 'min_max' AND c.on_hand > c.max_qty)
		OR (c.overstock_days IS NOT NULL AND c.demand_mean > 0 AND c.on_hand > c.overstock_days::double precision * c.demand_mean)
	UNION ALL
	SELECT 'late_purchase_order', 'warning', 'PO-' || po.id, NULL, po.location_id, po.id, NULL,
		   pg_catalog.format('purchase order %s from %s is late: %s units expected by %s have not arrived', po.id, s.code,
							 pg_catalog.sum(l.qty - l.qty_received - l.qty_cancelled), pg_catalog.min(l.expected_date)),
		   pg_catalog.jsonb_build_object('supplier', s.code, 'expected_date', pg_catalog.min(l.expected_date),
										 'units_late', pg_catalog.sum(l.qty - l.qty_received - l.qty_cancelled),
										 'days_late', p_today - pg_catalog.min(l.expected_date))
	  FROM oms.purchase_orders po
	  JOIN oms.purchase_order_lines l ON l.tenant_id = po.tenant_id AND l.po_id = po.id
	  JOIN oms.suppliers s ON s.tenant_id = po.tenant_id AND s.id = po.supplier_id
	 WHERE po.tenant_id = p_tenant AND po.state IN ('draft', 'sent', 'partially_received')
	   AND l.expected_date < p_today AND l.qty_received + l.qty_cancelled < l.qty
	 GROUP BY po.id, po.location_id, s.code
	UNION ALL
	SELECT 'late_shipment', 'warning', o.external_id || ' (' || o.id || ')', NULL, NULL, NULL, o.id,
		   pg_catalog.format('order %s has %s line(s) not shipped by their promised date %s', o.external_id,
							 pg_catalog.count(*), pg_catalog.min(l.promised_date)),
		   pg_catalog.jsonb_build_object('promised_date', pg_catalog.min(l.promised_date), 'lines', pg_catalog.count(*))
	  FROM oms.order_lines l
	  JOIN oms.orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
	 WHERE l.tenant_id = p_tenant AND l.promised_date < p_today AND l.qty_shipped + l.qty_cancelled < l.qty
	   AND l.state IN ('allocated'::oms.line_state, 'released'::oms.line_state, 'picked'::oms.line_state,
					   'packed'::oms.line_state, 'backordered'::oms.line_state, 'preordered'::oms.line_state)
	 GROUP BY o.id, o.external_id;
END
$$;
COMMENT ON FUNCTION oms._alert_conditions(int, date) IS 'Internal: the alert conditions that hold for a tenant on a day, one row per alert that should be open';
CREATE OR REPLACE FUNCTION oms.check_alerts() RETURNS TABLE (opened bigint, still_open bigint, resolved bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
BEGIN
	-- Two checks at once would only do the same work twice; the second waits for the first.
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('oms.alerts'), v_tenant);
	RETURN QUERY
	WITH cond AS (
		SELECT * FROM oms._alert_conditions(v_tenant, oms.today())
	), upserted AS (
		INSERT INTO oms.alerts AS a (tenant_id, kind, severity, subject, item_id, location_id, purchase_order_id,
									 order_id, message, details)
		SELECT v_tenant, c.kind, c.severity, c.subject, c.item_id, c.location_id, c.purchase_order_id, c.order_id,
			   c.message, c.details
		  FROM cond c
		 ORDER BY c.kind, c.subject
		ON CONFLICT (tenant_id, kind, subject) WHERE resolved_at IS NULL
		DO UPDATE SET severity = EXCLUDED.severity, message = EXCLUDED.message, details = EXCLUDED.details,
					  checked_at = EXCLUDED.checked_at
		RETURNING (a.xmax = 0) AS inserted
	), ended AS (
		UPDATE oms.alerts a SET resolved_at = pg_catalog.now(), checked_at = pg_catalog.now()
		 WHERE a.tenant_id = v_tenant AND a.resolved_at IS NULL
		   AND NOT EXISTS (SELECT FROM cond c WHERE c.kind = a.kind AND c.subject = a.subject)
		RETURNING 1
	)
	SELECT (SELECT pg_catalog.count(*) FROM upserted u WHERE u.inserted),
		   (SELECT pg_catalog.count(*) FROM upserted u WHERE NOT u.inserted),
		   (SELECT pg_catalog.count(*) FROM ended);
END
$$;
COMMENT ON FUNCTION oms.check_alerts() IS 'Opens an alert for every condition that holds now (low_stock, stock_out, overstock, late_purchase_order, late_shipment) unless one is open, refreshes the open ones, resolves those whose condition ended; returns the counts';
CREATE OR REPLACE FUNCTION oms._delivered_at(p_tenant int, p_order bigint) RETURNS timestamptz
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT max(t) FROM (
		SELECT coalesce(s.delivered_at, s.shipped_at) AS t FROM oms.shipments s
		 WHERE s.tenant_id = p_tenant AND s.order_id = p_order AND s.shipped_at IS NOT NULL
		UNION ALL
		SELECT p.collected_at FROM oms.pickups p WHERE p.tenant_id = p_tenant AND p.order_id = p_order) x);
END
$$;
COMMENT ON FUNCTION oms._delivered_at(int, bigint) IS 'Internal: when an order''s goods last reached the customer (delivery, collection, or shipment when not delivered)';
CREATE OR REPLACE FUNCTION oms.receive_return(rma_id bigint, lines jsonb) RETURNS numeric
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	r			oms.returns;
	o			oms.orders;
	v_minor		int;
	v_outside	boolean;
	v_req		record;
	rl			record;
	v_loc		int;
	v_on_hand	bigint;
	v_refund	numeric := 0;
	v_shipping	boolean := false;
	v_paid		numeric := 0;
	v_refundable numeric;
	v_received	jsonb := '[]';
	v_state		oms.order_state;
BEGIN
	r := oms._lock_return(v_tenant, receive_return.rma_id);
	SELECT * INTO o FROM oms.orders x WHERE x.tenant_id = v_tenant AND x.id = r.order_id;
	IF lines IS NULL THEN
		RAISE EXCEPTION 'lines received are required'
			USING ERRCODE = '22023',
			      HINT = 'For example [{"line_no": 1, "qty": 1, "disposition": "restock", "location": "WH-1"}].';
	END IF;
	PERFORM oms._check_line_list(lines, 'lines received', ARRAY['line_no', 'qty', 'disposition', 'location']);
	SELECT c.minor_units INTO v_minor FROM oms.currencies c WHERE c.code = o.currency;
	SELECT ch.refunds_outside INTO v_outside FROM oms.channels ch WHERE ch.tenant_id = v_tenant AND ch.id = o.channel_id;

	PERFORM set_config('oms.reason', 'return ' || r.id || ' received', true);
	-- Lines in item order: restocking locks stock rows in (item, location) order.
	FOR v_req IN
		SELECT (x.v -> 'line_no')::numeric::int AS line_no, (x.v -> 'qty')::numeric::int AS qty,
			   x.v -> 'disposition' AS disposition, x.v -> 'location' AS location, ol.item_id
		  FROM jsonb_array_elements(lines) WITH ORDINALITY x(v, i)
		  LEFT JOIN oms.order_lines ol ON ol.tenant_id = v_tenant AND ol.order_id = r.order_id
			   AND ol.line_no = (x.v -> 'line_no')::numeric::int
		 ORDER BY ol.item_id, x.i
	LOOP
		IF jsonb_typeof(v_req.disposition) IS DISTINCT FROM 'string'
		   OR v_req.disposition #>> '{}' NOT IN ('restock', 'damaged', 'vendor') THEN
			RAISE EXCEPTION 'invalid disposition % of line % of return %', coalesce(v_req.disposition::text, 'nothing'), v_req.line_no, r.id
				USING ERRCODE = '22023', HINT = 'Each line received is "restock" (sellable again, at "location"), "damaged" or "vendor".';
		END IF;
		SELECT x.* INTO rl FROM oms.return_lines x
			WHERE x.tenant_id = v_tenant AND x.return_id = r.id AND x.line_no = v_req.line_no FOR UPDATE;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'return % has no line %', r.id, v_req.line_no
				USING ERRCODE = '22023', HINT = 'Receive the lines the return authorised (oms.return_lines).';
		END IF;
		IF v_req.qty > rl.qty - rl.qty_received THEN
			RAISE EXCEPTION 'cannot receive % units of line % on return %', v_req.qty, v_req.line_no, r.id
				USING ERRCODE = 'OM005',
				      DETAIL = format('The return authorised %s, %s received already: at most %s can be received.',
									   rl.qty, rl.qty_received, rl.qty - rl.qty_received),
				      HINT = 'Create another return for more units.';
		END IF;

		IF v_req.disposition #>> '{}' = 'restock' THEN
			IF v_req.location IS NOT NULL THEN
				IF jsonb_typeof(v_req.location) <> 'string' THEN
					RAISE EXCEPTION 'invalid location % of line % of return %', v_req.location, v_req.line_no, r.id
						USING ERRCODE = '22023', HINT = 'A location code, e.g. "WH-1".';
				END IF;
				v_loc := oms._location_id(v_tenant, v_req.location #>> '{}');
			ELSE
				-- Where the line shipped from.
				SELECT s.location_id INTO v_loc FROM oms.shipment_lines sl
				  JOIN oms.shipments s ON s.tenant_id = sl.tenant_id AND s.id = sl.shipment_id
				 WHERE sl.tenant_id = v_tenant AND sl.order_id = r.order_id AND sl.line_no = v_req.line_no
				 ORDER BY s.id DESC LIMIT 1;
				v_loc := coalesce(v_loc, (SELECT ol.location_id FROM oms.order_lines ol
										   WHERE ol.tenant_id = v_tenant AND ol.order_id = r.order_id AND ol.line_no = v_req.line_no));
			END IF;
			INSERT INTO oms.stock AS s (tenant_id, item_id, location_id, on_hand)
				VALUES (v_tenant, v_req.item_id, v_loc, v_req.qty)
				ON CONFLICT (tenant_id, item_id, location_id)
				DO UPDATE SET on_hand = s.on_hand + EXCLUDED.on_hand, updated_at = EXCLUDED.updated_at
				RETURNING s.on_hand INTO v_on_hand;
			INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, reference, moved_by)
				VALUES (v_tenant, v_req.item_id, v_loc, 'return', v_req.qty, v_on_hand,
						'returned: ' || r.reason, 'return ' || r.id, oms._actor());
		END IF;

		UPDATE oms.return_lines x
		   SET qty_received = x.qty_received + v_req.qty,
			   restocked = x.restocked + CASE WHEN v_req.disposition #>> '{}' = 'restock' THEN v_req.qty ELSE 0 END,
			   damaged = x.damaged + CASE WHEN v_req.disposition #>> '{}' = 'damaged' THEN v_req.qty ELSE 0 END,
			   to_vendor = x.to_vendor + CASE WHEN v_req.disposition #>> '{}' = 'vendor' THEN v_req.qty ELSE 0 END
		 WHERE x.tenant_id = v_tenant AND x.return_id = r.id AND x.line_no = v_req.line_no;
		UPDATE oms.order_lines x
		   SET qty_returned = x.qty_returned + v_req.qty,
			   state = CASE WHEN x.qty_returned + v_req.qty >= x.qty_shipped THEN 'returned' ELSE 'partially_returned' END::oms.line_state
		 WHERE x.tenant_id = v_tenant AND x.order_id = r.order_id AND x.line_no = v_req.line_no;

		-- Exchanged units are paid for by the exchange order, not refunded.
		-- The units' share of the line's gross (its tax included on a channel with net prices).
		v_refund := v_refund + (SELECT oms._units_value(ol.gross, ol.qty, ol.unit_price,
														greatest(v_req.qty - greatest(rl.qty_exchanged - rl.qty_received, 0), 0), v_minor)
								  FROM oms.order_lines ol
								 WHERE ol.tenant_id = v_tenant AND ol.order_id = r.order_id AND ol.line_no = v_req.line_no);
		v_received := v_received || jsonb_build_object('line_no', v_req.line_no, 'qty', v_req.qty,
													   'disposition', v_req.disposition #>> '{}');
	END LOOP;

	-- Shipping comes back once, with the last units of the order.
	IF o.shipping_amount > 0
	   AND NOT EXISTS (SELECT FROM oms.returns x WHERE x.tenant_id = v_tenant AND x.order_id = o.id
						 AND (x.shipping_refunded OR x.exchange_order_id IS NOT NULL))
	   AND NOT EXISTS (SELECT FROM oms.order_lines ol WHERE ol.tenant_id = v_tenant AND ol.order_id = o.id
						 AND ol.qty_returned + ol.qty_cancelled < ol.qty) THEN
		v_refund := v_refund + coalesce(o.shipping_net + o.shipping_tax, o.shipping_amount);
		v_shipping := true;
	END IF;

	IF v_refund > 0 AND NOT v_outside THEN
		SELECT coalesce(sum(p.captured - p.refunded), 0) INTO v_refundable FROM oms.payments p
			WHERE p.tenant_id = v_tenant AND p.order_id = o.id;
		v_paid := least(v_refund, v_refundable);
		IF v_paid > 0 THEN
			PERFORM oms.refund_payment(o.id, v_paid, 'return ' || r.id);
		END IF;
	ELSIF v_refund > 0 THEN
		-- The channel refunds outside oms: the invoiced goods still get their credit note.
		PERFORM oms._credit_refund(v_tenant, o.id, v_refund, 'return ' || r.id);
	END IF;
	UPDATE oms.returns x
	   SET refund_amount = x.refund_amount + v_refund, refunded = x.refunded + v_paid,
		   shipping_refunded = x.shipping_refunded OR v_shipping, received_at = now(),
		   state = CASE WHEN (SELECT bool_and(y.qty_received = y.qty) FROM oms.return_lines y
							   WHERE y.tenant_id = v_tenant AND y.return_id = r.id) THEN 'received' ELSE 'partially_received' END
	 WHERE x.tenant_id = v_tenant AND x.id = r.id;
	v_state := oms._rollup(v_tenant, o.id);
	PERFORM oms._event(v_tenant, o.id, 'return_received',
		jsonb_build_object('rma', r.id,
			'lines', (SELECT jsonb_agg(x.v || jsonb_build_object('sku', i.sku, 'name', i.name) ORDER BY (x.v -> 'line_no')::numeric::int)
						FROM jsonb_array_elements(v_received) x(v)
						JOIN oms.order_lines ol ON ol.tenant_id = v_tenant AND ol.order_id = o.id AND ol.line_no = (x.v -> 'line_no')::numeric::int
						JOIN oms.items i ON i.tenant_id = v_tenant AND i.id = ol.item_id),
			'refund', v_refund, 'refunded', v_paid, 'refund_due', v_refund - v_paid, 'shipping_refunded', v_shipping,
			'currency', o.currency, 'order_state', v_state::text));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_refund;
END
$$;
COMMENT ON FUNCTION oms.receive_return(bigint, jsonb) IS 'Receives units of a return [{"line_no": 1, "qty": 1, "disposition": "restock"|"damaged"|"vendor", "location": "WH-1"}]: restock adds to on_hand (movement "return", at the given location or where the line shipped from), the lines move to partially_returned/returned, the refund is computed (units at their price, plus shipping when the whole order is back), paid through oms.refund_payment up to what was captured unless the channel refunds outside; more than the return authorised and not received: OM005; returns the refund amount';
CREATE OR REPLACE FUNCTION oms.raise_overdue_events(batch int DEFAULT 100) RETURNS int
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_n		int := 0;
	v_header	jsonb;
	r		record;
BEGIN
	IF batch IS NULL OR batch < 1 OR batch > 10000 THEN
		RAISE EXCEPTION 'invalid batch size %', coalesce(batch::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Handle 1 to 10000 orders per call.';
	END IF;

	-- Late lines, per order (every tenant: the worker serves them all).
	FOR r IN
		SELECT l.tenant_id, l.order_id
		  FROM oms.order_lines l
		 WHERE l.promised_date IS NOT NULL AND l.qty_shipped + l.qty_cancelled < l.qty
		   AND l.promised_date < current_date
		   AND l.state NOT IN ('cancelled', 'shipped', 'delivered', 'returned', 'partially_returned')
		   AND NOT EXISTS (SELECT FROM oms.delay_notices d
							WHERE d.tenant_id = l.tenant_id AND d.order_id = l.order_id AND d.line_no = l.line_no
							  AND d.promised_date = l.promised_date)
		 GROUP BY l.tenant_id, l.order_id
		 ORDER BY l.tenant_id, l.order_id
		 LIMIT batch
	LOOP
		CONTINUE WHEN NOT EXISTS (SELECT FROM oms.orders o WHERE o.tenant_id = r.tenant_id AND o.id = r.order_id
								   AND o.state NOT IN ('cancelled', 'closed') FOR UPDATE SKIP LOCKED);
		-- The header is read first: on Citus a query of a distributed table cannot run inside another.
		v_header := oms._order_header(r.tenant_id, r.order_id);
		WITH late AS (
			INSERT INTO oms.delay_notices (tenant_id, order_id, line_no, promised_date)
			SELECT l.tenant_id, l.order_id, l.line_no, l.promised_date
			  FROM oms.order_lines l
			 WHERE l.tenant_id = r.tenant_id AND l.order_id = r.order_id
			   AND l.promised_date IS NOT NULL AND l.qty_shipped + l.qty_cancelled < l.qty
			   AND l.promised_date < current_date
			   AND l.state NOT IN ('cancelled', 'shipped', 'delivered', 'returned', 'partially_returned')
			ON CONFLICT DO NOTHING
			RETURNING line_no)
		INSERT INTO oms.events (tenant_id, order_id, type, payload)
		SELECT r.tenant_id, r.order_id, 'delayed',
			   v_header
			   || jsonb_build_object('lines', jsonb_agg(jsonb_build_object(
					'line_no', l.line_no, 'sku', i.sku, 'name', i.name, 'qty', l.qty - l.qty_cancelled - l.qty_shipped,
					'promised_date', l.promised_date, 'state', l.state::text) ORDER BY l.line_no))
		  FROM late
		  JOIN oms.order_lines l ON l.tenant_id = r.tenant_id AND l.order_id = r.order_id AND l.line_no = late.line_no
		  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
		HAVING count(*) > 0;
		v_n := v_n + 1;
	END LOOP;

	-- Pickups waiting past their date.
	FOR r IN
		SELECT p.tenant_id, p.order_id, p.ready_at, p.collect_by, l.code, l.name
		  FROM oms.pickups p
		  JOIN oms.locations l ON l.tenant_id = p.tenant_id AND l.id = p.location_id
		  JOIN oms.orders o ON o.tenant_id = p.tenant_id AND o.id = p.order_id
		 WHERE p.collected_at IS NULL AND p.uncollected_at IS NULL AND p.collect_by < now()
		   AND o.state NOT IN ('cancelled', 'closed')
		 ORDER BY p.collect_by
		 LIMIT batch
	LOOP
		CONTINUE WHEN NOT EXISTS (SELECT FROM oms.orders o WHERE o.tenant_id = r.tenant_id AND o.id = r.order_id
								   AND o.state NOT IN ('cancelled', 'closed') FOR UPDATE SKIP LOCKED);
		UPDATE oms.pickups p SET uncollected_at = now() WHERE p.tenant_id = r.tenant_id AND p.order_id = r.order_id;
		PERFORM oms._event(r.tenant_id, r.order_id, 'pickup_uncollected',
			jsonb_build_object('store', jsonb_build_object('location', r.code, 'name', r.name),
							   'ready_at', r.ready_at, 'collect_by', r.collect_by));
		v_n := v_n + 1;
	END LOOP;
	RETURN v_n;
END
$$;
COMMENT ON FUNCTION oms.raise_overdue_events(int) IS 'Writes the events nobody''s call raises (every tenant): delayed for orders with lines past their promised date and not shipped, pickup_uncollected for click & collect orders past their store''s pickup days; each once; at most batch orders of each kind; returns how many orders it reported (the background worker calls it every round)';
CREATE OR REPLACE FUNCTION oms._documents_immutable() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_old	jsonb;
	-- the table's name, also on a shard of a Citus cluster (invoices_102550: invoices)
	v_table	text := pg_catalog.regexp_replace(TG_TABLE_NAME, '_[0-9]+$', '');
BEGIN
	IF TG_OP = 'INSERT' THEN	-- lines: only while their document is not numbered
		IF EXISTS (SELECT FROM oms.invoices i WHERE i.tenant_id = NEW.tenant_id AND i.id = NEW.invoice_id
					  AND i.number IS NOT NULL) THEN
			RAISE EXCEPTION 'document % is issued: lines cannot be added', NEW.invoice_id
				USING ERRCODE = 'OM013', HINT = 'Correct an issued invoice with a credit note.';
		END IF;
		RETURN NEW;
	END IF;
	v_old := pg_catalog.to_jsonb(OLD);
	IF v_table = 'invoices' AND TG_OP = 'UPDATE' THEN
		IF v_old ->> 'number' IS NULL AND pg_catalog.to_jsonb(NEW) ->> 'number' IS NOT NULL
		   AND (pg_catalog.to_jsonb(NEW) - 'number' - 'seq') = (v_old - 'number' - 'seq') THEN
			RETURN NEW;		-- the numbering of a document being issued
		END IF;
	END IF;
	RAISE EXCEPTION 'issued documents cannot be changed: % of % refused', TG_OP, v_table
		USING ERRCODE = 'OM013',
		      DETAIL = format('Document %s.', coalesce(v_old ->> 'number', v_old ->> 'invoice_id', v_old ->> 'id')),
		      HINT = 'An invoice is corrected by a credit note, never edited or deleted.';
END
$$;
COMMENT ON FUNCTION oms._documents_immutable() IS 'Internal: trigger refusing (OM013) UPDATE and DELETE of issued invoices and credit notes and of their lines; only the numbering is allowed';
CREATE OR REPLACE FUNCTION oms._write_document(p_tenant int, o oms.orders, p_kind text, p_credited bigint, p_reason text,
									p_lines jsonb) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	s			oms.document_settings;
	v_id		bigint;
	v_number	text;
	v_tot		record;
	v_address	jsonb := o.ship_to;
BEGIN
	SELECT * INTO s FROM oms.document_settings d WHERE d.tenant_id = p_tenant;
	IF NOT FOUND THEN
		s.seller := '{}'; s.invoice_prefix := 'INV'; s.credit_note_prefix := 'CN'; s.yearly_series := true;
	END IF;
	SELECT sum(x.net) AS net, sum(x.tax) AS tax, sum(x.gross) AS gross INTO v_tot
		FROM jsonb_to_recordset(p_lines) x(net numeric, tax numeric, gross numeric);
	-- Read before the INSERT: Citus takes no subquery in an INSERT's VALUES.
	IF o.pickup_location_id IS NOT NULL THEN
		SELECT jsonb_strip_nulls(jsonb_build_object('pickup', l.code, 'name', l.name, 'city', l.city,
													 'postal_code', l.postal_code, 'country', l.country))
		  INTO v_address
		  FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = o.pickup_location_id;
	END IF;

	INSERT INTO oms.invoices (tenant_id, kind, series, order_id, credited_invoice_id, currency, tax_mode,
							  seller, buyer, address, reason, net, tax, gross)
		VALUES (p_tenant, p_kind,
				CASE p_kind WHEN 'invoice' THEN s.invoice_prefix ELSE s.credit_note_prefix END
				|| CASE WHEN s.yearly_series THEN to_char(now() AT TIME ZONE 'UTC', '-YYYY') ELSE '' END,
				o.id, p_credited, o.currency, o.tax_mode, s.seller,
				jsonb_strip_nulls(jsonb_build_object('ref', o.customer_ref, 'name', o.customer_name, 'email', o.customer_email,
													 'phone', o.customer_phone)),
				v_address,
				p_reason, v_tot.net, v_tot.tax, v_tot.gross)
		RETURNING id INTO v_id;
	INSERT INTO oms.invoice_lines (tenant_id, invoice_id, position, line_no, sku, description, qty, unit_price,
								   net, tax_rate, tax, gross)
		SELECT p_tenant, v_id, x.i, y.line_no, y.sku, y.description, y.qty, y.unit_price, y.net, y.tax_rate, y.tax, y.gross
		  FROM jsonb_array_elements(p_lines) WITH ORDINALITY x(v, i)
		 CROSS JOIN LATERAL jsonb_to_record(x.v) y(line_no int, sku text, description text, qty int, unit_price numeric,
												   net numeric, tax_rate numeric, tax numeric, gross numeric);

	v_number := oms._number_document(p_tenant, v_id);
	PERFORM oms._event(p_tenant, o.id, CASE p_kind WHEN 'invoice' THEN 'invoice_issued' ELSE 'credit_note_issued' END,
		jsonb_strip_nulls(jsonb_build_object('invoice_id', v_id, 'number', v_number, 'currency', o.currency,
			'net', v_tot.net, 'tax', v_tot.tax, 'gross', v_tot.gross,
			'credited_invoice', (SELECT i.number FROM oms.invoices i WHERE i.tenant_id = p_tenant AND i.id = p_credited),
			'reason', p_reason)));
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms._write_document(int, oms.orders, text, bigint, text, jsonb) IS 'Internal: writes an invoice or credit note of an order (copies of seller, buyer, address; lines; totals), numbers it last and writes its event; returns its id';
CREATE OR REPLACE FUNCTION oms._invoiced(p_tenant int, p_order bigint)
	RETURNS TABLE (line_no int, tax_rate numeric, invoiced_qty bigint, credited_qty bigint,
				   open_gross numeric, open_tax numeric, invoiced_gross numeric, invoiced_tax numeric)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT coalesce(il.line_no, 0), il.tax_rate,
		   coalesce(sum(il.qty) FILTER (WHERE i.kind = 'invoice'), 0)::bigint,
		   coalesce(-sum(il.qty) FILTER (WHERE i.kind = 'credit_note'), 0)::bigint,
		   sum(il.gross), sum(il.tax),
		   coalesce(sum(il.gross) FILTER (WHERE i.kind = 'invoice'), 0),
		   coalesce(sum(il.tax) FILTER (WHERE i.kind = 'invoice'), 0)
	  FROM oms.invoices i
	  JOIN oms.invoice_lines il ON il.tenant_id = i.tenant_id AND il.invoice_id = i.id
	 WHERE i.tenant_id = p_tenant AND i.order_id = p_order
	 GROUP BY coalesce(il.line_no, 0), il.tax_rate;
END
$$;
COMMENT ON FUNCTION oms._invoiced(int, bigint) IS 'Internal: per order line (0: shipping and adjustments) and tax rate, units invoiced and credited and the gross and tax still invoiced after credit notes';
CREATE OR REPLACE FUNCTION oms._issue_invoice(p_tenant int, o oms.orders, p_capture boolean) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_minor		int;
	v_lines		jsonb;
	v_no		int[];
	v_qty		bigint[];
	v_gross		numeric[];
	v_tax		numeric[];
BEGIN
	SELECT c.minor_units INTO v_minor FROM oms.currencies c WHERE c.code = o.currency;
	-- What was invoiced before, read first: on Citus a query of the tenant's tables inside
	-- another would be sent to the shard's node on a connection of its own (README "Scale-out
	-- on Citus").
	SELECT pg_catalog.array_agg(v.line_no), pg_catalog.array_agg(v.invoiced_qty),
		   pg_catalog.array_agg(v.invoiced_gross), pg_catalog.array_agg(v.invoiced_tax)
	  INTO v_no, v_qty, v_gross, v_tax
	  FROM oms._invoiced(p_tenant, o.id) v;
	-- Per line: the units to invoice now (shipped or collected; with invoicing on capture, every
	-- unit not cancelled) less those invoiced before. Amounts are cumulative shares of the line's
	-- amounts, so that the invoices of a line add up to its amounts exactly once it is all invoiced.
	WITH inv AS (SELECT * FROM unnest(v_no, v_qty, v_gross, v_tax)
						AS v(line_no, invoiced_qty, invoiced_gross, invoiced_tax)),
	l AS (
		SELECT l.line_no, i.sku, i.name, l.qty, l.unit_price, l.tax_rate,
			   coalesce(l.gross, round(l.qty * l.unit_price, v_minor)) AS gross, coalesce(l.tax, 0) AS tax,
			   CASE WHEN p_capture THEN l.qty - l.qty_cancelled ELSE l.qty_shipped END AS due,
			   coalesce((SELECT sum(v.invoiced_qty) FROM inv v WHERE v.line_no = l.line_no), 0) AS done,
			   coalesce((SELECT sum(v.invoiced_gross) FROM inv v WHERE v.line_no = l.line_no), 0) AS done_gross,
			   coalesce((SELECT sum(v.invoiced_tax) FROM inv v WHERE v.line_no = l.line_no), 0) AS done_tax
		  FROM oms.order_lines l
		  JOIN oms.items i ON i.tenant_id = l.tenant_id AND i.id = l.item_id
		 WHERE l.tenant_id = p_tenant AND l.order_id = o.id),
	now_lines AS (
		SELECT l.line_no, l.sku, l.name, l.due - l.done AS q, l.unit_price, l.tax_rate,
			   round(l.gross * l.due / l.qty, v_minor) - l.done_gross AS gross,
			   round(l.tax * l.due / l.qty, v_minor) - l.done_tax AS tax
		  FROM l WHERE l.due > l.done),
	ship AS (
		SELECT 0 AS line_no, NULL::text AS sku, 'Shipping' AS name, 1 AS q, o.shipping_amount AS unit_price,
			   o.shipping_tax_rate AS tax_rate, coalesce(o.shipping_net + o.shipping_tax, o.shipping_amount) AS gross,
			   coalesce(o.shipping_tax, 0) AS tax
		 WHERE o.shipping_amount > 0 AND EXISTS (SELECT FROM now_lines)
		   AND NOT EXISTS (SELECT FROM inv v WHERE v.line_no = 0 AND v.invoiced_qty > 0))
	SELECT jsonb_agg(jsonb_build_object('line_no', nullif(x.line_no, 0), 'sku', x.sku, 'description', x.name, 'qty', x.q,
										'unit_price', x.unit_price, 'net', x.gross - x.tax, 'tax_rate', x.tax_rate,
										'tax', x.tax, 'gross', x.gross)
					 ORDER BY x.line_no = 0, x.line_no)
	  INTO v_lines
	  FROM (SELECT * FROM now_lines UNION ALL SELECT * FROM ship) x;

	IF v_lines IS NULL THEN
		RETURN NULL;
	END IF;
	RETURN oms._write_document(p_tenant, o, 'invoice', NULL, NULL, v_lines);
END
$$;
COMMENT ON FUNCTION oms._issue_invoice(int, oms.orders, boolean) IS 'Internal: invoices the units of a locked order due and not yet invoiced (shipped, or all not cancelled when p_capture) and the shipping charge on the first invoice; NULL when nothing is due';
CREATE OR REPLACE FUNCTION oms._ship_to_lines(p_tenant int, o oms.orders) RETURNS text[]
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN CASE WHEN o.pickup_location_id IS NOT NULL
				THEN (SELECT array_remove(ARRAY[coalesce(o.customer_name, o.customer_ref), 'c/o ' || l.name,
												nullif(concat_ws(' ', l.postal_code, l.city), ''), l.country], NULL)
						FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = o.pickup_location_id)
				ELSE CASE WHEN o.ship_to ? 'name' THEN '{}'::text[] ELSE array_remove(ARRAY[o.customer_name], NULL) END
					 || oms._address_lines(o.ship_to) END;
END
$$;
COMMENT ON FUNCTION oms._ship_to_lines(int, oms.orders) IS 'Internal: the printable ship-to of an order (customer and store for click & collect)';
CREATE OR REPLACE FUNCTION oms._location_lines(p_tenant int, p_location int) RETURNS text[]
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT array_remove(ARRAY[coalesce(nullif(d.seller ->> 'name', ''), l.name), l.name,
							  nullif(concat_ws(' ', l.postal_code, l.city), ''), l.country], NULL)
	  FROM oms.locations l
	  LEFT JOIN oms.document_settings d ON d.tenant_id = l.tenant_id
	 WHERE l.tenant_id = p_tenant AND l.id = p_location);
END
$$;
COMMENT ON FUNCTION oms._location_lines(int, int) IS 'Internal: the printable address of a location, under the seller''s name';
CREATE OR REPLACE FUNCTION oms._package_no(p_tenant int, s oms.shipments) RETURNS bigint
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (
	SELECT count(*) FROM oms.shipments x WHERE x.tenant_id = p_tenant AND x.order_id = s.order_id AND x.id <= s.id);
END
$$;
COMMENT ON FUNCTION oms._package_no(int, oms.shipments) IS 'Internal: the number of a package within its order (1 for the first packed)';
CREATE OR REPLACE FUNCTION oms.bi_rate(p_day date, p_currency char(3)) RETURNS numeric
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN CASE WHEN p_currency = oms.reporting_currency() THEN 1::numeric
				ELSE (SELECT r.rate FROM oms.exchange_rates r
					   WHERE r.rate_date = p_day AND r.from_currency = p_currency
						 AND r.to_currency = oms.reporting_currency()) END;
END
$$;
COMMENT ON FUNCTION oms.bi_rate(date, char) IS 'Rate from a currency to the reporting currency on a day: 1 for the reporting currency itself, NULL when oms.exchange_rates has no rate for that day (never a guessed 1.0)';
CREATE OR REPLACE FUNCTION oms._customer_order(p_tenant int, p_channel text, p_external_id text, p_email text) RETURNS bigint
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog, pg_temp
AS $$
BEGIN
	RETURN (
	SELECT o.id
	  FROM oms.orders o
	  JOIN oms.channels c ON c.tenant_id = o.tenant_id AND c.id = o.channel_id
	 WHERE o.tenant_id = p_tenant AND c.code = p_channel AND o.external_id = p_external_id
	   AND p_email IS NOT NULL AND btrim(p_email) <> ''
	   AND lower(btrim(o.customer_email)) = lower(btrim(p_email)));
END
$$;
COMMENT ON FUNCTION oms._customer_order(int, text, text, text) IS 'Internal: the id of the order with this channel, external id and customer e-mail (trimmed, case-insensitive), NULL when any does not match';
CREATE OR REPLACE FUNCTION oms.tenant_id(code text) RETURNS int
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_id	int;
BEGIN
	SELECT t.id INTO v_id FROM oms.tenants t WHERE t.code = tenant_id.code;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown tenant "%"', oms._clip(tenant_id.code)
			USING ERRCODE = '22023', HINT = 'Tenants are listed in oms.tenants; oms.create_tenant() creates one.';
	END IF;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION oms.tenant_id(text) IS 'Id of the tenant with this code (the first argument of the tenant-explicit API forms); 22023 when unknown';
CREATE OR REPLACE FUNCTION oms._tenant_code(p_tenant int) RETURNS text
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_code	text;
BEGIN
	SELECT t.code INTO v_code FROM oms.tenants t WHERE t.id = p_tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown tenant id %', coalesce(p_tenant::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'oms.tenant_id(code) gives the id of a tenant; tenants are listed in oms.tenants.';
	END IF;
	RETURN v_code;
END
$$;
COMMENT ON FUNCTION oms._tenant_code(int) IS 'Internal: the code of the tenant with this id (the tenant-explicit API forms set oms.tenant to it); 22023 when unknown';
CREATE OR REPLACE FUNCTION oms._tenant_entry_points() RETURNS text[]
	LANGUAGE sql IMMUTABLE
	SET search_path = oms, pg_catalog
	RETURN ARRAY['place_order', 'cancel_order', 'cancel_line', 'change_address', 'hold', 'release_hold',
				 'hold_order', 'resolve_hold', 'release_order',
				 'authorize_payment', 'capture_payment', 'refund_payment', 'void_payment',
				 'pack', 'ship', 'deliver', 'ready_for_pickup', 'collect', 'tracking_update', 'reject_line',
				 'adjust_stock', 'set_stock',
				 'create_return', 'receive_return', 'exchange', 'request_return',
				 'issue_invoice', 'issue_credit_note',
				 'subscribe', 'pause_subscription', 'resume_subscription', 'cancel_subscription',
				 'create_purchase_order', 'send_purchase_order', 'cancel_purchase_order', 'receive_purchase_order',
				 'create_transfer', 'receive_transfer', 'cancel_transfer',
				 'next_events', 'ack_events'];
COMMENT ON FUNCTION oms._tenant_entry_points() IS 'Internal: the API functions that have a tenant-explicit form (tenant int first), registered with Citus by oms.distribute()';
CREATE OR REPLACE FUNCTION oms._atp_distributed(p_sku text, p_location text) RETURNS bigint
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int;
	v_location	int;
	v_active	boolean;
	v_atp		bigint;
BEGIN
	SELECT i.id INTO v_item FROM oms.items i WHERE i.tenant_id = v_tenant AND i.sku = p_sku;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown SKU "%"', oms._clip(p_sku)
			USING ERRCODE = '22023',
				  HINT = pg_catalog.format('Items of tenant "%s" are listed in oms.items; SKUs are case sensitive.',
										   pg_catalog.current_setting('oms.tenant'));
	END IF;
	IF p_location IS NOT NULL THEN
		SELECT l.id, l.active INTO v_location, v_active
		  FROM oms.locations l WHERE l.tenant_id = v_tenant AND l.code = p_location;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'unknown location "%"', oms._clip(p_location)
				USING ERRCODE = '22023',
					  HINT = pg_catalog.format('Locations of tenant "%s" are listed in oms.locations; pass NULL for the whole network.',
											   pg_catalog.current_setting('oms.tenant'));
		END IF;
		IF NOT v_active THEN
			RETURN 0;
		END IF;
		SELECT greatest(s.on_hand - s.reserved - s.safety_stock, 0)
			   + CASE WHEN s.hot THEN (SELECT coalesce(pg_catalog.sum(z.free), 0)::bigint FROM oms.stock_slots z
										WHERE z.tenant_id = v_tenant AND z.item_id = v_item AND z.location_id = v_location)
					  ELSE 0 END
		  INTO v_atp
		  FROM oms.stock s
		 WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_location;
		RETURN coalesce(v_atp, 0);
	END IF;
	SELECT coalesce(pg_catalog.sum(greatest(s.on_hand - s.reserved - s.safety_stock, 0)), 0)::bigint
		   + coalesce((SELECT pg_catalog.sum(z.free) FROM oms.stock_slots z
						 JOIN oms.stock s2 ON s2.tenant_id = z.tenant_id AND s2.item_id = z.item_id
										 AND s2.location_id = z.location_id AND s2.hot
						 JOIN oms.locations l2 ON l2.tenant_id = z.tenant_id AND l2.id = z.location_id
						WHERE z.tenant_id = v_tenant AND s2.tenant_id = v_tenant AND l2.tenant_id = v_tenant
						  AND z.item_id = v_item AND l2.active AND l2.can_ship), 0)::bigint
	  INTO v_atp
	  FROM oms.stock s
	  JOIN oms.locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id
	 WHERE s.tenant_id = v_tenant AND l.tenant_id = v_tenant AND s.item_id = v_item AND l.active AND l.can_ship;
	RETURN v_atp;
END
$$;
COMMENT ON FUNCTION oms._atp_distributed(text, text) IS 'Internal: oms.atp(sku, location) from SQL, which oms.atp() calls on a Citus cluster (its tables are shells there)';
CREATE OR REPLACE FUNCTION oms._store_sees_order(p_tenant int, p_order bigint) RETURNS boolean
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = oms, pg_catalog
	SET citus.allow_nested_distributed_execution = on
AS $$
BEGIN
	RETURN EXISTS (SELECT FROM oms.order_lines l
					WHERE l.tenant_id = p_tenant AND l.order_id = p_order
					  AND l.location_id = ANY (oms._store_locations_of(p_tenant)));
END
$$;
COMMENT ON FUNCTION oms._store_sees_order(int, bigint) IS 'Internal: does a line of this order come from a location of the calling store role (the store policy of oms.orders on Citus)';
CREATE OR REPLACE FUNCTION oms._store_sees_shipment(p_tenant int, p_shipment bigint) RETURNS boolean
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = oms, pg_catalog
	SET citus.allow_nested_distributed_execution = on
AS $$
BEGIN
	RETURN EXISTS (SELECT FROM oms.shipments s
					WHERE s.tenant_id = p_tenant AND s.id = p_shipment
					  AND s.location_id = ANY (oms._store_locations_of(p_tenant)));
END
$$;
COMMENT ON FUNCTION oms._store_sees_shipment(int, bigint) IS 'Internal: was this shipment packed at a location of the calling store role (the store policy of oms.shipment_lines on Citus)';
CREATE OR REPLACE FUNCTION oms._supply_detach() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	UPDATE oms.purchase_order_lines l SET supply_id = NULL
	 WHERE l.tenant_id = OLD.tenant_id AND l.supply_id = OLD.id;
	UPDATE oms.transfer_order_lines l SET supply_id = NULL
	 WHERE l.tenant_id = OLD.tenant_id AND l.supply_id = OLD.id;
	RETURN OLD;
END
$$;
COMMENT ON FUNCTION oms._supply_detach() IS 'Internal: trigger before a supply row is deleted on Citus: its purchase order and transfer lines no longer point to it (what ON DELETE SET NULL (supply_id) does on one node)';
CREATE OR REPLACE FUNCTION oms._node_sequences() RETURNS int
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_group		bigint;
	v_seq		record;
	v_shift		int;
	v_first		bigint;
	v_last		bigint;
	v_count		int := 0;
BEGIN
	EXECUTE 'SELECT groupid FROM pg_catalog.pg_dist_local_group' INTO v_group;
	PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true);
	FOR v_seq IN
		SELECT c.relname, s.seqtypid, s.seqmin, s.seqmax
		  FROM pg_catalog.pg_sequence s
		  JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
		 WHERE c.relnamespace = 'oms'::regnamespace AND s.seqtypid IN ('int4'::regtype, 'int8'::regtype)
		 ORDER BY c.relname
	LOOP
		v_shift := CASE WHEN v_seq.seqtypid = 'int8'::regtype THEN 48 ELSE 26 END;
		v_first := (v_group << v_shift) + 1;
		v_last := ((v_group + 1) << v_shift) - 1;
		IF v_seq.seqmin = v_first AND v_seq.seqmax = v_last THEN
			CONTINUE;
		END IF;
		IF v_group = 0 THEN
			EXECUTE pg_catalog.format('ALTER SEQUENCE oms.%I MAXVALUE %s', v_seq.relname, v_last);
		ELSE
			EXECUTE pg_catalog.format('ALTER SEQUENCE oms.%I MINVALUE %s MAXVALUE %s START %s RESTART',
									  v_seq.relname, v_first, v_last, v_first);
		END IF;
		v_count := v_count + 1;
	END LOOP;
	RETURN v_count;
END
$$;
COMMENT ON FUNCTION oms._node_sequences() IS 'Internal: puts the sequences of schema oms on this Citus node in the node''s own range (bigint from group * 2^48, int from group * 2^26), so that ids stay unique across nodes';
CREATE OR REPLACE FUNCTION oms.distribute(shard_count int DEFAULT 32)
	RETURNS TABLE (table_name text, distribution text)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_version	text;
	v_reference	text[] := ARRAY['tenants', 'tenant_grants', 'currencies', 'exchange_rates',
								'country_centroids', 'routing_profiles'];
	v_local		text[] := ARRAY['job_runs'];
	v_todo		text[];
	v_rel		record;
	v_fk		record;
	v_pol		record;
	v_proc		regprocedure;
	v_qual		text;
	v_check		text;
	v_detach	boolean := false;
	v_try		int;
BEGIN
	SELECT e.extversion INTO v_version FROM pg_catalog.pg_extension e WHERE e.extname = 'citus';
	IF v_version IS NULL THEN
		RAISE EXCEPTION 'oms.distribute() needs the citus extension, which is not installed in database "%"', pg_catalog.current_database()
			USING ERRCODE = '55000',
				  HINT = 'Install Citus 12 or later on the coordinator and every worker, CREATE EXTENSION citus, add the workers (citus_add_node), then call oms.distribute() on the coordinator.';
	END IF;
	IF pg_catalog.split_part(v_version, '.', 1)::int < 12 THEN
		RAISE EXCEPTION 'oms.distribute() needs Citus 12 or later, found citus %', v_version
			USING ERRCODE = '55000', HINT = 'Upgrade Citus (ALTER EXTENSION citus UPDATE after installing the new version on every node).';
	END IF;
	IF shard_count IS NULL OR shard_count < 1 OR shard_count > 64000 THEN
		RAISE EXCEPTION 'invalid shard count %', coalesce(shard_count::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Give 1 to 64000 shards (default 32; a few per worker core).';
	END IF;

	-- The tables not yet distributed (none on a second call).
	SELECT coalesce(pg_catalog.array_agg(c.relname ORDER BY c.relname), '{}') INTO v_todo
	  FROM pg_catalog.pg_class c
	 WHERE c.relnamespace = 'oms'::regnamespace AND c.relkind = 'r'
	   AND NOT c.relname = ANY (v_local)
	   AND (c.relname = ANY (v_reference)
			OR EXISTS (SELECT FROM pg_catalog.pg_attribute a
						WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
	   AND NOT EXISTS (SELECT FROM pg_catalog.pg_class d
						WHERE d.oid = c.oid
						  AND d.oid IN (SELECT p.logicalrelid FROM pg_dist_partition p));

	IF pg_catalog.cardinality(v_todo) > 0 THEN
		-- Every table first, all at once: the background worker's round reads several, and
		-- would deadlock with DDL that took them one by one (retried when it does all the same).
		FOR v_try IN 1..10 LOOP
			BEGIN
				EXECUTE (SELECT 'LOCK TABLE ' || pg_catalog.string_agg('oms.' || pg_catalog.quote_ident(r), ', ')
								|| ' IN ACCESS EXCLUSIVE MODE'
						   FROM pg_catalog.unnest(v_todo) r);
				EXIT;
			EXCEPTION WHEN deadlock_detected OR lock_not_available THEN
				IF v_try = 10 THEN
					RAISE;
				END IF;
				PERFORM pg_catalog.pg_sleep(0.2);
			END;
		END LOOP;
		-- Triggers on distributed tables: each of oms's touches only rows of its own row's tenant,
		-- which Citus runs on the same node (README: what keeps working distributed).
		PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
		PERFORM pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true);

		-- Foreign keys and policies of every table of oms: dropped now, created again at the end.
		CREATE TEMPORARY TABLE oms_distribute_fks ON COMMIT DROP AS
		SELECT 'oms.' || pg_catalog.quote_ident(c.relname) AS rel, c.relname::text AS relname,
			   k.conname::text AS name, pg_catalog.pg_get_constraintdef(k.oid) AS def,
			   (SELECT t.relname::text FROM pg_catalog.pg_class t WHERE t.oid = k.confrelid) AS target
		  FROM pg_catalog.pg_constraint k
		  JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
		 WHERE k.contype = 'f' AND c.relnamespace = 'oms'::regnamespace;
		CREATE TEMPORARY TABLE oms_distribute_policies ON COMMIT DROP AS
		SELECT 'oms.' || pg_catalog.quote_ident(c.relname) AS rel, p.polname::text AS name, p.polpermissive AS permissive,
			   p.polcmd AS cmd, p.polroles AS roles,
			   pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS qual,
			   pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS with_check
		  FROM pg_catalog.pg_policy p
		  JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
		 WHERE c.relnamespace = 'oms'::regnamespace AND c.relname = ANY (v_todo);
		-- The workers' tables are oms's own (their CREATE EXTENSION made them), which Citus takes
		-- as the shell tables it would otherwise create; they lose the same keys and policies, so
		-- that adding them back below reaches the shells and the shards alike. (Those commands
		-- commit on the workers at once: a failed call leaves them dropped there, and the next
		-- call, which drops IF EXISTS, goes on.)
		FOR v_pol IN SELECT * FROM oms_distribute_policies LOOP
			EXECUTE pg_catalog.format('DROP POLICY %I ON %s', v_pol.name, v_pol.rel);
			PERFORM run_command_on_workers(pg_catalog.format('DROP POLICY IF EXISTS %I ON %s', v_pol.name, v_pol.rel));
		END LOOP;
		FOR v_fk IN SELECT * FROM oms_distribute_fks LOOP
			EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', v_fk.rel, v_fk.name);
			PERFORM run_command_on_workers(pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', v_fk.rel, v_fk.name));
		END LOOP;

		FOR v_rel IN SELECT r FROM pg_catalog.unnest(v_todo) r WHERE r = ANY (v_reference) LOOP
			EXECUTE pg_catalog.format('SELECT create_reference_table(%L)', 'oms.' || v_rel.r);
		END LOOP;
		IF 'orders' = ANY (v_todo) THEN
			EXECUTE pg_catalog.format('SELECT create_distributed_table(%L, %L, shard_count := %s, colocate_with := %L)',
									  'oms.orders', 'tenant_id', shard_count, 'none');
		END IF;
		FOR v_rel IN SELECT r FROM pg_catalog.unnest(v_todo) r
					  WHERE NOT r = ANY (v_reference) AND r <> 'orders' ORDER BY r LOOP
			EXECUTE pg_catalog.format('SELECT create_distributed_table(%L, %L, colocate_with := %L)',
									  'oms.' || v_rel.r, 'tenant_id', 'oms.orders');
		END LOOP;

		-- The foreign keys again; oms.job_runs (local to the coordinator) can no longer point to
		-- oms.tenants, a reference table.
		-- Citus refuses ON DELETE SET NULL on a key that holds the distribution column: the
		-- purchase order and transfer lines that point to a supply row are let go of by the
		-- trigger oms._supply_detach instead.
		FOR v_fk IN SELECT * FROM oms_distribute_fks
					 WHERE NOT relname = ANY (v_local) LOOP
			IF v_fk.def ~ 'ON DELETE SET NULL \(supply_id\)$' THEN
				v_fk.def := pg_catalog.regexp_replace(v_fk.def, ' ON DELETE SET NULL \(supply_id\)$', '');
				v_detach := true;
			END IF;
			EXECUTE pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', v_fk.rel, v_fk.name, v_fk.def);
		END LOOP;
		IF v_detach THEN
			CREATE TRIGGER supply_detach BEFORE DELETE ON oms.supply
				FOR EACH ROW EXECUTE FUNCTION oms._supply_detach();
		END IF;
		FOR v_fk IN SELECT * FROM oms_distribute_fks
					 WHERE relname = ANY (v_local) AND NOT target = ANY (v_local) LOOP
			RAISE NOTICE 'foreign key % of % dropped: a local table cannot reference a distributed or reference table', v_fk.name, v_fk.rel;
		END LOOP;

		-- The policies again, their rule without subqueries (Citus evaluates the policy on the
		-- shard; oms.current_tenant_id() is stable, so it is still evaluated once per scan).
		-- Citus sends CREATE POLICY ... AS RESTRICTIVE to the workers as a permissive policy
		-- (Citus 13.0: a store role would see every row of its tenant there), so the restrictive
		-- policies (the store rules, TO oms_store) are folded into the permissive ones of their
		-- table instead: each permissive rule becomes "rule AND (NOT a member of oms_store OR
		-- store rule)", which lets through exactly the rows that the two kinds of policies did.
		-- Restrictive policies come first in this loop (permissive is false for them).
		CREATE TEMPORARY TABLE oms_distribute_restrictive (rel text, cond text) ON COMMIT DROP;
		FOR v_pol IN SELECT * FROM oms_distribute_policies ORDER BY permissive, rel, name LOOP
			v_qual := v_pol.qual;
			v_check := v_pol.with_check;
			IF v_pol.rel = 'oms.orders' AND v_pol.name = 'store' THEN
				v_qual := '(pickup_location_id = ANY (oms._store_locations_of(tenant_id))) OR oms._store_sees_order(tenant_id, id)';
			ELSIF v_pol.rel = 'oms.shipment_lines' AND v_pol.name = 'store' THEN
				v_qual := 'oms._store_sees_shipment(tenant_id, shipment_id)';
			ELSE
				v_qual := pg_catalog.regexp_replace(v_qual, '\(\s*SELECT (?:oms\.)?(\w+)\(\) AS \w+\)', 'oms.\1()', 'g');
				-- a shard of another tenant is answered without a query (oms._store_locations_of)
				v_qual := pg_catalog.replace(v_qual, 'oms._store_locations()', 'oms._store_locations_of(tenant_id)');
			END IF;
			IF v_qual ~* '\mselect\M' OR coalesce(v_check, '') ~* '\mselect\M' THEN
				RAISE EXCEPTION 'policy % on % has a subquery that oms.distribute() cannot rewrite: %', v_pol.name, v_pol.rel, v_qual
					USING ERRCODE = 'XX000';
			END IF;
			IF NOT v_pol.permissive THEN
				INSERT INTO oms_distribute_restrictive (rel, cond)
				SELECT v_pol.rel,
					   '(NOT (' || coalesce((SELECT pg_catalog.string_agg(pg_catalog.format('pg_catalog.pg_has_role(%L, ''USAGE'')', r.rolname), ' OR ')
											  FROM pg_catalog.pg_roles r WHERE r.oid = ANY (v_pol.roles)), 'true')
					   || ') OR (' || v_qual || '))';
				CONTINUE;
			END IF;
			SELECT '(' || v_qual || ')' || coalesce(' AND ' || pg_catalog.string_agg(x.cond, ' AND '), '')
			  INTO v_qual FROM oms_distribute_restrictive x WHERE x.rel = v_pol.rel;
			EXECUTE pg_catalog.format('CREATE POLICY %I ON %s AS PERMISSIVE FOR %s TO %s USING (%s)%s',
				v_pol.name, v_pol.rel,
				CASE v_pol.cmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
							   WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
				CASE WHEN v_pol.roles = '{0}' THEN 'PUBLIC'
					 ELSE (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(r.rolname), ', ')
							 FROM pg_catalog.pg_roles r WHERE r.oid = ANY (v_pol.roles)) END,
				v_qual,
				CASE WHEN v_check IS NOT NULL THEN ' WITH CHECK (' || v_check || ')' ELSE '' END);
		END LOOP;
	END IF;

	-- Every node's sequences in its own range.
	PERFORM run_command_on_all_nodes('SELECT oms._node_sequences()');

	-- Every tenant-explicit form: its call goes whole to the node of its first argument.
	FOR v_proc IN
		SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
		 WHERE p.pronamespace = 'oms'::regnamespace AND p.proname = ANY (oms._tenant_entry_points())
		   AND p.proargnames[1] = 'tenant' AND p.proargtypes[0] = 'int4'::regtype
		   AND NOT EXISTS (SELECT FROM pg_dist_object o
							WHERE o.classid = 'pg_proc'::regclass AND o.objid = p.oid
							  AND o.distribution_argument_index = 0)
	LOOP
		EXECUTE pg_catalog.format('SELECT create_distributed_function(%L, %L, colocate_with := %L)',
								  v_proc::text, '$1', 'oms.orders');
	END LOOP;

	RETURN QUERY
	SELECT c.relname::text,
		   CASE p.partmethod WHEN 'h' THEN 'distributed by ' || p.column_name ||
										  ' (co-location group ' || p.colocationid || ')'
							 WHEN 'n' THEN 'reference' END
	  FROM pg_catalog.pg_class c
	  JOIN (SELECT d.logicalrelid, d.partmethod, d.colocationid,
				   pg_catalog.column_to_column_name(d.logicalrelid, d.partkey) AS column_name
			  FROM pg_dist_partition d) p ON p.logicalrelid = c.oid
	 WHERE c.relnamespace = 'oms'::regnamespace
	 ORDER BY 2, 1;
END
$$;
COMMENT ON FUNCTION oms.distribute(int) IS 'Distributes oms on Citus (12 or later): per-tenant tables by tenant_id, co-located; shared data as reference tables; the tenant-explicit API forms routed by their tenant. Idempotent; 55000 without Citus';
CREATE OR REPLACE FUNCTION oms.cancel_line(order_id bigint, line_no int, qty int, reason text) RETURNS oms.line_state
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	o			oms.orders;
	l			record;
	v_open		int;
	v_left		int;
	v_take		int;
	v_state		oms.line_state;
	v_order		oms.order_state;
	r			record;
BEGIN
	o := oms._lock_order(v_tenant, cancel_line.order_id);
	PERFORM oms._reason(reason, 'cancel a line');
	SELECT x.line_no, x.item_id, x.qty, x.qty_cancelled, x.qty_shipped, x.state, i.sku, i.name INTO l
		FROM oms.order_lines x JOIN oms.items i ON i.tenant_id = x.tenant_id AND i.id = x.item_id
		WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.line_no = cancel_line.line_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order % has no line %', o.id, coalesce(cancel_line.line_no::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Lines are numbered from 1 in the order they were placed.';
	END IF;
	IF NOT oms._editable(l.state) THEN
		RAISE EXCEPTION 'line % of order % cannot be cancelled: it is %', l.line_no, o.id, l.state
			USING ERRCODE = '55000',
			      HINT = CASE WHEN l.state = 'cancelled' THEN 'The line is cancelled already.'
						 ELSE 'Goods released to a location are no longer cancelled here; once shipped, return them (oms.create_return).' END;
	END IF;
	v_open := l.qty - l.qty_cancelled - l.qty_shipped;
	IF cancel_line.qty IS NULL OR cancel_line.qty < 1 OR cancel_line.qty > v_open THEN
		RAISE EXCEPTION 'invalid qty % to cancel of line % of order %', coalesce(cancel_line.qty::text, 'NULL'), l.line_no, o.id
			USING ERRCODE = '22023',
			      DETAIL = format('Ordered %s, cancelled %s, shipped %s: %s open.', l.qty, l.qty_cancelled, l.qty_shipped, v_open),
			      HINT = 'Cancel from 1 up to the open quantity.';
	END IF;

	-- The stock comes back: the line's reservations shrink by qty, in (location) order (one item).
	v_left := cancel_line.qty;
	FOR r IN SELECT x.id, x.qty FROM oms.reservations x
			  WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.line_no = l.line_no
			  ORDER BY x.location_id, x.id
	LOOP
		EXIT WHEN v_left = 0;
		v_take := least(v_left, r.qty);
		IF v_take = r.qty THEN
			DELETE FROM oms.reservations x WHERE x.tenant_id = v_tenant AND x.id = r.id;
		ELSE
			UPDATE oms.reservations x SET qty = x.qty - v_take WHERE x.tenant_id = v_tenant AND x.id = r.id;
		END IF;
		v_left := v_left - v_take;
	END LOOP;

	PERFORM set_config('oms.reason', 'line cancelled: ' || reason, true);
	UPDATE oms.order_lines x
	   SET qty_cancelled = x.qty_cancelled + cancel_line.qty,
		   state = CASE WHEN x.qty_cancelled + cancel_line.qty = x.qty THEN 'cancelled'::oms.line_state ELSE x.state END
	 WHERE x.tenant_id = v_tenant AND x.order_id = o.id AND x.line_no = l.line_no
	RETURNING x.state INTO v_state;
	v_order := oms._rollup(v_tenant, o.id);
	PERFORM oms._release_order_capacity(v_tenant, o.id);
	PERFORM oms._event(v_tenant, o.id, 'line_cancelled',
		jsonb_build_object('line_no', l.line_no, 'sku', l.sku, 'name', l.name, 'qty', cancel_line.qty,
						   'qty_left', v_open - cancel_line.qty, 'reason', reason, 'order_state', v_order::text));
	PERFORM set_config('oms.reason', '', true);
	RETURN v_state;
END
$$;
COMMENT ON FUNCTION oms.cancel_line(bigint, int, int, text) IS 'Cancels qty units of a line not yet released (its reservation shrinks, the stock returns to ATP; all of it: the line is cancelled), rolls the order up, event line_cancelled; a released, shipped or cancelled line: 55000 naming its state; returns the line state';
CREATE OR REPLACE FUNCTION oms._reroute_for_address(p_tenant int, p_order bigint) RETURNS jsonb
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	o			record;
	v_lines		int[];
	v_items		int[];
	v_qtys		int[];
	v_old_line	int[];
	v_old_item	int[];
	v_old_loc	int[];
	v_old_qty	int[];
	v_new_line	int[];
	v_new_item	int[];
	v_new_loc	int[];
	v_new_qty	int[];
	v_new_eta	date[];
	v_new_day	date[];
	v_moved		jsonb;
	v_attempt	int := 0;
	v_cap_loc	int[];
	v_cap_day	date[];
	r			record;
BEGIN
	SELECT x.ship_to, coalesce(x.routing_profile, c.routing_profile, 'balanced') AS profile INTO o
	  FROM oms.orders x JOIN oms.channels c ON c.tenant_id = x.tenant_id AND c.id = x.channel_id
	 WHERE x.tenant_id = p_tenant AND x.id = p_order;
	-- The allocated lines with stock reserved (pre-ordered lines wait for their supply: not moved).
	SELECT array_agg(l.line_no ORDER BY l.line_no), array_agg(l.item_id ORDER BY l.line_no),
		   array_agg((l.qty - l.qty_cancelled - l.qty_shipped)::int ORDER BY l.line_no)
	  INTO v_lines, v_items, v_qtys
	  FROM oms.order_lines l
	 WHERE l.tenant_id = p_tenant AND l.order_id = p_order AND l.state = 'allocated'
	   AND l.qty - l.qty_cancelled - l.qty_shipped > 0
	   AND NOT EXISTS (SELECT FROM oms.reservations x
						WHERE x.tenant_id = p_tenant AND x.order_id = p_order AND x.line_no = l.line_no
						  AND x.supply_id IS NOT NULL);
	IF v_lines IS NULL THEN
		RETURN '[]';
	END IF;
	SELECT array_agg(x.line_no ORDER BY x.item_id, x.location_id, x.line_no),
		   array_agg(x.item_id ORDER BY x.item_id, x.location_id, x.line_no),
		   array_agg(x.location_id ORDER BY x.item_id, x.location_id, x.line_no),
		   array_agg(x.qty ORDER BY x.item_id, x.location_id, x.line_no)
	  INTO v_old_line, v_old_item, v_old_loc, v_old_qty
	  FROM oms.reservations x
	 WHERE x.tenant_id = p_tenant AND x.order_id = p_order AND x.line_no = ANY (v_lines);
	FOR r IN SELECT x.id FROM oms.reservations x
			  WHERE x.tenant_id = p_tenant AND x.order_id = p_order AND x.line_no = ANY (v_lines)
			  ORDER BY x.item_id, x.location_id, x.line_no
	LOOP
		DELETE FROM oms.reservations x WHERE x.tenant_id = p_tenant AND x.id = r.id;
	END LOOP;
	-- The capacity the order counted where only these lines were gives way too, so the route sees
	-- those locations as they would be without the order; a line that keeps its old reservation
	-- counts there again for the same day.
	SELECT array_agg(c.location_id), array_agg(c.day) INTO v_cap_loc, v_cap_day
	  FROM oms._release_order_capacity(p_tenant, p_order) c;

	LOOP
		BEGIN
			-- The new route; per line, its rows when all of them reserve stock, else its old ones.
			WITH rt AS (
				SELECT v_lines[q.line_no] AS line_no, v_items[q.line_no] AS item_id, q.location_id, q.qty, q.kind,
					   q.eta, q.capacity_day
				  FROM oms._route(p_tenant, v_items, v_qtys, NULL, NULL, NULL, NULL, o.ship_to, NULL, o.profile) q
			), served AS (
				SELECT rt.line_no FROM rt GROUP BY rt.line_no HAVING bool_and(rt.kind = ANY (oms._stock_kinds()))
			), plan AS (
				SELECT rt.line_no, rt.item_id, rt.location_id, rt.qty, rt.eta, rt.capacity_day
				  FROM rt WHERE rt.line_no IN (SELECT line_no FROM served)
				UNION ALL
				SELECT v_old_line[n], v_old_item[n], v_old_loc[n], v_old_qty[n], NULL,
					   v_cap_day[array_position(v_cap_loc, v_old_loc[n])]
				  FROM generate_subscripts(v_old_line, 1) n
				 WHERE v_old_line[n] NOT IN (SELECT line_no FROM served)
			)
			SELECT array_agg(p.line_no ORDER BY p.item_id, p.location_id, p.line_no),
				   array_agg(p.item_id ORDER BY p.item_id, p.location_id, p.line_no),
				   array_agg(p.location_id ORDER BY p.item_id, p.location_id, p.line_no),
				   array_agg(p.qty ORDER BY p.item_id, p.location_id, p.line_no),
				   array_agg(p.eta ORDER BY p.item_id, p.location_id, p.line_no),
				   array_agg(p.capacity_day ORDER BY p.item_id, p.location_id, p.line_no)
			  INTO v_new_line, v_new_item, v_new_loc, v_new_qty, v_new_eta, v_new_day
			  FROM plan p;
			INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no)
				SELECT p_tenant, v_new_item[n], v_new_loc[n], v_new_qty[n], p_order, v_new_line[n]
				  FROM generate_subscripts(v_new_line, 1) n
				 ORDER BY v_new_item[n], v_new_loc[n], v_new_line[n];
			PERFORM oms._take_order_capacity(p_tenant, p_order, v_new_loc, v_new_day);
			EXIT;
		EXCEPTION WHEN SQLSTATE 'OM001' OR SQLSTATE 'OM030' THEN
			v_attempt := v_attempt + 1;
			IF v_attempt >= 3 THEN
				RAISE;
			END IF;
		END;
	END LOOP;

	-- Every line the new route serves: its one location (NULL when split) and the new date; the
	-- answer lists those whose locations changed.
	WITH old AS (
		SELECT v_old_line[n] AS line_no, array_agg(v_old_loc[n] ORDER BY v_old_loc[n]) AS locs
		  FROM generate_subscripts(v_old_line, 1) n GROUP BY 1
	), new AS (
		SELECT v_new_line[n] AS line_no, array_agg(v_new_loc[n] ORDER BY v_new_loc[n]) AS locs,
			   max(v_new_eta[n]) AS eta
		  FROM generate_subscripts(v_new_line, 1) n GROUP BY 1
		HAVING count(v_new_eta[n]) > 0
	), upd AS (
		UPDATE oms.order_lines l
		   SET location_id = CASE WHEN cardinality(new.locs) = 1 THEN new.locs[1] END, promised_date = new.eta
		  FROM new
		 WHERE l.tenant_id = p_tenant AND l.order_id = p_order AND l.line_no = new.line_no
		RETURNING l.line_no, l.item_id
	)
	SELECT jsonb_agg(jsonb_build_object(
				'line_no', new.line_no, 'sku', i.sku,
				'from', (SELECT jsonb_agg(c.code ORDER BY c.code) FROM oms.locations c
						  WHERE c.tenant_id = p_tenant AND c.id = ANY (old.locs)),
				'to', (SELECT jsonb_agg(c.code ORDER BY c.code) FROM oms.locations c
						WHERE c.tenant_id = p_tenant AND c.id = ANY (new.locs)))
			ORDER BY new.line_no)
	  INTO v_moved
	  FROM new
	  JOIN old USING (line_no)
	  JOIN upd u USING (line_no)
	  JOIN oms.items i ON i.tenant_id = p_tenant AND i.id = u.item_id
	 WHERE old.locs IS DISTINCT FROM new.locs;
	RETURN coalesce(v_moved, '[]');
END
$$;
COMMENT ON FUNCTION oms._reroute_for_address(int, bigint) IS 'Internal: after a change of address, routes the order''s allocated lines again for the new address (their reservations released first, a line the new route cannot serve from stock keeps its old one), reserves in stock-lock order, counts capacity; returns the lines that moved';
CREATE OR REPLACE FUNCTION oms._reserve_routed(p_tenant int, p_order bigint, p_cart text, p_items int[],
									p_line int[], p_loc int[], p_qty int[], p_kind text[],
									p_supply bigint[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	r	record;
BEGIN
	IF p_cart IS NULL THEN
		-- Sorted by (item, location): every transaction locks stock rows in this order.
		INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no)
			SELECT p_tenant, p_items[p_line[n]], p_loc[n], p_qty[n], p_order, p_line[n]
			  FROM generate_subscripts(p_line, 1) n
			 WHERE p_kind[n] = ANY (oms._stock_kinds())
			 ORDER BY p_items[p_line[n]], p_loc[n];
		IF 'preorder' = ANY (p_kind) THEN
			PERFORM oms._reserve_supply(p_tenant, p_order, p_items, p_line, p_loc, p_qty, p_kind, p_supply);
		END IF;
		RETURN;
	END IF;
	-- A cart's hold at a location chosen for its line becomes that line's reservation there (the
	-- trigger moves only the difference); the cart's other holds are released. All in stock-lock
	-- order.
	FOR r IN
		SELECT ops.line_no, ops.item_id, ops.location_id, ops.qty, ops.hold_id
		  FROM (SELECT p_line[n] AS line_no, p_items[p_line[n]] AS item_id, p_loc[n] AS location_id, p_qty[n] AS qty,
					   (SELECT h.id FROM oms.reservations h
						 WHERE h.tenant_id = p_tenant AND h.cart = p_cart
						   AND h.item_id = p_items[p_line[n]] AND h.location_id = p_loc[n]) AS hold_id
				  FROM generate_subscripts(p_line, 1) n
				 WHERE p_kind[n] = ANY (oms._stock_kinds())
				UNION ALL
				SELECT NULL, h.item_id, h.location_id, 0, h.id
				  FROM oms.reservations h
				 WHERE h.tenant_id = p_tenant AND h.cart = p_cart
				   AND NOT EXISTS (SELECT FROM generate_subscripts(p_line, 1) n
									WHERE p_kind[n] = ANY (oms._stock_kinds()) AND p_items[p_line[n]] = h.item_id
									  AND p_loc[n] = h.location_id)) ops
		 ORDER BY ops.item_id, ops.location_id, ops.line_no NULLS FIRST
	LOOP
		IF r.line_no IS NULL THEN
			DELETE FROM oms.reservations h WHERE h.tenant_id = p_tenant AND h.id = r.hold_id;
		ELSE
			UPDATE oms.reservations h
			   SET cart = NULL, expires_at = NULL, order_id = p_order, line_no = r.line_no, qty = r.qty
			 WHERE h.tenant_id = p_tenant AND h.id = r.hold_id;
			IF NOT FOUND THEN
				INSERT INTO oms.reservations (tenant_id, item_id, location_id, qty, order_id, line_no)
					VALUES (p_tenant, r.item_id, r.location_id, r.qty, p_order, r.line_no);
			END IF;
		END IF;
	END LOOP;
	IF 'preorder' = ANY (p_kind) THEN
		PERFORM oms._reserve_supply(p_tenant, p_order, p_items, p_line, p_loc, p_qty, p_kind, p_supply);
	END IF;
END
$$;
COMMENT ON FUNCTION oms._reserve_routed(int, bigint, text, int[], int[], int[], int[], text[], bigint[]) IS 'Internal: reserves the stock a route assigns to an order''s lines, in (item, location) order, converting the cart''s holds, then the supply of its pre-orders; OM001 from the reservation trigger when a location or supply lost the race';
CREATE OR REPLACE FUNCTION oms._check_lines(p_lines jsonb)
	RETURNS TABLE (path text, problem text, value jsonb, hint text)
	LANGUAGE plpgsql IMMUTABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	RETURN QUERY
	SELECT format('lines[%s]%s', x.i - 1, x.field), x.problem, x.value, x.hint
	  FROM (SELECT e.i,
				   CASE
					WHEN jsonb_typeof(e.v) <> 'object' THEN ''
					WHEN e.extra IS NOT NULL THEN '.' || e.extra
					WHEN jsonb_typeof(e.v -> 'sku') IS DISTINCT FROM 'string' OR e.v ->> 'sku' = '' OR length(e.v ->> 'sku') > 100 THEN '.sku'
					WHEN jsonb_typeof(e.v -> 'qty') IS DISTINCT FROM 'number' OR (e.v -> 'qty')::numeric <= 0
						OR (e.v -> 'qty')::numeric > 2147483647 OR (e.v -> 'qty')::numeric <> trunc((e.v -> 'qty')::numeric) THEN '.qty'
					WHEN jsonb_typeof(e.v -> 'unit_price') IS DISTINCT FROM 'number' OR (e.v -> 'unit_price')::numeric < 0
						OR (e.v -> 'unit_price')::numeric >= 1e15 THEN '.unit_price'
				   END AS field,
				   CASE
					WHEN jsonb_typeof(e.v) <> 'object' THEN 'must be an object'
					WHEN e.extra IS NOT NULL THEN 'is not known'
					WHEN jsonb_typeof(e.v -> 'sku') IS DISTINCT FROM 'string' OR e.v ->> 'sku' = '' OR length(e.v ->> 'sku') > 100 THEN 'must be a SKU (text of 1 to 100 characters)'
					WHEN jsonb_typeof(e.v -> 'qty') IS DISTINCT FROM 'number' OR (e.v -> 'qty')::numeric <= 0
						OR (e.v -> 'qty')::numeric > 2147483647 OR (e.v -> 'qty')::numeric <> trunc((e.v -> 'qty')::numeric) THEN 'must be a whole number greater than 0'
					ELSE 'must be a price of 0 or more'
				   END AS problem,
				   CASE
					WHEN jsonb_typeof(e.v) <> 'object' THEN e.v
					WHEN e.extra IS NOT NULL THEN e.v -> e.extra
					WHEN jsonb_typeof(e.v -> 'sku') IS DISTINCT FROM 'string' OR e.v ->> 'sku' = '' OR length(e.v ->> 'sku') > 100 THEN e.v -> 'sku'
					WHEN jsonb_typeof(e.v -> 'qty') IS DISTINCT FROM 'number' OR (e.v -> 'qty')::numeric <= 0
						OR (e.v -> 'qty')::numeric > 2147483647 OR (e.v -> 'qty')::numeric <> trunc((e.v -> 'qty')::numeric) THEN e.v -> 'qty'
					ELSE e.v -> 'unit_price'
				   END AS value,
				   'A line is {"sku": "SKU-1", "qty": 2, "unit_price": 19.90}: a known SKU, a whole quantity of at least 1 and a price of 0 or more.' AS hint
			  FROM (SELECT a.v, a.i,
						   CASE WHEN jsonb_typeof(a.v) = 'object' THEN
								(SELECT k FROM jsonb_object_keys(a.v) k
								  WHERE k NOT IN ('sku', 'qty', 'unit_price') ORDER BY k LIMIT 1) END AS extra
					  FROM jsonb_array_elements(p_lines) WITH ORDINALITY a(v, i)) e) x
	 WHERE x.field IS NOT NULL
	 ORDER BY x.i
	 LIMIT 1;
END
$$;
COMMENT ON FUNCTION oms._check_lines(jsonb) IS 'Internal: the first malformed line of an order payload (path, problem, value, hint), or no row';
CREATE OR REPLACE FUNCTION oms._unslot(p_tenant int, p_item int, p_location int) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_free	bigint;
BEGIN
	SELECT coalesce(sum(z.free), 0) INTO v_free
	  FROM (SELECT x.free FROM oms.stock_slots x
			 WHERE x.tenant_id = p_tenant AND x.item_id = p_item AND x.location_id = p_location
			 ORDER BY x.slot FOR UPDATE) z;
	IF v_free > 0 THEN
		UPDATE oms.stock_slots x SET free = 0
		 WHERE x.tenant_id = p_tenant AND x.item_id = p_item AND x.location_id = p_location AND x.free > 0;
		PERFORM oms._slot_units(p_tenant, p_item, p_location, -v_free);
	END IF;
	RETURN v_free;
END
$$;
COMMENT ON FUNCTION oms._unslot(int, int, int) IS 'Internal: moves the free units of a hot stock row''s slots back to the row (locked by the caller); returns how many';
CREATE OR REPLACE FUNCTION oms.set_stock(sku text, location text, on_hand bigint, reason text) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v_item		int := oms._item_id(v_tenant, sku);
	v_loc		int := oms._location_id(v_tenant, location);
	v_old		bigint;
	v_reserved	bigint;
BEGIN
	PERFORM oms._check_reason(reason);
	IF set_stock.on_hand IS NULL OR set_stock.on_hand < 0 OR set_stock.on_hand > 1000000000000 THEN
		RAISE EXCEPTION 'invalid on_hand % for SKU "%" at location "%"', coalesce(set_stock.on_hand::text, 'NULL'), sku, location
			USING ERRCODE = '22023', HINT = 'on_hand is a whole number of units from 0 to 10^12.';
	END IF;

	INSERT INTO oms.stock AS s (tenant_id, item_id, location_id)
		VALUES (v_tenant, v_item, v_loc)
		ON CONFLICT (tenant_id, item_id, location_id) DO NOTHING;
	SELECT s.on_hand, s.reserved INTO v_old, v_reserved
		FROM oms.stock s
		WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc
		FOR UPDATE;
	IF set_stock.on_hand < v_reserved THEN
		-- a hot SKU's slots may hold the units: they go back to the stock row first
		v_reserved := v_reserved - oms._unslot(v_tenant, v_item, v_loc);
	END IF;
	IF set_stock.on_hand < v_reserved THEN
		RAISE EXCEPTION 'on hand of SKU "%" at location "%" cannot go below what is reserved', sku, location
			USING ERRCODE = 'OM002',
			      DETAIL = format('Requested on hand %s, reserved %s.', set_stock.on_hand, v_reserved),
			      HINT = 'Cancel or move the orders that hold this stock first (see oms.reservations).';
	END IF;
	UPDATE oms.stock s SET on_hand = set_stock.on_hand, updated_at = pg_catalog.now()
		WHERE s.tenant_id = v_tenant AND s.item_id = v_item AND s.location_id = v_loc;
	INSERT INTO oms.stock_movements (tenant_id, item_id, location_id, kind, delta, on_hand_after, reason, moved_by)
		VALUES (v_tenant, v_item, v_loc, 'count', set_stock.on_hand - v_old, set_stock.on_hand, reason, oms._actor());
	RETURN set_stock.on_hand;
END
$$;
COMMENT ON FUNCTION oms.set_stock(text, text, bigint, text) IS 'Sets on hand of a SKU at a location (a stock count) and records the movement; returns the new on hand';
CREATE OR REPLACE FUNCTION oms._bi_lines_on_shard(p_op text, p_new oms.order_lines[], p_old oms.order_lines[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_plus		oms.order_lines[];
	v_minus		oms.order_lines[];
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_back		oms.order_history[];
	v_deltas	oms.bi_sales_deltas[];
	v_sales		oms.bi_order_sales[];
	v_o			bigint[];
	v_l			int[];
	v_shipments	bigint[];
BEGIN
	FOR v_tenant IN
		SELECT DISTINCT x.tenant_id
		  FROM (SELECT n.tenant_id FROM pg_catalog.unnest(p_new) n UNION ALL SELECT d.tenant_id FROM pg_catalog.unnest(p_old) d) x
	LOOP
		-- The lines whose quantities, price, item or location changed, as a new (+) and an old
		-- (-) side.
		SELECT pg_catalog.array_agg(n)
		  INTO v_plus
		  FROM pg_catalog.unnest(p_new) n
		  LEFT JOIN pg_catalog.unnest(p_old) d ON d.tenant_id = n.tenant_id AND d.order_id = n.order_id AND d.line_no = n.line_no
		 WHERE n.tenant_id = v_tenant
		   AND (d.order_id IS NULL
				OR (n.item_id, n.location_id, n.qty, n.qty_cancelled, n.qty_shipped, n.qty_returned, n.unit_price)
				   IS DISTINCT FROM (d.item_id, d.location_id, d.qty, d.qty_cancelled, d.qty_shipped, d.qty_returned, d.unit_price));
		SELECT pg_catalog.array_agg(d)
		  INTO v_minus
		  FROM pg_catalog.unnest(p_old) d
		  LEFT JOIN pg_catalog.unnest(p_new) n ON n.tenant_id = d.tenant_id AND n.order_id = d.order_id AND n.line_no = d.line_no
		 WHERE d.tenant_id = v_tenant
		   AND (n.order_id IS NULL
				OR (n.item_id, n.location_id, n.qty, n.qty_cancelled, n.qty_shipped, n.qty_returned, n.unit_price)
				   IS DISTINCT FROM (d.item_id, d.location_id, d.qty, d.qty_cancelled, d.qty_shipped, d.qty_returned, d.unit_price));
		v_ids := ARRAY(SELECT x.order_id FROM pg_catalog.unnest(v_plus) x UNION SELECT x.order_id FROM pg_catalog.unnest(v_minus) x);
		IF pg_catalog.cardinality(v_ids) > 0 THEN
			SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
			IF p_op <> 'INSERT' THEN	-- (a new line counts its state)
				SELECT pg_catalog.array_agg(h) INTO v_back FROM oms.order_history h
				 WHERE h.tenant_id = v_tenant AND h.order_id = ANY (v_ids) AND h.line_no IS NOT NULL
				   AND h.from_state IS NULL AND h.to_state = 'backordered';
			END IF;
			-- backordered: a new line counts its state; an updated line its placement (history)
			-- when it moved, on both sides; a deleted line its placement
			WITH c AS (
				SELECT 1 AS sign, x.*,
					   CASE WHEN p_op = 'INSERT' THEN x.state = 'backordered'
							ELSE EXISTS (SELECT FROM pg_catalog.unnest(p_old) d
										  WHERE d.tenant_id = x.tenant_id AND d.order_id = x.order_id AND d.line_no = x.line_no
											AND d.location_id IS DISTINCT FROM x.location_id)
								 AND EXISTS (SELECT FROM pg_catalog.unnest(v_back) b
											  WHERE b.order_id = x.order_id AND b.line_no = x.line_no) END AS backordered
				  FROM pg_catalog.unnest(v_plus) x
				UNION ALL
				SELECT -1, x.*,
					   (p_op = 'DELETE'
						OR EXISTS (SELECT FROM pg_catalog.unnest(p_new) n
									WHERE n.tenant_id = x.tenant_id AND n.order_id = x.order_id AND n.line_no = x.line_no
									  AND n.location_id IS DISTINCT FROM x.location_id))
					   AND EXISTS (SELECT FROM pg_catalog.unnest(v_back) b WHERE b.order_id = x.order_id AND b.line_no = x.line_no)
				  FROM pg_catalog.unnest(v_minus) x
			), k AS (
				SELECT c.sign, c.order_id, c.line_no, c.item_id, c.location_id, c.backordered, c.qty::bigint AS qty,
					   c.qty_cancelled::bigint AS qty_cancelled, c.qty_shipped::bigint AS qty_shipped,
					   c.qty_returned::bigint AS qty_returned, c.unit_price,
					   (o.placed_at AT TIME ZONE 'UTC')::date AS day, o.channel_id, o.currency, o.ship_country, o.attributes, o.customer_ref
				  FROM c
				  JOIN pg_catalog.unnest(v_orders) o ON o.id = c.order_id
			)
			SELECT (SELECT pg_catalog.array_agg(ROW(r.*)::oms.bi_sales_deltas) FROM (
						SELECT v_tenant, k.day, k.channel_id, k.location_id, k.item_id, k.currency,
							   k.ship_country, k.attributes ->> 'seller', k.attributes ->> 'source_page',
							   pg_catalog.sum(k.sign * (k.line_no = 1)::int), pg_catalog.sum(k.sign), pg_catalog.sum(k.sign * k.backordered::int),
							   pg_catalog.sum(k.sign * k.qty), pg_catalog.sum(k.sign * k.qty_cancelled), pg_catalog.sum(k.sign * k.qty_shipped),
							   pg_catalog.sum(k.sign * k.qty_returned), pg_catalog.sum(k.sign * k.qty * k.unit_price),
							   pg_catalog.sum(k.sign * k.qty_cancelled * k.unit_price), pg_catalog.sum(k.sign * k.qty_returned * k.unit_price)
						  FROM k
						 GROUP BY 2, 3, 4, 5, 6, 7, 8, 9
						HAVING pg_catalog.sum(k.sign * (k.line_no = 1)::int) <> 0 OR pg_catalog.sum(k.sign) <> 0
							OR pg_catalog.sum(k.sign * k.backordered::int) <> 0 OR pg_catalog.sum(k.sign * k.qty) <> 0
							OR pg_catalog.sum(k.sign * k.qty_cancelled) <> 0 OR pg_catalog.sum(k.sign * k.qty_shipped) <> 0
							OR pg_catalog.sum(k.sign * k.qty_returned) <> 0 OR pg_catalog.sum(k.sign * k.qty * k.unit_price) <> 0
							OR pg_catalog.sum(k.sign * k.qty_cancelled * k.unit_price) <> 0
							OR pg_catalog.sum(k.sign * k.qty_returned * k.unit_price) <> 0) r),
				   (SELECT pg_catalog.array_agg(ROW(r.*)::oms.bi_order_sales) FROM (
						SELECT v_tenant, k.order_id, k.day, k.channel_id, k.customer_ref, k.currency,
							   pg_catalog.sum(k.sign)::int, pg_catalog.sum(k.sign * (k.qty - k.qty_cancelled))::int,
							   pg_catalog.sum(k.sign * (k.qty - k.qty_cancelled) * k.unit_price),
							   pg_catalog.sum(k.sign * k.qty_returned)::int,
							   pg_catalog.sum(k.sign * (k.qty_cancelled > 0 OR k.qty_shipped < k.qty)::int)::int, 0, 0
						  FROM k
						 GROUP BY 2, 3, 4, 5, 6) r)
			  INTO v_deltas, v_sales;
			IF v_deltas IS NOT NULL THEN
				INSERT INTO oms.bi_sales_deltas SELECT * FROM pg_catalog.unnest(v_deltas);
			END IF;
			IF v_sales IS NOT NULL THEN
				INSERT INTO oms.bi_order_sales AS b SELECT * FROM pg_catalog.unnest(v_sales)
				ON CONFLICT (tenant_id, order_id) DO UPDATE
				   SET lines = b.lines + EXCLUDED.lines, units = b.units + EXCLUDED.units, revenue = b.revenue + EXCLUDED.revenue,
					   units_returned = b.units_returned + EXCLUDED.units_returned,
					   lines_incomplete = b.lines_incomplete + EXCLUDED.lines_incomplete;
			END IF;
		END IF;
		IF p_op = 'UPDATE' THEN
			SELECT pg_catalog.array_agg(n.order_id), pg_catalog.array_agg(n.line_no) INTO v_o, v_l
			  FROM pg_catalog.unnest(p_new) n
			  JOIN pg_catalog.unnest(p_old) d ON d.tenant_id = n.tenant_id AND d.order_id = n.order_id AND d.line_no = n.line_no
			 WHERE n.tenant_id = v_tenant AND n.promised_date IS DISTINCT FROM d.promised_date AND n.qty_shipped > 0;
			IF v_o IS NOT NULL THEN
				SELECT pg_catalog.array_agg(DISTINCT x.shipment_id) INTO v_shipments
				  FROM oms.shipment_lines x
				 WHERE x.tenant_id = v_tenant AND x.order_id = ANY (v_o)
				   AND (x.order_id, x.line_no) IN (SELECT * FROM pg_catalog.unnest(v_o, v_l));
				IF v_shipments IS NOT NULL THEN
					PERFORM oms._bi_refresh_shipments(v_tenant, v_shipments);
				END IF;
			END IF;
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._bi_lines_on_shard(text, oms.order_lines[], oms.order_lines[]) IS 'Internal: the BI line triggers'' work on a shard of a Citus cluster, from their transition rows passed as arrays (TG_OP, new rows, old rows)';
CREATE OR REPLACE FUNCTION oms.bi_tenant_schema(tenant int, grantee regrole DEFAULT NULL) RETURNS name
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_schema	name;
	v_todo		oid[];
	v_left		oid[];
	v_oid		oid;
	v_name		name;
	v_sql		text;
	v_error		text;
	v_col		record;
BEGIN
	IF tenant IS NULL OR NOT EXISTS (SELECT FROM oms.tenants t WHERE t.id = tenant) THEN
		RAISE EXCEPTION 'unknown tenant id %', coalesce(tenant::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'oms.tenant_id(code) gives a tenant''s id.';
	END IF;
	v_schema := 'oms_bi_' || tenant;
	-- every name qualified in the definitions read below (until the function returns)
	PERFORM pg_catalog.set_config('search_path', 'pg_catalog', true);
	EXECUTE pg_catalog.format('DROP SCHEMA IF EXISTS %I CASCADE', v_schema);
	EXECUTE pg_catalog.format('CREATE SCHEMA %I', v_schema);
	EXECUTE pg_catalog.format('COMMENT ON SCHEMA %I IS %L', v_schema,
							  'oms reporting of tenant ' || tenant || ' alone: a copy of oms_bi made by oms.bi_tenant_schema(' || tenant || ')');
	EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', v_schema);
	-- the views and functions of oms_bi; one that reads another not yet copied waits for a later round
	v_todo := ARRAY(SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = 'oms_bi'::regnamespace AND c.relkind = 'v'
									AND c.relname <> 'platform_daily'	-- every tenant's: not for one
					UNION ALL
					SELECT f.oid FROM pg_catalog.pg_proc f WHERE f.pronamespace = 'oms_bi'::regnamespace
					ORDER BY 1);
	WHILE pg_catalog.cardinality(v_todo) > 0 LOOP
		v_left := '{}';
		FOREACH v_oid IN ARRAY v_todo LOOP
			SELECT c.relname INTO v_name FROM pg_catalog.pg_class c WHERE c.oid = v_oid AND c.relkind = 'v';
			IF FOUND THEN
				v_sql := pg_catalog.format('CREATE VIEW %I.%I AS %s', v_schema, v_name, pg_catalog.pg_get_viewdef(v_oid));
			ELSE
				v_name := NULL;
				v_sql := pg_catalog.pg_get_functiondef(v_oid);
			END IF;
			v_sql := pg_catalog.replace(v_sql, '( SELECT oms.bi_tenant_id() AS bi_tenant_id)', tenant::text);
			v_sql := pg_catalog.replace(v_sql, 'oms.bi_tenant_id()', tenant::text);
			-- every row read is the tenant's: a join or correlation on tenant_id names it too, so that
			-- Citus sends each query to the tenant's node alone
			v_sql := pg_catalog.regexp_replace(v_sql, '\((\w+)\.tenant_id = \w+\.tenant_id\)', '(\1.tenant_id = ' || tenant || ')', 'g');
			v_sql := pg_catalog.regexp_replace(v_sql, '\moms_bi\.', v_schema || '.', 'g');
			v_sql := pg_catalog.replace(v_sql, '''oms_bi''', pg_catalog.quote_literal(v_schema));
			BEGIN
				EXECUTE v_sql;
			EXCEPTION WHEN undefined_table OR undefined_function THEN
				GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT;
				v_left := v_left || v_oid;
				CONTINUE;
			END;
			IF v_name IS NOT NULL THEN
				EXECUTE pg_catalog.format('COMMENT ON VIEW %I.%I IS %L', v_schema, v_name, pg_catalog.obj_description(v_oid, 'pg_class'));
				FOR v_col IN SELECT a.attname, d.description
							   FROM pg_catalog.pg_attribute a
							   JOIN pg_catalog.pg_description d ON d.objoid = v_oid AND d.classoid = 'pg_catalog.pg_class'::regclass
															   AND d.objsubid = a.attnum
							  WHERE a.attrelid = v_oid AND a.attnum > 0 LOOP
					EXECUTE pg_catalog.format('COMMENT ON COLUMN %I.%I.%I IS %L', v_schema, v_name, v_col.attname, v_col.description);
				END LOOP;
			END IF;
		END LOOP;
		IF pg_catalog.cardinality(v_left) = pg_catalog.cardinality(v_todo) THEN
			RAISE EXCEPTION 'cannot copy % objects of oms_bi for tenant %: %', pg_catalog.cardinality(v_left), tenant, v_error
				USING ERRCODE = 'XX000', HINT = 'Report it: every object of oms_bi must be copyable.';
		END IF;
		v_todo := v_left;
	END LOOP;
	EXECUTE pg_catalog.format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM PUBLIC', v_schema);
	EXECUTE pg_catalog.format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM PUBLIC', v_schema);
	EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %I TO oms_admin', v_schema);
	EXECUTE pg_catalog.format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO oms_admin', v_schema);
	EXECUTE pg_catalog.format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO oms_admin', v_schema);
	IF grantee IS NOT NULL THEN
		EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %I TO %s', v_schema, grantee);
		EXECUTE pg_catalog.format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %s', v_schema, grantee);
		EXECUTE pg_catalog.format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO %s', v_schema, grantee);
		-- what the views call as the user who reads them
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION oms.reporting_currency(), oms.bi_today(), oms.bi_unmasked(),
			oms.bi_mask_name(text), oms.bi_mask_email(text), oms._clip(text) TO %s', grantee);
	END IF;
	RETURN v_schema;
END
$$;
COMMENT ON FUNCTION oms.bi_tenant_schema(int, regrole) IS 'Copies every view (but platform_daily) and function of oms_bi into schema oms_bi_<tenant id>, for that tenant alone (written in: no setting needed), readable by oms_admin and the given role; replaces an earlier copy; returns the schema''s name. Call it again after ALTER EXTENSION oms UPDATE';
CREATE OR REPLACE FUNCTION oms_bi.product_sales(from_day date, to_day date)
	RETURNS TABLE (sku text, item_name text, lines bigint, units bigint, revenue numeric, returns bigint, last_order date)
	LANGUAGE sql STABLE SECURITY DEFINER
	SET search_path = oms_bi, pg_catalog
BEGIN ATOMIC
	SELECT * FROM oms._bi_product_sales(from_day, to_day, oms.bi_tenant_id());
END;
COMMENT ON FUNCTION oms_bi.product_sales(date, date) IS 'Sales per SKU over the UTC days from_day..to_day: order lines, units not cancelled, revenue in the reporting currency (NULL when a rate is missing), units returned, last day with an order (the base of top(''product'', ...))';
CREATE OR REPLACE FUNCTION oms._new_purchase_order(p_tenant int, p_supplier int, p_location int, p_state text, p_origin text,
										p_items int[], p_qtys bigint[], p_costs numeric[], p_dates date[])
	RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_po		bigint;
	v_expected	date := (SELECT max(d) FROM unnest(p_dates) d);	-- (not in the VALUES: Citus refuses subqueries there)
BEGIN
	INSERT INTO oms.purchase_orders AS po (tenant_id, supplier_id, location_id, state, expected_date, origin, created_by, sent_at)
		VALUES (p_tenant, p_supplier, p_location, p_state, v_expected, p_origin, oms._actor(),
				CASE WHEN p_state = 'sent' THEN pg_catalog.now() END)
		RETURNING po.id INTO v_po;
	WITH l AS (
		SELECT i AS line_no, p_items[i] AS item_id, p_qtys[i] AS qty, p_costs[i] AS unit_cost, p_dates[i] AS expected_date
		  FROM generate_subscripts(p_items, 1) i
	), s AS (
		INSERT INTO oms.supply (tenant_id, item_id, location_id, qty, expected_date, kind, reference)
		SELECT p_tenant, l.item_id, p_location, l.qty, l.expected_date, 'purchase_order', 'PO-' || v_po || ':' || l.line_no
		  FROM l ORDER BY l.line_no
		RETURNING id, item_id
	)
	INSERT INTO oms.purchase_order_lines (tenant_id, po_id, line_no, item_id, qty, unit_cost, expected_date, supply_id)
	SELECT p_tenant, v_po, l.line_no, l.item_id, l.qty,
		   coalesce(l.unit_cost, (SELECT it.unit_cost FROM oms.items it WHERE it.tenant_id = p_tenant AND it.id = l.item_id)),
		   l.expected_date, s.id
	  FROM l JOIN s ON s.item_id = l.item_id;
	RETURN v_po;
END
$$;
COMMENT ON FUNCTION oms._new_purchase_order(int, int, int, text, text, int[], bigint[], numeric[], date[]) IS 'Internal: inserts a purchase order, its lines and one supply row per line';
CREATE OR REPLACE FUNCTION oms.receive_purchase_order(po_id bigint, lines jsonb DEFAULT NULL)
	RETURNS TABLE (sku text, received bigint, still_open bigint, on_hand bigint, backorders_allocated int,
				   units_allocated bigint)
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
	v_tenant	int := oms.current_tenant_id();
	v			oms.purchase_orders := oms._lock_purchase_order(v_tenant, po_id);
	v_open		boolean;
	v_now		timestamptz := pg_catalog.now();
BEGIN
	IF v.state IN ('received', 'cancelled') THEN
		RAISE EXCEPTION 'purchase order % is closed: it is %', v.id, v.state
			USING ERRCODE = '55000', HINT = 'Receipts are booked on open purchase orders (draft, sent, partially_received).';
	END IF;
	RETURN QUERY SELECT * FROM oms._receive_lines(v_tenant, 'purchase order', v.id, v.location_id, lines);
	-- (the open lines read first, and now() as a value: Citus refuses subqueries and volatile
	-- functions in an UPDATE's SET)
	v_open := EXISTS (SELECT FROM oms.purchase_order_lines l
					   WHERE l.tenant_id = v_tenant AND l.po_id = v.id AND l.qty_received + l.qty_cancelled < l.qty);
	UPDATE oms.purchase_orders po
	   SET state = CASE WHEN v_open THEN 'partially_received' ELSE 'received' END,
		   sent_at = coalesce(po.sent_at, v_now),
		   closed_at = CASE WHEN v_open THEN po.closed_at ELSE v_now END
	 WHERE po.tenant_id = v_tenant AND po.id = v.id;
END
$$;
COMMENT ON FUNCTION oms.receive_purchase_order(bigint, jsonb) IS 'Books a (partial) receipt of a purchase order ([{"sku", "qty"}]; NULL: everything open): on_hand grows (movement receipt), supply shrinks, waiting backorders of those SKUs are allocated first come first served; OM020 beyond what is open, 55000 on a closed order';
CREATE OR REPLACE FUNCTION oms._demand_lines_on_shard(p_new oms.order_lines[], p_old oms.order_lines[]) RETURNS void
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int;
	v_ids		bigint[];
	v_orders	oms.orders[];
	v_rows		oms.demand_deltas[];
BEGIN
	FOR v_tenant IN
		SELECT DISTINCT x.tenant_id
		  FROM (SELECT n.tenant_id FROM pg_catalog.unnest(p_new) n UNION ALL SELECT d.tenant_id FROM pg_catalog.unnest(p_old) d) x
	LOOP
		-- the orders of the lines whose counted columns changed (a state change counts nothing and
		-- costs no query of the tables)
		v_ids := ARRAY(SELECT n.order_id
						 FROM pg_catalog.unnest(p_new) n
						 LEFT JOIN pg_catalog.unnest(p_old) d ON d.tenant_id = n.tenant_id AND d.order_id = n.order_id
															AND d.line_no = n.line_no
						WHERE n.tenant_id = v_tenant
						  AND (n.item_id, n.location_id, n.qty, n.qty_cancelled, n.qty_returned)
							  IS DISTINCT FROM (d.item_id, d.location_id, d.qty, d.qty_cancelled, d.qty_returned)
					   UNION
					   SELECT d.order_id
						 FROM pg_catalog.unnest(p_old) d
						 LEFT JOIN pg_catalog.unnest(p_new) n ON n.tenant_id = d.tenant_id AND n.order_id = d.order_id
															AND n.line_no = d.line_no
						WHERE d.tenant_id = v_tenant
						  AND (n.item_id, n.location_id, n.qty, n.qty_cancelled, n.qty_returned)
							  IS DISTINCT FROM (d.item_id, d.location_id, d.qty, d.qty_cancelled, d.qty_returned));
		CONTINUE WHEN pg_catalog.cardinality(v_ids) = 0;
		SELECT pg_catalog.array_agg(o) INTO v_orders FROM oms.orders o WHERE o.tenant_id = v_tenant AND o.id = ANY (v_ids);
		SELECT pg_catalog.array_agg(ROW(r.*)::oms.demand_deltas) INTO v_rows FROM (
			SELECT v_tenant, c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date,
				   pg_catalog.sum(c.qty), pg_catalog.sum(c.qty_cancelled), pg_catalog.sum(c.qty_returned), pg_catalog.sum(c.lines)
			  FROM (SELECT n.order_id, n.item_id, n.location_id, n.qty::bigint AS qty, n.qty_cancelled::bigint AS qty_cancelled,
						   n.qty_returned::bigint AS qty_returned, 1::bigint AS lines
					  FROM pg_catalog.unnest(p_new) n WHERE n.tenant_id = v_tenant
					UNION ALL
					SELECT d.order_id, d.item_id, d.location_id, -d.qty, -d.qty_cancelled, -d.qty_returned, -1
					  FROM pg_catalog.unnest(p_old) d WHERE d.tenant_id = v_tenant) c
			  JOIN pg_catalog.unnest(v_orders) o ON o.id = c.order_id
			 GROUP BY c.item_id, c.location_id, o.channel_id, (o.placed_at AT TIME ZONE 'UTC')::date
			HAVING pg_catalog.sum(c.qty) <> 0 OR pg_catalog.sum(c.qty_cancelled) <> 0
				OR pg_catalog.sum(c.qty_returned) <> 0 OR pg_catalog.sum(c.lines) <> 0) r;
		IF v_rows IS NOT NULL THEN
			INSERT INTO oms.demand_deltas SELECT * FROM pg_catalog.unnest(v_rows);
		END IF;
	END LOOP;
END
$$;
COMMENT ON FUNCTION oms._demand_lines_on_shard(oms.order_lines[], oms.order_lines[]) IS 'Internal: the demand triggers'' work on a shard of a Citus cluster, from their transition rows passed as arrays (new rows, old rows)';
CREATE OR REPLACE FUNCTION oms._events_to_announce_by_node(after bigint[])
	RETURNS TABLE (tenant text, up_to bigint)
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
#variable_conflict use_column
BEGIN
	IF NOT oms._citus_distributed() THEN
		RETURN QUERY SELECT a.tenant, a.up_to FROM oms._events_to_announce(coalesce(after[1], 0)) a;
		RETURN;
	END IF;
	-- On Citus: per tenant (grouped on the distribution column, so each node answers for its own
	-- tenants, with its own snapshot), the first event after its node's position and the newest
	-- safe one; then per node, the newest safe event of all its tenants.
	RETURN QUERY
	WITH per_tenant AS (
		SELECT e.tenant_id, (e.id >> 48)::int AS node_group, pg_catalog.min(e.id) AS first_id,
			   pg_catalog.max(e.id) FILTER (WHERE e.xid_horizon OPERATOR(pg_catalog.<=)
											  pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())) AS safe_id
		  FROM oms.events e
		 WHERE e.id > coalesce(after[(e.id >> 48)::int + 1], 0)
		 GROUP BY e.tenant_id, (e.id >> 48)::int),
	per_node AS (
		SELECT p.node_group, pg_catalog.max(p.safe_id) AS up_to FROM per_tenant p GROUP BY p.node_group)
	SELECT t.code, n.up_to
	  FROM per_tenant p
	  JOIN per_node n ON n.node_group = p.node_group AND p.first_id <= n.up_to
	  JOIN oms.tenants t ON t.id = p.tenant_id
	 ORDER BY t.code;
END
$$;
COMMENT ON FUNCTION oms._events_to_announce_by_node(bigint[]) IS 'Internal (worker, oms.notify_events = worker): the tenants with events after their node''s position (after[node group + 1]) up to the newest safe event of that node, and that id; on one node oms._events_to_announce(after[1])';
CREATE OR REPLACE FUNCTION oms._citus_distributed() RETURNS boolean
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_dist	boolean := false;
BEGIN
	IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
		EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = ''oms.events''::regclass)'
		   INTO v_dist;
	END IF;
	RETURN v_dist;
END
$$;
COMMENT ON FUNCTION oms._citus_distributed() IS 'Internal: true when oms.events is a distributed table of Citus (oms.distribute() has run)';
CREATE OR REPLACE FUNCTION oms._store_locations_of(p_tenant int) RETURNS int[]
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = oms, pg_catalog
	SET citus.allow_nested_distributed_execution = on
AS $$
BEGIN
	IF p_tenant IS DISTINCT FROM oms.current_tenant_id() THEN
		RETURN '{}';
	END IF;
	RETURN (SELECT coalesce(pg_catalog.array_agg(DISTINCT a.location_id), '{}')
			  FROM oms.store_assignments a JOIN pg_catalog.pg_roles r ON r.rolname = a.role
			 WHERE a.tenant_id = p_tenant
			   AND pg_catalog.pg_has_role(oms._caller(), r.oid, 'USAGE'));
END
$$;
COMMENT ON FUNCTION oms._store_locations_of(int) IS 'Internal: oms._store_locations() for a row of the given tenant (none for another tenant than the current one); the store policies on Citus';
CREATE OR REPLACE FUNCTION oms._store_locations() RETURNS int[]
	LANGUAGE plpgsql STABLE SECURITY DEFINER
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	RETURN (SELECT coalesce(pg_catalog.array_agg(DISTINCT a.location_id), '{}')
			  FROM oms.store_assignments a JOIN pg_catalog.pg_roles r ON r.rolname = a.role
			 WHERE a.tenant_id = oms.current_tenant_id()
			   AND pg_catalog.pg_has_role(oms._caller(), r.oid, 'USAGE'));
END
$$;
COMMENT ON FUNCTION oms._store_locations() IS 'Internal: ids of the current tenant''s locations assigned to the caller (or to a role whose privileges it has); used by the store policies';
CREATE OR REPLACE FUNCTION oms.purge_events(older_than interval, batch int DEFAULT 1000) RETURNS bigint
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_n			bigint;
	v_tenant	int;
	v_acked		bigint;
	v_k			bigint;
BEGIN
	IF older_than IS NULL OR older_than < interval '0' THEN
		RAISE EXCEPTION 'invalid retention %', coalesce(older_than::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Events older than this interval (0 or more) are purged once acknowledged.';
	END IF;
	IF batch IS NULL OR batch < 1 OR batch > 100000 THEN
		RAISE EXCEPTION 'invalid batch size %', coalesce(batch::text, 'NULL')
			USING ERRCODE = '22023', HINT = 'Purge 1 to 100000 events per call.';
	END IF;
	IF oms._citus_distributed() THEN
		-- On Citus (the background worker of the coordinator), the same tenant by tenant: a
		-- query correlated on a reference table (oms.tenants) cannot reach the shards, and each
		-- statement naming one tenant goes to that tenant's node.
		v_n := 0;
		FOR v_tenant IN SELECT t.id FROM oms.tenants t ORDER BY t.id LOOP
			SELECT pg_catalog.min(c.acked_up_to) INTO v_acked FROM oms.event_consumers c WHERE c.tenant_id = v_tenant;
			WITH doomed AS (
				SELECT e.id, e.created_at
				  FROM oms.events e
				 WHERE e.tenant_id = v_tenant AND e.id <= coalesce(v_acked, 9223372036854775807)
				 ORDER BY e.id
				 LIMIT batch - v_n),
			gone AS (
				DELETE FROM oms.events e USING doomed d
				 WHERE e.tenant_id = v_tenant AND e.id = d.id AND d.created_at < pg_catalog.now() - older_than
				RETURNING 1)
			SELECT pg_catalog.count(*) INTO v_k FROM gone;
			v_n := v_n + v_k;
			EXIT WHEN v_n >= batch;
		END LOOP;
		RETURN v_n;
	END IF;
	-- Per tenant, the oldest events that every consumer has acknowledged; of those, the ones
	-- older than the retention. Only the first batch by id is looked at, so that a round costs the
	-- batch, not the table (created_at grows with id, so the old ones come first).
	WITH doomed AS (
		SELECT d.tenant_id, d.id
		  FROM oms.tenants t
		 CROSS JOIN LATERAL (
			SELECT e.tenant_id, e.id, e.created_at
			  FROM oms.events e
			 WHERE e.tenant_id = t.id
			   AND e.id <= coalesce((SELECT pg_catalog.min(c.acked_up_to) FROM oms.event_consumers c
									  WHERE c.tenant_id = t.id), 9223372036854775807)
			 ORDER BY e.id
			 LIMIT batch) d
		 WHERE d.created_at < pg_catalog.now() - older_than
		 LIMIT batch),
	gone AS (
		DELETE FROM oms.events e USING doomed d
		 WHERE e.tenant_id = d.tenant_id AND e.id = d.id
		RETURNING 1)
	SELECT pg_catalog.count(*) INTO v_n FROM gone;
	RETURN v_n;
END
$$;
COMMENT ON FUNCTION oms.purge_events(interval, int) IS 'Deletes up to batch events (all tenants) that are older than older_than and acknowledged by every consumer of their tenant; returns how many (the background worker calls it with oms.event_retention)';
ALTER FUNCTION oms.place_order(jsonb) SECURITY DEFINER;
ALTER FUNCTION oms.reject_line(bigint, int, text, text) SECURITY DEFINER;
ALTER FUNCTION oms.cancel_order(bigint, text) SECURITY DEFINER;
ALTER FUNCTION oms.cancel_line(bigint, int, int, text) SECURITY DEFINER;
-- place_order computes the tax of a new order itself (71_tax, 72_placed)
DROP FUNCTION oms._order_tax(int, bigint);
DROP FUNCTION oms._tax_rate(int, text, text, date);
ALTER FUNCTION oms.check_stock_invariants() SECURITY DEFINER;
ALTER FUNCTION oms.check_stock_invariants(text) SECURITY DEFINER;
REVOKE ALL ON FUNCTION oms._unslot(int, int, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms._unslot(int, int, int) TO oms_admin;
ALTER FUNCTION oms.set_hot(text, boolean, int) SECURITY DEFINER;
ALTER FUNCTION oms.set_stock(text, text, bigint, text) SECURITY DEFINER;
ALTER FUNCTION oms.adjust_stock(text, text, bigint, text) SECURITY DEFINER;
DROP FUNCTION oms._array_sum(numeric[]);	-- created by the Citus section for place_order, which no longer uses it
-- BI: the product sums take the tenant (oms_bi.product_sales passes it; oms.bi_tenant_schema's copies too)
DROP FUNCTION oms._bi_product_sales(date, date);
REVOKE ALL ON FUNCTION oms._bi_product_sales(date, date, int) FROM PUBLIC;
REVOKE ALL ON FUNCTION oms._bi_lines_on_shard(text, oms.order_lines[], oms.order_lines[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION oms.bi_tenant_schema(int, regrole) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms.bi_tenant_schema(int, regrole) TO oms_admin;
GRANT EXECUTE ON FUNCTION oms._bi_product_sales(date, date, int), oms._bi_lines_on_shard(text, oms.order_lines[], oms.order_lines[]) TO oms_admin;
REVOKE ALL ON FUNCTION oms._demand_lines_on_shard(oms.order_lines[], oms.order_lines[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms._demand_lines_on_shard(oms.order_lines[], oms.order_lines[]) TO oms_admin;
-- Citus: operations on every node (session 5)
REVOKE ALL ON FUNCTION oms._citus_distributed(), oms._store_locations_of(int), oms._events_to_announce_by_node(bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION oms._store_sees_order(int, bigint), oms._store_sees_shipment(int, bigint)
	FROM oms_store, oms_operator, oms_app, oms_admin;
GRANT EXECUTE ON FUNCTION oms._store_sees_order(int, bigint), oms._store_sees_shipment(int, bigint),
	oms._store_locations_of(int) TO oms_store, oms_operator, oms_app;
GRANT EXECUTE ON FUNCTION oms._store_sees_order(int, bigint), oms._store_sees_shipment(int, bigint) TO oms_admin;
GRANT EXECUTE ON FUNCTION oms._citus_distributed(), oms._store_locations_of(int), oms._events_to_announce_by_node(bigint[]) TO oms_admin;
-- the grants and definer rights of the API per role (99_access), as a fresh install gives them
-- The API per role. Every function granted here to a non-admin role becomes SECURITY DEFINER
-- (they all pin search_path), except the readers that run as the caller on purpose: oms.atp()
-- (both forms: now, and time-phased) and oms.atp_by_location() (their callers read the tables,
-- under the policies; oms.atp(sku, location) applies the tenant rule itself). A name that no part
-- defines (yet) is skipped.
DO $$
DECLARE
	v_fn	text;
	v_roles	text;
	v_proc	regprocedure;
BEGIN
	FOR v_fn, v_roles IN
		VALUES
			('atp', 'oms_app, oms_operator'),
			('atp_by_location', 'oms_app, oms_operator, oms_store'),
			('promise', 'oms_app, oms_operator'),
			('route', 'oms_operator'),
			('route_explain', 'oms_operator'),
			('place_order', 'oms_app, oms_operator'),
			('cancel_order', 'oms_app, oms_operator'),
			('hold', 'oms_app, oms_operator'),
			('release_hold', 'oms_app, oms_operator'),
			('order_status', 'oms_app, oms_operator'),
			('request_return', 'oms_app, oms_operator'),
			('cancel_line', 'oms_app, oms_operator'),
			('change_address', 'oms_app, oms_operator'),
			('payment_totals', 'oms_operator'),
			('authorize_payment', 'oms_operator'),
			('capture_payment', 'oms_operator'),
			('refund_payment', 'oms_operator'),
			('void_payment', 'oms_operator'),
			('hold_order', 'oms_operator'),
			('resolve_hold', 'oms_operator'),
			('release_order', 'oms_operator'),
			('pack', 'oms_operator, oms_store'),
			('ship', 'oms_operator, oms_store'),
			('deliver', 'oms_operator, oms_store'),
			('ready_for_pickup', 'oms_operator, oms_store'),
			('collect', 'oms_operator, oms_store'),
			('adjust_stock', 'oms_operator, oms_store'),
			('set_stock', 'oms_operator, oms_store'),
			('set_hot', 'oms_operator'),
			('create_return', 'oms_operator'),
			('receive_return', 'oms_operator'),
			('exchange', 'oms_operator'),
			('forecast', 'oms_operator'),
			('forecast_methods', 'oms_operator'),
			('policy', 'oms_operator'),
			('plan_replenishment', 'oms_operator'),
			('run_replenishment', 'oms_operator'),
			('check_alerts', 'oms_operator'),
			('run_subscriptions', 'oms_operator'),
			('compact_demand_history', 'oms_operator'),
			('refresh_demand_stats', 'oms_operator'),
			('compact_bi_sales', 'oms_operator'),
			('_job_begin', 'oms_operator'),
			('_job_next', 'oms_operator'),
			('_job_end', 'oms_operator'),
			('create_purchase_order', 'oms_operator'),
			('send_purchase_order', 'oms_operator'),
			('cancel_purchase_order', 'oms_operator'),
			('receive_purchase_order', 'oms_operator'),
			('create_transfer', 'oms_operator'),
			('receive_transfer', 'oms_operator'),
			('cancel_transfer', 'oms_operator'),
			('subscribe', 'oms_app, oms_operator'),
			('pause_subscription', 'oms_app, oms_operator'),
			('resume_subscription', 'oms_app, oms_operator'),
			('cancel_subscription', 'oms_app, oms_operator'),
			('check_stock_invariants', 'oms_operator'),
			('reject_line', 'oms_operator, oms_store'),
			('tax_split', 'oms_app, oms_operator'),
			('issue_invoice', 'oms_operator'),
			('issue_credit_note', 'oms_operator'),
			('invoice_document', 'oms_operator'),
			('packing_slip', 'oms_operator, oms_store'),
			('shipping_label', 'oms_operator, oms_store'),
			('return_label', 'oms_operator')
	LOOP
		FOR v_proc IN
			SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
			 WHERE p.pronamespace = 'oms'::regnamespace AND p.proname = v_fn
		LOOP
			EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', v_proc, v_roles);
			IF v_fn NOT IN ('atp', 'atp_by_location') THEN
				EXECUTE pg_catalog.format('ALTER FUNCTION %s SECURITY DEFINER', v_proc);
			END IF;
		END LOOP;
	END LOOP;
END
$$;
-- <<< (end of the functions changed in 0.2.0)
