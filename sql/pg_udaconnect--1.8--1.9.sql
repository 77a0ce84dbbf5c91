-- pg_udaconnect 1.8 -> 1.9 (ALTER EXTENSION pg_udaconnect UPDATE TO '1.9').
-- No SQL object changes: 1.9 is the library's version (docs/upgrades.md).
-- The 1.9 library remembers the partitions the connection finder has
-- checked (src/finder_memo.c) and keeps freed heap memory between
-- statements (the setting udaconnect.backend_memory_keep,
-- src/backend_memory.c); a restart brings both.
\echo Use "ALTER EXTENSION pg_udaconnect UPDATE TO '1.9'" to load this file. \quit
