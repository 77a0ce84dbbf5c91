/*
 * retention.c — the settings of privacy that live in C: attendee search
 * width and window, how far back an attendee may report, location
 * retention and its worker's pace (udaconnect.retention_naptime,
 * udaconnect.retention_batch).  The worker that applies them is
 * maintenance.c's; how old rows go is 40-privacy.sql's.  This file must not
 * grow a rule of its own beyond what a setting's check hook refuses.
 */
#include "postgres.h"

#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "retention.h"

double		udc_attendee_max_distance = 10.0;
int			udc_attendee_max_window = 300;
int			udc_attendee_max_report_age = 3600;
char	   *udc_location_retention = NULL;
int			udc_retention_naptime = 60;
int			udc_retention_batch = 10000;

/*
 * Parse s as an interval without raising an error (a check hook must not):
 * the same steps as interval_in.  False when it is not one.  Also the
 * partition width's check hook (partitions.c) parses with it.
 */
bool
udc_parse_interval(const char *s, Interval *result)
{
	char		workbuf[256];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype = 0;
	int			dterr;
	struct pg_itm_in itm_in;

	memset(&itm_in, 0, sizeof(itm_in));
	dterr = ParseDateTime(s, workbuf, sizeof(workbuf), field, ftype, MAXDATEFIELDS, &nf);
	if (dterr == 0)
		dterr = DecodeInterval(field, ftype, nf, INTERVAL_FULL_RANGE, &dtype, &itm_in);
	if (dterr == DTERR_BAD_FORMAT)
	{
		char	   *copy = pstrdup(s);

		memset(&itm_in, 0, sizeof(itm_in));
		dterr = DecodeISO8601Interval(copy, &dtype, &itm_in);
		pfree(copy);
	}
	if (dterr != 0 || dtype != DTK_DELTA)
		return false;
	return itmin2interval(&itm_in, result) == 0;
}

static bool
check_location_retention(char **newval, void **extra, GucSource source)
{
	Interval	iv;
	double		span;

	if (*newval == NULL || **newval == '\0')
		return true;
	if (!udc_parse_interval(*newval, &iv))
	{
		GUC_check_errdetail("\"%s\" is not an interval.", *newval);
		GUC_check_errhint("Give an interval such as '30 days' or '12 hours', or '' to keep locations forever.");
		return false;
	}
	/* the sign as interval comparison sees it: a month is 30 days */
	span = (double) iv.time + ((double) iv.day + (double) iv.month * DAYS_PER_MONTH) * (double) USECS_PER_DAY;
	if (span < 0)
	{
		GUC_check_errdetail("The retention \"%s\" is negative: it would remove locations from the future.", *newval);
		GUC_check_errhint("Give a positive interval such as '30 days', or '' to keep locations forever.");
		return false;
	}

	/*
	 * '0' would remove every location at the next sweep: whoever writes it
	 * most likely means "off", which is ''.  Past a century, now() minus it
	 * approaches the start of timestamptz's range.
	 */
	if (span < (double) USECS_PER_HOUR || span > 36525.0 * USECS_PER_DAY)
	{
		GUC_check_errdetail("The retention \"%s\" is outside 1 hour .. 100 years.", *newval);
		GUC_check_errhint("Give an interval such as '30 days', or '' (not '0') to keep locations forever.");
		return false;
	}
	return true;
}

static bool
check_attendee_max_distance(double *newval, void **extra, GucSource source)
{
	if (*newval > 0)
		return true;
	GUC_check_errdetail("udaconnect.attendee_max_distance must be greater than 0 metres, got %g.", *newval);
	return false;
}

void
udc_retention_init(void)
{
	DefineCustomRealVariable("udaconnect.attendee_max_distance",
							 "The widest connection search an attendee may make, in metres.",
							 "Wider, a connection search would show an attendee everyone in the hall.  "
							 "Organizers are not limited.",
							 &udc_attendee_max_distance, 10.0, 0.0, 2e7, PGC_SUSET, 0,
							 check_attendee_max_distance, NULL, NULL);
	DefineCustomIntVariable("udaconnect.attendee_max_window",
							"The longest time window of an attendee's connection search.",
							"Without one, a search would show where others were at any time "
							"of the day near the attendee's points.  Organizers are not limited.",
							&udc_attendee_max_window, 300, 1, 86400, PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("udaconnect.attendee_max_report_age",
							"How far back an attendee may report their own locations.",
							"Older, a forged point would let their connection search show who was "
							"at that place and time.  Organizers are not limited.  udaconnect-grpcd's "
							"--attendee-max-report-age must equal it.",
							&udc_attendee_max_report_age, 3600, 60, 604800, PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomStringVariable("udaconnect.location_retention",
							   "How long locations and ingest rejects are kept (an interval); empty keeps them forever.",
							   "The retention worker removes older ones in batches of udaconnect.retention_batch.",
							   &udc_location_retention, "", PGC_SIGHUP, 0,
							   check_location_retention, NULL, NULL);
	DefineCustomIntVariable("udaconnect.retention_naptime",
							"Time between two retention sweeps.",
							NULL, &udc_retention_naptime, 60, 1, 86400, PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("udaconnect.retention_batch",
							"Maximum number of locations (and of rejects) one retention transaction removes.",
							NULL, &udc_retention_batch, 10000, 1, 1000000, PGC_SIGHUP, 0,
							NULL, NULL, NULL);
}
