"""The outbox sends several messages per transaction, each in a savepoint, where the channel allows it.

On SQLite and PostgreSQL: a failing message among good ones, a lease another worker took, a channel
that sends outside the database (committed after each send), and a commit that fails.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, insert, select

from retention_plugin.messaging import outbox
from retention_plugin.messaging.channels import ChannelError, ZendeskChannel
from retention_plugin.messaging.kinds import BUILTIN_KINDS
from retention_plugin.messaging.outbox import schedule_message, send_claimed, send_due
from retention_plugin.storage import tables
from retention_plugin.storage.db import make_engine

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
#: A Tuesday, 10:00 in Vilnius: inside the contact policy's hours for the customers below.
NOW = datetime(2026, 3, 3, 10, tzinfo=ZoneInfo("Europe/Vilnius")).astimezone(timezone.utc)
LEASE = 300
#: Groups closed by their size only, so what the tests count does not depend on the machine's speed.
UNTIMED = {"commit_interval_ms": 600_000}


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def settings(**messages) -> dict:
    return {"messages": {"max_attempts": 3, "backoff_base_seconds": 60.0, "lease_seconds": LEASE,
                         **UNTIMED, **messages}}


def add_customer(engine, n: int) -> int:
    with engine.begin() as conn:
        return conn.execute(insert(tables.customers).values(
            email=f"customer{n}@example.com", first_name="Ona", locale="lt", country="LT",
            marketing_consent="subscribed", shopify_id=7_000_000_000_000 + n, zendesk_user_id=500 + n, tags=[],
            created_at=T0, updated_at=T0)).inserted_primary_key[0]


def schedule(engine, keys: list[str], channel: str) -> None:
    customers = [add_customer(engine, i) for i in range(len(keys))]
    with engine.begin() as conn:
        for i, key in enumerate(keys):
            # A customer each, and send_at in key order, so claims take them in this order.
            schedule_message(conn, key=key, customer_id=customers[i], kind="thank_you",
                             due_at=NOW - timedelta(minutes=len(keys) - i),
                             data=BUILTIN_KINDS["thank_you"].sample, channel=channel, now=NOW)


def messages(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {r["key"]: dict(r) for r in conn.execute(select(tables.messages)).mappings()}


def action_keys(engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(tables.actions.c.key)).scalars())


def count_commits(engine) -> list[int]:
    commits = [0]

    @event.listens_for(engine, "commit")
    def commit(conn):
        commits[0] += 1

    return commits


class Zendesk(ZendeskChannel):
    """The built-in Zendesk channel (its action is written in the message's transaction), failing on request."""

    def __init__(self, fail: set[str] = frozenset()):
        self.fail = set(fail)
        self.calls: list[str] = []

    def send(self, message, customer, rendered, ctx):
        provider = super().send(message, customer, rendered, ctx)  # the action is written...
        self.calls.append(message["key"])
        if message["key"] in self.fail:
            raise ChannelError("Zendesk said no", transient=True)  # ...then the send fails
        return provider


class Smtp:
    """Like SMTP, it sends outside the database; it declares nothing, as a third-party channel may not."""

    def __init__(self, commits: list[int]):
        self.commits = commits
        self.seen: list[tuple[str, int]] = []  # key, commits made before its send

    def send(self, message, customer, rendered, ctx):
        self.seen.append((message["key"], self.commits[0]))
        return f"smtp:{message['key']}"


def test_a_failing_message_rolls_back_alone_and_its_failure_is_recorded_in_the_group(engine):
    schedule(engine, ["m1", "m2", "m3", "m4"], "zendesk")
    commits = count_commits(engine)
    channel = Zendesk(fail={"m2"})
    counts = send_due(engine, now=NOW, channels={"zendesk": channel}, settings=settings())
    assert counts["sent"] == 3 and counts["retry"] == 1
    assert commits[0] == 2  # the claim, then one transaction for all four
    rows = messages(engine)
    assert [rows[k]["status"] for k in ("m1", "m2", "m3", "m4")] == ["sent", "scheduled", "sent", "sent"]
    bad = rows["m2"]
    assert bad["attempts"] == 1 and bad["lease_until"] is None and bad["send_at"] == NOW + timedelta(seconds=60)
    assert bad["reason"].startswith("attempt 1 of 3 failed: zendesk: Zendesk said no; retrying at ")
    # The failed send's action went with its savepoint; the others' stayed.
    assert action_keys(engine) == ["message:m1:zendesk", "message:m3:zendesk", "message:m4:zendesk"]

    channel.fail.clear()
    counts = send_due(engine, now=NOW + timedelta(seconds=60), channels={"zendesk": channel}, settings=settings())
    assert counts["sent"] == 1
    assert channel.calls == ["m1", "m2", "m3", "m4", "m2"]  # each sent message was sent once
    assert action_keys(engine) == [f"message:m{i}:zendesk" for i in (1, 2, 3, 4)]
    assert messages(engine)["m2"]["status"] == "sent"


def test_a_message_whose_lease_another_worker_took_is_skipped_in_the_group(engine):
    schedule(engine, ["m1", "m2", "m3", "m4"], "zendesk")
    ids, lease = outbox.claim_due(engine, NOW, 10, LEASE)
    # This worker stalls past its lease; another takes the two oldest rows meanwhile.
    later = NOW + timedelta(seconds=LEASE + 1)
    taken, their_lease = outbox.claim_due(engine, later, 2, LEASE)
    assert taken == ids[:2]

    ours = Zendesk()
    counts = send_claimed(engine, ids, lease, now=NOW, channels={"zendesk": ours}, settings=settings())
    assert (counts["skipped"], counts["sent"]) == (2, 2)
    assert ours.calls == ["m3", "m4"]
    theirs = Zendesk()
    counts = send_claimed(engine, taken, their_lease, now=later, channels={"zendesk": theirs}, settings=settings())
    assert counts["sent"] == 2 and theirs.calls == ["m1", "m2"]
    assert action_keys(engine) == [f"message:m{i}:zendesk" for i in (1, 2, 3, 4)]


def test_a_lease_lost_during_the_send_rolls_back_what_the_send_wrote(engine):
    schedule(engine, ["m1", "m2", "m3"], "zendesk")

    class TakenOver(Zendesk):
        def send(self, message, customer, rendered, ctx):
            provider = super().send(message, customer, rendered, ctx)
            if message["key"] == "m2":  # the row's lease changes under the send
                ctx.conn.execute(tables.messages.update().where(tables.messages.c.id == message["id"])
                                 .values(lease_until=NOW + timedelta(hours=1)))
            return provider

    counts = send_due(engine, now=NOW, channels={"zendesk": TakenOver()}, settings=settings())
    assert (counts["sent"], counts["skipped"]) == (2, 1)
    assert action_keys(engine) == ["message:m1:zendesk", "message:m3:zendesk"]
    m2 = messages(engine)["m2"]
    assert m2["status"] == "scheduled" and m2["attempts"] == 0


def test_a_channel_that_sends_outside_the_database_is_committed_after_each_send(engine):
    schedule(engine, ["m1", "m2", "m3"], "smtp")
    commits = count_commits(engine)
    channel = Smtp(commits)
    counts = send_due(engine, now=NOW, channels={"smtp": channel}, settings=settings())
    assert counts["sent"] == 3
    # The claim's commit, then each send's own: no send waits for another's commit.
    assert channel.seen == [("m1", 1), ("m2", 2), ("m3", 3)]
    assert commits[0] == 4


def test_declaring_sends_in_transaction_shares_the_commit(engine):
    schedule(engine, ["m1", "m2", "m3"], "smtp")
    commits = count_commits(engine)
    channel = Smtp(commits)
    channel.sends_in_transaction = True  # type: ignore[attr-defined]
    assert send_due(engine, now=NOW, channels={"smtp": channel}, settings=settings())["sent"] == 3
    assert channel.seen == [("m1", 1), ("m2", 1), ("m3", 1)] and commits[0] == 2


def test_a_group_holds_at_most_messages_per_commit(engine):
    schedule(engine, [f"m{i}" for i in range(5)], "zendesk")
    commits = count_commits(engine)
    counts = send_due(engine, now=NOW, channels={"zendesk": Zendesk()}, settings=settings(messages_per_commit=2))
    assert counts["sent"] == 5 and commits[0] == 1 + 3


def test_a_failed_commit_leaves_the_messages_to_their_lease_and_they_are_sent_once(engine):
    schedule(engine, ["m1", "m2", "m3"], "zendesk")
    commits = [0]

    @event.listens_for(engine, "commit")
    def fail_the_groups_commit(conn):
        commits[0] += 1
        if commits[0] == 2:  # the claim commits; the group's commit fails
            raise RuntimeError("the disk is full")

    channel = Zendesk()
    counts = send_due(engine, now=NOW, channels={"zendesk": channel}, settings=settings())
    assert sum(counts.values()) == 0  # nothing is counted that did not commit
    assert channel.calls == ["m1", "m2", "m3"]
    rows = messages(engine)
    assert {r["status"] for r in rows.values()} == {"scheduled"}
    assert {r["lease_until"] for r in rows.values()} == {NOW + timedelta(seconds=LEASE)}
    assert action_keys(engine) == []

    # Not before the lease runs out; then once.
    assert sum(send_due(engine, now=NOW + timedelta(seconds=LEASE - 1), channels={"zendesk": channel},
                        settings=settings()).values()) == 0
    counts = send_due(engine, now=NOW + timedelta(seconds=LEASE + 1), channels={"zendesk": channel},
                      settings=settings())
    assert counts["sent"] == 3
    assert action_keys(engine) == [f"message:m{i}:zendesk" for i in (1, 2, 3)]
    assert {r["status"] for r in messages(engine).values()} == {"sent"}


def test_builtin_channels_declare_how_they_send():
    from retention_plugin.messaging.channels import builtin_channels
    from retention_plugin.testing import RecordingChannel

    declared = {name: outbox.sends_in_transaction(ch) for name, ch in builtin_channels().items()}
    assert declared == {"email": False, "zendesk": True, "shopify": True, "log": True}
    assert not outbox.sends_in_transaction(RecordingChannel())
    assert outbox.sends_in_transaction(RecordingChannel(sends_in_transaction=True))


def test_an_unexpected_error_commits_the_messages_before_it_and_is_raised(engine):
    import pluggy

    from retention_plugin import hookimpl, hookspecs
    from retention_plugin.messaging import plugin as messaging_plugin

    class Broken:
        @hookimpl
        def contact_allowed(self, message, customer, when):
            if message["key"] == "m2":
                raise RuntimeError("a plugin's bug")
            return None

    pm = pluggy.PluginManager("retention_plugin")
    pm.add_hookspecs(hookspecs)
    pm.register(messaging_plugin, name="messaging")
    pm.register(Broken(), name="broken")
    schedule(engine, ["m1", "m2", "m3"], "zendesk")
    channel = Zendesk()
    with pytest.raises(RuntimeError, match="a plugin's bug"):
        send_due(engine, now=NOW, channels={"zendesk": channel}, settings=settings(), pm=pm)
    # As when each message had its own transaction: m1's is kept; m2 and m3 wait for their lease.
    rows = messages(engine)
    assert [rows[k]["status"] for k in ("m1", "m2", "m3")] == ["sent", "scheduled", "scheduled"]
    assert rows["m3"]["lease_until"] == NOW + timedelta(seconds=LEASE)
    assert action_keys(engine) == ["message:m1:zendesk"]
