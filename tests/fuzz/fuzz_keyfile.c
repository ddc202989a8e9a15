/*
 * Fuzz the key-file readers: the node key (nodekey_load), the publisher key
 * (fcrypto_publisher_key_read) and the network key (fcrypto_netkey_read).
 * They read a path, so the input (after a first byte that picks the reader)
 * is written to a mode-0600 file in a private temporary directory.
 *
 * A key that is read must be whole: a node key's public half is the one its
 * secret gives; a publisher or network key written out again by our own
 * writer must read back the same. A refused key leaves only zeros behind.
 */
#include "config.h"

#include <fcntl.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/util.h"
#include "fuzz.h"

static char dir[] = "/tmp/ferry-fuzz-keyfile-XXXXXX";
static char *path, *again;

static void cleanup(void)
{
	unlink(path);
	unlink(again);
	rmdir(dir);
	free(path);
	free(again);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (fcrypto_init() != 0 || mkdtemp(dir) == NULL)
		abort();
	path = xasprintf("%s/key", dir);
	again = xasprintf("%s/again", dir);
	atexit(cleanup);
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static void node_key(void)
{
	struct nodekey k, check;

	memset(&k, 0xa5, sizeof(k));
	if (nodekey_load(path, &k) != 0) {
		FUZZ_CHECK(all_zero(k.sk, sizeof(k.sk)));
		return;
	}
	memcpy(check.sk, k.sk, sizeof(k.sk));
	nodekey_derive_public(&check);
	FUZZ_CHECK(memcmp(check.pk, k.pk, sizeof(k.pk)) == 0);
	nodekey_wipe(&k);
	nodekey_wipe(&check);
}

static void publisher_key(void)
{
	uint8_t sk[FERRY_SK_LEN], sk2[FERRY_SK_LEN];

	memset(sk, 0xa5, sizeof(sk));
	if (fcrypto_publisher_key_read(path, sk) != 0) {
		FUZZ_CHECK(all_zero(sk, sizeof(sk)));
		return;
	}
	unlink(again);
	FUZZ_CHECK(fcrypto_publisher_key_write(again, sk) == 0);
	FUZZ_CHECK(fcrypto_publisher_key_read(again, sk2) == 0);
	FUZZ_CHECK(memcmp(sk, sk2, sizeof(sk)) == 0);
	fcrypto_wipe(sk, sizeof(sk));
	fcrypto_wipe(sk2, sizeof(sk2));
}

static void network_key(void)
{
	uint8_t key[FERRY_NETKEY_LEN], key2[FERRY_NETKEY_LEN];

	memset(key, 0xa5, sizeof(key));
	if (fcrypto_netkey_read(path, key) != 0) {
		FUZZ_CHECK(all_zero(key, sizeof(key)));
		return;
	}
	unlink(again);
	FUZZ_CHECK(fcrypto_netkey_write(again, key) == 0);
	FUZZ_CHECK(fcrypto_netkey_read(again, key2) == 0);
	FUZZ_CHECK(memcmp(key, key2, sizeof(key)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	uint8_t which = fuzz_u8(&in);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write_full(fd, in.p, in.n) == 0);
	close(fd);
	switch (which % 3) {
	case 0:
		node_key();
		break;
	case 1:
		publisher_key();
		break;
	default:
		network_key();
		break;
	}
	return 0;
}
