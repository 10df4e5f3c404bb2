"""A TCP relay between the cluster's workers and MinIO that can stop an upload at a chosen point.

The fault tests need a kill to land *mid-upload*: after a folder's "incomplete" manifest is stored
and before its files are. Watching MinIO from the test and then freezing it is a race the upload
wins (a small dataset uploads in milliseconds), so the hold happens on the wire instead: once armed,
the relay lets one PUT whose request line names the marker through, waits for MinIO's 2xx answer
to it, and from then on forwards no byte from any worker to MinIO until released. The uploader is
then blocked on its next request, deterministically, with the manifest stored. Unarmed, the relay
is a plain byte pipe (the workers' S3 connection points at it for the whole session).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Self


class UploadGate:
    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._cond = threading.Condition()
        self._marker: tuple[bytes, ...] | None = None  # armed: the parts a PUT's request line must hold
        self._holding = False
        self._held = threading.Event()
        self._closed = False
        self.held_request = ""

    # -- the test's handle ------------------------------------------------------------------------
    def hold_after_put(self, *parts: str) -> None:
        """Arms the gate: after the next PUT whose request line contains every part succeeds,
        nothing more reaches MinIO until ``release()``."""
        with self._cond:
            self._held.clear()
            self._marker = tuple(p.encode() for p in parts)

    def wait_held(self, timeout: float) -> bool:
        return self._held.wait(timeout)

    def release(self) -> None:
        with self._cond:
            self._marker, self._holding = None, False
            self._cond.notify_all()

    # -- the relay --------------------------------------------------------------------------------
    def start(self) -> Self:
        threading.Thread(target=self._accept, name="upload-gate", daemon=True).start()
        return self

    def stop(self) -> None:
        self._closed = True
        self.release()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:  # MinIO stopped: the client sees its connection close, as with MinIO itself
                client.close()
                continue
            trigger = threading.Event()  # this connection sent the marked PUT; its answer arms the hold
            threading.Thread(target=self._to_server, args=(client, server, trigger), daemon=True).start()
            threading.Thread(target=self._to_client, args=(server, client, trigger), daemon=True).start()

    def _to_server(self, client: socket.socket, server: socket.socket, trigger: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while chunk := client.recv(65536):
                with self._cond:
                    self._cond.wait_for(lambda: not self._holding)
                    marker = self._marker
                if marker and chunk.startswith(b"PUT "):
                    line = chunk.split(b"\r\n", 1)[0]
                    if all(part in line for part in marker):
                        self.held_request = line.decode(errors="replace")
                        trigger.set()
                server.sendall(chunk)
        _close(client, server)

    def _to_client(self, server: socket.socket, client: socket.socket, trigger: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while chunk := server.recv(65536):
                client.sendall(chunk)
                if trigger.is_set() and chunk.startswith(b"HTTP/1.1 2"):
                    trigger.clear()
                    with self._cond:
                        if self._marker:
                            self._holding, self._marker = True, None
                            self._held.set()
        _close(client, server)


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
