/*
 * LAN discovery beacons; see include/ferry/discovery.h for the layout and
 * the rules.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry/discovery.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/log.h"
#include "ferry/util.h"
#include <uv.h>

#define MAC_OFF	 128
#define MAC_LEN	 16
#define MAGIC	 "FLAN"
#define KEY_INFO "ferry-lan-v1"
/* Nodes answered recently, so one beacon per interval gets at most one reply. */
#define REPLIED_MAX 256

static void be_put(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t be_get(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

void discovery_key(uint8_t key[static 32], const uint8_t netkey[static 32])
{
	uint8_t buf[sizeof(KEY_INFO) - 1 + 32];

	memcpy(buf, KEY_INFO, sizeof(KEY_INFO) - 1);
	memcpy(buf + sizeof(KEY_INFO) - 1, netkey, 32);
	fcrypto_id(key, buf, sizeof(buf));
	fcrypto_wipe(buf, sizeof(buf));
}

static void mac(uint8_t out[static 32], const uint8_t key[static 32], const uint8_t *body)
{
	uint8_t buf[32 + MAC_OFF];

	memcpy(buf, key, 32);
	memcpy(buf + 32, body, MAC_OFF);
	fcrypto_id(out, buf, sizeof(buf));
	fcrypto_wipe(buf, 32);
}

int discovery_encode(const uint8_t key[static 32], const struct discovery_beacon *b,
		     uint8_t out[static DISCOVERY_BEACON_LEN])
{
	size_t slen = strlen(b->site);
	uint8_t m[32];

	if (slen > DISCOVERY_SITE_MAX)
		return ferry_errf(FERRY_EINVAL, "site '%s' is longer than %d bytes", b->site,
				  DISCOVERY_SITE_MAX);
	if (b->port == 0)
		return ferry_errf(FERRY_EINVAL, "a beacon needs a listen port");
	memset(out, 0, DISCOVERY_BEACON_LEN);
	memcpy(out, MAGIC, 4);
	out[4] = DISCOVERY_VERSION;
	out[5] = b->reply ? 1 : 0;
	be_put(out + 6, b->port, 2);
	be_put(out + 8, (uint64_t)b->time, 8);
	memcpy(out + 16, b->id, 32);
	out[48] = (uint8_t)slen;
	memcpy(out + 49, b->site, slen);
	fcrypto_random(out + 113, 8);
	mac(m, key, out);
	memcpy(out + MAC_OFF, m, MAC_LEN);
	return 0;
}

int discovery_decode(const uint8_t key[static 32], const uint8_t *p, size_t n, int64_t now_unix,
		     struct discovery_beacon *out)
{
	uint8_t m[32];
	int64_t t;

	if (n != DISCOVERY_BEACON_LEN || memcmp(p, MAGIC, 4) != 0)
		return ferry_errf(FERRY_EAUTH, "not a ferry beacon (%zu bytes)", n);
	mac(m, key, p);
	if (!fcrypto_equal(m, p + MAC_OFF, MAC_LEN))
		return ferry_errf(FERRY_EAUTH, "a beacon of another network (its MAC does not "
					       "verify with this network key)");
	if (p[4] != DISCOVERY_VERSION)
		return ferry_errf(FERRY_EVERSION, "beacon version %u, this node speaks %u",
				  (unsigned)p[4], (unsigned)DISCOVERY_VERSION);
	memset(out, 0, sizeof(*out));
	out->reply = p[5] & 1;
	out->port = (uint16_t)be_get(p + 6, 2);
	t = (int64_t)be_get(p + 8, 8);
	memcpy(out->id, p + 16, 32);
	if (out->port == 0 || p[48] > DISCOVERY_SITE_MAX)
		return ferry_errf(FERRY_EPROTO, "a beacon with port %u and a site of %u bytes",
				  (unsigned)out->port, (unsigned)p[48]);
	memcpy(out->site, p + 49, p[48]);
	for (size_t i = 0; i < p[48]; i++)
		if ((unsigned char)out->site[i] < 0x20 || (unsigned char)out->site[i] > 0x7e)
			return ferry_errf(FERRY_EPROTO, "a beacon whose site is not printable");
	if (t < now_unix - DISCOVERY_SKEW_MAX || t > now_unix + DISCOVERY_SKEW_MAX)
		return ferry_errf(FERRY_EPROTO, "a beacon whose clock is more than %d s off",
				  (int)DISCOVERY_SKEW_MAX);
	out->time = t;
	return 0;
}

struct replied {
	uint8_t id[32];
	int64_t at;
};

struct discovery {
	uv_loop_t *loop;
	uv_udp_t udp;
	uv_timer_t timer;
	int open;
	uint8_t key[32];
	struct discovery_beacon self;
	uint16_t port;
	void (*found)(void *arg, const struct discovery_beacon *b, const char *host);
	void *arg;
	struct replied replied[REPLIED_MAX];
	unsigned nreplied;
	bool send_failed_logged;
	uint8_t rbuf[DISCOVERY_BEACON_LEN + 1];
	void (*stop_cb)(void *arg);
	void *stop_arg;
};

struct send_req {
	uv_udp_send_t req;
	uint8_t buf[DISCOVERY_BEACON_LEN];
};

static void on_sent(uv_udp_send_t *req, int status)
{
	struct discovery *d = req->handle->data;

	if (status < 0 && !d->send_failed_logged) {
		log_info(LOG_PEER, "LAN discovery cannot send beacons: %s", uv_strerror(status));
		d->send_failed_logged = true;
	}
	free(req);
}

static void send_beacon(struct discovery *d, const struct sockaddr *to, bool reply)
{
	struct send_req *s = xmalloc(sizeof(*s));
	struct discovery_beacon b = d->self;
	uv_buf_t buf;
	int rc;

	b.reply = reply;
	b.time = (int64_t)time(NULL);
	if (discovery_encode(d->key, &b, s->buf) < 0) {
		free(s);
		return;
	}
	buf = uv_buf_init((char *)s->buf, DISCOVERY_BEACON_LEN);
	rc = uv_udp_send(&s->req, &d->udp, &buf, 1, to, on_sent);
	if (rc < 0) {
		free(s);
		if (!d->send_failed_logged) {
			log_info(LOG_PEER, "LAN discovery cannot send beacons: %s",
				 uv_strerror(rc));
			d->send_failed_logged = true;
		}
	}
}

static void on_timer(uv_timer_t *t)
{
	struct discovery *d = t->data;
	struct sockaddr_in group;

	uv_ip4_addr(DISCOVERY_GROUP, d->port, &group);
	send_beacon(d, (const struct sockaddr *)&group, false);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct discovery *d = h->data;

	*buf = uv_buf_init((char *)d->rbuf, sizeof(d->rbuf));
}

/* True if id was answered within the interval; otherwise note it as answered now. */
static bool replied_recently(struct discovery *d, const uint8_t id[32], int64_t now)
{
	unsigned n = MIN(d->nreplied, (unsigned)REPLIED_MAX);

	for (unsigned i = 0; i < n; i++) {
		if (memcmp(d->replied[i].id, id, 32) != 0)
			continue;
		if (now - d->replied[i].at < DISCOVERY_INTERVAL_S)
			return true;
		d->replied[i].at = now;
		return false;
	}
	memcpy(d->replied[d->nreplied % REPLIED_MAX].id, id, 32);
	d->replied[d->nreplied % REPLIED_MAX].at = now;
	d->nreplied++;
	return false;
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
		    unsigned flags)
{
	struct discovery *d = h->data;
	struct discovery_beacon b;
	char host[64];
	int64_t now = (int64_t)time(NULL);
	int rc;

	if (nread <= 0 || addr == NULL || (flags & UV_UDP_PARTIAL))
		return;
	rc = discovery_decode(d->key, (const uint8_t *)buf->base, (size_t)nread, now, &b);
	if (rc < 0) {
		log_debug(LOG_PEER, "ignored a datagram on the discovery port: %s",
			  ferry_errmsg(rc));
		return;
	}
	if (memcmp(b.id, d->self.id, 32) == 0)
		return;
	if (addr->sa_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)addr, host, sizeof(host));
	else if (addr->sa_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)addr, host, sizeof(host));
	else
		return;
	/* Answer a node's beacon once per interval, with a beacon of the same size. */
	if (!b.reply && !replied_recently(d, b.id, now))
		send_beacon(d, addr, true);
	d->found(d->arg, &b, host);
}

int discovery_start(struct uv_loop_s *loop, const uint8_t netkey[static 32],
		    const struct discovery_beacon *self, uint16_t port,
		    void (*found)(void *arg, const struct discovery_beacon *b, const char *host),
		    void *arg, struct discovery **out)
{
	struct discovery *d = xcalloc(1, sizeof(*d));
	struct sockaddr_in any;
	int rc;

	*out = NULL;
	d->loop = loop;
	discovery_key(d->key, netkey);
	d->self = *self;
	d->port = port;
	d->found = found;
	d->arg = arg;
	uv_ip4_addr("0.0.0.0", port, &any);
	rc = uv_udp_init(loop, &d->udp);
	if (rc < 0) {
		free(d);
		return ferry_errf(FERRY_EIO, "LAN discovery: %s", uv_strerror(rc));
	}
	d->udp.data = d;
	d->open = 1;
	if ((rc = uv_udp_bind(&d->udp, (const struct sockaddr *)&any, UV_UDP_REUSEADDR)) < 0 ||
	    (rc = uv_udp_set_membership(&d->udp, DISCOVERY_GROUP, NULL, UV_JOIN_GROUP)) < 0 ||
	    (rc = uv_udp_set_multicast_loop(&d->udp, 1)) < 0 ||
	    (rc = uv_udp_set_multicast_ttl(&d->udp, 1)) < 0 ||
	    (rc = uv_udp_recv_start(&d->udp, on_alloc, on_recv)) < 0) {
		rc = ferry_errf(FERRY_EIO, "LAN discovery on UDP port %u: %s", (unsigned)port,
				uv_strerror(rc));
		discovery_stop(d, NULL, NULL);
		return rc;
	}
	uv_timer_init(loop, &d->timer);
	d->timer.data = d;
	d->open++;
	uv_timer_start(&d->timer, on_timer, 0, DISCOVERY_INTERVAL_S * 1000u);
	*out = d;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	struct discovery *d = h->data;

	if (--d->open > 0)
		return;
	if (d->stop_cb != NULL)
		d->stop_cb(d->stop_arg);
	free(d);
}

void discovery_stop(struct discovery *d, void (*cb)(void *arg), void *arg)
{
	if (d == NULL) {
		if (cb != NULL)
			cb(arg);
		return;
	}
	d->stop_cb = cb;
	d->stop_arg = arg;
	if (d->open == 2)
		uv_close((uv_handle_t *)&d->timer, on_closed);
	uv_close((uv_handle_t *)&d->udp, on_closed);
}
