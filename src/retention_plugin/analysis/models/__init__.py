"""Buy-till-you-die purchase models and the Gamma-Gamma spend model.

Each model's module is imported when first named (``from .models import BGNBD``,
:func:`model_class`): BG/NBD needs only numpy, the others import
``scipy.special``, which costs more than a whole BG/NBD fit
(docs/performance.md).
"""

from importlib import import_module

from ._fit import MIN_REPEAT_BUYERS, InsufficientData

#: Command-line name -> (module, class).
_WHERE = {"bgnbd": ("bgnbd", "BGNBD"), "mbgnbd": ("mbgnbd", "MBGNBD"), "pnbd": ("pnbd", "ParetoNBD"),
          "gg": ("gammagamma", "GammaGamma")}
_COUNT = ("bgnbd", "mbgnbd", "pnbd")


def module_of(name: str) -> str:
    """The module that holds the model of a command-line name."""
    return f"{__name__}.{_WHERE[name][0]}"


def model_class(name: str):
    """The model class of a command-line name ("bgnbd", "mbgnbd", "pnbd", "gg"), its module imported."""
    return getattr(import_module(module_of(name)), _WHERE[name][1])


def __getattr__(attr: str):
    # COUNT_MODELS: purchase-count models by command-line name; MODELS: every model by it.
    if attr == "COUNT_MODELS":
        return {k: model_class(k) for k in _COUNT}
    if attr == "MODELS":
        return {k: model_class(k) for k in _WHERE}
    for name, (_, cls) in _WHERE.items():
        if cls == attr:
            return model_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


__all__ = ["BGNBD", "MBGNBD", "ParetoNBD", "GammaGamma", "COUNT_MODELS", "MODELS", "InsufficientData",
           "MIN_REPEAT_BUYERS", "model_class", "module_of"]
