/* Unit tests for the config module: what an operator writes, what ferryd reads. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ferry/config.h"
#include "ferry/error.h"
#include "ferry/util.h"

/* Base64 of the bytes 0..31 and of 32 bytes of 0xff. */
#define PK1 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define PK2 "//////////////////////////////////////////8="

static struct config *parse_ok(const char *text)
{
	struct config *c = NULL;
	char *errors = NULL;
	int rc = config_parse("t.conf", text, strlen(text), NULL, &c, &errors);

	if (rc != 0)
		fail_msg("unexpected errors:\n%s", errors ? errors : "(none)");
	assert_null(errors);
	assert_non_null(c);
	return c;
}

/* Parse text that must fail; returns the error report (caller frees). */
static char *parse_bad(const char *text)
{
	struct config *c = (struct config *)1;
	char *errors = NULL;

	assert_int_equal(config_parse("t.conf", text, strlen(text), NULL, &c, &errors),
			 FERRY_ECONFIG);
	assert_null(c);
	assert_non_null(errors);
	return errors;
}

static void expect_error(const char *text, const char *expected)
{
	char *errors = parse_bad(text);

	assert_string_equal(errors, expected);
	free(errors);
}

static char *print_to_string(const struct config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	config_print(c, f);
	fclose(f);
	return buf;
}

static void test_defaults(void **state)
{
	struct config *c = config_default();

	assert_string_equal(c->path, "");
	assert_string_equal(c->state_dir, LOCALSTATEDIR "/lib/ferry");
	assert_string_equal(c->socket, RUNSTATEDIR "/ferry/ferryd.sock");
	assert_string_equal(c->socket_group, "ferry");
	assert_string_equal(c->listen.host, "0.0.0.0");
	assert_int_equal(c->listen.port, 7440);
	assert_string_equal(c->site, "");
	assert_string_equal(c->network_key_file, SYSCONFDIR "/ferry/network.key");
	assert_int_equal(c->min_free_space, 2ull << 30);
	assert_string_equal(c->metrics_textfile, "");
	assert_int_equal(c->n_peers, 0);
	assert_true(c->lan_discovery);
	assert_string_equal(c->wan_congestion, "bbr");
	assert_int_equal(c->n_publishers, 0);
	assert_int_equal(c->n_want, 1);
	assert_string_equal(c->want[0], "*");
	assert_int_equal(c->keep_versions, 2);
	assert_true(c->auto_activate);
	assert_string_equal(c->on_activate, "");
	assert_int_equal(c->cache_quota, 0);
	assert_int_equal(c->download_rate, 0);
	assert_int_equal(c->upload_rate, 0);
	assert_int_equal(c->wan_download_rate, 0);
	assert_int_equal(c->wan_upload_rate, 0);
	assert_int_equal(c->n_wan_windows, 0);
	config_free(c);

	/* An empty file is the defaults. */
	c = parse_ok("");
	{
		struct config *d = config_default();

		assert_true(config_equal(c, d));
		config_free(d);
	}
	assert_string_equal(c->path, "t.conf");
	config_free(c);
	config_free(NULL);
}

/* Sets every key of the table to something other than its default. */
static const char every_key[] = "[node]\n"
				"state_dir = /srv/ferry\n"
				"socket = /run/f.sock\n"
				"socket_group = infer\n"
				"listen = [::]:7441\n"
				"site = clinic-a\n"
				"network_key_file = /etc/net.key\n"
				"min_free_space = 512M\n"
				"metrics_textfile = /var/lib/node_exporter/ferry.prom\n"
				"[peers]\n"
				"peer = hq.example.org\n"
				"peer = 10.1.2.3:9000\n"
				"peer = [2001:db8::1]:7000\n"
				"lan_discovery = off\n"
				"wan_congestion = cubic\n"
				"[trust]\n"
				"publisher = " PK1 "\n"
				"publisher = " PK2 "\n"
				"[models]\n"
				"want = llama-*\n"
				"want = whisper.[ab]?\n"
				"keep_versions = 3\n"
				"auto_activate = no\n"
				"on_activate = /usr/local/bin/reload-inference --model all\n"
				"cache_quota = 200G\n"
				"[limits]\n"
				"download_rate = 100mbit\n"
				"upload_rate = 50mbit\n"
				"wan_download_rate = 4mbit\n"
				"wan_upload_rate = 500kbit\n"
				"wan_window = mon-fri 08:00-18:00 1mbit\n"
				"wan_window = sat,sun 00:00-24:00 0\n"
				"wan_window = daily 22:00-06:00 8mbit\n";

static void test_every_key(void **state)
{
	struct config *c = parse_ok(every_key);
	uint8_t pk1[32];

	/* The text must cover the whole table, so a new key needs a line here. */
	for (size_t i = 0; config_key_at(i) != NULL; i++) {
		char *needle = xasprintf("\n%s = ", config_key_at(i)->key);

		if (strstr(every_key, needle) == NULL)
			fail_msg("every_key does not set %s", config_key_at(i)->key);
		free(needle);
	}
	assert_string_equal(c->state_dir, "/srv/ferry");
	assert_string_equal(c->socket, "/run/f.sock");
	assert_string_equal(c->socket_group, "infer");
	assert_string_equal(c->listen.host, "::");
	assert_int_equal(c->listen.port, 7441);
	assert_string_equal(c->site, "clinic-a");
	assert_string_equal(c->network_key_file, "/etc/net.key");
	assert_int_equal(c->min_free_space, 512ull << 20);
	assert_string_equal(c->metrics_textfile, "/var/lib/node_exporter/ferry.prom");
	assert_int_equal(c->n_peers, 3);
	assert_string_equal(c->peers[0].host, "hq.example.org");
	assert_int_equal(c->peers[0].port, 7440);
	assert_string_equal(c->peers[1].host, "10.1.2.3");
	assert_int_equal(c->peers[1].port, 9000);
	assert_string_equal(c->peers[2].host, "2001:db8::1");
	assert_int_equal(c->peers[2].port, 7000);
	assert_false(c->lan_discovery);
	assert_string_equal(c->wan_congestion, "cubic");
	assert_int_equal(c->n_publishers, 2);
	for (int i = 0; i < 32; i++)
		pk1[i] = (uint8_t)i;
	assert_memory_equal(c->publishers[0].pk, pk1, 32);
	memset(pk1, 0xff, sizeof(pk1));
	assert_memory_equal(c->publishers[1].pk, pk1, 32);
	/* Lines of a repeatable key replace its default ("*"). */
	assert_int_equal(c->n_want, 2);
	assert_string_equal(c->want[0], "llama-*");
	assert_string_equal(c->want[1], "whisper.[ab]?");
	assert_int_equal(c->keep_versions, 3);
	assert_false(c->auto_activate);
	assert_string_equal(c->on_activate, "/usr/local/bin/reload-inference --model all");
	assert_int_equal(c->cache_quota, 200ull << 30);
	assert_int_equal(c->download_rate, 100000000);
	assert_int_equal(c->upload_rate, 50000000);
	assert_int_equal(c->wan_download_rate, 4000000);
	assert_int_equal(c->wan_upload_rate, 500000);
	assert_int_equal(c->n_wan_windows, 3);
	assert_int_equal(c->wan_windows[0].days, 0x3e); /* mon..fri */
	assert_int_equal(c->wan_windows[0].start, 8 * 60);
	assert_int_equal(c->wan_windows[0].end, 18 * 60);
	assert_int_equal(c->wan_windows[0].rate, 1000000);
	assert_int_equal(c->wan_windows[1].days, 0x41); /* sun, sat */
	assert_int_equal(c->wan_windows[1].start, 0);
	assert_int_equal(c->wan_windows[1].end, 24 * 60);
	assert_int_equal(c->wan_windows[1].rate, 0);
	assert_int_equal(c->wan_windows[2].days, 0x7f);
	assert_int_equal(c->wan_windows[2].start, 22 * 60);
	assert_int_equal(c->wan_windows[2].end, 6 * 60);
	assert_int_equal(c->wan_windows[2].rate, 8000000);
	config_free(c);
}

static void test_value_forms(void **state)
{
	struct config *c = parse_ok("[node]\nlisten = off\nmin_free_space = 1.5G\n"
				    "[peers]\npeer = 192.0.2.7\npeer = [::1]\n"
				    "[models]\nwant =\n"
				    "[limits]\ndownload_rate = 1mbps\nupload_rate = 1234\n"
				    "wan_window = fri-mon 9:30-10:00 2.5mbit\n");

	assert_null(c->listen.host);
	assert_int_equal(c->min_free_space, 3ull << 29);
	assert_string_equal(c->peers[0].host, "192.0.2.7");
	assert_int_equal(c->peers[0].port, 7440);
	assert_string_equal(c->peers[1].host, "::1");
	/* An empty value leaves a repeatable key's list empty. */
	assert_int_equal(c->n_want, 0);
	assert_int_equal(c->download_rate, 8000000);
	assert_int_equal(c->upload_rate, 1234);
	/* A day range may wrap past Sunday. */
	assert_int_equal(c->wan_windows[0].days, 0x63); /* fri, sat, sun, mon */
	assert_int_equal(c->wan_windows[0].start, 9 * 60 + 30);
	assert_int_equal(c->wan_windows[0].rate, 2500000);
	config_free(c);
}

static void test_syntax(void **state)
{
	/* Comments at line start and after white space, tabs, CRLF, a byte order
	 * mark, and ';' or '#' inside a value (no space before) kept. */
	static const char text[] = "\xef\xbb\xbf# header comment\r\n"
				   "; another\n"
				   "\n"
				   "  [ node ]   ; section comment\n"
				   "\tsite\t=\tclinic-b\t# trailing\n"
				   "state_dir=/data/fer#ry;x\n"
				   "[models]\n"
				   "on_activate = run --flag=1 ; comment\r\n"
				   "want = a* # b*\n";
	struct config *c = parse_ok(text);

	assert_string_equal(c->site, "clinic-b");
	assert_string_equal(c->state_dir, "/data/fer#ry;x");
	assert_string_equal(c->on_activate, "run --flag=1");
	assert_int_equal(c->n_want, 1);
	assert_string_equal(c->want[0], "a*");
	config_free(c);
}

/* One bad line each: the exact message an operator sees. */
static void test_error_messages(void **state)
{
	static const struct {
		const char *text, *expected;
	} cases[] = {
	    {"[node]\nfrob = 1\n", "t.conf:2: unknown key 'frob' in [node]\n"},
	    {"[node]\npeer = a\n",
	     "t.conf:2: unknown key 'peer' in [node] (it belongs in [peers])\n"},
	    {"[nodes]\nsite = a\n", "t.conf:1: unknown section [nodes]\n"},
	    {"[node\n", "t.conf:1: malformed section header '[node' (no closing ']')\n"},
	    {"site = a\n", "t.conf:1: key 'site' is set before any [section]\n"},
	    {"[node]\nsite\n", "t.conf:2: expected 'key = value' or '[section]', got 'site'\n"},
	    {"[node]\n= 1\n", "t.conf:2: missing key name before '='\n"},
	    {"[node]\nsite = a\n\nsite = b\n",
	     "t.conf:4: duplicate key 'site' in [node] (first set on line 2)\n"},
	    {"[node]\nsite = Clinic A\n",
	     "t.conf:2: site: 'Clinic A' is not a site name (a-z, 0-9, '.', '_', '-', starting "
	     "with a letter or digit, at most 64 characters)\n"},
	    {"[node]\nstate_dir = var/lib\n",
	     "t.conf:2: state_dir: 'var/lib' is not an absolute path\n"},
	    {"[node]\nstate_dir =\n", "t.conf:2: state_dir: '' is not an absolute path\n"},
	    {"[node]\nsocket = /"
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	     "t.conf:2: socket: '/"
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is 130 bytes long; a Unix "
	     "socket path holds at most 107\n"},
	    {"[node]\nsocket_group = a b\n", "t.conf:2: socket_group: 'a b' is not a group name\n"},
	    {"[node]\nlisten = localhost:7440\n",
	     "t.conf:2: listen: 'localhost' is not an IP address (listen takes an address such "
	     "as 0.0.0.0:7440 or [::]:7440, or off)\n"},
	    {"[node]\nlisten = 0.0.0.0:0\n",
	     "t.conf:2: listen: '0' in '0.0.0.0:0' is not a port number (1-65535)\n"},
	    {"[node]\nlisten = [::1\n", "t.conf:2: listen: '[::1' has '[' without ']'\n"},
	    {"[node]\nlisten = [::1]x\n",
	     "t.conf:2: listen: '[::1]x': expected ':PORT' after ']'\n"},
	    {"[node]\nlisten = [1.2.3.4]:1\n",
	     "t.conf:2: listen: '1.2.3.4' is not an IPv6 address\n"},
	    {"[node]\nmin_free_space = lots\n",
	     "t.conf:2: min_free_space: 'lots' is not a size (examples: 512M, 200G)\n"},
	    {"[node]\nmetrics_textfile = m.prom\n",
	     "t.conf:2: metrics_textfile: 'm.prom' is not an absolute path\n"},
	    {"[peers]\npeer = ::1\n",
	     "t.conf:2: peer: '::1': an IPv6 address goes in brackets, as in [::1]:7440\n"},
	    {"[peers]\npeer = :7440\n", "t.conf:2: peer: ':7440' has no host before the port\n"},
	    {"[peers]\npeer = hq_1.example:7440\n",
	     "t.conf:2: peer: 'hq_1.example' is not a host name or address\n"},
	    {"[peers]\npeer = hq:http\n",
	     "t.conf:2: peer: 'http' in 'hq:http' is not a port number (1-65535)\n"},
	    {"[peers]\nlan_discovery = maybe\n",
	     "t.conf:2: lan_discovery: 'maybe' is not on or off\n"},
	    {"[peers]\nwan_congestion = BBR v2\n",
	     "t.conf:2: wan_congestion: 'BBR v2' is not a TCP congestion control name (such as "
	     "bbr or cubic: a-z, 0-9, '_', '-', at most 15 characters)\n"},
	    {"[trust]\npublisher = abc\n",
	     "t.conf:2: publisher: 'abc' is not a base64 Ed25519 public key (44 characters, the "
	     "last line ferryctl keygen prints)\n"},
	    {"[models]\nwant = Llama*\n",
	     "t.conf:2: want: 'Llama*' is not a glob of model names (a-z, 0-9, '.', '_', '-' "
	     "and the wildcards * ? [...])\n"},
	    {"[models]\nkeep_versions = 0\n",
	     "t.conf:2: keep_versions: '0' is not a whole number from 1 to 1000\n"},
	    {"[models]\nkeep_versions = 1001\n",
	     "t.conf:2: keep_versions: '1001' is not a whole number from 1 to 1000\n"},
	    {"[limits]\ndownload_rate = fast\n",
	     "t.conf:2: download_rate: 'fast' is not a rate (examples: 500kbit, 4mbit, 1gbit, "
	     "0)\n"},
	    {"[limits]\nwan_window = daily\n",
	     "t.conf:2: wan_window: 'daily' is not a window (DAYS HH:MM-HH:MM RATE, as in "
	     "mon-fri 08:00-18:00 1mbit)\n"},
	    {"[limits]\nwan_window = mon-fry 08:00-18:00 1mbit\n",
	     "t.conf:2: wan_window: 'mon-fry' is not a list of days (as in mon-fri, sat,sun or "
	     "daily)\n"},
	    {"[limits]\nwan_window = mon,,tue 08:00-18:00 1mbit\n",
	     "t.conf:2: wan_window: 'mon,,tue' is not a list of days (as in mon-fri, sat,sun or "
	     "daily)\n"},
	    {"[limits]\nwan_window = mon 8-18 1mbit\n",
	     "t.conf:2: wan_window: '8-18' is not a time range (HH:MM-HH:MM from 00:00 to "
	     "24:00)\n"},
	    {"[limits]\nwan_window = mon 24:00-06:00 1mbit\n",
	     "t.conf:2: wan_window: '24:00-06:00' is not a time range (HH:MM-HH:MM from 00:00 to "
	     "24:00)\n"},
	    {"[limits]\nwan_window = mon 08:60-09:00 1mbit\n",
	     "t.conf:2: wan_window: '08:60-09:00' is not a time range (HH:MM-HH:MM from 00:00 to "
	     "24:00)\n"},
	    {"[limits]\nwan_window = mon 06:00-06:00 1mbit\n",
	     "t.conf:2: wan_window: '06:00-06:00' is an empty time range\n"},
	    {"[limits]\nwan_window = mon 06:00-07:00 quick\n",
	     "t.conf:2: wan_window: 'quick' is not a rate (examples: 500kbit, 4mbit, 1gbit, "
	     "0)\n"},
	    {"[limits]\nwan_window = mon 06:00-07:00 1mbit extra\n",
	     "t.conf:2: wan_window: 'mon 06:00-07:00 1mbit extra' is not a window (DAYS "
	     "HH:MM-HH:MM RATE, as in mon-fri 08:00-18:00 1mbit)\n"},
	    {"[node]\nsite = a\x01\n", "t.conf:2: control character 0x01 in line\n"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		expect_error(cases[i].text, cases[i].expected);
}

/* A file is checked to its end: every error, in line order. */
static void test_all_errors_reported(void **state)
{
	static const char text[] = "[node]\n"
				   "site = OK?\n"
				   "bogus = 1\n"
				   "[peers]\n"
				   "peer = good.example\n"
				   "peer = [::1]:0\n"
				   "[wat]\n"
				   "anything = goes here\n"
				   "[limits]\n"
				   "upload_rate = 1 gallon\n"
				   "[node]\n"
				   "site = b\n";
	char *errors = parse_bad(text);

	assert_string_equal(errors,
			    "t.conf:2: site: 'OK?' is not a site name (a-z, 0-9, '.', '_', '-', "
			    "starting with a letter or digit, at most 64 characters)\n"
			    "t.conf:3: unknown key 'bogus' in [node]\n"
			    "t.conf:6: peer: '0' in '[::1]:0' is not a port number (1-65535)\n"
			    "t.conf:7: unknown section [wat]\n"
			    "t.conf:10: upload_rate: '1 gallon' is not a rate (examples: 500kbit, "
			    "4mbit, 1gbit, 0)\n"
			    "t.conf:12: duplicate key 'site' in [node] (first set on line 2)\n");
	/* The error detail holds the first one. */
	assert_string_equal(ferry_errmsg(FERRY_ECONFIG),
			    "t.conf:2: site: 'OK?' is not a site name (a-z, 0-9, '.', '_', '-', "
			    "starting with a letter or digit, at most 64 characters)");
	free(errors);
}

/* A binary file passed by mistake stops after a bounded number of errors. */
static void test_too_many_errors(void **state)
{
	char text[4000];
	char *errors, *last;
	size_t lines = 0;

	for (size_t i = 0; i < 300; i++)
		memcpy(text + 4 * i, "x\nx\n", 4);
	text[1200] = '\0';
	errors = parse_bad(text);
	for (const char *p = errors; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 101);
	last = strstr(errors, "t.conf:100: too many errors, giving up\n");
	assert_non_null(last);
	assert_string_equal(last, "t.conf:100: too many errors, giving up\n");
	free(errors);
}

static void test_load(void **state)
{
	char path[] = "/tmp/test_config.XXXXXX";
	struct config *c = NULL;
	char *errors = NULL, *expected;
	FILE *f;
	int fd;

	assert_int_equal(config_load("/nonexistent/ferryd.conf", NULL, &c, &errors), FERRY_ENOENT);
	assert_null(c);
	assert_string_equal(errors, "/nonexistent/ferryd.conf: No such file or directory\n");
	free(errors);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs("[node]\nsite = x\nsite = y\n", f);
	fclose(f);
	assert_int_equal(config_load(path, NULL, &c, &errors), FERRY_ECONFIG);
	expected = xasprintf("%s:3: duplicate key 'site' in [node] (first set on line 2)\n", path);
	assert_string_equal(errors, expected);
	free(expected);
	free(errors);

	f = fopen(path, "w");
	fputs("[node]\nsite = x\n", f);
	fclose(f);
	assert_int_equal(config_load(path, NULL, &c, NULL), 0);
	assert_string_equal(c->path, path);
	assert_string_equal(c->site, "x");
	config_free(c);
	unlink(path);
}

static void test_dev_and_base(void **state)
{
	struct config *dev = NULL, *c = NULL;
	char *long_dir, *errors = NULL;
	const char *text;

	assert_int_equal(config_default_dev("/home/me/ferry-dev", &dev), 0);
	assert_string_equal(dev->state_dir, "/home/me/ferry-dev/state");
	assert_string_equal(dev->socket, "/home/me/ferry-dev/ferryd.sock");
	assert_string_equal(dev->network_key_file, "/home/me/ferry-dev/network.key");
	assert_string_equal(dev->socket_group, "");
	assert_string_equal(dev->listen.host, "127.0.0.1");
	assert_string_equal(dev->want[0], "*");

	/* A file read over the dev defaults keeps what it does not set. */
	text = "[node]\nsite = lab\n[models]\nwant = x\n";
	assert_int_equal(config_parse("d.conf", text, strlen(text), dev, &c, &errors), 0);
	assert_string_equal(c->site, "lab");
	assert_string_equal(c->state_dir, "/home/me/ferry-dev/state");
	assert_int_equal(c->n_want, 1);
	assert_string_equal(c->want[0], "x");
	/* The base is not changed. */
	assert_string_equal(dev->site, "");
	assert_string_equal(dev->want[0], "*");
	config_free(c);
	config_free(dev);

	/* A relative directory is made absolute. */
	assert_int_equal(config_default_dev("rel", &dev), 0);
	assert_true(dev->state_dir[0] == '/');
	assert_non_null(strstr(dev->state_dir, "/rel/state"));
	config_free(dev);

	long_dir = xasprintf("/%0100d", 0);
	assert_int_equal(config_default_dev(long_dir, &dev), FERRY_ECONFIG);
	assert_null(dev);
	assert_non_null(strstr(ferry_errmsg(FERRY_ECONFIG), "socket: '"));
	assert_non_null(strstr(ferry_errmsg(FERRY_ECONFIG), "a Unix socket path holds at most"));
	free(long_dir);

	/* A directory whose name would start a comment cannot be written back. */
	assert_int_equal(config_default_dev("/tmp/a ;b", &dev), FERRY_ECONFIG);
	assert_non_null(
	    strstr(ferry_errmsg(FERRY_ECONFIG), "';' or '#' at its start or after a space"));
}

static void test_round_trip(void **state)
{
	static const char *const texts[] = {
	    every_key,
	    "",
	    "[node]\nlisten = off\nmin_free_space = 1.5G\n[models]\nwant =\n"
	    "[limits]\nwan_window = fri-mon 9:30-00:00 2.5mbit\n"
	    "wan_window = mon,wed,thu 00:00-24:00 1234\n"
	    "wan_window = tue,thu,sat,sun 01:00-02:00 1gbit\n",
	};

	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		struct config *a = parse_ok(texts[i]), *b;
		char *once = print_to_string(a), *twice;

		b = parse_ok(once);
		assert_true(config_equal(a, b));
		twice = print_to_string(b);
		assert_string_equal(once, twice);
		free(once);
		free(twice);
		config_free(a);
		config_free(b);
	}
}

static void test_canonical_form(void **state)
{
	struct config *c = parse_ok("[limits]\nwan_window = fri-mon 9:30-00:00 2.5mbit\n"
				    "wan_window = sun,sat,mon,tue,wed,thu,fri 00:00-24:00 0\n"
				    "download_rate = 1500000\n[node]\nmin_free_space = 1.5G\n"
				    "listen = [::]\n");
	char *out = print_to_string(c);

	assert_non_null(strstr(out, "\nwan_window = mon,fri-sun 09:30-00:00 2500kbit\n"
				    "wan_window = daily 00:00-24:00 0\n"));
	assert_non_null(strstr(out, "\ndownload_rate = 1500kbit\n"));
	assert_non_null(strstr(out, "\nmin_free_space = 1536M\n"));
	assert_non_null(strstr(out, "\nlisten = [::]:7440\n"));
	assert_non_null(strstr(out, "\npeer =\n"));
	assert_true(strncmp(out, "[node]\nstate_dir = ", 19) == 0);
	free(out);
	config_free(c);
}

static void test_equal_detects_each_key(void **state)
{
	struct config *a = parse_ok(every_key), *b;

	/* Change one line at a time: each makes the configs differ. */
	for (size_t i = 0; config_key_at(i) != NULL; i++) {
		const struct config_key *k = config_key_at(i);
		char *needle = xasprintf("\n%s = ", k->key), *text = xstrdup(every_key);
		char *line = strstr(text, needle) + 1, *rest = strchr(line, '\n');
		char *changed;

		*line = '\0';
		changed = xasprintf("%s%s", text, rest + 1);
		b = parse_ok(changed);
		if (config_equal(a, b))
			fail_msg("dropping the %s line did not change the config", k->key);
		config_free(b);
		free(changed);
		free(text);
		free(needle);
	}
	config_free(a);
}

static void note_changed(const struct config_key *k, void *arg)
{
	char *list = arg;

	strcat(list, k->key);
	strcat(list, " ");
}

static void test_keep_restart_keys(void **state)
{
	struct config *cur = parse_ok("[node]\nstate_dir = /a\nsite = one\n");
	struct config *next = parse_ok("[node]\nstate_dir = /b\nlisten = off\nsite = two\n"
				       "[limits]\nupload_rate = 1mbit\n");
	char changed[256] = "";

	config_keep_restart_keys(next, cur, note_changed, changed);
	assert_string_equal(changed, "state_dir listen ");
	assert_string_equal(next->state_dir, "/a");
	assert_string_equal(next->listen.host, "0.0.0.0");
	/* Keys that apply at run time take the new value. */
	assert_string_equal(next->site, "two");
	assert_int_equal(next->upload_rate, 1000000);
	config_free(cur);
	config_free(next);
}

/* 2024-01-01 was a Monday. Seconds for a day of that week at HH:MM UTC. */
static time_t at(int day_of_jan, int h, int m)
{
	return 1704067200 + (time_t)(day_of_jan - 1) * 86400 + h * 3600 + m * 60;
}

static void use_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

static void test_wan_windows(void **state)
{
	struct config *c = parse_ok("[limits]\n"
				    "wan_window = mon-fri 08:00-18:00 1mbit\n"
				    "wan_window = fri 22:00-06:00 8mbit\n"
				    "wan_window = sat,sun 00:00-24:00 0\n"
				    "wan_window = sun 23:00-01:00 2mbit\n");
	uint64_t rate = 99;

	use_tz("UTC0");
	/* Weekday range, start inclusive, end exclusive. */
	assert_true(config_wan_rate_at(c, at(1, 8, 0), &rate));
	assert_int_equal(rate, 1000000);
	assert_true(config_wan_rate_at(c, at(3, 17, 59), &rate));
	assert_int_equal(rate, 1000000);
	rate = 99;
	assert_false(config_wan_rate_at(c, at(1, 7, 59), &rate));
	assert_false(config_wan_rate_at(c, at(1, 18, 0), &rate));
	assert_int_equal(rate, 99);
	/* Friday night runs into Saturday morning; the Saturday line comes later
	 * and covers all of Saturday, so it wins there. */
	assert_true(config_wan_rate_at(c, at(5, 23, 0), &rate));
	assert_int_equal(rate, 8000000);
	assert_true(config_wan_rate_at(c, at(6, 3, 0), &rate));
	assert_int_equal(rate, 0);
	/* Sunday 23:00 into Monday 01:00, across the end of the week. */
	assert_true(config_wan_rate_at(c, at(7, 23, 30), &rate));
	assert_int_equal(rate, 2000000);
	assert_true(config_wan_rate_at(c, at(8, 0, 30), &rate));
	assert_int_equal(rate, 2000000);
	assert_false(config_wan_rate_at(c, at(8, 1, 0), &rate));
	/* Thursday night is not Friday night. */
	assert_false(config_wan_rate_at(c, at(4, 23, 0), &rate));
	config_free(c);

	/* Later lines win: the same two windows in the other order. */
	c = parse_ok("[limits]\nwan_window = sat,sun 00:00-24:00 0\n"
		     "wan_window = daily 00:00-24:00 3mbit\n");
	assert_true(config_wan_rate_at(c, at(6, 12, 0), &rate));
	assert_int_equal(rate, 3000000);
	config_free(c);

	/* Daily across midnight. */
	c = parse_ok("[limits]\nwan_window = daily 22:00-06:00 8mbit\n");
	assert_true(config_wan_rate_at(c, at(2, 22, 0), &rate));
	assert_true(config_wan_rate_at(c, at(3, 5, 59), &rate));
	assert_false(config_wan_rate_at(c, at(3, 6, 0), &rate));
	assert_false(config_wan_rate_at(c, at(3, 21, 59), &rate));

	/* Local time: 21:30 UTC on Tuesday is 22:30 in a zone one hour east. */
	use_tz("XST-1");
	assert_true(config_wan_rate_at(c, at(2, 21, 30), &rate));
	use_tz("UTC0");
	assert_false(config_wan_rate_at(c, at(2, 21, 30), &rate));
	config_free(c);

	c = config_default();
	assert_false(config_wan_rate_at(c, at(2, 12, 0), &rate));
	config_free(c);
}

static void test_wants(void **state)
{
	struct config *c = parse_ok("[models]\nwant = llama-*\nwant = whisper-[sm]\n");

	assert_true(config_wants(c, "llama-3-8b"));
	assert_true(config_wants(c, "whisper-s"));
	assert_false(config_wants(c, "whisper-l"));
	assert_false(config_wants(c, "mistral"));
	config_free(c);
	c = config_default();
	assert_true(config_wants(c, "anything"));
	config_free(c);
}

/* The text of a man page entry: from its ".BI" line to the next entry
 * (".TP" then ".BI"), section or heading. Nested .TP lists stay inside. */
static const char *entry_end(const char *p)
{
	const char *q = p;

	while ((q = strchr(q + 1, '\n')) != NULL)
		if (strncmp(q, "\n.TP\n.BI \"", 10) == 0 || strncmp(q, "\n.SS", 4) == 0 ||
		    strncmp(q, "\n.SH", 4) == 0)
			return q;
	return p + strlen(p);
}

/* Every key in ferryd.conf(5), in its section, with its type and default. */
static void test_man_page(void **state)
{
	const char *path = FERRY_TOP_SRCDIR "/docs/ferryd.conf.5";
	char *man = NULL;
	size_t len;
	int rc = read_file(path, 1 << 20, &man, &len);

	if (rc < 0)
		fail_msg("%s", ferry_errmsg(rc));
	for (size_t i = 0; config_key_at(i) != NULL; i++) {
		const struct config_key *k = config_key_at(i);
		char *sec = xasprintf("\n.SS [%s]\n", k->section);
		char *head = xasprintf("\n.BI \"%s = \" %s\n", k->key, k->type);
		const char *s = strstr(man, sec), *e, *end, *d;
		char *body;

		if (s == NULL)
			fail_msg("%s: no '.SS [%s]'", path, k->section);
		e = strstr(s + 1, head);
		if (e == NULL || (strstr(s + 1, "\n.SS ") && strstr(s + 1, "\n.SS ") < e))
			fail_msg("%s: [%s] has no entry '.BI \"%s = \" %s'", path, k->section,
				 k->key, k->type);
		end = entry_end(e + 1);
		body = xasprintf("%.*s", (int)(end - e), e);
		d = strstr(body, "Default: ");
		if (d == NULL)
			fail_msg("%s: %s has no 'Default: '", path, k->key);
		if (k->def[0] == '\0') {
			if (strncmp(d, "Default: empty", 14) != 0)
				fail_msg("%s: %s should say 'Default: empty'", path, k->key);
		} else if (k->def[0] == '/') {
			/* Paths depend on configure's directories; the page shows the
			 * packaged ones, which must end the build's default. */
			const char *v = d + strlen("Default: \\fI");
			size_t n = strcspn(v, "\\");

			if (strncmp(d, "Default: \\fI", 12) != 0 || n == 0 || n > strlen(k->def) ||
			    strncmp(k->def + strlen(k->def) - n, v, n) != 0)
				fail_msg("%s: %s default should be \\fI...%s\\fR", path, k->key,
					 k->def);
		} else {
			char *want = xasprintf("Default: \\fB%s\\fR", k->def);

			if (strncmp(d, want, strlen(want)) != 0)
				fail_msg("%s: %s should say '%s'", path, k->key, want);
			free(want);
		}
		if (k->repeatable && strstr(body, "May be repeated") == NULL)
			fail_msg("%s: %s should say 'May be repeated'", path, k->key);
		if (k->restart && strstr(body, "restart") == NULL)
			fail_msg("%s: %s should say a change needs a restart", path, k->key);
		free(body);
		free(head);
		free(sec);
	}
	free(man);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_every_key),
	    cmocka_unit_test(test_value_forms),
	    cmocka_unit_test(test_syntax),
	    cmocka_unit_test(test_error_messages),
	    cmocka_unit_test(test_all_errors_reported),
	    cmocka_unit_test(test_too_many_errors),
	    cmocka_unit_test(test_load),
	    cmocka_unit_test(test_dev_and_base),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_canonical_form),
	    cmocka_unit_test(test_equal_detects_each_key),
	    cmocka_unit_test(test_keep_restart_keys),
	    cmocka_unit_test(test_wan_windows),
	    cmocka_unit_test(test_wants),
	    cmocka_unit_test(test_man_page),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
