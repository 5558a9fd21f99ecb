"""A seeded mutation fuzzer for the Python-side parsers: .cwic, .jpdse, hiding-jpeg, JPEG, BPG
and the image reader.

Each target decodes one input and may only fail with the project's own errors
(:class:`tfcomp.errors.TfcompError`); anything else is a *crash*. An input that takes longer
than ``time_limit`` seconds is a *hang*, one that grows the peak memory by more than
``memory_mb`` is a *memory* finding. Inputs are mutations (bit flips, byte and integer
overwrites, cuts, repeats, splices) of small valid files made at start-up; for the formats
with a checksum (.cwic, .jpdse) most mutants get their CRC fixed so the parsers behind it are
reached. Every decode runs under a small pixel budget (:data:`FUZZ_MAX_PIXELS`) so forged
sizes are exercised quickly.

    python -m tfcomp.fuzz --seconds 60 --out fuzz_findings     (what `make fuzz-py` runs)

runs every target in its own worker process, watched by the parent: a worker that dies,
stops answering (a hang inside C code) or passes ``--memory-mb`` of resident memory is
killed and its current input kept. :func:`fuzz` runs one target in-process (the tests).
Findings are written to the output folder as ``KIND-TARGET-HASH.bin``; fixed ones belong in
tests/data/py_fuzz_regressions/TARGET/.
"""

import argparse
import hashlib
import io
import json
import os
import random
import resource
import struct
import subprocess
import sys
import time
import traceback
import warnings
import zlib

import numpy as np

from . import limits
from .errors import TfcompError

__all__ = ["TARGETS", "FUZZ_MAX_PIXELS", "Finding", "seeds", "mutate", "run_one", "fuzz",
           "replay", "main"]

#: The pixel budget while fuzzing: forged sizes above it are refused, below it decode fast.
FUZZ_MAX_PIXELS = 256 * 256

_INTERESTING = (0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
                0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


class Finding(dict):
    """One finding: {"target", "kind" (crash/hang/memory), "detail", "input" (bytes)}."""

    @property
    def name(self):
        digest = hashlib.sha1(self["input"]).hexdigest()[:12]
        return f"{self['kind']}-{self['target']}-{digest}.bin"


# -- seed files ---------------------------------------------------------------------------------
def _image(h=24, w=32, seed=0):
    """A small smooth RGB test image with some texture (uint8)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1),
                     (x + y) * 127 // max(h + w - 2, 1)], axis=-1)
    return np.clip(base + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def _pillow_bytes(array, fmt, **kw):
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _image_seeds():
    rgb = _image()
    gray = rgb[:, :, 0]
    out = [_pillow_bytes(rgb, "PNG"), _pillow_bytes(gray, "PNG"),
           _pillow_bytes(rgb, "JPEG", quality=60), _pillow_bytes(rgb, "JPEG", progressive=True),
           _pillow_bytes(rgb, "BMP"), _pillow_bytes(rgb, "TIFF"), _pillow_bytes(rgb, "GIF"),
           _pillow_bytes(rgb, "WEBP", quality=50), _pillow_bytes(gray, "PPM")]
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("P").save(buf, format="PNG", transparency=0)
    out.append(buf.getvalue())
    return out


def _jpeg_seeds():
    from .codecs.classical import JpegCodec
    rgb = _image()
    return [JpegCodec().encode(rgb, 50), JpegCodec(chroma="444").encode(rgb[:, :, :1], 80),
            _pillow_bytes(rgb, "JPEG", progressive=True)]


def _hiding_seeds():
    from .codecs import get_codec
    from .hiding.codec import COMMENT_PREFIX
    codec = get_codec("hiding-jpeg")
    rgb = _image(16, 16)
    named = codec.plain.jpeg_bytes(rgb, 50, comment=COMMENT_PREFIX + b"hiding-jpeg-q50-s1")
    return [named, codec.plain.jpeg_bytes(rgb, 30), codec.encode(rgb, 50)]


def _bpg_seeds():
    from .codecs import bpg
    rgb = _image(16, 16)
    return [bpg.encode(rgb, 40), bpg.encode(rgb[:, :, :1], 45)]


def _cwic_seeds():
    from .codecs import get_codec
    rng = np.random.default_rng(5)
    noisy = np.clip(_image(48, 64).astype(int) + rng.integers(-50, 50, (48, 64, 3)), 0, 255)
    return [get_codec("cwic").encode(_image(16, 24), 1),
            get_codec("cwic").encode(noisy.astype(np.uint8), 3)]


def _jpdse_seeds():
    from .codecs import bpg
    from .jpdse.semantic import encode_side_info, pack_jpdse
    rgb = _image(16, 16)
    labels = np.zeros((16, 16), np.uint8)
    labels[:, 8:] = 7
    labels[4:9, 2:6] = 26
    base = bpg.encode(rgb, 40)
    return [pack_jpdse(base, encode_side_info(labels), 16, 16, 40, 1),
            pack_jpdse(base, encode_side_info(labels, scale=16), 16, 16, 40, 1, bytes(8)),
            pack_jpdse(base, encode_side_info(labels, scale=4), 16, 16, 40, 2, b"weights!")]


# -- targets ------------------------------------------------------------------------------------
def _run_image(data):
    from .imageio import image_from_bytes
    image_from_bytes(data, mode="any")


def _run_jpeg(data):
    from .codecs import get_codec
    limits.jpeg_frame(data)
    get_codec("jpeg").decode(data)


def _run_hiding(data):
    from .codecs import get_codec
    get_codec("hiding-jpeg").decode(data)


def _run_bpg(data):
    from .codecs import bpg
    limits.bpg_size(data)
    bpg.decode(data)


def _run_cwic(data):
    """The .cwic parser and the reference stream decoder (tfcomp.cwic.coding), no networks."""
    from . import models
    from .codecs import get_codec
    from .cwic.codec import unpack
    from .cwic.coding import decode_streams
    from .errors import BitstreamError
    parts = unpack(data)
    rate = getattr(parts, "rate", parts[0])
    specs = get_codec("cwic")._specs()
    if rate not in specs:
        raise BitstreamError(f"cwic: unknown rate model {rate}")
    height, width, map_stream, bit_stream = parts[-4:]
    try:
        decode_streams(map_stream, bit_stream, -(-height // 8), -(-width // 8),
                       models.load_extra(specs[rate].name))
    except ValueError as e:
        raise BitstreamError(f"cwic: {e}") from None


def _run_jpdse(data):
    from .codecs import get_codec
    from .jpdse.semantic import decode_side_info, unpack_jpdse
    try:
        parts = unpack_jpdse(data)
        decode_side_info(parts["side_info"], parts["height"], parts["width"])
    except TfcompError:
        pass
    get_codec("jpdse-bpg").decode(data)


def _fix_cwic_crc(data):
    """Recomputes the CRC of a .cwic file: the header's last 4 bytes cover everything after
    the header (18 bytes in version 2, 26 in version 3 with its model id)."""
    from .cwic.codec import HEADERS
    if len(data) < 6 or data[:4] != b"CWIC" or data[4] not in HEADERS:
        return data
    size = HEADERS[data[4]].size
    if len(data) < size:
        return data
    return data[:size - 4] + struct.pack(">I", zlib.crc32(data[size:])) + data[size:]


def _fix_jpdse_crc(data):
    """Recomputes the CRC of a .jpdse file: the header's last 4 bytes cover the bytes before
    them and the body (19-byte header in version 1, 27 in version 2 with its weights id)."""
    from .jpdse.semantic import _HEADERS
    if len(data) < 5 or data[:4] != b"JPDS" or data[4] not in _HEADERS:
        return data
    size = _HEADERS[data[4]].size
    if len(data) < size:
        return data
    crc = zlib.crc32(data[size:], zlib.crc32(data[:size - 4])) & 0xFFFFFFFF
    return data[:size - 4] + struct.pack(">I", crc) + data[size:]


#: name -> (seed maker, decode function, checksum fixer or None).
TARGETS = {
    "image": (_image_seeds, _run_image, None),
    "jpeg": (_jpeg_seeds, _run_jpeg, None),
    "hiding-jpeg": (_hiding_seeds, _run_hiding, None),
    "bpg": (_bpg_seeds, _run_bpg, None),
    "cwic": (_cwic_seeds, _run_cwic, _fix_cwic_crc),
    "jpdse": (_jpdse_seeds, _run_jpdse, _fix_jpdse_crc),
}


def seeds(target):
    """The valid seed files of a target (made fresh, deterministic)."""
    with limits.pixel_budget(max(limits.max_pixels(), FUZZ_MAX_PIXELS)):
        return TARGETS[target][0]()


# -- mutation -----------------------------------------------------------------------------------
def _position(rng, n, header_bias=0.5):
    """A byte position, often in the first 32 bytes where the headers are."""
    if n == 0:
        return 0
    if rng.random() < header_bias:
        return rng.randrange(min(n, 32))
    return rng.randrange(n)


def mutate(data, rng, pool=(), max_len=1 << 16):
    """One to four random edits of ``data`` (bytes) -> new bytes, at most ``max_len`` long."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        n = len(out)
        if op == 0 and n:  # flip a bit
            out[_position(rng, n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # set a byte
            out[_position(rng, n)] = rng.randrange(256)
        elif op == 2 and n:  # an interesting integer, 1/2/4 bytes big- or little-endian
            size = rng.choice((1, 2, 4))
            value = rng.choice(_INTERESTING) & ((1 << (8 * size)) - 1)
            pos = _position(rng, max(n - size + 1, 1))
            out[pos:pos + size] = value.to_bytes(size, rng.choice(("big", "little")))
        elif op == 3 and n:  # cut the end
            del out[rng.randrange(n):]
        elif op == 4 and n > 1:  # delete a range
            a = rng.randrange(n)
            del out[a:a + rng.randint(1, max(1, min(64, n - a)))]
        elif op == 5 and n:  # repeat a range
            a = rng.randrange(n)
            chunk = out[a:a + rng.randint(1, 256)]
            out[a:a] = chunk * rng.randint(1, 8)
        elif op == 6:  # insert random bytes
            pos = rng.randrange(n + 1)
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 7 and pool:  # splice with another seed
            other = rng.choice(pool)
            a, b = rng.randrange(n + 1), rng.randrange(len(other) + 1)
            out = out[:a] + other[b:]
        elif op == 8 and n:  # overwrite a range with one value
            a = rng.randrange(n)
            out[a:a + rng.randint(1, 64)] = bytes([rng.choice((0, 0xFF))]) * rng.randint(1, 64)
    return bytes(out[:max_len])


# -- running ------------------------------------------------------------------------------------
def _peak_rss_mb():
    """This process's peak resident memory in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(target, data, time_limit=5.0, memory_mb=1024.0):
    """Decodes ``data`` with ``target`` under the fuzzing budget; a Finding or None."""
    run = TARGETS[target][1]
    before = _peak_rss_mb()
    start = time.monotonic()
    finding = None
    try:
        with limits.pixel_budget(FUZZ_MAX_PIXELS), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about most mutants
            run(data)
    except TfcompError:
        pass
    except Exception as e:  # noqa: BLE001 - any other exception is what we look for
        tb = traceback.extract_tb(e.__traceback__)[-1]
        finding = Finding(target=target, kind="crash", input=data,
                          detail=f"{type(e).__name__}: {str(e)[:200]} "
                                 f"({os.path.basename(tb.filename)}:{tb.lineno})")
    elapsed = time.monotonic() - start
    grown = _peak_rss_mb() - before
    if finding is None and elapsed > time_limit:
        finding = Finding(target=target, kind="hang", input=data,
                          detail=f"took {elapsed:.1f} s (limit {time_limit} s)")
    if finding is None and grown > memory_mb:
        finding = Finding(target=target, kind="memory", input=data,
                          detail=f"peak memory grew by {grown:.0f} MB (limit {memory_mb} MB)")
    return finding


def fuzz(target, seconds=None, iterations=None, seed=0, time_limit=5.0, memory_mb=1024.0,
         on_input=None):
    """Fuzzes one target in this process: stops after ``seconds`` (not counting the seeds)
    or ``iterations``, whichever comes first.

    Returns (findings, number of inputs run). ``on_input(data)`` is called before each run.
    """
    if seconds is None and iterations is None:
        raise ValueError("give seconds or iterations")
    rng = random.Random(f"{target}:{seed}")
    pool = seeds(target)
    fixup = TARGETS[target][2]
    findings, count = [], 0
    for data in pool:  # the seeds themselves must decode cleanly (and warm the models up)
        finding = run_one(target, data, time_limit, memory_mb)
        if finding is not None:
            findings.append(finding)
    start = time.monotonic()
    while (iterations is None or count < iterations) and \
            (seconds is None or time.monotonic() - start < seconds):
        data = mutate(rng.choice(pool), rng, pool)
        if fixup is not None and rng.random() < 0.9:
            data = fixup(data)
        if on_input is not None:
            on_input(data)
        finding = run_one(target, data, time_limit, memory_mb)
        count += 1
        if finding is not None:
            findings.append(finding)
    return findings, count


def replay(target, paths, time_limit=5.0, memory_mb=1024.0):
    """Runs saved inputs (e.g. regression files) through a target: the list of Findings.

    The target's seeds are made first, so imports and model loads are not timed."""
    seeds(target)
    out = []
    for path in paths:
        with open(path, "rb") as f:
            finding = run_one(target, f.read(), time_limit, memory_mb)
        if finding is not None:
            finding["detail"] += f" [{path}]"
            out.append(finding)
    return out


# -- the supervised command ---------------------------------------------------------------------
def _save(out_dir, finding):
    path = os.path.join(out_dir, finding.name)
    with open(path, "wb") as f:
        f.write(finding["input"])
    return path


def _worker(args):
    """The child process: fuzz one target, report findings as JSON lines on stdout."""
    current = os.path.join(args.out, f".current-{args.target}")

    def on_input(data):
        with open(current, "wb") as f:
            f.write(data)

    findings, count = fuzz(args.target, seconds=args.seconds, seed=args.seed,
                           time_limit=args.time_limit, memory_mb=args.memory_mb,
                           on_input=on_input)
    for finding in findings:
        path = _save(args.out, finding)
        print(json.dumps({"kind": finding["kind"], "detail": finding["detail"], "path": path}),
              flush=True)
    print(json.dumps({"done": count}), flush=True)
    return 0


def _rss_mb(pid):
    """Resident memory of a process in MB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _supervise(target, args):
    """Runs workers for ``target`` until ``args.seconds`` are used; returns its findings."""
    findings, runs, seed = [], 0, args.seed
    deadline = time.monotonic() + args.seconds
    current = os.path.join(args.out, f".current-{target}")
    if os.path.exists(current):
        os.unlink(current)
    while time.monotonic() < deadline - 1:
        left = deadline - time.monotonic()
        cmd = [sys.executable, "-m", "tfcomp.fuzz", "--worker", target, "--seconds",
               f"{left:.1f}", "--seed", str(seed), "--out", args.out, "--time-limit",
               str(args.time_limit), "--memory-mb", str(args.memory_mb)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        killed = None
        while proc.poll() is None:
            time.sleep(0.2)
            stalled = time.time() - os.path.getmtime(current) if os.path.exists(current) else 0
            if _rss_mb(proc.pid) > args.memory_mb + 1500:  # TensorFlow itself takes ~1 GB
                killed = ("memory", f"resident memory over {args.memory_mb + 1500:.0f} MB")
            elif stalled > 4 * args.time_limit + 60:
                killed = ("hang", f"no progress for {stalled:.0f} s")
            elif time.monotonic() > deadline + 4 * args.time_limit + 120:
                killed = ("hang", "the worker did not stop")
            if killed:
                proc.kill()
                break
        out, _ = proc.communicate()
        for line in out.splitlines():
            record = json.loads(line)
            if "done" in record:
                runs += record["done"]
            else:
                findings.append(record)
        if killed or proc.returncode not in (0, None):
            kind, detail = killed or ("crash", f"the worker died (exit {proc.returncode})")
            data = open(current, "rb").read() if os.path.exists(current) else b""
            finding = Finding(target=target, kind=kind, input=data, detail=detail)
            findings.append({"kind": kind, "detail": detail, "path": _save(args.out, finding)})
            seed += 1000  # carry on with other inputs
            continue
        break
    if os.path.exists(current):
        os.unlink(current)
    return findings, runs


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tfcomp.fuzz", description=__doc__.split("\n")[0])
    p.add_argument("--targets", nargs="+", choices=sorted(TARGETS), default=list(TARGETS),
                   help="targets to fuzz (default: all)")
    p.add_argument("--seconds", type=float, default=60.0, help="seconds per target")
    p.add_argument("--seed", type=int, default=0, help="random seed (runs are reproducible)")
    p.add_argument("--out", default="fuzz_findings", help="folder for the findings")
    p.add_argument("--time-limit", type=float, default=5.0, help="seconds one input may take")
    p.add_argument("--memory-mb", type=float, default=1024.0,
                   help="peak memory growth one input may cause")
    p.add_argument("--worker", metavar="TARGET", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.worker:
        args.target = args.worker
        return _worker(args)
    total = 0
    for target in args.targets:
        findings, runs = _supervise(target, args)
        print(f"{target}: {runs} inputs, {len(findings)} finding(s)", flush=True)
        for f in findings:
            print(f"  {f['kind']}: {f['detail']} -> {f['path']}", flush=True)
        total += len(findings)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
