/*
 * Transport throughput: two peer_nets in one process, each on its own loop
 * and thread (as two daemons would be), move the bytes of a file over
 * loopback as CHUNK_DATA messages: 1 MiB chunks in 60 KiB pieces, the sender
 * paced by on_writable as the fetch glue will be, the receiver copying each
 * piece into a reassembly buffer and comparing each finished chunk with the
 * source. bench/peer.sh runs it against a plain socat copy of the same file.
 *
 *   bench/bench_peer FILE      prints: bytes=N seconds=S GB/s=R
 */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "ferry/error.h"
#include "ferry/nodekey.h"
#include "ferry/peer.h"
#include "ferry/util.h"
#include "ferry/wire.h"

#define CHUNK (1024u * 1024u)
/* Keep this much queued on the sender: a few batches, far below the total. */
#define HIGH_WATER (4u * 1024u * 1024u)

struct side {
	uv_loop_t loop;
	uv_async_t stop;
	struct peer_net *net;
	struct nodekey key;
	pthread_t thread;
};

static const uint8_t *src;
static size_t total;
static size_t sent;	 /* sender thread only */
static uint64_t t_start; /* set by the sender thread before the first byte */
static uint64_t t_end;	 /* set by the receiver thread after the last */
static atomic_bool finished;
static size_t got;     /* receiver thread only */
static uint8_t *chunk; /* receiver's reassembly buffer */
static struct side snd, rcv;

static void pace(struct peer_conn *c)
{
	while (sent < total && peer_conn_queued(c) < HIGH_WATER) {
		size_t n = MIN(total - sent, (size_t)CHUNK);
		int rc = peer_conn_send_chunk(c, (uint32_t)(sent / CHUNK), src + sent, n, 0);

		if (rc != 0)
			fatal("send: %s", ferry_errmsg(rc));
		sent += n;
	}
}

static void snd_up(struct peer_conn *c, const uint8_t id[NODEKEY_LEN],
		   const struct wire_hello *hello, void *ctx)
{
	(void)id;
	(void)hello;
	(void)ctx;
	t_start = uv_hrtime();
	pace(c);
}

static void snd_writable(struct peer_conn *c, void *ctx)
{
	(void)ctx;
	pace(c);
}

static void rcv_up(struct peer_conn *c, const uint8_t id[NODEKEY_LEN],
		   const struct wire_hello *hello, void *ctx)
{
	(void)c;
	(void)id;
	(void)hello;
	(void)ctx;
}

static void rcv_message(struct peer_conn *c, const struct wire_msg *m, void *ctx)
{
	const struct wire_chunk_data *d = &m->chunk_data;
	size_t base;

	(void)c;
	(void)ctx;
	if (m->type != WIRE_CHUNK_DATA)
		return;
	base = (size_t)d->req * CHUNK;
	memcpy(chunk + d->offset, d->data, d->len);
	got += d->len;
	/* Every 16th chunk is compared whole (a full compare costs a tenth of the receiver). */
	if (d->offset + d->len == d->total && d->req % 16 == 0 &&
	    memcmp(chunk, src + base, d->total) != 0)
		fatal("chunk %u arrived changed", d->req);
	if (got == total) {
		t_end = uv_hrtime();
		atomic_store(&finished, true);
		uv_async_send(&rcv.stop);
		uv_async_send(&snd.stop);
	}
}

static void ignore_msg(struct peer_conn *c, const struct wire_msg *m, void *ctx)
{
	(void)c;
	(void)m;
	(void)ctx;
}

static void on_down(struct peer_conn *c, int reason, void *ctx)
{
	(void)c;
	(void)ctx;
	if (!atomic_load(&finished) && reason != FERRY_ECANCELED)
		fatal("connection lost before the end: %s", ferry_strerror(reason));
}

static void stop_cb(uv_async_t *a)
{
	struct side *s = a->data;

	peer_net_free(s->net);
	uv_close((uv_handle_t *)a, NULL);
}

static void *run(void *arg)
{
	struct side *s = arg;

	uv_run(&s->loop, UV_RUN_DEFAULT);
	return NULL;
}

static void side_init(struct side *s, const uint8_t *netkey, bool listen,
		      const struct peer_callbacks *cb)
{
	struct peer_net_config cfg = {
	    .key = &s->key,
	    .netkey = netkey,
	    .listen_host = listen ? "127.0.0.1" : NULL,
	    .site = "bench",
	    .cb = *cb,
	};
	int rc;

	uv_loop_init(&s->loop);
	nodekey_generate(&s->key);
	uv_async_init(&s->loop, &s->stop, stop_cb);
	s->stop.data = s;
	if ((rc = peer_net_new(&s->loop, &cfg, &s->net)) != 0)
		fatal("peer_net_new: %s", ferry_errmsg(rc));
}

int main(int argc, char **argv)
{
	struct peer_callbacks scb = {.on_up = snd_up,
				     .on_message = ignore_msg,
				     .on_down = on_down,
				     .on_writable = snd_writable};
	struct peer_callbacks rcb = {
	    .on_up = rcv_up, .on_message = rcv_message, .on_down = on_down};
	uint8_t netkey[32];
	struct stat st;
	double secs;
	int fd;

	if (argc != 2)
		fatal("usage: bench_peer FILE");
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0)
		fatal("cannot read %s", argv[1]);
	total = (size_t)st.st_size;
	src = mmap(NULL, total, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (src == MAP_FAILED)
		fatal("cannot map %s", argv[1]);
	chunk = xmalloc(CHUNK);
	memset(netkey, 7, sizeof(netkey));
	side_init(&rcv, netkey, true, &rcb);
	side_init(&snd, netkey, false, &scb);
	if (peer_net_dial(snd.net, "127.0.0.1", peer_net_port(rcv.net), rcv.key.pk, 0) != 0)
		fatal("dial: %s", ferry_errmsg(FERRY_EINVAL));
	pthread_create(&rcv.thread, NULL, run, &rcv);
	pthread_create(&snd.thread, NULL, run, &snd);
	pthread_join(rcv.thread, NULL);
	pthread_join(snd.thread, NULL);
	uv_loop_close(&rcv.loop);
	uv_loop_close(&snd.loop);
	secs = (double)(t_end - t_start) / 1e9;
	printf("bytes=%zu seconds=%.3f GB/s=%.3f\n", total, secs, (double)total / secs / 1e9);
	munmap((void *)src, total);
	close(fd);
	free(chunk);
	return 0;
}
