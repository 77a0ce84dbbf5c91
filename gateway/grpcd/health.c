/*
 * health.c — grpc.health.v1.Health/Check for udaconnect-grpcd.
 *
 * What this file holds: the services a check may name and what each one's
 * status depends on: the ingest services (and "") on a usable Kafka
 * producer, udaconnect.v1.ConnectionService on a configured database; all
 * of them are NOT_SERVING once SIGTERM arrived.
 *
 * What it must not do: wait for anything (no broker round trip, no query):
 * a check is answered at once on the worker thread, also while the broker
 * is down and the producer queues are full.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "grpcd.h"
#include "grpc/health/v1/health.pb-c.h"

void
handle_health(call *c, grpc_byte_buffer *payload)
{
	Grpc__Health__V1__HealthCheckRequest *req = NULL;
	Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	const char *svc = "";
	static const char *const known[] = {
		"", "udaconnect.v1.LocationService", "udaconnect.v1.ConnectionService",
		"LocationService", "grpc.health.v1.Health", NULL
	};
	bool		found = false;
	bool		serving;

	/* no message at all is the empty request: the server as a whole */
	if (payload != NULL)
	{
		req = (Grpc__Health__V1__HealthCheckRequest *)
			request_unpack(c, payload, &grpc__health__v1__health_check_request__descriptor, NULL, true);
		if (req == NULL)
			return;
		svc = req->service;
	}
	for (int i = 0; known[i]; i++)
		if (strcmp(svc, known[i]) == 0)
			found = true;
	if (!found)
	{
		call_fail(c, GRPC_STATUS_NOT_FOUND, "unknown service \"%.200s\"", svc);
		if (req)
			grpc__health__v1__health_check_request__free_unpacked(req, NULL);
		return;
	}
	if (strcmp(svc, "udaconnect.v1.ConnectionService") == 0)
		serving = !atomic_load(&stopping) && cfg.dburl != NULL;
	else
		serving = !atomic_load(&stopping) && kafka_usable();
	r.status = serving ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
		: GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
	if (req)
		grpc__health__v1__health_check_request__free_unpacked(req, NULL);
	atomic_store(&c->answered, 1);
	call_finish(c, GRPC_STATUS_OK, NULL, &r.base);
}
