"""Tables of what happened, for notebooks. The only core module that imports pandas, lazily."""

from __future__ import annotations

from typing import Any

from .events import Event

#: The columns shown first: what most events are about.
KEY_FIELDS = (
    "channel_id", "temporary_channel_id", "counterparty_node_id", "funding_satoshis", "channel_value_satoshis",
    "payment_hash", "amount_msat", "fee_paid_msat", "total_fee_earned_msat", "reason",
)


def events_dataframe(event_log: list[tuple[float, int, Event]], all_fields: bool = False) -> Any:
    """One row per event: when (seconds, block height), which event, and its key fields.

    With ``all_fields`` every field of every event gets a column (most are then empty).
    """
    import pandas as pd

    rows = []
    for time, height, event in event_log:
        flat = event.to_dict()
        row: dict[str, Any] = {"time_s": round(time, 3), "height": height, "event": flat.pop("event")}
        if all_fields:
            row.update(flat)
        else:
            row.update({k: flat[k] for k in KEY_FIELDS if k in flat})
            if "reason" in flat and isinstance(event, Event.ChannelClosed):
                row["reason"] = str(event.reason)
        rows.append(row)
    table = pd.DataFrame(rows)
    # Amounts stay whole numbers even in columns some events leave empty (<NA>, not 5e7).
    for column in table.columns:
        values = [row[column] for row in rows if row.get(column) is not None]
        if values and all(type(v) is int for v in values):
            table[column] = table[column].astype("Int64")
    return table
