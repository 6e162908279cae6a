import sys

from labd.cli import main

sys.exit(main())
