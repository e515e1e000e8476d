"""The names of the covariance types: the one list, importable without NumPy (the CLI's ``--help``).

What each type means is in `_covariance` (``REGISTRY``, one entry per name here).
"""

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
