/*
 * Fuzz the config parser (config_parse) with any text as ferryd.conf.
 *
 * A config that parses must print (config_print) to text that parses again
 * to an equal config, which prints the same: what `ferryd --check-config`
 * shows is what the daemon runs with. Its lookups (config_wan_rate_at,
 * config_wants) must answer for any time and name. A config that does not
 * parse must come with at least one "NAME:LINE: message" line and no config.
 */
#include "config.h"

#include <stdio.h>

#include "ferry/config.h"
#include "ferry/error.h"
#include "fuzz.h"

static char *print(const struct config *c, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);

	FUZZ_CHECK(f != NULL);
	config_print(c, f);
	FUZZ_CHECK(fclose(f) == 0);
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c, *again;
	char *errors = NULL, *text, *text2;
	size_t len, len2;
	uint64_t rate;

	if (config_parse("fuzz.conf", (const char *)data, size, NULL, &c, &errors) != 0) {
		FUZZ_CHECK(c == NULL);
		FUZZ_CHECK(errors != NULL && strncmp(errors, "fuzz.conf:", 10) == 0);
		free(errors);
		return 0;
	}
	free(errors);
	text = print(c, &len);
	errors = NULL;
	if (config_parse("printed.conf", text, len, NULL, &again, &errors) != 0) {
		fprintf(stderr, "the printed config does not parse:\n%s\n%s", text, errors);
		FUZZ_CHECK(!"printed config parses");
	}
	free(errors);
	FUZZ_CHECK(config_equal(c, again));
	text2 = print(again, &len2);
	FUZZ_CHECK(len == len2 && memcmp(text, text2, len) == 0);

	/* Sunday 2026-01-04 and the following days, every 3 h 7 min. */
	for (time_t t = 1767484800; t < 1767484800 + 8 * 86400; t += 11220)
		config_wan_rate_at(c, t, &rate);
	config_wants(c, "llama-3-8b");
	config_wants(c, "");
	free(text);
	free(text2);
	config_free(c);
	config_free(again);
	return 0;
}
