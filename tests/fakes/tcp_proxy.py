"""A TCP proxy, in threads of its own, whose connections can be cut the two ways the tests need.

- `drop_all()` resets every open connection at once: a real network loss as a browser sees it
  (Chromium's offline emulation spares requests already streaming).
- `forget()` makes every connection open until then dead on the far side without telling its client: no
  FIN arrives, so the socket still looks open and a connection pool reuses it. The first bytes the client
  sends on it are answered with a reset (RST), which is what a process restored from a SnapStart snapshot
  meets. Connections opened after `forget()` are forwarded as usual.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field
from types import TracebackType


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket
    stale: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class SocketProxy:
    """Forwards 127.0.0.1:`port` to `target` (host, port); see the module docstring."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self.connections = 0
        """Connections accepted so far."""
        self.resets = 0
        """Requests refused with a reset because they came on a forgotten connection."""
        self._closed = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SocketProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for pair in self._pairs:
                for sock in (pair.client, pair.upstream):
                    sock.close()

    def drop_all(self) -> None:
        """Reset every open connection, both sides (as a dropped Wi-Fi or a dead proxy would)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in (pair.client, pair.upstream):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    # shutdown wakes the pump threads blocked in recv(); close alone would wait for them.
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def forget(self) -> None:
        """The far side forgets every open connection; their clients are not told."""
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            with pair.lock:
                pair.stale = True
                # The upstream side goes away for real; the pump reading it sees `stale` and leaves the
                # client's socket as it is. (shutdown wakes that pump's recv; close alone would not.)
                with contextlib.suppress(OSError):
                    pair.upstream.shutdown(socket.SHUT_RDWR)
                pair.upstream.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.append(pair)
                self.connections += 1
            threading.Thread(target=self._to_upstream, args=(pair,), daemon=True).start()
            threading.Thread(target=self._to_client, args=(pair,), daemon=True).start()

    def _to_upstream(self, pair: _Pair) -> None:
        while True:
            try:
                data = pair.client.recv(65536)
            except OSError:
                return
            with pair.lock:
                if pair.stale and data:
                    # SO_LINGER 0: close with a reset, as a host that has no such connection answers.
                    pair.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    pair.client.close()
                    with self._lock:
                        self.resets += 1
                    return
                if not data:
                    pair.upstream.close()
                    return
            try:
                pair.upstream.sendall(data)
            except OSError:
                return

    def _to_client(self, pair: _Pair) -> None:
        while True:
            try:
                data = pair.upstream.recv(65536)
            except OSError:
                data = b""
            with pair.lock:
                if pair.stale:
                    return
                if not data:
                    pair.client.close()
                    return
            try:
                pair.client.sendall(data)
            except OSError:
                return
