"""A zoo function given an argument it does not take says so, naming it and the accepted ones;
every name it lists really is accepted."""

from __future__ import annotations

import re

import pytest

import xinit
from xinit.models import ZOO


@pytest.mark.parametrize("name", list(ZOO))
def test_unknown_argument_names_it_and_the_accepted_ones(name):
    with pytest.raises(TypeError, match=rf"^{name}\(\): unknown argument 'bogus_kwarg'") as err:
        getattr(xinit.models, name)(bogus_kwarg=1)
    accepted = re.search(r"\(it accepts: (.*)\)$", str(err.value))[1].split(", ")
    for arg in accepted:  # each one reaches the model's code (a sentinel then fails there)
        try:
            ZOO[name](**{arg: object()})
        except Exception as error:  # noqa: BLE001 - what matters is which error it is
            assert not re.search("unexpected keyword|multiple values|unknown argument", str(error))


def test_a_misspelt_argument_gets_a_suggestion():
    with pytest.raises(TypeError, match="did you mean 'num_classes'.*in_channels"):
        xinit.models.get("resnet18", num_class=10)
    assert xinit.models.resnet18(num_classes=10, zero_init_residual=True) is not None
