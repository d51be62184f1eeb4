"""Scale-out of the one clearing kernel (:mod:`adspace.mechanisms.vcg`).

* :mod:`adspace.index.shards`: the single-slot auction decomposes over advertiser shards (top-2 per
  shard, merged exactly);
* :mod:`adspace.index.approx`: an approximate FAISS index over the inner-product lift, with exact
  re-scoring of its candidates, a certificate and an exact fallback.
"""
