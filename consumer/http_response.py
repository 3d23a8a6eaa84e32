"""An HTTP/1.1 response as bytes: what every endpoint of the consumer answers with."""

from __future__ import annotations

__all__ = ["JSON", "REASONS", "response", "text"]

JSON = "application/json"
REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           411: "Length Required", 413: "Content Too Large",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable"}  # fmt: skip


def response(status: int, body: bytes, content_type: str, head: bool = False, allow: bool = False) -> bytes:
    """A whole HTTP/1.1 response (``head``: without its body)."""
    lines = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(["Allow: GET"] if allow else []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body)


def text(status: int, body: str) -> tuple[int, bytes, str]:
    """(status, body, content type) of a plain-text answer."""
    return status, (body + "\n").encode(), "text/plain; charset=utf-8"
