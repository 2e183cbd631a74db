"""Probabilistic Auto-Encoder (Böhm & Seljak 2020): the library behind the reproduction pipeline.

Public API (imported lazily, so ``import pae`` stays light and torch loads on first use):

    pae.PAE, pae.VAE, pae.BetaVAE   models with fit / encode / decode / sample / score / save / load
    pae.load(path)                  load any saved model folder (or a workflow run folder)
    pae.as_images(x)                the input check and conversion the models apply
    pae.paper_defaults(section)     the paper's settings (config/config.yaml) the models default to

Command line: ``pae fit | sample | score | fid`` (``python -m pae --help``); see docs/library.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "PAE": "pae.api",
    "VAE": "pae.api",
    "BetaVAE": "pae.api",
    "load": "pae.api",
    "as_images": "pae.api",
    "paper_defaults": "pae.config",
}
__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from pae.api import PAE, VAE, BetaVAE, as_images, load  # noqa: F401
    from pae.config import paper_defaults  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
