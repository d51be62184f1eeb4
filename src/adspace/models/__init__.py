"""The machine-learning boundary: sentence embedder and LLM backends, all loaded offline."""
