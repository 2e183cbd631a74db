"""Rules of the figures stage."""

FIG5_K = config["ood"]["fig5_K"]


rule fig5:
    """Fig. 5: MNIST test images and their reconstructions by the F-MNIST AEs at each K of ood.fig5_K
    (first seed); TP/FP ratio at FN = ood.fn_rate for reconstruction error and latent density against K.
    """
    input:
        ae=[f"{RUN}/ae.pt".format(dataset="fmnist", K=K, seed=SEEDS[0]) for K in FIG5_K],
        recon=[
            f"{RUN}/ood_scores_recon.npz".format(dataset="fmnist", K=K, seed=s)
            for K in FIG5_K
            for s in SEEDS
        ],
        density=[
            f"{RUN}/ood_scores_density.npz".format(dataset="fmnist", K=K, seed=s)
            for K in FIG5_K
            for s in SEEDS
        ],
        mnist=f"{PROCESSED}/ood/mnist.npz",
    output:
        png=report(
            f"{OUT}/figures/fig5.png",
            caption="../report/fig5.rst",
            category="Sec. 4.2 Out-of-distribution detection",
            labels={"result": "Fig. 5", "format": "PNG"},
        ),
        pdf=f"{OUT}/figures/fig5.pdf",
        csv=f"{OUT}/figures/fig5.csv",
    log:
        f"{LOGS}/fig5.log",
    benchmark:
        f"{BENCH}/fig5.tsv"
    conda:
        ENV
    threads: config["threads"]["eval"]
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        stem=lambda wc, output: os.path.splitext(output.png)[0],
        ks=FIG5_K,
        seeds=SEEDS,
        fn_rate=config["ood"]["fn_rate"],
        scale=config["data"]["scale"],
        n_images=8,
        device=config["device"],
    script:
        "../scripts/fig5.py"


FIG_SAMPLES = f"{RUN}/samples/{{model}}.npz"  # Fig. 2 and Fig. 3: F-MNIST, first seed
FIG2_PANELS = {  # title → (sample set, K); the VAE baselines live at K = vae.latent_dim
    "AE": ("ae", config["fid"]["table1_K"]),
    "VAE": ("vae", config["vae"]["latent_dim"]),
    "β-VAE": ("betavae", config["vae"]["latent_dim"]),
    "PAE": ("pae", config["fid"]["table1_K"]),
    "reconstructions (test)": ("recon", config["fid"]["table1_K"]),
}


rule fig2:
    """Fig. 2: samples of AE, VAE, β-VAE and PAE and AE reconstructions of test images at K = fid.table1_K
    (first seed)."""
    input:
        [
            FIG_SAMPLES.format(dataset="fmnist", K=K, seed=SEEDS[0], model=m)
            for m, K in FIG2_PANELS.values()
        ],
    output:
        png=report(
            f"{OUT}/figures/fig2.png",
            caption="../report/fig2.rst",
            category="Sec. 4.1 Sample and reconstruction quality",
            labels={"result": "Fig. 2", "format": "PNG"},
        ),
        pdf=f"{OUT}/figures/fig2.pdf",
    log:
        f"{LOGS}/fig2.log",
    benchmark:
        f"{BENCH}/fig2.tsv"
    conda:
        ENV
    threads: config["threads"]["eval"]
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        titles=list(FIG2_PANELS),
        n_images=64,
    script:
        "../scripts/fig2.py"


rule fig3:
    """Fig. 3: PAE samples at each K of fid.fig3_K (first seed) with their sample FIDs in the titles."""
    input:
        samples=[
            FIG_SAMPLES.format(dataset="fmnist", K=K, seed=SEEDS[0], model="pae")
            for K in config["fid"]["fig3_K"]
        ],
        scores=[
            f"{RUN}/fid/pae.json".format(dataset="fmnist", K=K, seed=SEEDS[0])
            for K in config["fid"]["fig3_K"]
        ],
    output:
        png=report(
            f"{OUT}/figures/fig3.png",
            caption="../report/fig3.rst",
            category="Sec. 4.1 Sample and reconstruction quality",
            labels={"result": "Fig. 3", "format": "PNG"},
        ),
        pdf=f"{OUT}/figures/fig3.pdf",
    log:
        f"{LOGS}/fig3.log",
    benchmark:
        f"{BENCH}/fig3.tsv"
    conda:
        ENV
    threads: config["threads"]["eval"]
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        ks=config["fid"]["fig3_K"],
        n_images=64,
    script:
        "../scripts/fig3.py"
