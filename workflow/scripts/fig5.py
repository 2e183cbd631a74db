"""Rule fig5: MNIST reconstructions by F-MNIST AEs across K and TP/FP at a fixed FN rate (paper Fig. 5)."""

from pae.files.io import redirect_output
from pae.stages.figures import run_fig5

with redirect_output(snakemake.log[0]):
    p = snakemake.params
    ks = [int(k) for k in p.ks]
    n_seeds = len(p.seeds)
    recon, density = list(snakemake.input.recon), list(snakemake.input.density)
    run_fig5(
        ae_paths=dict(zip(ks, snakemake.input.ae, strict=True)),
        recon_files={K: recon[i * n_seeds : (i + 1) * n_seeds] for i, K in enumerate(ks)},
        density_files={K: density[i * n_seeds : (i + 1) * n_seeds] for i, K in enumerate(ks)},
        ood_path=snakemake.input.ood,
        out_stem=snakemake.params.stem,
        fn_rate=p.fn_rate,
        scale=p.scale,
        n_images=p.n_images,
        device=p.device,
        threads=snakemake.threads,
        ood=p.ood,
        labels=tuple(p.labels),
    )
