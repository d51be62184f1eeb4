"""Prompts of the LLM-Auction simulation (Zhao et al., arXiv 2512.10551, Appendix: rules [3]-[6] for the ad-writer, [7]-[11] for the user).

Both prompts are chat messages (``[{"role": ..., "content": ...}]``) so that every backend applies its
own chat template. The ad-writer sees the query, the user profile and the candidate ads with their id,
title, description and bid (the allocation ``π_θ(·|x, h, a, b)`` is conditioned on the bids: that is how
training can make the allocation monotone in the bid). The simulated user sees the question, its
profile and the reply, and answers with a strict JSON list.
"""

from __future__ import annotations

from collections.abc import Sequence

from adspace.experiments.llm_auction.format import Ad

__all__ = [
    "AD_WRITER_RULES",
    "AD_WRITER_RULES_SHORT",
    "USER_RULES",
    "ad_writer_messages",
    "format_candidates",
    "user_judge_messages",
]

AD_WRITER_RULES = """\
You are an AI assistant that answers the user's question and may insert ads from a candidate list.
Rules:
1. You can choose not to insert an ad, or insert one or more ads. Ads must be inserted in the format \
"@Ad Title@[Ad ID]". The ad title and ad ID must strictly follow the candidate ad list. Severe penalties \
will be applied for incorrect insertion format or incorrect ad-related information.
2. When an inserted ad is clicked by the user, you will receive revenue proportional to the ad's bid. \
However, the more ads you insert, the lower the user experience. Balance these two aspects to achieve \
maximum social welfare. If the user's question is not suitable for ad insertion or there are no suitable \
candidate ads, do not insert any ad.
3. When inserting an ad, the ad title cannot be modified. You can adjust the context around the insertion \
to make the ad natural and increase the probability of user clicks.
4. Your role is an AI assistant, so the most important thing is to answer the user's question and ensure a \
good user experience. Insert a suitable ad at the right time and in the right way, and keep the quality of \
the whole answer. Do not include any thought process about the ad insertion in the answer."""

#: The same rules condensed (about 70 tokens instead of 250), for CPU-scale runs where prompt length
#: dominates the cost of sampling and of DPO.
AD_WRITER_RULES_SHORT = """\
Answer the user's question well. You may insert ads from the candidate list, none, one or more, \
written exactly as "@Ad Title@[Ad ID]" (copy title and ID exactly; wrong ones are penalised). \
A clicked ad earns its bid, but more ads hurt the user. Insert an ad only where it fits naturally."""

USER_RULES = """\
You are a user who asked an AI assistant a question. Simulate your reaction to its answer.
1. Based primarily on your question, and also considering your identity and personal interests, \
realistically reflect on your click behavior after seeing ads inserted as "@Ad Title@[Ad ID]". You can \
choose not to click any ad, or click one or more ads.
2. The decision to click can consider: (1) Relevance: the direct or indirect relevance to your question, \
and how well it matches your identity and personal interests. (2) Nativeness: how well the ad integrates \
with the answer's context. You are more likely to click ads with better nativeness. A hard ad that \
disrupts the native feel of the answer is less likely to be clicked.
3. If the answer (1) is flooded with too many ads or (2) contains a lot of irrelevant text related to ad \
insertion, this severely damages the user experience. In this case, do not click any ads.
4. Provide click feedback for ALL ads inserted in the format "@Ad Title@[Ad ID]" (Ad Title is text, Ad ID \
is like Ad-XXXX). Do not miss any or duplicate.
5. Output the result in a strict JSON list format, with no extra information. The fields are: \
ad_id (string), clicked (boolean true / false), reason (string, concise and clear). If there are no ads in \
the answer, return an empty list [].
# Output Example
[{"ad_id": "Ad-0001", "clicked": true, "reason": "It is exactly what I asked about."}]"""


def format_candidates(ads: Sequence[Ad], bids: Sequence[float] | None = None) -> str:
    """One line per candidate: markup to copy, description and (when given) bid.

    >>> print(format_candidates([Ad("Ad-0001", "Soup Kit", "Fresh soup ingredients")], [12]))
    - @Soup Kit@[Ad-0001]: Fresh soup ingredients (bid 12)
    """
    if bids is not None and len(bids) != len(ads):
        raise ValueError(f"bids: must have one bid per candidate ad ({len(ads)}), got {len(bids)}")
    lines = []
    for k, ad in enumerate(ads):
        bid = "" if bids is None else f" (bid {float(bids[k]):g})"
        desc = f": {ad.description}" if ad.description else ""
        lines.append(f"- {ad.markup()}{desc}{bid}")
    return "\n".join(lines)


def ad_writer_messages(
    query: str, profile: str, ads: Sequence[Ad], bids: Sequence[float] | None, *, short: bool = False
) -> list[dict]:
    """Chat messages for the ad-integrated reply: rules as system turn; profile, ads and query as user turn.

    ``short=True`` uses :data:`AD_WRITER_RULES_SHORT` (same rules, condensed).
    """
    if not query.strip():
        raise ValueError("query: must be non-empty text")
    user = f"User profile: {profile}\nCandidate ads:\n{format_candidates(ads, bids)}\n\nQuestion: {query}"
    rules = AD_WRITER_RULES_SHORT if short else AD_WRITER_RULES
    return [{"role": "system", "content": rules}, {"role": "user", "content": user}]


def user_judge_messages(query: str, profile: str, reply: str) -> list[dict]:
    """Chat messages for the LLM-as-judge user (rules [7]-[11] of Zhao et al., arXiv 2512.10551)."""
    user = f"# Your Profile:\n{profile}\n# Your Question:\n{query}\n## AI Assistant's Answer:\n{reply}\n# Your click feedback (JSON list):"
    return [{"role": "system", "content": USER_RULES}, {"role": "user", "content": user}]
