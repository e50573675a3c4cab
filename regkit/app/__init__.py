"""The application layer: the ``regkit`` command line and one-pair registration, on top of everything else."""
