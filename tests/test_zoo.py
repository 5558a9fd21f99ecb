"""The model zoo (tfcomp.zoo, `tfcomp models`): complete, current, and read from results/."""

import contextlib
import io
import json
import os

import pytest

from tfcomp import models, zoo
from tfcomp.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def shipped():
    return {e["name"]: e for e in zoo.read_zoo()}


def test_every_registered_model_is_in_the_zoo(shipped):
    assert set(shipped) == set(models.model_names())


def test_zoo_matches_the_weights_and_results_on_disk(shipped):
    """zoo.json is regenerated whenever weights or evaluation JSONs change (make_zoo.py)."""
    fresh = {e["name"]: e for e in zoo.build_zoo(os.path.join(ROOT, "results"),
                                                 count_params=False)}
    for name, entry in shipped.items():
        assert entry["weights_sha256"] == fresh[name]["weights_sha256"], name
        assert entry["eval"] == fresh[name]["eval"], name
        assert entry["trained_with"] == models.get_spec(name).trained_with


def test_parameter_counts(shipped):
    assert shipped["restorer-q10"]["params"] == 313_066
    assert shipped["restorer-blind"]["params"] == 313_066 + 4_259


def test_restorer_numbers_come_from_its_evaluation(shipped):
    with open(os.path.join(ROOT, "results", "restorers", "restorer-blind-mcmaster.json")) as f:
        result = json.load(f)
    points = shipped["restorer-blind"]["eval"]["points"]
    assert [p["quality"] for p in points] == [p["quality"] for p in result["points"]]
    assert points[0]["psnr_gain"] == result["points"][0]["psnr_gain"]


def test_models_command_json_and_table():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["models", "--json"]) == 0
    assert {e["name"] for e in json.loads(out.getvalue())} == set(models.model_names())
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["models"]) == 0
    assert "restorer-blind" in out.getvalue() and "313,066" in out.getvalue()


def test_missing_zoo_is_a_clean_error(tmp_path):
    from tfcomp.errors import InputError
    with pytest.raises(InputError, match="make_zoo"):
        zoo.read_zoo(str(tmp_path / "none.json"))
