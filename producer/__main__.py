"""`python -m producer` is `lstm-producer`."""

import sys

from producer.cli import main

if __name__ == "__main__":
    sys.exit(main())
