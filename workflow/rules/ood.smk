"""Rules of the out-of-distribution stage: scores, Table 2 (paper Sec. 2.2, 4.2).

Scores come in three parts per run (see pae.ood): `recon` needs only the AE; `density` (log p(z) and
Eq. 12 at the encoder mean) also the flow and ae_stats.npz; `map` (Eq. 12 after the Eq. 9 MAP
refinement, the costly one) the same. Table 2 asks for each part only at the K its rows use.
"""

import pae.ood

OOD_DATASET = "fmnist"  # Table 2 and Fig. 5: models trained on F-MNIST
OOD_CFG = config["ood"]
OOD_SCORES = f"{RUN}/ood_scores_{{part}}.npz"


rule ood_scores:
    """Per-image OoD scores (higher = more in-distribution) of one run on its test split and the four
    OoD sets: part recon (−SSE), density (log p(z) and Eq. 12) or map (Eq. 12 at the Eq. 9 MAP).
    """
    input:
        unpack(
            lambda wc: pae.ood.score_rule_inputs(
                RUN.format(**wc),
                PROCESSED,
                wc.dataset,
                wc.part,
                OOD_CFG["recon_sigma"],
            )
        ),
    output:
        OOD_SCORES,
    log:
        f"{LOGS}/ood_scores/{{dataset}}_K{{K}}_seed{{seed}}_{{part}}.log",
    benchmark:
        f"{BENCH}/ood_scores/{{dataset}}_K{{K}}_seed{{seed}}_{{part}}.tsv"
    wildcard_constraints:
        part="recon|density|map",
    conda:
        ENV
    threads: config["threads"]["eval"]
    resources:
        mem_mb=4000,
        runtime=lambda wc: pae.ood.score_rule_runtime(wc.part, OOD_CFG),
    params:
        settings=lambda wc: pae.ood.score_rule_settings(
            wc.part, OOD_CFG, config["data"]["scale"]
        ),
        device=config["device"],
    script:
        "../scripts/ood_scores.py"


# Table 2 rows (score keys; labels in pae.ood.TABLE2_LABELS) → (score-file part, K).
# No MAP file at all when ood.map_steps is 0: that row is then marked "not run".
TABLE2_ROWS = {
    "density": ("density", OOD_CFG["density_K"]),
    "recon": ("recon", OOD_CFG["recon_K"]),
    "eq12": ("density", OOD_CFG["eq12_K"]),
    "eq12_map": ("map", OOD_CFG["eq12_K"]),
}
TABLE2_INPUT = {
    row: [
        OOD_SCORES.format(dataset=OOD_DATASET, K=K, seed=s, part=part)
        for s in SEEDS
        if not (part == "map" and OOD_CFG["map_steps"] == 0)
    ]
    for row, (part, K) in TABLE2_ROWS.items()
}


rule make_table2:
    """Table 2: AUROC of each score (rows) for each OoD set (columns), mean ± std over seeds, with the
    paper's values beside ours and the baselines it quotes in a separate block."""
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
        ks={row: K for row, (_, K) in TABLE2_ROWS.items()},
        settings={
            k: OOD_CFG[k] for k in ("recon_sigma", "map_steps", "map_lr", "map_count")
        }
        | {"scale": config["data"]["scale"]},
    script:
        "../scripts/table2.py"
