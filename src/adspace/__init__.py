"""adspace: advertising inside LLM conversations, sold by auctions whose guarantees are checked in code."""

__version__ = "0.1.0"
