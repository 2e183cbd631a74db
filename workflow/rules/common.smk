"""Shared helpers: config validation, typed settings, path patterns, target lists."""

import dataclasses

import pae.stages.rules as pae_rules
from pae.config import prepare_config
from pae.science.catalog import MODELS, SAMPLE_KINDS
from pae.settings import Settings

# --config values arrive as strings (seeds=[0,1] -> ['0', '1']): type them by the schema, fill the schema's
# defaults, validate; then the typed settings S are what every rule reads.
prepare_config(config, workflow.source_path("../schemas/config.schema.yaml"))
S = Settings.from_config(config, validate=False)

OUT = S.outdir
DATA_DIR = S.data.dir
PROCESSED = f"{DATA_DIR}/processed"
LOGS = f"{OUT}/logs"
BENCH = f"{OUT}/benchmarks"
ENV = "../envs/pae.yaml"

# One folder per trained configuration: dataset / latent size K / seed.
RUN = f"{OUT}/{{dataset}}/K{{K}}/seed{{seed}}"
SEEDS = S.seeds

# Every dataset a rule may name (built-ins + config `datasets`), checked; the ones `all` trains; the OoD
# experiment of Table 2 (in-distribution dataset and its OoD sets, each a dataset's test split or a flip).
REGISTRY = pae_rules.dataset_registry(S)
TRAINED = pae_rules.trained_datasets(S)
OOD_SETS = pae_rules.ood_sets(S)
OOD_NAMES = [s["name"] for s in OOD_SETS]


wildcard_constraints:
    dataset="|".join(REGISTRY),
    K=r"\d+",
    seed=r"\d+",
    ood="|".join(OOD_NAMES),
    model="|".join(SAMPLE_KINDS),


def classifier_of(dataset):
    """The dataset's domain classifier (seed fid.classifier_seed; workflow/rules/fid.smk), or nothing for an
    unlabelled dataset, which then gets no domain FID."""
    if not pae_rules.has_labels(REGISTRY[dataset]):
        return []
    seed = S.fid.classifier_seed
    return f"{OUT}/{dataset}/classifier/seed{seed}/classifier.pt"


DATA_FILES = [f"{PROCESSED}/{d}.npz" for d in TRAINED] + [
    f"{PROCESSED}/ood/{o}.npz" for o in OOD_NAMES
]
# `all` trains an AE and its flow for every dataset of `datasets` at every K of ae.latent_dims.
TRAINED_FILES = [
    f"{RUN}/flow.pt".format(dataset=d, K=K, seed=s)
    for d in TRAINED
    for K in S.ae.latent_dims
    for s in SEEDS
]
# Each table: tidy CSV, Markdown rendering, and its provenance record (commit, config hash, versions, times).
TABLE1_FILES = [
    f"{OUT}/table1.{ext}" for ext in ["csv", "md", "provenance.json", "provenance.md"]
]
TABLE2_FILES = [
    f"{OUT}/table2.{ext}" for ext in ["csv", "md", "provenance.json", "provenance.md"]
]
FIGURE_FILES = [
    f"{OUT}/figures/{name}.{ext}"
    for name in ["fig2", "fig3", "fig5"]
    for ext in ["png", "pdf"]
]
# Fig. 6 and the posterior metrics (workflow/rules/posterior.smk; needs the posterior.dataset AE + flow at K).
FIG6_FILES = [f"{OUT}/figures/fig6.{ext}" for ext in ["png", "pdf"]] + [
    f"{OUT}/posterior_metrics.{ext}" for ext in ["csv", "md"]
]
# Fig. 4 (workflow/rules/figures.smk; fig4.dataset, CelebA in the paper: not in `all`, since CelebA cannot be
# downloaded without accepting its terms by hand).
FIG4_FILES = [f"{OUT}/figures/fig4.{ext}" for ext in ["png", "pdf"]]


# ---- params ----------------------------------------------------------------------------------------
# Snakemake compares only plain values (dicts, lists, numbers, strings) of params to decide what reruns, so
# typed settings reach the rules as dicts (as_param) and the scripts rebuild them.


def as_param(settings):
    return dataclasses.asdict(settings)


def training_params(network):
    """The training trajectory of train_ae / train_vae (the scripts build the whole TrainSettings with
    S.training: device, channels_last, checkpoint_every and validate_every do not change the result, so they rerun nothing)."""
    return lambda wildcards: S.training(network, int(wildcards.seed)).trajectory()


def flow_params(wildcards):
    """The flow of this K (RealNVP or NSF), so e.g. an NSF change reruns only the NSF flows."""
    return as_param(S.flow.architecture(int(wildcards.K)))


def train_mem_mb(wildcards, input):
    """From the images the job reads (input.data; pae.stages.rules.image_shape)."""
    shape = pae_rules.image_shape(REGISTRY[wildcards.dataset], input.data)
    return pae_rules.train_resources(shape, 1)["mem_mb"]


def train_runtime(epochs_key):
    """Minutes on a cluster GPU (generous; pae.stages.rules.train_resources). Local runs ignore it; one
    CPU thread needs ~2-4 min per 28x28 epoch."""

    def runtime(wildcards, input):
        shape = pae_rules.image_shape(REGISTRY[wildcards.dataset], input.data)
        epochs = S.vae.epochs if epochs_key == "vae" else S.ae.epochs
        return pae_rules.train_resources(shape, epochs)["runtime"]

    return runtime


def sample_model_inputs(wildcards):
    """ae/pae/recon use the AE (pae also the flow, recon the test split); vae/betavae their own model."""
    run = RUN.format(dataset=wildcards.dataset, K=wildcards.K, seed=wildcards.seed)
    net = wildcards.model if wildcards.model in ("vae", "betavae") else "ae"
    inputs = {"model": f"{run}/{net}.pt"}
    if wildcards.model == "pae":
        inputs["flow"] = f"{run}/flow.pt"
    if wildcards.model == "recon":
        inputs["data"] = f"{PROCESSED}/{wildcards.dataset}.npz"
    return inputs
