"""What the node knows of the public network.

Mirrors ``lightning::routing::gossip``. For now it holds ``NetworkUpdate``, the change a
failed payment path reports about the graph.
"""

from __future__ import annotations

from ..ser import U64, RustEnum
from ..types import PublicKey


class NetworkUpdate(RustEnum):
    """Mirrors ``lightning::routing::gossip::NetworkUpdate``.

    Carried by ``PathFailure.OnPath``. ``NetworkGraph.handle_network_update`` removes the
    channel or node only when ``is_permanent`` is true.
    """

    class ChannelFailure:
        """A channel failed to forward our payment."""

        short_channel_id: U64
        is_permanent: bool

    class NodeFailure:
        """A node failed to forward our payment."""

        node_id: PublicKey
        is_permanent: bool
