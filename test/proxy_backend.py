#!/usr/bin/env python3
"""The backend of the proxy tests that need more than tcpcheck, on 127.0.0.1:9301.

proxy_backend.py READY_FILE read SECONDS
    one connection, read 64 KiB every SECONDS until the EOF ("eof BYTES SHA256")
    or a reset ("reset BYTES")
proxy_backend.py READY_FILE answer COUNT
    COUNT connections one after another: each read to its EOF, answered with the
    SHA256 of what came, then closed
READY_FILE appears once it listens.
"""
import hashlib
import socket
import sys
import time


def read_all(conn, pause):
    digest, got = hashlib.sha256(), 0
    while True:
        time.sleep(pause)
        chunk = conn.recv(65536)
        if not chunk:
            return got, digest.hexdigest()
        digest.update(chunk)
        got += len(chunk)


def main():
    ready, mode, arg = sys.argv[1:4]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 9301))
    listener.listen()
    open(ready, "w").close()
    if mode == "read":
        conn, _ = listener.accept()
        try:
            got, digest = read_all(conn, float(arg))
            print("eof", got, digest)
        except ConnectionResetError:
            print("reset")
        return
    for _ in range(int(arg)):
        conn, _ = listener.accept()
        conn.sendall(read_all(conn, 0)[1].encode())
        conn.close()


main()
