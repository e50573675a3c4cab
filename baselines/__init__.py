"""Classical iterative registrars run through itk-elastix: ``mi`` and ``mind``."""
