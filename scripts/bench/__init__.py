"""Tandem against ShareDB on the peer kit; run from the repository root as `python -m scripts.bench`."""
