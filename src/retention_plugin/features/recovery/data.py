"""The rows service recovery keeps (``recoveries``): what their text holds, and what becomes of them
when customers merge or the shop's data is deleted.

A case's reason, hold, review note and offer are free text (an agent's or the
classifier's words may quote the customer): declared below, so the core's
search removes the person's email, phone and full name from them when the
person is erased. The case itself (decision, amount, outcome) stays, so the
recovery report still adds up.
"""

from __future__ import annotations


from ... import hookimpl
from ...records.merging import move_rows
from ...redaction import TextColumns
from ...shops import delete_shop_rows
from ...storage import tables as t

R = t.recoveries

TEXT_COLUMNS = TextColumns(
    free_text={"recoveries": ("reason", "hold", "review_note", "offer")},
    no_words={"recoveries": ("shop", "key", "trigger", "severity", "decision", "currency", "outcome", "incident",
                             "evidence", "reviewed_by")},  # reviewed_by names the admin who decided, not the customer
)


@hookimpl
def customers_merged(survivor, merged, ctx):
    move_rows(ctx.conn, [R], survivor, merged)


@hookimpl
def shop_redact(event, ctx):
    delete_shop_rows(ctx.conn, R, event.shop)
