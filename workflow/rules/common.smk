"""Shared helpers: config validation, path patterns, target lists."""

from pae.config import validate_config

validate_config(config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml"))

OUT = config["outdir"]
DATA_DIR = config["data"]["dir"]
PROCESSED = f"{DATA_DIR}/processed"
LOGS = f"{OUT}/logs"
BENCH = f"{OUT}/benchmarks"
ENV = "../../envs/pae.yaml"

# One folder per trained configuration: dataset / latent size K / seed.
RUN = OUT + "/{dataset}/K{K}/seed{seed}"
OOD_SETS = ["mnist", "omniglot", "fmnist_hflip", "fmnist_vflip"]
SEEDS = config["seeds"]


wildcard_constraints:
    dataset="fmnist|mnist|celeba",
    K=r"\d+",
    seed=r"\d+",
    ood="mnist|omniglot|fmnist_hflip|fmnist_vflip",
    model="ae|vae|betavae|pae|recon",


def run_dirs(dataset, Ks, seeds=SEEDS):
    return [RUN.format(dataset=dataset, K=K, seed=s) for K in Ks for s in seeds]


DATA_FILES = [f"{PROCESSED}/{d}.npz" for d in config["datasets"] if d != "celeba"] + [
    f"{PROCESSED}/ood/{o}.npz" for o in OOD_SETS
]
TABLE1_FILES = [f"{OUT}/table1.csv", f"{OUT}/table1.md"]
TABLE2_FILES = [f"{OUT}/table2.csv", f"{OUT}/table2.md"]
FIGURE_FILES = [
    f"{OUT}/figures/{name}.{ext}"
    for name in ["fig2", "fig3", "fig5"]
    for ext in ["png", "pdf"]
]
