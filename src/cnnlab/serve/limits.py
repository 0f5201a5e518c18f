"""The server's settings and limits, and the refusals that carry an HTTP status.

    >>> Settings(max_body_bytes=1 << 20).max_body_bytes
    1048576

Every refusal is a `Refusal(status, message)`; the app turns it into a JSON body
`{"error": message, "status": status}`. `BodyLimit` is the ASGI middleware that
refuses a body over `max_body_bytes`, from its Content-Length when there is one,
and by counting the bytes as they arrive when there is none (chunked uploads).
"""
from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    max_body_bytes: int = 8 * 1024 * 1024   # bytes of one request body
    max_pixels: int = 16_000_000  # width * height of one upload (cnnlab predict's: 40 M)
    max_images: int = 64        # images in one request
    max_batch: int = 256        # images in one forward pass (the dynamic batch)
    max_wait_ms: float = 2.0    # ms a batch waits for more requests after its first
    timeout_s: float = 10.0     # seconds a request may wait for its prediction
    top: int = 3                # classes returned unless the request asks for another number


class Refusal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class BodyLimit:
    """ASGI middleware: 413 for a request body over `limit` bytes."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send, f"{int(declared):,} bytes")
        seen = 0

        async def counted_receive():
            # raised inside the route that reads the body, so the app's Refusal handler answers
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise Refusal(413, self._message(f"more than {self.limit:,} bytes"))
            return message

        await self.app(scope, counted_receive, send)

    def _message(self, received: str) -> str:
        return (f"Request body too large. Expected at most {self.limit:,} bytes. "
                f"Received {received}.")

    async def _refuse(self, send, received: str):
        body = json.dumps({"status": 413, "error": self._message(received)}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
