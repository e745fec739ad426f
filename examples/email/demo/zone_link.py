#!/usr/bin/env python3
"""zone_link.py: a zone's network link for the demo, without root.

An HTTP CONNECT proxy on loopback. The demo starts the processes of zone
az-c with grpc_proxy=http://127.0.0.1:PORT, so every connection their
Quorate client makes (to any member, leader hints included) goes through
it. While CONTROL_FILE says "cut", the link is cut: every open connection
is closed and new ones are refused, as if the zone's network were gone.
Anything else heals it. The file is read every 50 ms (a file rather than
signals: a signal handler that closes sockets can deadlock with the
threads it interrupts).

    zone_link.py CONTROL_FILE    prints its port on the first line of stdout
"""
import socket
import sys
import threading
import time

cut = threading.Event()
lock = threading.Lock()
open_sockets = set()


def close_all():
    with lock:
        socks = list(open_sockets)
        open_sockets.clear()
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(client):
    upstream = None
    try:
        client.settimeout(5)
        request = b""
        while b"\r\n\r\n" not in request and len(request) < 8192:
            chunk = client.recv(4096)
            if not chunk:
                raise OSError("closed before the request ended")
            request += chunk
        line = request.split(b"\r\n", 1)[0].decode("latin-1").split()
        if cut.is_set() or len(line) < 2 or line[0] != "CONNECT":
            raise OSError("refused")
        host, port = line[1].rsplit(":", 1)
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            raise OSError("only loopback")
        upstream = socket.create_connection((host, int(port)), timeout=5)
        client.settimeout(None)
        upstream.settimeout(None)
        with lock:
            if cut.is_set():
                raise OSError("cut")
            open_sockets.update((client, upstream))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=pump, args=(upstream, client),
                         daemon=True).start()
        pump(client, upstream)
    except OSError:
        pass
    finally:
        with lock:
            open_sockets.discard(client)
            open_sockets.discard(upstream)
        client.close()
        if upstream is not None:
            upstream.close()


def watch(control):
    """Follows CONTROL_FILE: cuts (closing what is open) and heals."""
    while True:
        try:
            with open(control) as f:
                want_cut = f.read().strip() == "cut"
        except OSError:
            want_cut = False
        if want_cut and not cut.is_set():
            cut.set()
            close_all()
        elif not want_cut and cut.is_set():
            cut.clear()
        time.sleep(0.05)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: zone_link.py CONTROL_FILE")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    print(listener.getsockname()[1], flush=True)
    threading.Thread(target=watch, args=(sys.argv[1],), daemon=True).start()
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client,), daemon=True).start()


if __name__ == "__main__":
    main()
