-- Access: which roles may act for which tenants, and which locations a store role works at.
--
-- oms.tenant says which tenant a session works for; it is a plain setting that anyone may SET.
-- The boundary is here: oms_tenant_id() (src/oms.c, behind oms.current_tenant_id(), every API
-- function, every column default and every tenant policy of row level security) refuses with
-- 42501 a tenant that the calling role may not act for. Superusers and members of oms_admin act
-- for every tenant; any other role needs a row below for itself or for a role whose privileges it
-- has (a grant to a group role covers its members).
--
-- The calling role is the outer user: the session user, or the role of a SET ROLE, whatever
-- SECURITY DEFINER function runs (the API functions run as their owner; the caller is who called
-- them). Roles are kept by name, as pg_dump writes them: a dump restored into another cluster
-- keeps its grants, and a dropped role's rows grant nothing (the check joins pg_roles).

CREATE TABLE oms.tenant_grants (
	role		name NOT NULL,
	tenant_id	int NOT NULL REFERENCES oms.tenants ON DELETE CASCADE,
	granted_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	granted_by	text NOT NULL DEFAULT oms._actor(),
	PRIMARY KEY (role, tenant_id)
);
CREATE INDEX tenant_grants_tenant_idx ON oms.tenant_grants (tenant_id);
COMMENT ON TABLE oms.tenant_grants IS 'Roles that may act for a tenant (set oms.tenant to it); superusers and oms_admin members act for all; managed by oms.grant_tenant and oms.revoke_tenant';

-- A store role (a member of oms_store) sees and acts on the rows of its own locations only.
CREATE TABLE oms.store_assignments (
	tenant_id	int NOT NULL DEFAULT oms.current_tenant_id(),
	role		name NOT NULL,
	location_id	int NOT NULL,
	assigned_at	timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, role, location_id),
	FOREIGN KEY (tenant_id, location_id) REFERENCES oms.locations ON DELETE CASCADE
);
COMMENT ON TABLE oms.store_assignments IS 'Locations a store role (member of oms_store) works at, per tenant; managed by oms.assign_store and oms.unassign_store';

CREATE FUNCTION oms._caller() RETURNS oid
	LANGUAGE c STABLE PARALLEL SAFE
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_caller_oid';
COMMENT ON FUNCTION oms._caller() IS 'Internal: the role that called oms: the session user or the role of a SET ROLE, never the owner of a SECURITY DEFINER function';

CREATE FUNCTION oms._check_role(p_role text) RETURNS name
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_role IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.rolname = p_role) THEN
		RAISE EXCEPTION 'unknown role "%"', oms._clip(p_role)
			USING ERRCODE = '42704',
				  HINT = 'Create the login role first (CREATE ROLE ... LOGIN IN ROLE oms_app, say).';
	END IF;
	RETURN p_role::name;
END
$$;
COMMENT ON FUNCTION oms._check_role(text) IS 'Internal: the role''s name; 42704 when no such role exists';

CREATE FUNCTION oms.grant_tenant(role text, tenant text) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_role	name := oms._check_role(grant_tenant.role);
	v_tenant int;
BEGIN
	SELECT t.id INTO v_tenant FROM oms.tenants t WHERE t.code = grant_tenant.tenant;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown tenant "%"', oms._clip(grant_tenant.tenant)
			USING ERRCODE = '22023', HINT = 'Create it with oms.create_tenant().';
	END IF;
	INSERT INTO oms.tenant_grants AS g (role, tenant_id) VALUES (v_role, v_tenant)
		ON CONFLICT DO NOTHING;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION oms.grant_tenant(text, text) IS 'Lets a role (and the roles that have its privileges) act for a tenant; true when granted now, false when it already was; unknown role 42704, unknown tenant 22023';

CREATE FUNCTION oms.revoke_tenant(role text, tenant text) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	DELETE FROM oms.tenant_grants g
	 USING oms.tenants t
	 WHERE g.tenant_id = t.id AND t.code = revoke_tenant.tenant AND g.role = revoke_tenant.role;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION oms.revoke_tenant(text, text) IS 'Takes back oms.grant_tenant; true when a grant was removed (a running transaction that already checked keeps it until it ends)';

CREATE FUNCTION oms.assign_store(role text, location text) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_role		name := oms._check_role(assign_store.role);
	v_tenant	int := oms.current_tenant_id();
BEGIN
	INSERT INTO oms.store_assignments AS a (tenant_id, role, location_id)
		VALUES (v_tenant, v_role, oms._location_id(v_tenant, assign_store.location))
		ON CONFLICT DO NOTHING;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION oms.assign_store(text, text) IS 'Assigns a location of the current tenant to a store role (member of oms_store): it then sees and acts on that location''s rows; true when assigned now';

CREATE FUNCTION oms.unassign_store(role text, location text) RETURNS boolean
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
DECLARE
	v_tenant	int := oms.current_tenant_id();
BEGIN
	DELETE FROM oms.store_assignments a
	 USING oms.locations l
	 WHERE a.tenant_id = v_tenant AND l.tenant_id = v_tenant AND a.location_id = l.id
	   AND l.code = unassign_store.location AND a.role = unassign_store.role;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION oms.unassign_store(text, text) IS 'Takes back oms.assign_store; true when an assignment was removed';

-- Is the caller limited to its store's locations? Members of oms_store that are neither superuser
-- nor members of oms_admin or oms_operator.
CREATE FUNCTION oms._store_limited() RETURNS boolean
	LANGUAGE sql STABLE
	SET search_path = oms, pg_catalog
	RETURN NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = oms._caller())
		AND pg_catalog.pg_has_role(oms._caller(), 'oms_store', 'USAGE')
		AND NOT pg_catalog.pg_has_role(oms._caller(), 'oms_admin', 'USAGE')
		AND NOT pg_catalog.pg_has_role(oms._caller(), 'oms_operator', 'USAGE');
COMMENT ON FUNCTION oms._store_limited() IS 'Internal: true when the caller is store staff only (member of oms_store, not superuser, oms_admin or oms_operator)';

-- (PL/pgSQL: on a Citus node, a call of an SQL-standard body function from the tenant forms fails
-- with a syntax error at "RETURN"; the store roles' calls check their location through this.)
CREATE FUNCTION oms._store_locations() RETURNS int[]
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

-- The explicit check of the API: the definer functions run as the owner, which row level security
-- does not limit.
CREATE FUNCTION oms._check_store_location(p_tenant int, p_location int) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF p_location IS NOT NULL AND oms._store_limited()
	   AND NOT p_location = ANY (oms._store_locations()) THEN
		RAISE EXCEPTION 'role "%" may not act at location "%"', pg_catalog.pg_get_userbyid(oms._caller()),
				(SELECT l.code FROM oms.locations l WHERE l.tenant_id = p_tenant AND l.id = p_location)
			USING ERRCODE = '42501',
				  DETAIL = 'Store staff act only at the locations assigned to them.',
				  HINT = 'An oms administrator assigns a location with oms.assign_store(role, location).';
	END IF;
END
$$;
COMMENT ON FUNCTION oms._check_store_location(int, int) IS 'Internal: 42501 when the caller is store staff and the location is not assigned to it';

-- Writes at a location (a shipment packed or shipped, a pickup made ready or collected, a stock
-- movement, a line released) check it, whichever API function makes them.
CREATE FUNCTION oms._store_guard() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = oms, pg_catalog
AS $$
BEGIN
	IF oms._store_limited() THEN
		PERFORM oms._check_store_location(NEW.tenant_id, NEW.location_id);
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION oms._store_guard() IS 'Internal: trigger refusing (42501) a store role''s write at a location not assigned to it';

-- Backends keep the last positive answer of the tenant check across transactions (src/oms.c);
-- any change of the grants drops it everywhere.
CREATE FUNCTION oms._tenant_grants_changed() RETURNS trigger
	LANGUAGE c
	SET search_path = oms, pg_catalog
	AS 'MODULE_PATHNAME', 'oms_tenant_grants_changed';
COMMENT ON FUNCTION oms._tenant_grants_changed() IS 'Internal: trigger invalidating every backend''s cached tenant grant after a change of oms.tenant_grants';
CREATE TRIGGER tenant_grants_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON oms.tenant_grants
	FOR EACH STATEMENT EXECUTE FUNCTION oms._tenant_grants_changed();
