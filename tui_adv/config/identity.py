"""What makes two runs the same experiment, as text and as the key the catalog stores and queries.

A run's identity is its config without its labels (name, description, claims, experiment, profile),
validated again first, so a key added to the config model since the run was stored (at its default)
changes nothing: a run of ``configs/softmax.toml`` and the quick profile's softmax step are the same
experiment, and either fills P01. An analysis run's config (what it computes from which parent runs)
is compared as stored.

The catalog keeps :func:`identity_key` on every run row (``runs.identity``, schema 6) with the rule
that computed it (``runs.identity_rule`` = :data:`IDENTITY_RULE`), so "the newest completed run of this
experiment" is one indexed query (``Store.newest_run``). The rule is a fingerprint of the config model
(its fields and defaults); rows stamped with another rule are recomputed when the store next looks one
up. A change to what a stored config *validates to* that the model's JSON schema does not show (a
validator's logic) must bump :data:`_RULE_REVISION`.
"""

from __future__ import annotations

import functools
import hashlib
import json

from .load import validate
from .schema import RunConfig

# what identifies a run's experiment: the config without its labels
LABEL_KEYS = ("name", "description", "claims", "experiment", "profile")
_RULE_REVISION = 1


@functools.lru_cache(maxsize=4096)
def identity(config_json: str | None) -> str:
    """The experiment a stored config describes, as canonical JSON ("" for a config that is not a JSON
    object)."""
    try:
        raw = json.loads(config_json) if config_json else None
    except (TypeError, ValueError):
        return ""
    if not isinstance(raw, dict):
        return ""
    if "model" in raw:  # a run config: validated again, so a key added since (at its default) changes nothing
        try:
            raw = validate(raw).model_dump(mode="json")
        except Exception:  # noqa: BLE001 - a config this version cannot read is compared as stored
            pass
    return json.dumps({k: v for k, v in raw.items() if k not in LABEL_KEYS}, sort_keys=True)


def identity_key(config_json: str | None) -> str:
    """:func:`identity` as the 32 hex digits the catalog stores and indexes."""
    return hashlib.sha256(identity(config_json).encode()).hexdigest()[:32]


def _rule() -> str:
    schema = json.dumps(RunConfig.model_json_schema(), sort_keys=True)
    return hashlib.sha256(f"{_RULE_REVISION}:{schema}".encode()).hexdigest()[:12]


IDENTITY_RULE = _rule()
