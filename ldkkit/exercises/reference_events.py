"""The events the reference node is given in each scenario, with the capstone's seed: what the capstone
compares a learner's node with. Written by ``tools/make_reference_events.py``; do not edit."""

REFERENCE_EVENTS: dict[str, tuple[str, ...]] = {
    "inbound_open_accept": (
        "OpenChannelRequest", "ChannelPending", "ChannelReady",
    ),
    "inbound_open_reject": (
        "OpenChannelRequest", "OpenChannelRequest",
    ),
    "inbound_open_zero_conf": (
        "OpenChannelRequest", "ChannelPending", "ChannelReady",
    ),
    "outbound_open": (
        "FundingGenerationReady", "ChannelPending", "ChannelReady",
    ),
    "outbound_open_rejected_by_peer": (
        "ChannelClosed",
    ),
    "receive_invoice_payment": (
        "OpenChannelRequest", "ChannelPending", "ChannelReady", "PendingHTLCsForwardable", "PaymentClaimable",
        "PaymentClaimed",
    ),
    "receive_keysend": (
        "OpenChannelRequest", "ChannelPending", "ChannelReady", "PendingHTLCsForwardable", "PaymentClaimable",
        "PaymentClaimed",
    ),
    "receive_unknown_payment": (
        "OpenChannelRequest", "ChannelPending", "ChannelReady", "PendingHTLCsForwardable", "HTLCHandlingFailed",
        "PendingHTLCsForwardable",
    ),
    "receive_duplicate_payment": (
        "OpenChannelRequest", "ChannelPending", "ChannelReady", "PendingHTLCsForwardable", "PaymentClaimable",
        "PaymentClaimed", "PendingHTLCsForwardable", "PaymentClaimable", "HTLCHandlingFailed",
        "PendingHTLCsForwardable",
    ),
    "receive_mpp": (
        "OpenChannelRequest", "ChannelPending", "ChannelReady", "OpenChannelRequest", "ChannelPending",
        "ChannelReady", "PendingHTLCsForwardable", "PaymentClaimable", "PaymentClaimed",
    ),
    "send_direct": (
        "FundingGenerationReady", "ChannelPending", "ChannelReady", "PaymentSent", "PaymentPathSuccessful",
    ),
    "send_two_hop": (
        "FundingGenerationReady", "ChannelPending", "ChannelReady", "PaymentSent", "PaymentPathSuccessful",
    ),
    "forward_payment": (
        "OpenChannelRequest", "ChannelPending", "ChannelReady", "OpenChannelRequest", "ChannelPending",
        "ChannelReady", "PendingHTLCsForwardable", "PaymentForwarded",
    ),
    "send_retry_then_succeed": (
        "FundingGenerationReady", "ChannelPending", "ChannelReady", "FundingGenerationReady", "ChannelPending",
        "ChannelReady", "PaymentPathFailed", "PendingHTLCsForwardable", "PaymentSent", "PaymentPathSuccessful",
    ),
    "send_fails_permanently": (
        "FundingGenerationReady", "ChannelPending", "ChannelReady", "PaymentPathFailed", "PaymentFailed",
    ),
    "send_retries_exhausted": (
        "FundingGenerationReady", "ChannelPending", "ChannelReady", "PaymentPathFailed", "PaymentFailed",
    ),
    "probe_successful": (
        "FundingGenerationReady", "ChannelPending", "ChannelReady", "ProbeSuccessful",
    ),
    "probe_failed": (
        "FundingGenerationReady", "ChannelPending", "ChannelReady", "ProbeFailed",
    ),
    "coop_close_local": (
        "FundingGenerationReady", "ChannelPending", "ChannelReady", "ChannelClosed", "SpendableOutputs",
    ),
    "coop_close_remote": (
        "FundingGenerationReady", "ChannelPending", "ChannelReady", "ChannelClosed", "SpendableOutputs",
    ),
    "force_close_local": (
        "FundingGenerationReady", "ChannelPending", "ChannelReady", "ChannelClosed", "SpendableOutputs",
    ),
    "force_close_remote": (
        "FundingGenerationReady", "ChannelPending", "ChannelReady", "PaymentSent", "PaymentPathSuccessful",
        "ChannelClosed", "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction",
        "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction",
        "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction",
        "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction",
        "BumpTransaction", "BumpTransaction", "SpendableOutputs",
    ),
    "force_close_htlc_in_flight": (
        "OpenChannelRequest", "ChannelPending", "ChannelReady", "OpenChannelRequest", "ChannelPending",
        "ChannelReady", "PendingHTLCsForwardable", "ChannelClosed", "BumpTransaction", "BumpTransaction",
        "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction",
        "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction",
        "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction",
        "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction",
        "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction",
        "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction",
        "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction",
        "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction", "BumpTransaction",
        "HTLCHandlingFailed", "PendingHTLCsForwardable", "SpendableOutputs", "SpendableOutputs",
    ),
    "handler_replay": (
        "OpenChannelRequest", "ChannelPending", "ChannelReady", "PendingHTLCsForwardable", "PaymentClaimable",
        "PaymentClaimed", "PaymentClaimed",
    ),
    "restart_replay": (
        "OpenChannelRequest", "ChannelPending", "ChannelReady", "PendingHTLCsForwardable", "PaymentClaimable",
        "PaymentClaimed",
    ),
}
