"""The lists that rules, stages, tables and the API share, each defined once."""

from __future__ import annotations

IN_SET = "test"  # the in-distribution images of every score file: the test split of the training dataset
# (the OoD sets themselves are config ood.sets: pae.stages.rules.ood_sets)

# The generative models of Table 1 and Fig. 2, with their row labels; `recon` stands for the AE's test
# reconstructions wherever samples of a model are drawn (rule sample_model).
MODELS: tuple[str, ...] = ("ae", "vae", "betavae", "pae")
MODEL_LABELS: dict[str, str] = {"ae": "AE", "vae": "VAE", "betavae": "β-VAE", "pae": "PAE"}
SAMPLE_KINDS: tuple[str, ...] = (*MODELS, "recon")
