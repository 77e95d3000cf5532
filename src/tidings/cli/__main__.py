"""``python -m tidings.cli``: the same as the ``tidings`` command."""

from .main import main

raise SystemExit(main())
