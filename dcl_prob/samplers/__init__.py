"""Markov chain Monte Carlo samplers as BlackJAX ``SamplingAlgorithm`` objects.

Each builder returns ``SamplingAlgorithm(init, step)``: ``init(spins)`` makes
the state of one chain from int8 spins of shape ``(L, L)``, and
``step(rng_key, state) -> (state, info)`` advances that chain. Use
``jax.vmap`` over a leading chain axis to run several chains.

- :func:`checkerboard_metropolis`: one step is one Metropolis sweep over both
  sublattices; even ``L`` only.
- :func:`wolff`: one step is one Wolff cluster flip; any ``L >= 2``, zero
  field only.
- :func:`tile_local_metropolis`: one step is one sweep of local Metropolis on
  a learned :class:`~dcl_prob.nn.ednn.ExtensiveEnergy`, computing each flip's
  energy change from the tiles that contain the site.

The name ``dcl_prob.samplers.wolff`` is the builder function, which hides the
submodule of the same name. Its kernel is still importable with
``from dcl_prob.samplers.wolff import build_kernel``.
"""

from dcl_prob.samplers.checkerboard import (
    CheckerboardInfo,
    CheckerboardState,
    checkerboard_metropolis,
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
    "TileLocalInfo",
    "TileLocalState",
    "WolffInfo",
    "WolffState",
    "checkerboard_metropolis",
    "tile_local_metropolis",
    "wolff",
]
