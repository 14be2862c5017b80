"""A TCP listener whose accept queue is full: new connections hang in the handshake.

Prints its port and process id, then holds the sockets until the spec stops it
by that id, its parent dies, or a minute has passed, so that it never outlives
the test. Used to test connect_timeout
on loopback, where no address is unroutable.
"""
import os
import socket
import sys
import time

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.bind(("127.0.0.1", 0))
listener.listen(0)
port = listener.getsockname()[1]
# Linux keeps backlog + 1 connections waiting; a few more make sure it is full.
fillers = []
for _ in range(4):
    filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    filler.setblocking(False)
    try:
        filler.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    fillers.append(filler)
time.sleep(0.2)
print(port, os.getpid(), flush=True)
parent = os.getppid()
deadline = time.time() + 60
while time.time() < deadline and os.getppid() == parent:
    time.sleep(0.1)
sys.exit(0)
