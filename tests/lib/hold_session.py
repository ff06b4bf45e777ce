#!/usr/bin/env python3
"""Opens a TLS session, proves it relays (one echo), then keeps it open and
reports when the server closes it: prints "open" after --hold seconds of
quiet, or "closed after N s". Exit 0 either way; 3 if refused at the start."""
import argparse, socket, ssl, sys, time

p = argparse.ArgumentParser()
p.add_argument("host"); p.add_argument("port", type=int)
p.add_argument("--ca", required=True); p.add_argument("--cert"); p.add_argument("--key")
p.add_argument("--hold", type=float, default=10)
p.add_argument("--ready", help="touch this file once the session relays")
a = p.parse_args()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.load_verify_locations(a.ca)
ctx.load_cert_chain(a.cert, a.key)
try:
    s = ctx.wrap_socket(socket.create_connection((a.host, a.port), timeout=10))
    s.sendall(b"ping")
    if s.recv(16) != b"ping":
        raise ssl.SSLError("no echo")
except (OSError, ssl.SSLError) as e:
    print(f"refused: {e}", file=sys.stderr)
    sys.exit(3)
if a.ready:
    open(a.ready, "w").close()
t0 = time.monotonic()
s.settimeout(0.2)
while time.monotonic() - t0 < a.hold:
    try:
        if not s.recv(16):
            break
    except socket.timeout:
        continue
    except (OSError, ssl.SSLError):
        break
else:
    print("open")
    sys.exit(0)
print(f"closed after {time.monotonic() - t0:.1f} s")
