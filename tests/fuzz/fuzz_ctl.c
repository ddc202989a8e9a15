/*
 * Fuzz the control protocol's decoders. The daemon reads requests and
 * signatures from any local client that can connect to its socket; the
 * client reads data and result messages from the daemon. The first input
 * byte picks a mode:
 *   0  a length prefix (ctl_hdr_get, against the daemon's cap), then
 *      ctl_request_decode() of the rest;
 *   1  ctl_signature_decode() of the rest;
 *   2  ctl_msg_decode() of the rest and, for a data message of a known kind,
 *      ctl_data_decode() of its record;
 *   3  ctl_data_decode() of the rest as the kind the next byte picks.
 * A request that decodes must keep the limits of ctl.h (arguments, key and
 * string lengths, no NUL inside, no key twice), find each argument by its
 * key, and encode to a message that decodes to the same request and encodes
 * to the same bytes. A signature that decodes must encode to a message that
 * decodes to it. Data records that decode must encode again and decode.
 */
#include "config.h"

#include "ferry/ctl.h"
#include "ferry/error.h"
#include "fuzz.h"

union record {
	struct ctl_status status;
	struct node_peer_row peer;
	struct node_model_row model;
	struct ctl_progress progress;
	struct ctl_manifest manifest;
	struct node_limit_row limit;
};

static bool args_equal(const struct ctl_arg *a, const struct ctl_arg *b)
{
	if (strcmp(a->key, b->key) != 0 || a->type != b->type)
		return false;
	switch (a->type) {
	case CTL_T_STR:
	case CTL_T_BIN:
		return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
	case CTL_T_UINT:
		return a->u == b->u;
	case CTL_T_INT:
		return a->i == b->i;
	default:
		return a->b == b->b;
	}
}

static void request(const uint8_t *p, size_t n)
{
	struct ctl_request req, again;
	uint8_t *enc, *enc2;
	size_t len, len2;

	if (ctl_request_decode(p, n, &req) != 0) {
		ctl_request_clear(&req);
		return;
	}
	FUZZ_CHECK(req.version == CTL_PROTO_VERSION);
	FUZZ_CHECK(req.cmd != NULL && strlen(req.cmd) <= CTL_CMD_MAX);
	FUZZ_CHECK(req.n_args <= CTL_ARGS_MAX);
	for (size_t i = 0; i < req.n_args; i++) {
		const struct ctl_arg *a = &req.args[i];
		size_t klen = strlen(a->key);

		FUZZ_CHECK(klen >= 1 && klen <= CTL_KEY_MAX);
		FUZZ_CHECK(ctl_request_arg(&req, a->key) == a);
		if (a->type == CTL_T_STR)
			FUZZ_CHECK(strlen(a->str) == a->len && a->len <= CTL_STR_MAX);
	}
	FUZZ_CHECK(ctl_request_encode(&req, &enc, &len) == 0 && len > CTL_HDR_LEN);
	FUZZ_CHECK(ctl_request_decode(enc + CTL_HDR_LEN, len - CTL_HDR_LEN, &again) == 0);
	FUZZ_CHECK(strcmp(again.cmd, req.cmd) == 0 && again.n_args == req.n_args);
	for (size_t i = 0; i < req.n_args; i++)
		FUZZ_CHECK(args_equal(&req.args[i], &again.args[i]));
	FUZZ_CHECK(ctl_request_encode(&again, &enc2, &len2) == 0);
	FUZZ_CHECK(len == len2 && memcmp(enc, enc2, len) == 0);
	free(enc);
	free(enc2);
	ctl_request_clear(&again);
	ctl_request_clear(&req);
}

static void signature(const uint8_t *p, size_t n)
{
	uint8_t sig[64], again[64], *enc;
	size_t len;

	if (ctl_signature_decode(p, n, sig) != 0)
		return;
	ctl_signature_encode(sig, &enc, &len);
	FUZZ_CHECK(len > CTL_HDR_LEN &&
		   ctl_signature_decode(enc + CTL_HDR_LEN, len - CTL_HDR_LEN, again) == 0);
	FUZZ_CHECK(memcmp(sig, again, 64) == 0);
	free(enc);
}

static void data(int kind, const uint8_t *p, size_t n)
{
	union record rec, again;
	char *mem = NULL, *mem2 = NULL;
	struct ctl_msg msg;
	uint8_t *enc;
	size_t len;

	if (ctl_data_kind_name(kind) == NULL)
		return;
	if (ctl_data_decode(kind, p, n, &rec, &mem) == 0) {
		FUZZ_CHECK(ctl_data_encode(kind, &rec, &enc, &len) == 0 && len > CTL_HDR_LEN);
		FUZZ_CHECK(ctl_msg_decode(enc + CTL_HDR_LEN, len - CTL_HDR_LEN, &msg) == 0);
		FUZZ_CHECK(msg.type == CTL_MSG_DATA && msg.kind == kind);
		FUZZ_CHECK(ctl_data_decode(kind, msg.data, msg.data_len, &again, &mem2) == 0);
		free(enc);
	}
	free(mem);
	free(mem2);
}

static void message(const uint8_t *p, size_t n)
{
	struct ctl_msg msg;

	if (ctl_msg_decode(p, n, &msg) != 0)
		return;
	FUZZ_CHECK(msg.type == CTL_MSG_DATA || msg.type == CTL_MSG_RESULT);
	if (msg.type == CTL_MSG_RESULT) {
		FUZZ_CHECK(msg.code <= 0);
		FUZZ_CHECK(msg.msg_len == 0 || (msg.msg >= (const char *)p &&
						msg.msg + msg.msg_len <= (const char *)p + n));
	} else if (msg.kind != 0) {
		FUZZ_CHECK(msg.data >= p && msg.data + msg.data_len <= p + n);
		data(msg.kind, msg.data, msg.data_len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data_in, size_t size)
{
	struct fuzz_in in = {data_in, size};
	uint8_t hdr[CTL_HDR_LEN];
	uint32_t len;
	size_t got;
	const uint8_t *h;

	switch (fuzz_u8(&in) % 4) {
	case 0:
		h = fuzz_bytes(&in, CTL_HDR_LEN, &got);
		memset(hdr, 0, sizeof(hdr));
		memcpy(hdr, h, got);
		if (ctl_hdr_get(hdr, CTL_REQUEST_MAX, &len) == 0)
			FUZZ_CHECK(len >= 1 && len <= CTL_REQUEST_MAX);
		request(in.p, in.n);
		break;
	case 1:
		signature(in.p, in.n);
		break;
	case 2:
		message(in.p, in.n);
		break;
	default:
		data(fuzz_u8(&in) % 8, in.p, in.n);
		break;
	}
	return 0;
}
