/*
 * udaconnect-token — prints a JWT for the gateways, or a new key line.
 *
 *   udaconnect-token [--key-file F] --person ID [--ttl 24h]
 *   udaconnect-token [--key-file F] --organizer NAME [--ttl 24h]
 *   udaconnect-token --genkey
 *
 * The token is signed with the first key of the key file (--key-file, else
 * UDACONNECT_JWT_KEY_FILE) by gateway/common/auth.c, the code the gateways
 * verify with.  --genkey prints 48 bytes from getrandom() in base64url, one
 * line to put at the top of a key file.
 *
 * What it must not do: print anything but the token or the key on stdout
 * (deployment scripts capture it), or take a key on the command line, where
 * other users of the host could read it.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "auth.h"
#include "cli.h"

#define TTL_MAX_S (365L * 86400)

static const char usage[] =
"usage: udaconnect-token [--key-file FILE] --person ID [--ttl DURATION]\n"
"       udaconnect-token [--key-file FILE] --organizer NAME [--ttl DURATION]\n"
"       udaconnect-token --genkey\n"
"\n"
"  --key-file FILE    the JWT key file (default: $UDACONNECT_JWT_KEY_FILE);\n"
"                     its first line signs\n"
"  --person ID        an attendee's token for person ID (1 to 2147483647)\n"
"  --organizer NAME   an organizer's token, sub NAME (1 to 63 printable bytes)\n"
"  --ttl DURATION     lifetime: N followed by s, m, h or d (default 24h, at most 365d)\n"
"  --genkey           print a new random key line (48 bytes, base64url)\n"
"  --help             this text\n";

/* N[smhd] in seconds, 1 s .. 365 d, or exit(2) */
static long
parse_ttl(const char *s)
{
	char	   *end;
	long		n;
	long		unit;

	n = strtol(s, &end, 10);
	switch (end != s && s[0] >= '0' && s[0] <= '9' && *end != '\0' && end[1] == '\0' ? *end : '?')
	{
		case 's':
			unit = 1;
			break;
		case 'm':
			unit = 60;
			break;
		case 'h':
			unit = 3600;
			break;
		case 'd':
			unit = 86400;
			break;
		default:
			fprintf(stderr, "%s: --ttl must be a number followed by s, m, h or d (e.g. 24h), got \"%s\"\n",
					cli_progname, s);
			exit(2);
	}
	if (n < 1 || n > TTL_MAX_S / unit)
	{
		fprintf(stderr, "%s: --ttl must be between 1s and 365d, got \"%s\"\n", cli_progname, s);
		exit(2);
	}
	return n * unit;
}

static int
genkey(void)
{
	unsigned char raw[48];
	char		line[65];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t) sizeof(raw))
	{
		perror("udaconnect-token: getrandom");
		return 1;
	}
	udc_base64url_encode(raw, sizeof(raw), line);
	explicit_bzero(raw, sizeof(raw));
	puts(line);
	return 0;
}

static void
check_organizer(const char *name)
{
	size_t		n = strlen(name);

	for (size_t i = 0; i < n; i++)
	{
		if ((unsigned char) name[i] < 0x20 || name[i] == 0x7f)
			n = 0;
	}
	if (n == 0 || n > 63)
	{
		fprintf(stderr, "%s: --organizer must be 1 to 63 bytes without control characters\n",
				cli_progname);
		exit(2);
	}
}

static int
sign(const char *key_file, const udc_claims *c, long ttl)
{
	char		err[512];
	udc_auth   *a;
	char	   *token;

	a = udc_auth_load(key_file, err, sizeof(err));
	if (a == NULL)
	{
		fprintf(stderr, "%s: %s\n", cli_progname, err);
		return 1;
	}
	token = udc_auth_sign(a, c, (int64_t) time(NULL), ttl, err, sizeof(err));
	udc_auth_free(a);
	if (token == NULL)
	{
		fprintf(stderr, "%s: %s\n", cli_progname, err);
		return 1;
	}
	puts(token);
	free(token);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"key-file", required_argument, NULL, 'k'},
		{"person", required_argument, NULL, 'p'},
		{"organizer", required_argument, NULL, 'o'},
		{"ttl", required_argument, NULL, 't'},
		{"genkey", no_argument, NULL, 'g'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	const char *key_file = getenv("UDACONNECT_JWT_KEY_FILE");
	udc_claims	c;
	long		ttl = 86400;
	int			modes = 0;
	int			want_key = 0;
	int			opt;

	cli_progname = "udaconnect-token";
	argv[0] = (char *) cli_progname;	/* getopt names it in its messages */
	memset(&c, 0, sizeof(c));
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
	{
		switch (opt)
		{
			case 'k':
				key_file = optarg;
				break;
			case 'p':
				c.role = UDC_ROLE_ATTENDEE;
				c.person = (int32_t) cli_parse_long(optarg, "--person", 1, INT32_MAX);
				modes++;
				break;
			case 'o':
				check_organizer(optarg);
				c.role = UDC_ROLE_ORGANIZER;
				snprintf(c.sub, sizeof(c.sub), "%s", optarg);
				modes++;
				break;
			case 't':
				ttl = parse_ttl(optarg);
				break;
			case 'g':
				want_key = 1;
				modes++;
				break;
			case 'h':
				cli_usage(usage, 0);
				break;
			default:
				/* getopt said which option and why */
				cli_usage(usage, 2);
		}
	}
	cli_no_operands(argc, argv, usage);
	if (modes != 1)
	{
		fprintf(stderr, "%s: give exactly one of --person, --organizer, --genkey\n", cli_progname);
		cli_usage(usage, 2);
	}
	if (want_key)
		return genkey();
	if (key_file == NULL || key_file[0] == '\0')
	{
		fprintf(stderr, "%s: no key file: give --key-file or set UDACONNECT_JWT_KEY_FILE\n", cli_progname);
		exit(2);
	}
	return sign(key_file, &c, ttl);
}
