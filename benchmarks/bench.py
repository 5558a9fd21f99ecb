#!/usr/bin/env python3
"""Prints the benchmark tables (`make bench`); the logic is tfcomp.bench."""

import sys

from tfcomp.bench import main

sys.exit(main())
