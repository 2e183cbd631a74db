"""Rule ood_scores: one part (recon | density | map) of a run's OoD scores (paper Sec. 2.2, Eq. 5, 9, 12)."""

from pae.io import redirect_output
from pae.ood import OOD_SETS, run_ood_scores

with redirect_output(snakemake.log[0]):
    inp, wc, settings = snakemake.input, snakemake.wildcards, dict(snakemake.params.settings)
    run_ood_scores(
        part=wc.part,
        ae_path=inp.ae,
        in_path=inp.data,
        ood_paths=dict(zip(OOD_SETS, inp.ood, strict=True)),
        out_path=snakemake.output[0],
        flow_path=inp.get("flow"),
        stats_path=inp.get("stats"),
        scale=settings["scale"],
        recon_sigma=settings.get("recon_sigma", "unweighted"),
        map_steps=settings.get("map_steps", 0),
        map_lr=settings.get("map_lr", 0.01),
        map_count=settings.get("map_count"),
        batch_size=settings["batch_size"],
        device=snakemake.params.device,
        threads=snakemake.threads,
        meta={"dataset": wc.dataset, "K": int(wc.K), "seed": int(wc.seed)},
    )
