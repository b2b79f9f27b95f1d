"""A live dashboard of your node, while the background processor runs your handler.

    from ldkkit.dashboard import Dashboard
    from ldkkit.reference import handle_ldk_events
    dash = Dashboard.for_handler(handle_ldk_events, seed=0, processor="thread")
    dash                                       # the widgets (and a stable text form)
    dash.peer_opens_channel("bob", 6_000_000)  # every button is also a method
    dash.stop()                                # stop the processor, close the world

:class:`DashboardModel` (in :mod:`ldkkit.dashboard_model`) holds the logic in plain Python
(one method per control, and the tables as pandas DataFrames), so it runs and is tested
without a browser. :class:`Dashboard`, here, is a thin ipywidgets view over it. pandas and
ipywidgets are imported only when a table or the widgets are built.

The world runs on a virtual clock: time moves only when a control asks (mine blocks,
advance time); every other control lets two simulated seconds pass so that messages,
events and forwards settle. A control never raises: what goes wrong (in your handler or
in LDK) comes back as a readable message and shows in the dashboard's error area.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from typing import Any

from .dashboard_model import (
    CHANNEL_COLUMNS,
    EVENT_COLUMNS,
    FINAL_CONFIRMATIONS,
    LEARNER,
    PEER_COLUMNS,
    PEERS,
    REMOTE_PEER,
    SCORER_COLUMNS,
    SETTLE_S,
    CallRecorder,
    DashboardModel,
    Message,
)

# The model's names stay importable from here, as before the split.
__all__ = [
    "BLOCK_CHOICES", "CHANNEL_COLUMNS", "CHANNEL_SIZES_SAT", "CONTROLS", "EVENT_COLUMNS", "FINAL_CONFIRMATIONS",
    "LEARNER", "PAYMENT_AMOUNTS_SAT", "PEER_COLUMNS", "PEERS", "REMOTE_PEER", "SCORER_COLUMNS", "SECONDS_CHOICES",
    "SETTLE_S", "CallRecorder", "Dashboard", "DashboardModel", "Message",
]

#: Choices offered by the view (any amount works through the model).
CHANNEL_SIZES_SAT = (1_000_000, 4_000_000, 6_000_000, 10_000_000)
PAYMENT_AMOUNTS_SAT = (10_000, 50_000, 100_000, 200_000, 1_000_000)
BLOCK_CHOICES = (1, 6, 144)
SECONDS_CHOICES = (60, 600, 3600)
#: The buttons, in the order shown: (control, label).
CONTROLS = (
    ("peer_opens_channel", "peer opens a channel to us"),
    ("open_channel", "we open a channel to peer"),
    ("close_channel", "close cooperatively"),
    ("force_close", "force-close"),
    ("peer_pays_invoice", "peer pays our invoice"),
    ("pay_peer", "we pay peer"),
    ("route_through_us", "peer pays 'to' through us"),
    ("probe", "probe to peer"),
    ("mine", "mine blocks"),
    ("advance", "advance time"),
)


# --- the widgets -------------------------------------------------------------------------------


class Dashboard:
    """The ipywidgets view over a :class:`DashboardModel`; every control is also a method."""

    def __init__(self, model: DashboardModel) -> None:
        import ipywidgets as w

        self.model = model
        self._w = w
        self.header = self._html("ldkkit-header")
        self.status = self._html("ldkkit-status")
        self.errors = self._html("ldkkit-errors")
        self.channels = self._html("ldkkit-channels")
        self.events = self._html("ldkkit-events")
        self.scorer = self._html("ldkkit-scorer")
        self.inputs = self._inputs()
        self.buttons = {name: self._button(name, label) for name, label in CONTROLS}
        self.widget = w.VBox([
            self.header, self._controls(), self.status, self.errors,
            self._section("Peers and channels"), self.channels,
            self._section("Event log (newest first; click an event for all its fields)"),
            self.inputs["filter"], self.events,
            self._section("Scorer: liquidity bounds on recent paths"), self.scorer,
        ])
        self.widget.add_class("ldkkit-dashboard")
        self.refresh()

    @classmethod
    def for_handler(cls, handler: Callable[..., Any], *, seed: int = 0, processor: str = "thread") -> Dashboard:
        """A world with your node running ``handler`` under a background processor, and stub peers around it."""
        return cls(DashboardModel(handler, seed=seed, processor=processor))

    # --- building ---

    def _html(self, css: str) -> Any:
        box = self._w.HTML()
        box.add_class(css)
        return box

    def _section(self, title: str) -> Any:
        return self._w.HTML(f"<h4 style='margin:8px 0 2px'>{html.escape(title)}</h4>")

    def _dropdown(self, css: str, description: str, options: Any, value: Any) -> Any:
        box = self._w.Dropdown(options=options, value=value, description=description,
                               layout=self._w.Layout(width="220px"))
        box.add_class(css)
        return box

    def _inputs(self) -> dict[str, Any]:
        peers = list(self.model.peers)
        sats = [(f"{s:,} sat", s) for s in CHANNEL_SIZES_SAT]
        amounts = [(f"{s:,} sat", s) for s in PAYMENT_AMOUNTS_SAT]
        inputs = {
            "peer": self._dropdown("ldkkit-peer", "peer", peers, "bob"),
            "to": self._dropdown("ldkkit-to-peer", "to", peers, "carol"),
            "channel_sats": self._dropdown("ldkkit-channel-sats", "channel", sats, 6_000_000),
            "payment_sats": self._dropdown("ldkkit-payment-sats", "amount", amounts, 50_000),
            "blocks": self._dropdown("ldkkit-blocks", "blocks", list(BLOCK_CHOICES), 6),
            "seconds": self._dropdown("ldkkit-seconds", "seconds", list(SECONDS_CHOICES), 60),
            "filter": self._dropdown("ldkkit-event-filter", "show", ["all"], "all"),
        }
        inputs["filter"].observe(lambda _: self._safely("filter", self._refresh_events), names="value")
        return inputs

    def _button(self, name: str, label: str) -> Any:
        button = self._w.Button(description=label, layout=self._w.Layout(width="auto"))
        button.add_class("ldkkit-button")
        button.add_class("ldkkit-btn-" + name.replace("_", "-"))
        button.on_click(lambda b: self._click(b, name))
        return button

    def _controls(self) -> Any:
        w, i, b = self._w, self.inputs, self.buttons
        row = lambda *items: w.HBox(list(items), layout=w.Layout(flex_flow="row wrap"))  # noqa: E731
        return w.VBox([
            row(i["peer"], i["to"], i["channel_sats"], i["payment_sats"]),
            row(b["peer_opens_channel"], b["open_channel"], b["close_channel"], b["force_close"]),
            row(b["peer_pays_invoice"], b["pay_peer"], b["route_through_us"], b["probe"]),
            row(i["blocks"], b["mine"], i["seconds"], b["advance"]),
        ])

    # --- acting ---

    def _arguments(self, name: str) -> tuple[Any, ...]:
        i = {key: box.value for key, box in self.inputs.items()}
        return {
            "peer_opens_channel": (i["peer"], i["channel_sats"]), "open_channel": (i["peer"], i["channel_sats"]),
            "close_channel": (i["peer"],), "force_close": (i["peer"],),
            "peer_pays_invoice": (i["peer"], i["payment_sats"]), "pay_peer": (i["peer"], i["payment_sats"]),
            "route_through_us": (i["peer"], i["to"], i["payment_sats"]), "probe": (i["peer"], i["payment_sats"]),
            "mine": (i["blocks"],), "advance": (i["seconds"],),
        }[name]

    def _click(self, button: Any, name: str) -> None:
        button.disabled = True
        try:
            self._safely(name, lambda: getattr(self.model, name)(*self._arguments(name)))
        finally:
            button.disabled = False
            self._safely("refresh", self.refresh)

    def _safely(self, what: str, action: Callable[[], Any]) -> None:
        """Run ``action``; if the view itself fails, show why rather than die silently."""
        try:
            action()
        except Exception as e:
            self.model.record_error(what, e)
            self.errors.value = self._errors_html()

    def __getattr__(self, name: str) -> Any:
        """``dash.mine(6)`` and the other controls: run it on the model, then refresh the widgets."""
        if name not in dict(CONTROLS):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        control = getattr(self.model, name)

        @functools.wraps(control)
        def run(*args: Any, **kwargs: Any) -> Message:
            message = control(*args, **kwargs)
            self._safely("refresh", self.refresh)
            return message

        return run

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *dict(CONTROLS)})

    def stop(self) -> Message:
        """Stop the background processor and close the world; the widgets show it stopped."""
        message = self.model.stop()
        for button in self.buttons.values():
            button.disabled = True
        self._safely("refresh", self.refresh)
        return message

    # --- showing ---

    def refresh(self) -> None:
        """Redraw every view from the model."""
        m = self.model
        self.header.value = (f"<div style='font-family:monospace'><b>{html.escape(m.header_text())}</b><br>"
                             f"node id {html.escape(str(m.node.node_id))}</div>")
        kind = "error" if m.messages and m.messages[-1][0] == "error" else "ok"
        color = "#b00020" if kind == "error" else "#1b5e20"
        self.status.value = f"<div data-kind='{kind}' style='color:{color}'>{html.escape(m.status)}</div>"
        self.errors.value = self._errors_html()
        if m._stopped:  # the world is closed: its tables stay as they were
            return
        self.channels.value = self._peers_html() + self._channels_html()
        self._refresh_filter()
        self._refresh_events()
        self.scorer.value = _table_html(m.scorer_table(), "ldkkit-scorer-table", "no payment or probe paths yet")

    def _errors_html(self) -> str:
        errors = self.model.errors[-5:]
        items = "".join(f"<li>{html.escape(e)}</li>" for e in reversed(errors))
        return f"<ul style='color:#b00020;margin:0'>{items}</ul>" if errors else ""

    def _peers_html(self) -> str:
        peers = self.model.peers_table()
        text = ", ".join(f"{r.peer} ({'connected' if r.connected else 'not connected'}, {r.channels} channels)"
                         for r in peers.itertuples())
        return f"<div>peers: {html.escape(text)}</div>"

    def _channels_html(self) -> str:
        table = self.model.channels_table()
        if not table.empty:
            table.insert(4, "balance (local | remote)", [_bar(r) for r in table.itertuples()])
        return _table_html(table, "ldkkit-channel-table", "no channels yet", escape=False)

    def _refresh_filter(self) -> None:
        box = self.inputs["filter"]
        options = ["all", *self.model.event_kinds()]
        if list(box.options) != options:
            value = box.value if box.value in options else "all"
            box.options = options
            box.value = value

    def _refresh_events(self) -> None:
        m, kind = self.model, self.inputs["filter"].value
        items = []
        for n, t, h, event in list(m.events(kind))[:200]:
            calls = "".join(f"<div class='ldkkit-call' style='margin-left:2.5em;color:#555'>&rarr; "
                            f"{html.escape(str(c))}</div>" for c in m.recorder.for_event(event))
            fields = "\n".join(f"{k}: {v}" for k, v in event.to_dict().items())
            items.append(
                f"<details class='ldkkit-event' data-event='{type(event).__name__}'><summary>"
                f"<code>#{n} t={t:,.1f}s h{h}</code> <b>{type(event).__name__}</b> "
                f"{html.escape(m.summary(event))}</summary><pre>{html.escape(fields)}</pre></details>{calls}"
            )
        log = "".join(items) or "<i>no events yet</i>"
        self.events.value = f"<div style='max-height:400px;overflow-y:auto;line-height:1.5'>{log}</div>"

    def text(self) -> str:
        return self.model.text()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The widgets, with the dashboard's stable text as text/plain (what nbval compares)."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, tuple):  # (data, metadata)
            bundle = bundle[0]
        bundle = dict(bundle or {})
        bundle["text/plain"] = self.text()
        return bundle

    def __repr__(self) -> str:
        return self.text()


def _bar(row: Any) -> str:
    """Local and remote balance as a bar; its title and the local part's width change as payments flow."""
    capacity = max(row.capacity_sat, 1)
    local = 100 * row.local_sat / capacity
    remote = 100 * row.remote_sat / capacity
    title = f"{row.peer}: local {row.local_sat:,} sat, remote {row.remote_sat:,} sat"
    return (f"<div class='ldkkit-bar' title='{html.escape(title)}' data-local-sat='{row.local_sat}' "
            "style='display:flex;width:180px;height:12px;background:#eee;border:1px solid #999'>"
            f"<div class='ldkkit-bar-local' style='width:{local:.2f}%;background:#2a9d8f'></div>"
            f"<div class='ldkkit-bar-remote' style='width:{remote:.2f}%;background:#e9c46a'></div></div>")


def _table_html(table: Any, css: str, empty: str, escape: bool = True) -> str:
    if table.empty:
        return f"<i>{html.escape(empty)}</i>"
    sats = {col: _sats for col in table.columns if str(col).endswith("_sat")}
    return table.to_html(index=False, escape=escape, classes=css, na_rep="", border=0, formatters=sats)


def _sats(value: Any) -> str:
    """An amount in sats with thousands separators; blank when unknown."""
    return "" if value is None or value != value else f"{int(value):,}"
