"""Hyperparameters of :func:`dcl_prob.fit.fit` and the checks of its input.

The data decide the kind of site values: Ising spins +-1 (``n_states=2``) or
Potts or clock states ``0 .. q-1`` (``n_states=q > 2``). :func:`check_spins`
rejects values outside these states, and :func:`check_options` rejects options
that do not fit the number of states.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ENERGY_KINDS",
    "FitConfig",
    "check_options",
    "check_spins",
    "config_for_data",
]

# "tiles": one translation-invariant tile network; "bonds": one disordered
# instance with a learned coupling per nearest-neighbour bond.
ENERGY_KINDS = ("tiles", "bonds")
MAX_STATES = 127  # states are stored as int8
MAX_COLOUR_SYMMETRIC_STATES = 5  # q averages over all q! colour permutations


@dataclass(frozen=True)
class FitConfig:
    """Hyperparameters of :func:`fit`.

    Attributes:
        hidden_size: GRU hidden units of q.
        q_position: position encoding of q, ``"boundary"`` (parameters
            independent of L, so q moves to other lattice sizes) or ``"site"``
            (a learned vector per site).
        q_steps: optimisation steps of the maximum-likelihood phase.
        q_learning_rate: peak Adam learning rate of q.
        batch_size: configurations per step.
        q_z2: symmetrise q under the global spin flip (doubles its cost).
        focus: focus block side ``f`` of the energy network.
        context: context border ``c`` of the energy network.
        energy_hidden: hidden widths of the tile perceptron.
        z2: make E symmetric under the global spin flip (no field term);
            for Ising spins only, ignored for ``q > 2`` states.
        energy_steps: optimisation steps of the energy phase.
        energy_learning_rate: peak Adam learning rate of E.
        lv_weight: weight of the log-variance term against the pseudo-likelihood.
            NOTE: with the default 0.1 the demo's energy came out 0.3-0.9 % too
            strong on single flips, most at low T; 0 gave 0.2-0.4 % in one
            comparison on the same data. The best weight is not settled.
        reference_fractions: shares of data, q samples and uniformly random
            configurations in each log-variance batch.
        n_q_samples: size of the pool of q samples used as reference set.
        joint: add a phase that trains q and E together.
        joint_steps: steps of that phase.
        validation_fraction: share of the data held out to monitor q.
        chunk_size: steps per compiled chunk.
        n_states: states per site: 2 for Ising spins +-1, ``q > 2`` for Potts
            or clock states ``0 .. q-1``. None infers ``q`` from the data as
            the largest value plus 1 (2 for data of spins +-1), so a state
            that never occurs in the data is missing from the model.
        energy_kind: ``"tiles"`` for one translation-invariant tile network,
            or ``"bonds"`` for one disordered instance (spin glass): a learned
            coupling per nearest-neighbour bond plus the shared tile
            perceptron, valid only at the lattice size of the data.
            NOTE: the couplings start at 0 and Adam moves each by at most
            about ``energy_learning_rate`` per step, so with the defaults
            (3e-3, 1500 steps) bonds with ``|J| > 2`` stay about 20 % too
            weak on an 8 x 8 Gaussian instance at T0 = 4; 1e-2 recovered
            them (benchmarks/spin_glass_couplings.py).
        colour_symmetric: make E invariant under permutations of the colours
            (``q > 2`` states only).
        q_colour_symmetric: average q over all ``q!`` colour permutations
            (``q`` from 3 to 5 only); multiplies the cost of q by ``q!``.
    """

    hidden_size: int = 64
    q_position: str = "boundary"
    q_steps: int = 1500
    q_learning_rate: float = 3e-3
    batch_size: int = 256
    q_z2: bool = False
    focus: int = 2
    context: int = 1
    energy_hidden: tuple[int, ...] = (32, 64)
    z2: bool = True
    energy_steps: int = 1500
    energy_learning_rate: float = 3e-3
    lv_weight: float = 0.1
    reference_fractions: tuple[float, float, float] = (0.5, 0.4, 0.1)
    n_q_samples: int = 8192
    joint: bool = False
    joint_steps: int = 500
    validation_fraction: float = 0.05
    chunk_size: int = 50
    n_states: int | None = 2
    energy_kind: str = "tiles"
    colour_symmetric: bool = False
    q_colour_symmetric: bool = False

    def to_dict(self) -> dict:
        """Return the fields as a JSON-ready dict (tuples become lists in JSON)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FitConfig:
        """Build a config from ``{field: value}``, such as a model's
        ``config.json``; missing fields take their defaults.

        Raises:
            ValueError: for a name that is not a field, listing the valid ones.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"unknown fit options {unknown}; valid options are {sorted(names)}"
            )
        converted = dict(values)
        for name in ("energy_hidden", "reference_fractions"):
            if name in converted:
                converted[name] = tuple(converted[name])
        return cls(**converted)


def _is_integer(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def check_spins(spins: np.ndarray, n_states: int | None) -> int:
    """Check that ``spins`` hold the states of ``n_states`` and return the number.

    Args:
        spins: integer configurations ``(n, L, L)``.
        n_states: 2 for spins +-1, ``q > 2`` for states ``0 .. q-1``, or None
            to infer it (see :class:`FitConfig`).

    Raises:
        ValueError: for values outside the states, naming the values and the
            option or mapping that fixes them.
    """
    values = np.unique(np.asarray(spins))
    first_values = values[:10].tolist()
    if n_states is None:
        if np.isin(values, (-1, 1)).all():
            return 2
        integers = np.all(values == np.floor(values))
        if values.min() >= 0 and values.max() >= 2 and integers:
            n_states = int(values.max()) + 1
            if n_states > MAX_STATES:
                raise ValueError(
                    f"spins contain the value {int(values.max())}, which is not a "
                    f"Potts state: at most {MAX_STATES} states 0..{MAX_STATES - 1} "
                    "fit into int8"
                )
            return n_states
        raise ValueError(
            f"cannot infer n_states from spins with the values {first_values}: pass "
            "n_states=2 for Ising spins -1/+1 (map 0/1 data with 2 * spins - 1) "
            "or n_states=q for Potts states 0..q-1"
        )
    if not _is_integer(n_states) or not 2 <= n_states <= MAX_STATES:
        raise ValueError(
            f"n_states={n_states!r} is invalid: pass 2 for Ising spins, an integer "
            f"q from 3 to {MAX_STATES} for Potts states, or None to infer it"
        )
    if n_states == 2:
        if np.isin(values, (-1, 1)).all():
            return 2
        hint = ""
        if np.isin(values, (0, 1)).all():
            hint = "; for 0/1 data pass 2 * spins - 1 (or --encoding 01)"
        elif values.min() >= 0:
            hint = (
                f"; for Potts states 0..q-1 pass n_states=q (here at least "
                f"{int(values.max()) + 1})"
            )
        raise ValueError(
            f"spins contain the values {first_values}, which are not Ising spins "
            f"-1/+1{hint}"
        )
    bad = values[(values < 0) | (values >= n_states) | (values != np.floor(values))]
    if bad.size:
        if np.isin(values, (-1, 1)).all():
            hint = "for Ising spins -1/+1 pass n_states=2"
        elif bad.min() >= n_states and np.all(values == np.floor(values)):
            hint = (
                f"pass n_states={int(values.max()) + 1} if the data have that many "
                f"states, or map the states to 0..{n_states - 1}"
            )
        else:
            hint = f"map the states to 0..{n_states - 1}"
        raise ValueError(
            f"spins contain the values {bad[:10].tolist()}, which are not Potts "
            f"states 0..{n_states - 1} (n_states={n_states}); {hint}"
        )
    return int(n_states)


def check_options(config: FitConfig, n_states: int) -> None:
    """Reject options of ``config`` that do not fit ``n_states`` states.

    Raises:
        ValueError: naming the option and the value that fits.
    """
    if config.energy_kind not in ENERGY_KINDS:
        raise ValueError(
            f"energy_kind={config.energy_kind!r} is invalid: use one of "
            f"{list(ENERGY_KINDS)}"
        )
    if config.energy_kind == "bonds" and n_states != 2:
        raise ValueError(
            f"energy_kind='bonds' is invalid for {n_states} states: learned bond "
            "couplings need Ising spins -1/+1; use energy_kind='tiles'"
        )
    if config.energy_kind == "bonds" and config.context < 1:
        raise ValueError(
            f"context={config.context} is invalid with energy_kind='bonds': each "
            "bond must lie inside a tile, so pass context >= 1"
        )
    if n_states == 2:
        for name in ("colour_symmetric", "q_colour_symmetric"):
            if getattr(config, name):
                raise ValueError(
                    f"{name}=True is invalid for Ising spins (n_states=2): colour "
                    "permutations need q > 2 states; use z2 and q_z2 for the "
                    "global spin flip"
                )
        return
    if config.q_z2:
        raise ValueError(
            f"q_z2=True is invalid for {n_states} states: it needs Ising spins; "
            "pass q_colour_symmetric=True for the colour permutations"
        )
    if config.q_colour_symmetric and n_states > MAX_COLOUR_SYMMETRIC_STATES:
        raise ValueError(
            f"q_colour_symmetric=True is invalid for {n_states} states: the "
            f"average over q! permutations is limited to q <= "
            f"{MAX_COLOUR_SYMMETRIC_STATES}; pass q_colour_symmetric=False"
        )


# Energy learning rate of energy_kind="bonds": each learned coupling starts at
# 0 and must travel to |J| ~ 2 (see the NOTE on FitConfig.energy_kind).
BOND_ENERGY_LEARNING_RATE = 1e-2


def config_for_data(attrs: dict, **options) -> FitConfig:
    """Return a :class:`FitConfig` whose model options follow a data set's attributes.

    From ``attrs`` (as :func:`dcl_prob.data.load_dataset` returns them):

    - ``n_states``: ``attrs["q"]`` for the ``"potts"`` encoding, else 2;
    - ``energy_kind``: ``"bonds"`` for ``model="spin-glass"`` (one disordered
      instance), else ``"tiles"``. With bonds the energy learning rate is
      ``BOND_ENERGY_LEARNING_RATE`` and the tile perceptron is left out
      (``energy_hidden=()``), so E is a pair energy with one learned coupling
      per bond. On the 8 x 8 Gaussian instance at T0 = 4 the perceptron fitted
      noise of the 10^4 samples: E - E_true had a spread of 0.045 per spin
      over equilibrium configurations, and transferred energies came out
      6-8 % too low at T = 1 to 3, against 0.5 % without it. The
      log-variance term is left out too (``lv_weight=0``): on the same data
      it made the couplings weaker (least-squares slope against the true
      bonds 0.991-0.996, against 1.001 without it), which moved the energy at
      T = 3 by up to 1.3 %, while the held-out
      log-variance of q against E was the same (0.008 per spin) with or
      without it;
    - ``colour_symmetric``: True for ``model="potts"``, whose energy is
      invariant under every permutation of the colours (the clock model is
      not);
    - ``z2``: False when the data record a field ``h != 0``.

    Every keyword in ``options`` is a :class:`FitConfig` field and wins over
    these choices; a value of None counts as not given.
    """
    options = {name: value for name, value in options.items() if value is not None}
    model = attrs.get("model")
    choices = {}
    if attrs.get("encoding") == "potts" and attrs.get("q") is not None:
        choices["n_states"] = int(attrs["q"])
    if model == "spin-glass":
        choices["energy_kind"] = "bonds"
        choices["energy_learning_rate"] = BOND_ENERGY_LEARNING_RATE
        choices["energy_hidden"] = ()
        choices["lv_weight"] = 0.0
    if model == "potts":
        choices["colour_symmetric"] = True
    if float(attrs.get("h", 0.0) or 0.0) != 0.0:
        choices["z2"] = False
    return FitConfig.from_dict(choices | options)
