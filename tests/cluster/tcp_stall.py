"""Does a partition stall an established TCP connection (and does it resume once healed)?

  python3 tcp_stall.py serve IP PORT    echo server; prints `ready on IP:PORT`, then
                                        `peer ADDR` for the one connection it accepts
  python3 tcp_stall.py client IP PORT   connects, checks an echo, prints `connected`; then on
                                        each line on stdin: `partitioned` sends a byte and
                                        expects no echo for 2 s (prints `stalled`), `healed`
                                        expects that byte's echo within 30 s on the same
                                        connection (prints `resumed after Xs`). Exits 1 on
                                        anything else.
"""

import socket
import sys
import time


def serve(ip: str, port: int) -> None:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen()
    print(f"ready on {ip}:{port}", flush=True)
    conn, peer = s.accept()
    print(f"peer {peer[0]}", flush=True)
    while data := conn.recv(64):
        conn.sendall(data)


def client(ip: str, port: int) -> int:
    c = socket.create_connection((ip, port), timeout=5)
    c.sendall(b"a")
    if c.recv(1) != b"a":
        print("no echo before the partition", flush=True)
        return 1
    print("connected", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "partitioned":
            c.settimeout(2)
            c.sendall(b"b")
            try:
                got = c.recv(1)
                print(f"NOT stalled: got {got!r} across the partition", flush=True)
                return 1
            except socket.timeout:
                print("stalled", flush=True)
        elif cmd == "healed":
            c.settimeout(30)
            t = time.monotonic()
            try:
                got = c.recv(1)
            except OSError as e:
                print(f"connection did not resume: {e}", flush=True)
                return 1
            if got != b"b":
                print(f"connection did not resume: got {got!r}", flush=True)
                return 1
            print(f"resumed after {time.monotonic() - t:.1f}s", flush=True)
            return 0
    return 1


if __name__ == "__main__":
    mode, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "serve":
        serve(ip, port)
    else:
        sys.exit(client(ip, port))
