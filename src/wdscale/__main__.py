"""`python -m wdscale ...` is the `wdscale` command."""

import sys

from .cli import main

sys.exit(main())
