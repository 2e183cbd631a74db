#!/usr/bin/env bash
# Runs once, inside the freshly created workflow/envs/pae.yaml environment (Snakemake's post-deploy hook), from
# Snakemake's working directory. Installs the `pae` package of this checkout, editable and without
# dependencies (they are pinned in workflow/envs/pae.yaml), so the rules' scripts can `import pae`.
# Set PAE_REPO when Snakemake runs with --directory elsewhere than the repository root.
set -euo pipefail
repo="${PAE_REPO:-$PWD}"
if [ ! -f "$repo/pyproject.toml" ] || [ ! -d "$repo/src/pae" ]; then
    echo "workflow/envs/pae.post-deploy.sh: '$repo' is not the PAE repository (no pyproject.toml / src/pae);" \
         "run snakemake from the repository root or set PAE_REPO=/path/to/repository" >&2
    exit 1
fi
python -m pip install --no-deps --no-build-isolation --quiet -e "$repo"
