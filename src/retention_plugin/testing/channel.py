"""A message channel that keeps what it is asked to send, for asserting on rendered messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import hookimpl

if TYPE_CHECKING:
    from ..messaging.templates import Rendered


class Sent(NamedTuple):
    """One send: copies of the message row and customer row, and what the templates rendered."""

    message: dict[str, Any]
    customer: dict[str, Any]
    rendered: Rendered


class RecordingChannel:
    """Registered as a plugin, it offers itself as the channel ``name`` (default ``"test"``).

    Point messages at it with ``[messages] default_channel = "test"``. With ``fail`` set, every send raises
    it (a :class:`~retention_plugin.messaging.channels.ChannelError`, transient or not) and records nothing.
    ``sends_in_transaction`` is what the channel declares to the outbox (default False, as a channel that
    does not say): True lets several messages share a transaction, as a channel that only writes through
    ``ctx`` may; its ``sent`` list, kept in memory, is then not rolled back with a failed transaction.
    """

    def __init__(self, name: str = "test", *, fail: Exception | None = None, sends_in_transaction: bool = False):
        self.name = name
        self.fail = fail
        self.sends_in_transaction = sends_in_transaction
        self.sent: list[Sent] = []

    @hookimpl
    def register_channels(self, register: Callable[[str, Any], None]) -> None:
        register(self.name, self)

    def send(self, message: Mapping[str, Any], customer: Mapping[str, Any], rendered: Rendered, ctx: Any) -> str:
        if self.fail is not None:
            raise self.fail
        self.sent.append(Sent(dict(message), dict(customer), rendered))
        return f"{self.name}-{len(self.sent)}"

    def kinds(self) -> list[str]:
        """The kinds sent, in order."""
        return [s.message["kind"] for s in self.sent]
