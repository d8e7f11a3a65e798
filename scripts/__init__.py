"""The repository's tools; scripts/bench is run as `python -m scripts.bench` from the repository root."""
