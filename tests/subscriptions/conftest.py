"""Helpers for the subscription tests: config files on the test database and the CLI."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import base_config
from server_util import write_config
from retention_plugin.cli import LazyApp


@pytest.fixture
def config(db_url, tmp_path):
    """The test configuration: [actions].dry_run = true."""
    return write_config(tmp_path / "retention.toml", base_config(db_url))


@pytest.fixture
def live_config(db_url, tmp_path):
    """[actions].dry_run = false: requests are sent."""
    return write_config(tmp_path / "live.toml", base_config(db_url, actions={"dry_run": False}))


def invoke(group, config, *args):
    """Run one of our click groups as the real CLI would (``ctx.obj`` is a LazyApp on the config file)."""
    lazy = LazyApp(str(config))
    try:
        return CliRunner().invoke(group, [str(a) for a in args], obj=lazy)
    finally:
        if lazy._app is not None:
            lazy._app.dispose()
