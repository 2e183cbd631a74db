"""Rules of the data stage."""
