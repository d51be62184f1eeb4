"""One comparison of the embedding VCG, MOSAIC and LLM-Auction on the same queries (docs/compare.md).

:mod:`.harness` (episodes, the judge, :func:`~.harness.evaluate`) and :mod:`.adapters` (the three
mechanisms) are the one evaluation path; :mod:`.runner` is ``adspace experiment compare`` and
:mod:`.llm_auction_experiment` (with :mod:`.llm_auction_methods`) is ``adspace experiment llm-auction``,
which trains LLM-Auction (:mod:`adspace.experiments.llm_auction`) and evaluates every method here.
"""
