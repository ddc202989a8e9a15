/*
 * Seal + open throughput of the session framing, against references run in
 * the same invocation on the same bytes: a plain memcpy of each 64 KiB frame,
 * and libsodium's ChaCha20-Poly1305-IETF (and AES-256-GCM where the CPU has
 * it) sealing and opening each frame with no framing around it. Each byte is
 * sealed once and opened once; the figure is payload bytes per second.
 *
 *   bench/bench_session [MiB]     (default 256 MiB a method)
 *
 * The bench includes <sodium.h> itself: the bare library is the reference.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "ferry/error.h"
#include "ferry/session.h"
#include "ferry/util.h"

#define FRAME SESSION_FRAME_MAX

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Keep the compiler from dropping a copy nobody reads. */
static void clobber(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

static void nonce_of(uint8_t nonce[12], uint64_t n)
{
	memset(nonce, 0, 12);
	memcpy(nonce + 4, &n, 8);
}

static double bench_memcpy(const uint8_t *src, uint8_t *dst, size_t frames)
{
	double t0 = now_s();

	for (size_t i = 0; i < frames; i++) {
		memcpy(dst, src, FRAME);
		clobber(dst);
	}
	return now_s() - t0;
}

static double bench_chacha(const uint8_t *src, uint8_t *ct, uint8_t *dst, size_t frames)
{
	uint8_t key[32], nonce[12], tag[16], ad[4] = {0, 1, 0, 16};
	double t0;

	randombytes_buf(key, sizeof(key));
	t0 = now_s();
	for (size_t i = 0; i < frames; i++) {
		nonce_of(nonce, i);
		crypto_aead_chacha20poly1305_ietf_encrypt_detached(ct, tag, NULL, src, FRAME, ad, 4,
								   NULL, nonce, key);
		if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(dst, NULL, ct, FRAME, tag,
								       ad, 4, nonce, key) != 0)
			fatal("chacha20poly1305 does not open its own frame");
	}
	return now_s() - t0;
}

static double bench_aesgcm(const uint8_t *src, uint8_t *ct, uint8_t *dst, size_t frames)
{
	uint8_t key[32], nonce[12], tag[16], ad[4] = {0, 1, 0, 16};
	crypto_aead_aes256gcm_state st;
	double t0;

	randombytes_buf(key, sizeof(key));
	crypto_aead_aes256gcm_beforenm(&st, key);
	t0 = now_s();
	for (size_t i = 0; i < frames; i++) {
		nonce_of(nonce, i);
		crypto_aead_aes256gcm_encrypt_detached_afternm(ct, tag, NULL, src, FRAME, ad, 4,
							       NULL, nonce, &st);
		if (crypto_aead_aes256gcm_decrypt_detached_afternm(dst, NULL, ct, FRAME, tag, ad, 4,
								   nonce, &st) != 0)
			fatal("aes256gcm does not open its own frame");
	}
	return now_s() - t0;
}

/* Seal messages of msg_len bytes with session_seal and open them with session_rx_feed. */
static double bench_session(const uint8_t *src, size_t msg_len, size_t total)
{
	size_t wire_cap = session_sealed_len(msg_len), wlen, used, got;
	uint8_t key[32], *wire = xmalloc(wire_cap);
	struct session_tx *tx;
	struct session_rx *rx;
	const uint8_t *out;
	double t0;

	randombytes_buf(key, sizeof(key));
	tx = session_tx_new(key);
	rx = session_rx_new(key, SESSION_MSG_MAX_DEFAULT);
	t0 = now_s();
	for (size_t done = 0; done < total; done += msg_len) {
		if (session_seal(tx, src, msg_len, wire, wire_cap, &wlen) != 0 ||
		    session_rx_feed(rx, wire, wlen, &used, &out, &got) != 1 || got != msg_len)
			fatal("session does not open its own message");
		clobber((void *)out);
	}
	t0 = now_s() - t0;
	session_tx_free(tx);
	session_rx_free(rx);
	free(wire);
	return t0;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
	size_t total = mib << 20, frames = total / FRAME, big = 1 << 20;
	uint8_t *src = xmalloc(big), *ct = xmalloc(FRAME), *dst = xmalloc(FRAME);
	double gb = (double)total / 1e9, t_copy, t_chacha, t_s64, t_s1m;

	if (sodium_init() < 0 || frames == 0)
		fatal("usage: bench_session [MiB >= 1]");
	randombytes_buf(src, big);
	/* Warm the pages and the CPU's clock once. */
	bench_memcpy(src, dst, 64);
	t_copy = bench_memcpy(src, dst, frames);
	t_chacha = bench_chacha(src, ct, dst, frames);
	t_s64 = bench_session(src, FRAME, frames * FRAME);
	t_s1m = bench_session(src, big, total / big * big);

	printf("bench_session: %zu MiB per method, 64 KiB frames, seal + open\n", mib);
	printf("  memcpy                         %6.2f GB/s\n", gb / t_copy);
	printf("  chacha20poly1305-ietf (bare)   %6.2f GB/s\n", gb / t_chacha);
	printf("  session, 64 KiB messages       %6.2f GB/s  (%.2fx bare chacha)\n", gb / t_s64,
	       t_chacha / t_s64);
	printf("  session, 1 MiB messages        %6.2f GB/s  (%.2fx bare chacha)\n",
	       (double)(total / big * big) / 1e9 / t_s1m, t_chacha / t_s1m);
	if (crypto_aead_aes256gcm_is_available())
		printf("  aes256gcm (bare, not used)     %6.2f GB/s\n",
		       gb / bench_aesgcm(src, ct, dst, frames));
	else
		printf("  aes256gcm                      not available on this CPU\n");
	free(src);
	free(ct);
	free(dst);
	return 0;
}
