/*
 * Fuzz the parsers of short text values that come from config files, the
 * command line and key files: sizes (parse_size), rates (parse_rate), hex
 * (hex_decode), node ids (nodekey_id_parse) and base64 keys
 * (fcrypto_b64_decode); and the checks of model names and file paths that
 * come in manifests from peers and USB drives (manifest_name_check,
 * manifest_path_check). The first byte picks the parser; the rest, up to its
 * first NUL, is the text.
 *
 * Decoders of one canonical form must give it back: what hex_decode and
 * nodekey_id_parse accept, hex_encode writes again (in lower case); what
 * fcrypto_b64_decode accepts, fcrypto_b64_encode writes again (less the
 * blanks around it). The name and path checks must agree with an
 * implementation of the rules of our own (fuzz.h): a path that escapes its
 * directory must never pass.
 */
#include "config.h"

#include <ctype.h>

#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/manifest.h"
#include "ferry/util.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (fcrypto_init() != 0)
		abort();
	return 0;
}

static void check_hex(const char *s, size_t n)
{
	size_t len = strlen(s);
	uint8_t *out = malloc(n + 1);
	char *hex = malloc(2 * n + 1);

	FUZZ_CHECK(out != NULL && hex != NULL);
	if (hex_decode(out, n, s) == 0) {
		hex_encode(hex, out, n);
		FUZZ_CHECK(len == 2 * n);
		for (size_t i = 0; i < 2 * n; i++)
			FUZZ_CHECK(hex[i] == tolower((unsigned char)s[i]));
	}
	free(out);
	free(hex);
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void check_b64(const char *s, size_t n)
{
	uint8_t out[FERRY_SK_LEN];
	char enc[2 * FERRY_SK_LEN];
	size_t len = strlen(s);

	if (fcrypto_b64_decode(out, n, s) != 0)
		return;
	while (len > 0 && blank(s[len - 1]))
		len--;
	while (len > 0 && blank(*s))
		s++, len--;
	fcrypto_b64_encode(enc, out, n);
	FUZZ_CHECK(strlen(enc) == len && memcmp(enc, s, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	uint8_t which = fuzz_u8(&in);
	char *s = malloc(in.n + 1);
	uint8_t pk[NODEKEY_LEN];
	uint64_t v;

	FUZZ_CHECK(s != NULL);
	memcpy(s, in.p, in.n);
	s[in.n] = '\0';
	switch (which % 8) {
	case 0:
		parse_size(s, &v);
		break;
	case 1:
		parse_rate(s, &v);
		break;
	case 2:
		/* Also ask for one byte more than the text holds: refused, not read past. */
		check_hex(s, strlen(s) / 2 + which / 8 % 2);
		break;
	case 3:
		if (nodekey_id_parse(pk, s) == 0)
			check_hex(s, NODEKEY_LEN);
		break;
	case 4:
		check_b64(s, FERRY_PK_LEN);
		break;
	case 5:
		check_b64(s, FERRY_SK_LEN);
		break;
	case 6:
		FUZZ_CHECK((manifest_name_check(s) == 0) == fuzz_name_ok(s));
		break;
	default:
		FUZZ_CHECK((manifest_path_check(s) == 0) == fuzz_path_ok(s));
		break;
	}
	free(s);
	return 0;
}
