#!/usr/bin/env python3
"""Plaintext test app: the unmodified service moat protects.

Every accepted connection is appended to --log as "conn PEER", so a test can
prove the app saw no connection at all.
Modes: sha (reply sha256 of everything received, after EOF), source (send N
seeded bytes), echo, hello (send hello, half-close, then record the sha of
what still arrives), ppv2 (parse a PROXY v2 header strictly, log its fields
as "pp2 k=v ...", then echo).
"""
import argparse
import hashlib
import socket
import struct
import time
import sys
import threading

from seeded import CHUNK, stream_bytes


PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        more = conn.recv(n - len(data))
        if not more:
            raise OSError("EOF inside the PROXY header")
        data += more
    return data


def tlvs(data):
    out = {}
    while data:
        t, n = data[0], int.from_bytes(data[1:3], "big")
        if len(data) < 3 + n:
            raise ValueError("TLV overruns the header")
        out[t] = data[3:3 + n]
        data = data[3 + n:]
    return out


def parse_ppv2(conn):
    import ipaddress
    head = recv_exact(conn, 16)
    if head[:12] != PP2_SIG or head[12] != 0x21:
        raise ValueError(f"bad PROXY v2 signature/command {head!r}")
    body = recv_exact(conn, int.from_bytes(head[14:16], "big"))
    fam = head[13]
    if fam == 0x11:
        src, dst = ipaddress.ip_address(body[0:4]), ipaddress.ip_address(body[4:8])
        sp, dp, rest = int.from_bytes(body[8:10], "big"), int.from_bytes(body[10:12], "big"), body[12:]
    elif fam == 0x21:
        src, dst = ipaddress.ip_address(body[0:16]), ipaddress.ip_address(body[16:32])
        sp, dp, rest = int.from_bytes(body[32:34], "big"), int.from_bytes(body[34:36], "big"), body[36:]
    else:
        raise ValueError(f"unexpected family {fam:#x}")
    t = tlvs(rest)
    fields = {"src": f"{src}:{sp}", "dst": f"{dst}:{dp}"}
    if 0x20 in t:
        ssl = t[0x20]
        fields["client"] = f"{ssl[0]:#x}"
        fields["verify"] = str(int.from_bytes(ssl[1:5], "big"))
        sub = tlvs(ssl[5:])
        for k, name in ((0x21, "version"), (0x22, "cn"), (0x23, "cipher")):
            if k in sub:
                fields[name] = sub[k].decode()
    if 0x05 in t:
        fields["unique_id"] = t[0x05].decode()
    if 0xE0 in t:
        fields["san_uri"] = t[0xE0].decode()
    return " ".join(f"{k}={v}" for k, v in fields.items())


def serve(conn, peer, args, log_lock):
    with log_lock, open(args.log, "a") as f:
        f.write(f"conn {peer[0]}:{peer[1]}\n")
    try:
        if args.mode == "ppv2":
            try:
                line = parse_ppv2(conn)
            except ValueError as e:
                line = f"bad {e}"
            with log_lock, open(args.log, "a") as f:
                f.write(f"pp2 {line}\n")
            while data := conn.recv(CHUNK):
                conn.sendall(data)
        elif args.mode == "sha":
            h = hashlib.sha256()
            while data := conn.recv(CHUNK):
                h.update(data)
            conn.sendall(f"sha {h.hexdigest()}\n".encode())
        elif args.mode == "source":
            for block in stream_bytes(args.seed, args.bytes):
                conn.sendall(block)
        elif args.mode == "reset":
            # Answer once, then abort: close with SO_LINGER 0 sends RST.
            conn.recv(CHUNK)
            conn.sendall(b"about to reset\n")
            time.sleep(0.3)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif args.mode == "echo":
            while data := conn.recv(CHUNK):
                conn.sendall(data)
        elif args.mode == "hello":
            conn.sendall(b"hello\n")
            conn.shutdown(socket.SHUT_WR)
            h = hashlib.sha256()
            got = b""
            while data := conn.recv(CHUNK):
                h.update(data)
                got += data[:64]
            with log_lock, open(args.log, "a") as f:
                f.write(f"after-half-close {got.decode(errors='replace')!r}\n")
    except OSError as e:
        with log_lock, open(args.log, "a") as f:
            f.write(f"error {e}\n")
    finally:
        conn.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", default="sha", choices=["sha", "source", "echo", "hello", "ppv2", "reset"])
    p.add_argument("--bytes", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log", required=True)
    p.add_argument("--bind", default="::")
    args = p.parse_args()
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.bind, args.port))
    srv.listen(128)
    open(args.log, "a").close()
    print("ready", flush=True)
    lock = threading.Lock()
    while True:
        conn, peer = srv.accept()
        threading.Thread(target=serve, args=(conn, peer, args, lock), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
