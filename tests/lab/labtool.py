#!/usr/bin/env python3
"""Small traffic tools for the network lab (run inside its namespaces).

  labtool.py echo PORT                   UDP echo server, until killed
  labtool.py rtt HOST PORT [N [GAP]]     N UDP probes GAP s apart (10, 0.2);
                                         prints "sent N received M min avg max" (ms)
  labtool.py sink PORT [LOG]             accept one TCP connection and read it
                                         to the end; every 0.2 s append
                                         "EPOCH BYTES" (bytes so far) to LOG;
                                         prints "BYTES SECONDS MBIT/S" from the
                                         first byte to the last
  labtool.py source HOST PORT SECONDS    send zeros over one TCP connection
  labtool.py send HOST PORT BYTES        send BYTES zeros over one TCP connection

Only the Python standard library, so the lab needs nothing from PyPI.
"""
import socket
import struct
import sys
import time


def echo(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)


def rtt(host, port, count=10, gap=0.2):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    s.settimeout(0.05)
    sent = {}
    times = []
    deadline = time.monotonic() + count * gap + 2.0
    next_send = time.monotonic()
    seq = 0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if seq < count and now >= next_send:
            sent[seq] = now
            s.send(struct.pack("!Q", seq) + b"x" * 56)
            seq += 1
            next_send += gap
        try:
            data = s.recv(2048)
        except (socket.timeout, ConnectionRefusedError):
            continue
        (n,) = struct.unpack("!Q", data[:8])
        if n in sent:
            times.append((time.monotonic() - sent.pop(n)) * 1000.0)
        if seq == count and not sent:
            break
    if times:
        print("sent %d received %d %.1f %.1f %.1f" %
              (count, len(times), min(times), sum(times) / len(times), max(times)))
    else:
        print("sent %d received 0 - - -" % count)


def sink(port, log=None):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(1)
    c, _ = ls.accept()
    c.settimeout(0.2)
    total = 0
    first = last = None
    next_log = time.time()
    out = open(log, "a", buffering=1) if log else None
    while True:
        try:
            data = c.recv(1 << 16)
        except socket.timeout:
            data = None
        now = time.time()
        if data == b"":
            break
        if data:
            total += len(data)
            if first is None:
                first = now
            last = now
        if out and now >= next_log:
            out.write("%.3f %d\n" % (now, total))
            next_log = now + 0.2
    if out:
        out.write("%.3f %d\n" % (time.time(), total))
    secs = (last - first) if first is not None and last > first else 0.0
    print("%d %.3f %.3f" % (total, secs, total * 8 / secs / 1e6 if secs else 0.0))


def source(host, port, seconds):
    s = socket.create_connection((host, port), timeout=30)
    buf = b"\0" * (1 << 16)
    end = time.monotonic() + seconds
    s.settimeout(None)
    while time.monotonic() < end:
        s.send(buf)
    s.close()


def send(host, port, count):
    s = socket.create_connection((host, port), timeout=30)
    s.settimeout(None)
    buf = b"\0" * (1 << 16)
    while count > 0:
        count -= s.send(buf[:min(count, len(buf))])
    s.close()


def main(argv):
    try:
        cmd = argv[1]
        if cmd == "echo":
            echo(int(argv[2]))
        elif cmd == "rtt":
            rtt(argv[2], int(argv[3]), *(f(a) for f, a in zip((int, float), argv[4:])))
        elif cmd == "sink":
            sink(int(argv[2]), argv[3] if len(argv) > 3 else None)
        elif cmd == "source":
            source(argv[2], int(argv[3]), float(argv[4]))
        elif cmd == "send":
            send(argv[2], int(argv[3]), int(argv[4]))
        else:
            raise IndexError
    except (IndexError, ValueError):
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
