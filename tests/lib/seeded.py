"""The seeded byte stream both ends of a transfer test agree on."""
import hashlib
import random

CHUNK = 1 << 20


def stream_bytes(seed, total):
    """total bytes, in CHUNK-sized blocks, the same for the same seed."""
    block = random.Random(seed).randbytes(CHUNK)
    sent = 0
    while sent < total:
        n = min(CHUNK, total - sent)
        yield block[:n]
        sent += n


def expected_sha(seed, total):
    h = hashlib.sha256()
    for b in stream_bytes(seed, total):
        h.update(b)
    return h.hexdigest()
