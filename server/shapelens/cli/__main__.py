"""`python -m shapelens.cli`."""

import sys

from shapelens.cli import main

sys.exit(main())
