"""Render the JSON results as markdown tables inside docs/benchmarks.md.

Only the text between :data:`BEGIN` and :data:`END` is replaced; the
hand-written sections around it stay. For each group the full results are
shown when present, else the quick ones.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["BEGIN", "END", "render", "update_docs"]

BEGIN = "<!-- begin generated: python -m benchmarks -->"
END = "<!-- end generated -->"
GROUPS = ("accuracy", "speed", "scaling")

# Causes found by profiling, shown under a comparison where dcl_prob is slower.
SLOWER_CAUSES = {
    "sample": (
        "Profiled by timing the parts and reading the compiled HLO (L = 16, "
        "H = 64, 1024 samples): `AutoregressiveGRU.sample` compiles to the same "
        "matrix products per site as a hand-written copy of its loop, but the "
        "copy ran 2.5-3.5 times faster when the per-site gate and logit offsets "
        "(`_position_terms()`, shapes (N, 3H) and (N,)) were compile-time "
        "constants, and exactly as slow when they were computed inside the jit "
        "and scanned over, as `sample` does. The cost is in the element-wise "
        "GRU fusion of the XLA CPU loop body, not in the matrix products or the "
        "column writes of the sampled spins. NetKet's `FastGRUNet1D` keeps the "
        "loop body small (one cell step on cached hidden states). Likelihood "
        "training is not affected: `logits` adds the offsets to all sites at "
        "once before its scan."
    ),
}


def _fmt(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, int) and abs(value) < 1e5:
        return str(value)
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}" if magnitude >= 1 else f"{value:.{digits}f}"


def _load(output_dir: Path, group: str, backend: str) -> dict | None:
    for mode in ("full", "quick"):
        path = output_dir / f"{group}-{mode}-{backend}.json"
        if path.exists():
            return json.loads(path.read_text())
    return None


def _provenance(payload: dict) -> list[str]:
    machine = payload["machine"]
    limits = payload["limits"]
    load = machine.get("load_average_at_start")
    packages = ", ".join(
        f"{name} {version}"
        for name, version in machine["packages"].items()
        if version is not None
    )
    lines = [
        f"Command: `{payload['command']}`, run on {machine['date']}.",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB, {machine['platform']}, Python "
        f"{machine['python']}, JAX backend `{machine['backend']}` "
        f"({', '.join(machine['devices'])}); {packages}.",
        f"Measured limits: float32 matrix multiply "
        f"{limits['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s "
        f"({limits['matmul_size']}^2 `jnp.dot`), copy bandwidth "
        f"{limits['copy_bytes_per_s'] / 1e9:.2f} GB/s (read plus write of "
        f"{limits['copy_bytes'] / 2**20:.0f} MiB).",
    ]
    if load is not None:
        lines.append(
            f"Load average when the run started: {load[0]} (1 min); other jobs "
            "shared the machine, so times are upper bounds."
            if load[0] > 0.5
            else f"Load average when the run started: {load[0]} (1 min)."
        )
    return [" ".join(lines), ""]


def _accuracy(payload: dict) -> list[str]:
    results = payload["results"]
    settings = results["settings"]
    config = results["fit_config"]
    limits = results["convergence_limits"]
    lines = ["### Transfer accuracy", ""] + _provenance(payload)
    lines += [
        f"Trained on {settings['n_samples']} Wolff configurations of the "
        f"{settings['L0']} x {settings['L0']} Ising model at T0 = {settings['T0']} "
        f"(GRU {config['hidden_size']} hidden units, {config['q_steps']} steps; "
        f"energy network focus {config['focus']}, context {config['context']}, "
        f"{config['energy_steps']} steps). Transfer: tile-aware local Metropolis "
        "on exp(-E/T) from an ordered start; chains, recorded and burn-in sweeps "
        f"per L: {settings['transfer']}. Kaufman gives the exact e and c of the "
        "finite torus. The |m| and chi reference is Monte Carlo on the true "
        f"Hamiltonian ({settings['reference_samples']} configurations over "
        f"{settings['reference_chains']} chains per point, Wolff below T = 3.5 "
        "and checkerboard Metropolis from 3.5, thinned by the measured "
        "autocorrelation time). Deviations in sigma combine both error bars. "
        f"A run counts as converged with R-hat <= {limits['rhat_max']} and "
        f"ESS >= {limits['ess_min']}; `no` marks one that is not.",
        "",
        "| L | T | e | e exact | rel. err | c | c exact | rel. err | \\|m\\| "
        "| \\|m\\| ref | dev (sigma) | chi | chi ref | rel. err | R-hat / ESS | "
        "ref R-hat / ESS | converged |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        kaufman = row["reference"]["kaufman"]
        ref = row["reference"]["monte_carlo"]
        cmp = row["comparison"]
        converged = "yes" if cmp["transfer_converged"] else "no"
        converged += " / " + ("yes" if cmp["reference_converged"] else "no")
        lines.append(
            f"| {row['L']} | {row['T']:.3f} | {row['e']:.4f} ± {row['e_err']:.4f} "
            f"| {kaufman['e']:.4f} | {cmp['e_relative_error']:+.4f} "
            f"| {row['c']:.3f} ± {row['c_err']:.3f} | {kaufman['c']:.3f} "
            f"| {cmp['c_relative_error']:+.3f} "
            f"| {row['abs_m']:.4f} ± {row['abs_m_err']:.4f} "
            f"| {ref['abs_m']:.4f} ± {ref['abs_m_err']:.4f} "
            f"| {cmp['abs_m_error']:+.4f} ({cmp['abs_m_error_in_sigma']:+.1f}) "
            f"| {_fmt(row['chi'])} ± {_fmt(row['chi_err'])} "
            f"| {_fmt(ref['chi'])} ± {_fmt(ref['chi_err'])} "
            f"| {cmp['chi_relative_error']:+.3f} "
            f"| {row['rhat_max']:.3f} / {row['ess_min']:.0f} "
            f"| {ref['rhat_max']:.3f} / {ref['ess_min']:.0f} | {converged} |"
        )
    rows = results["rows"]
    worst_e = max(rows, key=lambda r: abs(r["comparison"]["e_relative_error"]))
    worst_m = max(rows, key=lambda r: abs(r["comparison"]["abs_m_error"]))
    unconverged = [
        f"L = {r['L']}, T = {r['T']:g}"
        for r in rows
        if not r["comparison"]["transfer_converged"]
    ]
    lines += [
        "",
        f"Worst relative error of e: {worst_e['comparison']['e_relative_error']:+.4f}"
        f" at L = {worst_e['L']}, T = {worst_e['T']:g}. Worst |m| deviation: "
        f"{worst_m['comparison']['abs_m_error']:+.4f} at L = {worst_m['L']}, "
        f"T = {worst_m['T']:g}.",
        "",
        "Transfer runs that are not converged by the limits above: "
        + ("; ".join(unconverged) if unconverged else "none")
        + ". Their numbers are shown but are not reliable; local Metropolis "
        "decorrelates slowly near T_c and at low T on large lattices.",
        "",
    ]
    if results["paper"]:
        lines += ["Numbers reported by Sprague et al. (2021):", ""]
        lines += [f"- {entry}" for entry in results["paper"]]
    else:
        lines.append(
            "Numbers reported by the original DCL paper (Sprague, Carrasquilla, "
            "Whitelam and Tamblyn, Mach. Learn.: Sci. Technol. 2, 02LT02, 2021): "
            "not available offline. The search tools of this environment found "
            "neither the paper nor its data, so no paper column is shown."
        )
    lines.append("")
    return lines


def _ratio_text(ratio) -> str:
    if ratio is None:
        return "n/a"
    if ratio >= 1:
        return f"{ratio:.2f} x faster"
    return f"{1 / ratio:.2f} x **slower**"


def _speed(payload: dict) -> list[str]:
    results = payload["results"]
    ising, gru, ednn = results["ising"], results["gru"], results["energy_network"]
    lines = ["### Speed against NetKet and against the generic path", ""]
    lines += _provenance(payload)
    peer_ising = ising.get("peer") or {}
    peer_gru = gru.get("peer") or {}
    ours_gru = gru["ours"]
    lines += [
        "Both sides of each row ran in the same process on the same inputs, in "
        "float32, compilation excluded, best of several repeats. The fraction of "
        "the limit is the matrix-multiply FLOP rate (counted from the jaxpr, "
        "scan bodies times their length) over the measured `jnp.dot` rate for "
        "networks, and XLA's bytes accessed per sweep times sweeps per second "
        "over the measured copy bandwidth for the Ising sweeps. The Ising "
        "states of 16 chains at L = 32 fit in the CPU caches, so that fraction "
        "can exceed 1: it compares cache traffic with a copy through main "
        "memory and says only that the sweep is not limited by memory.",
        "",
        "| comparison | dcl_prob | other | dcl_prob vs other | dcl_prob "
        "fraction of limit | other fraction of limit |",
        "|---|---|---|---|---|---|",
        f"| Ising, L = {ising['L']}, {ising['chains']} chains, T = "
        f"{ising['temperature']}: checkerboard Metropolis vs "
        f"{peer_ising.get('name', 'NetKet (not installed)')} on the same log "
        f"density (spin updates/s) | {_fmt(ising['ours_spin_updates_per_s'])} "
        f"| {_fmt(peer_ising.get('spin_updates_per_s'))} "
        f"| {_ratio_text(ising.get('ratio'))} "
        f"| {_fmt(ising['ours_bandwidth_fraction'])} of bandwidth | n/a |",
        f"| GRU likelihood training, L = {gru['L']}, H = {gru['hidden_size']}, "
        f"batch {gru['batch_size']}, Adam (configurations/s) "
        f"| {_fmt(ours_gru['train_configurations_per_s'])} "
        f"| {_fmt(peer_gru.get('train_configurations_per_s'))} "
        f"| {_ratio_text(gru.get('train_ratio'))} "
        f"| {_fmt(ours_gru['train_flops_fraction'])} of matmul "
        f"| {_fmt(peer_gru.get('train_flops_fraction'))} of matmul |",
        f"| GRU exact sampling, {gru['n_samples']} configurations "
        f"(configurations/s) | {_fmt(ours_gru['sample_configurations_per_s'])} "
        f"| {_fmt(peer_gru.get('sample_configurations_per_s'))} "
        f"| {_ratio_text(gru.get('sample_ratio'))} "
        f"| {_fmt(ours_gru['sample_flops_fraction'])} of matmul "
        f"| {_fmt(peer_gru.get('sample_flops_fraction'))} of matmul |",
        f"| Energy network, L = {ednn['L']}, {ednn['chains']} chains: "
        "tile-aware local kernel vs generic `blackjax.rmh` single-site flips "
        f"(sweeps/s) | {_fmt(ednn['tile_local_sweeps_per_s'])} "
        f"| {_fmt(ednn['generic_rmh_sweeps_per_s'])} "
        f"| {_ratio_text(ednn['ratio'])} "
        f"| {_fmt(ednn['tile_local_flops_fraction'])} of matmul "
        f"| {_fmt(ednn['generic_rmh_flops_fraction'])} of matmul |",
        "",
        f"NetKet peer: {peer_gru.get('name', 'not installed')}. NetKet's RNN "
        "counts its output layer (a GRU of width 2) in `layers`, so `layers=2` "
        "has one hidden layer of width H like dcl_prob's GRU. Training uses "
        "`GRUNet1D` and sampling the cached `FastGRUNet1D` with "
        "`ARDirectSampler`, NetKet's fastest exact sampler. Matrix-multiply "
        "FLOPs per training step: dcl_prob "
        f"{_fmt(ours_gru['train_matmul_flops_per_step'])}, NetKet "
        f"{_fmt(peer_gru.get('train_matmul_flops_per_step'))}; per sampled "
        f"configuration: {_fmt(ours_gru['sample_matmul_flops_per_configuration'])}"
        f" and {_fmt(peer_gru.get('sample_matmul_flops_per_configuration'))} "
        "(NetKet's counted from one forward pass). NetKet's Ising sweep has "
        "no bandwidth figure because its sampler is not lowered here.",
        "",
    ]
    for key, label in (("train", "training"), ("sample", "sampling")):
        ratio = gru.get(f"{key}_ratio")
        if ratio is not None and ratio < 1:
            cause = SLOWER_CAUSES.get(key, "not profiled yet.")
            lines += [f"Why dcl_prob is slower at GRU {label}: {cause}", ""]
    if ising.get("ratio") is not None and ising["ratio"] < 1:
        lines += ["dcl_prob's checkerboard sweep is slower than NetKet here.", ""]
    return lines


def _scaling(payload: dict) -> list[str]:
    results = payload["results"]
    lines = ["### Scaling with lattice size and chain count", ""]
    lines += _provenance(payload)
    lines += [
        "Cost per sweep at T = 2.5 from random starts: checkerboard Metropolis "
        "on the true Ising model and the tile-aware kernel on an energy network "
        "of the default architecture (untrained; the cost does not depend on "
        "the weights). ns/site is the time per site update.",
        "",
        "| L | chains | checkerboard s/sweep | ns/site | tile-local s/sweep "
        "| ns/site |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["sweeps_vs_L"] + results["sweeps_vs_chains"]:
        lines.append(
            f"| {row['L']} | {row['chains']} | {_fmt(row['checkerboard_s_per_sweep'])}"
            f" | {_fmt(row['checkerboard_ns_per_site'])} "
            f"| {_fmt(row['tile_local_s_per_sweep'])} "
            f"| {_fmt(row['tile_local_ns_per_site'])} |"
        )
    lines += [
        "",
        "Cost per Adam step on random configurations: GRU likelihood (64 hidden "
        "units, boundary position encoding) and the energy network's "
        "pseudo-likelihood at T0 = 3.",
        "",
        "| L | batch | GRU s/step | us per site and configuration | energy s/step "
        "| us per site and configuration |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["training_vs_L"]:
        lines.append(
            f"| {row['L']} | {row['batch_size']} | {_fmt(row['gru_s_per_step'])} "
            f"| {_fmt(row['gru_us_per_site_and_configuration'])} "
            f"| {_fmt(row['energy_s_per_step'])} "
            f"| {_fmt(row['energy_us_per_site_and_configuration'])} |"
        )
    memory = results["fit_memory"]
    lines += [
        "",
        f"Peak memory of a fit at L = {memory['L']}: "
        f"**{memory['peak_rss_mib'] / 1024:.2f} GiB** resident (child process, "
        f"`{memory['command']}`: {memory['n_samples']} random configurations, "
        f"{memory['steps_per_phase']} steps per phase, batch "
        f"{memory['batch_size']}, {memory['n_q_samples']} q samples, GRU "
        f"{memory['hidden_size']} hidden units; {memory['seconds']:.0f} s). "
        "Where it goes is not yet profiled. The likely main part is the "
        "pseudo-likelihood step of the energy network, which evaluates the "
        "tiles around every site of every configuration in the batch and "
        "keeps those activations for the gradient; that grows as batch size "
        "times L^2, so for large lattices try a smaller `--batch-size`.",
        "",
    ]
    return lines


def render(output_dir: Path) -> str:
    """Return the generated markdown for every group with results."""
    lines = [
        BEGIN,
        "",
        "## Accuracy, speed and scaling (`python -m benchmarks`)",
        "",
        "Generated by `python -m benchmarks --full` (or `--quick`) from the JSON "
        "in `benchmarks/results/`; edit `benchmarks/report.py`, not this "
        "section. `python -m benchmarks --docs-only` re-renders it.",
        "",
    ]
    renderers = {"accuracy": _accuracy, "speed": _speed, "scaling": _scaling}
    for group in GROUPS:
        payload = _load(output_dir, group, "cpu")
        if payload is None:
            lines += [f"### {group.capitalize()}", "", "Not measured yet.", ""]
        else:
            lines += renderers[group](payload)
    gpu = [g for g in GROUPS if _load(output_dir, g, "gpu") is not None]
    lines += ["### GPU", ""]
    if gpu:
        for group in gpu:
            lines += renderers[group](_load(output_dir, group, "gpu"))
    else:
        lines += [
            "Not yet measured on GPU. On a machine with a CUDA build of jaxlib, "
            "`python -m benchmarks --full --device gpu` runs the same "
            "measurements and writes `benchmarks/results/*-gpu.json`, which this "
            "section then shows.",
            "",
        ]
    lines.append(END)
    return "\n".join(lines) + "\n"


def update_docs(docs: Path, output_dir: Path) -> None:
    """Replace the generated section of ``docs``, or append it if it is missing."""
    text = docs.read_text() if docs.exists() else "# Benchmarks\n"
    generated = render(output_dir)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + generated.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + generated
    temporary = docs.with_name(f".{docs.name}.tmp")
    temporary.write_text(text)
    temporary.replace(docs)
