"""A node's process, as the kit runs it under a background processor: started as ldk-sample starts it, dying
with a crash, started again from disk with a restart.

Not LDK's: ldk-sample's ``main.rs`` starts a ``BackgroundProcessor`` when the node starts, and the process
that dies takes it along; :func:`run_processor` does the same for a simulated node in a ``with`` block.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any, Optional

from ..background_processor import BackgroundProcessor, ExitSignal, GossipSync, process_died, process_events_async


@contextlib.contextmanager
def run_processor(node: Any, form: str = "thread") -> Iterator[Any]:
    """Run ``node`` under a background processor for a ``with`` block, wired as ldk-sample wires it.

    ``form`` is ``"thread"`` (``BackgroundProcessor.start``) or ``"async"``
    (``process_events_async`` on an event loop of its own, in a thread). Leaving the block
    stops the processor and raises the first error that ended one.

    A crash of the node (``World.crash``) is its process dying: its processor stops where it is, without
    its final persist, and hands nothing more over. The node restarted from disk (``World.restart_node``)
    gets a processor of the same form, started as ldk-sample starts it: before it reconnects to its peers.
    """
    if form not in ("thread", "async"):
        raise ValueError(f"form must be 'thread' or 'async', not {form!r}")
    lives = [_Life(node, form)]  # the processor of each of the node's processes; the last one runs

    def crashed(dead: Any) -> None:
        if dead is lives[-1].node:
            lives[-1].end(crashed=True)

    def started(new: Any) -> None:
        if new.name == node.name:
            lives.append(_Life(new, form))

    world = getattr(node, "world", None)
    hooks = ((world.on_crash, crashed), (world.on_start, started)) if world is not None else ()
    for hook_list, hook in hooks:
        hook_list.append(hook)
    try:
        yield lives[0].handle
    finally:
        for hook_list, hook in hooks:
            hook_list.remove(hook)
        lives[-1].end()
        errors = [life.error for life in lives if life.error is not None]
        if errors:
            raise errors[0]


class _Life:
    """One processor of ``run_processor``'s node: the first, or the one its restart started."""

    def __init__(self, node: Any, form: str) -> None:
        self.node, self.ended = node, False
        self.error: Optional[BaseException] = None
        args = (node.fs_store, node.event_handler, node.chain_monitor, node.channel_manager, None,
                GossipSync.p2p(node.network_graph), node.peer_manager, node.logger, node.scorer)
        self.handle: Any
        if form == "thread":
            self.handle = BackgroundProcessor.start(*args)
            return
        self.handle = ExitSignal()
        self._errors: list[BaseException] = []
        fetch_time = node.channel_manager.clock.duration_since_epoch

        def main() -> None:
            try:
                asyncio.run(process_events_async(*args, self.handle.sleeper, False, fetch_time))
            except BaseException as e:  # handed to the caller by end()
                self._errors.append(e)

        self._thread = threading.Thread(target=main, name="ldk-process-events-async", daemon=True)
        self._thread.start()
        while not node.channel_manager.background_processor_attached and self._thread.is_alive():
            time.sleep(0.001)  # until it has joined the world's clock, so no time passes without it

    def end(self, crashed: bool = False) -> None:
        """Stop the processor (its process dying, if ``crashed``), keeping the error that ended it."""
        if self.ended:
            return
        self.ended = True
        if crashed:
            process_died(self.node.channel_manager)
        if isinstance(self.handle, BackgroundProcessor):
            try:
                self.handle.stop()
            except BaseException as e:  # (raised by run_processor, once every processor has ended)
                self.error = e
            return
        self.handle.stop()
        self._thread.join()
        self.error = self._errors[0] if self._errors else None
