"""Rule posterior: Laplace-mixture posterior of corrupted test images in the u or z latent space (Sec. 2.3)."""

from pae.files.gpu_slots import use_own_gpu
from pae.files.io import redirect_output
from pae.stages.posterior import run_posterior

with redirect_output(snakemake.log[0]):
    use_own_gpu(snakemake.resources.get("gpu", 0))  # one GPU per job under --resources gpu=N
    p, wc, inp = snakemake.params, snakemake.wildcards, snakemake.input
    run_posterior(
        ae_path=inp.ae,
        stats_path=inp.stats,
        data_path=inp.data,
        out_path=snakemake.output[0],
        corruption_name=wc.corruption,
        corruption=dict(p.corruption),
        space=wc.space,
        settings=dict(p.settings),
        flow_path=inp.get("flow"),
        n_images=p.n_images,
        seed=p.seed,
        scale=p.scale,
        sigma_floor=p.sigma_floor,
        device=p.device,
        threads=snakemake.threads,
    )
