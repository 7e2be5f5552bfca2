"""student_src.diagnose on tensors: every signature is found and named, a correct answer within the
tolerance gets no diagnosis, and unrelated noise gets the generic message. Fast (no model)."""

from __future__ import annotations

import pytest
import torch

from student_src import checks, diagnose

TOLERANCE = 1e-5


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _per_image_min_max(maps: torch.Tensor) -> torch.Tensor:
    shifted = maps - maps.amin(dim=(1, 2), keepdim=True)
    return shifted / shifted.amax(dim=(1, 2), keepdim=True)


def _maps() -> torch.Tensor:
    """Three 6x6 maps, each min-max scaled on its own, of very different raw scales."""
    return torch.rand(3, 6, 6, generator=_generator(1)) * torch.tensor([1.0, 3.0, 2.0]).view(3, 1, 1)


def _message(got, expected, **options) -> str:
    with pytest.raises(AssertionError) as caught:
        checks.assert_close(got, expected, TOLERANCE, "the thing", **options)
    return str(caught.value)


VALUES = torch.randn(3, 8, generator=_generator(2))
RAW = _maps()
SCALED = _per_image_min_max(RAW)
SHIFTED_REGIONS = VALUES + torch.tensor([1.0, -1.0, 0, 0, 0, 0, 0, 0])  # each row's sum unchanged
MASKED = torch.where(SCALED < 0.3, torch.zeros(()), SCALED)

#: (name, got, expected, options, the phrase the signature must contain)
SIGNATURES = [
    ("flipped sign", -VALUES, VALUES, {}, "is minus the expected values: a flipped sign"),
    ("anti-correlated", -VALUES + 0.01 * torch.randn(3, 8, generator=_generator(3)), VALUES, {},
     "is anti-correlated with the expected values"),
    ("a sum instead of a mean", 16 * VALUES, VALUES, {}, "is 16 times the expected values (a constant factor)"),
    ("a mean instead of a sum", VALUES / 16, VALUES, {}, "is 1/16 times the expected values"),
    ("another factor", 1.7 * VALUES, VALUES, {}, "is 1.7 times the expected values"),
    ("negative values", SCALED - 0.3, SCALED.clamp(min=0.3) - 0.3, {}, "negative values"),
    ("scaled over the batch", (RAW - RAW.min()) / (RAW.max() - RAW.min()), SCALED, {},
     "was min-max scaled over the whole batch, not per image"),
    ("an integer dtype", VALUES.long(), VALUES, {}, "is an integer tensor (torch.int64) where floats are needed"),
    ("whole numbers", VALUES.trunc(), VALUES, {}, "has only whole numbers where"),
    ("an average of whole numbers", VALUES.trunc() / 3, VALUES, {}, "has only whole numbers divided by 3"),
    ("the same values, reordered", VALUES.roll(1, dims=1), VALUES, {}, "has each image's expected values at the wrong"),
    ("credited to the wrong regions", SHIFTED_REGIONS, VALUES, {"axes": ("image", "region")},
     "has the right total per image, spread over the wrong regions: credit v(S + {i}) - v(S) to the region just added"),
    ("zeros kept positive", SCALED, MASKED, {}, "where the expected map is 0: a ReLU missing on the map?"),
    ("a known mistake", VALUES * torch.tensor([1.0, 2.0, 3.0]).view(3, 1), VALUES,
     {"known_mistakes": {"scores multiplied by the class number": lambda: VALUES * torch.tensor([1.0, 2.0, 3.0])[:, None]}},
     "yours matches a known mistake: scores multiplied by the class number"),
]


@pytest.mark.parametrize("name, got, expected, options, phrase", SIGNATURES, ids=[s[0] for s in SIGNATURES])
def test_every_signature_is_named(name, got, expected, options, phrase):
    message = _message(got, expected, **options)
    assert message.startswith("the thing: yours "), message
    assert phrase in message, message
    assert "relative error" in message


def test_an_integer_tensor_fails_even_when_its_values_are_right():
    """The buffer that passed its own cell (whole-number expected values) fails it now."""
    message = _message(torch.tensor([[0, 3, 4, 8, 10]]), torch.tensor([[0.0, 3.0, 4.0, 8.0, 10.0]]))
    assert "is an integer tensor (torch.int64)" in message and "relative error 0.00e+00" in message


@pytest.mark.parametrize("expected", [VALUES, SCALED, MASKED, SHIFTED_REGIONS], ids=["values", "maps", "masked", "rows"])
def test_a_correct_answer_within_the_tolerance_gets_no_diagnosis(expected):
    noise = 1e-7 * torch.randn(expected.shape, generator=_generator(4))
    got = expected + noise
    assert diagnose.signature(got, expected, TOLERANCE, axes=("image", "region")) is None
    assert checks.assert_close(got, expected, TOLERANCE, "the thing") <= TOLERANCE


def test_random_noise_gets_the_generic_message():
    got, expected = torch.randn(3, 5, 5, generator=_generator(5)), torch.randn(3, 5, 5, generator=_generator(6))
    assert diagnose.signature(got, expected, TOLERANCE) is None
    message = _message(got, expected)
    assert message.startswith("the thing: differs without a pattern this check knows (correlation "), message


def test_where_names_the_images_channels_and_region_and_the_first_element():
    expected = torch.randn(3, 4, 5, 5, generator=_generator(7))
    got = expected.clone()
    got[1, 2, 1:3, 0] += 1.0
    message = _message(got, expected)
    assert "only image 1 differs; channel 2 only; rows 1-2, columns 0-0; first at [1, 2, 1, 0]: " in message
    first_got, first_expected = got[1, 2, 1, 0].item(), expected[1, 2, 1, 0].item()
    assert f"yours {first_got:.4g}, expected {first_expected:.4g}" in message


def test_a_hidden_checks_message_shows_no_expected_value():
    expected = torch.randn(2, 6, generator=_generator(8))
    got = expected.clone()
    got[0, 3] = 5.0
    message = _message(got, expected, reveal_expected=False)
    assert "first at [0, 3]: yours 5 " in message
    assert "expected" not in message.split("Where:")[1].split("(relative error")[0]
    for value in expected.flatten().tolist():
        assert f"{value:.4g}" not in message


def test_images_that_agree_are_listed():
    expected = torch.rand(4, 3, 3, generator=_generator(9))
    got = expected.clone()
    got[[0, 2]] += 0.5
    assert "images 0, 2 differ (1, 3 agree)" in _message(got, expected)


def test_a_known_mistake_is_computed_only_when_the_comparison_fails():
    computed = []
    checks.assert_close(VALUES, VALUES.clone(), TOLERANCE, "the thing",
                        known_mistakes={"anything": lambda: computed.append(1) or VALUES})
    assert computed == []
