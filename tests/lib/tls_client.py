#!/usr/bin/env python3
"""TLS test client on Python's ssl module (OpenSSL underneath), driven through
SSLObject so a test can half-close with close_notify and keep reading.

Exit codes: 0 the server answered (data or a clean close), 3 the server refused
us (alert, reset or EOF before any answer), 2 usage or local error.
The server's verdict is always waited for: in TLS 1.3 the handshake returns
on the client before the server has judged the client certificate.
"""
import argparse
import hashlib
import select
import socket
import ssl
import sys
import time

from seeded import CHUNK, expected_sha, stream_bytes  # noqa: E402


class Conn:
    def __init__(self, args):
        self.sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
        self.sock.setblocking(False)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(args.ca)
        if args.server_name is None:
            ctx.check_hostname = False
        if args.cert:
            ctx.load_cert_chain(args.cert, args.key)
        if args.tls == "1.2":
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        elif args.tls == "1.3":
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        if args.cipher:
            ctx.set_ciphers(args.cipher)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=False,
                                server_hostname=args.server_name)
        # An inactivity timeout: a slow but moving transfer is fine, silence is not.
        self.timeout = args.timeout
        self.deadline = time.monotonic() + args.timeout
        self.peer_closed = False

    def _flush(self):
        data = self.out.read()
        while data:
            try:
                n = self.sock.send(data)
                data = data[n:]
                self.deadline = time.monotonic() + self.timeout
            except BlockingIOError:
                self._wait(write=True)

    def _wait(self, write=False):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        r, w, _ = select.select([] if write else [self.sock], [self.sock] if write else [], [], left)
        if not r and not w:
            raise TimeoutError("timed out")

    def _fill(self):
        self._wait()
        try:
            data = self.sock.recv(CHUNK)
        except BlockingIOError:
            return
        self.deadline = time.monotonic() + self.timeout
        if not data:
            self.inc.write_eof()
        else:
            self.inc.write(data)

    def _drive(self, fn):
        while True:
            try:
                r = fn()
                self._flush()
                return r
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
            except ssl.SSLWantWriteError:
                self._flush()

    def handshake(self):
        self._drive(self.obj.do_handshake)

    def write(self, data):
        view = memoryview(data)
        while view:
            n = self._drive(lambda: self.obj.write(view))
            view = view[n:]

    def read(self):
        """Returns bytes, or b'' once the peer sent close_notify or closed."""
        if self.peer_closed:
            return b""
        try:
            data = self._drive(lambda: self.obj.read(CHUNK))
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            data = b""
        if not data:
            self.peer_closed = True
        return data

    def close_notify(self):
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass  # peer's close_notify not here yet: that is a half-close
        self._flush()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--ca", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--tls", choices=["1.2", "1.3"])
    p.add_argument("--cipher")
    p.add_argument("--server-name")
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--request", help="send this text, close_notify, print the answer")
    p.add_argument("--upload", type=int, help="send N seeded bytes, close_notify, print answer")
    p.add_argument("--download", type=int, help="expect N seeded bytes; check their hash")
    p.add_argument("--after-close-send", help="after the server's close_notify, send this")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--print-version", action="store_true")
    args = p.parse_args()

    try:
        c = Conn(args)
        c.handshake()
    except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as e:
        print(f"refused during handshake: {e}", file=sys.stderr)
        return 3
    if args.print_version:
        print(f"{c.obj.version()} {c.obj.cipher()[0]}", file=sys.stderr)
    answer = bytearray()
    try:
        if args.request is not None:
            c.write(args.request.encode())
            c.close_notify()
        elif args.upload is not None:
            t0 = time.monotonic()
            for block in stream_bytes(args.seed, args.upload):
                c.write(block)
            c.close_notify()
            dt = time.monotonic() - t0
            print(f"upload {args.upload} bytes in {dt:.2f}s = {args.upload / dt / 1e6:.1f} MB/s",
                  file=sys.stderr)
            print(f"sent-sha {expected_sha(args.seed, args.upload)}")
        h = hashlib.sha256()
        got = 0
        t0 = time.monotonic()
        while True:
            data = c.read()
            if not data:
                break
            got += len(data)
            if args.download is not None:
                h.update(data)
            else:
                answer += data
        if args.download is not None:
            dt = time.monotonic() - t0
            print(f"download {got} bytes in {dt:.2f}s = {got / max(dt, 1e-9) / 1e6:.1f} MB/s",
                  file=sys.stderr)
            ok = got == args.download and h.hexdigest() == expected_sha(args.seed, args.download)
            print(f"download {'intact' if ok else 'CORRUPT'} {got} {h.hexdigest()}")
            if not ok:
                return 1
        if args.after_close_send is not None:
            c.write(args.after_close_send.encode())
            c.close_notify()
    except (ssl.SSLError, ConnectionError, TimeoutError) as e:
        if not answer and args.download is None:
            print(f"refused after handshake: {e}", file=sys.stderr)
            return 3
        print(f"connection error after answer: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(answer.decode(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
