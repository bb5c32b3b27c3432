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
);
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
	SELECT st.item_id, st.location_id, st.window_end - st.window_days AS os, st.window_end AS oe,
		   v_today - t.days AS ns, v_today AS ne, t.days
	  FROM oms.demand_stats st
	 CROSS JOIN LATERAL (SELECT coalesce(s.history_days, d.history_days, v_default) AS days
						   FROM (SELECT 1) one
						   LEFT JOIN oms.replenishment_policies s
							 ON s.tenant_id = v_tenant AND s.location_id = st.location_id AND s.item_id = st.item_id
						   LEFT JOIN oms.replenishment_policies d
							 ON d.tenant_id = v_tenant AND d.location_id = st.location_id AND d.item_id IS NULL) t
	 WHERE st.tenant_id = v_tenant AND (st.window_end <> v_today OR st.window_days <> t.days);
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
	oms.refresh_demand_stats(boolean), oms._replenishment_base(int, date, int, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms._demand_history_written(), oms._history_days(int, int, int),
	oms.refresh_demand_stats(boolean), oms._replenishment_base(int, date, int, int) TO oms_admin;
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
