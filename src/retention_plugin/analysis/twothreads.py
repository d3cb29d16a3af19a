"""Two pieces of work at once, for numpy and pyarrow calls that run without the GIL."""

from __future__ import annotations

import threading
from typing import Callable

__all__ = ["run_both"]


def run_both(here: Callable[[], None], there: Callable[[], None], name: str) -> None:
    """Run ``there`` on a helper thread named ``name`` while ``here`` runs on this one.

    Returns once both are done; an exception from either is raised here (this thread's first).
    """
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            there()
        except BaseException as exc:  # noqa: BLE001 - raised again on the calling thread
            errors.append(exc)

    helper = threading.Thread(target=guarded, name=name, daemon=True)
    helper.start()
    try:
        here()
    finally:
        helper.join()
    if errors:
        raise errors[0]
