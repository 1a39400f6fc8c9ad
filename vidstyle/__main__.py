import sys

from vidstyle.apps.cli import main

sys.exit(main())
