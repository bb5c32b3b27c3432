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

-- Is oms distributed (oms.distribute() has run)? The background worker's steps take another way
-- on Citus, where a statement over every tenant must be one that Citus can send to every node.
CREATE FUNCTION oms._citus_distributed() RETURNS boolean
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

-- The store policies on Citus are evaluated on every shard a query reads, also on the shards of
-- other tenants on other nodes (a query without a tenant_id condition reads them all): they must
-- not read the current tenant's assignments from there (a query sent from one node to another in
-- the middle of a shard's scan). So they pass the row's tenant, and a row of another tenant, which
-- the tenant policy filters out anyway, is answered without a query.
CREATE FUNCTION oms._store_locations_of(p_tenant int) RETURNS int[]
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

CREATE FUNCTION oms._store_sees_order(p_tenant int, p_order bigint) RETURNS boolean
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

CREATE FUNCTION oms._store_sees_shipment(p_tenant int, p_shipment bigint) RETURNS boolean
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
REVOKE ALL ON FUNCTION oms.distribute(int) FROM PUBLIC;

REVOKE ALL ON FUNCTION oms.tenant_id(text), oms._tenant_code(int), oms._tenant_entry_points(),
	oms._store_sees_order(int, bigint), oms._store_sees_shipment(int, bigint), oms._supply_detach(),
	oms._node_sequences(), oms._citus_distributed(), oms._store_locations_of(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms.tenant_id(text), oms._tenant_code(int)
	TO oms_operator, oms_store, oms_app;
REVOKE ALL ON FUNCTION oms._atp_distributed(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oms._atp_distributed(text, text) TO oms_operator, oms_store, oms_app;
-- (the store rules are part of every role's policy on Citus: see oms.distribute)
GRANT EXECUTE ON FUNCTION oms._store_sees_order(int, bigint), oms._store_sees_shipment(int, bigint),
	oms._store_locations_of(int) TO oms_store, oms_operator, oms_app;
