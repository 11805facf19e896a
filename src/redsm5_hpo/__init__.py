"""redsm5-hpo: storage-optimized training and HPO for DSM-5 criteria matching and evidence binding."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("redsm5-hpo")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"
