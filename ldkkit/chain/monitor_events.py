"""The ChainMonitor's events, each ChannelMonitor's handed over in turn.

Mirrors LDK 0.1's ``ChainMonitor::process_pending_events`` (and its async form), which asks each
``ChannelMonitor`` to process its own events (channelmonitor.rs, ``process_events_body``):

- a monitor's events go to the handler oldest first, then the next monitor's;
- a ``ReplayEvent`` stops only that monitor's events: they come again at the next call, while the
  other monitors' are handled now (LDK only notifies, to be called again soon);
- a monitor's fee-bump requests (``BumpTransaction``, LDK's "repeated events") are taken as its
  turn begins and come after its other events, only if none asked for a replay. What the handler
  answers them is ignored, and they are not kept: the monitor asks again at the next block or
  ``rebroadcast_pending_claims``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from ..events import Event
from ..events.queue import EventQueue
from ..types import ChannelId
from ..wakers import Future, Notifier


def _shared(name: str) -> property:
    """A setting of every monitor's queue (the world's event log, the runtime of async handlers...), set once here."""

    def get(self: MonitorEvents) -> Any:
        return self._settings.get(name)

    def set_(self: MonitorEvents, value: Any) -> None:
        self._settings[name] = value
        for queue in self._queues.values():
            setattr(queue, name, value)

    return property(get, set_)


class MonitorEvents:
    """One :class:`EventQueue` per channel, all waking the same notifier (``ChainMonitor::get_update_future``).

    ``take_requests(channel_id)`` gives (and forgets) a channel's fee-bump requests; ``has_requests(channel_id)``
    says whether it has any.
    """

    observer = _shared("observer")
    runner = _shared("runner")
    on_change = _shared("on_change")

    def __init__(self, take_requests: Callable[[Optional[ChannelId]], list[Event]],
                 has_requests: Callable[[Optional[ChannelId]], bool]) -> None:
        self.notifier = Notifier()
        self._settings: dict[str, Any] = {}
        self._queues: dict[Optional[ChannelId], EventQueue] = {}
        self._take_requests, self._has_requests = take_requests, has_requests
        #: Whether a monitor's events stopped at one the handler asked to replay, the last time they were processed.
        self.replay_requested = False

    def queue(self, channel_id: Optional[ChannelId]) -> EventQueue:
        """The channel's queue, made at its first event (or fee-bump request): monitors take turns in that order."""
        queue = self._queues.get(channel_id)
        if queue is None:
            queue = self._queues[channel_id] = EventQueue(f"ChannelMonitor {channel_id}", self.notifier)
            for name, value in self._settings.items():
                setattr(queue, name, value)
        return queue

    def push(self, event: Event) -> None:
        self.queue(getattr(event, "channel_id", None)).push(event)

    def pending(self) -> list[Event]:
        return [event for queue in list(self._queues.values()) for event in queue.pending()]

    def __bool__(self) -> bool:
        return any(self._queues.values())

    def get_future(self) -> Future:
        return self.notifier.get_future()

    def _repeated(self, channel_id: Optional[ChannelId]) -> Optional[Callable[[], list[Event]]]:
        return (lambda: self._take_requests(channel_id)) if self._has_requests(channel_id) else None

    def process(self, handler: Callable[[Event], Any]) -> None:
        """Each monitor's events, then its fee-bump requests, in turn (``EventsProvider::process_pending_events``)."""
        replayed = False
        for channel_id, queue in list(self._queues.items()):
            queue.process(handler, self._repeated(channel_id))
            replayed |= queue.replay_requested
        self.replay_requested = replayed

    async def process_async(self, handler: Callable[[Event], Any]) -> None:
        """:meth:`process`, awaiting an async handler (``ChainMonitor::process_pending_events_async``)."""
        replayed = False
        for channel_id, queue in list(self._queues.items()):
            await queue.process_async(handler, self._repeated(channel_id))
            replayed |= queue.replay_requested
        self.replay_requested = replayed
