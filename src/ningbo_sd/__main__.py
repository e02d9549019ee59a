"""``python -m ningbo_sd``: the ``ningbo-sd`` command."""

import sys

from ningbo_sd.cli import main

sys.exit(main())
