"""dcl_prob: distribution-consistent learning of lattice spin models in JAX.

From configurations sampled at one temperature, learn a normalized
autoregressive model q(s) (a NumPyro distribution) and an extensive energy
E(s), and predict observables at other temperatures and lattice sizes.
"""

from dcl_prob.fit import FitConfig, FitResult, fit
from dcl_prob.hamiltonians import (
    ClockModel,
    EdwardsAndersonModel,
    IsingModel,
    IsingNNNModel,
    PottsModel,
)
from dcl_prob.model_io import load_model, save_model
from dcl_prob.nn import AutoregressiveGRU, AutoregressiveSpins
from dcl_prob.nn.ednn import ExtensiveEnergy
from dcl_prob.transfer import transfer

__version__ = "0.1.0"

__all__ = [
    "AutoregressiveGRU",
    "AutoregressiveSpins",
    "ClockModel",
    "EdwardsAndersonModel",
    "ExtensiveEnergy",
    "FitConfig",
    "FitResult",
    "IsingModel",
    "IsingNNNModel",
    "PottsModel",
    "fit",
    "load_model",
    "save_model",
    "transfer",
]
