"""``tidings demo``: the order-refund story on the built-in broker, with a summary that proves
every refund was handled by every service exactly once in effect.

:func:`run_demo` plays it and returns the summary; :mod:`tidings.demo.models` holds the
messages, shared with ``examples/refund``.
"""

from .run import DemoOptions, render_summary, run_demo

__all__ = ["DemoOptions", "render_summary", "run_demo"]
