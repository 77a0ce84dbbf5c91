/*
 * params.c: the parameters of a request, checked (udaconnect-httpd): query
 * parameters (each at most once), the dates, the path's id, and the fields
 * of a JSON body read by a table (read_fields()).
 *
 * Each check either gives the value or queues the 400 that names the
 * offending parameter, with a message saying what was expected.  This file
 * knows no route: the handlers (api.c) say which parameters they take, and
 * it must not run statements.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"

#define MAX_COUNTED_ARGS 16

const char *
arg(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

/* A query parameter given twice (?limit=5&limit=7) is ambiguous: 400 naming
 * it, rather than silently using one of the values. */
typedef struct argcount
{
	const char *const *names;
	int			counts[MAX_COUNTED_ARGS];
	const char *dup;
} argcount;

static enum MHD_Result
count_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	argcount   *a = cls;

	(void) kind;
	(void) value;
	for (int i = 0; i < MAX_COUNTED_ARGS && a->names[i]; i++)
		if (key && strcmp(key, a->names[i]) == 0 && ++a->counts[i] == 2 && !a->dup)
			a->dup = a->names[i];
	return MHD_YES;
}

int
unique_args(struct MHD_Connection *c, struct request *r, const char *const *names,
			enum MHD_Result *ret)
{
	argcount	a = {.names = names};

	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, count_arg, &a);
	if (a.dup)
	{
		*ret = bad_param(c, r, a.dup, "%s is given more than once", a.dup);
		return -1;
	}
	return 0;
}

/* The date parameter `name` is there (value v): 0, or -1 with the 400. */
static int
date_given(struct MHD_Connection *c, struct request *r, const char *name,
		   const char *v, enum MHD_Result *ret)
{
	if (v)
		return 0;
	*ret = bad_param(c, r, name, "%s is required (YYYY-MM-DD)", name);
	return -1;
}

/* The date parameter `name`, if given, is a date: 0, or -1 with the 400. */
static int
date_valid(struct MHD_Connection *c, struct request *r, const char *name,
		   const char *v, enum MHD_Result *ret)
{
	char		b[64];

	if (!v || valid_date(v))
		return 0;
	*ret = bad_param(c, r, name, "%s must be a date as YYYY-MM-DD, not \"%s\"",
					 name, shown(v, b, sizeof(b)));
	return -1;
}

int
check_dates(struct MHD_Connection *c, struct request *r, bool required,
			const char **start, const char **end, enum MHD_Result *ret)
{
	*start = arg(c, "start_date");
	*end = arg(c, "end_date");
	if (required && (date_given(c, r, "start_date", *start, ret) < 0 ||
					 date_given(c, r, "end_date", *end, ret) < 0))
		return -1;
	if (date_valid(c, r, "start_date", *start, ret) < 0 ||
		date_valid(c, r, "end_date", *end, ret) < 0)
		return -1;
	if (*start && *end && strcmp(*start, *end) > 0)
	{
		*ret = bad_param(c, r, "start_date", "start_date must not be after end_date");
		return -1;
	}
	return 0;
}

/* The path's id: an integer; anything else is a 400 naming "id". */
int
path_id(struct MHD_Connection *c, struct request *r, long long max, long long *id,
		enum MHD_Result *ret)
{
	char		b[64];
	int			e = parse_int64(r->id_str, LLONG_MIN, LLONG_MAX, id);

	if (e == -1)
	{
		*ret = bad_param(c, r, "id", "id must be an integer, not \"%s\"",
						 shown(r->id_str, b, sizeof(b)));
		return -1;
	}
	if (e == -2 || *id > max || *id < -max)
	{
		*ret = bad_param(c, r, "id", "id %s is out of range", shown(r->id_str, b, sizeof(b)));
		return -1;
	}
	return 0;
}

/* The body as a JSON object, or NULL with the 400 queued in *ret. */
static json_t *
parse_body(struct MHD_Connection *c, struct request *r, enum MHD_Result *ret)
{
	json_error_t err;
	char		msg[300];
	json_t	   *doc;

	if (r->body_len == 0)
	{
		*ret = send_error(c, r, 400, "invalid_json",
						  "the request body is empty; send a JSON object", NULL);
		return NULL;
	}
	doc = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &err);
	if (!doc)
	{
		snprintf(msg, sizeof(msg), "malformed JSON at line %d, column %d: %s",
				 err.line, err.column, err.text);
		*ret = send_error(c, r, 400, "invalid_json", msg, NULL);
		return NULL;
	}
	if (!json_is_object(doc))
	{
		json_decref(doc);
		*ret = send_error(c, r, 400, "invalid_json", "the request body must be a JSON object",
						  NULL);
		return NULL;
	}
	return doc;
}

static bool
type_ok(const json_t *v, enum field_type type)
{
	switch (type)
	{
		case F_STRING:
			return json_is_string(v);
		case F_INTEGER:
			return json_is_integer(v);
		case F_NUMBER:
			return json_is_number(v);
		case F_ARRAY:
			return json_is_array(v);
	}
	return false;
}

/*
 * What is wrong with field f's value v (NULL if absent): false with the 400's
 * code and message, true if it is fine.  An absent optional field is fine.
 */
static bool
field_ok(const struct body_field *f, const json_t *v, const char **code,
		 char *msg, size_t msglen)
{
	if (!v || json_is_null(v))
	{
		*code = "missing_field";
		snprintf(msg, msglen, "%s is required", f->name);
		return !f->required;
	}
	*code = "invalid_type";
	if (!type_ok(v, f->type))
	{
		snprintf(msg, msglen, "%s must be %s", f->name, f->type_desc);
		return false;
	}
	if (f->type == F_INTEGER &&
		(json_integer_value(v) < INT_MIN || json_integer_value(v) > INT_MAX))
	{
		*code = "invalid_parameter";
		snprintf(msg, msglen, "%s is out of range", f->name);
		return false;
	}
	return true;
}

/*
 * An array field's value as its compact JSON text, which replaces the value
 * in the document (so it lives as long as the document); NULL when out of
 * memory.
 */
static const char *
array_text(json_t *doc, const char *name, const json_t *v)
{
	char	   *t = json_dumps(v, JSON_COMPACT);
	json_t	   *s = t ? json_string(t) : NULL;

	free(t);
	if (!s || json_object_set_new(doc, name, s) < 0)
		return NULL;
	return json_string_value(s);
}

/*
 * The body's fields as the SQL call's text parameters, checked in the
 * table's order (the first bad one is the answer).  vals[i] points into the
 * returned document (free it after the call) or into text[i]; NULL for an
 * absent optional field.  An array (F_ARRAY) is passed on as its JSON text,
 * for the SQL function to read.
 */
json_t *
read_fields(struct MHD_Connection *c, struct request *r, const struct body_field *f,
			int n, const char **vals, char (*text)[FIELD_TEXT_MAX], enum MHD_Result *ret)
{
	json_t	   *doc = parse_body(c, r, ret);
	json_t	   *v;
	const char *code;
	char		msg[120];

	if (!doc)
		return NULL;
	for (int i = 0; i < n; i++)
	{
		v = json_object_get(doc, f[i].name);
		vals[i] = NULL;
		if (!field_ok(&f[i], v, &code, msg, sizeof(msg)))
		{
			json_decref(doc);
			*ret = send_error(c, r, 400, code, msg, f[i].name);
			return NULL;
		}
		if (!v || json_is_null(v))
			continue;
		if (f[i].type == F_STRING)
		{
			vals[i] = json_string_value(v);
			continue;
		}
		if (f[i].type == F_ARRAY)
		{
			if (!(vals[i] = array_text(doc, f[i].name, v)))
			{
				json_decref(doc);
				*ret = MHD_NO;	/* out of memory */
				return NULL;
			}
			continue;
		}
		if (f[i].type == F_INTEGER)
			snprintf(text[i], FIELD_TEXT_MAX, "%lld", (long long) json_integer_value(v));
		else
			snprintf(text[i], FIELD_TEXT_MAX, "%.17g", json_number_value(v));
		vals[i] = text[i];
	}
	return doc;
}
