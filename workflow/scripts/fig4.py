"""Rule make_fig4: PAE samples with their FIDs, and interpolations through u and in z (paper Fig. 4)."""

from pae.files.io import redirect_output
from pae.stages.figures import run_fig4

with redirect_output(snakemake.log[0]):
    p, inp = snakemake.params, snakemake.input
    run_fig4(
        samples_path=inp.samples,
        data_path=inp.data,
        ae_path=inp.ae,
        flow_path=inp.flow,
        fid_files={"pae": inp.fid_pae, "ae": inp.fid_ae},
        stem=p.stem,
        n_samples=p.n_samples,
        n_pairs=p.n_pairs,
        n_steps=p.n_steps,
        scale=p.scale,
        device=p.device,
        threads=snakemake.threads,
    )
