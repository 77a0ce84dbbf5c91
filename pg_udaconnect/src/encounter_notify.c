/*
 * encounter_notify.c — what the live encounter streams are told when
 * encounters change (docs/encounters.md, "Live"; the gateways read it with
 * gateway/common/encnotify.c).
 *
 * NOTIFY udaconnect_encounter, once or more per version a writer takes:
 *
 *     v<version>.<part>/<parts>:<entry>,<entry>,...
 *
 * where an entry is "<id>.<person_a>.<person_b>" for an encounter written
 * at that version and "-<id>.<person_a>.<person_b>" for one removed at it
 * (logged in encounter_removed for both persons), ascending by id; the
 * entries of one version are split into parts 1..parts of at most
 * ENC_NOTIFY_BYTES each, sent in that order.  Every version taken is
 * announced, even one that changed nothing ("v<version>.1/1:"): with
 * versions dense in commit order (encounter_clock), a gateway that heard
 * every part of every version since it started listening knows it missed
 * nothing, and that a version it did not hear means it must read again.
 * NOTIFY udaconnect_encounter_person keeps naming the persons (the channel
 * of the 1.4 gateways, which read their changes there).
 *
 * This file only formats and sends; the writers (encounter_write.c, and
 * encounter_remove() through encounter_notify_removed()) decide what
 * changed.  It must not take a version nor read a table.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"

#include "encounter_int.h"

/*
 * Bytes of entries per payload: a payload must stay under 8000 bytes
 * (NOTIFY's limit, BLCKSZ - NAMEDATALEN - 128) with its head, at most 43.
 */
#define ENC_NOTIFY_BYTES 7800

static int
notice_cmp(const void *a, const void *b)
{
	const EncNotice *x = a;
	const EncNotice *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return (int) x->removed - (int) y->removed;
}

/*
 * NOTIFY udaconnect_encounter: version's entries (sorted here), in as many
 * parts as they need, at least one.
 */
void
enc_notify_version(int64 version, EncNotice *notes, int n)
{
	List	   *parts = NIL;
	StringInfoData buf;
	char		entry[64];
	int			k = 0;
	ListCell   *lc;

	qsort(notes, n, sizeof(EncNotice), notice_cmp);
	initStringInfo(&buf);
	for (int i = 0; i < n; i++)
	{
		int			len = snprintf(entry, sizeof(entry), "%s" INT64_FORMAT ".%d.%d",
								   notes[i].removed ? "-" : "", notes[i].id,
								   notes[i].person_a, notes[i].person_b);

		if (buf.len > 0 && buf.len + 1 + len > ENC_NOTIFY_BYTES)
		{
			parts = lappend(parts, buf.data);
			initStringInfo(&buf);
		}
		if (buf.len > 0)
			appendStringInfoChar(&buf, ',');
		appendBinaryStringInfo(&buf, entry, len);
	}
	parts = lappend(parts, buf.data);
	foreach(lc, parts)
	{
		char	   *payload = psprintf("v" INT64_FORMAT ".%d/%d:%s", version, ++k,
									   list_length(parts), (char *) lfirst(lc));

		Async_Notify("udaconnect_encounter", payload);
		pfree(payload);
	}
	list_free_deep(parts);
}

/*
 * NOTIFY udaconnect_encounter_person with the persons whose encounters
 * changed or went: distinct, ascending, comma-separated, 700 a payload.
 * Sorts persons; returns how many distinct persons were named.  The SQL
 * udaconnect.encounter_notify_persons() is this function.
 */
int
enc_notify_persons(int32 *persons, int n)
{
	StringInfoData buf;
	int			named = 0;

	qsort(persons, n, sizeof(int32), enc_cmp_int32);
	initStringInfo(&buf);
	for (int i = 0; i < n; i++)
	{
		if (i > 0 && persons[i] == persons[i - 1])
			continue;
		if (buf.len > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfo(&buf, "%d", persons[i]);
		if (++named % 700 == 0)
		{
			Async_Notify("udaconnect_encounter_person", buf.data);
			resetStringInfo(&buf);
		}
	}
	if (buf.len > 0)
		Async_Notify("udaconnect_encounter_person", buf.data);
	return named;
}

/* The elements of a one-dimensional int4[] or int8[] without NULLs. */
static int
arg_elems(ArrayType *arr, Oid type, const char *what, Datum **out)
{
	int			n;
	bool	   *nulls;

	if (ARR_ELEMTYPE(arr) != type || ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a one-dimensional %s array", what,
						type == INT8OID ? "bigint" : "integer")));
	if (type == INT8OID)
		deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, out, &nulls, &n);
	else
		deconstruct_array(arr, INT4OID, 4, true, TYPALIGN_INT, out, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not hold NULL", what)));
	return n;
}

/*
 * encounter_notify_removed(version, ids, persons_a, persons_b) -> integer:
 * what encounter_remove() tells the streams: the version (announced even
 * when ids is NULL or empty), the removed encounters with their persons,
 * and the persons on udaconnect_encounter_person.  Returns how many
 * distinct persons were named.
 */
PG_FUNCTION_INFO_V1(udc_encounter_notify_removed);
Datum
udc_encounter_notify_removed(PG_FUNCTION_ARGS)
{
	Datum	   *ids = NULL,
			   *pa = NULL,
			   *pb = NULL;
	int			n = 0;
	EncNotice  *notes;
	int32	   *persons;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the version to announce must not be null")));
	if (!PG_ARGISNULL(1))
	{
		n = arg_elems(PG_GETARG_ARRAYTYPE_P(1), INT8OID, "ids", &ids);
		if (PG_ARGISNULL(2) || PG_ARGISNULL(3) ||
			arg_elems(PG_GETARG_ARRAYTYPE_P(2), INT4OID, "persons_a", &pa) != n ||
			arg_elems(PG_GETARG_ARRAYTYPE_P(3), INT4OID, "persons_b", &pb) != n)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("ids, persons_a and persons_b must have the same length")));
	}
	notes = palloc(sizeof(EncNotice) * Max(n, 1));
	persons = palloc(sizeof(int32) * 2 * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		notes[i].id = DatumGetInt64(ids[i]);
		notes[i].person_a = persons[2 * i] = DatumGetInt32(pa[i]);
		notes[i].person_b = persons[2 * i + 1] = DatumGetInt32(pb[i]);
		notes[i].removed = true;
	}
	enc_notify_version(PG_GETARG_INT64(0), notes, n);
	PG_RETURN_INT32(enc_notify_persons(persons, 2 * n));
}
