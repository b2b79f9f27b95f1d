"""The dashboard's logic, driven without a browser: every control, the tables, the log and the scorer."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ldkkit import dashboard
from ldkkit.dashboard import CHANNEL_COLUMNS, EVENT_COLUMNS, PEER_COLUMNS, SCORER_COLUMNS, Dashboard, DashboardModel
from ldkkit.events import Event
from ldkkit.reference import handle_ldk_events


@pytest.fixture
def model():
    m = DashboardModel(handle_ldk_events, seed=0)
    yield m
    m.stop()


def new_event_names(m: DashboardModel, before: int) -> list[str]:
    return [type(e).__name__ for _, _, e in m.node.event_log[before:]]


def calls_beside(m: DashboardModel, kind: str) -> list[str]:
    return [row.handler_calls for row in m.events_table(kind).itertuples()]


def channel_row(m: DashboardModel, peer: str):
    table = m.channels_table()
    return table[table.peer == peer].iloc[-1]


def ready_channel_from(m: DashboardModel, peer: str, sats: int = 6_000_000) -> None:
    m.peer_opens_channel(peer, sats)
    m.mine(6)


# --- importing ------------------------------------------------------------------------------


def test_importing_ldkkit_and_the_dashboard_module_imports_neither_pandas_nor_ipywidgets():
    code = ("import sys, ldkkit, ldkkit.scenarios, ldkkit.dashboard; "
            "print(sorted(m for m in ('pandas', 'ipywidgets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- channels ------------------------------------------------------------------------------


def test_a_peer_opening_6m_is_accepted_pending_then_ready_after_mining(model):
    message = model.peer_opens_channel("bob", 6_000_000)
    assert "accepted" in message and "OpenChannelRequest, ChannelPending" in message
    assert channel_row(model, "bob").state == "pending"
    assert "accept_inbound_channel(" in calls_beside(model, "OpenChannelRequest")[0]
    before = len(model.node.event_log)
    assert "ChannelReady" in model.mine(6)
    assert new_event_names(model, before) == ["ChannelReady"]
    row = channel_row(model, "bob")
    assert (row.state, row.capacity_sat, row.local_sat, row.remote_sat) == ("ready", 6_000_000, 0, 6_000_000)


def test_a_peer_opening_4m_is_rejected_by_the_reference_policy(model):
    message = model.peer_opens_channel("alice", 4_000_000)
    assert "rejected" in message
    assert model.channels_table().empty
    assert "force_close_without_broadcasting_txn(" in calls_beside(model, "OpenChannelRequest")[0]


def test_we_open_a_channel_and_our_handler_funds_it(model):
    message = model.open_channel("carol", 1_000_000)
    assert "funded" in message and "FundingGenerationReady, ChannelPending" in message
    assert calls_beside(model, "FundingGenerationReady")[0].startswith("funding_transaction_generated(")
    model.mine(6)
    row = channel_row(model, "carol")
    assert (row.state, row.local_sat, row.opened_by) == ("ready", 1_000_000, "you")


def test_cooperative_close_is_closing_until_six_confirmations(model):
    model.open_channel("bob", 1_000_000)
    model.mine(6)
    assert "closed your channel" in model.close_channel("bob")
    assert channel_row(model, "bob").state == "closing"
    model.mine(5)
    assert channel_row(model, "bob").state == "closing"
    model.mine(1)
    assert channel_row(model, "bob").state == "closed"


def test_force_close_with_nothing_in_flight_needs_no_bump(model):
    """LDK broadcasts a commitment that already pays OutputSpendingFee itself: no BumpTransaction."""
    model.open_channel("bob", 1_000_000)
    model.mine(6)
    message = model.force_close("bob")
    assert "force-closed" in message and "ChannelClosed" in message and "BumpTransaction" not in message
    assert len(model.world.chain.mempool) == 1  # the commitment, broadcast by the monitor
    assert channel_row(model, "bob").state == "closing"


def test_closing_with_no_channel_is_a_readable_error(model):
    message = model.close_channel("bob")
    assert message == "close_channel failed: ValueError: you have no open channel with bob to close"
    assert model.force_close("bob").startswith("force_close failed: ValueError")
    assert model.errors == [message, model.messages[-1][1]]


# --- payments -------------------------------------------------------------------------------


def test_a_peer_paying_our_invoice_moves_our_local_balance(model):
    ready_channel_from(model, "bob")
    message = model.peer_pays_invoice("bob", 50_000)
    assert "Succeeded" in message
    row = channel_row(model, "bob")
    assert (row.local_sat, row.remote_sat) == (50_000, 5_950_000)
    assert calls_beside(model, "PaymentClaimable")[0].startswith("claim_funds(")
    assert "'inbound_payments'" in calls_beside(model, "PaymentClaimed")[0]
    assert calls_beside(model, "PendingHTLCsForwardable")[0] == "process_pending_htlc_forwards() (later, from a task)"


def test_paying_with_no_channel_is_a_readable_error(model):
    message = model.pay_peer("bob", 10_000)
    assert message.startswith("pay_peer failed:")
    assert "unable to find a route" in message and "ready channel with at least 10,000 sat" in message
    assert model.errors[-1] == message


def test_we_pay_a_peer(model):
    model.open_channel("bob", 1_000_000)
    model.mine(6)
    assert "Succeeded" in model.pay_peer("bob", 10_000)
    assert channel_row(model, "bob").local_sat == 990_000
    assert "'outbound_payments'" in calls_beside(model, "PaymentSent")[0]


def test_a_payment_routed_through_us_earns_a_fee(model):
    ready_channel_from(model, "bob")
    model.open_channel("carol", 1_000_000)
    model.mine(6)
    message = model.route_through_us("bob", "carol", 100_000)
    assert "Succeeded" in message and "PaymentForwarded" in message
    assert "total_fee_earned_msat=1,000" in model.events_table("PaymentForwarded").summary[0]
    assert channel_row(model, "carol").local_sat == 900_000


def test_routing_errors_are_readable(model):
    assert "two different peers" in model.route_through_us("bob", "bob", 1_000)
    message = model.route_through_us("bob", "carol", 1_000)
    assert message.startswith("route_through_us failed:") and "unable to find a route" in message
    assert "A route from bob to carol through you needs" in message
    message = model.peer_pays_invoice("bob", 1_000)
    assert "bob needs a ready channel to you with at least 1,000 sat on bob's side" in message


def test_a_failed_probe_teaches_the_scorer(model):
    model.open_channel("bob", 1_000_000)
    model.mine(6)
    assert model.scorer_table().empty
    message = model.probe("dave", 200_000)
    assert "you -> bob -> dave" in message and "ProbeFailed" in message
    assert model.events_table("ProbeFailed").summary[0].startswith("failed at bob -> dave")
    scorer = model.scorer_table()
    assert list(scorer.columns) == SCORER_COLUMNS
    hop = scorer[scorer.hop == "bob -> dave"].iloc[0]
    assert (hop.capacity_sat, hop.lower_sat, hop.upper_sat) == (1_000_000, 0, 200_000)


def test_probing_with_no_route_is_a_readable_error(model):
    assert model.probe("dave", 200_000).startswith("probe failed: LightningError")


# --- time, peers, and bad input -------------------------------------------------------------


def test_mine_and_advance_move_height_and_time(model):
    height, now = model.header()["height"], model.header()["time_s"]
    assert model.mine(2).startswith("mined 2 blocks")
    assert model.header()["height"] == height + 2
    assert model.advance(60).startswith("advanced 60 s")
    assert model.header()["time_s"] == pytest.approx(now + 2 * 600 + 2 + 60)
    assert model.mine(0) == "mine failed: ValueError: mine at least one block, not 0"
    assert model.advance(-1).startswith("advance failed: ValueError")


def test_unknown_peers_are_named_in_the_error(model):
    assert model.pay_peer("mallory", 1) == (
        "pay_peer failed: KeyError: \"no peer called 'mallory'; the peers are alice, bob, carol, dave\""
    )


def test_the_header_names_node_height_time_and_processor(model):
    header = model.header()
    assert set(header) == {"node", "node_id", "height", "time_s", "processor", "handler"}
    assert header["processor"] == "BackgroundProcessor.start (thread): running"
    assert header["handler"] == "handle_ldk_events"
    assert "learner" in model.header_text() and "height" in model.header_text()


# --- tables and the event log ---------------------------------------------------------------


def test_the_tables_have_their_columns_even_when_empty(model):
    assert list(model.channels_table().columns) == CHANNEL_COLUMNS
    assert list(model.events_table().columns) == EVENT_COLUMNS
    assert list(model.scorer_table().columns) == SCORER_COLUMNS
    peers = model.peers_table()
    assert list(peers.columns) == PEER_COLUMNS
    assert peers.peer.tolist() == ["alice", "bob", "carol", "dave"]
    assert peers.connected.tolist() == [True, True, True, False]


def test_the_event_log_is_newest_first_and_filters_by_type(model):
    ready_channel_from(model, "bob")
    model.peer_opens_channel("alice", 4_000_000)
    log = model.events_table()
    # alice's refused anchor channel comes back once without anchors, as LDK's opener does: two requests
    assert log["#"].tolist() == [5, 4, 3, 2, 1]
    assert log.event.tolist() == ["OpenChannelRequest", "OpenChannelRequest", "ChannelReady", "ChannelPending",
                                  "OpenChannelRequest"]
    assert model.event_kinds() == ["ChannelPending", "ChannelReady", "OpenChannelRequest"]
    requests = model.events_table("OpenChannelRequest")
    assert requests["#"].tolist() == [5, 4, 1]
    assert requests.summary.tolist()[0].startswith("counterparty_node_id=alice funding_satoshis=4,000,000")
    assert model.events_table("all").shape == log.shape
    fields = model.event_fields(1)
    assert fields["event"] == "OpenChannelRequest" and fields["funding_satoshis"] == 6_000_000
    assert set(fields) > {"temporary_channel_id", "counterparty_node_id", "channel_type"}


def test_the_text_form_is_stable_for_a_seed():
    def play() -> str:
        m = DashboardModel(handle_ldk_events, seed=1)
        ready_channel_from(m, "carol")
        m.peer_pays_invoice("carol", 10_000)
        text = m.text()
        m.stop()
        return text

    first = play()
    assert first == play()
    assert "carol" in first and "PaymentClaimed" in first and "status: carol paid your 10,000 sat invoice" in first


def test_stop_is_idempotent_and_controls_afterwards_explain(model):
    assert model.stop() == "stopped BackgroundProcessor.start (thread) and closed the world"
    assert model.stop() == "the dashboard was already stopped"
    assert "has been stopped" in model.mine(1)
    assert model.processor_status().endswith(": stopped")


# --- the handler's own errors, and both processor forms ---------------------------------------


def _raises_on_open(*args):
    if isinstance(args[-1], Event.OpenChannelRequest):
        raise ValueError("my handler is broken")
    return handle_ldk_events(*args)


@pytest.mark.parametrize("processor", ["thread", "async"])
def test_a_handler_error_shows_and_stops_the_processor(processor):
    m = DashboardModel(_raises_on_open, seed=0, processor=processor)
    try:
        message = m.peer_opens_channel("bob", 6_000_000)
        assert message.startswith("peer_opens_channel failed: RuntimeError: the background processor stopped")
        assert "ValueError while handling Event.OpenChannelRequest: my handler is broken" in message
        assert m.processor_status().endswith("stopped by an error")
        assert m.mine(1).startswith("mined 1 block")  # the dashboard itself carries on
    finally:
        m.stop()


def _plain_handler(channel_manager, *args):
    """A plain (not async) handler: accepts every channel, ignores the rest."""
    event = args[-1]
    if isinstance(event, Event.OpenChannelRequest):
        channel_manager.accept_inbound_channel(event.temporary_channel_id, event.counterparty_node_id, 7)


@pytest.mark.parametrize("processor", ["thread", "async"])
def test_either_processor_runs_a_plain_handler(processor):
    m = DashboardModel(_plain_handler, seed=0, processor=processor)
    try:
        assert m.header()["processor"].startswith(
            "BackgroundProcessor.start" if processor == "thread" else "process_events_async"
        )
        assert "accepted" in m.peer_opens_channel("alice", 1_000_000)
        tcid = m.node.event_log[0][2].temporary_channel_id.short()
        assert calls_beside(m, "OpenChannelRequest") == [f"accept_inbound_channel({tcid}, alice, 7)"]
        m.mine(6)
        assert channel_row(m, "alice").state == "ready"
    finally:
        m.stop()


def test_an_unknown_processor_form_is_refused():
    with pytest.raises(ValueError, match="'thread' or 'async'"):
        DashboardModel(handle_ldk_events, processor="tokio")


# --- the widgets, without a browser ---------------------------------------------------------


@pytest.fixture
def dash():
    d = Dashboard.for_handler(handle_ldk_events, seed=0)
    yield d
    d.stop()


def test_the_widgets_carry_css_hooks_and_a_stable_text_form(dash):
    bundle = dash._repr_mimebundle_()
    assert bundle["text/plain"] == dash.text() == repr(dash)
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "ldkkit-dashboard" in dash.widget._dom_classes
    assert "ldkkit-btn-peer-opens-channel" in dash.buttons["peer_opens_channel"]._dom_classes
    assert "ldkkit-event-filter" in dash.inputs["filter"]._dom_classes
    assert {n for n, _ in dashboard.CONTROLS} == set(dash.buttons)


def test_buttons_drive_the_model_and_refresh_every_view(dash):
    dash.inputs["peer"].value = "carol"
    dash.inputs["channel_sats"].value = 6_000_000
    dash.buttons["peer_opens_channel"].click()
    assert "accepted" in dash.status.value
    dash.buttons["mine"].click()
    assert "ChannelReady" in dash.events.value and "ldkkit-bar" in dash.channels.value
    assert "title='carol: local 0 sat, remote 6,000,000 sat'" in dash.channels.value
    dash.inputs["payment_sats"].value = 50_000
    dash.buttons["peer_pays_invoice"].click()
    assert "title='carol: local 50,000 sat, remote 5,950,000 sat'" in dash.channels.value
    assert "ChannelPending" in dash.inputs["filter"].options
    dash.inputs["filter"].value = "ChannelPending"
    assert dash.events.value.count("<details") == 1
    dash.inputs["peer"].value = "alice"
    dash.buttons["pay_peer"].click()
    assert "pay_peer failed" in dash.errors.value and not dash.buttons["pay_peer"].disabled


def test_a_failing_view_shows_the_error_and_keeps_the_button(dash, monkeypatch):
    def broken(*args):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(dash.model, "mine", broken)
    dash.buttons["mine"].click()
    assert "mine failed: ZeroDivisionError: oops" in dash.errors.value
    assert not dash.buttons["mine"].disabled


def test_controls_as_methods_refresh_and_stop_disables_the_buttons(dash):
    assert "mine" in dir(dash)
    height = dash.model.header()["height"]
    assert dash.mine(1).startswith("mined 1 block")
    assert f"height {height + 1}" in dash.header.value
    with pytest.raises(AttributeError):
        dash.no_such_control  # noqa: B018
    assert dash.stop().startswith("stopped")
    assert all(b.disabled for b in dash.buttons.values())
    assert "stopped" in dash.header.value


def test_an_htlc_the_handler_holds_shows_in_flight():
    """A payment to us that the handler neither claims nor fails back stays an HTLC on the channel: in flight."""

    async def holds_payments(*args):
        if isinstance(args[-1], Event.PaymentClaimable):
            return None  # neither claim_funds nor fail_htlc_backwards: the HTLC waits
        return await handle_ldk_events(*args)

    m = DashboardModel(holds_payments, seed=0)
    try:
        ready_channel_from(m, "bob")
        assert channel_row(m, "bob").in_flight_sat == 0
        m.peer_pays_invoice("bob", 50_000)
        row = channel_row(m, "bob")
        assert (row.in_flight_sat, row.local_sat) == (50_000, 0)
    finally:
        m.stop()
