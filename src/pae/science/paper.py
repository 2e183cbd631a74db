"""The numbers the paper reports (Böhm & Seljak 2020), in one place: what our tables and figures are
compared with. Values are copied from the paper's tables and captions; nothing here is computed."""

from __future__ import annotations

PAPER_TABLE1 = {  # Table 1, F-MNIST, K = 32
    "sample FID": {"AE": 102.9, "VAE": 102.4, "β-VAE": 56.3, "PAE": 35.4},
    "reconstruction FID": {"AE": 31.5, "VAE": 32.3, "β-VAE": 51.3, "PAE": 31.5},
    "mean reconstruction error": {"AE": 0.077, "VAE": 0.084, "β-VAE": 0.114, "PAE": 0.077},
}
PAPER_TABLE2 = {  # Table 2, rows "this work": AUROC, models trained on F-MNIST
    "PAE density": {"MNIST": 0.997, "OMNIGLOT": 0.981, "FMNIST-hflip": 0.698, "FMNIST-vflip": 0.891},
    "AE reconstruction error": {"MNIST": 0.986, "OMNIGLOT": 0.916, "FMNIST-hflip": 0.689, "FMNIST-vflip": 0.880},
}
# Baselines the paper quotes from other work; never mixed with our numbers.
REPORTED_TABLE2 = {
    "likelihood ratios (Ren et al. 2019)": {"MNIST": 0.996},
    "VIB (Choi et al. 2018)": {"MNIST": 0.941, "OMNIGLOT": 0.943, "FMNIST-hflip": 0.667, "FMNIST-vflip": 0.902},
    "WAIC (Choi et al. 2018)": {"MNIST": 0.766, "OMNIGLOT": 0.796, "FMNIST-hflip": 0.624, "FMNIST-vflip": 0.704},
    "IWAE (Choi et al. 2018)": {"MNIST": 0.423, "OMNIGLOT": 0.568, "FMNIST-hflip": 0.594, "FMNIST-vflip": 0.668},
}

PAPER_FIG3_FID = {64: 31.7, 128: 28.0}  # Fig. 3 caption: PAE sample FIDs (Inception) at K = 64 and 128
PAPER_FIG4_FID = {"sample": 49.2, "reconstruction": 44.0}  # Fig. 4 caption: CelebA, K = 64 (Inception)
PAPER_IN_DATASET = "fmnist"  # the paper's Table 2: models trained on F-MNIST (its values apply only then)

# Reconstruction MSE per pixel (pixels x/255 − 0.5) of the original code's converged F-MNIST AEs against K
# (mean stored σ² of its parameter files; K = 128 is the v2rot model). Not in the paper's text.
ORIGINAL_RECON_MSE = {4: 0.01675, 8: 0.01135, 16: 0.00833, 32: 0.00642, 128: 0.00402}
