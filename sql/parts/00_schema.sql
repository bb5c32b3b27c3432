-- Schema oms is created by CREATE EXTENSION (oms.control: schema = oms). Every object below is
-- schema-qualified and every function pins its search_path, so that nothing a user created in
-- another schema can be picked up by name.

COMMENT ON SCHEMA oms IS 'oms: omnichannel order management (tables, API functions, state types)';
REVOKE ALL ON SCHEMA oms FROM PUBLIC;
