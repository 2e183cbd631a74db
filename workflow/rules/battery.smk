"""Rules of the extended OoD battery (config ood.battery; pae.stages.battery): image sets beyond Table 2's,
generated (noise, constant images) or transformed (inverted, blurred, shifted, rotated) from the datasets the
pipeline has, scored with every Table 2 row (ood.rows) by the same score code as Table 2, into their own table.
"""

import pae.stages.battery as pae_battery

BATTERY = pae_battery.battery_sets(S)
BATTERY_BY_NAME = {s["name"]: s for s in BATTERY}
BATTERY_NAMES = list(BATTERY_BY_NAME)
BATTERY_SCORES = f"{RUN}/battery_scores_{{part}}.npz"
BATTERY_FILES = [f"{OUT}/battery.{ext}" for ext in ["csv", "md"]]


rule build_battery_sets:
    """Every battery set of ood.battery in one job (one import instead of one per set): ood.battery_count
    images each, generated or transformed from its dataset's test split (pae.science.battery), seeded by
    ood.battery_seed and the set's name."""
    input:
        sorted({f"{PROCESSED}/{s['dataset']}.npz" for s in BATTERY}),
    output:
        [f"{PROCESSED}/battery/{name}.npz" for name in BATTERY_NAMES],
    log:
        f"{LOGS}/build_battery_sets.log",
    benchmark:
        f"{BENCH}/build_battery_sets.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        specs=BATTERY,
        sources=[f"{PROCESSED}/{s['dataset']}.npz" for s in BATTERY],
        n_images=S.ood.battery_count,
        seed=S.ood.battery_seed,
    script:
        "../scripts/build_battery_sets.py"


rule battery_scores:
    """Per-image OoD scores of one run on its test split and every battery set, part as in rule ood_scores
    (recon, density, map or vae; same script and settings, the costly parts on at most ood.battery_costly_count
    images per set)."""
    input:
        unpack(
            lambda wc: pae_battery.battery_rule_inputs(
                RUN.format(**wc),
                PROCESSED,
                wc.dataset,
                wc.part,
                OOD_CFG.recon_sigma,
                BATTERY_NAMES,
            )
        ),
    output:
        BATTERY_SCORES,
    log:
        f"{LOGS}/battery_scores/{{dataset}}_K{{K}}_seed{{seed}}_{{part}}.log",
    benchmark:
        f"{BENCH}/battery_scores/{{dataset}}_K{{K}}_seed{{seed}}_{{part}}.tsv"
    wildcard_constraints:
        part="recon|density|map|vae",
    conda:
        ENV
    threads: S.threads.eval
    resources:
        mem_mb=4000,
        runtime=lambda wc: pae_rules.score_rule_runtime(wc.part, OOD_CFG),
    params:
        settings=lambda wc: as_param(S.score_job(wc.part, battery=True)),
        sets=BATTERY_NAMES,
        device=S.device,
    script:
        "../scripts/ood_scores.py"


rule make_battery_table:
    """The battery table: AUROC (AUPR, FPR95 in the CSV) of every row of ood.rows on every battery set, mean ±
    std over seeds, and the mean over the sets."""
    input:
        **pae_rules.table2_inputs(S, BATTERY_SCORES, OOD_DATASET, SEEDS),
    output:
        csv=BATTERY_FILES[0],
        md=BATTERY_FILES[1],
    log:
        f"{LOGS}/make_battery_table.log",
    benchmark:
        f"{BENCH}/make_battery_table.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        rows=list(TABLE2_PLAN),
        ks={row: K for row, (_, K) in TABLE2_PLAN.items()},
        sets=BATTERY,
        in_dataset=OOD_DATASET,
        n_images=S.ood.battery_count,
        subsets={
            k: v
            for k, v in as_param(S.score_job("table2", battery=True)).items()
            if k in ("map_count", "laplace_count", "iwae_count")
        },
    script:
        "../scripts/battery_table.py"
