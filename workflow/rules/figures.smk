"""Rules of the figures stage: Figs. 2 and 3 on fid.dataset, Fig. 5 on ood.in_dataset against ood.fig5_set,
Fig. 4 on fig4.dataset."""

FIG5_K = S.ood.fig5_K
FIG5_SET = OOD_BY_NAME[S.ood.fig5_set]
LABELS = {
    "fmnist": "F-MNIST",
    "mnist": "MNIST",
    "celeba": "CelebA",
    "omniglot": "Omniglot",
}


rule fig5:
    """Fig. 5: images of ood.fig5_set and their reconstructions by the ood.in_dataset AEs at each K of
    ood.fig5_K (first seed); TP/FP ratio at FN = ood.fn_rate for reconstruction error and latent density
    against K (paper: F-MNIST against MNIST)."""
    input:
        ae=[
            f"{RUN}/ae.pt".format(dataset=OOD_DATASET, K=K, seed=SEEDS[0])
            for K in FIG5_K
        ],
        recon=[
            f"{RUN}/ood_scores_recon.npz".format(dataset=OOD_DATASET, K=K, seed=s)
            for K in FIG5_K
            for s in SEEDS
        ],
        density=[
            f"{RUN}/ood_scores_density.npz".format(dataset=OOD_DATASET, K=K, seed=s)
            for K in FIG5_K
            for s in SEEDS
        ],
        ood=f"{PROCESSED}/ood/{FIG5_SET['name']}.npz",
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
    threads: S.threads.eval
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        stem=lambda wc, output: os.path.splitext(output.png)[0],
        ks=FIG5_K,
        seeds=SEEDS,
        fn_rate=S.ood.fn_rate,
        scale=S.data.scale,
        n_images=8,
        ood=FIG5_SET["name"],
        labels=[LABELS.get(OOD_DATASET, OOD_DATASET), FIG5_SET["label"]],
        device=S.device,
    script:
        "../scripts/fig5.py"


FIG_SAMPLES = (
    f"{RUN}/samples/{{model}}.npz"  # Fig. 2 and Fig. 3: fid.dataset, first seed
)
FIG2_PANELS = {  # title → (sample set, K); the VAE baselines live at K = vae.latent_dim
    "AE": ("ae", S.fid.table1_K),
    "VAE": ("vae", S.vae.latent_dim),
    "β-VAE": ("betavae", S.vae.latent_dim),
    "PAE": ("pae", S.fid.table1_K),
    "reconstructions (test)": ("recon", S.fid.table1_K),
}


rule fig2:
    """Fig. 2: samples of AE, VAE, β-VAE and PAE and AE reconstructions of test images at K = fid.table1_K
    (first seed)."""
    input:
        [
            FIG_SAMPLES.format(dataset=FID_DATASET, K=K, seed=SEEDS[0], model=m)
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
    threads: S.threads.eval
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
            FIG_SAMPLES.format(dataset=FID_DATASET, K=K, seed=SEEDS[0], model="pae")
            for K in S.fid.fig3_K
        ],
        scores=[
            f"{RUN}/fid/pae.json".format(dataset=FID_DATASET, K=K, seed=SEEDS[0])
            for K in S.fid.fig3_K
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
    threads: S.threads.eval
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        ks=S.fid.fig3_K,
        n_images=64,
    script:
        "../scripts/fig3.py"


FIG4 = S.fig4
FIG4_RUN = RUN.format(dataset=FIG4.dataset, K=FIG4.K, seed=SEEDS[0])


rule make_fig4:
    """Fig. 4: PAE samples of fig4.dataset at K = fig4.K (first seed) titled with their FIDs, and
    interpolations between validation images through the flow's u and, for comparison, linearly in z.
    """
    input:
        samples=f"{FIG4_RUN}/samples/pae.npz",
        data=f"{PROCESSED}/{FIG4.dataset}.npz",
        ae=f"{FIG4_RUN}/ae.pt",
        flow=f"{FIG4_RUN}/flow.pt",
        fid_pae=f"{FIG4_RUN}/fid/pae.json",
        fid_ae=f"{FIG4_RUN}/fid/ae.json",
    output:
        png=report(
            FIG4_FILES[0],
            caption="../report/fig4.rst",
            category="Sec. 4.1 Sample and reconstruction quality",
            labels={"result": "Fig. 4", "format": "PNG"},
        ),
        pdf=FIG4_FILES[1],
    log:
        f"{LOGS}/fig4.log",
    benchmark:
        f"{BENCH}/fig4.tsv"
    conda:
        ENV
    threads: S.threads.eval
    resources:
        mem_mb=4000,
        runtime=15,
    params:
        stem=lambda wc, output: os.path.splitext(output.png)[0],
        n_samples=FIG4.n_samples,
        n_pairs=FIG4.n_pairs,
        n_steps=FIG4.n_steps,
        scale=S.data.scale,
        device=S.device,
    script:
        "../scripts/fig4.py"
