-- Role of the sqlsmith runs (test/t/014_sqlsmith.pl, make sqlsmith): it may read and write every
-- table of oms and call every function, as a careless administrator might, but it is no
-- superuser, so it cannot call the server's own admin functions (pg_terminate_backend, lo_import...)
-- nor disable triggers. Each statement is cut off after 2 s. The database has the stress test's
-- data (tenant "stress") loaded by test/stress/stress.pl before this runs.
CREATE ROLE smith LOGIN;
GRANT USAGE ON SCHEMA oms TO smith;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA oms TO smith;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA oms TO smith;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA oms TO smith;
ALTER ROLE smith SET statement_timeout = '2s';
ALTER ROLE smith SET oms.tenant = 'stress';
ALTER ROLE smith SET search_path = oms, public;
