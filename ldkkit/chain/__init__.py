"""The on-chain side of a node: fee estimation and broadcasting.

Mirrors ``lightning::chain``. :mod:`ldkkit.chain.chaininterface` holds the
``FeeEstimator`` and ``BroadcasterInterface`` traits a node's ``BitcoindClient`` implements.
And :class:`BestBlock`, the best known block.
"""

from ..ser import U32, Record
from ..types import BlockHash


class BestBlock(Record):
    """Mirrors ``lightning::chain::BestBlock``: the best known block, by its hash and height
    (``ChannelManager.current_best_block()``, ``OutputSweeper.current_best_block()``)."""

    block_hash: BlockHash
    height: U32
