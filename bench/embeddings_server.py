"""An OpenAI-compatible ``/v1/embeddings`` server over WordLlama, fully offline.

    .venv/bin/python bench/embeddings_server.py --port 8090          # make install-bench first
    EMBEDDINGS_BASE_URL=http://127.0.0.1:8090/v1 EMBEDDINGS_MODEL=wordllama-l2-supercat-256 \\
        ALLOWED_ACTIONS=python,search,retrieve,finish make serve
    .venv/bin/python bench/retrieval_eval.py --embeddings-base-url http://127.0.0.1:8090/v1

For measuring ``retrieve``'s vector ranking and fusion on a machine with no model server and no
internet: WordLlama (github.com/dleemiller/WordLlama) is a static token-embedding model (256
dimensions, 16 MB) whose weights ship inside its PyPI wheel, so nothing is downloaded. It is a
small model: any OpenAI-compatible embeddings server (OpenAI, vLLM, Ollama, llama.cpp's
``llama_cpp.server --embedding true``) is what production would use.

(WordLlama 0.4.0's loader looks for its tokenizer under ``wordllama/tokenizer/`` while the wheel
ships it under ``wordllama/tokenizers/`` and then tries Hugging Face; the model is built here
from the wheel's two files directly.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

MODEL = "wordllama-l2-supercat-256"
MAX_INPUTS = 2048


class EmbeddingRequest(BaseModel):
    model: str = MODEL
    input: str | list[str] = Field(min_length=1)
    encoding_format: str = "float"


def load_model() -> Any:
    import wordllama
    from safetensors import safe_open
    from tokenizers import Tokenizer
    from wordllama.inference import WordLlamaInference

    root = Path(wordllama.__file__).parent
    tokenizer = Tokenizer.from_file(str(root / "tokenizers" / "l2_supercat_tokenizer_config.json"))
    with safe_open(str(root / "weights" / "l2_supercat_256.safetensors"), framework="np") as f:
        weights = f.get_tensor(next(iter(f.keys())))
    return WordLlamaInference(weights, tokenizer, binary=False)


def create_app() -> FastAPI:
    model = load_model()
    app = FastAPI(title="wordllama embeddings")

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL, "object": "model"}]}

    @app.post("/v1/embeddings")
    def embeddings(request: EmbeddingRequest) -> dict[str, Any]:
        inputs = [request.input] if isinstance(request.input, str) else request.input
        if len(inputs) > MAX_INPUTS:
            raise HTTPException(413, f"at most {MAX_INPUTS} inputs per request")
        if request.encoding_format != "float":
            raise HTTPException(400, "only encoding_format=float")
        vectors = model.embed(inputs, norm=True)
        return {
            "object": "list",
            "model": MODEL,
            "data": [
                {"object": "embedding", "index": index, "embedding": vector.tolist()}
                for index, vector in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
