"""ldkkit: a simulated LDK 0.1 node for learning to write ``handle_ldk_events``.

The package mirrors the layout of LDK (the ``lightning`` crate and its companions), so
what you learn here carries over to a real node:

- :mod:`ldkkit.events`: ``Event`` and every type its variants carry
- :mod:`ldkkit.errors`: ``APIError`` and the payment send failures
- :mod:`ldkkit.types`, :mod:`ldkkit.bitcoin`: ids, keys, scripts and transactions
- :mod:`ldkkit.fs_store`, :mod:`ldkkit.persist`: persistence to disk
- :mod:`ldkkit.payment_storage`: ldk-sample's payment bookkeeping

Importing ldkkit is quick: it never imports pandas, ipywidgets or Jupyter.
"""

from .errors import APIError, DecodeError
from .events import Event, ReplayEvent
from .fs_store import FilesystemStore

__version__ = "0.1.0"

__all__ = ["APIError", "DecodeError", "Event", "FilesystemStore", "ReplayEvent", "__version__"]
