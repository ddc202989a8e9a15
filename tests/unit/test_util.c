/* Unit tests for error, log and util helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ferry/error.h"
#include "ferry/util.h"

static void test_parse_rate(void **state)
{
	uint64_t v;

	assert_int_equal(parse_rate("500kbit", &v), 0);
	assert_int_equal(v, 500000);
	assert_int_equal(parse_rate("4mbit", &v), 0);
	assert_int_equal(v, 4000000);
	assert_int_equal(parse_rate("1gbit", &v), 0);
	assert_int_equal(v, 1000000000);
	assert_int_equal(parse_rate("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_rate("2.5mbit", &v), 0);
	assert_int_equal(v, 2500000);
	assert_int_equal(parse_rate("1mbps", &v), 0);
	assert_int_equal(v, 8000000);
	assert_int_equal(parse_rate("fast", &v), FERRY_EINVAL);
	assert_non_null(strstr(ferry_errmsg(FERRY_EINVAL), "'fast' is not a rate"));
	assert_int_equal(parse_rate("4 furlongs", &v), FERRY_EINVAL);
	assert_int_equal(parse_rate("-1kbit", &v), FERRY_EINVAL);
}

static void test_parse_size(void **state)
{
	uint64_t v;

	assert_int_equal(parse_size("512M", &v), 0);
	assert_int_equal(v, 512ull << 20);
	assert_int_equal(parse_size("200G", &v), 0);
	assert_int_equal(v, 200ull << 30);
	assert_int_equal(parse_size("1048576", &v), 0);
	assert_int_equal(v, 1048576);
	assert_int_equal(parse_size("2g", &v), 0);
	assert_int_equal(v, 2ull << 30);
	assert_int_equal(parse_size("12X", &v), FERRY_EINVAL);
	assert_int_equal(parse_size("", &v), FERRY_EINVAL);
}

static void test_hex(void **state)
{
	uint8_t in[4] = {0xde, 0xad, 0x01, 0xff}, out[4];
	char buf[9];

	assert_string_equal(hex_encode(buf, in, 4), "dead01ff");
	assert_int_equal(hex_decode(out, 4, "DEAD01ff"), 0);
	assert_memory_equal(in, out, 4);
	assert_int_equal(hex_decode(out, 4, "dead01f"), FERRY_EFORMAT);
	assert_int_equal(hex_decode(out, 4, "dead01ffa"), FERRY_EFORMAT);
	assert_int_equal(hex_decode(out, 4, "zzad01ff"), FERRY_EFORMAT);
}

static void test_errors(void **state)
{
	assert_string_equal(ferry_strerror(FERRY_ENOSPC), "no space left on device");
	assert_string_equal(ferry_strerror(FERRY_ECORRUPT), "data does not match its hash");
	assert_int_equal(ferry_errf(FERRY_ECORRUPT, "chunk %d is bad", 7), FERRY_ECORRUPT);
	assert_string_equal(ferry_errmsg(FERRY_ECORRUPT), "chunk 7 is bad");
	/* A detail recorded for another code is not shown for this one. */
	assert_string_equal(ferry_errmsg(FERRY_ENOSPC), "no space left on device");
	/* A detail may wrap the previous one. */
	ferry_errf(FERRY_ECORRUPT, "file x: %s", ferry_errmsg(FERRY_ECORRUPT));
	assert_string_equal(ferry_errmsg(FERRY_ECORRUPT), "file x: chunk 7 is bad");
	ferry_errclear();
	assert_string_equal(ferry_errmsg(FERRY_ECORRUPT), "data does not match its hash");
}

static void test_fmt(void **state)
{
	char buf[32];

	assert_string_equal(fmt_bytes(buf, sizeof(buf), 512), "512 B");
	assert_string_equal(fmt_bytes(buf, sizeof(buf), 1536), "1.5 KiB");
	assert_string_equal(fmt_rate(buf, sizeof(buf), 3.2e6), "3.2 Mbit/s");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_rate), cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_hex),	   cmocka_unit_test(test_errors),
		cmocka_unit_test(test_fmt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
