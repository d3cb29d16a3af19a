"""Each sent message's savepoint is one name's SAVEPOINT and RELEASE (SQLAlchemy's own, named anew each
time, compiled its statements for every message), and it still does what ``begin_nested`` did: a send
that fails, a database error in it included (which aborts a PostgreSQL transaction until the rollback to
the savepoint), leaves nothing behind and the group's other messages go out; a channel may open its
own savepoints inside it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import event, insert, select, text

from retention_plugin.messaging.channels import ZendeskChannel
from retention_plugin.messaging.kinds import BUILTIN_KINDS
from retention_plugin.messaging.outbox import schedule_message, send_due
from retention_plugin.storage import tables

#: A Tuesday, 10:00 in Vilnius: inside the contact policy's hours.
NOW = datetime(2026, 3, 3, 10, tzinfo=ZoneInfo("Europe/Vilnius")).astimezone(timezone.utc)
UNTIMED = {"messages": {"commit_interval_ms": 600_000, "max_attempts": 3}}


def schedule(engine, add_customer, keys: list[str]) -> None:
    customers = [add_customer() for _ in keys]
    with engine.begin() as conn:
        for i, key in enumerate(keys):
            schedule_message(conn, key=key, customer_id=customers[i], kind="thank_you",
                             due_at=NOW - timedelta(minutes=len(keys) - i), data=BUILTIN_KINDS["thank_you"].sample,
                             channel="zendesk", now=NOW)


def statuses(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(tables.messages.c.key, tables.messages.c.status)).all())


def action_keys(engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(tables.actions.c.key)).scalars())


class Zendesk(ZendeskChannel):
    def __init__(self, broken: str | None = None, nested: bool = False):
        self.broken, self.nested = broken, nested

    def send(self, message, customer, rendered, ctx):
        provider = super().send(message, customer, rendered, ctx)  # its action is written first
        if self.nested:  # a savepoint of the channel's own, inside the message's
            with ctx.conn.begin_nested():
                ctx.conn.execute(insert(tables.plugin_state).values(
                    plugin="test", key=message["key"], value={"n": 1}, updated_at=NOW))
        if message["key"] == self.broken:
            ctx.conn.execute(text("SELECT * FROM no_such_table"))
        return provider


def test_each_sent_message_has_one_savepoint_of_one_name(engine, add_customer):
    schedule(engine, add_customer, ["m1", "m2", "m3"])
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn, cursor, statement, *args):
        sent.append(statement)

    assert send_due(engine, now=NOW, channels={"zendesk": Zendesk()}, settings=UNTIMED)["sent"] == 3
    savepoints = [s for s in sent if "SAVEPOINT" in s]
    assert savepoints == ["SAVEPOINT retention_message", "RELEASE SAVEPOINT retention_message"] * 3


def test_a_database_error_in_a_send_rolls_back_to_its_savepoint_and_the_group_goes_on(engine, add_customer):
    schedule(engine, add_customer, ["m1", "m2", "m3"])
    counts = send_due(engine, now=NOW, channels={"zendesk": Zendesk(broken="m2")}, settings=UNTIMED)
    assert (counts["sent"], counts["retry"]) == (2, 1)
    assert statuses(engine) == {"m1": "sent", "m2": "scheduled", "m3": "sent"}
    assert action_keys(engine) == ["message:m1:zendesk", "message:m3:zendesk"]  # m2's went with its savepoint


def test_a_channel_may_open_its_own_savepoints(engine, add_customer):
    schedule(engine, add_customer, ["m1", "m2"])
    counts = send_due(engine, now=NOW, channels={"zendesk": Zendesk(broken="m2", nested=True)}, settings=UNTIMED)
    assert (counts["sent"], counts["retry"]) == (1, 1)
    with engine.connect() as conn:
        kept = list(conn.execute(select(tables.plugin_state.c.key).where(tables.plugin_state.c.plugin == "test"))
                    .scalars())
    assert kept == ["m1"]  # m2's inner savepoint was released into its message's, then rolled back with it
