"""Rule ood_scores: one part (recon | density | map | vae) of a run's OoD scores (paper Sec. 2.2, Eq. 5, 9,
12; part vae: the VAE baseline's ELBO, Eq. 15 with β = 1, and IWAE bound)."""

from pae.files.io import redirect_output
from pae.stages.ood import run_ood_scores, run_vae_scores

with redirect_output(snakemake.log[0]):
    inp, wc, settings = snakemake.input, snakemake.wildcards, dict(snakemake.params.settings)
    common = dict(
        in_path=inp.data,
        ood_paths=dict(zip(snakemake.params.sets, inp.ood, strict=True)),
        out_path=snakemake.output[0],
        scale=settings["scale"],
        batch_size=settings["batch_size"],
        device=snakemake.params.device,
        threads=snakemake.threads,
        meta={"dataset": wc.dataset, "K": int(wc.K), "seed": int(wc.seed)},
    )
    if wc.part == "vae":
        run_vae_scores(
            vae_path=inp.vae,
            sigma=settings["sigma"],
            iwae_samples=settings["iwae_samples"],
            iwae_count=settings.get("iwae_count"),
            seed=int(wc.seed),
            **common,
        )
    else:
        run_ood_scores(
            part=wc.part,
            ae_path=inp.ae,
            flow_path=inp.get("flow"),
            stats_path=inp.get("stats"),
            recon_sigma=settings.get("recon_sigma", "unweighted"),
            map_steps=settings.get("map_steps", 0),
            map_lr=settings.get("map_lr", 0.01),
            map_count=settings.get("map_count"),
            laplace_count=settings.get("laplace_count"),
            **common,
        )
