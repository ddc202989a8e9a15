/* Unit tests for the crypto module: known answers, base64 and key files. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ferry/error.h"
#include "ferry/fcrypto.h"
#include "ferry/util.h"

static char dir[] = "/tmp/test_fcrypto.XXXXXX";

static int setup(void **state)
{
	if (fcrypto_init() < 0 || mkdtemp(dir) == NULL)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d != NULL && (e = readdir(d)) != NULL) {
		char *p;

		if (e->d_name[0] == '.')
			continue;
		p = xasprintf("%s/%s", dir, e->d_name);
		unlink(p);
		free(p);
	}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
	return 0;
}

static void assert_hex(const uint8_t *got, size_t n, const char *want)
{
	char hex[2 * 64 + 1];

	assert_true(n <= 64);
	assert_string_equal(hex_encode(hex, got, n), want);
}

static void test_blake2b_kat(void **state)
{
	uint8_t id[FERRY_ID_LEN];

	fcrypto_id(id, "", 0);
	assert_hex(id, sizeof(id),
		   "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
	fcrypto_id(id, "abc", 3);
	assert_hex(id, sizeof(id),
		   "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
}

static void sha256_of(uint8_t out[FERRY_SHA256_LEN], const void *p, size_t n)
{
	struct fcrypto_sha256 *s = fcrypto_sha256_new();

	fcrypto_sha256_update(s, p, n);
	fcrypto_sha256_final(s, out);
	fcrypto_sha256_free(s);
}

static void test_sha256_kat(void **state)
{
	uint8_t d[FERRY_SHA256_LEN];
	size_t n = 1000000;
	char *a = xmalloc(n);

	sha256_of(d, "", 0);
	assert_hex(d, sizeof(d),
		   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha256_of(d, "abc", 3);
	assert_hex(d, sizeof(d),
		   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* FIPS 180-2: one million 'a'. */
	memset(a, 'a', n);
	sha256_of(d, a, n);
	assert_hex(d, sizeof(d),
		   "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(a);
	fcrypto_sha256_free(NULL);
}

/* Fed in pieces that split blocks at odd places, the digest is the one-shot one. */
static void test_sha256_streaming(void **state)
{
	static const size_t cuts[] = {0, 1, 3, 55, 56, 63, 64, 65, 127, 1000, 4097, 65536, 99999};
	size_t n = 100000;
	uint8_t *data = xmalloc(n), whole[FERRY_SHA256_LEN], part[FERRY_SHA256_LEN];
	struct fcrypto_sha256 *s = fcrypto_sha256_new();

	fcrypto_random(data, n);
	sha256_of(whole, data, n);
	for (size_t i = 0; i + 1 < ARRAY_SIZE(cuts); i++)
		fcrypto_sha256_update(s, data + cuts[i], cuts[i + 1] - cuts[i]);
	fcrypto_sha256_update(s, data + cuts[ARRAY_SIZE(cuts) - 1], n - cuts[ARRAY_SIZE(cuts) - 1]);
	fcrypto_sha256_final(s, part);
	assert_memory_equal(whole, part, sizeof(whole));

	/* After a reset the same state hashes afresh, one odd byte count at a time. */
	fcrypto_sha256_reset(s);
	for (size_t off = 0, step = 1; off < n; off += step, step = step * 3 % 1021 + 1)
		fcrypto_sha256_update(s, data + off, MIN(step, n - off));
	fcrypto_sha256_final(s, part);
	assert_memory_equal(whole, part, sizeof(whole));

	/* A different input gives a different digest. */
	data[n / 2] ^= 1;
	sha256_of(part, data, n);
	assert_memory_not_equal(whole, part, sizeof(whole));
	fcrypto_sha256_free(s);
	free(data);
}

/* RFC 8032, section 7.1, test 1 (empty message) and test 2 (one byte). */
static void test_ed25519_rfc8032(void **state)
{
	uint8_t sk[FERRY_SK_LEN], pk[FERRY_PK_LEN], sig[FERRY_SIG_LEN], msg = 0x72;

	assert_int_equal(
	    hex_decode(sk, 32, "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
	    0);
	assert_int_equal(
	    hex_decode(sk + 32, 32,
		       "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"),
	    0);
	fcrypto_sk_to_pk(pk, sk);
	assert_hex(pk, sizeof(pk),
		   "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
	fcrypto_sign(sig, "", 0, sk);
	assert_hex(sig, sizeof(sig),
		   "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
		   "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
	assert_int_equal(fcrypto_verify(sig, "", 0, pk), 0);

	assert_int_equal(
	    hex_decode(sk, 32, "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"),
	    0);
	assert_int_equal(
	    hex_decode(sk + 32, 32,
		       "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"),
	    0);
	fcrypto_sign(sig, &msg, 1, sk);
	assert_hex(sig, sizeof(sig),
		   "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
		   "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
}

static void test_sign_verify(void **state)
{
	uint8_t pk[FERRY_PK_LEN], pk2[FERRY_PK_LEN], sk[FERRY_SK_LEN], sig[FERRY_SIG_LEN];
	uint8_t other_pk[FERRY_PK_LEN], other_sk[FERRY_SK_LEN];
	char msg[] = "ferry manifest bytes";

	fcrypto_sign_keypair(pk, sk);
	fcrypto_sk_to_pk(pk2, sk);
	assert_memory_equal(pk, pk2, sizeof(pk));
	fcrypto_sign(sig, msg, sizeof(msg), sk);
	assert_int_equal(fcrypto_verify(sig, msg, sizeof(msg), pk), 0);

	/* A flipped bit anywhere fails: in the signature, the message, the key. */
	sig[17] ^= 0x10;
	assert_int_equal(fcrypto_verify(sig, msg, sizeof(msg), pk), FERRY_EBADSIG);
	sig[17] ^= 0x10;
	msg[3] ^= 1;
	assert_int_equal(fcrypto_verify(sig, msg, sizeof(msg), pk), FERRY_EBADSIG);
	assert_non_null(strstr(ferry_errmsg(FERRY_EBADSIG), "does not verify"));
	msg[3] ^= 1;
	fcrypto_sign_keypair(other_pk, other_sk);
	assert_int_equal(fcrypto_verify(sig, msg, sizeof(msg), other_pk), FERRY_EBADSIG);
	assert_int_equal(fcrypto_verify(sig, msg, sizeof(msg), pk), 0);
}

static void test_random_equal_wipe(void **state)
{
	uint8_t a[32], b[32];
	unsigned seen[10] = {0};

	fcrypto_random(a, sizeof(a));
	fcrypto_random(b, sizeof(b));
	assert_false(fcrypto_equal(a, b, sizeof(a)));
	memcpy(b, a, sizeof(a));
	assert_true(fcrypto_equal(a, b, sizeof(a)));
	b[31] ^= 0x80;
	assert_false(fcrypto_equal(a, b, sizeof(a)));
	for (int i = 0; i < 1000; i++) {
		uint32_t v = fcrypto_random_uniform(10);

		assert_true(v < 10);
		seen[v]++;
	}
	for (int i = 0; i < 10; i++)
		assert_true(seen[i] > 0);
	fcrypto_wipe(a, sizeof(a));
	memset(b, 0, sizeof(b));
	assert_memory_equal(a, b, sizeof(a));
}

static void test_base64(void **state)
{
	uint8_t in[70], out[70];
	char b64[4 * 24 + 1];

	assert_string_equal(fcrypto_b64_encode(b64, (const uint8_t *)"", 0), "");
	assert_string_equal(fcrypto_b64_encode(b64, (const uint8_t *)"f", 1), "Zg==");
	assert_string_equal(fcrypto_b64_encode(b64, (const uint8_t *)"fo", 2), "Zm8=");
	assert_string_equal(fcrypto_b64_encode(b64, (const uint8_t *)"foobar", 6), "Zm9vYmFy");
	/* 62 and 63 are '+' and '/' in the original alphabet, not '-' and '_'. */
	in[0] = 0xfb;
	in[1] = 0xff;
	in[2] = 0xbf;
	assert_string_equal(fcrypto_b64_encode(b64, in, 3), "+/+/");

	fcrypto_random(in, sizeof(in));
	for (size_t n = 0; n <= sizeof(in); n++) {
		fcrypto_b64_encode(b64, in, n);
		assert_int_equal(strlen(b64), (n + 2) / 3 * 4);
		memset(out, 0, sizeof(out));
		assert_int_equal(fcrypto_b64_decode(out, n, b64), 0);
		assert_memory_equal(in, out, n);
	}

	assert_int_equal(fcrypto_b64_decode(out, 6, " \tZm9vYmFy\r\n"), 0);
	assert_memory_equal(out, "foobar", 6);
	assert_int_equal(fcrypto_b64_decode(out, 1, "Zg=="), 0);
	assert_int_equal(out[0], 'f');

	/* Garbage, wrong lengths, the URL-safe alphabet, lost padding, stray bits. */
	assert_int_equal(fcrypto_b64_decode(out, 6, "Zm9v!mFy"), FERRY_EFORMAT);
	assert_non_null(strstr(ferry_errmsg(FERRY_EFORMAT), "not base64 of 6 bytes"));
	/* Bytes above 0x7f are not base64, though libsodium 1.0.18 decodes some (fuzz_text). */
	assert_int_equal(fcrypto_b64_decode(out, 32, "GTgr9cRUu2DFqO/iD/YdwnceiWpFNPFb\307\26366IzkEoDk="),
			 FERRY_EFORMAT);
	assert_int_equal(fcrypto_b64_decode(out, 5, "Zm9vYmFy"), FERRY_EFORMAT);
	assert_int_equal(fcrypto_b64_decode(out, 7, "Zm9vYmFy"), FERRY_EFORMAT);
	assert_int_equal(fcrypto_b64_decode(out, 3, "-_-_"), FERRY_EFORMAT);
	assert_int_equal(fcrypto_b64_decode(out, 1, "Zg"), FERRY_EFORMAT);
	assert_int_equal(fcrypto_b64_decode(out, 1, "Zh=="), FERRY_EFORMAT);
	assert_int_equal(fcrypto_b64_decode(out, 6, "Zm9v YmFy"), FERRY_EFORMAT);
	assert_int_equal(fcrypto_b64_decode(out, 6, "Zm9vYmFy="), FERRY_EFORMAT);
	assert_int_equal(fcrypto_b64_decode(out, 6, "Zm9vYmFyx"), FERRY_EFORMAT);
	assert_int_equal(fcrypto_b64_decode(out, 1, ""), FERRY_EFORMAT);
	assert_int_equal(fcrypto_b64_decode(out, 0, ""), 0);
}

static char *path_in_dir(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static size_t files_in_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void test_publisher_key_file(void **state)
{
	uint8_t pk[FERRY_PK_LEN], sk[FERRY_SK_LEN], sk2[FERRY_SK_LEN], other[FERRY_SK_LEN];
	char *path = path_in_dir("publisher.key"), *text;
	char sk64[4 * 22 + 1], pk64[FERRY_B64_32_LEN], *want;
	struct stat st;
	size_t len, before = files_in_dir();

	fcrypto_sign_keypair(pk, sk);
	assert_int_equal(fcrypto_publisher_key_write(path, sk), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* No temporary file is left behind. */
	assert_int_equal(files_in_dir(), before + 1);

	/* The exact text of docs/formats.md. */
	assert_int_equal(read_file(path, 4096, &text, &len), 0);
	want = xasprintf("ferry-publisher-key v1\n%s\npublic %s\n",
			 fcrypto_b64_encode(sk64, sk, sizeof(sk)),
			 fcrypto_b64_encode(pk64, pk, sizeof(pk)));
	assert_string_equal(text, want);
	free(want);

	assert_int_equal(fcrypto_publisher_key_read(path, sk2), 0);
	assert_memory_equal(sk, sk2, sizeof(sk));

	/* Never overwritten: the old key stays. */
	fcrypto_sign_keypair(pk, other);
	assert_int_equal(fcrypto_publisher_key_write(path, other), FERRY_EEXIST);
	assert_non_null(strstr(ferry_errmsg(FERRY_EEXIST), path));
	assert_int_equal(fcrypto_publisher_key_read(path, sk2), 0);
	assert_memory_equal(sk, sk2, sizeof(sk));
	assert_int_equal(files_in_dir(), before + 1);

	free(text);
	free(path);
}

static void test_netkey_file(void **state)
{
	uint8_t key[FERRY_NETKEY_LEN], key2[FERRY_NETKEY_LEN];
	char *path = path_in_dir("network.key"), *text;
	char key64[FERRY_B64_32_LEN], *want;
	struct stat st;
	size_t len;

	fcrypto_random(key, sizeof(key));
	assert_int_equal(fcrypto_netkey_write(path, key), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(read_file(path, 4096, &text, &len), 0);
	want = xasprintf("ferry-network-key v1\n%s\n", fcrypto_b64_encode(key64, key, sizeof(key)));
	assert_string_equal(text, want);
	free(want);
	free(text);
	assert_int_equal(fcrypto_netkey_read(path, key2), 0);
	assert_memory_equal(key, key2, sizeof(key));

	fcrypto_random(key2, sizeof(key2));
	assert_int_equal(fcrypto_netkey_write(path, key2), FERRY_EEXIST);
	assert_int_equal(fcrypto_netkey_read(path, key2), 0);
	assert_memory_equal(key, key2, sizeof(key));
	free(path);
}

/* Write text to a fresh file and check that reading it fails with code and message. */
static void check_bad_publisher(const char *text, int code, const char *msg)
{
	char *path = path_in_dir("bad.key"), *want = xasprintf("%s: %s", path, msg);
	uint8_t sk[FERRY_SK_LEN];

	unlink(path);
	write_text(path, text);
	memset(sk, 0x55, sizeof(sk));
	assert_int_equal(fcrypto_publisher_key_read(path, sk), code);
	if (strstr(ferry_errmsg(code), want) == NULL)
		fail_msg("got '%s', want '%s'", ferry_errmsg(code), want);
	/* Nothing of a rejected key is handed back. */
	for (size_t i = 0; i < sizeof(sk); i++)
		assert_int_equal(sk[i], 0);
	unlink(path);
	free(want);
	free(path);
}

static void check_bad_netkey(const char *text, int code, const char *msg)
{
	char *path = path_in_dir("bad.key"), *want = xasprintf("%s: %s", path, msg);
	uint8_t key[FERRY_NETKEY_LEN];

	unlink(path);
	write_text(path, text);
	assert_int_equal(fcrypto_netkey_read(path, key), code);
	if (strstr(ferry_errmsg(code), want) == NULL)
		fail_msg("got '%s', want '%s'", ferry_errmsg(code), want);
	unlink(path);
	free(want);
	free(path);
}

static void test_malformed_key_files(void **state)
{
	uint8_t pk[FERRY_PK_LEN], sk[FERRY_SK_LEN], pk2[FERRY_PK_LEN], sk2[FERRY_SK_LEN];
	char sk64[4 * 22 + 1], pk64[FERRY_B64_32_LEN], pk264[FERRY_B64_32_LEN], *t;
	char *missing = path_in_dir("missing.key");

	fcrypto_sign_keypair(pk, sk);
	fcrypto_sign_keypair(pk2, sk2);
	fcrypto_b64_encode(sk64, sk, sizeof(sk));
	fcrypto_b64_encode(pk64, pk, sizeof(pk));
	fcrypto_b64_encode(pk264, pk2, sizeof(pk2));

	/* A good file with CRLF line ends and trailing blank lines reads. */
	t = xasprintf("ferry-publisher-key v1\r\n%s\r\npublic %s\r\n\n\n", sk64, pk64);
	{
		char *path = path_in_dir("crlf.key");
		uint8_t got[FERRY_SK_LEN];

		write_text(path, t);
		assert_int_equal(fcrypto_publisher_key_read(path, got), 0);
		assert_memory_equal(got, sk, sizeof(sk));
		unlink(path);
		free(path);
	}
	free(t);

	check_bad_publisher("", FERRY_EFORMAT,
			    "line 1: not a publisher key file (expected 'ferry-publisher-key v1')");
	check_bad_publisher("hello\n", FERRY_EFORMAT, "line 1: not a publisher key file");
	check_bad_publisher("ferry-publisher-key v2\nxx\npublic yy\n", FERRY_EVERSION,
			    "line 1: 'ferry-publisher-key v2': this ferry reads only "
			    "'ferry-publisher-key v1'");
	check_bad_publisher("ferry-network-key v1\nAAAA\n", FERRY_EFORMAT,
			    "line 1: this is a network key file, not a publisher key file");
	check_bad_publisher("ferry-publisher-key v1\nnot base64!\npublic x\n", FERRY_EFORMAT,
			    "line 2: not a base64 key");
	t = xasprintf("ferry-publisher-key v1\n%s\npublic %s\n", pk64, pk64);
	check_bad_publisher(t, FERRY_EFORMAT, "line 2: not a base64 key");
	free(t);
	t = xasprintf("ferry-publisher-key v1\n%s\n", sk64);
	check_bad_publisher(t, FERRY_EFORMAT, "line 3: missing");
	free(t);
	t = xasprintf("ferry-publisher-key v1\n%s\npub %s\n", sk64, pk64);
	check_bad_publisher(t, FERRY_EFORMAT, "line 3: expected 'public <base64 key>'");
	free(t);
	t = xasprintf("ferry-publisher-key v1\n%s\npublic %s\n", sk64, pk264);
	check_bad_publisher(t, FERRY_EFORMAT,
			    "line 3: the public key does not belong to the secret key");
	free(t);
	t = xasprintf("ferry-publisher-key v1\n%s\npublic %s\n\nextra\n", sk64, pk64);
	check_bad_publisher(t, FERRY_EFORMAT, "line 5: unexpected text after the key");
	free(t);
	/* A damaged seed: the secret key's halves disagree. */
	sk[0] ^= 1;
	fcrypto_b64_encode(sk64, sk, sizeof(sk));
	t = xasprintf("ferry-publisher-key v1\n%s\npublic %s\n", sk64, pk64);
	check_bad_publisher(t, FERRY_EFORMAT, "line 2: damaged secret key");
	free(t);

	check_bad_netkey("ferry-network-key v1\n", FERRY_EFORMAT, "line 2: missing");
	check_bad_netkey("ferry-network-key v1\nZm9vYmFy\n", FERRY_EFORMAT,
			 "line 2: not a base64 key");
	t = xasprintf("ferry-publisher-key v1\n%s\npublic %s\n", sk64, pk64);
	check_bad_netkey(t, FERRY_EFORMAT,
			 "line 1: this is a publisher key file, not a network key file");
	free(t);
	t = xasprintf("ferry-network-key v1\n%s\n%s\n", pk64, pk64);
	check_bad_netkey(t, FERRY_EFORMAT, "line 3: unexpected text after the key");
	free(t);

	assert_int_equal(fcrypto_netkey_read(missing, pk), FERRY_ENOENT);
	assert_non_null(strstr(ferry_errmsg(FERRY_ENOENT), missing));
	free(missing);
}

static void test_write_errors(void **state)
{
	uint8_t key[FERRY_NETKEY_LEN] = {0};
	char *path = path_in_dir("no-such-dir/network.key");

	assert_int_equal(fcrypto_netkey_write(path, key), FERRY_ENOENT);
	assert_non_null(strstr(ferry_errmsg(FERRY_ENOENT), path));
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_blake2b_kat),	     cmocka_unit_test(test_sha256_kat),
	    cmocka_unit_test(test_sha256_streaming), cmocka_unit_test(test_ed25519_rfc8032),
	    cmocka_unit_test(test_sign_verify),	     cmocka_unit_test(test_random_equal_wipe),
	    cmocka_unit_test(test_base64),	     cmocka_unit_test(test_publisher_key_file),
	    cmocka_unit_test(test_netkey_file),	     cmocka_unit_test(test_malformed_key_files),
	    cmocka_unit_test(test_write_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
