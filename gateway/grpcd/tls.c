/*
 * tls.c — udaconnect-grpcd's transport security: the credentials of its
 * listening port.
 *
 * What this file holds: reading the certificate (chain) and the private key
 * named by UDACONNECT_TLS_CERT_FILE and UDACONNECT_TLS_KEY_FILE (--tls-cert,
 * --tls-key) once at start, and checking them with OpenSSL before gRPC sees
 * them: every PEM block parses, the certificate file starts with a
 * certificate, the key is not encrypted and belongs to that certificate.
 * gRPC itself would accept the port and only fail each handshake later,
 * with messages that name neither file nor setting; here a bad setting ends
 * the program with status 2 and a message naming the setting and the
 * problem.  server.c then takes the credentials from tls_credentials(): TLS
 * without client certificates when both settings are given, plaintext when
 * neither is.
 *
 * What it must not do: reload the files (settings are read at start only),
 * ask for a passphrase on a terminal (an encrypted key is refused), or log
 * anything of the key.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "grpcd.h"
#include "smallfile.h"

/* a certificate chain or a key is a few KB; anything this big is a wrong file */
#define TLS_PEM_MAX (1024 * 1024)

#define CERT_SETTING "UDACONNECT_TLS_CERT_FILE (--tls-cert)"
#define KEY_SETTING "UDACONNECT_TLS_KEY_FILE (--tls-key)"

static char *cert_pem;			/* NULL: plaintext */
static char *key_pem;

static void tls_refuse(const char *setting, const char *path, const char *fmt,...)
			__attribute__((format(printf, 3, 4), noreturn));

/* exit(2) with "SETTING PATH: problem" and OpenSSL's own reason, if any */
static void
tls_refuse(const char *setting, const char *path, const char *fmt,...)
{
	va_list		ap;
	unsigned long e = ERR_peek_last_error();

	fprintf(stderr, "udaconnect-grpcd: %s %s: ", setting, path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (e != 0)
		fprintf(stderr, " (OpenSSL: %s)", ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "unknown error");
	fputc('\n', stderr);
	exit(2);
}

/* the whole file as a C string (gRPC takes PEM as NUL-terminated text) */
static char *
read_pem(const char *setting, const char *path)
{
	char		err[512];
	size_t		n;
	char	   *buf = udc_read_small_file("file", path, TLS_PEM_MAX, &n, err, sizeof(err));

	if (buf == NULL)
		tls_refuse(setting, path, "%s", err);
	if (memchr(buf, '\0', n) != NULL)
		tls_refuse(setting, path, "holds a NUL byte: not a PEM file (a DER file? convert it with openssl to PEM)");
	return buf;
}

/* the reason PEM reading stopped was the end of the text, not a bad block */
static bool
pem_at_end(void)
{
	unsigned long e = ERR_peek_last_error();

	return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

/*
 * The certificate file: a certificate first (the server's), then optionally
 * the intermediates, every one of them valid PEM.  Returns the first; *n is
 * the number in the chain.
 */
static X509 *
check_chain(const char *path, int *n)
{
	BIO		   *bio = BIO_new_mem_buf(cert_pem, -1);
	X509	   *first,
			   *more;

	ERR_clear_error();
	first = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (first == NULL)
	{
		if (pem_at_end())
		{
			ERR_clear_error();
			tls_refuse(CERT_SETTING, path, "holds no PEM certificate (no \"-----BEGIN CERTIFICATE-----\" block)");
		}
		tls_refuse(CERT_SETTING, path, "its first certificate is not valid PEM");
	}
	*n = 1;
	while ((more = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
	{
		X509_free(more);
		(*n)++;
	}
	if (!pem_at_end())
		tls_refuse(CERT_SETTING, path, "certificate %d of the chain is not valid PEM", *n + 1);
	ERR_clear_error();
	BIO_free(bio);
	return first;
}

/* a passphrase callback that refuses to ask: the daemon has no terminal */
static int
no_passphrase(char *buf, int size, int rwflag, void *asked)
{
	(void) buf;
	(void) size;
	(void) rwflag;
	*(bool *) asked = true;
	return -1;
}

static EVP_PKEY *
check_key(const char *path)
{
	BIO		   *bio = BIO_new_mem_buf(key_pem, -1);
	EVP_PKEY   *key;
	bool		asked = false;

	/* OpenSSL 3 says "unsupported" for a file without a key: say it plainly */
	if (strstr(key_pem, "PRIVATE KEY-----") == NULL)
	{
		BIO_free(bio);
		tls_refuse(KEY_SETTING, path, "holds no PEM private key (no \"-----BEGIN ... PRIVATE KEY-----\" block)");
	}
	ERR_clear_error();
	key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &asked);
	BIO_free(bio);
	if (key != NULL)
		return key;
	if (asked)
	{
		ERR_clear_error();
		tls_refuse(KEY_SETTING, path, "the key is encrypted (it needs a passphrase, and the daemon asks none):"
				   " give it the key unencrypted, readable only by the daemon's user");
	}
	tls_refuse(KEY_SETTING, path, "its private key is not valid PEM");
}

/* one line for the log: whose certificate, and until when */
static void
log_certificate(X509 *cert, int n)
{
	BIO		   *bio = BIO_new(BIO_s_mem());
	char	   *text;
	long		len;
	int			after = X509_cmp_current_time(X509_get0_notAfter(cert));

	X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
	BIO_puts(bio, "\", valid until ");
	ASN1_TIME_print(bio, X509_get0_notAfter(cert));
	len = BIO_get_mem_data(bio, &text);
	logmsg(after < 0 ? LOG_WARNING : LOG_INFO, "TLS: certificate \"%.*s%s (%d in the chain, %s)",
		   (int) len, text, after < 0 ? ": it has EXPIRED, clients will refuse it" : "",
		   n, cfg.tls_cert);
	BIO_free(bio);
}

/*
 * Both settings or neither; readable PEM files; a key that belongs to the
 * certificate.  Anything else: exit(2).  Run at start, before any thread.
 */
void
tls_start(void)
{
	bool		has_cert = cfg.tls_cert != NULL && cfg.tls_cert[0] != '\0';
	bool		has_key = cfg.tls_key != NULL && cfg.tls_key[0] != '\0';
	X509	   *cert;
	EVP_PKEY   *key;
	int			n;

	if (!has_cert && !has_key)
		return;
	if (has_cert != has_key)
	{
		fprintf(stderr, "udaconnect-grpcd: %s is set but %s is not: TLS needs both the certificate and its key"
				" (or neither, for plaintext)\n", has_cert ? CERT_SETTING : KEY_SETTING,
				has_cert ? KEY_SETTING : CERT_SETTING);
		exit(2);
	}
	cert_pem = read_pem(CERT_SETTING, cfg.tls_cert);
	key_pem = read_pem(KEY_SETTING, cfg.tls_key);
	cert = check_chain(cfg.tls_cert, &n);
	key = check_key(cfg.tls_key);
	ERR_clear_error();
	if (X509_check_private_key(cert, key) != 1)
		tls_refuse(KEY_SETTING, cfg.tls_key, "the key does not belong to the certificate in %s",
				   cfg.tls_cert);
	log_certificate(cert, n);
	EVP_PKEY_free(key);
	X509_free(cert);
}

bool
tls_enabled(void)
{
	return cert_pem != NULL;
}

/* the port's credentials (the caller releases them); after grpc_init() */
grpc_server_credentials *
tls_credentials(void)
{
	grpc_ssl_pem_key_cert_pair pair;

	if (cert_pem == NULL)
		return grpc_insecure_server_credentials_create();
	pair.private_key = key_pem;
	pair.cert_chain = cert_pem;
	/* gRPC copies the PEM texts */
	return grpc_ssl_server_credentials_create_ex(NULL, &pair, 1, GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, NULL);
}

void
tls_stop(void)
{
	if (key_pem)
		explicit_bzero(key_pem, strlen(key_pem));
	free(key_pem);
	free(cert_pem);
	key_pem = cert_pem = NULL;
}
