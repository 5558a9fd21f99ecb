"""The `tfcomp` command line: codecs, models, compress, decompress, restore, evaluate, plot,
report, export, serve, demo, data pack, train."""

import argparse
import json
import os
import sys

from .errors import TfcompError

__all__ = ["main", "build_parser"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF 2.14 logs CUDA-plugin errors on CPU-only hosts


def format_table(headers, rows):
    """Plain-text table: text columns left-aligned, numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    left = [bool(rows) and isinstance(rows[0][i], str) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) if lft else c.rjust(w) for c, w, lft in zip(r, widths, left))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return str(value)


def _codec_options(args):
    opts = {"chroma": getattr(args, "chroma", None), "level": getattr(args, "level", None),
            "model": getattr(args, "model", None), "labels": getattr(args, "labels", None),
            "instances": getattr(args, "instances", None),
            "weights": getattr(args, "weights", None), "tables": getattr(args, "tables", None)}
    return {k: v for k, v in opts.items() if v is not None}


def _check_output(path):
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise TfcompError(f"output folder does not exist: {parent}")
    if os.path.isdir(path):
        raise TfcompError(f"output is a directory: {path}")


# -- subcommands -----------------------------------------------------------------------------
def cmd_codecs(args):
    from .codecs import describe_all
    entries = describe_all()
    if args.json:
        print(json.dumps(entries, indent=1))
        return 0
    rows = [(e["name"], e["kind"], f"{e['quality']['min']}..{e['quality']['max']}",
             e["quality"]["default"], "yes" if e["weights"] else "MISSING", e["description"])
            for e in entries]
    print(format_table(["name", "kind", "quality", "default", "ready", "description"], rows))
    return 0


def cmd_models(args):
    from .zoo import read_zoo, zoo_rows
    entries = read_zoo()
    if args.json:
        print(json.dumps(entries, indent=1))
        return 0
    print(format_table(["model", "kind", "params", "eval set", "measured (first points)",
                        "trained with"], zoo_rows(entries)))
    return 0


def cmd_compress(args):
    from .codecs import get_codec
    from .imageio import read_image, write_bytes
    codec = get_codec(args.codec, **_codec_options(args))
    quality = codec.check_quality(args.quality)
    _check_output(args.output)
    image = read_image(args.input, mode="any")
    data = codec.encode(image, quality)
    write_bytes(args.output, data)
    h, w = image.shape[:2]
    print(f"{args.output}: {args.codec} q={quality}, {w}x{h}, {len(data)} bytes, "
          f"{8 * len(data) / (h * w):.4f} bpp")
    return 0


def cmd_decompress(args):
    from .codecs import codec_for_bytes, get_codec
    from .errors import InputError
    from .imageio import write_image
    _check_output(args.output)
    if not os.path.isfile(args.input):
        raise InputError(f"{args.input}: no such file")
    with open(args.input, "rb") as f:
        data = f.read()
    options = _codec_options(args)
    codec = get_codec(args.codec or codec_for_bytes(data).name, **options)
    image = codec.decode(data)
    if getattr(codec, "notice", ""):
        print(f"note: {codec.notice}", file=sys.stderr)
    write_image(args.output, image[:, :, 0] if image.shape[2] == 1 else image)
    print(f"{args.output}: decoded {codec.name}, {image.shape[1]}x{image.shape[0]}")
    return 0


def _quality_note(path, spec, luma_table):
    """restore's note when a JPEG input's quality (from its tables) is outside what the
    restorer was trained for; None otherwise."""
    from .models import get_spec, model_names
    from .restorer.quality import estimate_quality, range_note
    est = estimate_quality(luma_table) if luma_table is not None else None
    if est is None:
        return None
    others = [get_spec(n) for n in model_names(kind="restorer") if n != spec.name]
    alternatives = [o.name for o in others if o.quality_min <= est[0] <= o.quality_max]
    return range_note(os.path.basename(str(path)), spec.name, est, spec.quality_min,
                      spec.quality_max, alternatives)


def cmd_restore(args):
    from .imageio import read_image_with_info, write_image
    from .models import get_spec, load_model
    from .restorer.restore import restore_array
    spec = get_spec(args.model)
    if spec.kind != "restorer":
        raise TfcompError(f"model {args.model!r} is a {spec.kind} model, not a restorer")
    _check_output(args.output)
    image, info = read_image_with_info(args.input, mode="any")
    note = _quality_note(args.input, spec, info.get("jpeg_luma_table"))
    if note:
        print(f"note: {note}", file=sys.stderr)
    restored = restore_array(load_model(args.model, weights=args.weights), image, tile=args.tile)
    write_image(args.output, restored)
    how = f"{args.model} ({args.weights})" if args.weights else args.model
    print(f"{args.output}: restored with {how}, {image.shape[1]}x{image.shape[0]}")
    return 0


def _print_restorer_table(result):
    rows = [(p["quality"], p["bpp"], p["jpeg"]["psnr"], p["restored"]["psnr"], p["psnr_gain"],
             p["jpeg"]["ssim"], p["restored"]["ssim"], p["jpeg"]["psnr_b"], p["restored"]["psnr_b"])
            for p in result["points"]]
    print(f"{result['restorer']} on {result['data']} ({result['protocol']}):")
    print(format_table(["q", "bpp", "PSNR jpeg", "PSNR out", "gain", "SSIM jpeg", "SSIM out",
                        "PSNR-B jpeg", "PSNR-B out"], rows))


def cmd_evaluate(args):
    from .evaluate import evaluate_codec, evaluate_restorer
    from .imageio import list_images
    from .plot import plot_codecs, plot_restorers
    list_images(args.data)  # "no images" is the first error, before any model loads
    _check_output(args.json)
    from .plot import default_plot_path
    plot = args.plot or default_plot_path(args.json)
    _check_output(plot)
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    if args.restorer:
        from .models import get_spec, load_model
        get_spec(args.restorer)  # an unknown name fails here, before any work
        model = None
        if args.weights:  # a checkpoint of that architecture instead of the shipped file
            from .errors import InputError
            from .evaluate import check_weights_file
            check_weights_file(args.weights)
            try:
                model = load_model(args.restorer, weights=args.weights)
            except InputError as e:
                raise InputError(f"--weights: {e}") from None
        result = evaluate_restorer(args.restorer, args.data, args.quality or (10, 20, 30, 40),
                                   gray=args.gray, out_dir=args.keep,
                                   show_progress=not args.no_progress, model=model)
        if args.weights:
            result["weights"] = args.weights
        _print_restorer_table(result)
        plot_restorers([result], plot)
    else:
        result = evaluate_codec(args.codec, args.data, args.quality, _codec_options(args),
                                out_dir=args.keep, show_progress=not args.no_progress)
        rows = [(p["quality"], p["bpp"], p["psnr"], p["ms_ssim"], p["ms_ssim_db"])
                for p in result["points"]]
        print(format_table(["quality", "bpp", "PSNR", "MS-SSIM", "MS-SSIM dB"], rows))
        plot_codecs([result], plot)
    from .imageio import write_json
    write_json(args.json, result)
    print(f"wrote {args.json} and {plot}")
    return 0


def _read_results(paths):
    from .errors import InputError
    results = []
    for path in paths:
        try:
            with open(path) as f:
                results.append(json.load(f))
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: cannot read evaluation JSON ({e})") from None
    def kind(r):
        if not isinstance(r, dict):
            return None
        if "plain_codec" in r:
            return "hiding" if "summary" in r else None
        if "points" not in r:
            return None
        return "restorer" if "restorer" in r else "codec"

    kinds = {kind(r) for r in results}
    if len(kinds) != 1 or None in kinds:
        raise InputError("give either codec results or restorer results from `tfcomp evaluate` "
                         "(or hiding results from training/eval_hiding.py), not a mix")
    return results


def cmd_report(args):
    from .report import codec_markdown, hiding_markdown, restorer_markdown
    results = _read_results(args.results)
    _check_datasets(results, args.results, args.allow_mixed_data)
    if "plain_codec" in results[0]:
        print(hiding_markdown(results))
    else:
        print(restorer_markdown(results) if "restorer" in results[0] else codec_markdown(results))
    return 0


def _check_datasets(results, paths, allow_mixed):
    """Refuses results measured on different datasets (a BD-rate between them means nothing)
    unless `allow_mixed`, which turns the refusal into a warning on stderr."""
    from .errors import InputError
    from .plot import datasets_differ
    differ = datasets_differ(results)
    if not differ:
        return
    listing = "; ".join(f"{path}: {data!r}" for path, data in zip(paths, differ))
    if not allow_mixed:
        raise InputError(f"the results come from different datasets ({listing}); compare "
                         "results on one dataset, or pass --allow-mixed-data")
    print(f"tfcomp: warning: the results come from different datasets ({listing})",
          file=sys.stderr)


def cmd_plot(args):
    from .plot import bd_rate_table, plot_codecs, plot_restorers
    from .report import format_range
    results = _read_results(args.results)
    _check_datasets(results, args.results, args.allow_mixed_data)
    _check_output(args.output)
    if "plain_codec" in results[0]:
        raise TfcompError("hiding results are fixed-quality comparisons: use `tfcomp report`")
    if "restorer" in results[0]:
        plot_restorers(results, args.output, args.title)
    else:
        plot_codecs(results, args.output, args.title)
        if len(results) > 1:
            rows = bd_rate_table(results, 0)
            print(f"BD-rate against {rows[0]['anchor']} (negative = fewer bits):")
            print(format_table(
                ["codec", "BD-rate PSNR %", "PSNR overlap", "BD-rate MS-SSIM %", "MS-SSIM dB overlap"],
                [(r["codec"], r["bd_rate_psnr"], format_range(r["overlap_psnr"]),
                  r["bd_rate_ms_ssim"], format_range(r["overlap_ms_ssim_db"])) for r in rows]))
            if args.bd_json:
                from .imageio import write_json
                write_json(args.bd_json, rows)
    print(f"wrote {args.output}")
    return 0


def cmd_export(args):
    from .export import export_command
    if args.check_json and not args.check:
        print("tfcomp export: error: --check-json needs --check", file=sys.stderr)
        return 2
    if args.version < 1:
        raise TfcompError(f"--version must be a positive integer, got {args.version}")
    if args.check_json:
        _check_output(args.check_json)  # before the exports, not after
    return export_command(args.model, args.format, args.out, check=args.check,
                          check_quality=args.check_quality, check_json=args.check_json,
                          weights=args.weights, name=args.name,
                          quantize=args.quantize, tile=args.tile, version=args.version,
                          force=args.force, opset=args.opset, serving_base=args.serving_base,
                          max_pixels=args.max_pixels)


def cmd_serve(args):
    from .serving import serve
    return serve(args.model_config, rest_port=args.rest_port, grpc_port=args.grpc_port,
                 host=args.host, max_body_bytes=int(args.max_body_mb * 2 ** 20),
                 rest_threads=args.rest_threads, grpc_workers=args.grpc_workers,
                 request_timeout=args.request_timeout, max_connections=args.max_connections)


def cmd_demo(args):
    from .demo import run_demo
    return run_demo(args.out, args.model)


def cmd_data_pack(args):
    from .evaluate import progress
    from .shards import pack_shards
    index = pack_shards(args.sources, args.output, shard_size=args.shard_size,
                        progress=lambda it, n: progress(it, n, "pack"))
    print(f"packed {index['images']} images into {len(index['shards'])} shard(s) in "
          f"{args.output} ({index['reencoded_png']} re-encoded as PNG)")
    return 0


# -- parser ----------------------------------------------------------------------------------
def _add_max_pixels(parser):
    """The pixel budget flag of the commands that decode or encode images (tfcomp.limits)."""
    from .limits import DEFAULT_MAX_PIXELS
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help="largest image (width * height) read, decoded or encoded; larger "
                             "ones are refused before any allocation (default %(default)s "
                             "= 8192 x 8192)")


def _add_model_weights(parser):
    """A learned codec with a model of your own (its files name the weights they need)."""
    parser.add_argument("--weights", help="your own trained weights (.weights.h5) of the "
                                          "codec's model architecture: cwic (the rate model's; "
                                          "or a folder with it and its .ctx.npz tables), "
                                          "hiding-jpeg/hiding-bpg and jpdse-bpg (--model's, or "
                                          "the default model's); files made with them decode "
                                          "only with them")
    parser.add_argument("--tables", help="cwic: the context tables (.ctx.npz) of --weights")


def build_parser():
    from . import __version__
    p = argparse.ArgumentParser(prog="tfcomp", description=(
        "Learned image compression and JPEG artifact removal in TensorFlow. "
        "Run `tfcomp COMMAND --help` for each command."))
    p.add_argument("--version", action="version", version=f"tfcomp {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("codecs", help="list codecs and models with their quality knobs")
    s.add_argument("--json", action="store_true", help="machine-readable list")
    s.set_defaults(func=cmd_codecs)

    s = sub.add_parser("models", help="the model zoo: every shipped model, its size, numbers "
                                      "and training command")
    s.add_argument("--json", action="store_true", help="print the zoo entries as JSON")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("compress", help="compress an image into a file")
    s.add_argument("input", help="any image Pillow reads")
    s.add_argument("-o", "--output", required=True, help="compressed file to write")
    s.add_argument("--codec", required=True, help="codec name (see `tfcomp codecs`)")
    s.add_argument("--quality", type=int, help="the codec's quality knob (default: the codec's)")
    s.add_argument("--chroma", choices=("420", "444"), help="chroma subsampling (jpeg, bpg)")
    s.add_argument("--level", type=int, choices=range(1, 10), metavar="1..9",
                   help="bpg encoder effort (x265 preset; default 8)")
    s.add_argument("--model", help="hiding-jpeg / hiding-bpg / jpdse-bpg: which trained model "
                                   "(default: the one for --quality)")
    s.add_argument("--labels", help="jpdse-bpg: the image's label map (Cityscapes labelIds PNG)")
    s.add_argument("--instances", help="jpdse-bpg: the image's instance ids (Cityscapes "
                                       "instanceIds PNG; default: label boundaries only)")
    _add_model_weights(s)
    _add_max_pixels(s)
    s.set_defaults(func=cmd_compress)

    s = sub.add_parser("decompress", help="decode a compressed file to PNG")
    s.add_argument("input", help="compressed file")
    s.add_argument("-o", "--output", required=True, help="image to write (.png, .bmp, .tif, .ppm)")
    s.add_argument("--codec", help="codec name, for formats that cannot identify themselves "
                                   "(hiding-jpeg files open as plain JPEG without it)")
    s.add_argument("--model", help="hiding-jpeg / hiding-bpg: override the decoder model")
    _add_model_weights(s)
    _add_max_pixels(s)
    s.set_defaults(func=cmd_decompress)

    s = sub.add_parser("restore", help="remove JPEG artifacts from a decoded JPEG",
                       description="Remove JPEG artifacts with a restorer model. For a JPEG "
                       "file the quality is read from its quantisation tables (the model "
                       "does not see it): outside the model's trained range a note on stderr "
                       "says so and names a restorer trained for it; restoring goes on.")
    s.add_argument("input", help="a JPEG (or any decoded image)")
    s.add_argument("-o", "--output", required=True, help="image to write (.png, ...)")
    s.add_argument("--model", default="restorer-blind", help="restorer model (default %(default)s)")
    s.add_argument("--tile", type=int, default=512, help="tile size for large images")
    s.add_argument("--weights", help="your own .weights.h5 of --model's architecture (e.g. a "
                                     "training run's checkpoint) instead of the shipped file")
    _add_max_pixels(s)
    s.set_defaults(func=cmd_restore)

    s = sub.add_parser("evaluate", help="rate-distortion evaluation over a folder of images")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--codec", help="codec to sweep")
    what.add_argument("--restorer", help="restorer model: JPEG at --quality, then the model")
    s.add_argument("--data", required=True, help="folder or glob of images")
    s.add_argument("--quality", type=int, nargs="+", help="qualities (default: the codec's sweep; "
                   "restorers: 10 20 30 40)")
    s.add_argument("--json", required=True, help="results JSON to write")
    s.add_argument("--plot", help="RD plot PNG (default: next to the JSON)")
    s.add_argument("--gray", action="store_true", help="restorers: gray/Y protocol")
    s.add_argument("--chroma", choices=("420", "444"), help="chroma subsampling (jpeg, bpg)")
    s.add_argument("--model", help="hiding-jpeg / hiding-bpg: which trained model")
    s.add_argument("--weights", help="evaluate this .weights.h5 (e.g. a training checkpoint) "
                                     "instead of the shipped weights: restorers (--restorer), "
                                     "cwic, hiding-jpeg/hiding-bpg, jpdse-bpg (see `tfcomp "
                                     "compress --help`)")
    s.add_argument("--tables", help="cwic: the context tables (.ctx.npz) of --weights")
    s.add_argument("--keep", metavar="DIR", help="keep the compressed files and decoded PNGs here")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_max_pixels(s)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("plot", help="plot several evaluation JSONs together, with BD-rates")
    s.add_argument("results", nargs="+", help="JSON files from `tfcomp evaluate` (first = anchor)")
    s.add_argument("-o", "--output", required=True, help="PNG to write")
    s.add_argument("--title", help="figure title")
    s.add_argument("--bd-json", help="also write the BD-rate table as JSON")
    s.add_argument("--allow-mixed-data", action="store_true", help="plot results measured on "
                   "different datasets anyway (a warning instead of an error)")
    s.set_defaults(func=cmd_plot)

    s = sub.add_parser("report", help="markdown tables (README) from evaluation JSONs")
    s.add_argument("results", nargs="+", help="JSON files from `tfcomp evaluate` (first = anchor)")
    s.add_argument("--allow-mixed-data", action="store_true", help="tabulate results measured "
                   "on different datasets anyway (a warning instead of an error)")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("export", help="export a model: SavedModel (TF Serving), TFLite, ONNX",
                       description="Export a registered model. savedmodel: OUT/NAME/VERSION/ in "
                       "TF Serving layout and OUT/models.config; tflite: OUT/NAME[-tileT]-QUANT."
                       "tflite; onnx: OUT/NAME[-tileT].onnx; all: every one of those.")
    s.add_argument("--model", required=True, help="model name (see `tfcomp codecs`)")
    s.add_argument("--format", required=True, choices=("savedmodel", "tflite", "onnx", "all"))
    s.add_argument("--quantize", choices=("float16", "int8"),
                   help="TFLite quantisation (default float32; int8 calibrates on JPEG'd photos)")
    s.add_argument("--out", required=True, help="output folder (created)")
    s.add_argument("--version", type=int, default=1, help="SavedModel version (default 1)")
    s.add_argument("--force", action="store_true", help="replace an existing SavedModel version")
    s.add_argument("--tile", type=int, help="TFLite/ONNX: fixed input [1,T,T,C] instead of "
                   "dynamic height and width")
    s.add_argument("--opset", type=int, default=17, help="ONNX opset, 13..17 (default 17)")
    s.add_argument("--weights", help="weights file to export instead of the shipped one "
                   "(e.g. a training run's checkpoint)")
    s.add_argument("--name", help="name of the export (default: the model name)")
    s.add_argument("--serving-base", metavar="DIR", help="base_path prefix written to "
                   "models.config (e.g. /models inside a container; default: absolute paths)")
    s.add_argument("--max-pixels", type=int, default=2048 * 2048,
                   help="largest image the bytes signature decodes (default %(default)s)")
    s.add_argument("--check", action="store_true", help="run the exports and TF on JPEG'd "
                   "photo crops and print the parity table (exit 1 outside tolerance)")
    s.add_argument("--check-quality", type=int, help="quality of the check images (JPEG "
                   "quality, BPG QP; default: 20 for restorers, the model's own otherwise)")
    s.add_argument("--check-json", metavar="FILE", help="with --check: also write the parity "
                   "rows and the check's settings to FILE (JSON; written when a row fails too)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("serve", help="TF-Serving-compatible REST + gRPC server",
                       description="Serve the SavedModels of a TF Serving models.config with "
                       "TF Serving's REST API (/v1/models/...) and gRPC PredictionService / "
                       "ModelService. Stop with Ctrl-C or SIGTERM.")
    s.add_argument("--model-config", required=True, help="models.config (TF Serving text format)")
    s.add_argument("--rest-port", type=int, default=8501, help="REST port (default 8501; 0 = off)")
    s.add_argument("--grpc-port", type=int, default=8500, help="gRPC port (default 8500; 0 = off)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                   "%(default)s; 0.0.0.0 for every interface, as tensorflow_model_server does)")
    s.add_argument("--max-body-mb", type=float, default=64.0,
                   help="largest REST request body / gRPC message in MiB (default 64)")
    s.add_argument("--rest-threads", type=int, default=16, help="concurrent REST requests")
    s.add_argument("--grpc-workers", type=int, default=8, help="gRPC worker threads")
    s.add_argument("--request-timeout", type=float, default=60.0, metavar="S",
                   help="seconds a REST client has to send a whole request (line, headers "
                        "and body) and the longest idle keep-alive wait (default %(default)s)")
    s.add_argument("--max-connections", type=int, default=64, metavar="N",
                   help="open REST connections at most; more are answered 503 and closed "
                        "(default %(default)s)")
    _add_max_pixels(s)
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("demo", help="JPEG + restorer on sample photos shipped with scikit-image")
    s.add_argument("--out", default="demo_out", help="report folder (default %(default)s)")
    s.add_argument("--model", default="restorer-blind", help="restorer (default %(default)s)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("data", help="training data tools: pack images into TFRecord shards")
    data_sub = s.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    s = data_sub.add_parser("pack", help="write images as TFRecord shards for training",
                            description="Pack the images under DIR... into SHARDS_DIR/shard-*"
                            ".tfrecord (+ shards.json), which --data accepts like a folder. "
                            "JPEG and PNG are stored as they are, other formats as lossless PNG.")
    s.add_argument("sources", nargs="+", metavar="DIR", help="image folders or globs")
    s.add_argument("-o", "--output", required=True, metavar="SHARDS_DIR", help="shard folder "
                   "(created; must not hold shards yet)")
    s.add_argument("--shard-size", type=int, default=1000, metavar="N",
                   help="images per shard (default %(default)s)")
    s.set_defaults(func=cmd_data_pack)

    from .train_cli import add_train_command  # no TensorFlow import until a run starts
    add_train_command(sub)
    return p


def _quiet_broken_pipe():
    """The reader of stdout went away (e.g. `| head`): send the rest of stdout to /dev/null so
    the interpreter's final flush cannot complain either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return 0


def main(argv=None):
    """Entry point: returns the exit status (0 ok, 1 user error, 2 usage, 70 internal).

    A closed stdout (``tfcomp codecs --json | head -3``) ends the command quietly with 0,
    like most command-line tools that write to a pager or ``head``.
    """
    args = build_parser().parse_args(argv)
    from .limits import max_pixels, pixel_budget
    budget = getattr(args, "max_pixels", None)
    if budget is None or args.command == "export":  # export's flag is its graph's own limit
        budget = max_pixels()
    try:
        with pixel_budget(budget):
            status = args.func(args)
        sys.stdout.flush()  # a broken pipe shows here, not at exit
        return status
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except TfcompError as e:
        print(f"tfcomp {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tfcomp: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not a user error: one line unless debugging
        if os.environ.get("TFCOMP_DEBUG"):
            raise
        print(f"tfcomp {args.command}: internal error: {type(e).__name__}: {e} "
              "(set TFCOMP_DEBUG=1 for a traceback)", file=sys.stderr)
        return 70
