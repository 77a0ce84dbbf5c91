-- udaconnect.backend_memory_keep (src/backend_memory.c): the freed heap
-- memory each server process keeps for its next statements.  With glibc's
-- defaults a statement that builds a few hundred kilobytes gives them back
-- to the kernel when it ends and faults them in again in the next one:
-- the sort below, repeated, costs ~85 minor page faults a call that way,
-- and next to none when the memory is kept (the default, 4 MB).  Without
-- shared_preload_libraries (25-extension's run) there is no such setting,
-- glibc's defaults stay and nothing is measured (nor /proc read, which
-- needs a superuser):
-- expected/backend_memory_1.out.
SELECT current_setting('udaconnect.backend_memory_keep', true) AS keep;
CREATE TEMP TABLE faults (at text, n bigint);
-- minflt: the field after the state and six more, after the command name
CREATE FUNCTION pg_temp.minflt() RETURNS bigint LANGUAGE sql AS $$
    SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/stat'),
                         '\) (?:\S+ ){7}(\d+)'))[1]::bigint $$;
CREATE FUNCTION pg_temp.sorts(k int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE i int; n bigint;
BEGIN
    FOR i IN 1..k LOOP
        EXECUTE 'SELECT count(*) FROM (SELECT g, md5(g::text) FROM generate_series(1, 3000) g ORDER BY 2) s' INTO n;
    END LOOP;
END $$;
SELECT pg_temp.sorts(2);
INSERT INTO faults SELECT 'before', pg_temp.minflt()
 WHERE current_setting('udaconnect.backend_memory_keep', true) IS NOT NULL;
SELECT pg_temp.sorts(20);
INSERT INTO faults SELECT 'after', pg_temp.minflt()
 WHERE current_setting('udaconnect.backend_memory_keep', true) IS NOT NULL;
SELECT CASE WHEN current_setting('udaconnect.backend_memory_keep', true) IS NOT NULL THEN
           ((SELECT n FROM faults WHERE at = 'after') - (SELECT n FROM faults WHERE at = 'before')) / 20 < 10
       END AS memory_kept_between_statements;
