#!/usr/bin/env python3
"""Capture the first bytes a real client sends: a whole TLS ClientHello or an HTTP head.

usage: capture.py tls|http OUT -- CLIENT ARGS...   ({port} in ARGS is replaced)

Binds 127.0.0.1 on a free port, runs the client against it, reads one unit
(the ClientHello, reassembled record by record, or the head up to CRLFCRLF),
writes the raw bytes exactly as received to OUT, then closes the connection.
"""
import socket
import subprocess
import sys


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise SystemExit("client closed early")
        data += chunk
    return data


def read_hello(conn):
    raw, handshake = b"", b""
    while len(handshake) < 4 or len(handshake) < 4 + int.from_bytes(handshake[1:4], "big"):
        header = read_exact(conn, 5)
        if header[0] != 0x16:
            raise SystemExit(f"not a handshake record: {header.hex()}")
        payload = read_exact(conn, int.from_bytes(header[3:5], "big"))
        raw += header + payload
        handshake += payload
    return raw


def read_head(conn):
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = conn.recv(4096)
        if not chunk:
            raise SystemExit("client closed early")
        raw += chunk
    return raw[: raw.index(b"\r\n\r\n") + 4]


def main():
    mode, out, sep, *client = sys.argv[1:]
    assert sep == "--" and mode in ("tls", "http"), __doc__
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    port = listener.getsockname()[1]
    args = [a.replace("{port}", str(port)) for a in client]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn, _ = listener.accept()
        conn.settimeout(10)
        data = read_hello(conn) if mode == "tls" else read_head(conn)
        conn.close()
    finally:
        proc.kill()
        proc.wait()
    with open(out, "wb") as f:
        f.write(data)
    print(f"{out}: {len(data)} bytes")


if __name__ == "__main__":
    main()
