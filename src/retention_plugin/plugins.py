"""The plugin manager: built-ins, installed packages, and local hook modules.

Built-in features register exactly as a third-party plugin does, from
``DEFAULT_PLUGINS``; ``[plugins].disabled`` switches any of them off by name.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from typing import Iterable

import pluggy

from . import hookspecs

GROUP = "retention_plugin"

#: Modules registered by default. The plugin's name is the last dotted part.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "retention_plugin.messaging.plugin",
    "retention_plugin.features.loyalty",
    "retention_plugin.features.offers",
    "retention_plugin.links",
    "retention_plugin.features.followups",
    "retention_plugin.features.delays",
    "retention_plugin.features.reminders",
    "retention_plugin.features.recalls",
    "retention_plugin.features.recovery",
    "retention_plugin.features.winback",
    "retention_plugin.features.storefront",
    "retention_plugin.features.referrals",
    "retention_plugin.importers.plugin",
    "retention_plugin.install",
    "retention_plugin.console",
)


class PluginLoadError(Exception):
    pass


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, also remembering where each plugin came from (``retention plugins`` shows it)."""

    retention_sources: dict[str, str]


def builtin_name(module: str) -> str:
    """``retention_plugin.features.loyalty`` -> ``loyalty``; ``...messaging.plugin`` -> ``messaging``."""
    parts = module.split(".")
    return parts[-2] if parts[-1] == "plugin" else parts[-1]


def make_plugin_manager(
    *,
    disabled: Iterable[str] = (),
    dirs: Iterable[Path] = (),
    entry_points: bool = True,
    extra: Iterable[object] = (),
) -> PluginManager:
    """Build the manager: hookspecs, then built-ins, entry points and local modules.

    ``extra`` registers objects directly (tests, embedding applications).
    Unknown names in ``disabled`` raise, so a typo doesn't silently leave a
    feature on.
    """
    pm = PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    disabled = set(disabled)
    seen: set[str] = set()
    sources: dict[str, str] = {}

    for mod in DEFAULT_PLUGINS:
        name = builtin_name(mod)
        seen.add(name)
        if name in disabled:
            continue
        pm.register(importlib.import_module(mod), name=name)
        sources[name] = "builtin"

    if entry_points:
        for ep in importlib.metadata.entry_points(group=GROUP):
            seen.add(ep.name)
            if ep.name in disabled or pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as e:  # a broken third-party package must say which one
                raise PluginLoadError(f"plugin {ep.name!r} (entry point {ep.value}) failed to load: {e}") from e
            pm.register(plugin, name=ep.name)
            dist = getattr(ep, "dist", None)
            sources[ep.name] = f"entry point {ep.value}" + (f" ({dist.name} {dist.version})" if dist else "")

    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise PluginLoadError(f"plugin directory {d} does not exist")
        for path in sorted(d.glob("*.py")):
            if path.name.startswith("_"):
                continue
            name = path.stem
            seen.add(name)
            if name in disabled:
                continue
            if pm.has_plugin(name):
                raise PluginLoadError(f"{path}: a plugin named {name!r} is already registered; rename the file")
            pm.register(_load_file(path), name=name)
            sources[name] = f"file {path}"

    for obj in extra:
        registered = pm.register(obj)
        if registered is not None:  # pluggy returns None only for a blocked name
            sources[registered] = "registered in code"

    unknown = disabled - seen
    if unknown:
        raise PluginLoadError(
            f"[plugins].disabled names no plugin: {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(seen))})")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        raise PluginLoadError(f"plugin {e.plugin!r} implements a hook that does not exist: {e}") from e
    pm.retention_sources = sources
    return pm


def _load_file(path: Path):
    mod_name = f"retention_plugin_local_{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise PluginLoadError(f"{path}: not importable as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[mod_name]
        raise PluginLoadError(f"{path}: failed to import: {e}") from e
    return module


def plugin_info(pm: pluggy.PluginManager) -> list[dict]:
    sources = getattr(pm, "retention_sources", {})  # a plain pluggy manager (tests) has none
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda p: p[0]):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        out.append({"name": name, "source": sources.get(name, "unknown"), "hooks": hooks})
    return out


def collect(pm: pluggy.PluginManager, hook: str) -> list[tuple]:
    """Call a registry hook and gather what its ``register`` callback received."""
    got: list[tuple] = []

    def register(*args):
        got.append(args)

    getattr(pm.hook, hook)(register=register)
    return got


def vetoed(results: Iterable) -> bool:
    """Veto hooks: any explicit False wins; None means no opinion."""
    return any(r is False for r in results)
