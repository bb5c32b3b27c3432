-- oms 0.1.0 -> 0.2.0 (ALTER EXTENSION oms UPDATE). Every change to sql/parts since 0.1.0 appears
-- here too, so that an upgraded database equals a fresh install of 0.2.0: test/t/050_upgrade.pl
-- compares the two object by object and lists what this script lacks. Objects are schema-
-- qualified; CREATE OR REPLACE only replaces objects of the extension (PostgreSQL refuses others).
\echo Use "ALTER EXTENSION oms UPDATE TO '0.2.0'" to load this file. \quit
