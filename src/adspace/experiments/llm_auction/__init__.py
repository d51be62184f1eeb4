"""LLM-Auction (Zhao et al., arXiv 2512.10551): ad-integrated generation, simulated users, the pCTR model and IRPO training.

Layers: :mod:`.format` parses the ``@Ad Title@[Ad-ID]`` markup (text only); :mod:`.prompts` builds the
ad-writer and user-judge prompts; :mod:`.users` holds the user simulators and synthetic profiles;
:mod:`.environment` samples replies from the shared LLM backend and scores them with the mechanism
quantities of :mod:`adspace.mechanisms.llm_auction`; :mod:`.training` trains the pCTR reward model and runs
IRPO with TRL's DPO; :mod:`.warmstart` is the supervised ad-writer warm start; :mod:`.checkpoint` loads
the trained model from IRPO's run folder. The experiment that trains and then compares every method
(``adspace experiment llm-auction``) sits above this package, in :mod:`adspace.experiments.comparison`,
which imports this package and is never imported by it. Heavy dependencies (torch, transformers, trl)
are imported inside the functions that need them.
"""
