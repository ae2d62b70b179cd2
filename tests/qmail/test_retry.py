"""qmail-send's quadratic retry schedule, the queue lifetime, and the dying Z -> D rewrite."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.retry import (
    DYING_TEXT,
    Attempt,
    attempt_schedule,
    is_dying,
    job_times,
    next_retry,
    rewrite_if_dying,
)

BIRTH = 1_000_000_000


@pytest.mark.parametrize(
    ("age", "channel", "retry_age"),
    [
        (0, "local", 100),
        (0, "remote", 400),
        (100, "local", 400),
        (400, "remote", 1600),
        (99, "local", 19**2),  # isqrt(99) = 9
        (101, "local", 20**2),
        (604800, "local", (777 + 10) ** 2),  # isqrt(604800) = 777
    ],
)
def test_next_retry_is_birth_plus_root_plus_chanskip_squared(age, channel, retry_age):
    assert next_retry(BIRTH, BIRTH + age, channel) == BIRTH + retry_age


def test_a_birth_in_the_future_has_root_term_zero():
    assert next_retry(BIRTH, BIRTH - 5000, "local") == BIRTH + 100
    assert next_retry(BIRTH, BIRTH - 5000, "remote") == BIRTH + 400


@pytest.mark.parametrize(
    ("attempt", "local_age", "remote_age"),
    [
        (0, 0, 0),
        (1, 100, 400),
        (2, 400, 1600),
        (3, 900, 3600),
        (4, 1600, 6400),
        (5, 2500, 10000),
        (10, 10000, 40000),
    ],
)
def test_reference_table_rows(attempt, local_age, remote_age):
    assert attempt_schedule("local")[attempt] == Attempt(attempt, local_age, False)
    assert attempt_schedule("remote")[attempt] == Attempt(attempt, remote_age, False)


@pytest.mark.parametrize(
    ("channel", "attempts", "last_age"), [("local", 78, 592900), ("remote", 39, 577600)]
)
def test_attempts_within_the_default_lifetime_then_one_final(channel, attempts, last_age):
    schedule = attempt_schedule(channel)
    assert [a.dying for a in schedule] == [False] * attempts + [True]
    assert schedule[attempts - 1].age == last_age  # k = 77 local, 38 remote
    assert schedule[-1] == Attempt(attempts, 608400, True)  # 7 d + 1 h


@pytest.mark.parametrize(("channel", "step"), [("local", 10), ("remote", 20)])
def test_on_time_attempt_k_is_at_age_step_k_squared(channel, step):
    assert all(a.age == (step * a.number) ** 2 for a in attempt_schedule(channel))


def test_dying_means_strictly_older_than_the_lifetime():
    assert not is_dying(BIRTH, BIRTH + 604800)
    assert is_dying(BIRTH, BIRTH + 604801)
    assert is_dying(BIRTH, BIRTH + 11, lifetime=10)
    assert job_times(BIRTH, BIRTH + 100, "local") == (BIRTH + 400, False)


times = st.integers(0, 2**40)


@settings(max_examples=300, deadline=None)
@given(times, st.integers(0, 2**36), st.sampled_from(["local", "remote"]))
def test_next_retry_is_always_after_now(birth, age, channel):
    assert next_retry(birth, birth + age, channel) > birth + age


@settings(max_examples=300, deadline=None)
@given(times, st.integers(0, 2**36), st.sampled_from(["local", "remote"]), st.integers(1, 5))
def test_the_schedule_is_strictly_increasing(birth, age, channel, passes):
    retries = [birth + age]
    for _ in range(passes):
        retries.append(next_retry(birth, retries[-1], channel))
    assert retries == sorted(set(retries))


@settings(max_examples=200, deadline=None)
@given(times, st.integers(0, 2**36), st.integers(0, 2**20), st.sampled_from(["local", "remote"]))
def test_a_later_pass_never_retries_earlier(birth, age, delay, channel):
    assert next_retry(birth, birth + age + delay, channel) >= next_retry(
        birth, birth + age, channel
    )


# ---- the dying rewrite ---------------------------------------------------------------------


def test_dying_text_is_qmail_sends_sentence():
    assert DYING_TEXT == (
        b"I'm not going to try again; this message has been in the queue too long.\n"
    )


def test_deferral_of_a_dying_job_becomes_a_failure_with_the_sentence_appended():
    result = b"ZConnected to 1.2.3.4 but connection died. (#4.4.2)\n"
    assert rewrite_if_dying(result, dying=True) == (
        b"DConnected to 1.2.3.4 but connection died. (#4.4.2)\n"
        b"I'm not going to try again; this message has been in the queue too long.\n"
    )


@pytest.mark.parametrize(
    ("result", "dying"),
    [(b"Zdeferred\n", False), (b"Kok\n", True), (b"Dno\n", True), (b"", True), (b"?x", True)],
)
def test_other_results_are_left_alone(result, dying):
    assert rewrite_if_dying(result, dying) == result
