"""Experiments and markets: the MOSAIC study, the LLM-Auction environment and training, workloads."""
