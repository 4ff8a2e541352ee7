import sys

from spikegate.cli import main

sys.exit(main())
