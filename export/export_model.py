#!/usr/bin/env python3
"""Export a shipped model: the same as `tfcomp export` (logic in tfcomp/export.py).

    python export/export_model.py --model restorer-blind --format all --out exported --check
"""

import sys

from tfcomp.cli import main

if __name__ == "__main__":
    sys.exit(main(["export"] + sys.argv[1:]))
