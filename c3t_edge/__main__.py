import sys

from c3t_edge.cli import main

sys.exit(main())
