"""Command-line interface: ``redsm5-hpo`` / ``python -m redsm5_hpo``."""
