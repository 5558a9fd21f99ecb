#!/usr/bin/env python3
"""Builds tfcomp/_bpg_ops.so: the C BPG codec (csrc/bpg/*.c) + the TF ops (csrc/bpg_ops.cc).

Run with the venv's python (it needs the installed TensorFlow for the compile flags):

    .venv/bin/python tfcomp/csrc/build.py [--force] [--check] [-v]

Needs gcc/g++, pkg-config and the system packages libx265-dev and libde265-dev.  It
only rebuilds when a source is newer than the .so (or with --force); --check only
reports (exit status 1 if a rebuild is needed).  The .so is written atomically.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.dirname(HERE)
OUTPUT = os.path.join(PACKAGE, "_bpg_ops.so")
C_DIR = os.path.join(HERE, "bpg")
C_SOURCES = ["bpg_common.c", "bpg_enc.c", "bpg_dec.c"]
OP_SOURCE = os.path.join(HERE, "bpg_ops.cc")
SYSTEM_LIBS = ["x265", "libde265"]
APT_HINT = "missing system packages: run apt-get install libx265-dev libde265-dev pkg-config"


class BuildError(Exception):
    pass


def sources():
    """Every file whose change requires a rebuild."""
    files = [os.path.join(C_DIR, f) for f in sorted(os.listdir(C_DIR))
             if f.endswith((".c", ".h"))]
    return files + [OP_SOURCE, os.path.abspath(__file__)]


def up_to_date(output=OUTPUT):
    if not os.path.exists(output):
        return False
    built = os.path.getmtime(output)
    return all(os.path.getmtime(f) <= built for f in sources())


def pkg_config():
    """(cflags, libs) of x265 and libde265, or BuildError with the apt-get hint."""
    if shutil.which("pkg-config") is None:
        raise BuildError(APT_HINT)
    missing = [lib for lib in SYSTEM_LIBS
               if subprocess.run(["pkg-config", "--exists", lib]).returncode != 0]
    if missing:
        raise BuildError(f"{APT_HINT} (pkg-config cannot find: {', '.join(missing)})")
    out = subprocess.run(["pkg-config", "--cflags", "--libs"] + SYSTEM_LIBS,
                         capture_output=True, text=True, check=True).stdout.split()
    cflags = [f for f in out if f.startswith(("-I", "-D"))]
    libs = [f for f in out if f not in cflags]
    return cflags, libs


def tf_flags():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf  # noqa: import here: only the build needs it
    except ImportError as e:
        raise BuildError(f"TensorFlow is not importable by {sys.executable} ({e}): run this "
                         "script with the venv's python (.venv/bin/python), and pip install "
                         "with --no-build-isolation") from None
    return tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags()


def run(cmd, verbose):
    if verbose:
        print(" ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise BuildError(f"command failed: {' '.join(cmd)}\n{res.stdout}{res.stderr}")


def build(output=OUTPUT, force=False, verbose=False):
    """Builds the op library if needed; returns True if it was (re)built."""
    if not force and up_to_date(output):
        return False
    cflags, libs = pkg_config()
    for tool in ("gcc", "g++"):
        if shutil.which(tool) is None:
            raise BuildError(f"{tool} not found: run apt-get install gcc g++")
    tf_cflags, tf_lflags = tf_flags()
    with tempfile.TemporaryDirectory(prefix="tfcomp-bpg-build-") as tmp:
        objects = []
        for src in C_SOURCES:
            obj = os.path.join(tmp, src[:-2] + ".o")
            run(["gcc", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-O2", "-fPIC", "-Wall",
                 "-fvisibility=hidden", "-c", os.path.join(C_DIR, src), "-o", obj] + cflags,
                verbose)
            objects.append(obj)
        tmp_out = os.path.join(os.path.dirname(output),
                               f".{os.path.basename(output)}.{os.getpid()}")
        try:
            run(["g++", "-std=c++17", "-shared", "-O2", "-fPIC", OP_SOURCE, "-I", HERE]
                + objects + ["-o", tmp_out] + tf_cflags + cflags + tf_lflags + libs
                + ["-lm", "-lpthread"], verbose)
            os.replace(tmp_out, output)
        finally:
            if os.path.exists(tmp_out):
                os.unlink(tmp_out)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    ap.add_argument("--check", action="store_true",
                    help="only report whether a rebuild is needed (exit 1 if so)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the commands")
    ap.add_argument("-o", "--output", default=OUTPUT, help=f"output (default {OUTPUT})")
    args = ap.parse_args(argv)
    if args.check:
        ok = up_to_date(args.output)
        print(f"{args.output}: {'up to date' if ok else 'needs a rebuild'}")
        return 0 if ok else 1
    try:
        built = build(args.output, force=args.force, verbose=args.verbose)
    except BuildError as e:
        print(f"tfcomp BPG op build: {e}", file=sys.stderr)
        return 1
    print(f"{args.output}: {'built' if built else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
