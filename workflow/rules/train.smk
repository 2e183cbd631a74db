"""Rules of the train stage."""
