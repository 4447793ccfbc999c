import sys

from sparsecoder.cli import main

sys.exit(main())
