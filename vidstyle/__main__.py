"""``python -m vidstyle``: the command line (:mod:`vidstyle.apps.cli`)."""
import sys

from vidstyle.apps.cli import main

sys.exit(main())
