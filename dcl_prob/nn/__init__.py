"""Neural networks: the autoregressive model q(s) and the extensive energy E(s)."""

from dcl_prob.nn.rnn import AutoregressiveGRU, AutoregressiveSpins

__all__ = ["AutoregressiveGRU", "AutoregressiveSpins"]
