"""Refinement of CAMs: PAR (pixel-adaptive refinement), IR-label mining, random walk, CRF."""
