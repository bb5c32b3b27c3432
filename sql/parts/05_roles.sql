-- Roles.
--
-- oms creates the group roles that its privileges are granted to (NOLOGIN: an administrator grants
-- them to login roles). Roles belong to the cluster, not to a database: a second database that
-- installs oms finds them already there and uses them. A role of the same name that can log in, or
-- is a superuser, was not made by oms: granting it our privileges would hand them to whoever owns
-- it, so the install stops instead.
--
--   oms_admin       everything: configuration, every API function, direct table writes
--   oms_operator    order operations and stock adjustments, through the API
--   oms_store       store staff: orders, lines and stock of the locations it is assigned to
--   oms_app         channels: promise, place, cancel, holds, self-service; no direct table writes
--   oms_reader      BI: the views of schema oms_bi, customer contact data masked
--   oms_storefront  a storefront's "where is my order" and self-service returns, nothing else

DO $$
DECLARE
	v_role		text;
	v_comment	text;
	v_login		boolean;
	v_super		boolean;
BEGIN
	FOR v_role, v_comment IN
		VALUES ('oms_admin', 'oms: administers everything oms holds'),
			   ('oms_operator', 'oms: operates orders and stock through the API'),
			   ('oms_store', 'oms: store staff, limited to the locations assigned to it'),
			   ('oms_app', 'oms: sales channels (promise, place, cancel, holds) through the API'),
			   ('oms_reader', 'oms: read-only BI access to schema oms_bi, contact data masked'),
			   ('oms_storefront', 'oms: customer self-service functions only')
	LOOP
		SELECT r.rolcanlogin, r.rolsuper INTO v_login, v_super
		  FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) v_role;
		IF NOT FOUND THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', v_role);
			EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L', v_role, v_comment);
		ELSIF v_login OR v_super THEN
			RAISE EXCEPTION 'role "%" already exists and can log in or is a superuser', v_role
				USING ERRCODE = '42710',
					  DETAIL = 'oms grants its privileges to a group role of that name; a login role would receive them directly.',
					  HINT = 'Rename or drop that role (or make it NOLOGIN NOSUPERUSER), then create the extension again.';
		END IF;
	END LOOP;
END
$$;
