"""PAE reproduction pipeline (Böhm & Seljak 2020).

download → preprocess → AE → flow on AE latents → VAE / β-VAE → FID and AUROC → tables and figures.

    snakemake --cores 8 results/table2.csv                                  # paper schedule (GPU)
    snakemake --cores 2 table2 --configfile config/quick.yaml               # CPU, < 1 h
    snakemake --profile profiles/slurm results/table2.csv                   # SLURM cluster
"""

import os

from snakemake.utils import min_version

min_version("8.0")


configfile: os.path.join(workflow.basedir, "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/fid.smk"
include: "workflow/rules/ood.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/posterior.smk"
include: "workflow/rules/provenance.smk"


rule all:
    """Every table and figure of the configuration."""
    input:
        TABLE1_FILES,
        TABLE2_FILES,
        FIGURE_FILES,


rule table1:
    """Table 1: FID and reconstruction error of AE, VAE, β-VAE and PAE."""
    input:
        TABLE1_FILES,


rule table2:
    """Table 2: out-of-distribution AUROCs of models trained on F-MNIST."""
    input:
        TABLE2_FILES,


rule figures:
    """Figures 2, 3 and 5."""
    input:
        FIGURE_FILES,


rule fig6:
    """Fig. 6 and posterior_metrics.csv/.md: denoising and inpainting with uncertainty (paper Sec. 2.3, 4.2)."""
    input:
        FIG6_FILES,


rule data:
    """The data stage alone: every preprocessed dataset and OoD set."""
    input:
        DATA_FILES,
