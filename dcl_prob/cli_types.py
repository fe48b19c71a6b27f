"""Argument types shared by the ``dcl`` sub-commands.

Each converts the text of one command-line value and raises
``argparse.ArgumentTypeError`` with the value and the rule it breaks, which
argparse prints as a usage error (exit status 2).
"""

from __future__ import annotations

import argparse

__all__ = ["positive_float", "positive_int"]


def positive_float(text: str) -> float:
    """Return ``text`` as a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(
            f"{text} is invalid: it must be finite and > 0"
        )
    return value


def positive_int(text: str) -> int:
    """Return ``text`` as an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is invalid: it must be >= 1")
    return value
