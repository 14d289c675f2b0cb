"""Refinement of CAMs: PAR (pixel-adaptive refinement), later IR-label mining, random walk, CRF."""
