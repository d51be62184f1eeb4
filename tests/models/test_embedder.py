"""The offline sentence embedder (adspace.models.embedder), with the real all-MiniLM-L6-v2 weights.

The model takes ~10 s to load, so it is loaded once per test process (``get_embedder`` is a
process-wide singleton; the module fixture below just names it). Texts are made unique per test so
cache counters do not depend on test order.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from adspace.models.embedder import DIM, MODEL_NAME, Embedder, get_embedder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    emb = get_embedder()
    emb.embed(["warm up"])  # load the model once for the whole module
    return emb


def _unique(text: str) -> str:
    return f"{text} [{uuid.uuid4().hex[:8]}]"


def _cos(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_singleton_and_constants(embedder):
    assert get_embedder() is embedder
    assert (MODEL_NAME, DIM) == ("all-MiniLM-L6-v2", 384)
    assert embedder.dim == 384 and embedder.model_name == MODEL_NAME


def test_shape_dtype_unit_norm(embedder):
    texts = [_unique("best running shoes"), _unique("open a savings account"), _unique("x"), ""]
    out = embedder.embed(texts)
    assert out.shape == (4, 384) and out.dtype == np.float64
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=0, atol=1e-12)
    one = embedder.embed_one(texts[0])
    assert one.shape == (384,)
    np.testing.assert_array_equal(one, out[0])


def test_empty_batch(embedder):
    out = embedder.embed([])
    assert out.shape == (0, 384) and out.dtype == np.float64


def test_cache_hits_and_batch_dedup(embedder):
    a, b = _unique("hiking boots"), _unique("mortgage rates")
    h0, m0 = embedder.hits, embedder.misses
    first = embedder.embed([a, b, a])  # a repeated inside one batch is embedded once
    assert (embedder.hits - h0, embedder.misses - m0) == (0, 2)
    np.testing.assert_array_equal(first[0], first[2])
    second = embedder.embed([b, a])
    assert (embedder.hits - h0, embedder.misses - m0) == (2, 2)
    np.testing.assert_array_equal(second, first[[1, 0]])
    # Cached rows are copies: changing a returned array does not change the cache.
    second[:] = 0.0
    np.testing.assert_array_equal(embedder.embed([a])[0], first[0])


def test_deterministic_and_batch_independent(embedder):
    """The same text gives the same vector: run to run exactly, and (to float32 noise) whatever batch it is in."""
    fresh = Embedder(cache_size=0)
    fresh._model = embedder._load()  # share the loaded weights; no cache, so every call recomputes
    texts = ["I need new trail running shoes", "Which bank pays the most interest on savings?"]
    x1, x2 = fresh.embed(texts), fresh.embed(texts)
    np.testing.assert_array_equal(x1, x2)
    alone = fresh.embed([texts[1]])[0]
    padded = fresh.embed([texts[1], "a much longer sentence " * 8])[0]
    np.testing.assert_allclose(alone, x1[1], atol=1e-6)
    np.testing.assert_allclose(padded, x1[1], atol=1e-6)
    assert fresh.misses == 7 and fresh.hits == 0 and len(fresh._cache) == 0


def test_semantic_sanity(embedder):
    shoes = "A running store selling marathon and trail running shoes, with gait analysis."
    bank = "A bank offering checking accounts, savings accounts and mortgages."
    pizza = "A pizza restaurant with home delivery."
    q_run, q_save, q_food = embedder.embed(
        [
            "What are the best running shoes for my first marathon?",
            "Where can I get a high interest savings account?",
            "I'm hungry, can I order a pizza tonight?",
        ]
    )
    c_shoes, c_bank, c_pizza = embedder.embed([shoes, bank, pizza])
    assert _cos(q_run, c_shoes) > _cos(q_run, c_bank) + 0.2
    assert _cos(q_save, c_bank) > _cos(q_save, c_shoes) + 0.2
    assert _cos(q_food, c_pizza) > max(_cos(q_food, c_shoes), _cos(q_food, c_bank)) + 0.2
    # Paraphrases are closer than unrelated text.
    para = embedder.embed_one("Which sneakers should I buy for running a marathon?")
    assert _cos(q_run, para) > 0.6 > _cos(q_run, q_save)


def test_lru_eviction_with_a_stub_model():
    class Stub:
        def __init__(self):
            self.seen: list[list[str]] = []

        def encode(self, texts, **kw):
            assert kw["normalize_embeddings"] is True
            self.seen.append(list(texts))
            return np.array([[float(len(t)), 1.0] + [0.0] * (DIM - 2) for t in texts], dtype=np.float32)

    emb = Embedder(cache_size=2, batch_size=4)
    emb._model = stub = Stub()
    emb.embed(["a", "bb"])
    emb.embed(["a"])  # hit; "a" becomes most recent
    emb.embed(["ccc"])  # evicts "bb", the least recently used
    assert list(emb._cache) == ["a", "ccc"]
    out = emb.embed(["bb", "a"])
    assert stub.seen == [["a", "bb"], ["ccc"], ["bb"]]
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0)
    assert (emb.hits, emb.misses) == (2, 4)


@pytest.mark.parametrize(
    ("texts", "match"),
    [
        ("a single string", "texts: must be a sequence of strings"),
        (["ok", 3], r"texts\[1\]: must be a string, got int"),
        ([None], r"texts\[0\]: must be a string, got NoneType"),
    ],
)
def test_bad_texts(texts, match):
    emb = Embedder()  # validation happens before any model is loaded
    with pytest.raises(ValueError, match=match):
        emb.embed(texts)
    assert emb._model is None


@pytest.mark.parametrize(("kw", "match"), [({"batch_size": 0}, "batch_size"), ({"cache_size": -1}, "cache_size")])
def test_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        Embedder(**kw)
