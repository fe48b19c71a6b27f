"""Run the benchmark groups, write JSON results and regenerate the docs tables.

Usage::

    python -m benchmarks --quick                 # every group, small settings
    python -m benchmarks --full                  # every group, documented settings
    python -m benchmarks --full --only speed     # one group
    python -m benchmarks --docs-only             # re-render docs from the JSON
    python -m benchmarks --full --device gpu     # the same on a CUDA device
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

GROUPS = ("speed", "scaling", "accuracy")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results"
DEFAULT_DOCS = ROOT / "docs" / "benchmarks.md"

logger = logging.getLogger("benchmarks")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small settings (default)")
    size.add_argument("--full", action="store_true", help="documented settings")
    size.add_argument(
        "--docs-only",
        action="store_true",
        help="only regenerate docs/benchmarks.md from the existing JSON results",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=GROUPS,
        default=list(GROUPS),
        metavar="NAME",
        help=f"groups to run, from {', '.join(GROUPS)} (default: all)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "gpu"),
        default="cpu",
        help="JAX platform to run on; gpu needs a CUDA build of jaxlib",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="directory of the JSON results (default: benchmarks/results)",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=DEFAULT_DOCS,
        help="markdown file whose generated section is replaced",
    )
    parser.add_argument(
        "--no-docs", action="store_true", help="do not touch the markdown file"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace existing JSON results of the same group, mode and device",
    )
    return parser.parse_args(argv)


def result_path(output_dir: Path, group: str, mode: str, backend: str) -> Path:
    return output_dir / f"{group}-{mode}-{backend}.json"


def command_line(args) -> str:
    parts = ["python -m benchmarks", "--full" if args.full else "--quick"]
    if sorted(args.only) != sorted(GROUPS):
        parts += ["--only", *args.only]
    if args.device != "cpu":
        parts += ["--device", args.device]
    return " ".join(parts)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.docs_only:
        from benchmarks.report import update_docs

        update_docs(args.docs, args.output_dir)
        return 0

    mode = "full" if args.full else "quick"
    # The platform must be chosen before JAX starts.
    os.environ["JAX_PLATFORMS"] = "cuda" if args.device == "gpu" else "cpu"
    import jax

    from benchmarks.machine import describe_machine, measure_limits

    backend = jax.default_backend()
    paths = {g: result_path(args.output_dir, g, mode, backend) for g in args.only}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not args.force:
        print(
            f"results {existing} already exist; pass --force to replace them or "
            "--output-dir to write elsewhere",
            file=sys.stderr,
        )
        return 2
    args.output_dir.mkdir(parents=True, exist_ok=True)

    machine = describe_machine()
    logger.info("machine: %s", machine)
    limits = measure_limits(quick=not args.full)
    logger.info("limits: %s", limits)
    header = {
        "command": command_line(args),
        "mode": mode,
        "machine": machine,
        "limits": limits,
    }
    for group in args.only:
        if group == "speed":
            from benchmarks.speed import run_speed

            body = run_speed(mode, limits, logger.info)
        elif group == "scaling":
            from benchmarks.scaling import run_scaling

            body = run_scaling(mode, logger.info)
        else:
            from benchmarks.accuracy import run_accuracy

            body = run_accuracy(mode, logger.info)
        payload = header | {"group": group, "results": body}
        temporary = paths[group].with_name(f".{paths[group].name}.tmp")
        temporary.write_text(json.dumps(payload, indent=1, default=float) + "\n")
        os.replace(temporary, paths[group])
        logger.info("wrote %s", paths[group])

    if not args.no_docs:
        from benchmarks.report import update_docs

        update_docs(args.docs, args.output_dir)
        logger.info("updated %s", args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
