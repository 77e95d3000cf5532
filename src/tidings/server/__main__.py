"""``python -m tidings.server``: run the broker."""

import sys

from .main import main

sys.exit(main())
