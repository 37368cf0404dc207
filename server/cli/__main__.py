"""``python -m server.cli``, as the installed ``pvsettle`` script."""

import sys

from server.cli.main import main

sys.exit(main())
