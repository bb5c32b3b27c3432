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
