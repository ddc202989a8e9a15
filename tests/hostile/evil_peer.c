/*
 * evil_peer: the command-line front of the hostile test peer (evil.h).
 *
 *   evil_peer --mode MODE --connect HOST:PORT --netkey FILE [--key FILE]
 *             [--store DIR --model NAME[@VERSION]] [options]
 *
 * Exit status 0 when the mode ran to its end (what the node did is in the
 * event lines on stdout), 1 on a local failure, 2 on a usage error.
 */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/catalog.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/manifest.h"
#include "ferry/nodekey.h"
#include "ferry/peer.h"

#include "evil.h"

static volatile int stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fputs("usage: evil_peer --mode MODE --connect HOST:PORT --netkey FILE [options]\n"
	      "  --key FILE        node key file (ferry-node-key-v1); default a random key\n"
	      "  --fresh-key       a new random node key for every connection\n"
	      "  --store DIR       a state directory holding the model to announce\n"
	      "  --model NAME[@V]  the model to announce (newest version by default)\n"
	      "  --site NAME       site in the hello (default none)\n"
	      "  --repeat N        connections, one after another (default 1)\n"
	      "  --gap MS          pause between them (default 200)\n"
	      "  --hold MS         longest time one connection is kept (default 30000)\n"
	      "  --duration MS     stop everything after this (default no limit)\n"
	      "  --count N         half-open: connections at once (default 64)\n"
	      "  --interval MS     slow: time between two bytes (default 3000)\n"
	      "  --slow-hs         slow: dribble handshake message 1 too\n"
	      "  --flood BYTES     more-bytes: unrequested data per request (default 4 MiB)\n"
	      "  --variant N       oversize, garbage-msgs: only this variant (default: the\n"
	      "                    connections cycle through them; oversize 3 holds a\n"
	      "                    message just under the cap)\n"
	      "modes:\n",
	      f);
	evil_modes_usage(f);
}

static unsigned long num(const char *opt, const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == '\0' || *end != '\0') {
		fprintf(stderr, "evil_peer: %s: not a number: '%s'\n", opt, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	enum {
		O_MODE = 256,
		O_CONNECT,
		O_KEY,
		O_FRESH,
		O_NETKEY,
		O_STORE,
		O_MODEL,
		O_SITE,
		O_REPEAT,
		O_GAP,
		O_HOLD,
		O_DURATION,
		O_COUNT,
		O_INTERVAL,
		O_SLOW_HS,
		O_FLOOD,
		O_VARIANT,
		O_HELP,
	};
	static const struct option longopts[] = {
	    {"mode", required_argument, NULL, O_MODE},
	    {"connect", required_argument, NULL, O_CONNECT},
	    {"key", required_argument, NULL, O_KEY},
	    {"fresh-key", no_argument, NULL, O_FRESH},
	    {"netkey", required_argument, NULL, O_NETKEY},
	    {"store", required_argument, NULL, O_STORE},
	    {"model", required_argument, NULL, O_MODEL},
	    {"site", required_argument, NULL, O_SITE},
	    {"repeat", required_argument, NULL, O_REPEAT},
	    {"gap", required_argument, NULL, O_GAP},
	    {"hold", required_argument, NULL, O_HOLD},
	    {"duration", required_argument, NULL, O_DURATION},
	    {"count", required_argument, NULL, O_COUNT},
	    {"interval", required_argument, NULL, O_INTERVAL},
	    {"slow-hs", no_argument, NULL, O_SLOW_HS},
	    {"flood", required_argument, NULL, O_FLOOD},
	    {"variant", required_argument, NULL, O_VARIANT},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	struct evil_opts o;
	struct evil_result res;
	const char *connect = NULL, *keyfile = NULL, *netkeyfile = NULL;
	char host[WIRE_ADDR_MAX + 1], model[MANIFEST_NAME_MAX + 1];
	bool have_mode = false;
	int opt, rc;

	evil_opts_default(&o);
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case O_MODE:
			if ((rc = evil_mode_parse(optarg)) < 0) {
				fprintf(stderr, "evil_peer: unknown mode '%s'\n", optarg);
				usage(stderr);
				return 2;
			}
			o.mode = (enum evil_mode)rc;
			have_mode = true;
			break;
		case O_CONNECT:
			connect = optarg;
			break;
		case O_KEY:
			keyfile = optarg;
			break;
		case O_FRESH:
			o.fresh_key = true;
			break;
		case O_NETKEY:
			netkeyfile = optarg;
			break;
		case O_STORE:
			o.store_dir = optarg;
			break;
		case O_MODEL:
			if (catalog_parse_ref(optarg, model, sizeof(model), &o.version) != 0) {
				fprintf(stderr, "evil_peer: --model: %s\n",
					ferry_errmsg(FERRY_EINVAL));
				return 2;
			}
			o.model = model;
			break;
		case O_SITE:
			o.site = optarg;
			break;
		case O_REPEAT:
			o.repeat = (unsigned)num("--repeat", optarg);
			break;
		case O_GAP:
			o.gap_ms = (unsigned)num("--gap", optarg);
			break;
		case O_HOLD:
			o.hold_ms = (unsigned)num("--hold", optarg);
			break;
		case O_DURATION:
			o.duration_ms = (unsigned)num("--duration", optarg);
			break;
		case O_COUNT:
			o.count = (unsigned)num("--count", optarg);
			break;
		case O_INTERVAL:
			o.interval_ms = (unsigned)num("--interval", optarg);
			break;
		case O_SLOW_HS:
			o.slow_hs = true;
			break;
		case O_FLOOD:
			o.flood_bytes = num("--flood", optarg);
			break;
		case O_VARIANT:
			o.variant = (int)num("--variant", optarg);
			break;
		case O_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!have_mode || connect == NULL || netkeyfile == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (peer_addr_parse(connect, host, sizeof(host), &o.port) != 0) {
		fprintf(stderr, "evil_peer: --connect: %s\n", ferry_errmsg(FERRY_EINVAL));
		return 2;
	}
	o.host = host;
	if (fcrypto_init() != 0) {
		fprintf(stderr, "evil_peer: %s\n", ferry_errmsg(FERRY_EIO));
		return 1;
	}
	if ((rc = fcrypto_netkey_read(netkeyfile, o.netkey)) != 0 ||
	    (keyfile != NULL && (rc = nodekey_load(keyfile, &o.key)) != 0)) {
		fprintf(stderr, "evil_peer: %s\n", ferry_errmsg(rc));
		return 1;
	}
	if (keyfile == NULL)
		nodekey_generate(&o.key);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	o.stop = &stop_flag;
	rc = evil_run(&o, &res);
	nodekey_wipe(&o.key);
	fcrypto_wipe(o.netkey, sizeof(o.netkey));
	return rc == 0 ? 0 : 1;
}
