import json
import sys
import textwrap

import pytest
from click.testing import CliRunner

from retention_plugin import hookimpl
from retention_plugin.cli import cli
from retention_plugin.plugins import DEFAULT_PLUGINS, PluginLoadError, builtin_name, make_plugin_manager


def test_builtins_register_as_ordinary_plugins():
    pm = make_plugin_manager(entry_points=False)
    names = {name for name, _ in pm.list_name_plugin()}
    present = {builtin_name(m) for m in DEFAULT_PLUGINS if __import__("importlib").util.find_spec(m)}
    assert present and present <= names


def test_a_builtin_can_be_disabled_by_name():
    first = builtin_name(DEFAULT_PLUGINS[0])
    pm = make_plugin_manager(disabled=[first], entry_points=False)
    assert not pm.has_plugin(first)


def test_unknown_disabled_name_is_an_error():
    with pytest.raises(PluginLoadError, match="loyality"):
        make_plugin_manager(disabled=["loyality"], entry_points=False)


def test_local_hook_directory_is_loaded(tmp_path):
    (tmp_path / "shout.py").write_text(textwrap.dedent("""
        from retention_plugin import hookimpl

        @hookimpl
        def customer_facts(customer_id, ctx):
            return {"shout": {"id": customer_id}}
    """))
    pm = make_plugin_manager(dirs=[tmp_path], entry_points=False)
    assert pm.has_plugin("shout")
    only = pm.subset_hook_caller("customer_facts", [p for n, p in pm.list_name_plugin() if n != "shout"])
    assert only(customer_id=7, ctx=None) == [{"shout": {"id": 7}}]


def test_a_hook_that_does_not_exist_is_rejected(tmp_path):
    (tmp_path / "typo.py").write_text(
        "from retention_plugin import hookimpl\n\n@hookimpl\ndef order_payed(event, ctx):\n    pass\n")
    with pytest.raises(PluginLoadError, match="order_payed"):
        make_plugin_manager(dirs=[tmp_path], entry_points=False)


def test_entry_point_plugins_are_discovered(tmp_path, monkeypatch):
    # A real installed distribution, as pip would leave it: dist-info with entry_points.txt.
    dist = tmp_path / "retention_extra-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: retention-extra\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[retention_plugin]\nextra = retention_extra_mod\n")
    (tmp_path / "retention_extra_mod.py").write_text(
        "from retention_plugin import hookimpl\n\n@hookimpl\ndef register_message_kinds(register):\n"
        "    register('birthday', 'marketing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = make_plugin_manager()
    assert pm.has_plugin("extra")
    got = []
    pm.hook.register_message_kinds(register=lambda *a: got.append(a))
    assert ("birthday", "marketing") in got
    sys.modules.pop("retention_extra_mod", None)


def test_plugins_command_lists_source_and_hooks(tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "mine.py").write_text(
        "from retention_plugin import hookimpl\n\n@hookimpl\ndef ticket_created(event, ctx):\n    pass\n")
    p = tmp_path / "retention.toml"
    p.write_text('[plugins]\ndirs = ["hooks"]\n')
    result = CliRunner().invoke(cli, ["--config", str(p), "plugins", "--json"])
    assert result.exit_code == 0, result.output
    info = {x["name"]: x for x in json.loads(result.output)}
    assert info["mine"]["hooks"] == ["ticket_created"]
    assert info["mine"]["source"].startswith("file ")
    assert any(x["source"] == "builtin" for x in info.values())


class Inline:
    """Plugins can be plain objects registered in code (tests, embedding apps)."""

    @hookimpl
    def customer_facts(self, customer_id, ctx):
        return {"inline": True}


def test_inline_plugin_objects_register():
    inline = Inline()
    pm = make_plugin_manager(entry_points=False, extra=[inline])
    only = pm.subset_hook_caller("customer_facts", [p for _, p in pm.list_name_plugin() if p is not inline])
    assert only(customer_id=1, ctx=None) == [{"inline": True}]
