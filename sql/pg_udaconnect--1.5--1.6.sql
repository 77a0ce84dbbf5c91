-- pg_udaconnect 1.5 -> 1.6 (ALTER EXTENSION pg_udaconnect UPDATE TO '1.6').
-- Keeps every row.  What changes (docs/upgrades.md): see the sections below.
-- The shared library must be the 1.6 one (restart after installing the
-- package).
\echo Use "ALTER EXTENSION pg_udaconnect UPDATE TO '1.6'" to load this file. \quit
