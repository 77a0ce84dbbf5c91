/*
 * smallfile.h — reading a small file whole: the token signing keys
 * (auth.c) and the TLS certificate and key (both gateways' tls.c), read once
 * at start.
 *
 * What it holds: udc_read_small_file().  What it must not do: log, exit, or
 * look at what the file says; each caller words the refusal with the name
 * of its setting.  Plain C on libc alone.
 */
#ifndef UDACONNECT_SMALLFILE_H
#define UDACONNECT_SMALLFILE_H

#include <stddef.h>

/*
 * The whole of `path` in a malloc'd buffer of max + 1 bytes, NUL-terminated
 * after the *len bytes read (the pages past them are never touched, so a
 * generous max costs address space, not memory).  NULL with the reason in
 * err: `cannot open WHAT "PATH": ...`, `cannot read WHAT "PATH": ...`, `WHAT
 * "PATH" is larger than MAX bytes`, or `out of memory`.  The caller frees it
 * (after explicit_bzero() for a secret).
 */
extern char *udc_read_small_file(const char *what, const char *path, size_t max, size_t *len,
								 char *err, size_t errlen);

#endif							/* UDACONNECT_SMALLFILE_H */
