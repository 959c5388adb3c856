"""`python -m digitos ...` (and `torchrun -m digitos train ...`)."""

import sys

from .cli import main

sys.exit(main())
