/*
 * Fuzz the peer message decoder (wire_decode) with any bytes as one message.
 *
 * A message that decodes must be a known type, pass wire_check(), and encode
 * again within its type's largest encoding; that encoding must decode, and
 * encode to the same bytes, so what a node forwards is what it read. A
 * decoded hello's version range must negotiate to a version in both ranges
 * or not at all. A message that does not decode is FERRY_EPROTO; every path
 * must free what it allocated (LeakSanitizer is on).
 */
#include "config.h"

#include "ferry/error.h"
#include "ferry/wire.h"
#include "fuzz.h"

static void check_hello(const struct wire_hello *h)
{
	uint32_t v;

	FUZZ_CHECK(h->version_min >= 1 && h->version_min <= h->version_max);
	if (wire_negotiate(h, &v) == 0)
		FUZZ_CHECK(v >= h->version_min && v <= h->version_max && v >= WIRE_VERSION_MIN &&
			   v <= WIRE_VERSION);
	else
		FUZZ_CHECK(h->version_max < WIRE_VERSION_MIN || h->version_min > WIRE_VERSION);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_msg m, again;
	uint8_t *enc, *enc2;
	size_t len, len2;
	int rc;

	memset(&m, 0, sizeof(m));
	rc = wire_decode(data, size, &m);
	if (rc != 0) {
		FUZZ_CHECK(rc == FERRY_EPROTO);
		wire_msg_clear(&m);
		return 0;
	}
	FUZZ_CHECK(wire_type_known(m.type) && wire_name(m.type) != NULL);
	FUZZ_CHECK(wire_check(&m) == 0);
	if (m.type == WIRE_HELLO)
		check_hello(&m.hello);
	FUZZ_CHECK(wire_encode(&m, &enc, &len) == 0);
	FUZZ_CHECK(len <= wire_len_max(m.type));
	memset(&again, 0, sizeof(again));
	FUZZ_CHECK(wire_decode(enc, len, &again) == 0 && again.type == m.type);
	FUZZ_CHECK(wire_encode(&again, &enc2, &len2) == 0);
	FUZZ_CHECK(len == len2 && memcmp(enc, enc2, len) == 0);
	wire_msg_clear(&again);
	wire_msg_clear(&m);
	wire_msg_clear(&m);
	free(enc);
	free(enc2);
	return 0;
}
