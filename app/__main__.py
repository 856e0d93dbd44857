"""``python -m app``: the operator's command line (see ``app.cli``)."""

import sys

from app.cli import main

sys.exit(main())
