"""A context or connection that lives through many transactions keeps one transaction's reads (issue 19).

``loyalty.daily`` runs on one context and commits chunk by chunk; its cached customer rows were
kept for the whole pass, so its memory grew with the number of customers (90 MB at 20,000, 158 MB
at 100,000 in ``bench/bench_worker.py --daily-tasks``). Values cached before a commit can never be
served again (their stamp's epoch is gone), so they are dropped when the epoch moves.
"""

from __future__ import annotations

from sqlalchemy import insert, literal, select

from retention_plugin.context import HookContext
from retention_plugin.storage import tables as t
from retention_plugin.storage import writes


def _customers(app, now, n: int) -> list[int]:
    with app.engine.begin() as conn:
        return [conn.execute(insert(t.customers).values(
            shopify_id=1000 + i, email=f"c{i}@example.com", first_name=f"C{i}", tags=[],
            created_at=now, updated_at=now)).inserted_primary_key[0] for i in range(n)]


def test_a_context_keeps_only_the_current_transactions_reads(app, clock):
    ids = _customers(app, clock.now, 30)
    with app.engine.connect() as conn:
        ctx = HookContext(app, conn, now=clock.now, source="task")
        for chunk in (ids[:10], ids[10:20], ids[20:]):
            for cid in chunk:
                assert ctx.customer(cid)["email"] == f"c{cid - ids[0]}@example.com"
            assert ctx.customer(chunk[0])["first_name"] == f"C{chunk[0] - ids[0]}"  # still a hit
            conn.commit()
        # Only the last chunk's rows are held (30 before), and reading again still works.
        assert len(ctx._reads) == 10
        assert ctx.customer(ids[0])["first_name"] == "C0"
        assert len(ctx._reads) == 1


def test_a_connections_shared_reads_do_not_outlive_their_transaction(app, clock):
    with app.engine.connect() as conn:
        for round_ in range(5):
            for i in range(4):
                assert writes.cached(conn, ("test", round_, i), ("customers",),
                                     lambda i=i: conn.execute(select(literal(i))).scalar()) == i
            conn.commit()
        # The last round's four were dropped by its commit (twenty were held before).
        assert len(writes._BY_CONNECTION[conn].reads) == 0
        assert writes.cached(conn, ("test", 0, 1), ("customers",), lambda: "read again") == "read again"
