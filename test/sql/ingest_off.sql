-- Run only on a server without shared_preload_libraries (25-extension):
-- the module was loaded on first use, the SQL API works (the other files),
-- and every entry of the ingest says it is off instead of failing.
SELECT count(*) AS partitions FROM udaconnect.ingest_status;
SELECT udaconnect.ingest_pause() AS was_running;
SELECT udaconnect.ingest_resume() AS was_paused;
SELECT udaconnect.ingest_check_loaded() AS ingest_running;
-- the settings that may change at run time are there; the ones fixed at
-- server start are not defined (as pg_stat_statements does)
SELECT name, setting FROM pg_settings WHERE name LIKE 'udaconnect.%' ORDER BY name;
