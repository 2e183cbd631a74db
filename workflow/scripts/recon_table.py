"""Rule make_recon_table: reconstruction MSE against K (pae.stages.summary.run_recon_table)."""

from pae.files.io import redirect_output
from pae.stages.summary import run_recon_table

with redirect_output(snakemake.log[0]):
    p, files = snakemake.params, list(snakemake.input.recon)
    run_recon_table(
        files={K: files[i * p.n_seeds : (i + 1) * p.n_seeds] for i, K in enumerate(p.ks)},
        data_path=snakemake.input.data,
        csv_path=snakemake.output.csv,
        md_path=snakemake.output.md,
        dataset=p.dataset,
    )
