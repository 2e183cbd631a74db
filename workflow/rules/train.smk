"""Rules of the train stage."""


rule train_ae:
    """infoGAN auto-encoder on Eq. 2 (paper Sec. 2, 4). Resumes from RUN/ae.ckpt (deliberately not an
    output, so Snakemake never deletes it) after an interruption; the checkpoint is removed at the end.
    """
    input:
        data=f"{PROCESSED}/{{dataset}}.npz",
    output:
        model=f"{RUN}/ae.pt",
        history=f"{RUN}/ae_history.json",
    log:
        f"{LOGS}/train_ae/{{dataset}}_K{{K}}_seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train_ae/{{dataset}}_K{{K}}_seed{{seed}}.tsv"
    conda:
        ENV
    threads: S.threads.train
    resources:
        mem_mb=train_mem_mb,
        runtime=train_runtime("ae"),
    params:
        net=lambda wildcards: S.ae.net(int(wildcards.K)),
        settings=training_params("ae"),
    script:
        "../scripts/train_ae.py"


rule encode_ae:
    """Encoder means of every split, the pixel-wise σ of Eq. 8 on the validation split, and the
    validation / test reconstruction MSE per pixel."""
    input:
        model=f"{RUN}/ae.pt",
        data=f"{PROCESSED}/{{dataset}}.npz",
    output:
        stats=f"{RUN}/ae_stats.npz",
        metrics=f"{RUN}/ae_metrics.json",
    log:
        f"{LOGS}/encode_ae/{{dataset}}_K{{K}}_seed{{seed}}.log",
    benchmark:
        f"{BENCH}/encode_ae/{{dataset}}_K{{K}}_seed{{seed}}.tsv"
    conda:
        ENV
    threads: S.threads.eval
    resources:
        mem_mb=train_mem_mb,
        runtime=60,
    params:
        scale=S.data.scale,
        device=S.device,
    script:
        "../scripts/encode_ae.py"


rule train_flow:
    """Normalizing flow p(z) on the AE latents (paper Sec. 2, Eq. 4-5): RealNVP for K <= flow.realnvp_max_K,
    neural spline flow above. Keeps the best-validation epoch; writes per-epoch history.
    """
    input:
        stats=f"{RUN}/ae_stats.npz",
    output:
        flow=f"{RUN}/flow.pt",
        metrics=f"{RUN}/flow_metrics.json",
        history=f"{RUN}/flow_history.csv",
    log:
        f"{LOGS}/train_flow/{{dataset}}_K{{K}}_seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train_flow/{{dataset}}_K{{K}}_seed{{seed}}.tsv"
    conda:
        ENV
    threads: S.threads.flow
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        arch=flow_params,
        training=as_param(S.flow.training),
        device=S.device,
    script:
        "../scripts/train_flow.py"
