"""Transferred energy of the 8 x 8 spin glass after a fit with chosen options.

Usage::

    python benchmarks/spin_glass_fit_options.py [--samples N] [--fit-seed K]
        [--options JSON]

The data are those of ``dcl demo --model spin-glass --seed 0`` with
``--samples`` configurations: ``EdwardsAndersonModel.random(8,
distribution="gaussian", seed=0)`` at T0 = 4, simulated with the demo's data
key. The fit takes the options that ``dcl fit`` derives from the data
(``config_for_data``), overridden by the JSON object ``--options`` (for
example ``'{"lv_weight": 0.1}'``), and the key ``jax.random.key(fit_seed)``.
The script prints the least-squares slope, sign agreement and correlation of
the effective couplings against the true bonds, and the energy per spin
transferred with replica exchange to T = 1, 2, 3 (16 ladders, 2000 sweeps)
beside the stored parallel-tempering reference
``tests/data/spin_glass_8x8_seed0.json``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from dcl_prob.evaluation import effective_pair_couplings
from dcl_prob.fit import fit
from dcl_prob.fit_config import config_for_data
from dcl_prob.montecarlo import simulate
from dcl_prob.spin_glass import EdwardsAndersonModel
from dcl_prob.transfer import transfer

L = 8
T0 = 4.0
REFERENCE = Path(__file__).parents[1] / "tests/data/spin_glass_8x8_seed0.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10000, help="configurations")
    parser.add_argument("--fit-seed", type=int, default=1, help="PRNG seed of fit")
    parser.add_argument("--options", default="{}", help="FitConfig options (JSON)")
    args = parser.parse_args()

    model = EdwardsAndersonModel.random(L, distribution="gaussian", seed=0)
    key_data = jax.random.split(jax.random.key(0), 4)[0]  # the demo's data key
    data = simulate(model, L, T0, args.samples, key=key_data, progress=False)
    attrs = data.dataset_attrs(model, seed=0)
    config = config_for_data(attrs, **json.loads(args.options))

    start = time.perf_counter()
    result = fit(
        data.spins, T0, key=jax.random.key(args.fit_seed), config=config, progress=False
    )
    fit_seconds = time.perf_counter() - start

    true = np.asarray(model.bonds, np.float64)
    couplings = effective_pair_couplings(result.energy, data.spins[:2000])
    rows = transfer(
        result.energy,
        [1.0, 2.0, 3.0],
        L,
        key=jax.random.key(2),
        n_chains=16,
        order_parameter="overlap",
        exchange=True,
        progress=False,
    )
    reference = json.loads(REFERENCE.read_text())["rows"]
    report = {
        "command": " ".join(["python"] + sys.argv),
        "options": json.loads(args.options),
        "fit_seconds": round(fit_seconds, 1),
        "slope": float(np.sum(couplings * true) / np.sum(true * true)),
        "sign_agreement": float(np.mean(np.sign(couplings) == np.sign(true))),
        "correlation": float(np.corrcoef(couplings.ravel(), true.ravel())[0, 1]),
        "rows": [
            {
                "T": row["T"],
                "e": [row["e"], row["e_err"]],
                "e_reference": ref["e"],
                "relative_error": (row["e"] - ref["e"]) / abs(ref["e"]),
            }
            for row, ref in zip(rows, reference)
        ],
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
