/*
 * notify.c — sd_notify() for the gateway daemons (see notify.h).
 *
 * Readiness is sent only after the listening socket is bound, so that a
 * unit ordered After= a gateway (or `systemctl start`, which waits for it
 * with Type=notify) never sees a refused connection.  The environment's
 * NOTIFY_SOCKET is left in place (unset_environment 0): nothing this
 * process starts is a service of its own.
 */
#include <stdio.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "notify.h"

static void
send_state(const char *state)
{
	int			rc = sd_notify(0, state);

	/* 0: not run by systemd (no NOTIFY_SOCKET), nothing to tell */
	if (rc < 0)
		logmsg(LOG_WARNING, "sd_notify(\"%s\") failed: %s", state, strerror(-rc));
}

void
notify_ready(const char *status)
{
	char		state[300];

	snprintf(state, sizeof(state), "READY=1\nSTATUS=%s", status ? status : "ready");
	send_state(state);
}

void
notify_stopping(void)
{
	send_state("STOPPING=1\nSTATUS=stopping");
}
