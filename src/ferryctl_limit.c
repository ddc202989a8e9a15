/*
 * ferryctl limit: the rate limits of a running ferryd (docs/ferryctl.1).
 *
 *   ferryctl limit              every limit, its rate in force and its source
 *   ferryctl limit NAME RATE    override one until ferryd restarts
 *   ferryctl limit NAME config  drop the override
 *
 * The names and rates are checked by the daemon (node_limit_set), so that a
 * ferryctl and a ferryd of different versions agree on what is valid, and
 * the sentence that refuses a bad one is the same in the log and here.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry/ctl.h"
#include "ferry/ctl_client.h"
#include "ferry/ctl_out.h"
#include "ferry/node.h"
#include "ferry/util.h"
#include "ferryctl.h"

/* "2.0 Mbit/s" or "unlimited" as text; bits/s (0 = unlimited) in JSON. */
static void out_limit(struct ctl *c, const char *key, const char *label, uint64_t bps)
{
	char buf[32];

	if (c->json)
		ctl_out_uint(c->out, key, label, bps);
	else if (bps == 0)
		ctl_out_str(c->out, key, label, "unlimited");
	else
		ctl_out_str(c->out, key, label, fmt_rate(buf, sizeof(buf), (double)bps));
}

static void out_row(struct ctl *c, const struct node_limit_row *row)
{
	ctl_out_str(c->out, "name", "name", row->name ? row->name : "");
	out_limit(c, "rate_bps", "rate", row->rate_bps);
	ctl_out_str(c->out, "source", "source", row->source ? row->source : "");
	out_limit(c, "config_bps", "config", row->config_bps);
}

static int on_limit(void *arg, struct ctl_client *cl, const struct ctl_msg *m)
{
	struct ctl *c = arg;
	struct node_limit_row row;
	char *mem;
	int r;

	(void)cl;
	r = daemon_record(m, CTL_DATA_LIMIT, &row, &mem);
	if (r < 0) {
		free(mem);
		return r;
	}
	ctl_out_row_begin(c->out);
	out_row(c, &row);
	ctl_out_row_end(c->out);
	c->rows++;
	free(mem);
	return 0;
}

/* The write form's one record: the limit as it is now. */
static int on_set(void *arg, struct ctl_client *cl, const struct ctl_msg *m)
{
	struct ctl *c = arg;
	struct node_limit_row row;
	char *mem, buf[32];
	int r;

	(void)cl;
	r = daemon_record(m, CTL_DATA_LIMIT, &row, &mem);
	if (r < 0) {
		free(mem);
		return r;
	}
	out_row(c, &row);
	if (row.rate_bps == 0)
		snprintf(buf, sizeof(buf), "unlimited");
	else
		fmt_rate(buf, sizeof(buf), (double)row.rate_bps);
	if (row.source != NULL && strcmp(row.source, "runtime") == 0)
		ctl_out_note(
		    c->out, "%s is %s until ferryd restarts ('ferryctl limit %s config' undoes it)",
		    row.name, buf, row.name);
	else
		ctl_out_note(c->out, "%s is %s again, as the %s says", row.name, buf,
			     row.source && strcmp(row.source, "window") == 0 ? "wan_window in force"
									     : "configuration");
	c->rows++;
	free(mem);
	return 0;
}

int cmd_limit(struct ctl *c)
{
	struct ctl_request req = {.cmd = "limits"};
	int r;

	if (c->npos == 1)
		return usage_err(c->cmd,
				 "missing RATE after %s (a rate such as 2mbit, 0 for "
				 "unlimited, or config)",
				 c->pos[0]);
	if (c->npos == 2) {
		req.cmd = "limit";
		ctl_request_str(&req, "limit", c->pos[0]);
		ctl_request_str(&req, "rate", c->pos[1]);
		r = daemon_call(c, &req, -1, on_set, c);
		return r < 0 ? fail(c, r) : 0;
	}
	ctl_out_list_begin(c->out, "limits");
	r = daemon_call(c, &req, -1, on_limit, c);
	ctl_out_list_end(c->out);
	return r < 0 ? fail(c, r) : 0;
}

void status_limits(struct ctl *c, const struct node_status *n)
{
	static const char *const names[] = {"download",	  "upload",	  "wan_download",
					    "wan_upload", "lan_download", "lan_upload"};
	const uint64_t v[] = {n->limit_download,   n->limit_upload,	  n->limit_wan_download,
			      n->limit_wan_upload, n->limit_lan_download, n->limit_lan_upload};
	char *text = NULL, buf[32];

	if (c->json) {
		for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
			char *key = xasprintf("limit_%s_bps", names[i]);

			ctl_out_uint(c->out, key, names[i], v[i]);
			free(key);
		}
		return;
	}
	/* Text: only the limits that are set, "wan_download 2.0 Mbit/s, upload 8.0 Mbit/s". */
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		char *next;

		if (v[i] == 0)
			continue;
		next = xasprintf("%s%s%s %s", text ? text : "", text ? ", " : "", names[i],
				 fmt_rate(buf, sizeof(buf), (double)v[i]));
		free(text);
		text = next;
	}
	ctl_out_str(c->out, "", "limits", text ? text : "none");
	free(text);
}
