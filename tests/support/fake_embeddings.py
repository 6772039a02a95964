"""A real HTTP server that answers OpenAI's `POST /v1/embeddings`, and misbehaves on demand.

It stands in for a remote embedding provider. The upstream model name picks the behaviour:

- `ok`           one vector of `DIMENSIONS` floats per input (or `dimensions` if asked), in a
                 shuffled `data` order with correct `index` fields
- `base64`       the same vectors, base64-encoded, although floats were asked for
- `unavailable`  503 with an OpenAI error body
- `short`        one embedding too few

Every request body is recorded in `calls`.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

DIMENSIONS = 8


def fake_vector(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """The fake's deterministic vector for `text` (exactly representable as float32)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [(digest[i % len(digest)] - 128) / 128 for i in range(dimensions)]


class FakeEmbeddings:
    """The fake provider, serving on 127.0.0.1 from its own thread."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = orjson.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.calls.append(body)
                status, answer = fake.answer(self.path, body)
                payload = orjson.dumps(answer)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-embeddings", daemon=True
        )

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeEmbeddings:
        """Start serving (the port is bound already)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for one request."""
        behaviour = body.get("model")
        if path != "/v1/embeddings":
            return 404, {"error": {"message": f"no route {path}"}}
        if behaviour == "unavailable":
            return 503, {"error": {"message": "the fake is down", "type": "server_error"}}
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = [fake_vector(text, body.get("dimensions") or DIMENSIONS) for text in texts]
        if behaviour == "short":
            vectors = vectors[:-1]
        data: list[dict[str, Any]] = []
        for index, vector in enumerate(vectors):
            embedding: Any = vector
            if behaviour == "base64":
                embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        data.reverse()  # a client must order by `index`, not by position
        tokens = sum(len(text.split()) for text in texts)
        return 200, {
            "object": "list",
            "data": data,
            "model": behaviour,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
