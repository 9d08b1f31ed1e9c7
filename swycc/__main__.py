import sys

from swycc.cli import main

sys.exit(main())
