"""A small TCP proxy for fault tests: it stands between the engine and a real Redis and breaks
the connection on demand.

Modes, switched while traffic flows:

``forward``
    Bytes pass both ways (the normal state).
``refuse``
    Open connections are cut, new ones accepted and closed at once (with a reset): Redis "is
    down".
``stall``
    Connections stay open but no byte is passed on: Redis "hangs", as behind a dead link.

``cut()`` closes every open connection (both sides), as a restarted load balancer or a NAT
dropping its table would. Each accepted connection is counted in ``accepted``, so a test can
tell how many times the client dialled.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType

FORWARD, REFUSE, STALL = "forward", "refuse", "stall"


class TcpProxy:
    """Listens on a free loopback port and relays to ``target_port``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port: int = self.listener.getsockname()[1]
        self.mode = FORWARD
        self.accepted = 0
        self.held = threading.Event()  # set once stalled bytes are being held back
        self._flowing = threading.Condition()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> TcpProxy:
        self._acceptor.start()
        return self

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Switching modes ---------------------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        with self._flowing:
            self.mode = mode
            if mode != STALL:
                self.held.clear()
            self._flowing.notify_all()
        if mode == REFUSE:
            self.cut()

    def cut(self) -> None:
        """Close every open connection, both towards the client and towards Redis."""
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        for sock in sockets:
            _reset(sock)
        with self._flowing:
            self._flowing.notify_all()

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self._acceptor.join(5)
        for thread in self._threads:
            thread.join(5)
        self.listener.close()

    # Relaying ----------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            if self.mode == REFUSE:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._flowing:
                    while self.mode == STALL and not self._closed.is_set() and self._open(src):
                        self.held.set()
                        self._flowing.wait(0.05)
                if not self._open(src):
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(src)
                self._sockets.discard(dst)
            _reset(src)
            _reset(dst)

    def _open(self, sock: socket.socket) -> bool:
        with self._lock:
            return sock in self._sockets


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset (SO_LINGER 0), as a crashed peer would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv() on it
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sock.close()
