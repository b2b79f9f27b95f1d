"""``python -m ldkkit grade ...``: the ``ldkkit`` command line (:mod:`ldkkit.cli`), where its script is not on PATH."""

import sys

from .cli import main

sys.exit(main())
