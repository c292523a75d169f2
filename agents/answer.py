"""What an answer may not carry that the question did not ask for.

Small models copy their few-shot examples: asked "How many days are there between 1969-07-20
and 1989-11-09?", the embedded model computed 7417 and finished with ``$7417`` ("The change is
$7417.", the money example's wording). ``normalise`` undoes the three ways that happens, and
leaves everything else as the model wrote it:

- **an example's wording**: an answer that is one of the few-shot examples' sentences with
  another number in it ("There are 7417 days between the two dates.") is that number;
- **a currency** on a bare number is dropped when the question says nothing of money;
- **a unit** from the examples on a bare number ("292 years") is dropped when the question
  names no such thing;
- **Python's notation** copied from a program's output: ``540.0`` is ``540``, ``'laptcaer'``
  is ``laptcaer``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SYMBOLS = "$€£¥"
_NUMBER = r"[-+]?\d[\d,]*(?:\.\d+)?"
_CURRENCY_WORDS = r"(?:us\s+)?(?:dollars?|euros?|pounds?|yen|usd|eur|gbp)"
_AMOUNT = re.compile(
    rf"\s*(?:[{_SYMBOLS}]\s*(?P<a>{_NUMBER})|(?P<b>{_NUMBER})\s*(?:[{_SYMBOLS}]|{_CURRENCY_WORDS}))"
    r"\s*\.?\s*",
    re.IGNORECASE,
)
# A question that mentions any of these may have money in its answer.
_MONEY = re.compile(
    rf"[{_SYMBOLS}]|\b(?:dollar|euro|pound|yen|cent|usd|eur|gbp|price|cost|pay|paid|spen[dt]"
    r"|money|cash|earn|salary|wage|budget|buy|bought|sell|sold|change|tip|tax|fee|rent|loan"
    r"|interest|profit|discount|worth|afford|expensive|cheap)",
    re.IGNORECASE,
)


def without_unasked_currency(question: str, answer: str) -> str:
    """``answer`` with its currency dropped when it is a bare amount and ``question`` says
    nothing of money: ``$7417`` -> ``7417``."""
    amount = _AMOUNT.fullmatch(answer)
    if amount is None or _MONEY.search(question):
        return answer
    return amount.group("a") or amount.group("b")


_UNIT = re.compile(rf"\s*(?P<n>{_NUMBER})\s+(?P<unit>[A-Za-z]+(?:\s+[A-Za-z]+)?)\s*\.?\s*")
_WORD = re.compile(r"[a-z]+")
_MIN_SENTENCE_WORDS = 3
_ANY_NUMBER = re.compile(rf"(?:[{_SYMBOLS}]\s*)?{_NUMBER}")  # blanks only after a symbol


def without_unasked_unit(question: str, answer: str, exemplars: Iterable[str] = ()) -> str:
    """``answer`` without the unit of a bare number when that unit comes from the examples
    (``exemplars``) and ``question`` names nothing like it: asked "What is 17 squared plus
    3?", ``292 years`` is ``292``; asked how many days, ``7417 days`` stays, and so does a
    unit the examples never use (``384400 km``): it is the model's own."""
    match = _UNIT.fullmatch(answer)
    if match is None:
        return answer
    unit = {_stem(word) for word in _WORD.findall(match.group("unit").lower())}
    asked = {_stem(word) for word in _WORD.findall(question.lower())}
    copied = {_stem(word) for sentence in exemplars for word in _WORD.findall(sentence.lower())}
    if unit & asked or not unit <= copied:
        return answer
    return match.group("n")


def without_exemplar_wording(answer: str, sentences: Iterable[str]) -> str:
    """The number in ``answer`` when ``answer`` is one of ``sentences`` (the few-shot
    examples') with a different number: "The change is $7417." -> "$7417"."""
    numbers: list[str] = _ANY_NUMBER.findall(answer)
    if len(numbers) != 1:
        return answer
    shape = _shape(answer)
    if len(_WORD.findall(shape)) < _MIN_SENTENCE_WORDS:
        return answer  # "20 years" is an answer with a unit, not an example's wording
    if any(_shape(sentence) == shape for sentence in sentences):
        return numbers[0].replace(" ", "")
    return answer


# Python's notation for a whole float (and money's cents, once its $ is gone), and a
# string's repr (single quotes, or double ones around a text that holds a single quote).
_WHOLE_FLOAT = re.compile(r"([-+]?\d[\d,]*)\.0+")
_REPR = re.compile(r"'([^'\\\n]+)'|\"([^\"\\\n]*'[^\"\\\n]*)\"")
# A question that asks for the digits after the point, or the notation itself (pass FA:
# "round 2.96 to one decimal place" answered 3, json.dumps' "hi" answered hi).
_ASKS_DECIMALS = re.compile(
    r"\b(?:decimals?|places?|float(?:ing)?|versions?|releases?|precision|tenths?|"
    r"hundredths?|thousandths?|significant)\b|\d\.\d",
    re.IGNORECASE,
)
_ASKS_NOTATION = re.compile(
    r"\b(?:quotes?|quoted|quotation|json|repr|literal|print(?:s|ed)?|output)\b", re.IGNORECASE
)


def without_program_notation(question: str, answer: str) -> str:
    """A bare answer as a person writes it, not as Python printed it: a whole number without
    ``.0`` (``540.0`` -> ``540``) and a text without the quotes of its ``repr``
    (``'laptcaer'`` -> ``laptcaer``), unless the question writes it so, or asks for the
    decimals or the notation. The 1.5B model copied both from its program's observation into
    its answer (red-team pass EZ)."""
    text = answer.strip()
    if _written_in(text, question):
        return answer
    whole = _WHOLE_FLOAT.fullmatch(text)
    if whole:
        number = whole.group(1)
        if _ASKS_DECIMALS.search(question) or (number[0] in "+-" and not number.strip("+-0,")):
            return answer  # 3.0 to one decimal place; -0.0 is not -0
        return number
    quoted = _REPR.fullmatch(text)
    if quoted and not _ASKS_NOTATION.search(question):
        return quoted.group(1) or quoted.group(2)
    return answer


def _written_in(text: str, question: str) -> bool:
    """``text`` stands in ``question`` on its own ("0.0" is not in "100.0")."""
    return re.search(rf"(?<![\w.]){re.escape(text)}(?!\w|\.\d)", question) is not None


def normalise(question: str, answer: str, exemplars: Iterable[str] = ()) -> str:
    """``answer`` without what ``question`` did not ask for (see the module docstring)."""
    answer = without_exemplar_wording(answer, exemplars)
    answer = without_unasked_currency(question, answer)
    answer = without_program_notation(question, answer)
    return without_unasked_unit(question, answer, exemplars)


def _shape(text: str) -> str:
    """``text`` with its number replaced, without case, spacing or a final period."""
    return " ".join(_ANY_NUMBER.sub(" # ", text.lower()).split()).rstrip(" .")


def _stem(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 3 else word
