"""Passage embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint.

Set ``EMBEDDINGS_BASE_URL`` (and ``EMBEDDINGS_MODEL``) and the ``retrieve`` action ranks
passages by reciprocal-rank fusion of BM25 and cosine similarity (``service.collections``);
unset, it is BM25 alone and nothing here runs. The server is someone else's: every call has a
timeout and a bounded retry (the SDK's own), every answer is checked (one finite vector per
input, all of one size) before a number of it is stored, and a server that cannot answer
makes ``EmbeddingsUnavailable``, which callers turn into "BM25 only, for now", never into a
failed ingestion or a failed run.

Vectors are L2-normalised ``float32`` (a dot product is the cosine) and stored as their raw
bytes (``pack``/``unpack``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import httpx2
import numpy as np
import numpy.typing as npt
import openai

Vector = npt.NDArray[np.float32]

PLACEHOLDER_API_KEY: Final = "not-needed"  # servers without keys still want the header
MAX_DIMENSIONS: Final = 8192
# A passage is at most ~1,000 characters (tools.retrieve.chunk); a query is cut to this too,
# so no input can exceed an embedding model's context (512 tokens is common).
MAX_INPUT_CHARS: Final = 1500


class EmbeddingsUnavailable(Exception):
    """The embeddings server did not answer, or answered with something that is not vectors."""


class Embedder:
    """One embeddings model behind an OpenAI-compatible server."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        batch: int = 64,
        max_retries: int = 2,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        if not model:
            raise ValueError("an embeddings model name is needed")
        if timeout_s <= 0 or batch < 1 or max_retries < 0:
            raise ValueError("timeout_s > 0, batch >= 1 and max_retries >= 0, please")
        self.model = model
        self.batch = batch
        self.dimensions: int | None = None  # of the last vectors the server answered
        self._base_url = base_url.rstrip("/")
        self._client = openai.AsyncOpenAI(
            base_url=self._base_url,
            api_key=api_key or PLACEHOLDER_API_KEY,
            timeout=timeout_s,
            max_retries=max_retries,
            http_client=http_client,
        )

    def __repr__(self) -> str:
        return f"Embedder({self._base_url!r}, model={self.model!r})"

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """One normalised vector per text, in order, asked for ``batch`` texts at a time."""
        vectors: list[Vector] = []
        for start in range(0, len(texts), self.batch):
            vectors.extend(await self._embed_batch(texts[start : start + self.batch]))
        return vectors

    async def embed_query(self, query: str) -> Vector:
        return (await self._embed_batch([query]))[0]

    async def _embed_batch(self, texts: Sequence[str]) -> list[Vector]:
        inputs = [text[:MAX_INPUT_CHARS] or " " for text in texts]  # "" is refused by some
        try:
            response = await self._client.embeddings.create(
                model=self.model, input=inputs, encoding_format="float"
            )
        except openai.OpenAIError as exc:
            raise EmbeddingsUnavailable(f"{self._base_url}: {_reason(exc)}") from exc
        except (ValueError, TypeError, OverflowError) as exc:  # the SDK parsing what it got
            raise EmbeddingsUnavailable(
                f"{self._base_url} answered something that is not vectors ({exc})"
            ) from exc
        # What the SDK could not parse it hands back as it came: read nothing on trust.
        data = getattr(response, "data", None)
        items = list(data) if isinstance(data, list) else []
        by_index = {
            index: getattr(item, "embedding", None)
            for item in items
            if type(index := getattr(item, "index", None)) is int
        }
        if len(items) != len(inputs) or sorted(by_index) != list(range(len(inputs))):
            raise EmbeddingsUnavailable(
                f"{self._base_url} answered {len(items)} vectors for {len(inputs)} inputs"
            )
        vectors = _normalised([by_index[index] for index in range(len(inputs))], self._base_url)
        self.dimensions = len(vectors[0])
        return vectors

    async def aclose(self) -> None:
        await self._client.close()


def _normalised(rows: Sequence[object], server: str) -> list[Vector]:
    vectors: list[Vector] = []
    size: int | None = None
    for row in rows:
        if not isinstance(row, list) or not 1 <= len(row) <= MAX_DIMENSIONS:
            raise EmbeddingsUnavailable(f"{server} answered something that is not a vector")
        if all(isinstance(item, list) for item in row):
            # llama.cpp's servers do this for a model without pooling (a chat model).
            raise EmbeddingsUnavailable(
                f"{server} answered one vector per token, not one per text: its model does "
                "not pool (serve an embeddings model, or set the server's pooling to mean)"
            )
        if not all(type(item) in (int, float) for item in row):
            raise EmbeddingsUnavailable(f"{server} answered a vector of non-numbers")
        try:
            vector = np.asarray(row, dtype=np.float64)
        except OverflowError as exc:  # an integer past any float (JSON allows 1000 digits)
            raise EmbeddingsUnavailable(f"{server} answered a vector that is not finite") from exc
        if size is not None and len(vector) != size:
            raise EmbeddingsUnavailable(f"{server} answered vectors of different sizes")
        size = len(vector)
        with np.errstate(over="ignore", invalid="ignore"):
            norm = float(np.linalg.norm(vector))
        if not math.isfinite(norm):
            raise EmbeddingsUnavailable(f"{server} answered a vector that is not finite")
        vectors.append((vector / norm if norm > 0 else vector).astype(np.float32))
    return vectors


def pack(vector: Vector) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def unpack(data: bytes) -> Vector:
    return np.frombuffer(data, dtype="<f4").astype(np.float32, copy=False)


def _reason(exc: openai.OpenAIError) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, openai.APIConnectionError):
        return "cannot connect"
    return type(exc).__name__
