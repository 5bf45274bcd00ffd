"""The contract every registered defence and attack keeps (docs/architecture.md).

A new plugin module is picked up by its registry and checked here without editing this file:
a typed, strict, frozen Params whose defaults validate and whose schema the UI and CLI can
draw; the declared wire kinds and threat-model knowledge; a Params that is the one the class
is typed with (`Defence[P]` / `Attack[P]`). Needs no data and no weights.
"""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel, ValidationError

from facepriv_core import attacks, defences
from facepriv_core.attacks.base import KNOWLEDGE, Attack, AttackParams
from facepriv_core.defences.base import Defence, DefenceParams, WireKind
from facepriv_core.plugin_catalog import describe_params

WIRE_KINDS = set(typing.get_args(WireKind))
DEFENCES = defences.classes()
ATTACKS = attacks.classes()


def typed_params(cls: type) -> type | None:
    """The P of the nearest `Defence[P]` / `Attack[P]` base in the class's MRO."""
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            args = typing.get_args(base)
            if args and isinstance(args[0], type):
                return args[0]
    return None


def check_params(cls: type, root: type[BaseModel]) -> None:
    params_cls = cls.Params
    assert issubclass(params_cls, root)
    generic = typed_params(cls)
    assert generic is not None, f"{cls.__name__} does not name its Params in its base class"
    assert issubclass(params_cls, generic), (params_cls, generic)
    defaults = params_cls()
    assert params_cls.model_config.get("frozen") and params_cls.model_config.get("extra") == \
        "forbid"
    with pytest.raises(ValidationError):
        params_cls(not_a_parameter_of_anything=1)
    with pytest.raises(ValidationError):
        defaults.__setattr__(next(iter(params_cls.model_fields), "x"), None)
    described = [row["name"] for row in describe_params(params_cls)]
    assert described == list(params_cls.model_fields)


def test_registries_find_the_plugins() -> None:
    assert {"none", "blur", "facemix", "pmt"} <= set(DEFENCES)
    assert {"identity", "decoder_inversion", "whitebox_inversion"} <= set(ATTACKS)


@pytest.mark.parametrize("name", sorted(DEFENCES))
def test_defence_contract(name: str) -> None:
    cls = DEFENCES[name]
    assert issubclass(cls, Defence) and cls.name == name
    assert isinstance(cls.title, str) and cls.title
    assert cls.wire_kind in WIRE_KINDS
    if cls.paper is not None:
        assert cls.paper.title and cls.paper.venue
    check_params(cls, DefenceParams)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_contract(name: str) -> None:
    cls = ATTACKS[name]
    assert issubclass(cls, Attack) and cls.name == name
    assert isinstance(cls.title, str) and cls.title
    assert cls.applies_to and set(cls.applies_to) <= WIRE_KINDS
    assert cls.threat.knows and set(cls.threat.knows) <= set(KNOWLEDGE)
    assert cls.threat.sentence
    check_params(cls, AttackParams)
