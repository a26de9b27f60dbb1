#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""An unmodified-style asyncio TCP server for servers_test (issue 14).

Usage: echoserver.py --port PORT

Listens on 127.0.0.1:PORT and prints "listening pid N port PORT" once
bound. Each connection carries requests, one after the other:

    "<tag> <length>\n" then <length> payload bytes

The server echoes every payload byte back as soon as it reads it (so
bytes sit in both directions' queues while a request is in flight), then,
once the whole payload is in, sends "\nDONE <tag> <length> <fnv>\n",
<fnv> being the 64-bit FNV-1a of the payload as the server received it,
in hex. A client checks that the echo is its payload byte for byte and
that the server saw the same bytes.
"""
import argparse
import asyncio
import os
import sys

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def fnv1a(h, data):
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


async def serve(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            tag, length = line.split()
            left = int(length)
            h = FNV_OFFSET
            while left:
                chunk = await reader.read(min(left, 65536))
                if not chunk:
                    raise ConnectionError("eof inside a payload")
                h = fnv1a(h, chunk)
                left -= len(chunk)
                writer.write(chunk)
                await writer.drain()
            writer.write(b"\nDONE %s %s %016x\n" % (tag, length, h))
            await writer.drain()
    except (ConnectionError, ValueError) as e:
        print("connection error: %r" % e, flush=True)
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    port = ap.parse_args().port
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    print("listening pid %d port %d" % (os.getpid(), port), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
