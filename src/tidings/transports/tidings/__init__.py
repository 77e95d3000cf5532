"""The ``tidings://`` transport: the built-in broker over its native TCP protocol."""

from .options import NativeOptions
from .subscription import NativeSubscription
from .transport import NativeTransport

__all__ = ["NativeOptions", "NativeSubscription", "NativeTransport"]
