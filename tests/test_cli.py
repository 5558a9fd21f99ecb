"""The tfcomp CLI: round trips through real files, JSON shapes, and clean errors on bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfcomp.cli import main


def natural_image(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 80 * np.sin(x / 7.0 + c) * np.cos(y / 9.0) for c in range(3)], -1)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(natural_image()).save(path)
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("codec,ext", [("jpeg", ".jpg"), ("webp", ".webp"), ("jpeg2000", ".jp2")])
def test_compress_decompress_round_trip(capsys, tmp_path, png, codec, ext):
    comp, dec = tmp_path / f"x{ext}", tmp_path / "y.png"
    code, out, _ = run(capsys, "compress", png, "-o", comp, "--codec", codec)
    assert code == 0 and comp.stat().st_size > 0
    assert f"{comp.stat().st_size} bytes" in out
    code, out, _ = run(capsys, "decompress", comp, "-o", dec)  # codec found from the header
    assert code == 0 and codec in out
    assert np.asarray(Image.open(dec)).shape == (48, 64, 3)


def test_codecs_json_shape(capsys):
    code, out, _ = run(capsys, "codecs", "--json")
    entries = {e["name"]: e for e in json.loads(out)}
    assert code == 0 and {"jpeg", "webp", "jpeg2000", "restorer-blind", "restorer-q10"} <= set(entries)
    for e in entries.values():
        assert e["kind"] in ("classical", "learned", "hiding", "semantic", "restorer")
        assert set(e["quality"]) == {"min", "max", "default"}
        assert e["quality"]["min"] <= e["quality"]["default"] <= e["quality"]["max"]
        assert isinstance(e["weights"], bool) and e["qualities"]


def test_evaluate_codec_json_counts_file_bytes(capsys, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(natural_image(40, 56, seed=i)).save(data / f"im{i}.png")
    keep, out_json = tmp_path / "keep", tmp_path / "r.json"
    code, out, _ = run(capsys, "evaluate", "--codec", "jpeg", "--data", data, "--quality", 20, 60,
                       "--json", out_json, "--keep", keep, "--no-progress")
    assert code == 0
    result = json.loads(out_json.read_text())
    assert result["codec"] == "jpeg" and [p["quality"] for p in result["points"]] == [20, 60]
    for point in result["points"]:
        for img in point["images"]:
            size = (keep / f"{img['name']}_q{point['quality']}.jpg").stat().st_size
            assert img["bpp"] == pytest.approx(8 * size / (40 * 56))
        assert point["bpp"] == pytest.approx(np.mean([i["bpp"] for i in point["images"]]))
    assert result["points"][1]["psnr"] > result["points"][0]["psnr"]
    assert (tmp_path / "r.png").stat().st_size > 1000  # the RD plot


def test_plot_with_bd_rate(capsys, tmp_path):
    def result(name, scale):
        pts = [{"quality": q, "bpp": b * scale, "psnr": p, "ms_ssim": None, "ms_ssim_db": None}
               for q, b, p in ((10, 0.3, 27.0), (30, 0.6, 30.0), (60, 1.0, 33.0), (90, 2.0, 38.0))]
        return {"codec": name, "data": "x", "points": pts}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(result("jpeg", 1.0)))
    b.write_text(json.dumps(result("half", 0.5)))
    code, out, _ = run(capsys, "plot", a, b, "-o", tmp_path / "p.png", "--bd-json", tmp_path / "bd.json")
    assert code == 0 and "-50.00" in out
    assert json.loads((tmp_path / "bd.json").read_text())[0]["bd_rate_psnr"] == pytest.approx(-50.0)


def test_report_compares_each_point_at_equal_quality(capsys, tmp_path):
    # A codec at 0.8x JPEG's bits, with MS-SSIM missing: every point reads -20.0 % at equal
    # PSNR, "-" at equal MS-SSIM; a point above JPEG's measured range reads "-".
    def result(name, scale, extra=()):
        pts = [{"quality": q, "bpp": b * scale, "psnr": p, "ms_ssim": None, "ms_ssim_db": None}
               for q, b, p in ((10, 0.3, 27.0), (30, 0.6, 30.0), (60, 1.0, 33.0), (90, 2.0, 38.0))
               + tuple(extra)]
        return {"codec": name, "data": "x", "points": pts}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(result("jpeg", 1.0)))
    b.write_text(json.dumps(result("less", 0.8, [(99, 3.0, 41.0)])))
    code, out, _ = run(capsys, "report", a, b)
    assert code == 0
    table = out.split("at the same quality", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("| less |")]
    assert len(rows) == 5
    for line in rows[:4]:
        assert line.endswith("| -20.0 % | - | - |"), line
    assert rows[4].endswith("| 2.400 | - | - | - | - |"), rows[4]


@pytest.mark.parametrize("case", ["missing", "text_as_png", "truncated_jpeg", "unknown_codec",
                                  "bad_quality", "no_output_dir", "directory_input", "garbage"])
def test_bad_input_clear_error_no_output(capsys, tmp_path, png, case):
    out = tmp_path / "out.jpg"
    if case == "missing":
        argv = ["compress", tmp_path / "nope.png", "-o", out, "--codec", "jpeg"]
    elif case == "text_as_png":
        (tmp_path / "t.png").write_text("not an image")
        argv = ["compress", tmp_path / "t.png", "-o", out, "--codec", "jpeg"]
    elif case == "truncated_jpeg":
        good = tmp_path / "g.jpg"
        Image.fromarray(natural_image()).save(good, quality=90)
        (tmp_path / "t.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        out = tmp_path / "out.png"
        argv = ["decompress", tmp_path / "t.jpg", "-o", out]
    elif case == "unknown_codec":
        argv = ["compress", png, "-o", out, "--codec", "nosuchcodec"]
    elif case == "bad_quality":
        argv = ["compress", png, "-o", out, "--codec", "jpeg", "--quality", "500"]
    elif case == "no_output_dir":
        out = tmp_path / "missing" / "out.jpg"
        argv = ["compress", png, "-o", out, "--codec", "jpeg"]
    elif case == "directory_input":
        argv = ["compress", tmp_path, "-o", out, "--codec", "jpeg"]
    else:
        (tmp_path / "g.bin").write_bytes(os.urandom(300))
        out = tmp_path / "out.png"
        argv = ["decompress", tmp_path / "g.bin", "-o", out]
    code, stdout, err = run(capsys, *argv)
    assert code == 1
    assert err.startswith("tfcomp ") and "error:" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in out.parent.glob(".*tmp")] == [] if out.parent.exists() else True


def test_console_script_exit_codes_and_help(tmp_path):
    exe = [sys.executable, "-m", "tfcomp"]
    for cmd in ("codecs", "compress", "decompress", "restore", "evaluate", "plot", "demo"):
        r = subprocess.run(exe + [cmd, "--help"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "usage:" in r.stdout, cmd
    r = subprocess.run(exe + ["decompress", str(tmp_path / "none.bpg"), "-o", str(tmp_path / "o.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "no such file" in r.stderr
    r = subprocess.run(exe + ["compress"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "usage:" in r.stderr


def test_evaluate_restorer_checkpoint_weights(capsys, tmp_path):
    from tfcomp.models import get_spec
    from tfcomp.restorer.model import identity_init
    data = tmp_path / "imgs"
    data.mkdir()
    Image.fromarray(natural_image(seed=3)).save(data / "a.png")
    weights = tmp_path / "ckpt.weights.h5"
    # A checkpoint of restorer-blind's own architecture (with its quality gate).
    identity_init(get_spec("restorer-blind").build()).save_weights(str(weights))
    code, out, err = run(capsys, "evaluate", "--restorer", "restorer-blind", "--weights", weights,
                         "--data", data, "--quality", "30", "--json", tmp_path / "r.json",
                         "--no-progress")
    assert code == 0, err
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["weights"] == str(weights)
    p = r["points"][0]  # the identity map restores nothing
    assert abs(p["restored"]["psnr"] - p["jpeg"]["psnr"]) < 1e-6
    code, _, err = run(capsys, "evaluate", "--restorer", "restorer-blind", "--weights",
                       tmp_path / "none.weights.h5", "--data", data, "--json", tmp_path / "s.json")
    assert code != 0 and "--weights" in err and not (tmp_path / "s.json").exists()


def test_demo_writes_table_json_and_plot(tmp_path, capsys):
    # make demo's job on one quality: the shipped blind model on the scikit-image photos.
    from tfcomp.demo import run_demo
    run_demo(str(tmp_path), qualities=(30,))
    out = capsys.readouterr().out
    assert "PSNR restored" in out and "restorer-blind" in out
    with open(tmp_path / "demo.json") as f:
        [point] = json.load(f)["points"]
    assert point["quality"] == 30 and point["psnr_gain"] > 0.5
    assert (tmp_path / "demo_rd.png").stat().st_size > 0
