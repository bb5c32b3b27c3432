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
