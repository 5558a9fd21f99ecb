"""Command-line flags shared by the training scripts (no TensorFlow import: `--help` stays fast)."""

import argparse
import os
import sys

from .precision import PRECISIONS

__all__ = ["training_parser", "run_options"]


def _crops(text):
    """--crops-per-image: an integer in 1..256 (tfcomp.data.PatchConfig's range)."""
    value = int(text)
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"must be in 1..256, got {value}")
    return value


def _positive(text):
    """A whole number >= 1 (step counts)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def training_parser(doc, *, out_help, steps=5000, lr="1e-4", patch_note="", eval_help=None,
                    parser=None):
    """An ArgumentParser with the flags every `training/train_*.py` script has.

    Data (--data, --eval-data), bookkeeping (--run-dir, --out, --backup-every), the
    schedule (--steps, --steps-per-epoch, --batch, --patch, --crops-per-image, --lr,
    --init-weights, --seed), the compute (--cpu-devices, --precision, --jit) and --quiet.
    Scripts add their own flags and pass `run_options(args)` to the library. `parser`: add
    the flags to this parser (e.g. a `tfcomp train MODEL` subparser) instead of a new one.
    """
    # A checkpoint read while training writes it must not crash the run (HDF5 file locks).
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    p = parser or argparse.ArgumentParser(description=doc,
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="training image folders or globs")
    p.add_argument("--eval-data", help=eval_help or "validation folder (centre crops)")
    p.add_argument("--exclude", nargs="+", metavar="DIR",
                   help="leave out the training images that are near-duplicates of an image "
                        "in these folders (e.g. the test set: train/bsd100 holds all of "
                        "BSD68); prints what it left out (tfcomp.overlap)")
    p.add_argument("--run-dir", required=True, help="checkpoints, backup (resume), TensorBoard logs")
    p.add_argument("--out", help=out_help)
    p.add_argument("--steps", type=_positive, default=steps,
                   help="total optimizer steps, exactly; a resumed run counts from where it "
                        "stopped (default %(default)s)")
    p.add_argument("--steps-per-epoch", type=_positive, default=250,
                   help="steps between checkpoints/validation (default %(default)s)")
    p.add_argument("--backup-every", type=_positive, metavar="N",
                   help="save the resume backup (RUN_DIR/backup) every N steps (default: "
                        "every epoch); Ctrl-C or SIGTERM also saves one, then exits")
    p.add_argument("--batch", type=int, default=8, help="global batch size (default %(default)s)")
    p.add_argument("--patch", type=int, default=128, help=f"patch size (default %(default)s){patch_note}")
    p.add_argument("--crops-per-image", type=_crops, metavar="N",
                   help="patches cut from each decoded training image per visit (default: 1 "
                        "when the decoded set fits in memory and is cached; streamed, the mean "
                        "image area in patches, at most 16)")
    p.add_argument("--lr", default=lr,
                   help="learning-rate schedule 'v0,v1@step1,v2@step2' (default %(default)s)")
    p.add_argument("--init-weights", help="start from these weights (fine-tuning)")
    p.add_argument("--seed", type=int, default=0, help="shuffle/augmentation seed")
    p.add_argument("--cpu-devices", type=int, default=1,
                   help="without GPUs, split the CPU into N logical devices (MirroredStrategy replicas)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="compute precision (variables and saved weights stay float32): "
                        "mixed_float16 for GPUs with tensor cores (loss-scaled), mixed_bfloat16 "
                        "for CPUs with AMX/AVX512-BF16 or TPUs; both are slow on other CPUs "
                        "(README benchmarks); default %(default)s")
    p.add_argument("--jit", action="store_true",
                   help="compile the training step with XLA (jit_compile=True); not for hiding")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _training_files(args):
    """--data, without the near-duplicates of the --exclude images (a list of files then)."""
    if not getattr(args, "exclude", None):
        return args.data
    from .overlap import exclude_near_duplicates
    kept, dropped = exclude_near_duplicates(args.data, args.exclude)
    print(f"--exclude: left out {len(dropped)} of {len(kept) + len(dropped)} training images "
          f"(near-duplicates of images in {' '.join(args.exclude)})", file=sys.stderr)
    return kept


def run_options(args):
    """The keyword arguments of tfcomp.training.train_* that come from the shared flags
    (`crops_per_image` only when --crops-per-image is given)."""
    opts = dict(data=_training_files(args), run_dir=args.run_dir, eval_data=args.eval_data, steps=args.steps,
                steps_per_epoch=args.steps_per_epoch, batch_size=args.batch,
                patch_size=args.patch, lr_schedule=args.lr, init_weights=args.init_weights,
                seed=args.seed, verbose=0 if args.quiet else 1, backup_every=args.backup_every,
                precision=args.precision, jit=args.jit)
    if getattr(args, "crops_per_image", None) is not None:
        opts["crops_per_image"] = args.crops_per_image
    return opts
