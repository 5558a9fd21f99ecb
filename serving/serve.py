#!/usr/bin/env python3
"""Run the TF-Serving-compatible server: the same as `tfcomp serve` (logic in tfcomp/serving/).

    python serving/serve.py --model-config exported/models.config [--rest-port 8501] [--grpc-port 8500]
"""

import sys

from tfcomp.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve"] + sys.argv[1:]))
