"""kenomill: metallurgical mass balance of the Keno Hill District mill."""

from kenomill.errors import ValidationError

__all__ = ["reported_periods", "read_periods", "ValidationError"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # PEP 562: kenomill.data imports pandas and xarray (~0.4 s); load it on first use of
    # kenomill.reported_periods so that `import kenomill._mc_kernels` (a worker's or a second
    # process's first Monte Carlo result) does not pay for it.
    if name == "reported_periods":
        from kenomill.data import reported_periods

        return reported_periods
    if name == "read_periods":
        from kenomill.periods import read_periods

        return read_periods
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), "reported_periods", "read_periods"])
