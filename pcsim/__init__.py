"""pcsim: predictive coding networks as continuous-time circuits on modelled chips."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pcsim")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.1.0"

__all__ = ["__version__"]
