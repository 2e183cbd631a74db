"""Probabilistic Auto-Encoder (Böhm & Seljak 2020): the library behind the reproduction pipeline."""

__version__ = "0.1.0"
