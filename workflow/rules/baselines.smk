"""Rules of the baselines stage."""
