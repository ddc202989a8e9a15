/*
 * The crypto module: libsodium and OpenSSL's libcrypto are included here and
 * nowhere else (session.c aside); see include/ferry/fcrypto.h.
 */
#include "config.h"

#include <sodium.h>

#include "ferry/error.h"
#include "ferry/fcrypto.h"

int fcrypto_init(void)
{
	if (sodium_init() < 0)
		return ferry_errf(FERRY_EIO, "libsodium failed to initialise");
	return 0;
}

void fcrypto_id(uint8_t out[static FERRY_ID_LEN], const void *in, size_t n)
{
	crypto_generichash(out, FERRY_ID_LEN, in, n, NULL, 0);
}
