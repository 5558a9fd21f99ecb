#!/usr/bin/env python3
"""Train the jpdse model: `tfcomp train jpdse` as a script, same flags (tfcomp.train_cli); see --help."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tfcomp.train_cli import script_entry  # noqa: E402

main = script_entry("jpdse")

if __name__ == "__main__":
    sys.exit(main())
