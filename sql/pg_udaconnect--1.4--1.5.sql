-- pg_udaconnect 1.4 -> 1.5 (ALTER EXTENSION pg_udaconnect UPDATE TO '1.5').
-- Keeps every row.  What changes (docs/upgrades.md):
--   * udaconnect.location becomes range-partitioned on creation_time
--     (issue 16): see the section "time partitions" below;
--   * the live path (issue 15): see the section "live path" below.
-- The shared library must be the 1.5 one (restart after installing the
-- package).
\echo Use "ALTER EXTENSION pg_udaconnect UPDATE TO '1.5'" to load this file. \quit

-- ===========================================================================
-- time partitions (issue 16)
-- ===========================================================================

-- (end of time partitions)

-- ===========================================================================
-- live path (issue 15)
-- ===========================================================================

-- (end of live path)
