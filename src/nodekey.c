/* The node key file; see include/ferry/nodekey.h and docs/protocol.md. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ferry/error.h"
#include "ferry/log.h"
#include "ferry/nodekey.h"
#include "ferry/session.h"
#include "ferry/util.h"

/* "ferry-node-key-v1\n" + 64 hex + "\n" */
#define FILE_LEN (sizeof(NODEKEY_MAGIC) + 2 * NODEKEY_LEN + 1)

void nodekey_wipe(struct nodekey *key)
{
	explicit_bzero(key, sizeof(*key));
}

void nodekey_derive_public(struct nodekey *key)
{
	session_x25519_public(key->pk, key->sk);
}

void nodekey_generate(struct nodekey *key)
{
	size_t got = 0;

	while (got < sizeof(key->sk)) {
		ssize_t r = getrandom(key->sk + got, sizeof(key->sk) - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fatal("getrandom: %s", strerror(errno));
		got += (size_t)r;
	}
	nodekey_derive_public(key);
}

char *nodekey_id_hex(char out[static NODEKEY_ID_HEX_LEN], const uint8_t pk[static NODEKEY_LEN])
{
	return hex_encode(out, pk, NODEKEY_LEN);
}

int nodekey_id_parse(uint8_t pk[static NODEKEY_LEN], const char *s)
{
	if (strlen(s) != 2 * NODEKEY_LEN || hex_decode(pk, NODEKEY_LEN, s) != 0)
		return ferry_errf(FERRY_EFORMAT, "'%.80s' is not a node id (64 hex characters)", s);
	return 0;
}

/* Parse the file's bytes: the magic line, then the hex secret key. */
static int parse(const char *path, const char *buf, size_t len, struct nodekey *key)
{
	const size_t magic = sizeof(NODEKEY_MAGIC) - 1;
	char hex[2 * NODEKEY_LEN + 1];
	int rc;

	/* The final newline is optional, as editors differ. */
	if ((len != FILE_LEN && len != FILE_LEN - 1) || memcmp(buf, NODEKEY_MAGIC, magic) != 0 ||
	    buf[magic] != '\n' || (len == FILE_LEN && buf[len - 1] != '\n'))
		return ferry_errf(FERRY_EFORMAT,
				  "%s is not a ferry node key: expected the line '%s' and a line "
				  "of %d hex characters",
				  path, NODEKEY_MAGIC, 2 * NODEKEY_LEN);
	memcpy(hex, buf + magic + 1, 2 * NODEKEY_LEN);
	hex[2 * NODEKEY_LEN] = '\0';
	rc = hex_decode(key->sk, NODEKEY_LEN, hex);
	explicit_bzero(hex, sizeof(hex));
	if (rc != 0)
		return ferry_errf(FERRY_EFORMAT, "%s: the secret key line is not %d hex characters",
				  path, 2 * NODEKEY_LEN);
	nodekey_derive_public(key);
	return 0;
}

int nodekey_load(const char *path, struct nodekey *key)
{
	char buf[FILE_LEN + 1];
	struct stat st;
	size_t len = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ELOOP)
			return ferry_errf(FERRY_EACCES,
					  "node key %s is a symbolic link: refusing to follow it",
					  path);
		return ferry_errno(errno, "node key %s", path);
	}
	if (fstat(fd, &st) != 0) {
		rc = ferry_errno(errno, "node key %s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = ferry_errf(FERRY_EFORMAT, "node key %s is not a regular file", path);
		goto out;
	}
	/* A secret others could read may have leaked: a human should look (as OpenSSH does). */
	if (st.st_mode & 077) {
		rc = ferry_errf(FERRY_EACCES,
				"node key %s is accessible by group or others (mode %04o); it is "
				"secret: check who could have read it, then run chmod 600 %s",
				path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	/* Read one byte more than a key file holds, to notice trailing bytes. */
	while (len < sizeof(buf)) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = ferry_errno(errno, "reading node key %s", path);
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	rc = parse(path, buf, len, key);
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	if (rc != 0)
		nodekey_wipe(key);
	return rc;
}

/* Write a new key to a temporary file in dir and link it to path. */
static int create(const char *dir, const char *path, struct nodekey *key)
{
	char *tmp = xasprintf("%s/.%s.XXXXXX", dir, NODEKEY_FILE);
	char buf[FILE_LEN], hex[2 * NODEKEY_LEN + 1];
	int fd, dfd, rc;

	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = ferry_errno(errno, "creating node key in %s", dir);
		goto out_free;
	}
	nodekey_generate(key);
	hex_encode(hex, key->sk, NODEKEY_LEN);
	memcpy(buf, NODEKEY_MAGIC "\n", sizeof(NODEKEY_MAGIC));
	memcpy(buf + sizeof(NODEKEY_MAGIC), hex, 2 * NODEKEY_LEN);
	buf[FILE_LEN - 1] = '\n';
	rc = write_full(fd, buf, sizeof(buf));
	if (rc == 0 && (fchmod(fd, 0600) != 0 || fsync(fd) != 0))
		rc = -errno;
	if (rc != 0) {
		rc = ferry_errno(-rc, "writing node key %s", tmp);
		close(fd);
		goto out_unlink;
	}
	if (close(fd) != 0) {
		rc = ferry_errno(errno, "writing node key %s", tmp);
		goto out_unlink;
	}
	/* link(2), unlike rename(2), never replaces a key another process just made. */
	if (link(tmp, path) != 0) {
		rc = errno == EEXIST ? FERRY_EEXIST
				     : ferry_errno(errno, "creating node key %s", path);
		goto out_unlink;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0) {
		rc = ferry_errno(errno, "syncing directory %s", dir);
		if (dfd >= 0)
			close(dfd);
		goto out_unlink;
	}
	close(dfd);
	rc = 0;
out_unlink:
	unlink(tmp);
out_free:
	explicit_bzero(buf, sizeof(buf));
	explicit_bzero(hex, sizeof(hex));
	free(tmp);
	if (rc != 0)
		nodekey_wipe(key);
	return rc;
}

int nodekey_load_or_create(const char *state_dir, struct nodekey *key)
{
	char *path = xasprintf("%s/%s", state_dir, NODEKEY_FILE);
	char id[NODEKEY_ID_HEX_LEN];
	struct stat st;
	int rc;

	if (stat(state_dir, &st) != 0) {
		rc = errno == ENOENT
			 ? ferry_errf(FERRY_ENOENT, "state directory %s does not exist", state_dir)
			 : ferry_errno(errno, "state directory %s", state_dir);
		goto out;
	}
	rc = nodekey_load(path, key);
	if (rc != FERRY_ENOENT)
		goto out;
	rc = create(state_dir, path, key);
	if (rc == FERRY_EEXIST) {
		/* Another process created it first: use theirs. */
		rc = nodekey_load(path, key);
		goto out;
	}
	if (rc == 0)
		log_notice(LOG_CRYPTO, "created node key %s: node id %s", path,
			   nodekey_id_hex(id, key->pk));
out:
	free(path);
	return rc;
}
