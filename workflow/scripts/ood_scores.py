"""Rule ood_scores: one part (recon | density | map | vae) of a run's OoD scores (paper Sec. 2.2, Eq. 5, 9,
12; part vae: the VAE baseline's ELBO, Eq. 15 with β = 1, and IWAE bound)."""

from pae.files.io import redirect_output
from pae.settings import ScoreJob
from pae.stages.ood import ScoreFiles, run_ood_scores, run_vae_scores

with redirect_output(snakemake.log[0]):
    inp, wc = snakemake.input, snakemake.wildcards
    files = ScoreFiles(
        in_path=inp.data,
        ood_paths=dict(zip(snakemake.params.sets, inp.ood, strict=True)),
        out_path=snakemake.output[0],
        **{f"{k}_path": inp.get(k) for k in ("ae", "flow", "stats", "vae") if k in inp.keys()},
    )
    run = dict(
        job=ScoreJob(**snakemake.params.settings),
        device=snakemake.params.device,
        threads=snakemake.threads,
        meta={"dataset": wc.dataset, "K": int(wc.K), "seed": int(wc.seed)},
    )
    if wc.part == "vae":
        run_vae_scores(files, seed=int(wc.seed), **run)
    else:
        run_ood_scores(wc.part, files, **run)
