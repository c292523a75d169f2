"""A fake OpenAI-compatible ``/v1/embeddings`` server behind the real ``openai`` client.

Vectors are bags of "concepts": each word is mapped through ``SYNONYMS`` (so "troops" and
"soldier" are one concept, as a real embeddings model would place them near each other) and
hashed into one of ``DIMENSIONS`` buckets. That is enough for a query that shares no word with
its passage to be found by vector ranking and missed by BM25, which is what the tests need.

Failure modes, set on the instance at any time: ``down`` (HTTP 503), ``answer`` (a function of
the request's JSON that returns the response's JSON instead of the real one: wrong counts,
sizes, non-numbers...). ``requests`` lists the inputs of every request received.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from typing import Any

import httpx2

from service.collections import DIMENSIONS_PROBE
from service.embeddings import Embedder

DIMENSIONS = 64
SYNONYMS = {
    "troops": "soldier",
    "troop": "soldier",
    "soldiers": "soldier",
    "lodged": "quarter",
    "quartered": "quarter",
    "home": "house",
    "homes": "house",
    "permission": "consent",
    "owner": "consent",
    "tin": "metal",
    "mines": "mine",
    "miners": "mine",
    "workers": "employ",
    "employ": "employ",
    "employs": "employ",
}
_WORD = re.compile(r"[a-z]+")


def concept_vector(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        concept = SYNONYMS.get(word, word)
        vector[zlib.crc32(concept.encode()) % dimensions] += 1.0
    return vector


class FakeEmbeddings:
    base_url = "http://fake-embeddings.test/v1"

    def __init__(self, *, dimensions: int = DIMENSIONS) -> None:
        self.dimensions = dimensions
        self.down = False
        self.answer: Callable[[dict[str, Any]], Any] | None = None
        self.requests: list[list[str]] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path != "/v1/embeddings" or request.method != "POST":
            return httpx2.Response(404, json={"error": {"message": "not found"}})
        body = json.loads(request.content)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        self.requests.append(list(inputs))
        if self.down:
            return httpx2.Response(503, json={"error": {"message": "loading"}})
        if self.answer is not None:
            return httpx2.Response(200, json=self.answer(body))
        return httpx2.Response(
            200,
            json={
                "object": "list",
                "model": body["model"],
                "data": [
                    {
                        "object": "embedding",
                        "index": index,
                        "embedding": concept_vector(text, self.dimensions),
                    }
                    for index, text in enumerate(inputs)
                ],
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            },
        )

    @property
    def batches(self) -> list[list[str]]:
        """The requests but the sweep's probe for the vectors' size."""
        return [inputs for inputs in self.requests if inputs != [DIMENSIONS_PROBE]]

    def embedder(self, model: str = "fake-embed", *, batch: int = 8) -> Embedder:
        """The service's real ``Embedder`` (real openai client) talking to this fake."""
        client = httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle))
        return Embedder(
            self.base_url, model, batch=batch, timeout_s=5.0, max_retries=0, http_client=client
        )
