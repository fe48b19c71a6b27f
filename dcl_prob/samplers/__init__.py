"""Markov chain Monte Carlo samplers as BlackJAX ``SamplingAlgorithm`` objects.

Each builder returns ``SamplingAlgorithm(init, step)``: ``init(spins)`` makes
the state of one chain from int8 spins of shape ``(L, L)``, and
``step(rng_key, state) -> (state, info)`` advances that chain. Use
``jax.vmap`` over a leading chain axis to run several chains.

- :func:`checkerboard_metropolis`, :func:`checkerboard_heat_bath`: one step
  updates every colour class of a proper colouring of the interaction graph
  (two colours for even ``L``, three for odd ``L``; 4 or 9 with diagonal
  bonds). Metropolis is for the Ising model; the heat bath takes every model
  of :mod:`dcl_prob.hamiltonians`.
- :func:`wolff`: one step is one Wolff cluster flip; any ``L >= 2``, zero
  field only.
- :func:`swendsen_wang`: one step is one Swendsen-Wang update of all
  clusters of the ferromagnetic Potts model.
- :func:`single_site_metropolis`: ``blackjax.rmh`` with a one-site flip
  proposal, for any log density; one step is one proposal.
- :func:`tile_local_metropolis`: one step is one sweep of local Metropolis on
  a learned :class:`~dcl_prob.nn.ednn.ExtensiveEnergy`, computing each flip's
  energy change from the tiles that contain the site.
- :func:`replica_exchange`: parallel tempering over a temperature ladder
  around any of the local kernels.
- :func:`neural_imh`: ``blackjax.irmh`` with the autoregressive model as
  independence proposal.
- :func:`importance_sampling` and :func:`smc_log_z`: ``ln Z`` with an error
  bar, from samples of q or by tempered SMC from infinite temperature.

The names ``wolff``, ``swendsen_wang`` and ``replica_exchange`` are builder
functions here, which hide the submodules of the same names. Import from the
submodules directly, for example
``from dcl_prob.samplers.wolff import build_kernel``.
"""

from dcl_prob.samplers.checkerboard import (
    CheckerboardInfo,
    CheckerboardState,
    checkerboard_heat_bath,
    checkerboard_metropolis,
)
from dcl_prob.samplers.neural import (
    ISResult,
    NeuralIMHPosition,
    importance_sampling,
    neural_imh,
)
from dcl_prob.samplers.replica_exchange import (
    ReplicaExchangeInfo,
    ReplicaExchangeState,
    replica_exchange,
)
from dcl_prob.samplers.single_site import SweepInfo, single_site_metropolis
from dcl_prob.samplers.smc import SMCResult, smc_log_z, spin_flip_tempered_smc
from dcl_prob.samplers.swendsen_wang import (
    SwendsenWangInfo,
    SwendsenWangState,
    swendsen_wang,
)
from dcl_prob.samplers.tile_local import (
    TileLocalInfo,
    TileLocalState,
    tile_local_metropolis,
)
from dcl_prob.samplers.wolff import WolffInfo, WolffState, wolff

__all__ = [
    "CheckerboardInfo",
    "CheckerboardState",
    "ISResult",
    "NeuralIMHPosition",
    "ReplicaExchangeInfo",
    "ReplicaExchangeState",
    "SMCResult",
    "SweepInfo",
    "SwendsenWangInfo",
    "SwendsenWangState",
    "TileLocalInfo",
    "TileLocalState",
    "WolffInfo",
    "WolffState",
    "checkerboard_heat_bath",
    "checkerboard_metropolis",
    "importance_sampling",
    "neural_imh",
    "replica_exchange",
    "single_site_metropolis",
    "smc_log_z",
    "spin_flip_tempered_smc",
    "swendsen_wang",
    "tile_local_metropolis",
    "wolff",
]
