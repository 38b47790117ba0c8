import sys

from bilevelbench.cli import main

sys.exit(main())
