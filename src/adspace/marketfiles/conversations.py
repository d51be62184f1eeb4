"""Conversations from files, and the text of a conversation that is embedded and auctioned.

How a conversation becomes a query
----------------------------------
:func:`conversation_text` turns a conversation (a list of ``{"role", "content"}`` messages) into the
text that is embedded and auctioned: **the user's last** ``last_n`` **turns (3 by default), most
recent first, one per line**; assistant, system and tool turns are left out. Why:

* The ad should answer what the *user* wants; the assistant's words are the model's own (they may name
  products or brands, and an auction keyed on them would let the LLM's phrasing pick the winner).
* The latest user turn alone is often a fragment ("Should I replace them?"), so earlier user turns
  supply the topic; three turns keep the recent context without letting an old topic dominate.
* The encoder mean-pools over tokens and reads at most 256 word pieces, so putting the most recent
  turn first means truncation drops the oldest context, never the newest.

On the shipped demo conversations the last three user turns move the right advertiser closer
(e.g. cosine 0.54 instead of 0.38 for the marathon conversation) than the last turn alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adspace.marketfiles.spec import MarketError, read_json

__all__ = [
    "DEFAULT_LAST_N",
    "ROLES",
    "Conversation",
    "Message",
    "conversation_text",
    "parse_conversations",
    "read_conversations",
]

DEFAULT_LAST_N = 3
"""User turns that make a conversation's query text (see :func:`conversation_text`)."""

ROLES = ("user", "assistant", "system", "tool")


@dataclass(frozen=True)
class Message:
    """One turn of a conversation."""

    role: str
    content: str


@dataclass(frozen=True)
class Conversation:
    """A conversation with an id; :meth:`text` is its query text (:func:`conversation_text`)."""

    id: str
    messages: tuple[Message, ...]

    def text(self, last_n: int = DEFAULT_LAST_N) -> str:
        return conversation_text(self.messages, last_n=last_n)


def _as_message(m: Any, where: str) -> Message:
    if isinstance(m, Message):
        return m
    if not isinstance(m, Mapping):
        raise MarketError(f"{where}: must be an object with 'role' and 'content', got {type(m).__name__}")
    unknown = [k for k in m if k not in ("role", "content")]
    if unknown:
        raise MarketError(f"{where}: field {unknown[0]!r}: unknown field (allowed: role, content)")
    role, content = m.get("role"), m.get("content")
    if role not in ROLES:
        raise MarketError(f"{where}: field 'role': must be one of {', '.join(ROLES)}, got {role!r}")
    if not isinstance(content, str):
        raise MarketError(f"{where}: field 'content': must be a string, got {type(content).__name__}")
    return Message(role, content)


def conversation_text(messages: Iterable[Message | Mapping[str, Any]], *, last_n: int = DEFAULT_LAST_N) -> str:
    """The query text of a conversation: its last ``last_n`` non-empty user turns, most recent first.

    ``messages`` are :class:`Message` objects or ``{"role", "content"}`` mappings, oldest first.
    See the module docstring for why. Raises ``ValueError`` when ``last_n < 1`` or there is no
    non-empty user turn.
    """
    if isinstance(last_n, bool) or not isinstance(last_n, int) or last_n < 1:
        raise ValueError(f"last_n: must be an integer >= 1, got {last_n!r}")
    msgs = [_as_message(m, f"messages[{i}]") for i, m in enumerate(messages)]
    turns = [m.content.strip() for m in msgs if m.role == "user" and m.content.strip()]
    if not turns:
        raise ValueError("messages: the conversation has no non-empty user turn to auction")
    return "\n".join(reversed(turns[-last_n:]))


def parse_conversations(obj: Any, source: str = "<conversations>") -> list[Conversation]:
    """Validate conversations: ``{"conversations": [...]}`` or a bare list; each item is
    ``{"id", "messages": [...]}`` or a bare list of ``{"role", "content"}`` messages (id ``"1"``, ...)."""
    items = obj.get("conversations") if isinstance(obj, Mapping) else obj
    if not isinstance(items, list) or not items:
        raise MarketError(f"{source}: expected a non-empty list of conversations")
    out: list[Conversation] = []
    for i, item in enumerate(items):
        where = f"{source}: conversations[{i}]"
        if isinstance(item, Mapping):
            unknown = [k for k in item if k not in ("id", "messages")]
            if unknown:
                raise MarketError(f"{where}: field {unknown[0]!r}: unknown field (allowed: id, messages)")
            cid, msgs = item.get("id", str(i + 1)), item.get("messages")
            if not isinstance(cid, str) or not cid.strip():
                raise MarketError(f"{where}: field 'id': must be a non-empty string, got {cid!r}")
        else:
            cid, msgs = str(i + 1), item
        if not isinstance(msgs, list) or not msgs:
            raise MarketError(f"{where}: field 'messages': must be a non-empty list of messages")
        messages = tuple(_as_message(m, f"{where}.messages[{k}]") for k, m in enumerate(msgs))
        if not any(m.role == "user" and m.content.strip() for m in messages):
            raise MarketError(f"{where}: field 'messages': has no non-empty user turn")
        out.append(Conversation(cid.strip(), messages))
    ids = [c.id for c in out]
    dup = next((c for c in ids if ids.count(c) > 1), None)
    if dup is not None:
        raise MarketError(f"{source}: conversation id {dup!r} appears twice")
    return out


def read_conversations(path: str | Path) -> list[Conversation]:
    """Read and validate a JSON conversations file (see :func:`parse_conversations`)."""
    path = Path(path)
    return parse_conversations(read_json(path), source=str(path))
