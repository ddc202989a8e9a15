/*
 * delay_relay: a one-way delay for the network lab, which has no netem.
 *
 *   delay_relay [-d MS[,MS]] [-q PACKETS] [-P] [NETNS_A:]TUN_A [NETNS_B:]TUN_B
 *
 * Two TUN devices form the two ends of a point-to-point link, each usually in
 * its own network namespace (NETNS is a path such as /run/netns/lab-hq or a
 * name under /run/netns/; no NETNS: the relay's own namespace). Every packet
 * the kernel routes out of TUN_A is read here, held for the A->B delay and
 * then written into TUN_B, where the kernel receives it as if it had come
 * off a wire; the other way round likewise. The devices may already exist
 * (`ip tuntap add ... mode tun`, persistent: the lab configures addresses,
 * routes and qdiscs before the relay starts and the link gets its carrier
 * when the relay attaches); otherwise they are created and vanish with the
 * relay.
 *
 * The relay only delays. Rate limits (tc tbf on each device's egress), loss
 * and outages (nftables) are the kernel's job, so the rate limit acts before
 * the delay, as a link serializes a packet before it propagates.
 *
 * How it works: one thread, one epoll set with both TUN descriptors, a
 * timerfd and a signalfd. Each direction has a FIFO ring of fixed slots; a
 * packet is stamped with its due time (CLOCK_MONOTONIC at read + delay) as
 * it is read. Since the delay of a direction is constant, due times in a ring
 * never decrease, so the ring's head is always the next packet of that
 * direction and packets are never reordered within a direction. The timerfd
 * is armed (absolute time) for the earlier of the two heads; when it fires,
 * every packet that is due is written out. A burst simply fills the ring; a
 * full ring drops the newest packet (tail drop, as a router queue would) and
 * counts it. Slots are 2 KiB: a TUN without IFF_VNET_HDR hands over packets
 * of at most its MTU (1500 in the lab), and a larger one is dropped and
 * counted rather than truncated.
 *
 * -P ties the relay's life to its parent's (PR_SET_PDEATHSIG), so a lab
 * script that is killed does not leave relays behind. SIGTERM, SIGINT and
 * SIGHUP end the relay after printing its counters to stderr; SIGUSR1 prints
 * them and goes on.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SLOT_DATA   (2048 - 16)
#define DEFAULT_CAP 4096
#define READ_BATCH  64
#define NS_PER_MS   1000000ull

struct slot {
	uint64_t due_ns;
	uint32_t len;
	uint8_t data[SLOT_DATA];
};

/* One direction: packets read from in_fd wait in ring, then go to out_fd. */
struct dir {
	const char *name; /* "a->b" */
	int in_fd, out_fd;
	uint64_t delay_ns;
	struct slot *ring;
	uint32_t cap, head, count;
	uint64_t relayed, bytes, drop_full, drop_big, write_err;
};

struct end {
	const char *netns; /* NULL: our own namespace */
	const char *ifname;
};

static void usage(FILE *f)
{
	fputs("usage: delay_relay [-d MS[,MS]] [-q PACKETS] [-P] [NETNS_A:]TUN_A [NETNS_B:]TUN_B\n"
	      "\n"
	      "  -d MS[,MS]   one-way delay in milliseconds, A->B then B->A (default 100;\n"
	      "               one value applies to both directions)\n"
	      "  -q PACKETS   packets queued per direction at most (default 4096)\n"
	      "  -P           exit when the parent process dies\n"
	      "  NETNS        a path (/run/netns/NAME) or a name under /run/netns/\n",
	      f);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Parse "NETNS:IF" or "IF". The string is modified in place. */
static int parse_end(char *s, struct end *e)
{
	char *colon = strrchr(s, ':');

	e->netns = NULL;
	e->ifname = s;
	if (colon != NULL) {
		*colon = '\0';
		e->netns = s;
		e->ifname = colon + 1;
	}
	if (e->ifname[0] == '\0' || strlen(e->ifname) >= IFNAMSIZ) {
		fprintf(stderr, "delay_relay: bad interface name '%s' (1 to %d characters)\n",
			e->ifname, IFNAMSIZ - 1);
		return -1;
	}
	return 0;
}

/*
 * Open (or create) TUN device e->ifname inside e->netns. The descriptor's
 * device belongs to the namespace current at open(2) time, so we enter the
 * namespace around the open and the TUNSETIFF, then go back home.
 */
static int tun_open(const struct end *e, int home_ns)
{
	char path[PATH_MAX];
	struct ifreq ifr;
	int nsfd = -1, fd = -1;

	if (e->netns != NULL) {
		if (strchr(e->netns, '/') != NULL)
			snprintf(path, sizeof(path), "%s", e->netns);
		else
			snprintf(path, sizeof(path), "/run/netns/%s", e->netns);
		nsfd = open(path, O_RDONLY | O_CLOEXEC);
		if (nsfd < 0) {
			fprintf(stderr, "delay_relay: %s: %s\n", path, strerror(errno));
			return -1;
		}
		if (setns(nsfd, CLONE_NEWNET) < 0) {
			fprintf(stderr, "delay_relay: setns %s: %s\n", path, strerror(errno));
			close(nsfd);
			return -1;
		}
	}
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "delay_relay: /dev/net/tun: %s\n", strerror(errno));
		goto out;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	memcpy(ifr.ifr_name, e->ifname, strlen(e->ifname));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		fprintf(stderr, "delay_relay: TUNSETIFF %s%s%s: %s\n", e->netns ? e->netns : "",
			e->netns ? ":" : "", e->ifname, strerror(errno));
		close(fd);
		fd = -1;
	}
out:
	if (nsfd >= 0) {
		if (setns(home_ns, CLONE_NEWNET) < 0) {
			fprintf(stderr, "delay_relay: setns back home: %s\n", strerror(errno));
			if (fd >= 0)
				close(fd);
			fd = -1;
		}
		close(nsfd);
	}
	return fd;
}

/* Read every packet waiting on d->in_fd (at most READ_BATCH) into the ring. */
static void dir_read(struct dir *d)
{
	static uint8_t overflow[65536];

	for (int i = 0; i < READ_BATCH; i++) {
		struct slot *s;
		struct iovec iov[2];
		ssize_t n;

		if (d->count == d->cap) {
			/* Full: drain the packet anyway, or epoll would spin on it. */
			n = read(d->in_fd, overflow, sizeof(overflow));
			if (n < 0)
				return;
			d->drop_full++;
			continue;
		}
		s = &d->ring[(d->head + d->count) % d->cap];
		iov[0].iov_base = s->data;
		iov[0].iov_len = SLOT_DATA;
		iov[1].iov_base = overflow;
		iov[1].iov_len = sizeof(overflow);
		n = readv(d->in_fd, iov, 2);
		if (n < 0)
			return; /* EAGAIN: drained; anything else: the next event tells */
		if (n == 0)
			continue;
		if ((size_t)n > SLOT_DATA) {
			d->drop_big++;
			continue;
		}
		s->len = (uint32_t)n;
		s->due_ns = now_ns() + d->delay_ns;
		d->count++;
	}
}

/* Write out every packet of d that is due at now. */
static void dir_flush(struct dir *d, uint64_t now)
{
	while (d->count > 0) {
		struct slot *s = &d->ring[d->head];

		if (s->due_ns > now)
			break;
		if (write(d->out_fd, s->data, s->len) == (ssize_t)s->len) {
			d->relayed++;
			d->bytes += s->len;
		} else {
			d->write_err++;
		}
		d->head = (d->head + 1) % d->cap;
		d->count--;
	}
}

/* The due time of d's next packet, or UINT64_MAX if it has none. */
static uint64_t dir_next(const struct dir *d)
{
	return d->count > 0 ? d->ring[d->head].due_ns : UINT64_MAX;
}

static void print_stats(const struct dir *dirs)
{
	for (int i = 0; i < 2; i++) {
		const struct dir *d = &dirs[i];

		fprintf(stderr,
			"delay_relay: %s: %" PRIu64 " packets (%" PRIu64 " bytes) relayed, "
			"%" PRIu64 " dropped on a full queue, %" PRIu64 " too big, %" PRIu64
			" write errors, %" PRIu32 " queued\n",
			d->name, d->relayed, d->bytes, d->drop_full, d->drop_big, d->write_err,
			d->count);
	}
}

static int parse_ms(const char *s, uint64_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || (*end != '\0' && *end != ',') || v > 3600000) {
		fprintf(stderr, "delay_relay: bad delay '%s' (milliseconds, 0 to 3600000)\n", s);
		return -1;
	}
	*out = (uint64_t)v * NS_PER_MS;
	return 0;
}

int main(int argc, char **argv)
{
	struct dir dirs[2] = {{.name = "a->b"}, {.name = "b->a"}};
	uint64_t delay_ab = 100 * NS_PER_MS, delay_ba, armed = UINT64_MAX;
	unsigned long cap = DEFAULT_CAP;
	struct end ends[2];
	struct epoll_event ev;
	sigset_t sigs;
	int opt, home_ns, efd = -1, tfd = -1, sfd = -1, fd[2] = {-1, -1}, rc = 1;
	bool die_with_parent = false, delay_ba_set = false;
	pid_t parent = getppid();

	while ((opt = getopt(argc, argv, "d:q:Ph")) != -1) {
		char *comma, *end;

		switch (opt) {
		case 'd':
			if (parse_ms(optarg, &delay_ab) < 0)
				return 2;
			comma = strchr(optarg, ',');
			if (comma != NULL) {
				if (parse_ms(comma + 1, &delay_ba) < 0)
					return 2;
				delay_ba_set = true;
			}
			break;
		case 'q':
			errno = 0;
			cap = strtoul(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || cap < 1 || cap > 1000000) {
				fprintf(stderr,
					"delay_relay: bad queue length '%s' (1 to 1000000)\n",
					optarg);
				return 2;
			}
			break;
		case 'P':
			die_with_parent = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return 2;
	}
	if (!delay_ba_set)
		delay_ba = delay_ab;
	if (parse_end(argv[optind], &ends[0]) < 0 || parse_end(argv[optind + 1], &ends[1]) < 0)
		return 2;

	if (die_with_parent) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			return 0; /* the parent died before the prctl took effect */
	}

	/* Signals arrive through signalfd, so block them before anything else. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	sigprocmask(SIG_BLOCK, &sigs, NULL);

	home_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (home_ns < 0) {
		fprintf(stderr, "delay_relay: /proc/self/ns/net: %s\n", strerror(errno));
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		fd[i] = tun_open(&ends[i], home_ns);
		if (fd[i] < 0)
			goto out;
	}
	dirs[0].in_fd = fd[0];
	dirs[0].out_fd = fd[1];
	dirs[0].delay_ns = delay_ab;
	dirs[1].in_fd = fd[1];
	dirs[1].out_fd = fd[0];
	dirs[1].delay_ns = delay_ba;
	for (int i = 0; i < 2; i++) {
		/* calloc of a large block maps zero pages lazily: an idle ring costs little. */
		dirs[i].ring = calloc(cap, sizeof(struct slot));
		if (dirs[i].ring == NULL) {
			fprintf(stderr, "delay_relay: out of memory for %lu slots\n", cap);
			goto out;
		}
		dirs[i].cap = (uint32_t)cap;
	}

	efd = epoll_create1(EPOLL_CLOEXEC);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	if (efd < 0 || tfd < 0 || sfd < 0) {
		fprintf(stderr, "delay_relay: epoll/timerfd/signalfd: %s\n", strerror(errno));
		goto out;
	}
	{
		int fds[4] = {fd[0], fd[1], tfd, sfd};

		for (int i = 0; i < 4; i++) {
			ev.events = EPOLLIN;
			ev.data.fd = fds[i];
			if (epoll_ctl(efd, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
				fprintf(stderr, "delay_relay: epoll_ctl: %s\n", strerror(errno));
				goto out;
			}
		}
	}

	for (;;) {
		struct epoll_event evs[4];
		uint64_t next;
		int n = epoll_wait(efd, evs, 4, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "delay_relay: epoll_wait: %s\n", strerror(errno));
			goto out;
		}
		for (int i = 0; i < n; i++) {
			int f = evs[i].data.fd;

			if (f == fd[0]) {
				dir_read(&dirs[0]);
			} else if (f == fd[1]) {
				dir_read(&dirs[1]);
			} else if (f == tfd) {
				uint64_t expirations;
				uint64_t now = now_ns();

				if (read(tfd, &expirations, sizeof(expirations)) < 0 &&
				    errno != EAGAIN)
					fprintf(stderr, "delay_relay: timerfd: %s\n",
						strerror(errno));
				armed = UINT64_MAX;
				dir_flush(&dirs[0], now);
				dir_flush(&dirs[1], now);
			} else if (f == sfd) {
				struct signalfd_siginfo si;

				if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
					continue;
				print_stats(dirs);
				if (si.ssi_signo != SIGUSR1) {
					rc = 0;
					goto out;
				}
			}
		}
		/* Arm the timer for the next due packet unless it already is. */
		next = dir_next(&dirs[0]);
		if (dir_next(&dirs[1]) < next)
			next = dir_next(&dirs[1]);
		if (next != UINT64_MAX && next < armed) {
			struct itimerspec its = {
			    .it_value = {.tv_sec = (time_t)(next / 1000000000ull),
					 .tv_nsec = (long)(next % 1000000000ull)},
			};

			if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
				fprintf(stderr, "delay_relay: timerfd_settime: %s\n",
					strerror(errno));
				goto out;
			}
			armed = next;
		}
	}
out:
	if (efd >= 0)
		close(efd);
	if (tfd >= 0)
		close(tfd);
	if (sfd >= 0)
		close(sfd);
	for (int i = 0; i < 2; i++) {
		if (fd[i] >= 0)
			close(fd[i]);
		free(dirs[i].ring);
	}
	close(home_ns);
	return rc;
}
