"""Majority vote over sampled results: numeric normalisation, ties, failures."""

from __future__ import annotations

from agents.pal.vote import agrees, as_number, majority_vote


def test_unanimous() -> None:
    outcome = majority_vote([8, 8, 8])
    assert outcome.winner is not None
    assert (outcome.winner.value, outcome.winner.answer, outcome.agreement) == (8, "8", 1.0)
    assert outcome.as_details() == [{"answer": "8", "count": 3}]
    assert not outcome.tie


def test_numbers_agree_across_types_and_float_noise() -> None:
    outcome = majority_vote([8.0, "8", 8, " 8.0 ", 7.999999999999999])
    assert outcome.as_details() == [{"answer": "8", "count": 5}]
    assert outcome.winner is not None and outcome.winner.value == 8.0  # the earliest's exact value


def test_disagreeing_samples_majority_wins() -> None:
    outcome = majority_vote([9, 8, 8.0, 7, 8])
    assert outcome.winner is not None
    assert outcome.winner.value == 8 and outcome.winner.first_sample == 1
    assert outcome.as_details() == [
        {"answer": "8", "count": 3},
        {"answer": "9", "count": 1},
        {"answer": "7", "count": 1},
    ]
    assert outcome.agreement == 0.6
    assert not outcome.tie


def test_tie_goes_to_the_earliest_sample_and_is_reported() -> None:
    outcome = majority_vote([5, 7, 7, 5])
    assert outcome.winner is not None and outcome.winner.value == 5
    assert outcome.tie
    assert outcome.agreement == 0.5


def test_failures_do_not_vote_but_lower_agreement() -> None:
    outcome = majority_vote([None, 12, None, 12, 13])
    assert outcome.winner is not None and outcome.winner.value == 12
    assert outcome.voters == 3 and outcome.samples == 5
    assert outcome.agreement == 0.4


def test_all_failing() -> None:
    outcome = majority_vote([None, None])
    assert outcome.winner is None and outcome.votes == ()
    assert outcome.agreement == 0.0


def test_strings_compare_ignoring_case_and_whitespace() -> None:
    outcome = majority_vote(["Wednesday", "wednesday ", "Thursday"])
    assert outcome.as_details() == [
        {"answer": "Wednesday", "count": 2},
        {"answer": "Thursday", "count": 1},
    ]


def test_booleans_are_not_numbers() -> None:
    assert not agrees(True, 1)
    assert agrees(True, True)
    assert majority_vote([True, 1, 1]).winner is not None


def test_numbers_and_text_never_agree() -> None:
    assert not agrees("eight", 8)
    assert not agrees("04/07/2024", 4)


def test_as_number() -> None:
    assert as_number("8") == 8 and isinstance(as_number("8"), int)
    assert as_number("$1,250.50") == 1250.5
    assert as_number("-3") == -3
    assert as_number("1e3") == 1000.0
    assert as_number("1,2") is None
    assert as_number("12 apples") is None
    assert as_number([1]) is None
    assert as_number("1e999") is None


def test_a_line_that_labels_one_number_is_that_number() -> None:
    """Pass FO: small models print "The final answer is 45.98"; two samples saying so, and
    one printing 45.98, are one answer in the vote."""
    assert as_number("The final answer is 45.98") == 45.98
    assert as_number("Total cost: $1,250.") == 1250
    assert as_number("x = -3") == -3
    winner = majority_vote(["The answer is 7", "7", "Answer: 7.0", "8"]).winner
    assert winner is not None and winner.count == 3
    for text in (
        "3 apples and 5 pears: 8",
        "It is 5 dollars",
        "Between 3 and 5",
        "is " + "x" * 300 + "= 4",
    ):
        assert as_number(text) is None, text


def test_huge_ints_compare_exactly() -> None:
    assert agrees(10**400, 10**400)
    assert not agrees(10**400, 10**400 + 1)
    assert not agrees(10**400, 1.0)


def test_lists_compare_as_json() -> None:
    assert agrees([1, 2], [1, 2])
    assert not agrees([1, 2], [2, 1])


def test_decided_when_the_pending_samples_cannot_catch_the_leader() -> None:
    assert majority_vote([7, 7]).decided(pending=1)  # 2 against at most 1
    assert not majority_vote([7, 7]).decided(pending=2)  # 2 pending could tie it
    assert majority_vote([7, 7, 8]).decided(pending=0)
    assert not majority_vote([7, 7, 8]).decided(pending=1)  # 8 could draw level
    assert majority_vote([7, None, 7, None]).decided(pending=1)  # failures vote for nobody


def test_never_decided_without_a_vote_or_in_a_tie() -> None:
    assert not majority_vote([]).decided(pending=0)
    assert not majority_vote([None, None]).decided(pending=0)
    assert not majority_vote([5, 6]).decided(pending=0)
    assert not majority_vote([7]).decided(pending=1)  # one more answer could tie it
