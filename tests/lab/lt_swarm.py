#!/usr/bin/python3
"""One libtorrent peer of bench/swarm's BitTorrent baseline.

  lt_swarm.py create DATA_DIR OUT.torrent [PIECE_KIB]
      a v1 torrent of the files under DATA_DIR (256 KiB pieces by default:
      ferry's average chunk), named after DATA_DIR's last component
  lt_swarm.py peer TORRENT SAVE_PATH LISTEN_IP PEERS RUNDIR NAME [TRANSPORT]
      one peer: PEERS is a comma-separated list of IP:PORT to connect to
      (add_peer; no tracker, DHT, LSD, UPnP or NAT-PMP). With the data
      already in SAVE_PATH it checks it and seeds. It writes RUNDIR/NAME.ready
      when it can start, waits for RUNDIR/go, then downloads, writes
      RUNDIR/NAME.done (the Unix time it completed) and seeds on until
      RUNDIR/stop exists. TRANSPORT: tcp (default), utp or both.

Needs Debian's python3-libtorrent (`apt-get install python3-libtorrent`),
hence /usr/bin/python3 rather than whatever python3 is first on the PATH.
"""
import os
import sys
import time

import libtorrent as lt

PORT = 6881


def create(data_dir, out, piece_kib=256):
    data_dir = os.path.abspath(data_dir)
    fs = lt.file_storage()
    lt.add_files(fs, data_dir)
    ct = lt.create_torrent(fs, piece_kib * 1024, flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, os.path.dirname(data_dir))
    with open(out, "wb") as f:
        f.write(lt.bencode(ct.generate()))


def touch(path, text=""):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def peer(torrent, save_path, ip, peers, rundir, name, transport="tcp"):
    tcp = transport in ("tcp", "both")
    utp = transport in ("utp", "both")
    ses = lt.session({
        "listen_interfaces": "%s:%d" % (ip, PORT),
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "enable_outgoing_tcp": tcp,
        "enable_incoming_tcp": tcp,
        "enable_outgoing_utp": utp,
        "enable_incoming_utp": utp,
        "alert_mask": lt.alert.category_t.error_notification,
    })
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = save_path
    h = ses.add_torrent(atp)
    seeder = False
    # A seeder checks its files before it says it is ready.
    while True:
        s = h.status()
        if s.state not in (lt.torrent_status.checking_files,
                           lt.torrent_status.checking_resume_data):
            seeder = s.is_seeding
            break
        time.sleep(0.1)
    if not seeder:
        h.pause()
    touch(os.path.join(rundir, name + ".ready"))
    while not os.path.exists(os.path.join(rundir, "go")):
        time.sleep(0.05)
    h.resume()
    addrs = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in peers.split(",") if a]
    done = seeder
    last_connect = 0.0
    while not os.path.exists(os.path.join(rundir, "stop")):
        now = time.time()
        # Ask again now and then, as a tracker would hand out the peers again
        # after a connection failed.
        if now - last_connect >= 10:
            for a in addrs:
                h.connect_peer(a)
            last_connect = now
        if not done and h.status().is_seeding:
            done = True
            touch(os.path.join(rundir, name + ".done"), "%.3f\n" % time.time())
        for a in ses.pop_alerts():
            if a.category() & lt.alert.category_t.error_notification:
                sys.stderr.write("%s: %s\n" % (name, a.message()))
        time.sleep(0.1)


def main(argv):
    if len(argv) >= 4 and argv[1] == "create":
        create(argv[2], argv[3], *(int(a) for a in argv[4:5]))
    elif len(argv) >= 8 and argv[1] == "peer":
        peer(*argv[2:10])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
