"""kenomill: metallurgical mass balance of the Keno Hill District mill."""

from kenomill.data import reported_periods
from kenomill.errors import ValidationError

__all__ = ["reported_periods", "ValidationError"]
__version__ = "0.1.0"
