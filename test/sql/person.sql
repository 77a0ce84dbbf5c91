-- create_person: validation and results.
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE q; RETURN 'no error';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;

SELECT first_name, last_name, company_name FROM udaconnect.create_person('Ada', 'Lovelace', 'Analytical Engines');
-- names are trimmed
SELECT first_name, last_name, company_name FROM udaconnect.create_person('  Grace ', E'\tHopper', 'Navy  ');
-- 200 characters is fine, 201 is not
SELECT length(first_name) FROM udaconnect.create_person(repeat('x', 200), 'L', 'C');
SELECT pg_temp.err($$SELECT udaconnect.create_person(repeat('x', 201), 'L', 'C')$$);
-- empty or blank
SELECT pg_temp.err($$SELECT udaconnect.create_person('', 'L', 'C')$$);
SELECT pg_temp.err($$SELECT udaconnect.create_person('F', '   ', 'C')$$);
SELECT pg_temp.err($$SELECT udaconnect.create_person('F', 'L', '')$$);
-- NULLs name the argument
SELECT pg_temp.err($$SELECT udaconnect.create_person(NULL, 'L', 'C')$$);
SELECT pg_temp.err($$SELECT udaconnect.create_person('F', NULL, 'C')$$);
SELECT pg_temp.err($$SELECT udaconnect.create_person('F', 'L', NULL)$$);
-- the table refuses untrimmed names written directly
SELECT pg_temp.err($$INSERT INTO udaconnect.person (first_name, last_name, company_name) VALUES (' a', 'b', 'c')$$);
-- ids are assigned
SELECT count(DISTINCT id) = count(*) AS ids_unique FROM udaconnect.person;
