/*
 * FastCDC content-defined chunking; the format is in docs/formats.md
 * ("Chunking") and pinned by tests/unit/test_chunker.c.
 *
 * The rule, for a chunk starting at p with n bytes available:
 *
 *   fp = 0
 *   for i = CHUNK_MIN_SIZE .. min(n, CHUNK_MAX_SIZE) - 1:
 *       fp = (fp << 1) + gear[p[i]]                      (mod 2^64)
 *       mask = i < CHUNK_AVG_SIZE ? MASK_S : MASK_L
 *       if (fp & mask) == 0: the chunk is p[0 .. i]      (length i + 1)
 *   otherwise the chunk is min(n, CHUNK_MAX_SIZE) bytes
 *
 * Because each step shifts fp left by one, byte i - 64 has left fp by the
 * time byte i is added: fp after byte i is a function of bytes i-63..i alone
 * (of fewer when i - 63 < CHUNK_MIN_SIZE, as hashing starts there). So the
 * hash can be started afresh 64 bytes before any position and reach the same
 * value. scan() uses that to run LANES independent hashes over LANES adjacent
 * blocks at once: one hash is a serial chain of about two cycles a byte, but
 * four chains interleaved keep the core busy and run about three times as
 * fast. The first cut in byte order is still the one returned.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>

#include "ferry/chunker.h"
#include "ferry/util.h"

/*
 * Normalized chunking, level 2: a cut needs 20 zero bits of fp (one chance in
 * 2^20 a byte) up to the normal size CHUNK_AVG_SIZE = 2^18, then only 16 (one
 * in 2^16) up to the maximum. Both masks take the top bits of fp, the bits
 * that depend on the most bytes (up to 64).
 */
#define MASK_S 0xfffff00000000000ull /* top 20 bits */
#define MASK_L 0xffff000000000000ull /* top 16 bits */
/* The hash window: fp depends on the last WINDOW bytes only. */
#define WINDOW 64
#define LANES  4
/* Bytes each lane scans per round; a round overshoots a cut by up to 3 blocks. */
#define BLOCK 4096
/* Below this many bytes a lane's block is too short to repay its warm-up. */
#define MIN_BLOCK 512

/*
 * gear[i] = the first 8 bytes, read as a little-endian integer, of
 * BLAKE2b-256("ferry-gear-v1" || i), where i is one byte (14 bytes hashed).
 * tests/unit/test_chunker.c recomputes it.
 */
const uint64_t chunker__gear[256] = {
    0x468b5152da119277, 0xf12759ac25de5226, 0x67ecee01b646798a, 0x7634c6c5318bba4f,
    0x997bbe8e574d99e5, 0xbeebfab5869e1c78, 0xeff3d87ac5232a4f, 0x34535ff8da1c1412,
    0xfc963e90b1834d65, 0x28da7841f7d34ff2, 0x44fe663d0aae30be, 0xdcf07d9bd0ff29ba,
    0xb100d29bed2b5c83, 0x09b48b074d2bb0e2, 0x09c9fc9afa164bf3, 0x5e34cbe9de5b13ff,
    0x9e27ae38d2806b55, 0x333faabe3298866b, 0x82a61eadc563b1ca, 0x72f6c5bfd0d0a838,
    0x3bb9a6c3912a4131, 0xb31bdfaddca476ff, 0x577bbce97f06f95d, 0x37d2edb3c7794549,
    0x7cffd1efaa0cb018, 0x8f4b2d578b5f5caa, 0x758c1263a2480837, 0x2dba86d1126ac77a,
    0xd9ef6beb32cedf85, 0xabacdf49a416a5f8, 0x47218fa7d11a08e8, 0x71715fb8bf5cd6cf,
    0x2920b04bce7a3677, 0x49b4057117d9660e, 0x164e4dcc05a114a4, 0x23e32d13e693dc7e,
    0x3444c41eb29d0ebb, 0xd2c4563b957adb4a, 0xef416585a3cd47d2, 0x2a0240dcd517fc15,
    0xba976b9f32d96d8c, 0xc32d3ce5c0cfb5d8, 0x3e486ca946830c0b, 0xfa66f8fa5540e2e3,
    0x955a3873f825fee2, 0x0637216ba19d081d, 0x0ed203335bfce38e, 0xa8352da5cb5ea115,
    0x0d7b44bdbbf1c901, 0xe83410892daf2365, 0xa11206ffc08c02da, 0x41e5c3761131e7d0,
    0x86071b51355eb980, 0xccf86b91eb745631, 0xc25daf692457cad7, 0x064607f7fe49bf38,
    0x8f3d62500ee94e24, 0x8a43ab59c1deb390, 0xbd007eac6c72bee8, 0x7f8c234de86e2a00,
    0xc0c753d230dc23c0, 0xbc8d395fed8004ba, 0xacf765adaaa854ec, 0x62c3d33476333acb,
    0x1d9891c122a7539c, 0xf444e675d7796336, 0x88b80a1e7f6e6e0b, 0xcab6b3f25aab5b5c,
    0x531ea85a82dbcd24, 0x3523bfbb71d23a95, 0xe2fa9af1abc0a43a, 0x82ae443e53612295,
    0xddba48ddcfede6ad, 0x1ae00b83084bb8a5, 0x119a680ee9a75273, 0x620a9dece4081918,
    0x517e1bc074ea570d, 0xaa3c943f40c317e1, 0x0ed273d8c7d403fe, 0xd800c14a639e5f16,
    0xdc254cc4739b6683, 0x71301e6185569a7f, 0xd3e66dc7b6f41c33, 0x1336c6b3b5a2089a,
    0x5cd4aed75c5b4fd2, 0xc61c6d5da1dde22c, 0x00b4f03d383d16e6, 0x47cb1af6c9019cfe,
    0x8ea58a1ea07f07a2, 0x9a0ac935f05a3de5, 0xc71eb2ec1a8678a9, 0x15a76f55654e8ba8,
    0xebac844e051c7a2f, 0x736a1e6c0b97f693, 0xb37bf0535a0fa339, 0x8e770c11b672082c,
    0x6794af3523523821, 0xa9bd4610cdcaf67e, 0xac780f3d3efee70a, 0xc5852eab8a6040b9,
    0x9d9a1bb308b2535c, 0x8964311c9645cae0, 0x9b6e79b75ec00372, 0x0d043cb83f2ecc6a,
    0x3aa692e0c65c4989, 0x6f7c37df6d691b62, 0x5ebf89e03ad5c415, 0x311674d76baa1a42,
    0x6864523586a9a45c, 0x722376e21c8bf1bd, 0xb9eb9559a5386ab6, 0x53e4fde0d6d54da4,
    0xc56a92be9838f2c1, 0x83b6195742285f56, 0x67512ff0a0dcc026, 0x4da60c193484c01d,
    0x5c3375007af3b6a3, 0x9f2bd2657a552828, 0xf20087fc794d4e5a, 0xc9f99d91a91482fa,
    0x2c9daad4b3c3f2b9, 0x03440fd91d4c07e2, 0x2040ce53f1c975f9, 0xaa1fc1644b7e9622,
    0x9b8d3b66cc3c8c71, 0x895e3423c3f6cc68, 0xefc248a4ac6f4c02, 0x2e44e3ebd447024d,
    0xbbe3aa9d448c4bd9, 0xcd2f64a78ad10119, 0xc092d1db7aadd1f2, 0x6dec402374509522,
    0xb3f44a0c2a5b9a69, 0xeada662277b58267, 0xb6bab0c1cc645e3b, 0x2703d66c537e12b3,
    0xd75a31bfd965ea67, 0x0334812bafb201b2, 0x05327ec5500979aa, 0x65a6fdd6337790d2,
    0x05b25ae5758044df, 0xe40e5b6cd8a904a3, 0xf9597b0310cd3f27, 0x9112782903260591,
    0xa326a7135cbe8b9d, 0x2feed2953875908c, 0x95577fbcb70da5fe, 0x5c43d198b1d0186c,
    0xc3ae8de2f02543fa, 0x3aa7eb8a843abc99, 0xf6a31d3a94cdfa5c, 0x40e8d2c9bb63950b,
    0xe789e62657351711, 0x81cde4cedcfc8672, 0x0150bdc0ff0a81ac, 0x0b13afab9e1f4a0a,
    0x0cf390c329e21531, 0x36a18f72728213d8, 0x1a2a4e2ee954cc48, 0x720d0761eb002725,
    0x801a625e42a3a2d9, 0xd5f37c3e3dd2366c, 0x7ac859a0525f891f, 0x4a4428bedb4d90d3,
    0x10d5dd04439f2ab6, 0xfb1e7da1d08ab252, 0xb7421b9d6a0625f4, 0x0c6fbcf487af1620,
    0x09fe580b9561f2c2, 0xb84eed799f7ab6f3, 0x6628af4e57fd9b84, 0x34567877bea4e56d,
    0xf012a6b3fcd117b0, 0x75551e95b0974528, 0x48a86134f1005c19, 0x09bee90d590649d2,
    0x37913fae68a4f2d9, 0xaf982a76869d1e77, 0x95e4c5af3af19b6d, 0xcea14a42d8fd0266,
    0x1ff388893e42c759, 0x6a8bae8822268629, 0x86fca06d92ed756a, 0x2dcee2c3e9c74e61,
    0xe42fc833ce2f5d5f, 0xd11c92e2aadb9b68, 0x1d8211b2494584d0, 0xb5393ee33561db74,
    0x58d4cc2f75153d0a, 0xe9dea845010e63b9, 0xf1e7b250081f0796, 0xc5694d376d8b0b20,
    0x02abf2cd08c1ed45, 0xd2387f4b6bf1be4b, 0x469d33b3000100fb, 0x31c8c528cb0eb42c,
    0xeecbf01e78056393, 0x8a9ea44fc4e66041, 0xed6ce1d9d6a3be47, 0x55426c0d33c258bb,
    0x0fa62db27dda360d, 0x9597d2abd962a952, 0x65f76a0283a894d3, 0x1e1e440616e933e3,
    0x26c41b7db2a4ec1a, 0xbdd4249e0a64ef06, 0xf0807b87ab098e4e, 0xe0d0d307726480dc,
    0xa34cda7c938d3bbc, 0x0673182615f40a25, 0x4fda19f0e6be1204, 0x043236fc28bb51ae,
    0x544c2d5f41c0a83b, 0x855d172f45083238, 0x5ff00ca3941b314a, 0x34fea5671fb177a6,
    0x01a90937e659bd34, 0x37a503e22d9d4c64, 0xa7ddc0c17786d362, 0x7d5ce21bb6c6dabe,
    0xf9d26b2dd0a13d28, 0xa9cf68c5053d300d, 0x9b362fe75fcf9fa6, 0x77c340c1a5c16023,
    0x2a1875d8dc0bb766, 0x49afeb0f37ab979d, 0xc6757760d4f0ac23, 0x857b7661a1c7b945,
    0x90be90a87745d7d7, 0xa962a0c4a80f7988, 0x4cf9564222147ada, 0x0ef14f95a67dd0e9,
    0x22f056c55e734ca3, 0xf4ef66565aaf810e, 0x56a92c1a2cc59c29, 0x772081d14bc717b9,
    0x4c0981d956515e09, 0x7f54bf13961347fd, 0xf5114df12727b3a2, 0x242a3a2757fe1099,
    0x6664c816fbf4cd76, 0x31b6bd7b1f75fe0f, 0x417cdd6fec8035a9, 0x22397797429e1fa1,
    0xb07730598d65bd5e, 0x993fb519fb267d37, 0x541430d583a9000f, 0xa712bff108989a3d,
    0x928a1ccff66c5406, 0x7f52ec9305bb5a6e, 0x9c4c2f1adfcb68b9, 0xb19f8577228e7bfb,
    0x654943487c5af923, 0x57fb3f3d8d3c88e4, 0x43d0e240f1339200, 0x4caf297c426baf7a,
};

static inline uint64_t roll(uint64_t fp, uint8_t b)
{
	return (fp << 1) + chunker__gear[b];
}

/* fp just before byte q: the hash of the bytes [max(CHUNK_MIN_SIZE, q - WINDOW), q). */
static uint64_t warm(const uint8_t *p, size_t q)
{
	size_t k = q >= CHUNK_MIN_SIZE + WINDOW ? q - WINDOW : CHUNK_MIN_SIZE;
	uint64_t fp = 0;

	for (; k < q; k++)
		fp = roll(fp, p[k]);
	return fp;
}

/* Continue fp over [i, end): the length up to the first cut, or 0 if none. */
static size_t scan_serial(const uint8_t *p, size_t i, size_t end, uint64_t fp, uint64_t mask)
{
	for (; i < end; i++) {
		fp = roll(fp, p[i]);
		if ((fp & mask) == 0)
			return i + 1;
	}
	return 0;
}

/*
 * Some lane hit a cut at step t of a round at i with blocks of b bytes; h
 * holds each lane's fp after that step. A lane below the first hitting lane
 * may still cut later in its own block, which comes first in byte order, so
 * finish each such lane before taking the hit.
 */
static size_t __attribute__((noinline))
resolve(const uint8_t *p, size_t i, size_t b, size_t t, const uint64_t h[LANES], uint64_t mask)
{
	for (size_t c = 0; c < LANES; c++) {
		size_t start = i + c * b, r;

		if ((h[c] & mask) == 0)
			return start + t + 1;
		r = scan_serial(p, start + t + 1, start + b, h[c], mask);
		if (r != 0)
			return r;
	}
	fatal("chunker: a lane reported a cut that no lane has");
}

/* The length up to the first cut in [i, end) under mask, or 0 if none. */
static size_t scan(const uint8_t *p, size_t i, size_t end, uint64_t mask)
{
	for (;;) {
		size_t b = MIN((end - i) / LANES, BLOCK);
		const uint8_t *q0, *q1, *q2, *q3;
		uint64_t h0, h1, h2, h3;

		if (b < MIN_BLOCK)
			return scan_serial(p, i, end, warm(p, i), mask);
		q0 = p + i;
		q1 = q0 + b;
		q2 = q1 + b;
		q3 = q2 + b;
		h0 = warm(p, i);
		h1 = warm(p, i + b);
		h2 = warm(p, i + 2 * b);
		h3 = warm(p, i + 3 * b);
		for (size_t t = 0; t < b; t++) {
			h0 = roll(h0, q0[t]);
			h1 = roll(h1, q1[t]);
			h2 = roll(h2, q2[t]);
			h3 = roll(h3, q3[t]);
			if (__builtin_expect((h0 & mask) == 0 || (h1 & mask) == 0 ||
						 (h2 & mask) == 0 || (h3 & mask) == 0,
					     0)) {
				const uint64_t h[LANES] = {h0, h1, h2, h3};

				return resolve(p, i, b, t, h, mask);
			}
		}
		i += LANES * b;
	}
}

size_t chunker_cut(const uint8_t *p, size_t n)
{
	size_t normal, r;

	if (n <= CHUNK_MIN_SIZE)
		return n;
	n = MIN(n, CHUNK_MAX_SIZE);
	normal = MIN(n, CHUNK_AVG_SIZE);
	r = scan(p, CHUNK_MIN_SIZE, normal, MASK_S);
	if (r == 0)
		r = scan(p, normal, n, MASK_L);
	return r != 0 ? r : n;
}
