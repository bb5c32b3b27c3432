-- A description of everything extension oms installed in the current database, one line per
-- fact, in a stable order and without OIDs, so that two databases can be compared line by line:
-- test/t/050_upgrade.pl compares a database upgraded with ALTER EXTENSION oms UPDATE with a fresh
-- CREATE EXTENSION oms. Columns are compared by name (an upgrade appends a new column at the end
-- of its table; a fresh install may have it elsewhere, which no API depends on).
\set QUIET on
\pset format unaligned
\pset tuples_only on
\pset footer off
WITH ext AS (
	SELECT e.oid, e.extconfig, e.extcondition FROM pg_catalog.pg_extension e WHERE e.extname = 'oms'
), member AS (
	SELECT d.classid, d.objid, d.objsubid
	  FROM pg_catalog.pg_depend d, ext
	 WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
), rel AS (
	SELECT c.oid, c.relname, c.relkind, n.nspname || '.' || c.relname AS name
	  FROM member m JOIN pg_catalog.pg_class c ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND c.oid = m.objid
	  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
), facts(line) AS (
	-- every member object
	SELECT 'member ' || pg_catalog.pg_describe_object(m.classid, m.objid, m.objsubid) FROM member m
	UNION ALL
	-- functions and procedures: the whole definition, privileges, comment
	SELECT 'function ' || p.oid::pg_catalog.regprocedure::text || ' kind=' || p.prokind::text || E'\n'
		   || CASE WHEN p.prokind IN ('f', 'p') THEN pg_catalog.pg_get_functiondef(p.oid) ELSE '' END
		   || E'\nacl=' || coalesce(p.proacl::text, '-') || E'\ncomment=' || coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), '-')
	  FROM member m JOIN pg_catalog.pg_proc p ON m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.oid = m.objid
	UNION ALL
	-- relations: kind, options, privileges, row level security, comment
	SELECT 'relation ' || r.name || ' kind=' || r.relkind::text || ' rls=' || c.relrowsecurity || '/' || c.relforcerowsecurity
		   || ' options=' || coalesce(c.reloptions::text, '-') || ' acl=' || coalesce(c.relacl::text, '-')
		   || ' comment=' || coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), '-')
	  FROM rel r JOIN pg_catalog.pg_class c ON c.oid = r.oid
	UNION ALL
	SELECT 'column ' || r.name || '.' || a.attname || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
		   || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
		   || coalesce(' default ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), '')
		   || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
		   || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
		   || coalesce(' collation ' || co.collname, '')
		   || ' acl=' || coalesce(a.attacl::text, '-')
		   || ' comment=' || coalesce(pg_catalog.col_description(r.oid, a.attnum), '-')
	  FROM rel r JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
	  LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = r.oid AND ad.adnum = a.attnum
	  LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0
			AND co.collname <> 'default'
	UNION ALL
	SELECT 'constraint ' || r.name || '.' || k.conname || ' ' || pg_catalog.pg_get_constraintdef(k.oid)
		   || ' comment=' || coalesce(pg_catalog.obj_description(k.oid, 'pg_constraint'), '-')
	  FROM rel r JOIN pg_catalog.pg_constraint k ON k.conrelid = r.oid
	UNION ALL
	SELECT 'index ' || r.name || ' ' || pg_catalog.pg_get_indexdef(i.indexrelid)
	  FROM rel r JOIN pg_catalog.pg_index i ON i.indrelid = r.oid
	UNION ALL
	SELECT 'trigger ' || r.name || ' ' || pg_catalog.pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
	  FROM rel r JOIN pg_catalog.pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
	UNION ALL
	SELECT 'policy ' || r.name || '.' || po.polname || ' cmd=' || po.polcmd::text || ' permissive=' || po.polpermissive
		   || ' roles=' || (SELECT pg_catalog.string_agg(CASE WHEN x = 0 THEN 'public' ELSE x::pg_catalog.regrole::text END, ',' ORDER BY 1)
							  FROM pg_catalog.unnest(po.polroles) x)
		   || ' using=' || coalesce(pg_catalog.pg_get_expr(po.polqual, po.polrelid), '-')
		   || ' check=' || coalesce(pg_catalog.pg_get_expr(po.polwithcheck, po.polrelid), '-')
	  FROM rel r JOIN pg_catalog.pg_policy po ON po.polrelid = r.oid
	UNION ALL
	SELECT 'view ' || r.name || E'\n' || pg_catalog.pg_get_viewdef(r.oid)
	  FROM rel r WHERE r.relkind IN ('v', 'm')
	UNION ALL
	SELECT 'sequence ' || r.name || ' ' || pg_catalog.format_type(s.seqtypid, NULL) || ' start=' || s.seqstart
		   || ' increment=' || s.seqincrement || ' min=' || s.seqmin || ' max=' || s.seqmax || ' cache=' || s.seqcache
		   || ' cycle=' || s.seqcycle
	  FROM rel r JOIN pg_catalog.pg_sequence s ON s.seqrelid = r.oid
	UNION ALL
	-- types: enums with their labels in order, domains with their constraints, composites
	SELECT 'type ' || t.oid::pg_catalog.regtype::text || ' kind=' || t.typtype::text
		   || coalesce(' labels=' || (SELECT pg_catalog.string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
										FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), '')
		   || CASE WHEN t.typtype = 'd' THEN ' base=' || pg_catalog.format_type(t.typbasetype, t.typtypmod)
				   || ' not null=' || t.typnotnull
				   || coalesce(' ' || (SELECT pg_catalog.string_agg(pg_catalog.pg_get_constraintdef(k.oid), ' ' ORDER BY k.conname)
										 FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid), '') ELSE '' END
		   || CASE WHEN t.typtype = 'b' THEN ' in=' || t.typinput::text || ' out=' || t.typoutput::text
				   || ' recv=' || t.typreceive::text || ' send=' || t.typsend::text || ' len=' || t.typlen
				   || ' align=' || t.typalign::text || ' storage=' || t.typstorage::text ELSE '' END
		   || ' acl=' || coalesce(t.typacl::text, '-') || ' comment=' || coalesce(pg_catalog.obj_description(t.oid, 'pg_type'), '-')
	  FROM member m JOIN pg_catalog.pg_type t ON m.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND t.oid = m.objid
	UNION ALL
	-- schemas: privileges, comment
	SELECT 'schema ' || n.nspname || ' acl=' || coalesce(n.nspacl::text, '-')
		   || ' comment=' || coalesce(pg_catalog.obj_description(n.oid, 'pg_namespace'), '-')
	  FROM member m JOIN pg_catalog.pg_namespace n ON m.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND n.oid = m.objid
	UNION ALL
	-- operators and casts (the state types')
	SELECT 'operator ' || o.oid::pg_catalog.regoperator::text || ' proc=' || o.oprcode::text
		   || ' commutator=' || o.oprcom::pg_catalog.regoperator::text || ' negator=' || o.oprnegate::pg_catalog.regoperator::text
		   || ' restrict=' || o.oprrest::text || ' join=' || o.oprjoin::text || ' merges=' || o.oprcanmerge || ' hashes=' || o.oprcanhash
	  FROM member m JOIN pg_catalog.pg_operator o ON m.classid = 'pg_catalog.pg_operator'::pg_catalog.regclass AND o.oid = m.objid
	UNION ALL
	SELECT 'cast ' || c.castsource::pg_catalog.regtype::text || ' -> ' || c.casttarget::pg_catalog.regtype::text
		   || ' func=' || coalesce(nullif(c.castfunc, 0)::pg_catalog.regprocedure::text, '-') || ' context=' || c.castcontext::text
		   || ' method=' || c.castmethod::text
	  FROM member m JOIN pg_catalog.pg_cast c ON m.classid = 'pg_catalog.pg_cast'::pg_catalog.regclass AND c.oid = m.objid
	UNION ALL
	-- the tables pg_dump saves (pg_extension_config_dump) and their conditions
	SELECT 'config ' || x.rel::pg_catalog.regclass::text || ' ' || coalesce(x.cond, '')
	  FROM ext, ROWS FROM (pg_catalog.unnest(ext.extconfig), pg_catalog.unnest(ext.extcondition)) x(rel, cond)
	UNION ALL
	-- initial privileges, which pg_dump compares with the current ones
	SELECT 'initprivs ' || pg_catalog.pg_describe_object(ip.classoid, ip.objoid, ip.objsubid) || ' ' || ip.initprivs::text
	  FROM member m JOIN pg_catalog.pg_init_privs ip ON ip.classoid = m.classid AND ip.objoid = m.objid AND ip.privtype = 'e'
	UNION ALL
	-- default privileges set by the script, if any
	SELECT 'default_acl ' || coalesce(n.nspname, '-') || ' ' || da.defaclobjtype::text || ' ' || da.defaclacl::text
	  FROM pg_catalog.pg_default_acl da LEFT JOIN pg_catalog.pg_namespace n ON n.oid = da.defaclnamespace
	 WHERE n.nspname IN ('oms', 'oms_bi')
)
SELECT line FROM facts ORDER BY line COLLATE "C";
