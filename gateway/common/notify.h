/*
 * notify.h — telling the service manager how a gateway daemon is doing:
 * systemd's sd_notify() protocol (libsystemd), used by the packaged units
 * (Type=notify, the units in debian/).
 *
 * What it holds: notify_ready() once the daemon listens, notify_stopping()
 * when it starts its orderly shutdown.  What it must not do: decide anything
 * or fail the daemon: outside systemd (no NOTIFY_SOCKET: a terminal, the
 * test stack, a container) every call is a no-op, and a failed notification
 * is only logged.
 */
#ifndef UDACONNECT_NOTIFY_H
#define UDACONNECT_NOTIFY_H

/* "READY=1" with a status line, e.g. "listening on 0.0.0.0:30001" */
void		notify_ready(const char *status);

/* "STOPPING=1": systemd then waits for the exit instead of calling it a crash */
void		notify_stopping(void);

#endif
