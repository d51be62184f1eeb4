"""The MOSAIC study on text (Soumalias et al., arXiv 2405.05905, §6 and EC.3): the auction run on a real LLM, and its metrics.

Per instance (a query, two advertisers, a seed) and per version of the mechanism:

* ``π_ref``: the plain assistant, prompt = the query (SmolLM2's default system message).
* ``π_i``: advertiser i's LLM, the same model with the system message
  "Answer the question advertising <name>, <description>." (§EC.3.1).
* ``π_con``: "Answer the query. Try to mention <name 1>, who <description 1> and <name 2>, who
  <description 2>." (§EC.3.1).
* Candidates: ``M_max`` replies from ``π_ref`` (*baseline*) or ``π_con`` (*context-aware*) at temperature
  0.8 and top-p 0.95; ``log π_gen`` is the log-probability of that processed distribution (docs/mosaic.md).
  The M candidates of an auction with M < M_max are the first M of them (nested, common random numbers).
* Rewards ``r_i(y) = log π_i(y|x) − log π_ref(y|x)`` (EC.5 with τ_i = 1, Z_i = 1), teacher-forced.
* The mechanism (:mod:`adspace.mechanisms.mosaic`) with τ = 1.

Metrics (as in Figures 1-3, EC.1-EC.3), per version and M:

* ``logprob_pi_r``: ``E_{y∼π}[log π_ref(y) + Σ_i r_i(y)/τ]``, the log-probability of the returned
  reply under π_r up to π_r's constant ``−log Z(x)`` (also the realized value, ``logprob_pi_r_realized``);
  the *proxy* of sampling from π_r is ``log π_ref(y)`` for ``y`` drawn from π_ref (footnote 4).
* ``norm_reward`` of advertiser i: ``Σ_j π_j r_i(y_j)`` minus her expected reward had she not
  participated, estimated (footnote 5) as her mean reward over this instance's generated candidates
  (both versions) that do not mention her name; the total is summed over the two advertisers.
* ``revenue``: total payments with the §5.3 offset (``revenue_no_offset`` without).
* ``norm_utility``: normalized reward minus payment (with and without offset).
* Pearson correlation of advertisers' normalized reward and normalized utility, with and without the
  offset, over all (instance, advertiser) pairs.
* Timing per auction: generation, reward scoring, mechanism (seconds).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from adspace.experiments.datasets import webis_data, webis_rows, webis_topics
from adspace.mechanisms import mosaic
from adspace.models.llm import LLMBackend, Message, Reply, messages

__all__ = [
    "Advertiser",
    "Instance",
    "MosaicConfig",
    "TextAuction",
    "advertiser_prompt",
    "batch_instances_for",
    "context_prompt",
    "load_instances",
    "reference_prompt",
    "run_experiment",
    "run_text_auction",
    "summarize",
]

METHODS = ("baseline", "context")


@dataclass(frozen=True)
class Advertiser:
    """An advertiser: a name and a short description (what it sells, its qualities)."""

    name: str
    description: str


@dataclass(frozen=True)
class Instance:
    """One query with its interested advertisers."""

    query_id: str
    query: str
    advertisers: tuple[Advertiser, ...]


# --------------------------------------------------------------------------------------------------
# Prompts (§EC.3.1)
# --------------------------------------------------------------------------------------------------


def reference_prompt(query: str) -> list[Message]:
    """``π_ref``: the plain assistant."""
    return messages(query)


def advertiser_prompt(query: str, adv: Advertiser) -> list[Message]:
    """``π_i``: "Answer the question advertising <name>, <description>."."""
    return messages(query, system=f"Answer the question advertising {adv.name}, {adv.description.rstrip('.')}.")


def context_prompt(query: str, advs: Sequence[Advertiser]) -> list[Message]:
    """``π_con``: "Answer the query. Try to mention <name 1>, who <description 1> and <name 2>, who ..."."""
    parts = [f"{a.name}, who {a.description.rstrip('.')}" for a in advs]
    mention = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return messages(query, system=f"Answer the query. Try to mention {mention}.")


# --------------------------------------------------------------------------------------------------
# Data: the Webis ads data set (a query and two judged-relevant advertisers) or the shipped demo market
# --------------------------------------------------------------------------------------------------


def _webis(root: Path) -> list[Instance]:
    ads: dict[tuple[str, str], Advertiser] = {}
    out: list[Instance] = []
    for topic in webis_topics(root):
        for row in webis_rows(root, topic, "qualities"):
            quals = ", ".join(q.strip() for q in row["qualities"].split(",") if q.strip())
            ads[(topic, row["advertisement"])] = Advertiser(row["advertisement"], f"known for being {quals}")
        by_query: dict[str, list[Advertiser]] = {}
        for row in webis_rows(root, topic, "query_pairs"):
            adv = ads.get((topic, row["advertisement"]))
            if adv is not None and adv not in by_query.setdefault(row["query"], []):
                by_query[row["query"]].append(adv)
        for q, advs in sorted(by_query.items()):
            if len(advs) >= 2:
                out.append(
                    Instance(f"{topic}:{q}", q[:1].upper() + q[1:] + ("" if q.endswith("?") else "?"), tuple(advs))
                )
    return out


def _demo() -> list[Instance]:
    """The shipped demo market: each demo conversation's last user turn, with the two demo advertisers
    whose descriptions are nearest to it in embedding space (the demo has no relevance judgments)."""
    from importlib import resources

    from adspace.models.embedder import get_embedder

    market = json.loads(resources.files("adspace.data").joinpath("demo_market.json").read_text(encoding="utf-8"))
    advs = [Advertiser(a["name"], a["description"]) for a in market["advertisers"]]
    convs_file = resources.files("adspace.data").joinpath("demo_conversations.json")
    if convs_file.is_file():
        convs = json.loads(convs_file.read_text(encoding="utf-8"))["conversations"]
        queries = [(c["id"], [m for m in c["messages"] if m["role"] == "user"][-1]["content"]) for c in convs]
    else:  # pragma: no cover - the conversations ship with the market
        queries = [(f"demo-{k}", f"Where can I find {a.description[:60]}?") for k, a in enumerate(advs)]
    emb = get_embedder()
    qv = emb.embed([q for _, q in queries])
    av = emb.embed([f"{a.name}: {a.description}" for a in advs])
    sims = qv @ av.T
    out = []
    for (qid, q), row in zip(queries, sims, strict=True):
        top = np.argsort(-row, kind="stable")[:2]
        out.append(Instance(f"demo:{qid}", q, tuple(advs[int(k)] for k in top)))
    return out


def load_instances(
    data: str | Path | None = None, n_queries: int = 4, seed: int = 0, n_advertisers: int = 2
) -> tuple[list[Instance], str]:
    """``n_queries`` instances with ``n_advertisers`` advertisers each, and the source's name.

    From the Webis ads data set at ``data`` (else ``$ADSPACE_WEBIS_DATA``, see
    :func:`adspace.experiments.datasets.webis_data`): queries with at least two judged-relevant
    advertisers, drawn at random (``seed``), and two of their relevant advertisers, also at random.
    When neither names a folder, the shipped demo market is used.
    """
    if n_queries < 1:
        raise ValueError(f"n_queries: must be >= 1, got {n_queries}")
    root = webis_data(data)
    rng = np.random.default_rng(seed)
    if root is not None:
        pool, source = _webis(root), "webis-ads"
    else:
        pool, source = _demo(), "demo"
    idx = rng.permutation(len(pool))[: min(n_queries, len(pool))]
    out = []
    for k in sorted(int(i) for i in idx):
        inst = pool[k]
        pick = sorted(rng.choice(len(inst.advertisers), size=min(n_advertisers, len(inst.advertisers)), replace=False))
        out.append(replace(inst, advertisers=tuple(inst.advertisers[int(j)] for j in pick)))
    return out, source


# --------------------------------------------------------------------------------------------------
# One auction on text
# --------------------------------------------------------------------------------------------------


@dataclass
class TextAuction:
    """Candidates and everything the mechanism needs, for one instance, version and seed.

    ``rewards`` is (n, M_max), ``log_ref``, ``log_gen`` (M_max,). ``timing`` holds seconds spent in
    ``generation`` and ``scoring`` (wall clock) and ``generation_cpu``, ``scoring_cpu`` (this process's
    CPU seconds: on a shared machine they estimate the wall time on an idle one); the mechanism's time
    is added by the evaluation.
    """

    method: str
    texts: list[str]
    rewards: np.ndarray
    log_ref: np.ndarray
    log_gen: np.ndarray
    timing: dict[str, float] = field(default_factory=dict)


def run_text_auction(
    llm: LLMBackend,
    instances: Sequence[Instance],
    seed: int,
    *,
    m: int = 16,
    methods: Sequence[str] = METHODS,
    max_new_tokens: int = 32,
    temperature: float = 0.8,
    top_p: float = 0.95,
) -> list[dict[str, TextAuction]]:
    """Generate and score the candidates of several instances at once (one batched call each).

    Returns, per instance, ``{method: TextAuction}``. Generation is one ``sample`` call for all
    (instance, method) prompts; scoring is one ``score`` call for all (candidate, scorer) pairs. For the
    baseline, ``log π_ref`` comes with the sampling pass (same prompt, temperature 1) when the backend
    provides it, so only the advertisers' LLMs score those candidates. Generation time is split evenly
    over the (instance, version) prompts of the call (same n and token cap); scoring is timed per
    version and split evenly over the instances of the batch.
    """
    for meth in methods:
        if meth not in METHODS:
            raise ValueError(f"methods: unknown method {meth!r}; allowed: {', '.join(METHODS)}")
    gen_prompts, keys = [], []
    for k, inst in enumerate(instances):
        for meth in methods:
            gen_prompts.append(
                reference_prompt(inst.query) if meth == "baseline" else context_prompt(inst.query, inst.advertisers)
            )
            keys.append((k, meth))
    t0, c0 = time.perf_counter(), time.process_time()
    samples = llm.sample(gen_prompts, m, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    t_gen, c_gen = time.perf_counter() - t0, time.process_time() - c0

    # scoring: one batched call per version (so each version's scoring time is measured on its own)
    n_adv = {k: len(inst.advertisers) for k, inst in enumerate(instances)}
    logp = {row: np.full((1 + n_adv[k], m), np.nan) for row, (k, _) in enumerate(keys)}
    t_score_by: dict[str, float] = {}
    c_score_by: dict[str, float] = {}
    for meth in methods:
        pairs_p: list[list[Message]] = []
        pairs_r: list[Reply] = []
        slots: list[tuple[int, int, int]] = []  # (sample row, scorer (0 = π_ref, 1.. = advertisers), candidate)
        for row, (k, mm) in enumerate(keys):
            if mm != meth:
                continue
            inst = instances[k]
            scorers = [reference_prompt(inst.query)] + [advertiser_prompt(inst.query, a) for a in inst.advertisers]
            for s, prompt in enumerate(scorers):
                for j, rep in enumerate(samples[row]):
                    if s == 0 and meth == "baseline" and rep.model_logprob is not None:
                        continue  # log π_ref came with the sampling pass
                    pairs_p.append(prompt)
                    pairs_r.append(rep)
                    slots.append((row, s, j))
        t0, c0 = time.perf_counter(), time.process_time()
        scores = llm.score(pairs_p, pairs_r) if pairs_p else np.zeros(0)
        t_score_by[meth], c_score_by[meth] = time.perf_counter() - t0, time.process_time() - c0
        for (row, s, j), v in zip(slots, scores, strict=True):
            logp[row][s, j] = v

    out: list[dict[str, TextAuction]] = [{} for _ in instances]
    per = 1.0 / max(len(instances), 1)
    for row, (k, meth) in enumerate(keys):
        lp = logp[row]
        if np.isnan(lp[0]).any():  # baseline: log π_ref from the sampling pass
            lp[0] = [rep.model_logprob for rep in samples[row]]
        log_ref = lp[0]
        if np.isnan(lp).any():  # pragma: no cover - a backend returned fewer scores than asked
            raise RuntimeError(f"scoring left gaps for {instances[k].query_id} ({meth})")
        out[k][meth] = TextAuction(
            method=meth,
            texts=[rep.text for rep in samples[row]],
            rewards=lp[1:] - log_ref,
            log_ref=log_ref,
            log_gen=np.array([rep.logprob for rep in samples[row]]),
            timing={
                "generation": t_gen * per / len(methods),
                "scoring": t_score_by[meth] * per,
                "generation_cpu": c_gen * per / len(methods),
                "scoring_cpu": c_score_by[meth] * per,
            },
        )
    return out


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


def _mentions(text: str, name: str) -> bool:
    return name.lower() in text.lower()


def evaluate_instance(
    inst: Instance, auctions: dict[str, TextAuction], ms: Sequence[int], tau: float, rng: np.random.Generator
) -> dict[str, Any]:
    """Per version and M: the paper's metrics for one instance and seed (see the module docstring)."""
    # Footnote 5: reward for not participating = mean reward over generated candidates not naming her.
    non_part = []
    for i, adv in enumerate(inst.advertisers):
        vals = [a.rewards[i, j] for a in auctions.values() for j, t in enumerate(a.texts) if not _mentions(t, adv.name)]
        if not vals:  # every candidate names her: fall back to all candidates
            vals = [v for a in auctions.values() for v in a.rewards[i]]
        non_part.append(float(np.mean(vals)))
    non_part_arr = np.array(non_part)
    res: dict[str, Any] = {"query_id": inst.query_id, "non_participation_reward": non_part, "methods": {}}
    for meth, a in auctions.items():
        per_m = {}
        t_mech = c_mech = 0.0
        for m in ms:
            r, ref, gen = a.rewards[:, :m], a.log_ref[:m], a.log_gen[:m]
            t0, c0 = time.perf_counter(), time.process_time()
            pi = mosaic.allocate(r, ref, gen, tau)
            pay = mosaic.payments(r, ref, gen, tau, offset=True)
            pay0 = mosaic.payments(r, ref, gen, tau, offset=False)
            idx = int(rng.choice(m, p=pi))
            t_mech += time.perf_counter() - t0
            c_mech += time.process_time() - c0
            exp_reward = r @ pi
            target = ref + r.sum(axis=0) / tau  # log π_r + log Z
            norm_reward = exp_reward - non_part_arr
            per_m[str(m)] = {
                "logprob_pi_r": float(pi @ target),
                "logprob_pi_r_realized": float(target[idx]),
                "returned": idx,
                "mentions": [bool(_mentions(a.texts[idx], adv.name)) for adv in inst.advertisers],
                "expected_reward": exp_reward.tolist(),
                "norm_reward": norm_reward.tolist(),
                "payment": pay.tolist(),
                "payment_no_offset": pay0.tolist(),
                "norm_utility": (norm_reward - pay).tolist(),
                "norm_utility_no_offset": (norm_reward - pay0).tolist(),
                "utility": (exp_reward - pay).tolist(),
                "utility_no_offset": (exp_reward - pay0).tolist(),
            }
        res["methods"][meth] = {
            "per_m": per_m,
            "proxy_logprob_ref": float(np.mean(a.log_ref)) if meth == "baseline" else None,
            "mention_rate": [float(np.mean([_mentions(t, adv.name) for t in a.texts])) for adv in inst.advertisers],
            "timing": dict(a.timing, mechanism=t_mech, mechanism_cpu=c_mech),
            "example_reply": a.texts[int(np.argmax(mosaic.allocate(a.rewards, a.log_ref, a.log_gen, tau)))],
        }
    return res


def _mean_ci(x: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(x, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan")
    half = 1.96 * float(arr.std(ddof=1)) / math.sqrt(arr.size) if arr.size > 1 else 0.0
    return float(arr.mean()), half


def _pearson(x: Sequence[float], y: Sequence[float]) -> float:
    a, b = np.asarray(x, float), np.asarray(y, float)
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def summarize(records: Sequence[dict[str, Any]], ms: Sequence[int]) -> dict[str, Any]:
    """Means with 95% CIs per version and M, correlations, timing shares."""
    out: dict[str, Any] = {}
    methods = sorted({m for r in records for m in r["methods"]})
    for meth in methods:
        rows = [r["methods"][meth] for r in records if meth in r["methods"]]
        s: dict[str, Any] = {"per_m": {}}
        for m in ms:
            cells = [row["per_m"][str(m)] for row in rows]
            nr = [v for c in cells for v in c["norm_reward"]]
            nu = [v for c in cells for v in c["norm_utility"]]
            nu0 = [v for c in cells for v in c["norm_utility_no_offset"]]
            s["per_m"][str(m)] = {
                "logprob_pi_r": _mean_ci([c["logprob_pi_r"] for c in cells]),
                "logprob_pi_r_realized": _mean_ci([c["logprob_pi_r_realized"] for c in cells]),
                "total_norm_reward": _mean_ci([sum(c["norm_reward"]) for c in cells]),
                "revenue": _mean_ci([sum(c["payment"]) for c in cells]),
                "revenue_no_offset": _mean_ci([sum(c["payment_no_offset"]) for c in cells]),
                "total_norm_utility": _mean_ci([sum(c["norm_utility"]) for c in cells]),
                "total_norm_utility_no_offset": _mean_ci([sum(c["norm_utility_no_offset"]) for c in cells]),
                "pearson_reward_utility": _pearson(nr, nu),
                "pearson_reward_utility_no_offset": _pearson(nr, nu0),
                "returned_mentions_an_advertiser": _mean_ci([float(any(c["mentions"])) for c in cells]),
                "n": len(cells),
            }
        if meth == "baseline":
            s["proxy_logprob_ref"] = _mean_ci([row["proxy_logprob_ref"] for row in rows])
        s["mention_rate"] = _mean_ci([v for row in rows for v in row["mention_rate"]])
        s["timing_seconds_per_auction"] = _timing(rows, "")
        if all("generation_cpu" in row["timing"] for row in rows):
            s["timing_cpu_seconds_per_auction"] = _timing(rows, "_cpu")
        out[meth] = s
    return out


def _timing(rows: Sequence[dict[str, Any]], suffix: str) -> dict[str, float]:
    """Mean seconds per auction in each phase (for the largest M) and each phase's share."""
    tg = np.array([row["timing"]["generation" + suffix] for row in rows])
    ts = np.array([row["timing"]["scoring" + suffix] for row in rows])
    tm = np.array([row["timing"]["mechanism" + suffix] for row in rows])
    total = tg.sum() + ts.sum() + tm.sum()
    return {
        "generation": float(tg.mean()),
        "scoring": float(ts.mean()),
        "mechanism": float(tm.mean()),
        "share_generation": float(tg.sum() / total) if total else float("nan"),
        "share_scoring": float(ts.sum() / total) if total else float("nan"),
        "share_mechanism": float(tm.sum() / total) if total else float("nan"),
        "overhead_over_generation": float((ts.sum() + tm.sum()) / tg.sum()) if tg.sum() else float("nan"),
    }


# --------------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MosaicConfig:
    """``adspace experiment mosaic`` settings.

    The default (5 queries x 3 seeds, M up to 16, 32 new tokens) is sized for a CPU of two cores (its
    time is in docs/mosaic.md); one torch thread by default, because more threads than free cores
    oversubscribe them and slow every thread down.

    ``batch_instances`` (instances generated and scored per batched call) defaults to the device's
    (:func:`batch_instances_for`): 1 on a CPU, where batching gains nothing once the cores are busy, and
    25 on CUDA.
    """

    n_queries: int = 5
    seeds: tuple[int, ...] = (0, 1, 2)
    ms: tuple[int, ...] = (1, 2, 4, 8, 16)
    max_new_tokens: int = 32
    temperature: float = 0.8
    top_p: float = 0.95
    tau: float = 1.0
    methods: tuple[str, ...] = METHODS
    data: str | None = None
    data_seed: int = 0
    device: str = "cpu"
    threads: int | None = 1
    batch_instances: int | None = None
    backend_url: str | None = None
    backend_model: str | None = None

    @classmethod
    def paper(cls) -> MosaicConfig:
        """The paper's scale (§6.1): 50 queries x 25 seeds = 1,250 instances, M up to 16, 128 tokens; for a GPU."""
        return cls(n_queries=50, seeds=tuple(range(25)), max_new_tokens=128, device="cuda", threads=None)

    def __post_init__(self) -> None:
        if not self.ms or min(self.ms) < 1:
            raise ValueError(f"ms: must be candidate counts >= 1, got {self.ms}")
        if not self.seeds:
            raise ValueError("seeds: at least one seed")
        if self.tau <= 0:
            raise ValueError(f"tau: must be > 0, got {self.tau}")
        if self.batch_instances is not None and self.batch_instances < 1:
            raise ValueError(f"batch_instances: must be >= 1, got {self.batch_instances}")

    @property
    def batch(self) -> int:
        """Instances per batched call: ``batch_instances``, or the device's default."""
        return self.batch_instances if self.batch_instances is not None else batch_instances_for(self.device)


def batch_instances_for(device: str) -> int:
    """Instances per batched call by device: 25 on CUDA, 1 elsewhere.

    With 25 instances a batch decodes 25 x 2 prompts x 16 candidates = 800 rows at once, and scores
    25 x 5 x 16 = 2,000 (prompt, reply) pairs (both versions); one SmolLM2-135M batch of 128-token
    replies holds about 7 GiB of key/value cache (30 layers x 2 x 192 floats per token and row).
    """
    return 25 if str(device).startswith("cuda") else 1


def make_backend(cfg: MosaicConfig) -> LLMBackend:
    if cfg.backend_url:
        from adspace.models.llm import OpenAICompatibleLLM

        return OpenAICompatibleLLM(cfg.backend_url, cfg.backend_model or "default")
    from adspace.models.llm import LocalLLM

    return LocalLLM(device=cfg.device, threads=cfg.threads)


def run_experiment(
    cfg: MosaicConfig,
    out: str | Path,
    *,
    llm: LLMBackend | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    figures: bool = True,
) -> dict[str, Any]:
    """Run every (query, seed) instance for both versions, write ``results.json`` and the figures."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    instances, source = load_instances(cfg.data, cfg.n_queries, cfg.data_seed)
    t_load = time.perf_counter()
    llm = llm if llm is not None else make_backend(cfg)
    t_load = time.perf_counter() - t_load
    m_max = max(cfg.ms)
    jobs = [(seed, inst) for seed in cfg.seeds for inst in instances]
    records: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    batch = cfg.batch
    for lo in range(0, len(jobs), batch):
        chunk = jobs[lo : lo + batch]
        seed = chunk[0][0]
        auctions = run_text_auction(
            llm,
            [inst for _, inst in chunk],
            seed=seed * 1_000_003 + lo,
            m=m_max,
            methods=cfg.methods,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
        )
        for (s, inst), auc in zip(chunk, auctions, strict=True):
            rng = np.random.default_rng([s, len(records)])
            rec = evaluate_instance(inst, auc, cfg.ms, cfg.tau, rng)
            rec["seed"] = s
            rec["query"] = inst.query
            rec["advertisers"] = [asdict(a) for a in inst.advertisers]
            records.append(rec)
        if progress is not None:
            progress(min(lo + len(chunk), len(jobs)), len(jobs), chunk[-1][1].query_id)
    wall = time.perf_counter() - t_start
    summary = summarize(records, cfg.ms)
    results = {
        "config": asdict(cfg),
        "source": source,
        "model": getattr(llm, "name", type(llm).__name__),
        "n_instances": len(records),
        "batch_instances": batch,
        "backend": _backend_paths(llm),
        "wall_seconds": wall,
        "model_load_seconds": t_load,
        "summary": summary,
        "instances": records,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, default=_json_default))
    if figures:
        from adspace.experiments.mosaic.figures import write_figures

        results["figures"] = {k: str(v) for k, v in write_figures(results, out).items()}
        (out / "results.json").write_text(json.dumps(results, indent=1, default=_json_default))
    return results


def _backend_paths(llm: LLMBackend) -> dict[str, Any]:
    """Which scoring path and decode loop a local backend ran (empty for a server)."""
    keys = ("device", "scoring", "decode", "score_tokens")
    return {k: getattr(llm, k) for k in keys if isinstance(getattr(llm, k, None), str | int)}


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
