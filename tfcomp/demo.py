"""`make demo`: JPEG at several qualities + the shipped restorers on scikit-image's sample photos."""

import os

from .errors import InputError

__all__ = ["sample_images", "run_demo"]

#: Photos bundled with scikit-image (no download needed).
SAMPLES = ("astronaut", "coffee", "chelsea")


def sample_images():
    """[(name, uint8 HxWx3)] of the bundled sample photos."""
    from skimage import data
    return [(name, getattr(data, name)()) for name in SAMPLES]


def run_demo(out_dir, model_name="restorer-blind", qualities=(10, 20, 30, 40)):
    """Compresses, restores, prints a table, writes JSON, an RD plot and the images."""
    from .cli import format_table
    from .imageio import write_json
    from .evaluate import evaluate_restorer
    from .models import get_spec
    from .plot import plot_restorers
    spec = get_spec(model_name)
    if not spec.weights_present:
        raise InputError(f"model {model_name!r} has no weights at {spec.weights_path}")
    os.makedirs(out_dir, exist_ok=True)
    images_dir = os.path.join(out_dir, "images")
    result = evaluate_restorer(model_name, sample_images(), qualities, out_dir=images_dir)
    result["data"] = "scikit-image samples: " + ", ".join(SAMPLES)
    json_path = os.path.join(out_dir, "demo.json")
    plot_path = os.path.join(out_dir, "demo_rd.png")
    write_json(json_path, result)
    plot_restorers([result], plot_path)
    rows = [(p["quality"], p["bpp"], p["jpeg"]["psnr"], p["restored"]["psnr"], p["psnr_gain"],
             p["jpeg"]["ssim"], p["restored"]["ssim"]) for p in result["points"]]
    print(f"\nJPEG (Pillow, 4:2:0) + {model_name} on {result['data']} (mean over images, RGB)")
    print(format_table(["JPEG q", "bpp", "PSNR jpeg", "PSNR restored", "gain dB", "SSIM jpeg",
                        "SSIM restored"], rows))
    print(f"\nreport: {json_path}\nRD plot: {plot_path}\nimages (JPEG files, restored PNGs): "
          f"{images_dir}")
    return 0
