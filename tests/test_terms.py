"""Bad terms are refused in Python with a message naming the problem, before any transaction."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sla_helpers import EC2_TIERS

from smartsla.terms import Service, Tier
from smartsla.units import percent_to_bps, percent_to_ppm, ppm_to_percent


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"period_length": 0}, "period_length"),
        ({"period_count": 0}, "period_count"),
        ({"customer": "0xnot-an-address"}, "customer is not an Ethereum address"),
        ({"credit_cap_bps": 10_001}, "credit_cap_bps"),
        ({"termination_ppm": 1_000_001}, "termination_ppm"),
        ({"services": ()}, "1..16 services"),
        ({"services": (Service(name="a", objective=999_000, weight_bps=5_000, tiers=EC2_TIERS[1:]),)},
         "weights must sum"),
        ({"services": (Service(name="a", objective=999_900, weight_bps=5_000, tiers=EC2_TIERS),
                       Service(name="a", objective=999_900, weight_bps=5_000, tiers=EC2_TIERS))},
         "duplicate service names: a"),
    ],
)
def test_bad_terms_raise_a_clear_error(terms_for, factory, overrides, message):
    with pytest.raises(ValidationError, match=message):
        terms_for(**overrides)
    assert factory.contract.functions.agreementCount().call() == 0


def test_provider_cannot_be_the_customer(terms_for, roles):
    with pytest.raises(ValidationError, match="provider and customer are the same"):
        terms_for(customer=roles["provider"])


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ((Tier(threshold=990_000, credit_bps=3_000), Tier(threshold=999_000, credit_bps=1_000)), "must fall"),
        ((Tier(threshold=999_000, credit_bps=3_000), Tier(threshold=990_000, credit_bps=1_000)), "must rise"),
        ((Tier(threshold=999_990, credit_bps=1_000),), "above the objective"),
        ((), "needs 1..8 tiers"),
    ],
)
def test_bad_tiers(tiers, message):
    with pytest.raises(ValidationError, match=message):
        Service(name="api", objective=999_900, tiers=tiers)


def test_objective_above_one_hundred_percent():
    with pytest.raises(ValidationError, match="objective 1000001 ppm is above 100 %"):
        Service(name="api", objective=1_000_001, tiers=EC2_TIERS)


def test_percent_conversions_are_exact():
    assert percent_to_ppm("99.99") == 999_900
    assert percent_to_ppm(99.99) == 999_900
    assert percent_to_bps(2.5) == 250
    assert ppm_to_percent(999_950) == "99.9950%"
    with pytest.raises(ValueError, match="precision"):
        percent_to_ppm("99.99999")


def test_an_address_with_a_wrong_checksum_is_a_typo(terms_for, roles):
    good = roles["customer"]
    i = next(i for i, c in enumerate(good) if i > 1 and c.isalpha())
    flipped = good[:i] + good[i].swapcase() + good[i + 1:]
    assert flipped != good and flipped.lower() == good.lower()
    with pytest.raises(ValidationError, match="customer has a wrong EIP-55 checksum"):
        terms_for(customer=flipped)
    assert terms_for(customer=good.lower()).customer == good  # all lower case carries no checksum


def test_every_broken_rule_is_named(terms_for, roles):
    """Review 2: one error naming every problem, not only the first one."""
    with pytest.raises(ValidationError) as err:
        terms_for(oracles=[roles["oracle"], roles["stranger"]], quorum=2, maintenance_notice=3_600,
                  period_length=3_601)
    text = str(err.value)
    for needle in ("quorum must be odd", "maintenance notice and budget go together",
                   "period_length 3601 s is not a whole number of 60-second slices"):
        assert needle in text


def test_calendar_terms_too_large_for_a_clone_are_refused(terms_for):
    """Review 2, finding 6: the factory refuses packed terms above 24,531 bytes; so does Python."""
    ends = tuple(60 * (i + 1) for i in range(6_200))
    with pytest.raises(ValidationError, match=r"packed terms take 25,068 bytes, more than a clone holds \(24,531\)"):
        terms_for(period_length=0, period_count=6_200, period_ends=ends)


# Issue 13 item 4: Tier 'below_ppm' -> threshold and Service 'objective_ppm' -> objective. Terms stored
# before the rename (the event index keeps Terms.model_dump as JSON, the corporate index too) and
# JSON written by hand with the old keys still load, with a deprecation naming the new key.
OLD_SERVICE = {"name": "web", "objective_ppm": 999_000, "kind": "availability",
               "tiers": [{"below_ppm": 999_000, "credit_bps": 1_000}, {"below_ppm": 990_000, "credit_bps": 2_500}]}


def test_terms_stored_with_the_old_field_names_still_load_with_a_deprecation():
    with pytest.warns(DeprecationWarning) as caught:
        service = Service.model_validate(OLD_SERVICE)
    assert service == Service(name="web", objective=999_000, tiers=(Tier(threshold=999_000, credit_bps=1_000),
                                                                    Tier(threshold=990_000, credit_bps=2_500)))
    words = " ".join(str(w.message) for w in caught)
    assert "'objective_ppm' is deprecated: use 'objective'" in words
    assert "'below_ppm' is deprecated: use 'threshold'" in words
    assert Service.model_validate(service.model_dump(mode="json")) == service  # the new names round-trip


def test_old_and_new_field_names_together_are_refused():
    with pytest.raises(ValidationError, match="both 'objective_ppm' .deprecated. and 'objective'"):
        Service.model_validate({**OLD_SERVICE, "objective": 999_000})
    with pytest.raises(ValidationError, match="both 'below_ppm' .deprecated. and 'threshold'"):
        Tier.model_validate({"below_ppm": 1, "threshold": 1, "credit_bps": 1})
