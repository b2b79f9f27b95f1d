"""The on-chain side of a node: fee estimation and broadcasting.

Mirrors ``lightning::chain``. :mod:`ldkkit.chain.chaininterface` holds the
``FeeEstimator`` and ``BroadcasterInterface`` traits a node's ``BitcoindClient`` implements.
"""
