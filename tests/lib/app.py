#!/usr/bin/env python3
"""Plaintext test app: the unmodified service moat protects.

Every accepted connection is appended to --log as "conn PEER", so a test can
prove the app saw no connection at all.
Modes: sha (reply sha256 of everything received, after EOF), source (send N
seeded bytes), echo, hello (send hello, half-close, then record the sha of
what still arrives).
"""
import argparse
import hashlib
import random
import socket
import sys
import threading

CHUNK = 1 << 20


def stream_bytes(seed, total):
    rnd = random.Random(seed)
    block = rnd.randbytes(CHUNK)
    sent = 0
    while sent < total:
        n = min(CHUNK, total - sent)
        yield block[:n]
        sent += n


def serve(conn, peer, args, log_lock):
    with log_lock, open(args.log, "a") as f:
        f.write(f"conn {peer[0]}:{peer[1]}\n")
    try:
        if args.mode == "sha":
            h = hashlib.sha256()
            while data := conn.recv(CHUNK):
                h.update(data)
            conn.sendall(f"sha {h.hexdigest()}\n".encode())
        elif args.mode == "source":
            for block in stream_bytes(args.seed, args.bytes):
                conn.sendall(block)
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
    p.add_argument("--mode", default="sha", choices=["sha", "source", "echo", "hello"])
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
