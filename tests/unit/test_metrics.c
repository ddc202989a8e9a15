/*
 * Unit tests for the metrics: the exact Prometheus text of a snapshot
 * (golden), label escaping, the zero snapshot, and the atomic textfile.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/metrics.h"
#include "ferry/util.h"

static const char golden[] =
    "# HELP ferry_peer_receive_bytes_total Payload bytes received from peers, by link class "
    "(lan: same site).\n"
    "# TYPE ferry_peer_receive_bytes_total counter\n"
    "ferry_peer_receive_bytes_total{link=\"lan\"} 1000\n"
    "ferry_peer_receive_bytes_total{link=\"wan\"} 18446744073709551615\n"
    "# HELP ferry_peer_transmit_bytes_total Payload bytes sent to peers, by link class (lan: "
    "same site).\n"
    "# TYPE ferry_peer_transmit_bytes_total counter\n"
    "ferry_peer_transmit_bytes_total{link=\"lan\"} 3\n"
    "ferry_peer_transmit_bytes_total{link=\"wan\"} 4\n"
    "# HELP ferry_chunks_verified_total Chunks received from peers that matched their id.\n"
    "# TYPE ferry_chunks_verified_total counter\n"
    "ferry_chunks_verified_total 812\n"
    "# HELP ferry_chunks_rejected_total Chunks received from peers that did not match their id.\n"
    "# TYPE ferry_chunks_rejected_total counter\n"
    "ferry_chunks_rejected_total 2\n"
    "# HELP ferry_peer_reconnects_total Peer connections replaced by a fresh one after their "
    "path went silent.\n"
    "# TYPE ferry_peer_reconnects_total counter\n"
    "ferry_peer_reconnects_total 5\n"
    "# HELP ferry_resumed_bytes_total Chunk bytes kept across a dropped connection and not "
    "fetched again.\n"
    "# TYPE ferry_resumed_bytes_total counter\n"
    "ferry_resumed_bytes_total 131072\n"
    "# HELP ferry_peers Known peers by connection state.\n"
    "# TYPE ferry_peers gauge\n"
    "ferry_peers{state=\"connected\"} 2\n"
    "ferry_peers{state=\"connecting\"} 0\n"
    "ferry_peers{state=\"backoff\"} 1\n"
    "ferry_peers{state=\"banned\"} 0\n"
    "ferry_peers{state=\"odd \\\"state\\\"\\\\\\n\"} 1\n"
    "# HELP ferry_model_present_ratio Fraction of a model version's encoded bytes present in "
    "the store.\n"
    "# TYPE ferry_model_present_ratio gauge\n"
    "ferry_model_present_ratio{name=\"llama-7b\",version=\"3\"} 1\n"
    "ferry_model_present_ratio{name=\"llama-7b\",version=\"4\"} 0.25\n"
    "ferry_model_present_ratio{name=\"whisper\",version=\"12\"} 0.333333333333333\n"
    "ferry_model_present_ratio{name=\"q\\\"x\\\\y\\nz\",version=\"1\"} 0\n"
    "# HELP ferry_model_size_bytes Raw size of a model version's files.\n"
    "# TYPE ferry_model_size_bytes gauge\n"
    "ferry_model_size_bytes{name=\"llama-7b\",version=\"3\"} 13476839424\n"
    "ferry_model_size_bytes{name=\"llama-7b\",version=\"4\"} 13476839425\n"
    "ferry_model_size_bytes{name=\"whisper\",version=\"12\"} 1000\n"
    "ferry_model_size_bytes{name=\"q\\\"x\\\\y\\nz\",version=\"1\"} 0\n"
    "# HELP ferry_model_active_version The version of a model that local inference uses; 0 "
    "for none.\n"
    "# TYPE ferry_model_active_version gauge\n"
    "ferry_model_active_version{name=\"llama-7b\"} 3\n"
    "ferry_model_active_version{name=\"whisper\"} 0\n"
    "ferry_model_active_version{name=\"q\\\"x\\\\y\\nz\"} 0\n"
    "# HELP ferry_rate_limit_bits_per_second Rate limit in force ([limits], its wan_window, "
    "or ferryctl limit); 0 for none.\n"
    "# TYPE ferry_rate_limit_bits_per_second gauge\n"
    "ferry_rate_limit_bits_per_second{limit=\"download\"} 0\n"
    "ferry_rate_limit_bits_per_second{limit=\"wan_download\"} 2000000\n"
    "# HELP ferry_store_bytes Encoded bytes of the chunks in the store.\n"
    "# TYPE ferry_store_bytes gauge\n"
    "ferry_store_bytes 9000000000\n"
    "# HELP ferry_store_chunks Chunks in the store.\n"
    "# TYPE ferry_store_chunks gauge\n"
    "ferry_store_chunks 34000\n"
    "# HELP ferry_fs_free_bytes Free bytes on the file system of the store.\n"
    "# TYPE ferry_fs_free_bytes gauge\n"
    "ferry_fs_free_bytes 50000000000\n"
    "# HELP ferry_min_free_bytes Free space ferryd always leaves on that file system "
    "(min_free_space).\n"
    "# TYPE ferry_min_free_bytes gauge\n"
    "ferry_min_free_bytes 2147483648\n"
    "# HELP ferry_cache_quota_bytes Store size above which old versions are evicted "
    "(cache_quota); 0 for none.\n"
    "# TYPE ferry_cache_quota_bytes gauge\n"
    "ferry_cache_quota_bytes 0\n"
    "# HELP ferry_uptime_seconds Seconds since ferryd started.\n"
    "# TYPE ferry_uptime_seconds gauge\n"
    "ferry_uptime_seconds 86400\n";

static struct metrics_snapshot *sample(void)
{
	struct metrics_snapshot *s = metrics_snapshot_new();

	s->rx_bytes[METRICS_LAN] = 1000;
	s->rx_bytes[METRICS_WAN] = UINT64_MAX;
	s->tx_bytes[METRICS_LAN] = 3;
	s->tx_bytes[METRICS_WAN] = 4;
	s->chunks_verified = 812;
	s->chunks_rejected = 2;
	s->reconnects = 5;
	s->resumed_bytes = 131072;
	s->store_bytes = 9000000000ull;
	s->store_chunks = 34000;
	s->fs_free = 50000000000ull;
	s->min_free_space = 2147483648ull;
	s->cache_quota = 0;
	s->uptime_s = 86400;
	metrics_add_peer(s, "connected");
	metrics_add_peer(s, "backoff");
	metrics_add_peer(s, "odd \"state\"\\\n");
	metrics_add_peer(s, "connected");
	metrics_add_model(s, "llama-7b", 3, 1.0, 13476839424ull, true);
	metrics_add_model(s, "llama-7b", 4, 0.25, 13476839425ull, false);
	metrics_add_model(s, "whisper", 12, 1.0 / 3, 1000, false);
	/* Model names are checked elsewhere; the renderer escapes whatever it gets. */
	metrics_add_model(s, "q\"x\\y\nz", 1, -0.5, 0, false);
	metrics_add_limit(s, "download", 0);
	metrics_add_limit(s, "wan_download", 2000000);
	return s;
}

static void assert_same_text(const char *got, const char *want)
{
	if (strcmp(got, want) == 0)
		return;
	for (size_t i = 0;; i++)
		if (got[i] != want[i]) {
			size_t from = i > 60 ? i - 60 : 0;

			fail_msg(
			    "differs at byte %zu:\n--- got ---\n%.120s\n--- expected ---\n%.120s",
			    i, got + from, want + from);
		}
}

static void test_golden(void **state)
{
	struct metrics_snapshot *s = sample();
	size_t len;
	char *text = metrics_render(s, &len);

	assert_same_text(text, golden);
	assert_int_equal(len, strlen(golden));
	free(text);
	metrics_snapshot_free(s);
}

/* Every line is a comment or a sample of a ferry_ metric, and every sample has HELP and TYPE. */
static void test_zero_snapshot(void **state)
{
	struct metrics_snapshot *s = metrics_snapshot_new();
	char *text = metrics_render(s, NULL), *save = NULL, *line;
	unsigned samples = 0, types = 0, helps = 0;
	char last_type[128] = "";

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# HELP ferry_", 13) == 0) {
			helps++;
		} else if (strncmp(line, "# TYPE ferry_", 13) == 0) {
			types++;
			assert_int_equal(sscanf(line + 7, "%127s", last_type), 1);
		} else {
			assert_true(strncmp(line, last_type, strlen(last_type)) == 0);
			assert_true(line[strlen(last_type)] == ' ' ||
				    line[strlen(last_type)] == '{');
			assert_non_null(strstr(line, " 0"));
			samples++;
		}
	}
	assert_int_equal(helps, types);
	assert_int_equal(types, 17);
	/* 2 + 2 link lines, 2 chunk counters, reconnects, resumed bytes, 4 peer states, 6 store
	 * and node gauges. */
	assert_int_equal(samples, 18);
	free(text);
	metrics_snapshot_free(s);
	metrics_snapshot_free(NULL);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void test_textfile(void **state)
{
	const char *t = getenv("TMPDIR");
	char *dir = xasprintf("%s/ferry-metrics-XXXXXX", t && *t ? t : "/tmp");
	char *path, *bad, *got = NULL;
	struct metrics_snapshot *s = sample();
	struct stat sb;
	size_t len;
	int fd, r;

	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/ferry.prom", dir);
	/* An old file is replaced whole. */
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write_full(fd, "old", 3), 0);
	close(fd);
	assert_int_equal(metrics_write_textfile(path, s), 0);
	assert_int_equal(read_file(path, 1 << 20, &got, &len), 0);
	assert_same_text(got, golden);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0644);
	assert_int_equal(count_entries(dir), 1);
	free(got);

	/* A missing directory is reported with the path, and nothing is left. */
	bad = xasprintf("%s/nope/ferry.prom", dir);
	r = metrics_write_textfile(bad, s);
	assert_int_equal(r, FERRY_ENOENT);
	assert_non_null(strstr(ferry_errmsg(r), bad));
	assert_int_equal(count_entries(dir), 1);

	free(bad);
	free(path);
	metrics_snapshot_free(s);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_golden),
	    cmocka_unit_test(test_zero_snapshot),
	    cmocka_unit_test(test_textfile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
