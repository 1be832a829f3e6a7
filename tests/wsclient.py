"""A minimal WebSocket client (RFC 6455) from the standard library: one handshake, text frames, for tests.

It speaks to a real server (uvicorn directly, or nginx in front of it) and checks what a browser
checks: the 101 status, the Upgrade header and Sec-WebSocket-Accept derived from its key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WebSocketError(Exception):
    """The server did not complete the handshake or sent something this client does not expect."""


class WebSocket:
    def __init__(self, host: str, port: int, path: str, *, host_header: str | None = None,
                 timeout: float = 10) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {host_header or host}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise WebSocketError(f"connection closed during the handshake: {head!r}")
            head += chunk
        self.status_line, *lines = head.decode("latin-1").split("\r\n")
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines if h)}
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if " 101 " not in self.status_line + " " or self.headers.get("sec-websocket-accept") != accept:
            raise WebSocketError(f"no upgrade: {self.status_line} {self.headers}")

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        size = len(payload)
        header = bytes([0x81]) + (bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + struct.pack(">H", size))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise WebSocketError("connection closed mid-frame")
            data += chunk
        return data

    def receive_text(self) -> str:
        """The next text frame (pings are answered, other control frames skipped)."""
        while True:
            first, second = self._exact(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack(">H", self._exact(2))[0]
            elif size == 127:
                size = struct.unpack(">Q", self._exact(8))[0]
            payload = self._exact(size)
            opcode = first & 0x0F
            if opcode == 0x1:
                return payload.decode()
            if opcode == 0x8:
                raise WebSocketError(f"closed by the server: {payload!r}")
            if opcode == 0x9:  # ping: answer with a masked pong
                mask = os.urandom(4)
                self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + mask +
                                  bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def close(self) -> None:
        mask = os.urandom(4)
        try:
            self.sock.sendall(bytes([0x88, 0x82]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"\x03\xe8")))
        finally:
            self.sock.close()
