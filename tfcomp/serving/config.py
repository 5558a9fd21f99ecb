"""TF Serving's models.config (ModelServerConfig text proto): parsing and version policies."""

import dataclasses
import os

from ..errors import InputError

__all__ = ["ModelEntry", "parse_config_text", "read_config", "resolve_versions"]


@dataclasses.dataclass
class ModelEntry:
    """One `config { ... }` of a model_config_list, with base_path made absolute."""

    name: str
    base_path: str
    policy: str                    # "latest", "all" or "specific"
    num_versions: int = 1          # for "latest"
    versions: tuple = ()           # for "specific"
    labels: dict = dataclasses.field(default_factory=dict)   # label -> version


def parse_config_text(text, source="models.config"):
    """The ModelServerConfig proto of a text-format models.config; InputError if malformed."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise InputError(f"{source}: not a TF Serving model config: {e}") from None
    return config


def read_config(path):
    """[ModelEntry] of a models.config file. Relative base_paths resolve against its folder."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such model config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read model config: {e}") from None
    config = parse_config_text(text, path)
    if config.WhichOneof("config") == "custom_model_config":
        raise InputError(f"{path}: custom_model_config is not supported; use model_config_list")
    entries, names = [], set()
    folder = os.path.dirname(os.path.abspath(path))
    for c in config.model_config_list.config:
        if not c.name:
            raise InputError(f"{path}: a config entry has no name")
        if c.name in names:
            raise InputError(f"{path}: model {c.name!r} is listed twice")
        names.add(c.name)
        if c.model_platform not in ("", "tensorflow"):
            raise InputError(f"{path}: model {c.name!r}: model_platform {c.model_platform!r} "
                             "is not supported (only \"tensorflow\")")
        if not c.base_path:
            raise InputError(f"{path}: model {c.name!r} has no base_path")
        base = c.base_path if os.path.isabs(c.base_path) else os.path.join(folder, c.base_path)
        which = c.model_version_policy.WhichOneof("policy_choice") or "latest"
        entry = ModelEntry(c.name, os.path.normpath(base), which)
        if which == "latest":
            entry.num_versions = c.model_version_policy.latest.num_versions or 1
        elif which == "specific":
            entry.versions = tuple(sorted(set(c.model_version_policy.specific.versions)))
            if not entry.versions:
                raise InputError(f"{path}: model {c.name!r}: specific policy lists no versions")
        entry.labels = dict(c.version_labels)
        entries.append(entry)
    if not entries:
        raise InputError(f"{path}: lists no models")
    return entries


def available_versions(base_path):
    """Integer-named version folders holding a saved_model.pb, ascending."""
    try:
        names = os.listdir(base_path)
    except OSError:
        return []
    return sorted(int(v) for v in names if v.isdigit() and
                  os.path.isfile(os.path.join(base_path, v, "saved_model.pb")))


def resolve_versions(entry):
    """The versions of `entry` its policy serves (TF Serving's rules); InputError if none."""
    found = available_versions(entry.base_path)
    if entry.policy == "all":
        chosen = found
    elif entry.policy == "specific":
        missing = [v for v in entry.versions if v not in found]
        if missing:
            raise InputError(f"model {entry.name!r}: versions {missing} not found under "
                             f"{entry.base_path}")
        chosen = list(entry.versions)
    else:
        chosen = found[-entry.num_versions:]
    if not chosen:
        raise InputError(f"model {entry.name!r}: no SavedModel version folder (an integer folder "
                         f"with saved_model.pb) under {entry.base_path}")
    for label, v in entry.labels.items():
        if v not in chosen:
            raise InputError(f"model {entry.name!r}: label {label!r} points to version {v}, "
                             "which is not served")
    return chosen
