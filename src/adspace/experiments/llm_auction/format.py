"""The ad markup of LLM-Auction, ``@Ad Title@[Ad-ID]``, and its strict parser.

The ad-writing LLM inserts an ad by writing its title between two ``@`` followed by its id in brackets:
``... try the @Trail Runner 5@[Ad-0042] for rocky paths ...``. Title and id must be copied exactly
from the candidate list (Zhao et al., arXiv 2512.10551, rule [3]: "the ad title and ad ID must strictly follow the candidate
ad list. Severe penalties will be applied for incorrect insertion format or incorrect ad-related
information").

:func:`parse_reply` returns the validly inserted ads in order of first appearance and one
:class:`FormatError` per broken insertion attempt:

===================  ===================================================================================
kind                 what it means
===================  ===================================================================================
``unknown_id``       ``@Title@[X]`` where ``X`` is not a candidate id
``title_mismatch``   the id is a candidate's but the title differs from its title (altered, truncated,
                     re-cased, or another ad's title)
``empty_title``      ``@@[Ad-1]``
``missing_title``    ``@[Ad-1]`` with no opening ``@`` before it on its line
``duplicate``        a valid insertion of an ad already inserted earlier in the reply
``nested_at``        an extra ``@`` that opens a title inside another insertion (``@Nike @Air Max@[Ad-1]``)
``stray_at``         an ``@`` that starts a title but never closes as an insertion (``@Air Max`` alone)
``unclosed_id``      ``@Title@[Ad-1`` without the closing bracket on its line
``bare_id``          ``[Ad-1]`` (a candidate id or an ``Ad-…`` id) without ``@Title@`` in front
===================  ===================================================================================

Rules of the grammar (strict, documented so the penalty is predictable):

* Matching is exact: no trimming, no case folding. ``@ Title@[Ad-1]`` is a ``title_mismatch``.
* A title lies on one line and is delimited by the nearest ``@`` before ``@[`` on that line and after the
  previous insertion; a candidate title that itself contains ``@`` is recognised when copied exactly.
* ``@`` is reserved for ads, with one exception: an ``@`` right after a letter or digit (an e-mail
  address, ``user@example.com``) is ordinary text and never an error.
* Each broken attempt counts once: the ``@`` delimiters of an unclosed or bare insertion are part of that
  one error, not extra ``stray_at`` errors.

>>> ads = [Ad("Ad-0001", "Trail Runner 5"), Ad("Ad-0002", "City Bank Card")]
>>> r = parse_reply("Try the @Trail Runner 5@[Ad-0001] and @City Card@[Ad-0002].", ads)
>>> r.ad_ids, [e.kind for e in r.errors]
(('Ad-0001',), ['title_mismatch'])
>>> r.s_resp()
110.0
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from adspace.mechanisms.llm_auction import DEFAULT_AD_COST, DEFAULT_ERROR_COST, response_penalty

__all__ = [
    "Ad",
    "ERROR_KINDS",
    "FormatError",
    "Insertion",
    "ParsedReply",
    "check_candidates",
    "CONNECTIVES",
    "insert_ad_sentence",
    "insert_markup",
    "parse_reply",
    "strip_markup",
]

ERROR_KINDS = (
    "unknown_id",
    "title_mismatch",
    "empty_title",
    "missing_title",
    "duplicate",
    "nested_at",
    "stray_at",
    "unclosed_id",
    "bare_id",
)

_MARKER = re.compile(r"@\[([^\[\]\n]*)\]")
_BRACKET = re.compile(r"\[([^\[\]\n]*)\]")
_AD_ID_LIKE = re.compile(r"Ad-[\w-]+")


@dataclass(frozen=True)
class Ad:
    """A candidate ad: its id (``Ad-0042``), title (copied verbatim into the reply) and description."""

    ad_id: str
    title: str
    description: str = ""
    advertiser: str = ""

    def markup(self) -> str:
        """The exact insertion text: ``@Title@[Ad-ID]``."""
        return f"@{self.title}@[{self.ad_id}]"


@dataclass(frozen=True)
class Insertion:
    """A valid insertion: candidate ``index`` with its id and title at ``text[start:end]``."""

    index: int
    ad_id: str
    title: str
    start: int
    end: int


@dataclass(frozen=True)
class FormatError:
    """One broken insertion attempt: its ``kind`` (see :data:`ERROR_KINDS`), span and explanation."""

    kind: str
    start: int
    end: int
    text: str
    detail: str


@dataclass(frozen=True)
class ParsedReply:
    """The result of :func:`parse_reply`.

    Attributes
    ----------
    text : the reply as written.
    insertions : valid insertions of distinct ads, in order of first appearance.
    errors : format errors, in order of position.
    n_candidates : size of the candidate list (for :meth:`shown`).
    """

    text: str
    insertions: tuple[Insertion, ...]
    errors: tuple[FormatError, ...]
    n_candidates: int

    @property
    def ad_ids(self) -> tuple[str, ...]:
        return tuple(i.ad_id for i in self.insertions)

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(i.index for i in self.insertions)

    @property
    def n_ads(self) -> int:
        return len(self.insertions)

    @property
    def n_errors(self) -> int:
        return len(self.errors)

    def shown(self) -> NDArray[np.bool_]:
        """``(n_candidates,)`` bool: ``1(a_i ∈ y)`` of Definition 3.1."""
        out = np.zeros(self.n_candidates, dtype=bool)
        out[list(self.indices)] = True
        return out

    def s_resp(self, *, ad_cost: float = DEFAULT_AD_COST, error_cost: float = DEFAULT_ERROR_COST) -> float:
        """The response penalty ``ad_cost·n_ads + error_cost·n_errors``."""
        return float(response_penalty(self.n_ads, self.n_errors, ad_cost=ad_cost, error_cost=error_cost))


def check_candidates(candidates: Iterable[Any]) -> tuple[Ad, ...]:
    """Validate a candidate list (``Ad`` objects, mappings with ``ad_id``/``title``, or pairs).

    Raises ``ValueError`` naming ``candidates[k].field`` for an empty or multi-line title, an id that is
    empty or holds brackets, ``@`` or whitespace, or a duplicate id.
    """
    out: list[Ad] = []
    seen: dict[str, int] = {}
    for k, c in enumerate(candidates):
        if isinstance(c, Ad):
            ad = c
        elif isinstance(c, Mapping):
            try:
                ad = Ad(str(c["ad_id"]), str(c["title"]), str(c.get("description", "")), str(c.get("advertiser", "")))
            except KeyError as exc:
                raise ValueError(f"candidates[{k}].{exc.args[0]}: missing") from None
        elif isinstance(c, Sequence) and not isinstance(c, str) and len(c) >= 2:
            ad = Ad(str(c[0]), str(c[1]))
        else:
            raise ValueError(f"candidates[{k}]: must be an Ad, a mapping or an (ad_id, title) pair, got {c!r}")
        if not ad.ad_id or re.search(r"[\[\]@\s]", ad.ad_id):
            raise ValueError(
                f"candidates[{k}].ad_id: must be non-empty without brackets, '@' or spaces, got {ad.ad_id!r}"
            )
        if not ad.title or "\n" in ad.title or ad.title != ad.title.strip() or "@[" in ad.title:
            raise ValueError(
                f"candidates[{k}].title: must be one non-empty line without outer spaces or '@[', got {ad.title!r}"
            )
        if ad.ad_id in seen:
            raise ValueError(f"candidates[{k}].ad_id: duplicate of candidates[{seen[ad.ad_id]}], {ad.ad_id!r}")
        seen[ad.ad_id] = k
        out.append(ad)
    return tuple(out)


def _is_markup_at(text: str, pos: int) -> bool:
    """An ``@`` that can open or close a title: not right after a letter or digit."""
    return pos == 0 or not text[pos - 1].isalnum()


def parse_reply(text: str, candidates: Iterable[Any]) -> ParsedReply:
    """Parse the ad insertions of ``text`` strictly against ``candidates``.

    Returns the valid insertions (distinct ads, in order) and every format error; see the module
    docstring for the grammar and the error kinds.

    >>> ads = [Ad("Ad-1", "Soup Kit")]
    >>> parse_reply("No ads here.", ads).n_ads
    0
    >>> [e.kind for e in parse_reply("@Soup Kit@[Ad-1] @Soup Kit@[Ad-1] @Soup Kit@[Ad-9]", ads).errors]
    ['duplicate', 'unknown_id']
    """
    if not isinstance(text, str):
        raise ValueError(f"text: must be a string, got {type(text).__name__}")
    ads = check_candidates(candidates)
    by_id = {a.ad_id: k for k, a in enumerate(ads)}
    by_title: dict[str, list[str]] = {}
    for a in ads:
        by_title.setdefault(a.title, []).append(a.ad_id)

    consumed = np.zeros(len(text) + 1, dtype=bool)  # '@' positions that belong to an insertion attempt
    covered = np.zeros(len(text) + 1, dtype=bool)  # characters inside some insertion attempt
    insertions: list[Insertion] = []
    errors: list[FormatError] = []
    seen: set[int] = set()

    def err(kind: str, start: int, end: int, detail: str) -> None:
        errors.append(FormatError(kind, start, end, text[start:end], detail))
        covered[start:end] = True

    def window_start(pos: int, prev_end: int) -> int:
        return max(prev_end, text.rfind("\n", 0, pos) + 1)

    def nearest_open(lo: int, close_at: int) -> int | None:
        j = close_at - 1
        while j >= lo:
            if text[j] == "@" and not consumed[j] and _is_markup_at(text, j):
                return j
            j -= 1
        return None

    prev_end = 0
    markers = list(_MARKER.finditer(text))
    for m in markers:
        close_at, end = m.start(), m.end()
        ad_id = m.group(1)
        lo = window_start(close_at, prev_end)
        k = by_id.get(ad_id)
        open_at: int | None = None
        if k is not None:  # exact copy of the candidate's title (which may itself contain '@')
            s = close_at - len(ads[k].title) - 1
            if s >= lo and text[s] == "@" and text[s + 1 : close_at] == ads[k].title:
                open_at = s
        if open_at is None:
            open_at = nearest_open(lo, close_at)
        consumed[close_at] = True
        if open_at is None:
            err("missing_title", close_at, end, f"id {ad_id!r} has no '@Title' before it on its line")
        else:
            consumed[open_at:close_at] = True  # a copied title may itself contain '@'
            title = text[open_at + 1 : close_at]
            covered[open_at:end] = True
            # extra title-opening '@' inside this insertion's window: nested markup
            for j in range(lo, open_at):
                if text[j] == "@" and not consumed[j] and _is_markup_at(text, j):
                    consumed[j] = True
                    err("nested_at", j, end, f"'@' at {j} opens a title inside the insertion of {ad_id!r}")
            if title == "":
                err("empty_title", open_at, end, f"insertion of {ad_id!r} has an empty title")
            elif k is None:
                hint = f" (the title is that of {', '.join(by_title[title])})" if title in by_title else ""
                err("unknown_id", open_at, end, f"id {ad_id!r} is not in the candidate list{hint}")
            elif title != ads[k].title:
                err("title_mismatch", open_at, end, f"title {title!r} differs from {ads[k].title!r} of {ad_id!r}")
            elif k in seen:
                err("duplicate", open_at, end, f"{ad_id!r} is inserted more than once")
            else:
                seen.add(k)
                insertions.append(Insertion(k, ad_id, title, open_at, end))
        prev_end = end

    # '@[' that is not the start of a well-formed '@[ID]' marker: never closes on its line
    marker_starts = {m.start() for m in markers}
    for q in (m.start() for m in re.finditer(r"@\[", text)):
        if q in marker_starts or covered[q]:
            continue
        consumed[q] = True
        stop = text.find("\n", q)
        stop = len(text) if stop < 0 else stop
        j = nearest_open(window_start(q, 0), q)
        if j is not None:
            consumed[j] = True
        err("unclosed_id", q if j is None else j, stop, "'@[' without a closing ']' for its id")

    # '[Ad-…]' or '[<candidate id>]' without '@Title@' in front
    for m in _BRACKET.finditer(text):
        if covered[m.start()] or (m.start() > 0 and text[m.start() - 1] == "@"):
            continue
        inner = m.group(1)
        if inner in by_id or _AD_ID_LIKE.fullmatch(inner):
            lo = window_start(m.start(), 0)
            # the title's two '@' (if written, e.g. '@Title@ [Ad-1]') belong to this one attempt
            ats = [p for p in range(m.start() - 1, lo - 1, -1) if text[p] == "@" and not consumed[p]][:2]
            consumed[ats] = True
            start = min(ats, default=m.start())
            err("bare_id", start, m.end(), f"id {inner!r} without '@Title@' directly before '['")

    # every other title-opening '@'
    for j, ch in enumerate(text):
        if ch == "@" and not consumed[j] and _is_markup_at(text, j):
            consumed[j] = True
            stop = text.find("\n", j)
            stop = len(text) if stop < 0 else min(stop, j + 40)
            err("stray_at", j, stop, "'@' opens a title that is never closed as '@Title@[Ad-ID]'")

    errors.sort(key=lambda e: (e.start, e.end))
    return ParsedReply(text=text, insertions=tuple(insertions), errors=tuple(errors), n_candidates=len(ads))


def strip_markup(parsed: ParsedReply) -> str:
    """The reply as a reader sees it: each valid insertion replaced by its title, errors left as written.

    >>> strip_markup(parse_reply("Try @Soup Kit@[Ad-1] today.", [Ad("Ad-1", "Soup Kit")]))
    'Try Soup Kit today.'
    """
    out, pos = [], 0
    for ins in parsed.insertions:
        out.append(parsed.text[pos : ins.start])
        out.append(ins.title)
        pos = ins.end
    out.append(parsed.text[pos:])
    return "".join(out)


def insert_markup(sentence: str, ad: Ad) -> str:
    """``sentence`` with ``ad``'s markup appended before its final punctuation (a helper for tests and demos).

    >>> insert_markup("You could try this.", Ad("Ad-1", "Soup Kit"))
    'You could try this @Soup Kit@[Ad-1].'
    """
    s = sentence.rstrip()
    tail = ""
    while s and s[-1] in ".!?":
        tail = s[-1] + tail
        s = s[:-1]
    return f"{s} {ad.markup()}{tail}"


#: Short sentence openers for an ad written in as its own sentence (exploration and the warm start).
CONNECTIVES = ("You could try", "A good option is", "Consider", "Many people like")


def insert_ad_sentence(text: str, ad: Ad, rng, *, max_first_sentence: int | None = None) -> str:
    """``text`` with ``"<connective> @Title@[Ad-ID]."`` written in as a sentence of its own: after the first
    sentence (with probability 1/2, when there is one of at most ``max_first_sentence`` characters) or at
    the start. ``rng`` is a NumPy generator (one draw for the connective, one for the position).

    >>> import numpy as np
    >>> insert_ad_sentence("Rest well. Then run.", Ad("Ad-1", "Soup Kit"), np.random.default_rng(1))
    'A good option is @Soup Kit@[Ad-1]. Rest well. Then run.'
    """
    ins = f"{CONNECTIVES[int(rng.integers(len(CONNECTIVES)))]} {ad.markup()}."
    cut = text.find(". ")
    fits = cut >= 0 and (max_first_sentence is None or cut < max_first_sentence)
    if fits and rng.random() < 0.5:
        return f"{text[: cut + 1]} {ins} {text[cut + 2 :]}"
    return f"{ins} {text}".strip()
