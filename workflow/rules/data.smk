"""Rules of the data stage: checksummed raw files → uint8 arrays (N, C, H, W) under DATA/processed.

The registry of raw files (names, checksums, URLs) lives in pae.files.data, not here. Where a file comes from
(config data.mirror or $PAE_DATA_MIRROR, data.system_dirs, data.download) is read by the script at run time
and deliberately not a param: a verified file is the same file wherever it came from, so moving the mirror
must not rerun anything downstream. The expected checksum is a param, so a registry change refetches.
Which datasets exist is config `datasets` plus the built-ins (pae.stages.rules.dataset_registry); every one
goes through the same preprocess_dataset rule, and every OoD set of ood.sets is built from a preprocessed
dataset, so no rule names a dataset.
"""

import re

import pae.files.data as pae_data
import pae.files.datasets as pae_datasets

RAW = f"{DATA_DIR}/raw"
OOD_BY_NAME = {s["name"]: s for s in OOD_SETS}


# Fetching is I/O only and may need the internet, which cluster compute nodes often lack.
localrules:
    fetch_raw,


rule fetch_raw:
    """One raw file from the mirror, a system folder or its canonical URL; kept only if its checksum
    matches the registry (SHA-256 of the decompressed content for .gz)."""
    output:
        f"{RAW}/{{source}}/{{file}}",
    log:
        f"{LOGS}/fetch_raw/{{source}}/{{file}}.log",
    benchmark:
        f"{BENCH}/fetch_raw/{{source}}/{{file}}.tsv"
    wildcard_constraints:
        source="|".join(map(re.escape, pae_data.SOURCES)),
        file="|".join(
            sorted({re.escape(f.filename) for f in pae_data.REGISTRY.values()})
        ),
    conda:
        ENV
    threads: 1  # I/O only
    resources:
        mem_mb=500,
        runtime=60,
    params:
        checksum=lambda wc: pae_data.expected_checksum(
            pae_data.raw_file(wc.source, wc.file)
        ),
    script:
        "../scripts/fetch_raw.py"


rule preprocess_dataset:
    """Any dataset of the registry → uint8 arrays x_* (N, C, H, W) (+ y_* where known), checked, written
    only when complete (pae.files.datasets). Built-ins read their verified raw files: F-MNIST / MNIST split the
    60k training file into train / validation (data.valid_size, data.split_seed) plus the 10k test set;
    CelebA crops rows 45-173, columns 25-153 and resizes to data.celeba_size with data.celeba_resample,
    official partition; Omniglot (OoD only) keeps x, y. User entries (npz, folder) read their path.
    """
    input:
        lambda wc: pae_datasets.input_paths(REGISTRY[wc.dataset], RAW),
    output:
        f"{PROCESSED}/{{dataset}}.npz",
    log:
        f"{LOGS}/preprocess_dataset/{{dataset}}.log",
    benchmark:
        f"{BENCH}/preprocess_dataset/{{dataset}}.tsv"
    conda:
        ENV
    # one thread (the driver runs no parallel code): with threads.eval (2) the job waited on a 2-core box
    # for both trainings to end, and every MNIST job with it
    threads: 1
    resources:
        mem_mb=lambda wc: 24000 if REGISTRY[wc.dataset]["kind"] == "celeba" else 4000,
        runtime=lambda wc: 60 if REGISTRY[wc.dataset]["kind"] == "celeba" else 10,
    params:
        entry=lambda wc: REGISTRY[wc.dataset],
        raw=RAW,
    script:
        "../scripts/preprocess_dataset.py"


rule build_ood_set:
    """One OoD set of ood.sets: the test split of its dataset (all of an OoD-only set such as Omniglot),
    flipped left-right (hflip) or up-down (vflip) when asked; x uint8 (N, C, H, W), y where known.
    """
    input:
        lambda wc: f"{PROCESSED}/{OOD_BY_NAME[wc.ood]['dataset']}.npz",
    output:
        f"{PROCESSED}/ood/{{ood}}.npz",
    log:
        f"{LOGS}/build_ood_set/{{ood}}.log",
    benchmark:
        f"{BENCH}/build_ood_set/{{ood}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        transform=lambda wc: OOD_BY_NAME[wc.ood]["transform"],
    script:
        "../scripts/build_ood_set.py"
