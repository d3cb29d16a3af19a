"""The commands reach `retention` through the built-in plugin `importers`, like any plugin's commands."""

from __future__ import annotations

import subprocess
import sys

from conftest import base_config
from server_util import write_config
from retention_plugin.plugins import DEFAULT_PLUGINS, make_plugin_manager, plugin_info


def retention(config, *args):
    return subprocess.run([sys.executable, "-m", "retention_plugin", "--config", str(config), *args],
                          capture_output=True, text=True)


def test_the_builtin_plugin_adds_the_groups(sqlite_url, tmp_path):
    assert "retention_plugin.importers.plugin" in DEFAULT_PLUGINS
    info = {p["name"]: p for p in plugin_info(make_plugin_manager(entry_points=False))}
    assert "register_commands" in info["importers"]["hooks"]

    config = write_config(tmp_path / "retention.toml", base_config(sqlite_url))
    out = retention(config, "--help")
    assert out.returncode == 0, out.stderr
    for group in ("import", "shopify", "zendesk"):
        assert f"  {group} " in out.stdout
    out = retention(config, "import", "--help")
    assert all(c in out.stdout for c in ("shopify-csv", "transactions", "zendesk", "shopify"))

    off = write_config(tmp_path / "off.toml", base_config(sqlite_url, plugins={"disabled": ["importers"]}))
    out = retention(off, "import", "--help")
    assert out.returncode == 2 and "No such command 'import'" in out.stderr
