-- Everything that makes up the installed pg_udaconnect, one line per object,
-- in a stable order: a database updated from an older version must print the
-- same lines as a fresh install of the current one (test/suites/25-extension.sh).
-- Roles are the cluster's, shared by both databases: not compared here.
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'pg_udaconnect'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
)
SELECT 'function ' || p.oid::regprocedure::text || ' ' || md5(pg_get_functiondef(p.oid))
       || ' acl=' || coalesce(p.proacl::text, 'default')
  FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
UNION ALL
SELECT 'relation ' || c.oid::regclass::text || ' kind=' || c.relkind::text
       || ' acl=' || coalesce(c.relacl::text, 'default')
       || ' columns=' || coalesce((SELECT string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod)
                                                    || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                                                    || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), ''),
                                                    ', ' ORDER BY a.attnum)
                                     FROM pg_attribute a
                                     LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
       || ' identity/generated/acl=' || coalesce((SELECT string_agg(a.attname || ':' || a.attidentity::text || a.attgenerated::text
                                                                  || coalesce(a.attacl::text, ''), ', ' ORDER BY a.attnum)
                                                    FROM pg_attribute a
                                                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
       || CASE WHEN c.relkind = 'v' THEN ' view=' || md5(pg_get_viewdef(c.oid)) ELSE '' END
  FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = i.indrelid
UNION ALL
SELECT 'constraint ' || co.conrelid::regclass::text || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
  FROM pg_constraint co JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = co.conrelid
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = t.tgrelid
 WHERE NOT t.tgisinternal
UNION ALL
SELECT 'config ' || c.oid::regclass::text || ' ' || coalesce(cfg.cond, '')
  FROM pg_extension e, ext, unnest(e.extconfig, e.extcondition) AS cfg(reloid, cond)
  JOIN pg_class c ON c.oid = cfg.reloid
 WHERE e.oid = ext.oid
UNION ALL
SELECT 'sequence ' || sq.seqrelid::regclass::text || ' ' || sq.seqtypid::regtype::text || ' ' || sq.seqincrement
       || ' ' || sq.seqmin || ' ' || sq.seqmax || ' ' || sq.seqcache || ' ' || sq.seqcycle::text
  FROM pg_sequence sq JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = sq.seqrelid
UNION ALL
SELECT 'schema ' || n.nspname || ' acl=' || coalesce(n.nspacl::text, 'default')
  FROM pg_namespace n WHERE n.nspname = 'udaconnect'
UNION ALL
SELECT 'comment ' || d.objoid::regclass::text || ' ' || d.objsubid || ' ' || md5(d.description)
  FROM pg_description d JOIN members m ON m.classid = d.classoid AND m.objid = d.objoid
 WHERE d.classoid = 'pg_class'::regclass
ORDER BY 1;
