"""Rules of the out-of-distribution stage: scores, Table 2 (paper Sec. 2.2, 4.2).

Scores come in four parts per run (see pae.stages.ood): `recon` needs only the AE; `density` (log p(z) and
Eq. 12 at the encoder mean) also the flow and ae_stats.npz; `map` (Eq. 12 after the Eq. 9 MAP
refinement, costly) the same; `vae` (ELBO and IWAE bound of the plain VAE, costly) only RUN/vae.pt.
Table 2 asks for each part only at the K its rows (ood.rows) use.
"""

import pae.stages.rules as pae_rules

OOD_DATASET = S.ood.in_dataset  # Table 2 and Fig. 5 (paper: fmnist)
OOD_CFG = S.ood
OOD_SCORES = f"{RUN}/ood_scores_{{part}}.npz"


rule ood_scores:
    """Per-image OoD scores (higher = more in-distribution) of one run on its test split and every set
    of ood.sets (only ood.fig5_set where no Table 2 row reads the file: pae.stages.rules.score_sets): part
    recon (−SSE), density (log p(z) and Eq. 12), map (Eq. 12 at the Eq. 9 MAP) or vae (ELBO and IWAE bound
    of the plain VAE).
    """
    input:
        unpack(
            lambda wc: pae_rules.score_rule_inputs(
                RUN.format(**wc),
                PROCESSED,
                wc.dataset,
                wc.part,
                OOD_CFG.recon_sigma,
                pae_rules.score_sets(S, wc.dataset, wc.part, wc.K, OOD_NAMES),
            )
        ),
    output:
        OOD_SCORES,
    log:
        f"{LOGS}/ood_scores/{{dataset}}_K{{K}}_seed{{seed}}_{{part}}.log",
    benchmark:
        f"{BENCH}/ood_scores/{{dataset}}_K{{K}}_seed{{seed}}_{{part}}.tsv"
    wildcard_constraints:
        part="recon|density|map|vae",
    conda:
        ENV
    threads: S.threads.eval
    resources:
        mem_mb=4000,
        runtime=lambda wc: pae_rules.score_rule_runtime(wc.part, OOD_CFG),
    params:
        settings=lambda wc: as_param(S.score_job(wc.part)),
        sets=lambda wc: pae_rules.score_sets(S, wc.dataset, wc.part, wc.K, OOD_NAMES),
        device=S.device,
    script:
        "../scripts/ood_scores.py"


# Table 2 rows of ood.rows (score keys; labels and definitions in pae.stages.ood.TABLE2_ROWS) → (part, K), and
# their score files (one per seed). No MAP file at all when ood.map_steps is 0: that row is "not run".
TABLE2_PLAN = pae_rules.table2_plan(S)
TABLE2_INPUT = pae_rules.table2_inputs(S, OOD_SCORES, OOD_DATASET, SEEDS)


rule make_table2:
    """Table 2: AUROC (and AUPR, FPR at 95 % TPR) of each score of ood.rows (rows) for each OoD set
    (columns), mean ± std over seeds, with the paper's values beside ours and the baselines it quotes in a
    separate block."""
    input:
        **TABLE2_INPUT,
    output:
        csv=report(
            TABLE2_FILES[0],
            caption="../report/table2.rst",
            category="Sec. 4.2 Out-of-distribution detection",
            labels={"result": "Table 2", "format": "CSV"},
        ),
        md=TABLE2_FILES[1],
        provenance_json=TABLE2_FILES[2],
        provenance_md=provenance_md("table2"),
    log:
        f"{LOGS}/table2.log",
    benchmark:
        f"{BENCH}/table2.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        rows=list(TABLE2_PLAN),
        ks={row: K for row, (_, K) in TABLE2_PLAN.items()},
        settings=as_param(S.score_job("table2")),
        experiment=pae_rules.table2_experiment(S),
        provenance=provenance_settings,
    script:
        "../scripts/table2.py"
