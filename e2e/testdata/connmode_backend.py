#!/usr/bin/env python3
"""A stand-in for an IDE's remote backend.

  connmode_backend.py tcp          listens on 127.0.0.1, on a port the kernel picks
  connmode_backend.py unix PATH    listens on the Unix socket PATH

It prints one line saying where it listens ("listening on port N" or
"listening on socket PATH"), answers the first line each client sends,
LINE, with "served LINE", and exits when its standard input ends (the
session that started it closed its stdin).
"""
import os
import socket
import sys
import threading


def answer(conn):
    with conn:
        f = conn.makefile("rwb")
        line = f.readline().rstrip(b"\n")
        f.write(b"served " + line + b"\n")
        f.flush()


def serve(listener):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


if sys.argv[1] == "tcp":
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    where = "port %d" % listener.getsockname()[1]
else:
    path = sys.argv[2]
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    where = "socket " + path
listener.listen(16)
threading.Thread(target=serve, args=(listener,), daemon=True).start()
print("listening on " + where, flush=True)
sys.stdin.buffer.read()
if sys.argv[1] == "unix":
    os.unlink(sys.argv[2])
