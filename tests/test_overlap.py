"""tfcomp.overlap: a test image hidden in the training set (re-saved in gray, cropped by a
pixel, as BSD68 is in train/bsd100) is found and left out of training; other images are not."""

import numpy as np
import pytest
from PIL import Image

from tfcomp import overlap, training_args
from tfcomp.errors import InputError


def photo(seed, h=64, w=96):
    """A distinct smooth colour image per seed: random 4x6 colours, resized bicubically."""
    small = np.random.default_rng(seed).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


@pytest.fixture()
def sets(tmp_path):
    train, test = tmp_path / "train", tmp_path / "test"
    train.mkdir()
    test.mkdir()
    photos = [photo(s) for s in range(4)]
    for i, p in enumerate(photos):
        Image.fromarray(p).save(train / f"img_{i}.png")
    # the test copy of photo 2: gray, one more row and column, JPEG
    bigger = np.pad(photos[2], ((0, 1), (0, 1), (0, 0)), mode="edge")
    Image.fromarray(bigger).convert("L").save(test / "t2.jpg", quality=90)
    Image.fromarray(photo(10)).save(test / "other.png")
    return train, test


def test_the_hidden_copy_is_found_and_nothing_else(sets):
    train, test = sets
    found = overlap.near_duplicates(sorted(map(str, train.iterdir())), sorted(map(str, test.iterdir())))
    assert [(f.rsplit("/", 1)[1], r.rsplit("/", 1)[1]) for f, r, _ in found] == [("img_2.png", "t2.jpg")]
    assert found[0][2] < overlap.DUPLICATE_THRESHOLD / 2


def test_exclude_flag_leaves_the_copy_out_of_training(sets, capsys):
    train, test = sets
    p = training_args.training_parser("doc", out_help="out")
    args = p.parse_args(["--data", str(train), "--run-dir", "r", "--exclude", str(test)])
    files = training_args.run_options(args)["data"]
    assert sorted(f.rsplit("/", 1)[1] for f in files) == ["img_0.png", "img_1.png", "img_3.png"]
    assert "left out 1 of 4" in capsys.readouterr().err
    # without --exclude the folders pass through untouched
    args = p.parse_args(["--data", str(train), "--run-dir", "r"])
    assert training_args.run_options(args)["data"] == [str(train)]


def test_everything_excluded_or_missing_is_an_input_error(sets, capsys):
    train, _ = sets
    with pytest.raises(InputError, match="every training image"):
        overlap.exclude_near_duplicates(str(train), str(train))
    assert overlap.main(["--train", str(train / "nothing-here"), "--eval", str(train)]) == 2
    assert "no images found" in capsys.readouterr().err
    assert overlap.main(["--train", str(train), "--eval", str(train)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split()[-2:] == ["4", "4"]
