/*
 * The control protocol's client (include/ferry/ctl_client.h): blocking
 * sockets, since ferryctl does one thing at a time and waits for it.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ferry/ctl.h"
#include "ferry/ctl_client.h"
#include "ferry/error.h"
#include "ferry/util.h"

struct ctl_client {
	int fd;
	char *path;
	uint8_t *buf; /* the message being read */
	size_t cap;
	char *message; /* the last successful result's sentence */
};

/* The socket's group name, for "are you in the 'ferry' group?". */
static char *socket_group(const char *path)
{
	struct group gr, *res = NULL;
	struct stat st;
	char buf[4096];

	if (stat(path, &st) == 0 && getgrgid_r(st.st_gid, &gr, buf, sizeof(buf), &res) == 0 &&
	    res != NULL)
		return xstrdup(res->gr_name);
	return xstrdup("ferry");
}

int ctl_client_connect(const char *path, struct ctl_client **out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ctl_client *c;
	char *group;
	int fd, rc, e;

	*out = NULL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return ferry_errf(FERRY_ENAMETOOLONG,
				  "cannot connect to %s: a socket path has at most %zu bytes", path,
				  sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ferry_errno(errno, "cannot make a socket");
	do
		rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	while (rc != 0 && errno == EINTR);
	if (rc != 0) {
		e = errno;
		close(fd);
		switch (e) {
		case ENOENT:
		case ECONNREFUSED:
			return ferry_errf(-e, "cannot connect to %s: %s — is ferryd running?", path,
					  strerror(e));
		case EACCES:
		case EPERM:
			group = socket_group(path);
			rc = ferry_errf(FERRY_EACCES,
					"cannot connect to %s: permission denied — are you in the "
					"'%s' group?",
					path, group);
			free(group);
			return rc;
		default:
			return ferry_errno(e, "cannot connect to %s", path);
		}
	}
	c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->path = xstrdup(path);
	*out = c;
	return 0;
}

void ctl_client_free(struct ctl_client *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	free(c->path);
	free(c->buf);
	free(c->message);
	free(c);
}

/* Send a whole framed message, the nfds (0..2) descriptors of fds with its first byte. */
static int send_msg_fds(struct ctl_client *c, const uint8_t *msg, size_t len, const int *fds,
			size_t nfds)
{
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} ctrl;
	size_t off = 0;

	while (off < len) {
		struct iovec iov = {.iov_base = (void *)(msg + off), .iov_len = len - off};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		ssize_t n;

		if (nfds > 0) {
			struct cmsghdr *cm;

			memset(&ctrl, 0, sizeof(ctrl));
			mh.msg_control = ctrl.buf;
			mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
			memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
		}
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		/*
		 * ferryd hung up: what it said before (a refusal, "serving 64
		 * control clients already") is read as the reply.
		 */
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return 0;
		if (n < 0)
			return ferry_errno(errno, "cannot send to ferryd at %s", c->path);
		off += (size_t)n;
		nfds = 0;
	}
	return 0;
}

static int send_msg(struct ctl_client *c, const uint8_t *msg, size_t len, int fd)
{
	return send_msg_fds(c, msg, len, &fd, fd >= 0 ? 1 : 0);
}

int ctl_client_request(struct ctl_client *c, const struct ctl_request *req, int fd)
{
	struct ctl_request r = *req;
	uint8_t *msg = NULL;
	size_t len;
	int rc;

	r.version = CTL_PROTO_VERSION;
	rc = ctl_request_encode(&r, &msg, &len);
	if (rc == 0)
		rc = send_msg(c, msg, len, fd);
	free(msg);
	return rc;
}

int ctl_client_request2(struct ctl_client *c, const struct ctl_request *req, int fd, int fd2)
{
	struct ctl_request r = *req;
	int fds[2] = {fd, fd2};
	uint8_t *msg = NULL;
	size_t len;
	int rc;

	r.version = CTL_PROTO_VERSION;
	rc = ctl_request_encode(&r, &msg, &len);
	if (rc == 0)
		rc = send_msg_fds(c, msg, len, fds, fd2 >= 0 ? 2 : 1);
	free(msg);
	return rc;
}

int ctl_client_send_signature(struct ctl_client *c, const uint8_t sig[static 64])
{
	uint8_t *msg;
	size_t len;
	int rc;

	ctl_signature_encode(sig, &msg, &len);
	rc = send_msg(c, msg, len, -1);
	free(msg);
	return rc;
}

/* Read exactly n bytes; at EOF, FERRY_EIO saying the daemon hung up. */
static int recv_full(struct ctl_client *c, void *dst, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(c->fd, (uint8_t *)dst + got, n - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return ferry_errno(errno, "cannot read from ferryd at %s", c->path);
		if (r == 0)
			return ferry_errf(FERRY_EIO,
					  "ferryd closed the connection before answering (did it "
					  "stop? see its log)");
		got += (size_t)r;
	}
	return 0;
}

int ctl_client_replies(struct ctl_client *c, ctl_client_data_fn *on_data, void *arg)
{
	uint8_t hdr[CTL_HDR_LEN];
	struct ctl_msg m;
	uint32_t len;
	int rc;

	free(c->message);
	c->message = NULL;
	for (;;) {
		rc = recv_full(c, hdr, sizeof(hdr));
		if (rc < 0)
			return rc;
		rc = ctl_hdr_get(hdr, CTL_MSG_MAX, &len);
		if (rc < 0)
			return ferry_errf(FERRY_EPROTO, "bad reply from ferryd: %s",
					  ferry_errmsg(rc));
		if (c->cap < len) {
			free(c->buf);
			c->buf = xmalloc(len);
			c->cap = len;
		}
		rc = recv_full(c, c->buf, len);
		if (rc < 0)
			return rc;
		rc = ctl_msg_decode(c->buf, len, &m);
		if (rc < 0)
			return rc;
		if (m.type == CTL_MSG_RESULT) {
			if (m.code < 0 && m.msg_len == 0)
				return ferry_errf(m.code, "%s", ferry_strerror(m.code));
			if (m.code < 0)
				return ferry_errf(m.code, "%.*s", (int)m.msg_len, m.msg);
			c->message = xmalloc(m.msg_len + 1);
			memcpy(c->message, m.msg, m.msg_len);
			c->message[m.msg_len] = '\0';
			return 0;
		}
		if (on_data != NULL && (rc = on_data(arg, c, &m)) < 0)
			return rc;
	}
}

const char *ctl_client_message(const struct ctl_client *c)
{
	return c->message ? c->message : "";
}

/* "45s", "12m05s", "3h04m"; "--" when there is no rate or it is absurdly far. */
static void fmt_eta(char *buf, size_t cap, uint64_t left_bytes, double rate_bps)
{
	double s = rate_bps > 0 ? (double)left_bytes * 8.0 / rate_bps : -1;
	uint64_t t;

	if (s < 0 || s > 99.0 * 86400)
		snprintf(buf, cap, "--");
	else if ((t = (uint64_t)(s + 0.5)) < 60)
		snprintf(buf, cap, "%llus", (unsigned long long)t);
	else if (t < 3600)
		snprintf(buf, cap, "%llum%02llus", (unsigned long long)(t / 60),
			 (unsigned long long)(t % 60));
	else
		snprintf(buf, cap, "%lluh%02llum", (unsigned long long)(t / 3600),
			 (unsigned long long)(t / 60 % 60));
}

char *ctl_progress_format(char *buf, size_t cap, const struct ctl_progress *p, bool bar)
{
	enum { BAR = 20 };
	char have[32], need[32], rate[32], eta[32], bars[BAR + 4] = "";
	const struct node_progress *q = &p->p;
	uint64_t have_b = MIN(q->have_bytes, q->need_bytes);
	double pct = q->need_bytes ? 100.0 * (double)have_b / (double)q->need_bytes
				   : (q->complete ? 100.0 : 0.0);

	if (q->version == 0 || q->waiting_manifest) {
		snprintf(buf, cap, "%s: waiting for a peer to offer the manifest", p->name);
		return buf;
	}
	if (!q->complete && q->need_bytes == 0) {
		/* The manifest is known, the sizes in its chunk index not yet. */
		snprintf(buf, cap, "%s@%llu: starting, size not known yet", p->name,
			 (unsigned long long)q->version);
		return buf;
	}
	if (q->complete)
		pct = 100.0;
	if (bar) {
		int full = (int)(pct * BAR / 100.0);

		bars[0] = '[';
		for (int i = 0; i < BAR; i++)
			bars[1 + i] = i < full ? '#' : ' ';
		bars[BAR + 1] = ']';
		bars[BAR + 2] = ' ';
		bars[BAR + 3] = '\0';
	}
	fmt_bytes(have, sizeof(have), have_b);
	fmt_bytes(need, sizeof(need), q->need_bytes);
	fmt_rate(rate, sizeof(rate), q->rate_bps);
	if (q->complete) {
		snprintf(eta, sizeof(eta), "done");
	} else {
		char t[24];

		fmt_eta(t, sizeof(t), q->need_bytes - have_b, q->rate_bps);
		snprintf(eta, sizeof(eta), "ETA %s", t);
	}
	snprintf(buf, cap, "%s@%llu  %s%5.1f%%  %s of %s  %s  %s  %u source%s", p->name,
		 (unsigned long long)q->version, bars, pct, have, need, rate, eta, q->sources,
		 q->sources == 1 ? "" : "s");
	return buf;
}
