"""What an answer may not carry that the question did not ask for.

Small models copy their few-shot examples: asked "How many days are there between 1969-07-20
and 1989-11-09?", the embedded model computed 7417 and finished with ``$7417`` ("The change is
$7417.", the money example's wording). A currency on a bare number is dropped when the question
says nothing of money; everything else is left as the model wrote it.
"""

from __future__ import annotations

import re

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
