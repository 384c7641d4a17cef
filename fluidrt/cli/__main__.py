import sys

from fluidrt.cli.main import main

sys.exit(main())
