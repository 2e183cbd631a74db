"""Rules of the summary tables: Table 2 over the seeds of ood.table2_seeds (mean ± std per cell, a target of its
own: `table2_seeds`), and the reconstruction error of the ood.in_dataset AEs against K (pae.stages.summary).
"""

import pae.stages.rules as pae_rules

SEED_STUDY = S.ood.table2_seeds
TABLE2_SEEDS_FILES = [
    f"{OUT}/table2_seeds.{ext}" for ext in ["csv", "md", "provenance.json", "provenance.md"]
]
# every K the quick paper trains an in-distribution AE for: ae.latent_dims and Fig. 5's
RECON_KS = sorted(set(S.ae.latent_dims) | set(S.ood.fig5_K))
RECON_FILES = [f"{OUT}/recon_vs_K.{ext}" for ext in ["csv", "md"]]


rule make_table2_seeds:
    """Table 2 as rule make_table2 (same rows, sets and driver), over the seeds of ood.table2_seeds."""
    input:
        **pae_rules.table2_inputs(S, OOD_SCORES, OOD_DATASET, SEED_STUDY),
    output:
        csv=TABLE2_SEEDS_FILES[0],
        md=TABLE2_SEEDS_FILES[1],
        provenance_json=TABLE2_SEEDS_FILES[2],
        provenance_md=TABLE2_SEEDS_FILES[3],
    log:
        f"{LOGS}/table2_seeds.log",
    benchmark:
        f"{BENCH}/make_table2_seeds.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        rows=list(TABLE2_PLAN),
        ks={row: K for row, (_, K) in TABLE2_PLAN.items()},
        settings=rules.make_table2.params.settings,
        experiment=rules.make_table2.params.experiment,
        provenance=provenance_settings,
    script:
        "../scripts/table2.py"


rule make_recon_table:
    """Reconstruction MSE per pixel of the ood.in_dataset test split against K (every K of ae.latent_dims and
    ood.fig5_K, mean ± std over seeds) beside the original code's converged values."""
    input:
        recon=[
            f"{RUN}/ood_scores_recon.npz".format(dataset=OOD_DATASET, K=K, seed=s)
            for K in RECON_KS
            for s in SEEDS
        ],
        data=f"{PROCESSED}/{OOD_DATASET}.npz",
    output:
        csv=RECON_FILES[0],
        md=RECON_FILES[1],
    log:
        f"{LOGS}/recon_vs_K.log",
    benchmark:
        f"{BENCH}/make_recon_table.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        ks=RECON_KS,
        n_seeds=len(SEEDS),
        dataset=OOD_DATASET,
    script:
        "../scripts/recon_table.py"
