"""Synthetic user profiles for the LLM-Auction simulation, reproducible by seed and shipped as data.

The paper draws 3,000 profiles with an LLM and does not release them. adspace composes profiles from
attribute lists written for the project (age band, occupation, household, place, budget attitude and two
interests), with a seeded ``numpy`` generator, so the same seed always gives the same profiles on any
machine. ``src/adspace/data/llm_auction_profiles.json`` holds ``generate_profiles(200, seed=0)``;
``python -m adspace.experiments.llm_auction.profiles`` rewrites it and a test checks the file equals the
generator's output.

>>> p = generate_profiles(2, seed=0)
>>> [q["profile_id"] for q in p]
['U-0000', 'U-0001']
>>> generate_profiles(3, seed=7) == generate_profiles(3, seed=7)
True
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["DATA_FILE", "generate_profiles", "load_profiles", "profile_text"]

DATA_FILE = "llm_auction_profiles.json"
SEED = 0
COUNT = 200

AGES = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
OCCUPATIONS = [
    "student", "nurse", "software engineer", "teacher", "retail worker", "small-business owner", "retiree",
    "accountant", "truck driver", "graphic designer", "doctor", "stay-at-home parent", "sales manager",
    "chef", "electrician", "researcher", "freelance writer", "police officer", "pharmacist", "farmer",
]  # fmt: skip
HOUSEHOLDS = [
    "lives alone", "lives with a partner", "has two young children", "has a teenager at home",
    "shares a flat with friends", "cares for an elderly parent", "is an empty nester",
]  # fmt: skip
PLACES = ["a big city", "a suburb", "a small town", "the countryside", "a college town", "a coastal city"]
BUDGETS = ["budget-conscious", "willing to pay for quality", "price-sensitive but brand-loyal", "an impulse buyer"]
INTERESTS = [
    "running", "video games", "cooking", "personal finance", "travel", "home improvement", "cars", "fitness",
    "streaming series", "fashion", "healthy eating", "investing", "camping", "music", "photography", "pets",
    "gardening", "real estate", "restaurants", "technology", "yoga", "football", "reading", "board games",
]  # fmt: skip


def generate_profiles(n: int = COUNT, seed: int = SEED) -> list[dict]:
    """``n`` profiles ``{"profile_id", "age", "occupation", "household", "place", "budget", "interests"}``."""
    if int(n) != n or n < 0:
        raise ValueError(f"n: must be a non-negative integer, got {n!r}")
    rng = np.random.default_rng(seed)
    out = []
    for k in range(int(n)):
        interests = rng.choice(len(INTERESTS), size=2, replace=False)
        out.append(
            {
                "profile_id": f"U-{k:04d}",
                "age": AGES[int(rng.integers(len(AGES)))],
                "occupation": OCCUPATIONS[int(rng.integers(len(OCCUPATIONS)))],
                "household": HOUSEHOLDS[int(rng.integers(len(HOUSEHOLDS)))],
                "place": PLACES[int(rng.integers(len(PLACES)))],
                "budget": BUDGETS[int(rng.integers(len(BUDGETS)))],
                "interests": [INTERESTS[int(i)] for i in interests],
            }
        )
    return out


def profile_text(p: dict) -> str:
    """The profile as the prompts show it.

    >>> profile_text({"age": "25-34", "occupation": "nurse", "household": "lives alone", "place": "a suburb",
    ...               "budget": "budget-conscious", "interests": ["running", "cooking"]})
    'Age 25-34, nurse, lives alone in a suburb; budget-conscious; interested in running and cooking.'
    """
    try:
        interests = " and ".join(p["interests"])
        return f"Age {p['age']}, {p['occupation']}, {p['household']} in {p['place']}; {p['budget']}; interested in {interests}."
    except KeyError as exc:
        raise ValueError(f"profile.{exc.args[0]}: missing") from None


def load_profiles() -> list[dict]:
    """The shipped profiles (``generate_profiles(200, seed=0)``)."""
    with resources.files("adspace").joinpath("data", DATA_FILE).open(encoding="utf-8") as f:
        return json.load(f)["profiles"]


def _write(path: Path) -> None:
    doc = {
        "about": "Synthetic user profiles for the LLM-Auction simulation, written by "
        f"adspace.experiments.llm_auction.profiles.generate_profiles({COUNT}, seed={SEED}); attribute lists written for adspace.",
        "seed": SEED,
        "profiles": generate_profiles(COUNT, SEED),
    }
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    _write(Path(__file__).resolve().parents[2] / "data" / DATA_FILE)
