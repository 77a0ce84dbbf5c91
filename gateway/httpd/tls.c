/*
 * tls.c: HTTPS for udaconnect-httpd (UDACONNECT_TLS_CERT_FILE and
 * UDACONNECT_TLS_KEY_FILE).
 *
 * With both settings given, every worker's libmicrohttpd daemon speaks TLS
 * only (GnuTLS underneath), with the certificate (chain) and key read once at
 * start; with neither, plain HTTP.  Anything in between is refused before a
 * socket is opened, so that a daemon meant to be private never comes up in
 * the clear: one setting without the other, a file that cannot be read, a
 * file that is not PEM, an encrypted key, a key that does not belong to the
 * certificate (all checked here with GnuTLS, which libmicrohttpd would only
 * do inside MHD_start_daemon with a vaguer message), or a libmicrohttpd built
 * without TLS.  This file only prepares the daemon's flags and options and
 * says whether TLS is on; it must not start daemons or build answers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "httpd.h"
#include "smallfile.h"

/* A PEM file larger than this is not a certificate chain or a key. */
#define TLS_FILE_MAX (1 << 20)

/* GnuTLS priorities: its defaults without TLS 1.0 and 1.1 (RFC 8996). */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

static char *cert_pem;
static char *key_pem;
static size_t key_len;

/* The options passed to every daemon; just MHD_OPTION_END when TLS is off. */
static struct MHD_OptionItem options[4] = {{MHD_OPTION_END, 0, NULL}};

/*
 * The whole of `path` (the file of setting `name`), NUL-terminated, into
 * *out: 0, or -1 (logged with the setting and the reason).
 */
static int
read_pem(const char *name, const char *path, char **out, size_t *len)
{
	char		err[512];

	*out = udc_read_small_file("file", path, TLS_FILE_MAX, len, err, sizeof(err));
	if (*out == NULL)
	{
		logmsg(LOG_FATAL, "%s: %s", name, err);
		return -1;
	}
	if (*len == 0)
	{
		logmsg(LOG_FATAL, "%s: cannot read \"%s\": the file is empty", name, path);
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/*
 * Loads the pair into a throwaway GnuTLS credential, as libmicrohttpd will:
 * 0, or -1 with the reason logged against the setting at fault.
 */
static int
check_pair(size_t cert_len)
{
	gnutls_certificate_credentials_t cred;
	gnutls_datum_t cert = {(unsigned char *) cert_pem, (unsigned) cert_len};
	gnutls_datum_t key = {(unsigned char *) key_pem, (unsigned) key_len};
	gnutls_x509_crt_t *crts = NULL;
	unsigned	ncrt = 0;
	int			rc;

	/* the certificate alone first, so its own faults are named as such */
	rc = gnutls_x509_crt_list_import2(&crts, &ncrt, &cert, GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0)
	{
		logmsg(LOG_FATAL, "UDACONNECT_TLS_CERT_FILE (--tls-cert) \"%s\" holds no usable "
			   "PEM certificate: %s", cfg.tls_cert_file, gnutls_strerror(rc));
		return -1;
	}
	for (unsigned i = 0; i < ncrt; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);

	if (gnutls_certificate_allocate_credentials(&cred) < 0)
	{
		logmsg(LOG_FATAL, "TLS: cannot allocate GnuTLS credentials");
		return -1;
	}
	rc = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key, GNUTLS_X509_FMT_PEM,
											  NULL, 0);
	gnutls_certificate_free_credentials(cred);
	if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
		logmsg(LOG_FATAL, "UDACONNECT_TLS_KEY_FILE (--tls-key) \"%s\" is not the key of "
			   "the certificate in UDACONNECT_TLS_CERT_FILE (--tls-cert) \"%s\"",
			   cfg.tls_key_file, cfg.tls_cert_file);
	else if (rc < 0)
		logmsg(LOG_FATAL, "UDACONNECT_TLS_KEY_FILE (--tls-key) \"%s\" holds no usable "
			   "unencrypted PEM private key: %s", cfg.tls_key_file, gnutls_strerror(rc));
	return rc < 0 ? -1 : 0;
}

int
tls_init(void)
{
	bool		cert = cfg.tls_cert_file && *cfg.tls_cert_file;
	bool		key = cfg.tls_key_file && *cfg.tls_key_file;
	size_t		cert_len;

	if (!cert && !key)
		return 0;
	if (!cert || !key)
	{
		logmsg(LOG_FATAL, "%s is set but %s is not: HTTPS needs both the certificate "
			   "and its key (or neither, for plain HTTP)",
			   cert ? "UDACONNECT_TLS_CERT_FILE (--tls-cert)" : "UDACONNECT_TLS_KEY_FILE (--tls-key)",
			   cert ? "UDACONNECT_TLS_KEY_FILE (--tls-key)" : "UDACONNECT_TLS_CERT_FILE (--tls-cert)");
		return -1;
	}
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
	{
		logmsg(LOG_FATAL, "UDACONNECT_TLS_CERT_FILE is set but this libmicrohttpd (%s) "
			   "was built without TLS", MHD_get_version());
		return -1;
	}
	if (read_pem("UDACONNECT_TLS_CERT_FILE (--tls-cert)", cfg.tls_cert_file,
				 &cert_pem, &cert_len) != 0 ||
		read_pem("UDACONNECT_TLS_KEY_FILE (--tls-key)", cfg.tls_key_file,
				 &key_pem, &key_len) != 0 ||
		check_pair(cert_len) != 0)
	{
		tls_free();
		return -1;
	}
	options[0] = (struct MHD_OptionItem) {MHD_OPTION_HTTPS_MEM_KEY, 0, key_pem};
	options[1] = (struct MHD_OptionItem) {MHD_OPTION_HTTPS_MEM_CERT, 0, cert_pem};
	options[2] = (struct MHD_OptionItem) {MHD_OPTION_HTTPS_PRIORITIES, 0, TLS_PRIORITIES};
	options[3] = (struct MHD_OptionItem) {MHD_OPTION_END, 0, NULL};
	return 0;
}

bool
tls_on(void)
{
	return cert_pem != NULL;
}

unsigned
tls_daemon_flags(void)
{
	return tls_on() ? MHD_USE_TLS : 0;
}

struct MHD_OptionItem *
tls_daemon_options(void)
{
	return options;
}

void
tls_free(void)
{
	if (key_pem)
		explicit_bzero(key_pem, key_len);
	free(key_pem);
	free(cert_pem);
	key_pem = cert_pem = NULL;
	options[0] = (struct MHD_OptionItem) {MHD_OPTION_END, 0, NULL};
}
