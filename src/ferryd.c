/*
 * ferryd: the daemon's outer shell. It reads the configuration, starts the
 * node (store, peers, gossip, fetching: node.h), tells the service manager
 * it is ready, pings the watchdog, re-reads the configuration on SIGHUP and
 * stops cleanly on SIGTERM or SIGINT: the node closes its connections and
 * commits what it received before the process exits.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ferry/config.h"
#include "ferry/ctl.h"
#include "ferry/error.h"
#include "ferry/log.h"
#include "ferry/node.h"
#include "ferry/notify.h"
#include "ferry/util.h"
/* After util.h: <uv.h> pulls in <sys/param.h>, whose MIN/MAX would otherwise
 * clash with util.h's (a redefinition inside a system header is not reported). */
#include <uv.h>

#define DEFAULT_CONFIG SYSCONFDIR "/ferry/ferryd.conf"

struct options {
	const char *config_path;
	bool config_given; /* -c was on the command line */
	const char *dev_dir;
	bool check_config;
};

struct daemon {
	uv_loop_t loop;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t watchdog;
	bool watchdog_on;
	const struct options *opt;
	struct config *base; /* the defaults the file is read over */
	struct config *cfg;  /* the configuration in effect */
	struct node *node;
	struct ctl_server *ctl; /* the control socket (ctl.h) */
	bool stopping;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ferryd [-c FILE] [--check-config] [--dev DIR] [-d GROUP,...]\n"
		"       ferryd --version | -h\n"
		"\n"
		"  -c, --config FILE   configuration file (default %s)\n"
		"      --check-config  check the configuration, print it in canonical form, exit\n"
		"      --dev DIR       development defaults: every path under DIR, and\n"
		"                      DIR/ferryd.conf as the configuration file if it exists\n"
		"  -d, --debug GROUPS  debug messages for these log groups (comma-separated:\n"
		"                      main, store, peer, gossip, fetch, ctl, config, crypto,\n"
		"                      publish, sideload, or all)\n"
		"      --version       print the version and exit\n"
		"  -h, --help          print this help and exit\n"
		"\n"
		"See ferryd(8) and ferryd.conf(5).\n",
		DEFAULT_CONFIG);
}

/* Switch debug on for "peer,store" or "all". 0, or -1 naming the bad group. */
static int set_debug(const char *list)
{
	char *copy = xstrdup(list), *save = NULL, *g;
	int rc = 0;

	for (g = strtok_r(copy, ",", &save); g != NULL; g = strtok_r(NULL, ",", &save)) {
		int grp = strcmp(g, "all") == 0 ? LOG__GROUPS : log_group_by_name(g);

		if (grp < 0) {
			fprintf(stderr, "ferryd: unknown log group '%s' (see ferryd -h)\n", g);
			rc = -1;
			break;
		}
		log_set_debug((enum log_group)grp, true);
	}
	free(copy);
	return rc;
}

/*
 * Read the configuration over d->base. With --dev and no -c, a missing
 * DIR/ferryd.conf means the development defaults alone. On failure *errors
 * holds every error, one per line (owned by the caller).
 */
static int load_config(const struct daemon *d, struct config **out, char **errors)
{
	const char *path = d->opt->config_path;

	if (d->opt->dev_dir != NULL && !d->opt->config_given && access(path, F_OK) != 0 &&
	    errno == ENOENT)
		return config_parse("", "", 0, d->base, out, errors);
	return config_load(path, d->base, out, errors);
}

/* Log each line of a multi-line error report. */
static void log_lines(enum log_prio prio, const char *text)
{
	while (*text != '\0') {
		size_t n = strcspn(text, "\n");

		log_msg(prio, LOG_CONFIG, "%.*s", (int)n, text);
		text += n;
		if (*text == '\n')
			text++;
	}
}

static const char *site_name(const struct config *c)
{
	return c->site[0] ? c->site : "(none)";
}

static void send_ready(const struct daemon *d)
{
	int rc = notify_sendf("READY=1\nSTATUS=running, site %s", site_name(d->cfg));

	if (rc < 0)
		log_warn(LOG_MAIN, "cannot notify the service manager: %s", ferry_errmsg(rc));
}

static void warn_config(const struct config *c)
{
	if (c->n_publishers == 0)
		log_warn(LOG_CONFIG, "no [trust] publisher in %s: no model will be accepted",
			 c->path[0] ? c->path : "the defaults");
}

static void restart_key_changed(const struct config_key *k, void *arg)
{
	log_warn(LOG_CONFIG, "%s in [%s] changed: the new value takes effect when ferryd restarts",
		 k->key, k->section);
}

/*
 * Re-read the configuration (SIGHUP or `ferryctl reload`, named by who). A
 * refused file keeps the previous configuration; then *errors (if not NULL)
 * gets every problem, one "FILE:LINE: ..." a line, owned by the caller.
 */
static int reload(struct daemon *d, const char *who, char **errors_out)
{
	struct config *next = NULL;
	char *errors = NULL;
	struct timespec ts;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	notify_sendf("RELOADING=1\nMONOTONIC_USEC=%llu",
		     (unsigned long long)ts.tv_sec * 1000000ull +
			 (unsigned long long)ts.tv_nsec / 1000u);
	log_notice(LOG_MAIN, "%s, reloading %s", who, d->opt->config_path);
	rc = load_config(d, &next, &errors);
	if (rc < 0) {
		log_lines(LOG_P_ERR, errors ? errors : ferry_errmsg(rc));
		log_err(LOG_CONFIG, "reload failed: keeping the previous configuration");
		if (errors_out != NULL && errors == NULL)
			errors = xstrdup(ferry_errmsg(rc));
		if (errors_out != NULL)
			*errors_out = errors;
		else
			free(errors);
		send_ready(d);
		return rc;
	}
	config_keep_restart_keys(next, d->cfg, restart_key_changed, NULL);
	if (config_equal(next, d->cfg))
		log_notice(LOG_CONFIG, "configuration reloaded: nothing changed");
	else
		log_notice(LOG_CONFIG, "configuration reloaded");
	warn_config(next);
	rc = node_reload(d->node, next);
	if (rc < 0)
		log_err(LOG_CONFIG, "applying the new configuration: %s", ferry_errmsg(rc));
	config_free(d->cfg);
	d->cfg = next;
	send_ready(d);
	return 0;
}

/* `ferryctl reload` (ctl_server_set_reload). */
static int ctl_reload(void *arg, char **why)
{
	struct daemon *d = arg;

	if (d->stopping)
		return ferry_errf(FERRY_ECANCELED, "ferryd is stopping");
	return reload(d, "ferryctl reload", why);
}

static void on_close(uv_handle_t *h)
{
}

/* The node has closed everything: close the shell's own handles so uv_run returns. */
static void on_node_stopped(void *arg)
{
	struct daemon *d = arg;

	uv_close((uv_handle_t *)&d->sig_term, on_close);
	uv_close((uv_handle_t *)&d->sig_int, on_close);
	uv_close((uv_handle_t *)&d->sig_hup, on_close);
	if (d->watchdog_on)
		uv_close((uv_handle_t *)&d->watchdog, on_close);
}

/* No more commands: stop the node. The watchdog keeps being pinged while the store thread flushes.
 */
static void on_ctl_closed(void *arg)
{
	struct daemon *d = arg;

	node_stop(d->node, on_node_stopped, d);
}

static void shutdown_daemon(struct daemon *d, const char *signame)
{
	if (d->stopping)
		return;
	d->stopping = true;
	log_notice(LOG_MAIN, "received %s, shutting down", signame);
	notify_send("STOPPING=1");
	ctl_server_close(d->ctl, on_ctl_closed, d);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;

	if (signum == SIGHUP) {
		if (!d->stopping)
			reload(d, "received SIGHUP", NULL);
		return;
	}
	shutdown_daemon(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_watchdog(uv_timer_t *t)
{
	int rc = notify_send("WATCHDOG=1");

	if (rc < 0)
		log_warn(LOG_MAIN, "watchdog ping failed: %s", ferry_errmsg(rc));
}

static int start_signal(struct daemon *d, uv_signal_t *h, int signum)
{
	int rc = uv_signal_init(&d->loop, h);

	if (rc == 0) {
		h->data = d;
		rc = uv_signal_start(h, on_signal, signum);
	}
	return rc;
}

static int run(struct daemon *d)
{
	uint64_t wd_usec;
	int rc;

	rc = uv_loop_init(&d->loop);
	if (rc < 0) {
		log_err(LOG_MAIN, "cannot create the event loop: %s", uv_strerror(rc));
		return 1;
	}
	if ((rc = start_signal(d, &d->sig_term, SIGTERM)) < 0 ||
	    (rc = start_signal(d, &d->sig_int, SIGINT)) < 0 ||
	    (rc = start_signal(d, &d->sig_hup, SIGHUP)) < 0)
		fatal("cannot handle signals: %s", uv_strerror(rc));
	wd_usec = notify_watchdog_usec();
	if (wd_usec > 0) {
		uint64_t ms = MAX(wd_usec / 2000u, 1u);

		uv_timer_init(&d->loop, &d->watchdog);
		uv_timer_start(&d->watchdog, on_watchdog, ms, ms);
		d->watchdog_on = true;
		log_info(LOG_MAIN, "watchdog ping every %llu ms", (unsigned long long)ms);
	}
	log_notice(LOG_MAIN, "ferryd %s starting, site %s", PACKAGE_VERSION, site_name(d->cfg));
	warn_config(d->cfg);
	rc = node_new(&d->loop, d->cfg, &d->node);
	if (rc < 0) {
		log_err(LOG_MAIN, "%s", ferry_errmsg(rc));
		return 1;
	}
	rc = ctl_server_new(&d->loop, d->node, d->cfg, &d->ctl);
	if (rc < 0) {
		/* Stop the node cleanly (its store thread), then fail. */
		log_err(LOG_MAIN, "%s", ferry_errmsg(rc));
		d->stopping = true;
		node_stop(d->node, on_node_stopped, d);
		uv_run(&d->loop, UV_RUN_DEFAULT);
		node_free(d->node);
		uv_loop_close(&d->loop);
		return 1;
	}
	ctl_server_set_reload(d->ctl, ctl_reload, d);
	send_ready(d);
	uv_run(&d->loop, UV_RUN_DEFAULT);
	node_free(d->node);
	rc = uv_loop_close(&d->loop);
	if (rc < 0)
		log_warn(LOG_MAIN, "event loop closed with handles open: %s", uv_strerror(rc));
	log_notice(LOG_MAIN, "stopped");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"check-config", no_argument, NULL, 'n'},
	    {"dev", required_argument, NULL, 'D'},
	    {"debug", required_argument, NULL, 'd'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct options opt = {.config_path = DEFAULT_CONFIG};
	struct daemon d = {.opt = &opt};
	char *errors = NULL, *dev_conf = NULL;
	int c, rc, status = 1;

	while ((c = getopt_long(argc, argv, "c:d:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			opt.config_path = optarg;
			opt.config_given = true;
			break;
		case 'n':
			opt.check_config = true;
			break;
		case 'D':
			opt.dev_dir = optarg;
			break;
		case 'd':
			if (set_debug(optarg) < 0)
				return 2;
			break;
		case 'V':
			printf("ferryd %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "ferryd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	if (opt.dev_dir != NULL) {
		rc = config_default_dev(opt.dev_dir, &d.base);
		if (rc < 0) {
			fprintf(stderr, "ferryd: %s\n", ferry_errmsg(rc));
			return 1;
		}
		if (!opt.config_given)
			opt.config_path = dev_conf = xasprintf("%s/ferryd.conf", opt.dev_dir);
	} else {
		d.base = config_default();
	}

	rc = load_config(&d, &d.cfg, &errors);
	if (rc < 0) {
		if (opt.check_config)
			fputs(errors, stderr);
		else
			log_lines(LOG_P_ERR, errors);
		goto out;
	}
	if (opt.check_config) {
		config_print(d.cfg, stdout);
		status = fflush(stdout) == 0 ? 0 : 1;
		goto out;
	}

	/* A peer that hangs up mid-write is an error code, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	status = run(&d);
out:
	free(errors);
	free(dev_conf);
	config_free(d.cfg);
	config_free(d.base);
	return status;
}
