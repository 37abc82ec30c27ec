"""``python -m xinit.cli``: the ``xinit`` command."""

import sys

from . import main

sys.exit(main())
