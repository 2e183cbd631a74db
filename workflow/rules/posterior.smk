"""Rules of the posterior stage: denoising and inpainting with uncertainty (paper Sec. 2.3, 4.2, Fig. 6).

One `posterior` job per corruption (posterior.run) and space: u = the paper's posterior in the flow's latent
space (Eq. 13-14), z = the original code's N(0, I) prior on the AE latent (no flow). They use the AE + flow of
posterior.dataset at K = posterior.K, first seed, and the first posterior.n_images test images. Class
consistency needs the dataset's CNN classifier (rule train_classifier, workflow/rules/fid.smk).
"""

import pae.stages.rules as pae_rules

POST_CFG = S.posterior
POST_RUN = RUN.format(dataset=POST_CFG.dataset, K=POST_CFG.K, seed=SEEDS[0])
POSTERIOR_NPZ = f"{RUN}/posterior/{{corruption}}_{{space}}.npz"
POST_SPACES = ["u", "z"]
POST_SETTINGS = as_param(POST_CFG.search)  # Eq. 9-14: starts, Adam stages, annealing, merging, samples
for _key, _names in (
    ("posterior.run", POST_CFG.run),
    ("posterior.fig6_examples", [e["corruption"] for e in POST_CFG.fig6_examples]),
):
    _unknown = [c for c in _names if c not in POST_CFG.corruptions]
    if _unknown:
        raise ValueError(
            f"config key {_key} names {_unknown}, which posterior.corruptions does not define "
            f"(defined: {sorted(POST_CFG.corruptions)})"
        )


POST_FILE = {  # (corruption, space) → posterior file of the analysed run (first seed)
    (c, sp): POSTERIOR_NPZ.format(
        dataset=POST_CFG.dataset,
        K=POST_CFG.K,
        seed=SEEDS[0],
        corruption=c,
        space=sp,
    )
    for c in POST_CFG.corruptions
    for sp in POST_SPACES
}


rule posterior:
    """MAP from random + encoder starts, exact Hessians, Laplace-mixture posterior and samples for one
    corruption of the first posterior.n_images test images, in the u (flow) or z (N(0, I)) latent space.
    """
    input:
        unpack(
            lambda wc: pae_rules.posterior_rule_inputs(
                RUN.format(**wc), PROCESSED, wc.dataset, wc.space
            )
        ),
    output:
        POSTERIOR_NPZ,
    log:
        f"{LOGS}/posterior/{{dataset}}_K{{K}}_seed{{seed}}_{{corruption}}_{{space}}.log",
    benchmark:
        f"{BENCH}/posterior/{{dataset}}_K{{K}}_seed{{seed}}_{{corruption}}_{{space}}.tsv"
    wildcard_constraints:
        corruption="|".join(sorted(POST_CFG.corruptions, key=len, reverse=True)),
        space="u|z",
    conda:
        ENV
    threads: S.posterior.threads
    resources:
        mem_mb=6000,
        runtime=pae_rules.posterior_runtime(POST_CFG.n_images, POST_SETTINGS),
    params:
        corruption=lambda wc: POST_CFG.corruptions[wc.corruption],
        settings=POST_SETTINGS,
        n_images=POST_CFG.n_images,
        seed=POST_CFG.seed,
        sigma_floor=POST_CFG.sigma_floor,
        scale=S.data.scale,
        device=S.device,
    script:
        "../scripts/posterior.py"


rule posterior_metrics:
    """PSNR / SSIM of MAP and posterior mean, credible-interval coverage, class consistency and modes per
    corruption for the u-space posterior and the two baselines (z-space N(0, I), plain AE).
    """
    input:
        posterior=[POST_FILE[c, s] for c in POST_CFG.run for s in POST_SPACES],
        ae=f"{POST_RUN}/ae.pt",
        stats=f"{POST_RUN}/ae_stats.npz",
        classifier=classifier_of(POST_CFG.dataset),
    output:
        csv=report(
            f"{OUT}/posterior_metrics.csv",
            caption="../report/posterior_metrics.rst",
            category="Sec. 4.2 Denoising and inpainting",
            labels={"result": "posterior metrics", "format": "CSV"},
        ),
        md=f"{OUT}/posterior_metrics.md",
    log:
        f"{LOGS}/posterior_metrics.log",
    benchmark:
        f"{BENCH}/posterior_metrics.tsv"
    conda:
        ENV
    threads: S.posterior.threads
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        corruptions=POST_CFG.run,
        spaces=POST_SPACES,
        sigma_floor=POST_CFG.sigma_floor,
        scale=S.data.scale,
        device=S.device,
    script:
        "../scripts/posterior_metrics.py"


FIG6_CORRUPTIONS = list(
    dict.fromkeys(e["corruption"] for e in POST_CFG.fig6_examples)
)


rule make_fig6:
    """Fig. 6: corrupted inputs (mask grey), MAP reconstructions and truths; the 2-D marginal of two latents
    of the first masked example's posterior; its posterior samples without and with the mask.
    """
    input:
        posterior=[POST_FILE[c, POST_CFG.space] for c in FIG6_CORRUPTIONS],
        ae=f"{POST_RUN}/ae.pt",
    output:
        png=report(
            f"{OUT}/figures/fig6.png",
            caption="../report/fig6.rst",
            category="Sec. 4.2 Denoising and inpainting",
            labels={"result": "Fig. 6", "format": "PNG"},
        ),
        pdf=f"{OUT}/figures/fig6.pdf",
    log:
        f"{LOGS}/fig6.log",
    benchmark:
        f"{BENCH}/fig6.tsv"
    conda:
        ENV
    threads: S.posterior.threads
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        stem=lambda wc, output: os.path.splitext(output.png)[0],
        examples=POST_CFG.fig6_examples,
        corruptions=FIG6_CORRUPTIONS,
        seed=POST_CFG.seed,
        device=S.device,
    script:
        "../scripts/fig6.py"
