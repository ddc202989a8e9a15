/*
 * Unit tests for LAN discovery beacons: what one node sends, another node
 * of the same network reads back; a host without the network key can
 * neither forge nor alter a beacon; stale clocks, other versions and bad
 * sizes are refused.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "ferry/discovery.h"
#include "ferry/error.h"
#include "ferry/fcrypto.h"

static void keys(uint8_t key[32], uint8_t other[32])
{
	uint8_t net[32], net2[32];

	memset(net, 7, sizeof(net));
	memset(net2, 8, sizeof(net2));
	discovery_key(key, net);
	discovery_key(other, net2);
}

static struct discovery_beacon sample(void)
{
	struct discovery_beacon b;

	memset(&b, 0, sizeof(b));
	memset(b.id, 0xab, 32);
	b.port = 7440;
	strcpy(b.site, "clinic-a");
	b.time = 1700000000;
	return b;
}

static void test_roundtrip(void **state)
{
	uint8_t key[32], other[32], buf[DISCOVERY_BEACON_LEN], buf2[DISCOVERY_BEACON_LEN];
	struct discovery_beacon b = sample(), got;

	keys(key, other);
	assert_int_equal(discovery_encode(key, &b, buf), 0);
	assert_int_equal(discovery_decode(key, buf, sizeof(buf), b.time + 5, &got), 0);
	assert_memory_equal(got.id, b.id, 32);
	assert_int_equal(got.port, 7440);
	assert_string_equal(got.site, "clinic-a");
	assert_false(got.reply);
	/* A fresh nonce each time: two beacons of the same node differ. */
	assert_int_equal(discovery_encode(key, &b, buf2), 0);
	assert_memory_not_equal(buf, buf2, sizeof(buf));
	b.reply = true;
	b.site[0] = '\0';
	assert_int_equal(discovery_encode(key, &b, buf), 0);
	assert_int_equal(discovery_decode(key, buf, sizeof(buf), b.time, &got), 0);
	assert_true(got.reply);
	assert_string_equal(got.site, "");
}

static void test_other_network(void **state)
{
	uint8_t key[32], other[32], buf[DISCOVERY_BEACON_LEN];
	struct discovery_beacon b = sample(), got;

	keys(key, other);
	assert_int_equal(discovery_encode(other, &b, buf), 0);
	assert_int_equal(discovery_decode(key, buf, sizeof(buf), b.time, &got), FERRY_EAUTH);
}

/* Every byte is covered by the MAC: changing any one is refused. */
static void test_tamper(void **state)
{
	uint8_t key[32], other[32], buf[DISCOVERY_BEACON_LEN];
	struct discovery_beacon b = sample(), got;

	keys(key, other);
	assert_int_equal(discovery_encode(key, &b, buf), 0);
	for (size_t i = 4; i < sizeof(buf); i++) {
		buf[i] ^= 0x01;
		assert_int_equal(discovery_decode(key, buf, sizeof(buf), b.time, &got),
				 FERRY_EAUTH);
		buf[i] ^= 0x01;
	}
	assert_int_equal(discovery_decode(key, buf, sizeof(buf) - 1, b.time, &got), FERRY_EAUTH);
	assert_int_equal(discovery_decode(key, buf, 0, b.time, &got), FERRY_EAUTH);
}

static void test_clock(void **state)
{
	uint8_t key[32], other[32], buf[DISCOVERY_BEACON_LEN];
	struct discovery_beacon b = sample(), got;

	keys(key, other);
	assert_int_equal(discovery_encode(key, &b, buf), 0);
	assert_int_equal(discovery_decode(key, buf, sizeof(buf), b.time + DISCOVERY_SKEW_MAX, &got),
			 0);
	assert_int_equal(
	    discovery_decode(key, buf, sizeof(buf), b.time + DISCOVERY_SKEW_MAX + 1, &got),
	    FERRY_EPROTO);
	assert_int_equal(
	    discovery_decode(key, buf, sizeof(buf), b.time - DISCOVERY_SKEW_MAX - 1, &got),
	    FERRY_EPROTO);
}

static void test_encode_checks(void **state)
{
	uint8_t key[32], other[32], buf[DISCOVERY_BEACON_LEN];
	struct discovery_beacon b = sample();

	keys(key, other);
	b.port = 0;
	assert_int_equal(discovery_encode(key, &b, buf), FERRY_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),	  cmocka_unit_test(test_other_network),
	    cmocka_unit_test(test_tamper),	  cmocka_unit_test(test_clock),
	    cmocka_unit_test(test_encode_checks),
	};

	fcrypto_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
