"""LDK's wakers (``lightning::util::wakers``): how a notification reaches whoever waits for work."""

from __future__ import annotations

from ldkkit.wakers import Notifier, Sleeper


def test_a_notification_nobody_waits_for_is_kept_for_the_next_future():
    notifier = Notifier()
    notifier.notify()
    assert notifier.get_future().is_complete()  # the processor was busy: it must not miss the work
    assert not notifier.get_future().is_complete()  # seen once, then cleared


def test_a_notification_a_waiting_callback_receives_is_not_kept():
    """As LDK's ``callbacks_made``: the processor was woken by it, so its next future waits for new work."""
    notifier = Notifier()
    woken: list[bool] = []
    notifier.get_future().register_callback_fn(lambda: woken.append(True))
    notifier.notify()
    assert woken == [True]
    assert not notifier.get_future().is_complete()


def test_a_future_with_no_callback_still_completes_and_the_notification_is_kept():
    notifier = Notifier()
    future = notifier.get_future()
    notifier.notify()
    assert notifier.get_future() is future and future.is_complete()
    assert not notifier.get_future().is_complete()  # (seen complete: delivered)


def test_every_future_handed_out_while_a_notification_is_pending_is_complete_until_one_is_seen():
    """LDK's ``get_future`` keeps ``notify_pending`` until a future's callbacks are made: two calls while it is
    pending both get a complete future (one call must not take the wake-up from the other's caller)."""
    notifier = Notifier()
    notifier.notify()
    first, second = notifier.get_future(), notifier.get_future()
    assert first is second
    seen: list[str] = []
    second.register_callback_fn(lambda: seen.append("second"))  # on a complete future: called now, delivered
    assert seen == ["second"] and first.is_complete()
    assert not notifier.get_future().is_complete()


def test_a_notification_seen_by_a_wait_or_a_watch_that_counts_is_delivered():
    """``Future::wait_timeout`` (through a ``Sleeper``) and a callback registered on a complete future make its
    callbacks: the next future waits for new work. A watch that does not count leaves it pending."""
    notifier = Notifier()
    notifier.notify()
    notifier.get_future().watch(lambda: None, lambda: False)
    assert notifier.get_future().wait_timeout(0.0)
    assert not notifier.get_future().is_complete()
    notifier.notify()
    notifier.get_future().watch(lambda: None, lambda: True)
    assert not notifier.get_future().is_complete()


def test_a_notification_after_the_pending_one_was_seen_is_kept_again():
    """LDK's ``notify`` on a future whose callbacks were made drops it: the notification is pending again."""
    notifier = Notifier()
    notifier.notify()
    assert notifier.get_future().is_complete()
    notifier.notify()
    assert notifier.get_future().is_complete()


def test_waiters_share_the_future_until_it_completes():
    notifier = Notifier()
    first, second = notifier.get_future(), notifier.get_future()
    calls: list[str] = []
    first.register_callback_fn(lambda: calls.append("first"))
    second.register_callback_fn(lambda: calls.append("second"))
    notifier.notify()
    assert first is second and calls == ["first", "second"]
    late: list[str] = []
    first.register_callback_fn(lambda: late.append("late"))  # a completed future calls back at once
    assert late == ["late"]


class _Untouchable:
    """Stands in for a lock that must not be taken."""

    def __enter__(self) -> None:
        raise AssertionError("the lock was taken")

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_notification_while_one_is_kept_takes_no_lock_and_is_still_one():
    """A burst of queued events: the first one's notification stands for the rest, at no cost."""
    notifier = Notifier()
    notifier.notify()
    lock, notifier._lock = notifier._lock, _Untouchable()  # type: ignore[assignment]
    notifier.notify()
    notifier._lock = lock
    assert notifier.get_future().is_complete()
    assert not notifier.get_future().is_complete()


def test_a_watch_that_does_not_count_leaves_the_notification_for_the_next_future():
    """Not LDK's: the world's watch on a node a processor runs is woken, but takes nothing from the processor (as a
    ``Sleeper`` no longer waiting takes nothing in LDK): its next future completes at once."""
    notifier = Notifier()
    seen: list[str] = []
    notifier.get_future().watch(lambda: seen.append("future"), lambda: False)
    notifier.watch(lambda: seen.append("notifier"))
    notifier.notify()
    assert seen == ["future", "notifier"]
    assert notifier.get_future().is_complete()
    notifier.notify()  # a watch on the notifier is called once
    assert seen == ["future", "notifier"]


def test_a_watch_that_counts_takes_the_notification_as_a_callback_does():
    notifier = Notifier()
    notifier.get_future().watch(lambda: None, lambda: True)
    notifier.notify()
    assert not notifier.get_future().is_complete()


def _both(a: Notifier, b: Notifier) -> Sleeper:
    return Sleeper.from_two_futures(a.get_future(), b.get_future())


def test_a_sleeper_delivers_only_the_notification_that_ended_its_wait():
    """LDK's ``test_multi_future_sleep``: making a ``Sleeper`` takes nothing, and its wait delivers (sets
    ``callbacks_made`` on) the one future that woke it, the first complete in order; the other's stays pending."""
    a, b = Notifier(), Notifier()
    a.notify()
    b.notify()
    _both(a, b)  # made, never waited on
    assert _both(a, b).wait_timeout(0.0)  # a's
    assert _both(a, b).wait_timeout(0.0)  # b's, still pending
    assert not _both(a, b).wait_timeout(0.0)
    a.notify()
    assert _both(a, b).wait_timeout(0.0)
    assert not a.get_future().is_complete() and not b.get_future().is_complete()


def test_a_notification_a_sleeper_no_longer_waits_for_is_kept():
    """LDK's ``Sleeper`` watches with ``callbacks_with_state``, which never count: one whose wait timed out (the
    processor gone back to work) leaves the next notification pending, and the next wait returns at once."""
    notifier = Notifier()
    sleeper = Sleeper.from_single_future(notifier.get_future())
    assert not sleeper.wait_timeout(0.0)
    assert not notifier.get_future().wait_timeout(0.0)
    notifier.notify()
    assert notifier.get_future().is_complete()


def test_a_sleeper_and_callbacks_share_the_notifications_as_in_ldk():
    """LDK's ``sleeper_with_pending_callbacks``: a callback registered on a complete future is called at once and
    delivers it; one registered on a waiting future is called, and delivers, at the next notify."""
    a, b = Notifier(), Notifier()
    a.notify()
    b.notify()
    _both(a, b).wait()  # takes a's
    called: list[str] = []
    a.get_future().register_callback_fn(lambda: called.append("a"))
    b.get_future().register_callback_fn(lambda: called.append("b"))
    assert called == ["b"]
    a.notify()
    b.notify()
    assert called == ["b", "a"]
    assert _both(a, b).wait_timeout(0.0)  # b's second notification, pending
    assert not _both(a, b).wait_timeout(0.0)
