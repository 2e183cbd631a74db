"""Rules of the baselines stage."""


rule train_vae:
    """VAE / β-VAE baseline on the AE's nets and training procedure (paper Sec. 4, Eq. 15), one per entry
    of vae.models; K comes from the path (targets use vae.latent_dim). Resumes from RUN/{vaemodel}.ckpt.
    """
    input:
        data=f"{PROCESSED}/{{dataset}}.npz",
    output:
        model=f"{RUN}/{{vaemodel}}.pt",
        metrics=f"{RUN}/{{vaemodel}}_metrics.json",
    log:
        f"{LOGS}/train_vae/{{dataset}}_K{{K}}_seed{{seed}}_{{vaemodel}}.log",
    benchmark:
        f"{BENCH}/train_vae/{{dataset}}_K{{K}}_seed{{seed}}_{{vaemodel}}.tsv"
    wildcard_constraints:
        vaemodel="|".join(S.vae.models),
    conda:
        ENV
    threads: S.threads.train
    resources:
        mem_mb=train_mem_mb,
        runtime=train_runtime("vae"),
    params:
        net=S.ae.layers,
        objective=lambda wildcards: S.vae.models[wildcards.vaemodel],
        settings=training_params("vae"),
    script:
        "../scripts/train_vae.py"


rule sample_model:
    """samples.count samples of AE (z ~ N(0,I)), VAE/β-VAE (prior), PAE (Eq. 6), or reconstructions of the
    first samples.count test images (recon); stored as uint8 x (N, C, H, W)."""
    input:
        unpack(sample_model_inputs),
    output:
        samples=f"{RUN}/samples/{{model}}.npz",
    log:
        f"{LOGS}/sample_model/{{dataset}}_K{{K}}_seed{{seed}}_{{model}}.log",
    benchmark:
        f"{BENCH}/sample_model/{{dataset}}_K{{K}}_seed{{seed}}_{{model}}.tsv"
    conda:
        ENV
    threads: S.threads.eval
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        n_samples=S.samples.count,
        temperature=lambda wildcards: (
            S.samples.temperature if wildcards.model == "pae" else 1.0
        ),
        scale=S.data.scale,
        device=S.device,
    script:
        "../scripts/sample_model.py"
