"""The lists that rules, stages, tables and the API share, each defined once."""

from __future__ import annotations

# Table 2's outlier sets (paper Sec. 4.2), in column order, with their column labels. The raw files each is
# built from: pae.data.OOD_SOURCES.
OOD_SETS: tuple[str, ...] = ("mnist", "omniglot", "fmnist_hflip", "fmnist_vflip")
OOD_LABELS: dict[str, str] = {"mnist": "MNIST", "omniglot": "OMNIGLOT", "fmnist_hflip": "FMNIST-hflip",
                              "fmnist_vflip": "FMNIST-vflip"}
IN_SET = "test"  # the in-distribution images of every score file: the test split of the training dataset

# The generative models of Table 1 and Fig. 2, with their row labels; `recon` stands for the AE's test
# reconstructions wherever samples of a model are drawn (rule sample_model).
MODELS: tuple[str, ...] = ("ae", "vae", "betavae", "pae")
MODEL_LABELS: dict[str, str] = {"ae": "AE", "vae": "VAE", "betavae": "β-VAE", "pae": "PAE"}
SAMPLE_KINDS: tuple[str, ...] = (*MODELS, "recon")
