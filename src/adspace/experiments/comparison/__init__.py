"""One comparison of the embedding VCG, MOSAIC and LLM-Auction on the same queries (docs/compare.md)."""
