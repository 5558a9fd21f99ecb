#!/usr/bin/env python3
"""Restore an image through a TF Serving REST endpoint (`tfcomp serve` or tensorflow_model_server).

    python serving/rest_client.py photo.jpg -o restored.png [--model restorer-blind]
        [--url http://127.0.0.1:8501] [--version N] [--float]

Default: the file's bytes go to the `restore_bytes` signature as {"b64": ...} and the PNG
that comes back (base64, output `restored_bytes`) is written. --float sends the decoded
pixels to `serving_default` instead (needs Pillow and numpy). Standard library otherwise.
"""

import argparse
import base64
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request


def predict(url, model, body, version=None, timeout=300):
    """POSTs a predict request; returns the decoded JSON or raises RuntimeError(server error)."""
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    req = urllib.request.Request(url.rstrip("/") + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("error", "")
        except ValueError:
            message = ""
        raise RuntimeError(f"HTTP {e.code}: {message or e.reason}") from None
    except urllib.error.URLError as e:
        raise RuntimeError(f"cannot reach {url}: {e.reason}") from None


def restore_bytes(url, model, data, version=None):
    """Encoded image bytes (PNG/JPEG) -> restored PNG bytes via `restore_bytes`."""
    out = predict(url, model, {"signature_name": "restore_bytes",
                               "instances": [{"b64": base64.b64encode(data).decode("ascii")}]},
                  version)
    return base64.b64decode(out["predictions"][0]["b64"])


def restore_float(url, model, path, version=None):
    """Decoded pixels -> `serving_default` -> PNG bytes (Pillow + numpy)."""
    import io
    import numpy as np
    from PIL import Image
    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    out = predict(url, model, {"instances": [img.tolist()]}, version)
    arr = np.clip(np.round(np.asarray(out["predictions"][0]) * 255.0), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def write_atomic(path, data):
    """Writes via a temp file + rename: never a partial output file."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".restored.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="image file (PNG or JPEG; any Pillow format with --float)")
    p.add_argument("-o", "--output", required=True, help="restored PNG to write")
    p.add_argument("--url", default="http://127.0.0.1:8501", help="REST base URL")
    p.add_argument("--model", default="restorer-blind")
    p.add_argument("--version", type=int, help="model version (default: the latest served)")
    p.add_argument("--float", action="store_true", help="send pixels to serving_default")
    args = p.parse_args(argv)
    try:
        if args.float:
            png = restore_float(args.url, args.model, args.input, args.version)
        else:
            with open(args.input, "rb") as f:
                png = restore_bytes(args.url, args.model, f.read(), args.version)
        write_atomic(args.output, png)
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        print(f"rest_client: error: {e}", file=sys.stderr)
        return 1
    print(f"{args.output}: {len(png)} bytes from {args.model} at {args.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
