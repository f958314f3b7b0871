import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookstream.core.retry import DeadLetter, RetryPolicy, RetryTier

POLICY = RetryPolicy((30.0, 120.0, 600.0, 3600.0), jitter=0.2)


def test_each_failure_moves_one_tier_then_the_dlq() -> None:
    rng = random.Random(1)
    tiers = [POLICY.next_step(n, rng) for n in range(1, 6)]
    assert [t.index for t in tiers[:4] if isinstance(t, RetryTier)] == [0, 1, 2, 3]
    assert isinstance(tiers[4], DeadLetter)


@given(st.integers(min_value=1, max_value=4), st.integers())
def test_delay_stays_within_jitter(attempts: int, seed: int) -> None:
    step = POLICY.next_step(attempts, random.Random(seed))
    assert isinstance(step, RetryTier)
    base = POLICY.schedule[attempts - 1]
    assert base * 0.8 <= step.delay <= base * 1.2


def test_retry_after_is_honoured_when_longer_in_the_tier_covering_it() -> None:
    step = POLICY.next_step(1, random.Random(0), retry_after=500)
    assert isinstance(step, RetryTier)
    assert step.index == 2  # 600 s covers it; tier 0 is left to the 30 s retries
    assert step.delay == 500


def test_retry_after_never_shortens_the_tier_delay() -> None:
    step = POLICY.next_step(2, random.Random(0), retry_after=1)
    assert isinstance(step, RetryTier)
    assert step.delay >= 120 * 0.8


def test_an_empty_schedule_dead_letters_at_once() -> None:
    assert isinstance(RetryPolicy(()).next_step(1, random.Random()), DeadLetter)


@pytest.mark.parametrize(("schedule", "jitter"), [((-1.0,), 0.1), ((1.0,), 1.0), ((1.0,), -0.1)])
def test_invalid_policies_are_refused(schedule: tuple[float, ...], jitter: float) -> None:
    with pytest.raises(ValueError, match=r"negative|jitter"):
        RetryPolicy(schedule, jitter)
