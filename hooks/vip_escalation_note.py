"""Example plugin: when a valued customer's ticket waits too long, tell the team.

Copy into a ``[plugins].dirs`` directory. It reacts to ``ticket_escalated``
(fired by the built-in service recovery feature) by recording an outbound
call in the actions outbox — never by calling out from the hook itself, so
the call is made once, retried on failure, and visible in
``retention actions list``. Here it adds a tag Zendesk views can filter on.
"""

from retention_plugin import hookimpl


@hookimpl
def ticket_escalated(ticket, customer, reason, ctx):
    ctx.enqueue_action(
        "zendesk",
        "ticket_update",
        key=f"example:vip-escalation:{ticket['zendesk_id']}",
        request={
            "method": "PUT",
            "path": f"/api/v2/tickets/{ticket['zendesk_id']}.json",
            "json": {"ticket": {"additional_tags": ["vip-waiting"]}},
        },
    )
