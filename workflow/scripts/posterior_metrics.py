"""Rule posterior_metrics: PSNR, SSIM, calibration, class consistency and modes per corruption and method."""

from pae.files.io import redirect_output
from pae.stages.posterior import run_posterior_metrics

with redirect_output(snakemake.log[0]):
    p, inp = snakemake.params, snakemake.input
    files = list(inp.posterior)
    n = len(p.spaces)
    run_posterior_metrics(
        posterior_files={c: dict(zip(p.spaces, files[i * n : (i + 1) * n], strict=True))
                         for i, c in enumerate(p.corruptions)},
        ae_path=inp.ae,
        stats_path=inp.stats,
        classifier_path=inp.classifier,
        out_csv=snakemake.output.csv,
        out_md=snakemake.output.md,
        scale=p.scale,
        sigma_floor=p.sigma_floor,
        device=p.device,
        threads=snakemake.threads,
    )
