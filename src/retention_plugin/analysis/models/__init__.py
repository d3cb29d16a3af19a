"""Buy-till-you-die purchase models and the Gamma-Gamma spend model."""

from ._fit import MIN_REPEAT_BUYERS, InsufficientData
from .bgnbd import BGNBD
from .gammagamma import GammaGamma
from .mbgnbd import MBGNBD
from .pnbd import ParetoNBD

#: Purchase-count models by command-line name.
COUNT_MODELS = {"bgnbd": BGNBD, "mbgnbd": MBGNBD, "pnbd": ParetoNBD}
#: Every model by command-line name.
MODELS = {**COUNT_MODELS, "gg": GammaGamma}

__all__ = ["BGNBD", "MBGNBD", "ParetoNBD", "GammaGamma", "COUNT_MODELS", "MODELS", "InsufficientData",
           "MIN_REPEAT_BUYERS"]
