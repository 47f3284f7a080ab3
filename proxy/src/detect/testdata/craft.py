#!/usr/bin/env python3
"""Derive crafted ClientHellos from captured ones (see make.sh).

usage: craft.py pq IN OUT    add an X25519MLKEM768 key share (1216 bytes) in front
                             of the captured shares, drop padding (as Chrome sends it)
       craft.py ech IN OUT   add an Encrypted Client Hello (0xfe0d) outer extension

The output is one handshake record holding the edited hello, with every length
(record, handshake, extensions block, key_share list) recomputed.
"""
import hashlib
import sys

X25519MLKEM768 = 0x11EC
KEY_SHARE, SUPPORTED_GROUPS, PADDING, ECH = 51, 10, 21, 0xFE0D


def u16(n):
    return n.to_bytes(2, "big")


def filler(label, n):
    """Deterministic bytes standing in for a public key or a ciphertext."""
    out = b""
    while len(out) < n:
        out += hashlib.sha256(label + len(out).to_bytes(4, "big")).digest()
    return out[:n]


def split_hello(record):
    assert record[0] == 0x16 and record[5] == 1, "one-record ClientHello expected"
    body = record[9:]
    assert len(body) == int.from_bytes(record[6:9], "big")
    pos = 2 + 32
    pos += 1 + body[pos]                                   # session id
    pos += 2 + int.from_bytes(body[pos:pos + 2], "big")    # cipher suites
    pos += 1 + body[pos]                                   # compression methods
    ext_len = int.from_bytes(body[pos:pos + 2], "big")
    block = body[pos + 2:]
    assert len(block) == ext_len
    exts, i = [], 0
    while i < len(block):
        typ = int.from_bytes(block[i:i + 2], "big")
        n = int.from_bytes(block[i + 2:i + 4], "big")
        exts.append((typ, block[i + 4:i + 4 + n]))
        i += 4 + n
    return record[1:3], body[:pos], exts


def join_hello(version, fixed, exts):
    block = b"".join(u16(t) + u16(len(d)) + d for t, d in exts)
    body = fixed + u16(len(block)) + block
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16" + version + u16(len(handshake)) + handshake


def add_pq(exts):
    out = []
    for typ, data in exts:
        if typ == PADDING:
            continue
        if typ == SUPPORTED_GROUPS:
            groups = u16(X25519MLKEM768) + data[2:]
            data = u16(len(groups)) + groups
        if typ == KEY_SHARE:
            share = filler(b"mlkem", 1216)
            shares = u16(X25519MLKEM768) + u16(len(share)) + share + data[2:]
            data = u16(len(shares)) + shares
        out.append((typ, data))
    return out


def add_ech(exts):
    enc, payload = filler(b"enc", 32), filler(b"payload", 239)
    # ECHClientHello: outer(0), HPKE KDF, AEAD, config_id, enc<0..2^16-1>, payload<1..2^16-1>
    ech = b"\x00" + u16(1) + u16(1) + b"\x2a" + u16(len(enc)) + enc + u16(len(payload)) + payload
    return exts + [(ECH, ech)]


def main():
    mode, src, dst = sys.argv[1:]
    with open(src, "rb") as f:
        version, fixed, exts = split_hello(f.read())
    exts = {"pq": add_pq, "ech": add_ech}[mode](exts)
    out = join_hello(version, fixed, exts)
    with open(dst, "wb") as f:
        f.write(out)
    print(f"{dst}: {len(out)} bytes")


if __name__ == "__main__":
    main()
