"""Artifact directories, their manifests and lineage (docs/design.md §2): the manifest model,
parsing and hashing (manifest.py) below S3 storage (storage.py), opening an artifact for reading
(opening.py) above both, writing one in place (output.py), URIs and lineage."""
