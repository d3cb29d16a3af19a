"""hookspecs.py is what plugin authors read: every spec typed and documented, cheap to import.

Also pins the pluggy behaviour docs/hooks.md promises: a parameter added to a hook leaves existing
implementations working.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import types
import typing
from pathlib import Path

import pluggy
import pytest

from retention_plugin import events, hookspecs

SPECS = {name: getattr(hookspecs, name) for name in dir(hookspecs)
         if hasattr(getattr(hookspecs, name), "retention_plugin_spec")}
#: Hooks that get no ``ctx``: registries run before any transaction exists, and the contact policy asks
#: these two at send time and from ``messages explain``, outside any delivery (their docstrings say so).
NO_CTX = {"register_commands", "register_channels", "register_message_kinds", "register_config_sections",
          "register_tasks", "register_routes", "register_admin_operations", "customer_timezone", "contact_allowed",
          "shopify_webhook_metafields"}


def _checked_module() -> types.ModuleType:
    """hookspecs.py executed with TYPE_CHECKING true, so its annotations can be resolved."""
    source = Path(hookspecs.__file__).read_text()
    assert source.count("if TYPE_CHECKING:") == 1
    mod = types.ModuleType("retention_plugin._hookspecs_checked")
    mod.__package__ = "retention_plugin"
    exec(compile(source.replace("if TYPE_CHECKING:", "if True:"), hookspecs.__file__, "exec"), mod.__dict__)
    return mod


def test_every_spec_annotates_every_parameter_and_its_return():
    missing = []
    for name, spec in SPECS.items():
        sig = inspect.signature(spec)
        missing += [f"{name}({p})" for p, param in sig.parameters.items()
                    if param.annotation is inspect.Parameter.empty]
        if sig.return_annotation is inspect.Signature.empty:
            missing.append(f"{name} -> ?")
    assert not missing, f"unannotated: {missing}"


def test_every_annotation_names_a_real_type():
    checked = _checked_module()
    for name in SPECS:
        hints = typing.get_type_hints(getattr(checked, name))
        assert set(hints) == set(inspect.signature(SPECS[name]).parameters) | {"return"}, name


def test_reactions_take_the_event_type_named_after_them():
    checked = _checked_module()
    for event_type in events.EVENT_TYPES:
        hints = typing.get_type_hints(getattr(checked, event_type.name))
        assert hints["event"] is event_type, event_type.name


def test_every_parameter_has_a_param_line():
    missing = []
    for name, spec in SPECS.items():
        doc = inspect.getdoc(spec) or ""
        missing += [f"{name}: {p}" for p in inspect.signature(spec).parameters if f":param {p}:" not in doc]
    assert not missing, f"parameters without a `:param name:` line: {missing}"


def test_firstresult_hooks_say_so():
    for name, spec in SPECS.items():
        opts = spec.retention_plugin_spec
        if opts.get("firstresult"):
            assert "Stops at the first non-None result." in inspect.getdoc(spec), name


def test_every_hook_but_registries_and_policy_callbacks_gets_ctx():
    without = {name for name, spec in SPECS.items() if "ctx" not in inspect.signature(spec).parameters}
    assert without == NO_CTX
    for name in SPECS:
        if name.startswith("register_"):
            assert list(inspect.signature(SPECS[name]).parameters) in (["register"], ["cli"], ["retention"]), name


def test_importing_the_specs_loads_nothing_heavy():
    code = ("import sys, retention_plugin.hookspecs; "
            "print(' '.join(m for m in sys.modules if m.split('.')[0] in "
            "('sqlalchemy', 'click', 'marshmallow', 'numpy', 'retention_plugin')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert sorted(out) == ["retention_plugin", "retention_plugin.hookspecs"]


# --- pluggy: adding a parameter to a spec is backward compatible -----------------------------------


spec = pluggy.HookspecMarker("compat")
impl = pluggy.HookimplMarker("compat")


class Before:
    @spec
    def order_paid(self, event):
        """The spec as a plugin was written against."""


class After:
    @spec
    def order_paid(self, event, ctx):
        """The same spec, one parameter later."""


class OldPlugin:
    @impl
    def order_paid(self, event):
        return ("old", event)


class NewPlugin:
    @impl
    def order_paid(self, event, ctx):
        return ("new", event, ctx)


def test_adding_a_hook_parameter_keeps_old_implementations_working():
    pm = pluggy.PluginManager("compat")
    pm.add_hookspecs(After)
    pm.register(OldPlugin())
    pm.register(NewPlugin())
    assert pm.hook.order_paid(event="e", ctx="c") == [("new", "e", "c"), ("old", "e")]


def test_an_implementation_asking_for_a_parameter_the_spec_lacks_is_refused():
    pm = pluggy.PluginManager("compat")
    pm.add_hookspecs(Before)
    with pytest.raises(pluggy.PluginValidationError, match="ctx"):
        pm.register(NewPlugin())
