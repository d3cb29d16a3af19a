"""Zendesk adapter: webhook verification, payload parsing, Support API client, shipped triggers."""

from .client import IncrementalPage, ZendeskClient
from .payloads import parse_satisfaction_ratings, parse_zendesk, zendesk_event_id
from .triggers import install_requests, load_trigger_definitions
from .verify import parse_timestamp, verify_webhook

__all__ = [
    "IncrementalPage",
    "ZendeskClient",
    "install_requests",
    "load_trigger_definitions",
    "parse_satisfaction_ratings",
    "parse_timestamp",
    "parse_zendesk",
    "verify_webhook",
    "zendesk_event_id",
]
