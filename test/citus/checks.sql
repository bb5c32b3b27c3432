-- test/citus/checks.sql: functions of the Citus test (test/citus/test-citus.sh), in schema
-- citus_test of the coordinator. Not part of oms.

CREATE SCHEMA citus_test;

-- The node of a shard (its one placement).
CREATE FUNCTION citus_test.node_of_shard(p_shard bigint) RETURNS text
	LANGUAGE sql STABLE
	RETURN (SELECT n.nodename || ':' || n.nodeport FROM pg_dist_placement p
			  JOIN pg_dist_node n ON n.groupid = p.groupid WHERE p.shardid = p_shard);

-- Where each tenant's rows of each distributed table of oms are: one row per table, tenant and
-- node that holds some of them (read from the shards themselves).
CREATE FUNCTION citus_test.tenant_nodes()
	RETURNS TABLE (table_name text, tenant_id int, node text)
	LANGUAGE plpgsql
AS $$
DECLARE
	v_table	regclass;
BEGIN
	FOR v_table IN
		SELECT p.logicalrelid FROM pg_dist_partition p
		  JOIN pg_class c ON c.oid = p.logicalrelid
		 WHERE c.relnamespace = 'oms'::regnamespace AND p.partmethod = 'h'
		 ORDER BY 1
	LOOP
		RETURN QUERY
		SELECT c.relname::text, t::int, citus_test.node_of_shard(r.shardid)
		  FROM run_command_on_shards(v_table,
				 $q$SELECT coalesce(string_agg(DISTINCT tenant_id::text, ','), '') FROM %s$q$) r
		  JOIN pg_class c ON c.oid = v_table
		 CROSS JOIN LATERAL unnest(string_to_array(r.result, ',')) t
		 WHERE r.success AND t <> '';
	END LOOP;
END
$$;

-- The node that holds a tenant's shard group.
CREATE FUNCTION citus_test.node_of(p_tenant int) RETURNS text
	LANGUAGE sql STABLE
	RETURN citus_test.node_of_shard(get_shard_id_for_distribution_column('oms.orders', p_tenant));
