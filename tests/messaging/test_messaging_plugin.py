"""The built-in messaging plugin registers through the same hooks a third-party plugin uses."""

from __future__ import annotations

import click
import pytest

from retention_plugin import hookimpl
from retention_plugin.messaging.kinds import BUILTIN_KINDS, KindRegistry
from retention_plugin.messaging.settings import SECTIONS


def test_kinds_sections_and_commands_are_registered(pm_factory):
    pm = pm_factory()
    kinds = KindRegistry.from_pm(pm)
    assert set(BUILTIN_KINDS) <= set(kinds.names())
    assert kinds.class_of("recall") == "transactional" and kinds.class_of("voucher") == "marketing"

    sections = {}
    pm.hook.register_config_sections(register=lambda name, schema: sections.setdefault(name, schema))
    assert sections == SECTIONS

    cli = click.Group("retention")
    pm.hook.register_commands(cli=cli)
    assert set(cli.commands["messages"].commands) == {"explain", "list", "preview", "retry"}


def test_hook_register_message_kinds(pm_factory):
    """A plugin adds a kind; it may not reclassify a built-in one."""
    class Birthday:
        @hookimpl
        def register_message_kinds(register):
            register("birthday", "marketing")

    assert KindRegistry.from_pm(pm_factory(Birthday)).class_of("birthday") == "marketing"

    class Sneaky:
        @hookimpl
        def register_message_kinds(register):
            register("voucher", "transactional")

    with pytest.raises(ValueError, match="'voucher' registered as both"):
        KindRegistry.from_pm(pm_factory(Sneaky))
    with pytest.raises(ValueError, match="transactional' or 'marketing"):
        KindRegistry([("x", "promo")])


def test_builtin_classes_follow_the_documented_rule():
    transactional = {k for k, v in BUILTIN_KINDS.items() if v.message_class == "transactional"}
    # points_expiry: it is about points the customer holds, so a customer without marketing consent is
    # warned too (issue 13, item 10); quiet hours still apply to it.
    assert transactional == {"thank_you", "delay_apology", "service_reminder", "recall", "reward",
                             "recovery_apology", "points_expiry"}
