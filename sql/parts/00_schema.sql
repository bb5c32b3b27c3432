-- Schema oms is created by CREATE EXTENSION (oms.control: schema = oms). Every object below is
-- schema-qualified and every function pins its search_path, so that nothing a user created in
-- another schema can be picked up by name.

-- The schema must be ours. CREATE EXTENSION takes an existing schema "oms" as it finds it, and
-- every function of oms looks names up there first (search_path = oms, pg_catalog): a schema that
-- someone else owns, or may create objects in, could plant a function or operator named like a
-- built-in that oms would then run with its caller's rights (the lesson of CVE-2022-2625). So oms
-- installs only into a schema it creates, or an empty one of the installing role that nobody
-- else has rights on. (Everything here is qualified: this block runs with oms in search_path.)
DO $$
DECLARE
	v_schema	oid;
	v_owner		oid;
	v_acl		aclitem[];
	v_problem	text;
BEGIN
	SELECT n.oid, n.nspowner, n.nspacl INTO v_schema, v_owner, v_acl
	  FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) 'oms';
	IF v_owner OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles r
										 WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
		v_problem := pg_catalog.format('it belongs to role %s, not to %s, who installs oms',
									   pg_catalog.quote_ident(v_owner::pg_catalog.regrole::pg_catalog.text), CURRENT_USER);
	ELSIF EXISTS (SELECT FROM pg_catalog.aclexplode(v_acl) a WHERE a.grantee OPERATOR(pg_catalog.<>) v_owner) THEN
		v_problem := 'other roles have privileges on it';
	ELSIF EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.relnamespace OPERATOR(pg_catalog.=) v_schema)
		  OR EXISTS (SELECT FROM pg_catalog.pg_proc p WHERE p.pronamespace OPERATOR(pg_catalog.=) v_schema)
		  OR EXISTS (SELECT FROM pg_catalog.pg_type t WHERE t.typnamespace OPERATOR(pg_catalog.=) v_schema)
		  OR EXISTS (SELECT FROM pg_catalog.pg_operator o WHERE o.oprnamespace OPERATOR(pg_catalog.=) v_schema)
		  OR EXISTS (SELECT FROM pg_catalog.pg_collation c WHERE c.collnamespace OPERATOR(pg_catalog.=) v_schema)
		  OR EXISTS (SELECT FROM pg_catalog.pg_conversion c WHERE c.connamespace OPERATOR(pg_catalog.=) v_schema)
		  OR EXISTS (SELECT FROM pg_catalog.pg_opfamily f WHERE f.opfnamespace OPERATOR(pg_catalog.=) v_schema) THEN
		v_problem := 'it is not empty';
	END IF;
	IF v_problem IS NOT NULL THEN
		RAISE EXCEPTION 'schema "oms" already exists and is not safe to install into: %', v_problem
			USING ERRCODE = '42P06',
			      HINT = 'Drop or rename that schema; CREATE EXTENSION oms then creates its own.';
	END IF;
END
$$;

COMMENT ON SCHEMA oms IS 'oms: omnichannel order management (tables, API functions, state types)';
REVOKE ALL ON SCHEMA oms FROM PUBLIC;
