import sys

from mcrad.cli import main

sys.exit(main())
