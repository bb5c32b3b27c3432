-- The install script's promises, checked on the catalogue: every object documented, every function
-- that runs SQL pins its search_path, nothing granted to PUBLIC but the state types' pure functions.

-- Tables, views and functions of schema oms without a comment (none).
SELECT c.relname AS undocumented_relation
  FROM pg_class c
 WHERE c.relnamespace = 'oms'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p')
   AND obj_description(c.oid, 'pg_class') IS NULL
 ORDER BY 1;
SELECT p.oid::regprocedure AS undocumented_function
  FROM pg_proc p
 WHERE p.pronamespace = 'oms'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
 ORDER BY 1;
SELECT t.typname AS undocumented_type
  FROM pg_type t
 WHERE t.typnamespace = 'oms'::regnamespace AND t.typtype = 'b' AND t.typname NOT LIKE '\_%'
   AND obj_description(t.oid, 'pg_type') IS NULL;

-- Functions without a pinned search_path (none but C functions that run no SQL: oms.atp and the state types'
-- support functions, whose SET clause would cost every comparison a settings save and restore; and
-- the procedure oms.run_job, which commits and so cannot have a SET clause).
SELECT p.oid::regprocedure AS unpinned_function, l.lanname
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'oms'::regnamespace
   AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
   AND p.prokind <> 'a'
   AND NOT (p.prokind = 'p' AND p.proname = 'run_job')
   AND NOT (l.lanname = 'c' AND p.prosrc ~ '^oms_((order|line)_state_|rollup_|atp$)')
 ORDER BY 1;

-- What PUBLIC may execute: only pure functions of the state types.
SELECT p.oid::regprocedure AS public_function
  FROM pg_proc p
 WHERE p.pronamespace = 'oms'::regnamespace
   AND has_function_privilege('public', p.oid, 'EXECUTE')
   AND p.proname !~ '^(order|line)_state_' AND p.proname NOT IN ('transition', 'is_legal', 'legal_moves', 'rollup', 'state_rank', 'state_code')
 ORDER BY 1;
SELECT c.relname AS public_relation
  FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
 WHERE c.relnamespace = 'oms'::regnamespace AND a.grantee = 0
 ORDER BY 1;
SELECT has_schema_privilege('public', 'oms', 'USAGE') AS public_has_usage;

-- User tables are in pg_dump's list of extension data.
SELECT c.relname AS not_dumped
  FROM pg_class c
 WHERE c.relnamespace = 'oms'::regnamespace AND c.relkind = 'r'
   AND c.oid <> ALL ((SELECT extconfig FROM pg_extension WHERE extname = 'oms')::oid[])
 ORDER BY 1;
