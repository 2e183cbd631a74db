"""Rules of the FID stage: domain classifier, FIDs, Table 1 (paper Sec. 4.1).

Every FID is computed with two feature extractors: the "domain" CNN classifier trained here (for labelled
datasets: pae.stages.rules.has_labels) and
pytorch-fid's Inception (when its weights can be had; otherwise the cells read "unavailable: <reason>").
Where the weights come from is decided once at parse time and passed as a param, so placing the weights
file later reruns exactly the FID jobs.
"""

from pae.files.artifacts import inception_weights_source

FID_CFG = S.fid
FID_DATASET = S.fid.dataset  # Table 1, Fig. 2 and Fig. 3 (paper: F-MNIST)
pae_rules.training_dataset(S, FID_DATASET, "fid.dataset")
INCEPTION_SOURCE = inception_weights_source(
    FID_CFG.inception_weights, FID_CFG.inception_download
)
USE_INCEPTION = not INCEPTION_SOURCE.startswith("unavailable")
CLASSIFIER_DIR = f"{OUT}/{{dataset}}/classifier/seed{{seed}}"
FID_REFERENCE = f"{OUT}/{{dataset}}/fid_reference.npz"


# Everything the FID numbers depend on (a changed value reruns the FID jobs).
FID_SETTINGS = as_param(S.fid_job)
# Minutes for two 10k-image sets: Inception on 2 CPU cores costs ≈ 0.15 s per image (measured on our 2-core machine).
FID_RUNTIME = 30 + (
    int(2 * S.samples.count * 0.15 / 60) if USE_INCEPTION else 0
)


rule train_classifier:
    """Small CNN classifier on the training split (seeded); its penultimate layer gives the domain-FID features."""
    input:
        data=f"{PROCESSED}/{{dataset}}.npz",
    output:
        model=f"{CLASSIFIER_DIR}/classifier.pt",
        metrics=f"{CLASSIFIER_DIR}/classifier_metrics.json",
    log:
        f"{LOGS}/train_classifier/{{dataset}}_seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train_classifier/{{dataset}}_seed{{seed}}.tsv"
    conda:
        ENV
    threads: S.threads.eval
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        epochs=FID_CFG.classifier_epochs,
        scale=S.data.scale,
        device=S.device,
    script:
        "../scripts/train_classifier.py"


rule fid_reference:
    """Feature statistics of the whole test split per extractor (the real set of every FID), plus the FID of
    samples.count training images against it (the floor)."""
    input:
        data=f"{PROCESSED}/{{dataset}}.npz",
        classifier=lambda wc: classifier_of(wc.dataset),
    output:
        FID_REFERENCE,
    log:
        f"{LOGS}/fid_reference/{{dataset}}.log",
    benchmark:
        f"{BENCH}/fid_reference/{{dataset}}.tsv"
    conda:
        ENV
    threads: S.threads.eval
    resources:
        mem_mb=8000,
        runtime=FID_RUNTIME,
    params:
        settings=FID_SETTINGS,
        inception=INCEPTION_SOURCE,
        device=S.device,
    script:
        "../scripts/fid_reference.py"


rule fid_scores:
    """Sample FID and reconstruction FID of one model per extractor, and its test reconstruction errors."""
    input:
        # the network that reconstructs the test split (ae.pt, vae.pt, betavae.pt); the PAE's reconstructions
        # are the AE's: copied from the AE's scores
        unpack(
            lambda wc: (
                {"ae_scores": f"{RUN}/fid/ae.json".format(**wc)}
                if wc.model == "pae"
                else {"network": f"{RUN}/{{model}}.pt".format(**wc)}
            )
        ),
        samples=f"{RUN}/samples/{{model}}.npz",
        data=f"{PROCESSED}/{{dataset}}.npz",
        reference=FID_REFERENCE,
        classifier=lambda wc: classifier_of(wc.dataset),
    output:
        f"{RUN}/fid/{{model}}.json",
    log:
        f"{LOGS}/fid_scores/{{dataset}}_K{{K}}_seed{{seed}}_{{model}}.log",
    benchmark:
        f"{BENCH}/fid_scores/{{dataset}}_K{{K}}_seed{{seed}}_{{model}}.tsv"
    wildcard_constraints:
        model="|".join(MODELS),
    conda:
        ENV
    threads: S.threads.eval
    resources:
        mem_mb=8000,
        runtime=FID_RUNTIME,
    params:
        settings=FID_SETTINGS,
        inception=INCEPTION_SOURCE,
        device=S.device,
    script:
        "../scripts/fid_scores.py"


# Table 1 rows at K = fid.table1_K; the VAE baselines live at K = vae.latent_dim
TABLE1_SCORES = [
    f"{RUN}/fid/{m}.json".format(
        dataset=FID_DATASET,
        K=(
            S.vae.latent_dim
            if m in ("vae", "betavae")
            else FID_CFG.table1_K
        ),
        seed=s,
    )
    for m in MODELS
    for s in SEEDS
]


rule write_table1:
    """Table 1: sample / reconstruction FID per extractor and reconstruction error of AE, VAE, β-VAE and PAE
    (mean ± std over seeds) with the paper's values and the differences."""
    input:
        scores=TABLE1_SCORES,
        reference=FID_REFERENCE.format(dataset=FID_DATASET),
        classifier=[
            c.replace("classifier.pt", "classifier_metrics.json")
            for c in [classifier_of(FID_DATASET)]
            if c
        ],
    output:
        csv=report(
            TABLE1_FILES[0],
            caption="../report/table1.rst",
            category="Sec. 4.1 Sample and reconstruction quality",
            labels={"result": "Table 1", "format": "CSV"},
        ),
        md=TABLE1_FILES[1],
        provenance_json=TABLE1_FILES[2],
        provenance_md=provenance_md("table1"),
    log:
        f"{LOGS}/table1.log",
    benchmark:
        f"{BENCH}/table1.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dataset=FID_DATASET,
        K=FID_CFG.table1_K,
        vae_K=S.vae.latent_dim,
        provenance=provenance_settings,
    script:
        "../scripts/table1.py"
