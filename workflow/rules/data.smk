"""Rules of the data stage: checksummed raw files → uint8 arrays (N, C, H, W) under DATA/processed.

The registry of raw files (names, checksums, URLs) lives in pae.data, not here. Where a file comes from
(config data.mirror or $PAE_DATA_MIRROR, data.system_dirs, data.download) is read by the script at run time
and deliberately not a param: a verified file is the same file wherever it came from, so moving the mirror
must not rerun anything downstream. The expected checksum is a param, so a registry change refetches.
Processing scripts find the raw folder from their inputs (DATA/raw/<source>/<file>).
"""

import re

import pae.data as pae_data

RAW = f"{DATA_DIR}/raw"


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
    """F-MNIST / MNIST: official 60k train split into train / validation (data.valid_size, data.split_seed)
    plus the 10k test set; x_* uint8 (N, 1, 28, 28), y_* int64."""
    input:
        lambda wc: pae_data.raw_paths(pae_data.dataset_files(wc.dataset), RAW),
    output:
        f"{PROCESSED}/{{dataset}}.npz",
    log:
        f"{LOGS}/preprocess_dataset/{{dataset}}.log",
    benchmark:
        f"{BENCH}/preprocess_dataset/{{dataset}}.tsv"
    wildcard_constraints:
        dataset="fmnist|mnist",
    conda:
        ENV
    threads: config["threads"]["eval"]
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        dataset="{dataset}",
        valid_size=config["data"]["valid_size"],
        split_seed=config["data"]["split_seed"],
    script:
        "../scripts/preprocess_dataset.py"


rule preprocess_celeba:
    """CelebA (paper Sec. 4): centre 128x128 crop resized to data.celeba_size with data.celeba_resample,
    official partition with files sorted by name; x_train, x_valid, x_test uint8 (N, 3, S, S).
    """
    input:
        pae_data.raw_paths(pae_data.dataset_files("celeba"), RAW),
    output:
        f"{PROCESSED}/celeba.npz",
    log:
        f"{LOGS}/preprocess_dataset/celeba.log",
    benchmark:
        f"{BENCH}/preprocess_dataset/celeba.tsv"
    conda:
        ENV
    threads: config["threads"]["eval"]
    resources:
        mem_mb=12000,
        runtime=180,
    params:
        dataset="celeba",
        celeba_size=config["data"]["celeba_size"],
        celeba_resample=config["data"]["celeba_resample"],
    script:
        "../scripts/preprocess_dataset.py"


rule build_ood_set:
    """Table 2 outlier sets: MNIST test, Omniglot evaluation (28x28, inverted), F-MNIST test flipped
    left-right (hflip) / up-down (vflip); x uint8 (N, 1, 28, 28), y labels."""
    input:
        lambda wc: pae_data.raw_paths(pae_data.ood_files(wc.ood), RAW),
    output:
        f"{PROCESSED}/ood/{{ood}}.npz",
    log:
        f"{LOGS}/build_ood_set/{{ood}}.log",
    benchmark:
        f"{BENCH}/build_ood_set/{{ood}}.tsv"
    conda:
        ENV
    threads: config["threads"]["eval"]
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        name="{ood}",
        omniglot_count=lambda wc: (
            config["data"]["omniglot_count"] if wc.ood == "omniglot" else None
        ),
    script:
        "../scripts/build_ood_set.py"
