"""JPD-SE training data: whole frames and aligned random crops from tfcomp.jpdse.data."""

import numpy as np
import pytest

from tfcomp.errors import InputError
from tfcomp.jpdse.data import CROP_ALIGN, frame_dataset, multi_size_dataset


def records(n=2, h=64, w=96):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        labels = rng.integers(0, 34, (h, w), dtype=np.uint8)
        out.append({"name": f"f{i}", "rgb": rgb, "labels": labels,
                    "instances": labels.astype(np.int32), "decoded": {36: 255 - rgb}})
    return out


def test_whole_frames_and_crops_come_from_the_same_window():
    recs = records()
    whole = next(iter(frame_dataset(recs, batch_size=1, flip=False, shuffle=False)))
    assert whole[0][0].shape == (1, 64, 96, 36) and whole[1].shape == (1, 64, 96, 3)
    ds = frame_dataset(recs, batch_size=1, flip=False, shuffle=False, crop=(32, 16), seed=3)
    offsets = set()
    for (sem, dec), tgt in ds.take(12):
        assert sem.shape == (1, 16, 32, 36) and dec.shape == tgt.shape == (1, 16, 32, 3)
        t = np.round(tgt.numpy()[0] * 255).astype(np.uint8)
        found = [(r, y, x) for r, rec in enumerate(recs)
                 for y in range(0, 64 - 16 + 1, CROP_ALIGN) for x in range(0, 96 - 32 + 1, CROP_ALIGN)
                 if np.array_equal(rec["rgb"][y:y + 16, x:x + 32], t)]
        assert len(found) == 1
        r, y, x = found[0]
        # The decoded image and the semantics are cut from the same place.
        np.testing.assert_array_equal(np.round(dec.numpy()[0] * 255), 255 - t)
        np.testing.assert_array_equal(np.argmax(sem.numpy()[0, ..., :35], -1),
                                      recs[r]["labels"][y:y + 16, x:x + 32])
        offsets.add((y, x))
    assert len(offsets) > 3  # the windows move


def test_crop_larger_than_the_frames_is_refused():
    with pytest.raises(InputError, match="crop"):
        frame_dataset(records(), crop=(128, 16))


def test_several_sizes_are_mixed_and_each_crop_comes_from_one_of_them():
    small, big = records(h=32, w=48), records(h=64, w=96)
    ds = multi_size_dataset([small, big], crop=(32, 16), batch_size=2, seed=1)
    seen = set()
    for (sem, dec), tgt in ds.take(24):
        assert sem.shape == (2, 16, 32, 36) and dec.shape == tgt.shape == (2, 16, 32, 3)
        t = np.round(tgt.numpy()[0] * 255).astype(np.uint8)
        # (training crops are mirrored half of the time)
        where = {k for k, recs in enumerate((small, big)) for rec in recs
                 for y in range(0, rec["rgb"].shape[0] - 16 + 1, CROP_ALIGN)
                 for x in range(0, rec["rgb"].shape[1] - 32 + 1, CROP_ALIGN)
                 for w in (t, t[:, ::-1])
                 if np.array_equal(rec["rgb"][y:y + 16, x:x + 32], w)}
        assert len(where) == 1
        seen |= where
    assert seen == {0, 1}  # both sizes are drawn
    with pytest.raises(InputError, match="crop"):
        multi_size_dataset([small, big], crop=None)


@pytest.mark.parametrize("flags, message", [
    (["--crop", "256", "256", "--extra-sizes", "1536"], "W H pairs"),
    (["--extra-sizes", "1536", "768"], "needs --crop"),
    (["--crop", "256", "256", "--extra-sizes", "1530", "768"], "multiples of 8"),
    (["--crop", "256", "256", "--extra-sizes", "512", "128"], "larger than --extra-sizes"),
    (["--crop", "250", "256"], "multiples of 8"),
    (["--crop", "2048", "256"], "larger than --size"),
    (["--size", "1004", "512"], "multiples of 8"),
])
def test_train_script_refuses_bad_sizes(flags, message, capsys, tmp_path):
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "training", "train_jpdse.py")
    spec = importlib.util.spec_from_file_location("train_jpdse", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as e:
        script.main(["--data", str(tmp_path), "--phase", "3", "--config", "narrow_local",
                     "--run-dir", str(tmp_path / "r")] + flags)
    assert e.value.code == 2 and message in capsys.readouterr().err
