"""Save and load fitted models as a directory of JSON and Equinox leaf files.

A model directory contains ``config.json`` (format version, lattice size,
training temperature, hyperparameters, data attributes and fit metrics) and
``q.eqx`` and ``energy.eqx`` with the network parameters, written by
``equinox.tree_serialise_leaves``. Loading rebuilds the networks from the JSON
config and reads the arrays into them with ``allow_pickle=False`` semantics:
NumPy's ``.npy`` reader refuses object arrays, so no code runs on load.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax

from dcl_prob.fit import FitConfig, FitResult, make_networks
from dcl_prob.nn.ednn import ExtensiveEnergy
from dcl_prob.nn.rnn import AutoregressiveGRU, AutoregressiveSpins

__all__ = ["FORMAT_VERSION", "Checkpointer", "LoadedModel", "load_model", "save_model"]

FORMAT_VERSION = 1
_FILES = ("config.json", "q.eqx", "energy.eqx")


class LoadedModel(NamedTuple):
    """A fitted model read from disk."""

    q_net: AutoregressiveGRU
    energy: ExtensiveEnergy
    temperature: float  # training temperature T0
    L: int  # training lattice size
    config: FitConfig
    data_attrs: dict  # attributes of the training data set
    metrics: dict  # held-out diagnostics of the fit

    def distribution(self) -> AutoregressiveSpins:
        """Return the fitted q as a NumPyro distribution."""
        return AutoregressiveSpins(
            self.q_net,
            z2=self.config.q_z2,
            colour_symmetric=self.config.q_colour_symmetric,
        )


def _json_ready(values: dict) -> dict:
    """Convert NumPy scalars and arrays in attribute dicts to JSON types."""
    ready = {}
    for name, value in values.items():
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, bytes):
            value = value.decode()
        ready[name] = value
    return ready


def save_model(
    path: str | os.PathLike,
    result: FitResult,
    *,
    data_attrs: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a fitted model to the directory ``path`` atomically.

    The files are written to a temporary directory beside ``path`` that is then
    renamed, so an interrupted save never leaves a half-written model.

    Args:
        path: the model directory to create.
        result: the output of :func:`dcl_prob.fit.fit`.
        data_attrs: attributes of the training data set, stored in
            ``config.json`` so that later commands know the model and its
            couplings (for example the Kaufman reference of ``dcl transfer``).
        overwrite: replace an existing directory.

    Returns:
        The path of the written directory.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists; choose another output or pass --force to "
            "replace it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "format_version": FORMAT_VERSION,
        "kind": "dcl_prob model",
        "L": int(result.q_net.L),
        "temperature": float(result.temperature),
        "fit_config": result.config.to_dict(),
        "data_attrs": _json_ready(data_attrs or {}),
        "metrics": result.metrics,
    }
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private (0o700)
    try:
        (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        eqx.tree_serialise_leaves(staging / "q.eqx", result.q_net)
        eqx.tree_serialise_leaves(staging / "energy.eqx", result.energy)
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _mentions_pickle(error: BaseException) -> bool:
    """Return whether ``error`` or an exception it was raised from is NumPy's
    refusal to load a pickled object array."""
    while error is not None:
        if "allow_pickle" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def load_model(path: str | os.PathLike) -> LoadedModel:
    """Read a model directory written by :func:`save_model`.

    Args:
        path: the model directory, with ``config.json``, ``q.eqx`` and
            ``energy.eqx``. Nothing is read with pickle.

    Returns:
        A :class:`LoadedModel` with the networks, the training temperature
        and size, the fit config and the data attributes.

    Raises:
        FileNotFoundError: if the directory or one of its files is missing.
        ValueError: if the config is invalid or does not match the parameters.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"model directory {path} not found; create one with "
            f"`dcl fit DATA -o {path}`"
        )
    missing = [name for name in _FILES if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"model directory {path} is missing {missing}; refit the model with "
            "`dcl fit`"
        )
    try:
        config = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path / 'config.json'} is not valid JSON: {error}") from None
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path / 'config.json'} has format_version="
            f"{config.get('format_version')!r}, this version of dcl_prob reads "
            f"{FORMAT_VERSION}; refit the model with this version"
        )
    try:
        fit_options = dict(config["fit_config"])
        # Models written before q_position existed have per-site parameters.
        fit_options.setdefault("q_position", "site")
        fit_config = FitConfig.from_dict(fit_options)
        L = int(config["L"])
        temperature = float(config["temperature"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path / 'config.json'} is invalid: {error}") from None
    try:
        # The number of states and the energy kind fix the network shapes.
        q_like, energy_like = make_networks(L, fit_config, key=jax.random.key(0))
    except ValueError as error:
        raise ValueError(f"{path / 'config.json'} is invalid: {error}") from None
    try:
        q_net = eqx.tree_deserialise_leaves(path / "q.eqx", q_like)
        energy = eqx.tree_deserialise_leaves(path / "energy.eqx", energy_like)
    except (ValueError, RuntimeError, OSError, EOFError) as error:
        if _mentions_pickle(error):
            raise ValueError(
                f"the parameters in {path} contain a pickled object array, which "
                "is rejected because loading it could run code; refit the model "
                "with `dcl fit`"
            ) from None
        raise ValueError(
            f"the parameters in {path} do not match its config.json ({error}); "
            "the files may be corrupt or from another model"
        ) from None
    return LoadedModel(
        q_net,
        energy,
        temperature,
        L,
        fit_config,
        config.get("data_attrs", {}),
        config.get("metrics", {}),
    )


class Checkpointer:
    """Checkpoints of a running fit in one directory, and resuming from them.

    Every ``every`` steps, and at the end of each phase (``q``, ``energy``,
    ``joint``), ``save`` writes ``<phase>.eqx`` with the phase's networks and
    optimizer state, and ``checkpoint.json`` with the step reached in every
    phase and a fingerprint of the fit (data, temperature, config, seed).
    Each file is replaced atomically, so a run killed at any moment leaves the
    last complete checkpoint.

    Args:
        directory: the checkpoint directory, created if missing.
        every: steps between checkpoints.
        fingerprint: JSON-ready description of the fit; :meth:`check` rejects
            a resume whose fingerprint differs.
    """

    def __init__(self, directory: str | os.PathLike, every: int, fingerprint: dict):
        if every < 1:
            raise ValueError(f"checkpoint interval {every} is invalid: use >= 1 steps")
        self.directory = Path(directory)
        self.every = int(every)
        self.fingerprint = fingerprint

    @property
    def state_path(self) -> Path:
        """Path of ``checkpoint.json``, which records the fingerprint of the fit
        and the step reached in every phase."""
        return self.directory / "checkpoint.json"

    def exists(self) -> bool:
        """Return whether a checkpoint has been written."""
        return self.state_path.is_file()

    def _state(self) -> dict:
        if not self.exists():
            return {"fingerprint": self.fingerprint, "phases": {}}
        try:
            return json.loads(self.state_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{self.state_path} is not valid JSON ({error}); delete "
                f"{self.directory} to start the fit again"
            ) from None

    def check(self) -> None:
        """Raise ``ValueError`` if the saved checkpoint belongs to another fit."""
        saved = self._state().get("fingerprint")
        if saved != self.fingerprint:
            changed = sorted(
                name
                for name in set(saved or {}) | set(self.fingerprint)
                if (saved or {}).get(name) != self.fingerprint.get(name)
            )
            raise ValueError(
                f"the checkpoint in {self.directory} is from a different fit "
                f"(differs in {changed}); rerun with the same data and options, "
                "or pass --force to start over"
            )

    def save(self, phase: str, step: int, model, opt_state, *, last: bool) -> None:
        """Write the phase's model and optimizer state if a checkpoint is due."""
        if step % self.every and not last:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f".{phase}.eqx.tmp"
        eqx.tree_serialise_leaves(temporary, (model, opt_state))
        os.replace(temporary, self.directory / f"{phase}.eqx")
        state = self._state()
        state["fingerprint"] = self.fingerprint
        state["phases"][phase] = {"step": int(step), "finished": bool(last)}
        temporary = self.directory / ".checkpoint.json.tmp"
        temporary.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(temporary, self.state_path)

    def restore(self, phase: str, model, opt_state):
        """Return ``(step, model, opt_state)`` saved for ``phase``, or step 0."""
        entry = self._state()["phases"].get(phase)
        if entry is None:
            return 0, model, opt_state
        try:
            model, opt_state = eqx.tree_deserialise_leaves(
                self.directory / f"{phase}.eqx", (model, opt_state)
            )
        except (ValueError, RuntimeError, OSError, EOFError) as error:
            raise ValueError(
                f"checkpoint {self.directory / (phase + '.eqx')} cannot be read "
                f"({error}); delete {self.directory} to start the fit again"
            ) from None
        return int(entry["step"]), model, opt_state

    def remove(self) -> None:
        """Delete the checkpoint directory after a successful fit."""
        shutil.rmtree(self.directory, ignore_errors=True)
