"""The mathematics of adspace: pure functions on NumPy arrays (no I/O, no models, no database)."""
