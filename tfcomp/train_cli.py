"""`tfcomp train MODEL` and training/train_MODEL.py: one definition of each model's flags.

The four models (restorer, cwic, hiding, jpdse) each have a function adding their own flags
to the shared ones (tfcomp.training_args) and a function running the library's trainer
(tfcomp.training.train_*) from the parsed flags. The `tfcomp train` subcommand and the
scripts in training/ are both built from them, so they accept the same flags. Nothing here
imports TensorFlow before a run starts: `--help` stays fast.
"""

import argparse
import os
import sys

from .errors import TfcompError
from .training_args import run_options, training_parser

__all__ = ["MODELS", "model_parser", "add_train_command", "run_training", "script_entry"]


# -- restorer -----------------------------------------------------------------------------
RESTORER_DOC = """Train the JPEG artifact-removal CNN with keras fit (one command from one CPU to
several GPUs or machines: MirroredStrategy over the local GPUs, MultiWorkerMirroredStrategy
when TF_CONFIG is set).

Example (the shipped quality-blind model; see README for the exact commands):
  tfcomp train restorer --data ../shared/data/train --eval-data ../shared/data/eval/mcmaster \\
      --quality-range 10 90 --run-dir runs/restorer-blind --out tfcomp/weights/restorer-blind.weights.h5
(training/train_restorer.py takes the same flags.)
"""


def _quality_sampling_flag(p):
    p.add_argument("--quality-sampling", choices=("uniform", "log"), default="uniform",
                   help="with --quality-range: draw q uniformly, or log-uniformly (more low "
                        "qualities, where there is most to restore); default %(default)s")


def _restorer_flags(p):
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--quality", type=int, help="train at one JPEG quality (seed: 10)")
    q.add_argument("--quality-range", type=int, nargs=2, metavar=("LO", "HI"),
                   help="quality-blind: a random JPEG quality in LO..HI per patch "
                        "(drawn as --quality-sampling says)")
    _quality_sampling_flag(p)
    p.add_argument("--gray", action="store_true", help="1-channel (Y / gray) variant")
    p.add_argument("--widths", type=int, nargs=4, default=None, metavar="W",
                   help="channel widths (default 128 64 32 16: the original 313,066-parameter net)")
    p.add_argument("--random-init", action="store_true",
                   help="plain random init instead of starting from the identity map")
    p.add_argument("--loss-power", type=float, default=0.0,
                   help="weight each patch's MSE by MSE(jpeg, clean)**-P (0: plain MSE; 0.5..1 "
                        "balances low and high qualities for a quality-blind model)")
    p.add_argument("--keep-epochs", action="store_true",
                   help="also keep every epoch's weights (RUN_DIR/checkpoints/"
                        "epoch-NNN.weights.h5) for checkpoint averaging "
                        "(training/average_weights.py)")
    p.add_argument("--quality-gate", action="store_true",
                   help="add the blind quality gate: the output is x + g * (net(x) - x) with "
                        "g in [0, 1] estimated from the image's 8x8 block-DCT statistics "
                        "(--init-weights may then be an ungated restorer's file)")
    p.add_argument("--gate-only", action="store_true",
                   help="with --quality-gate: train only the gate, the network stays frozen")
    p.add_argument("--scales", type=_scale, nargs="+", metavar="S",
                   help="rescale factors of the augmentation, one drawn per rescaled patch "
                        "(default 0.9 0.8 0.7 0.6, the seed's); factors above 1 enlarge, "
                        "e.g. 1.5 2 3 add smooth, scaled-up content")
    p.add_argument("--rescale-prob", type=_probability, metavar="P",
                   help="probability that a patch is rescaled (default 0.5)")


def _bounded_float(lo, hi, what):
    """argparse type: a float in [lo, hi], else a one-line usage error naming `what`."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be in [{lo:g}, {hi:g}], got {text}")
        return value
    return parse


_scale = _bounded_float(0.1, 8.0, "a scale")
_probability = _bounded_float(0.0, 1.0, "a probability")


def _run_restorer(args, p):
    if args.gate_only and not args.quality_gate:
        p.error("--gate-only needs --quality-gate")
    from .training import make_strategy, train_restorer
    strategy = make_strategy(args.cpu_devices)  # first, before any other TF op
    train_restorer(**run_options(args), out=args.out, channels=1 if args.gray else 3,
                   widths=args.widths, quality=args.quality, quality_range=args.quality_range,
                   quality_sampling=args.quality_sampling,
                   identity=not args.random_init, loss_power=args.loss_power,
                   keep_epochs=args.keep_epochs, quality_gate=args.quality_gate,
                   gate_only=args.gate_only, strategy=strategy, scales=args.scales,
                   rescale_prob=args.rescale_prob)


# -- cwic ---------------------------------------------------------------------------------
CWIC_DOC = """Train the content-weighted codec (CWIC) networks with keras fit, then fit its context tables.

Stage 1 (networks, resumable):  --stage nets    -> OUT.weights.h5
Stage 2 (entropy tables):       --stage tables  -> counts over the training images' kept bits
Both by default. Example (a shipped rate; see README for the exact commands):
  tfcomp train cwic --data ../shared/data/train --eval-data ../shared/data/eval/set14 \\
      --target 0.33 --run-dir runs/cwic-2 --out tfcomp/weights/cwic-2
(training/train_cwic.py takes the same flags.)
"""


def _cwic_flags(p):
    p.add_argument("--stage", choices=("nets", "tables", "all"), default="all",
                   help="train the networks, fit the context tables, or both (default)")
    p.add_argument("--config", default="narrow", help="network size: narrow (CPU), paper, paper128, tiny")
    p.add_argument("--target", type=float, default=0.33,
                   help="target kept-bit fraction r: the rate loss acts while above it")
    p.add_argument("--gamma", type=float, default=1e-3, help="rate-loss weight")
    p.add_argument("--distortion", choices=("mse", "ms-ssim"), default="mse",
                   help="training distortion: mse (the paper's, default) or ms-ssim (1 - 4-scale "
                        "MS-SSIM, patches >= 88)")
    p.add_argument("--mse-weight", type=float, default=0.0,
                   help="with --distortion ms-ssim: add this times the MSE (keeps colours)")
    p.add_argument("--no-binarizer", action="store_true", help="ablation: continuous codes")
    p.add_argument("--no-importance", action="store_true", help="ablation: keep all n channels")
    p.add_argument("--table-images", type=int, default=0,
                   help="fit the tables on at most this many training images (0 = all)")


def _run_cwic(args, p):
    if not args.out:
        p.error("--out is required")
    from .training import make_strategy, train_cwic
    weights = args.out + ".weights.h5"
    opts = run_options(args)
    if args.stage in ("nets", "all"):
        strategy = make_strategy(args.cpu_devices)
        train_cwic(**opts, out=weights, config=args.config, target=args.target,
                   gamma=args.gamma, use_binarizer=not args.no_binarizer,
                   use_importance=not args.no_importance, distortion=args.distortion,
                   mse_weight=args.mse_weight, strategy=strategy)
    if args.stage in ("tables", "all"):
        from .cwic.training import fit_tables
        fit_tables(weights, args.config, opts["data"], args.out + ".ctx.npz",
                   max_images=args.table_images or None)


# -- hiding -------------------------------------------------------------------------------
HIDING_DOC = """Train the residual-hiding encoder/decoder (Lee et al. 2021) with the real codec in the loop.

The decoder starts from a restorer's weights (--decoder-init, default the shipped
restorer-blind), the encoder from the identity, so step 0 is "codec + restorer".
Example (the shipped JPEG q50 model, strategy 2; see README for the exact commands):
  tfcomp train hiding --data ../shared/data/train/wikipedia49 ../shared/data/train/bsd100 \\
      --eval-data ../shared/data/eval/set14 --codec jpeg --quality 50 --strategy 2 \\
      --run-dir runs/hiding-jpeg-q50-s2 --out tfcomp/weights/hiding-jpeg-q50-s2.weights.h5
(training/train_hiding.py takes the same flags.)
"""


def _hiding_flags(p):
    p.add_argument("--codec", choices=("jpeg", "bpg"), default="jpeg", help="codec in the loop")
    q = p.add_mutually_exclusive_group()
    q.add_argument("--quality", type=int, default=50,
                   help="JPEG quality or BPG QP used in training (default 50)")
    q.add_argument("--quality-range", type=int, nargs=2, metavar=("LO", "HI"),
                   help="a random quality in LO..HI per patch (validation uses --quality)")
    _quality_sampling_flag(p)
    p.add_argument("--strategy", type=int, choices=(1, 2), default=2,
                   help="1: gradient through the JPEG simulation; 2: identity gradient (default)")
    p.add_argument("--fidelity", type=float, default=0.1,
                   help="weight of MSE(I_H_enc, I_H): keeps the sent image close to the original")
    p.add_argument("--rate-weight", type=float, default=0.0,
                   help="weight of the codec's rate proxy of the sent image (JPEG: the simulation's; "
                        "BPG: DCT magnitudes against HEVC's step; 0: off)")
    p.add_argument("--width", type=int, default=48, help="encoder channels (default 48)")
    p.add_argument("--depth", type=int, default=5, help="encoder 3x3 convolutions (default 5)")
    p.add_argument("--decoder-init", default="tfcomp/weights/restorer-blind.weights.h5",
                   help="restorer weights to start the decoder from ('' = random init)")
    p.add_argument("--decoder-gate", action="store_true",
                   help="the decoder is the quality-gated restorer (restorer-blind's architecture, "
                        "its gate kept from --decoder-init) instead of the ungated network")


def _run_hiding(args, p):
    if args.decoder_init and not os.path.isfile(args.decoder_init):
        p.error(f"--decoder-init: no such file {args.decoder_init}")
    if args.jit:
        from .training import HIDING_NO_JIT
        p.error(HIDING_NO_JIT)
    from .training import make_strategy, train_hiding
    strategy = make_strategy(args.cpu_devices)  # first, before any other TF op
    train_hiding(**run_options(args), out=args.out, codec=args.codec, quality=args.quality,
                 quality_range=args.quality_range, quality_sampling=args.quality_sampling,
                 strategy_kind=args.strategy,
                 fidelity=args.fidelity, rate_weight=args.rate_weight, width=args.width,
                 depth=args.depth, decoder_init=args.decoder_init or None,
                 decoder_gate=args.decoder_gate, strategy=strategy)


# -- jpdse --------------------------------------------------------------------------------
JPDSE_DOC = """Train JPD-SE (Duan et al. 2022): semantic-aware enhancement of BPG-decoded frames, by phase.

Phase 1: semantic image synthesis (decoded input zeroed; GAN + feature matching + VGG).
Phase 2: all losses on BPG-decoded inputs (adds the L1 distortion).
Phase 3: distortion (L1) only.
Each phase is its own run (resumable); start a phase from the previous one's weights
(--init-weights: a whole model's --out file, or a generator's alone such as a shipped
tfcomp/weights/jpdse-bpg-*.weights.h5, whose discriminator then starts fresh).
--data is a Cityscapes-layout folder; the city "lindau" is held out (tfcomp.jpdse.semantic).
Example (see README for the exact commands of the shipped models):
  tfcomp train jpdse --data ../shared/data/cityscapes_sample --phase 1 \\
      --run-dir runs/jpdse-p1 --out runs/jpdse-p1/final.weights.h5
  tfcomp train jpdse --data ../shared/data/cityscapes_sample --phase 2 \\
      --init-weights runs/jpdse-p1/final.weights.h5 --run-dir runs/jpdse-p2 \\
      --out runs/jpdse-p2/final.weights.h5 --generator-out tfcomp/weights/jpdse-bpg-p2.weights.h5
(training/train_jpdse.py takes the same flags.)
"""

#: --label-scale values (tfcomp.jpdse.semantic.LABEL_SCALES, which needs numpy: kept in sync
#: by a test, so that --help imports nothing).
JPDSE_LABEL_SCALES = (1, 2, 4, 8, 16)


def _jpdse_flags(p):
    p.set_defaults(batch=1, steps_per_epoch=100)
    p.add_argument("--generator-out", help="also write the generator's weights alone here "
                                           "(the file the jpdse-bpg codec ships)")
    p.add_argument("--phase", type=int, choices=(1, 2, 3), required=True, help="training phase")
    p.add_argument("--config", default="narrow",
                   choices=("narrow", "narrow_residual", "narrow_local", "full", "tiny"),
                   help="network size: narrow (this CPU), narrow_residual (narrow + the decoded "
                        "image added to its output), narrow_local (narrow_residual + a "
                        "full-resolution branch), full (pix2pixHD), tiny (tests)")
    p.add_argument("--size", type=int, nargs=2, default=(1024, 512), metavar=("W", "H"),
                   help="working resolution (default 1024 512, the shipped models')")
    p.add_argument("--crop", type=int, nargs=2, metavar=("W", "H"),
                   help="train on random W x H windows of the frames at --size (default: "
                        "whole frames); validation always uses whole frames")
    p.add_argument("--extra-sizes", type=int, nargs="+", default=[], metavar="N",
                   help="more working sizes to train on, as W H pairs (e.g. 1536 768 2048 1024: "
                        "--crop windows of the frames at several scales, one size per batch "
                        "drawn uniformly); needs --crop; validation stays at --size")
    p.add_argument("--qps", type=int, nargs="+", default=[33, 36, 39, 42],
                   help="BPG QPs of the training inputs (default: the paper's 33 36 39 42)")
    p.add_argument("--eval-qp", type=int, default=36, help="QP of the validation inputs")
    p.add_argument("--label-scale", type=int, default=1, choices=JPDSE_LABEL_SCALES,
                   help="train on the semantics decoded from side information with the label "
                        "map at 1/N resolution (1 = lossless labels + instance edges)")
    p.add_argument("--cache-dir", default="runs/jpdse-cache",
                   help="where BPG-decoded frames are cached (default %(default)s)")
    p.add_argument("--vgg-weights", help="local VGG19 (no top) ImageNet weights .h5; "
                                         "without it the perceptual term is off")
    p.add_argument("--lambda-gan", type=float, default=1.0)
    p.add_argument("--lambda-fm", type=float, default=10.0)
    p.add_argument("--lambda-vgg", type=float, default=10.0)
    p.add_argument("--lambda-dist", type=float, default=10.0)


def _check_jpdse(args, p):
    """The flag checks that need no TensorFlow (before the strategy starts)."""
    if args.vgg_weights and not os.path.isfile(args.vgg_weights):
        p.error(f"--vgg-weights: no such file {args.vgg_weights}")
    if len(args.data) != 1:
        p.error("--data takes one Cityscapes-layout folder")
    if args.exclude:
        p.error("--exclude is for the image-folder models; jpdse takes its train split of "
                "Cityscapes (its held-out frames are chosen by tfcomp.jpdse.data)")
    if len(args.extra_sizes) % 2:
        p.error("--extra-sizes takes W H pairs (an even number of values)")
    args.extra_sizes = list(zip(args.extra_sizes[::2], args.extra_sizes[1::2]))
    if args.extra_sizes and not args.crop:
        p.error("--extra-sizes needs --crop (batches of frames at several sizes must agree)")
    from .jpdse.model import size_multiple
    m = size_multiple(args.config)
    sizes = [("--size", args.size)] + [("--extra-sizes", s) for s in args.extra_sizes]
    for what, (w, h) in sizes + [("--crop", args.crop or args.size)]:
        if w <= 0 or h <= 0 or w % m or h % m:
            p.error(f"{what} {w} {h}: both sides must be positive multiples of {m}")
    for what, (w, h) in sizes if args.crop else ():
        if args.crop[0] > w or args.crop[1] > h:
            p.error(f"--crop {args.crop[0]} {args.crop[1]} is larger than {what} {w} {h}")


def _run_jpdse(args, p):
    _check_jpdse(args, p)
    from .training import make_strategy, train_jpdse
    strategy = make_strategy(args.cpu_devices)  # first, before any other TF op
    opts = run_options(args)
    for unused in ("eval_data", "patch_size"):
        opts.pop(unused)
    if opts.pop("crops_per_image", None) is not None:
        p.error("--crops-per-image is for the patch-trained models; jpdse trains on frames "
                "(random windows with --crop)")
    opts["data"] = args.data[0]
    train_jpdse(**opts, out=args.out, phase=args.phase, config=args.config,
                size=tuple(args.size), qps=tuple(args.qps), eval_qp=args.eval_qp,
                cache_dir=args.cache_dir, vgg_weights=args.vgg_weights,
                loss_weights=dict(lambda_gan=args.lambda_gan, lambda_fm=args.lambda_fm,
                                  lambda_vgg=args.lambda_vgg, lambda_dist=args.lambda_dist),
                strategy=strategy, generator_out=args.generator_out,
                label_scale=args.label_scale, crop=tuple(args.crop) if args.crop else None,
                extra_sizes=args.extra_sizes)  # (W, H) pairs since _check_jpdse


# -- the table and the entry points -------------------------------------------------------
#: model -> (description, one-line help, training_parser options, add flags, run).
MODELS = {
    "restorer": (RESTORER_DOC, "the JPEG artifact-removal CNN",
                 dict(out_help="where to write the final weights (.weights.h5)", steps=5000,
                      lr="5e-4,2.5e-4@2000,1e-4@4000",
                      eval_help="validation folder (centre crops, JPEG at the training "
                                "qualities)"),
                 _restorer_flags, _run_restorer),
    "cwic": (CWIC_DOC, "the content-weighted codec (networks, then context tables)",
             dict(out_help="output prefix: writes OUT.weights.h5 and OUT.ctx.npz",
                  steps=10000, lr="1e-4", patch_note=", a multiple of 8"),
             _cwic_flags, _run_cwic),
    "hiding": (HIDING_DOC, "the residual-hiding encoder/decoder around a real codec",
               dict(out_help="where to write the final weights (.weights.h5)", steps=4000,
                    lr="1e-4", patch_note=", a multiple of 16"),
               _hiding_flags, _run_hiding),
    "jpdse": (JPDSE_DOC, "JPD-SE, semantic enhancement of BPG frames (one phase per run)",
              dict(out_help="where to write the weights (generator + discriminator)",
                   steps=2000, lr="2e-4", patch_note=" (unused: whole frames at --size)",
                   eval_help="unused (the held-out city of --data is the validation set)"),
              _jpdse_flags, _run_jpdse),
}


def model_parser(model, parser=None, prog=None):
    """The full flag set of `model` (shared + its own), on `parser` or a new parser."""
    doc, _, options, add_flags, _ = MODELS[model]
    if parser is None:
        parser = argparse.ArgumentParser(prog=prog, description=doc,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
    training_parser(doc, parser=parser, **options)
    add_flags(parser)
    return parser


def run_training(model, args, parser):
    """Trains `model` from its parsed flags (usage errors via parser.error); returns 0."""
    MODELS[model][4](args, parser)
    return 0


def add_train_command(subparsers):
    """Adds `train MODEL` (one subcommand per model) to the tfcomp CLI's subparsers."""
    s = subparsers.add_parser(
        "train", help="train a model: restorer, cwic, hiding or jpdse",
        description="Train one of the models. The same command runs on one CPU, on all the "
                    "GPUs of a machine (MirroredStrategy) and on several machines "
                    "(MultiWorkerMirroredStrategy, one process per machine with TF_CONFIG "
                    "set); --precision and --jit choose the compute. `tfcomp train MODEL "
                    "--help` lists a model's flags.")
    models = s.add_subparsers(dest="train_model", metavar="MODEL", required=True)
    for name, (doc, one_line, *_rest) in MODELS.items():
        m = models.add_parser(name, help=one_line, description=doc,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        model_parser(name, parser=m)
        m.set_defaults(func=lambda args, model=name, parser=m: run_training(model, args, parser))
    return s


def script_entry(model):
    """The `main(argv=None)` of training/train_MODEL.py: parses argv, trains, returns 0."""
    def main(argv=None):
        parser = model_parser(model, prog=f"train_{model}.py")
        args = parser.parse_args(argv)
        try:
            return run_training(model, args, parser)
        except TfcompError as e:  # a user error (data, weights files): one line, like `tfcomp train`
            print(f"{parser.prog}: error: {e}", file=sys.stderr)
            return 1
    main.__doc__ = f"Train {model} from the command line `argv` (default sys.argv[1:])."
    return main
