"""Personal data in text: find e-mail addresses, phone numbers, street addresses, payment cards, IBANs, IP
addresses, URLs and social handles, and redact them with a typed placeholder (`[EMAIL]`, `[PHONE]`, ...), so
the text stays readable; or say that the record must be dropped. Counts by type, never the values.

Phones are found by `phonenumbers` (Google's libphonenumber metadata; offline), numbers in national format
read in `phone_region`; IP addresses are confirmed by `ipaddress`. A run of 13-19 digits is a card only when
its Luhn checksum holds, an IBAN only when its mod-97 check does. bench/pii_compare.py measures this module
against Presidio's pattern recognizers, scrubadub and datatrove's PIIFormatter on a planted corpus.

Every pattern is linear in the text: possessive or bounded quantifiers only, no nested unbounded repetition,
and each starts behind a lookbehind that admits one start per token (tests/unit/test_personal_data.py checks
hostile input).
"""
from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

TYPES = ("email", "phone", "address", "card", "iban", "ip", "url", "handle")
PLACEHOLDERS = {kind: f"[{kind.upper()}]" for kind in TYPES}
DROP_REASON = "personal_data"
METRIC_PREFIX = "personal_data_"
METRIC_NAMES = tuple(METRIC_PREFIX + kind for kind in TYPES)  # values found, by type: summed over chunks, shards


def count_metrics(found: Counter) -> dict[str, float]:
    """The stage figures for values found by type, every type named (0 where none)."""
    return {METRIC_PREFIX + kind: float(found[kind]) for kind in TYPES}


def found_summary(found: Counter) -> str:
    """Values found by type for a log line, never the values themselves."""
    return ", ".join(f"{kind} {found[kind]}" for kind in TYPES if found[kind]) or "none"


def counts_in(metrics: dict) -> dict[str, int]:
    """Values found by type, back from a stage's figures (as `count_metrics` wrote them), in TYPES order."""
    return {kind: int(round(metrics[METRIC_PREFIX + kind])) for kind in TYPES if METRIC_PREFIX + kind in metrics}

EMAIL = re.compile(r"(?<![\w.%+\]-])[A-Za-z0-9._%+-]{1,64}+@(?:[A-Za-z0-9-]{1,63}+\.){1,8}[A-Za-z]{2,24}+(?![\w\[-])")
URL = re.compile(r"(?<![\w@/.\]-])(?:https?://|www\.)[^\s<>\"'()\[\]{}]{1,2048}+", re.IGNORECASE)
URL_TRAILING = ".,;:!?*"
IPV4 = re.compile(r"(?<![\w.\]])\d{1,3}+(?:\.\d{1,3}+){3}(?![\w\[]|\.\d)")
IPV6 = re.compile(r"(?<![\w:\]])[0-9A-Fa-f:]{2,39}+(?![\w:\[])")
DIGIT_RUN = re.compile(r"\d++(?:[ -]\d++)*+")  # digits in groups, one space or hyphen between: maximal, linear
CARD_DIGITS = range(13, 20)
IBAN = re.compile(r"(?<![\w\]])[A-Z]{2}\d{2}(?:\x20?+[A-Z0-9]{4}){2,7}(?:\x20?+[A-Z0-9]{1,3})?(?![A-Za-z0-9\[])")
HANDLE = re.compile(r"(?<![\w@.+\]-])@[A-Za-z0-9_][A-Za-z0-9_.]{0,29}+(?:@[A-Za-z0-9-]{1,63}+(?:\.[A-Za-z0-9-]{1,63}+){1,4})?")
_STREET_SUFFIX = (r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace"
                  r"|Close|Square|Sq|Parkway|Pkwy|Highway|Hwy|Crescent|Row|Grove|Gardens)")
_CITY_TAIL = (r"(?:,?\x20(?:Apt|Suite|Unit|Flat)\.?\x20\w{1,6}+)?"  # a flat or suite
              r"(?:,\x20[A-Z][A-Za-z]{1,20}+(?:\x20[A-Z][A-Za-z]{1,20}+(?!\d)){0,2})?"  # a town (not a postcode)
              r"(?:,?\x20[A-Z]{2}\x20\d{5}(?:-\d{4})?+"  # US state and ZIP
              r"|,?\x20[A-Z]{1,2}\d[A-Z\d]?\x20\d[A-Z]{2}"  # UK postcode
              r")?")
ADDRESS = re.compile(
    # 42 Elm Street, 221B Baker St., 1600 Pennsylvania Avenue NW, Washington, DC 20500
    r"(?<![\w\]])\d{1,6}+[A-Za-z]?(?:\x20[A-Z][A-Za-z'-]{0,24}+){1,4}\x20" + _STREET_SUFFIX + r"\b\.?"
    r"(?:\x20(?:N|S|E|W|NE|NW|SE|SW)\b)?" + _CITY_TAIL
    # Hauptstraße 12, 10115 Berlin
    + r"|(?<![\w\]])[A-ZÄÖÜ][a-zäöüß-]{0,40}?(?:straße|strasse|str\.|weg|platz|gasse|allee|ring|damm)\x20\d{1,4}+[a-z]?"
    r"(?:,\x20\d{5}\x20[A-ZÄÖÜ][a-zäöüß-]{1,30}+)?")
# Where two findings overlap the earlier one wins, then the longer, then the first type here. The loser's
# text beside the winner's placeholder may still be a value ("@0 11000000000 0": a handle, then a phone):
# `screen` looks again, up to EXTRA_PASSES times, so that redacting its own output changes nothing.
EXTRA_PASSES = 3
PRIORITY = {kind: rank for rank, kind in enumerate(("email", "url", "iban", "card", "ip", "phone", "address", "handle"))}


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


@dataclass
class Screened:
    """A text after the screen: redacted where its type says so; `drop` names the types that drop it."""

    text: str
    found: Counter = field(default_factory=Counter)  # type -> values found, whatever the action
    drop: tuple[str, ...] = ()

    def drop_detail(self) -> str:
        """Why it is dropped, by type and count only: never the values."""
        return "holds " + ", ".join(f"{self.found[kind]} {kind}" for kind in self.drop)


class PersonalDataScreen:
    """One per stage run: the phone matcher's region checked once, actions by type from the recipe."""

    def __init__(self, actions: dict[str, str], phone_region: str = "US", where: str = "personal_data"):
        import phonenumbers

        unknown = sorted(set(actions) - set(TYPES))
        if unknown:
            raise ValueError(f"{where}: unknown type(s) {', '.join(unknown)}; the types are {', '.join(TYPES)}")
        if phone_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{where}.phone_region: {phone_region!r} is not a region phonenumbers knows "
                             "(ISO 3166-1 alpha-2, such as US, GB, DE)")
        self.actions = {kind: actions.get(kind, "redact") for kind in TYPES}
        self.phone_region = phone_region

    @classmethod
    def for_config(cls, config, where: str) -> "PersonalDataScreen":
        """From a recipe's `personal_data` section (pugc.config.PersonalDataConfig)."""
        return cls(config.actions(), config.phone_region, where)

    def screen(self, text: str) -> Screened:
        findings = find(text, self.phone_region)
        found = Counter(f.kind for f in findings)
        drop = tuple(kind for kind in TYPES if found[kind] and self.actions[kind] == "drop")
        redacted = redact(text, [f for f in findings if self.actions[f.kind] == "redact"])
        for _ in range(EXTRA_PASSES):  # what a value that overlapped a redacted one becomes once that one is gone
            if redacted == text:
                break
            text = redacted
            more = [f for f in find(text, self.phone_region) if self.actions[f.kind] == "redact"]
            found.update(f.kind for f in more)
            redacted = redact(text, more)
        return Screened(redacted, found, drop)


def find(text: str, phone_region: str = "US") -> list[Finding]:
    """Every value found, left to right, none overlapping another."""
    candidates = sorted(_candidates(text, phone_region), key=lambda f: (f.start, f.start - f.end, PRIORITY[f.kind]))
    kept, reached = [], 0
    for finding in candidates:
        if finding.start >= reached:
            kept.append(finding)
            reached = finding.end
    return kept


def redact(text: str, findings: list[Finding]) -> str:
    """`text` with each finding replaced by its type's placeholder (findings in order, not overlapping)."""
    parts, last = [], 0
    for finding in findings:
        parts += [text[last:finding.start], PLACEHOLDERS[finding.kind]]
        last = finding.end
    return "".join(parts) + text[last:]


def _candidates(text: str, phone_region: str) -> Iterator[Finding]:
    yield from _matches("email", EMAIL, text)
    for match in URL.finditer(text):
        end = match.end()
        while end > match.start() and text[end - 1] in URL_TRAILING:
            end -= 1
        yield Finding("url", match.start(), end)
    yield from (Finding("iban", s, e) for s, e in _ibans(text))
    yield from (Finding("card", s, e) for s, e in _cards(text))
    yield from (Finding("ip", m.start(), m.end()) for m in IPV4.finditer(text) if _is_ip(m.group()))
    yield from (Finding("ip", m.start(), m.end()) for m in IPV6.finditer(text)
                if m.group().count(":") >= 2 and _is_ip(m.group()))
    yield from _phones(text, phone_region)
    yield from _matches("address", ADDRESS, text)
    for match in HANDLE.finditer(text):
        yield Finding("handle", match.start(), match.end() - (match.group().endswith(".")))


def _matches(kind: str, pattern: re.Pattern, text: str) -> Iterator[Finding]:
    return (Finding(kind, m.start(), m.end()) for m in pattern.finditer(text))


def _phones(text: str, region: str) -> Iterator[Finding]:
    from phonenumbers import Leniency, PhoneNumberMatcher

    # POSSIBLE: a number of a possible length for its region, not only an assigned range; a screen would
    # rather redact a made-up number than keep a real one.
    for match in PhoneNumberMatcher(text, region, leniency=Leniency.POSSIBLE):
        yield Finding("phone", match.start, match.end)


def _is_ip(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def luhn_valid(number: str) -> bool:
    """The payment-card checksum over the digits of `number` (separators ignored); 13 to 19 digits."""
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _cards(text: str) -> Iterator[tuple[int, int]]:
    """Every window of whole digit groups, 13 to 19 digits, whose Luhn check holds. A group glued to a letter
    (or to a placeholder) belongs to a word, not a card. All windows are candidates, so which of two overlapping
    ones is kept is `find`'s choice, the same on any pass."""
    for run in DIGIT_RUN.finditer(text):
        groups = [(g.start(), g.end()) for g in re.finditer(r"\d+", run.group())]
        first = 1 if run.start() and _glued(text[run.start() - 1]) else 0
        last = len(groups) - (1 if run.end() < len(text) and _glued(text[run.end()]) else 0)
        for i in range(first, last):
            digits = 0
            for j in range(i, last):
                digits += groups[j][1] - groups[j][0]
                if digits > CARD_DIGITS[-1]:
                    break
                start, end = run.start() + groups[i][0], run.start() + groups[j][1]
                if digits in CARD_DIGITS and luhn_valid(text[start:end]):
                    yield start, end


def _glued(char: str) -> bool:
    return char.isalnum() or char in "_[]"


def iban_valid(candidate: str) -> bool:
    """ISO 13616: 15 to 34 characters, two letters, two check digits; mod 97 of the rearranged number is 1."""
    compact = candidate.replace(" ", "").upper()
    if not (15 <= len(compact) <= 34 and compact[:2].isalpha() and compact[2:4].isdigit() and compact.isalnum()
            and compact.isascii()):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    """Each IBAN candidate, trimmed group by group from the end until its check holds: text that follows an
    IBAN in capitals ("DE89 3704 ... 00 EUR") would otherwise spoil the check."""
    for match in IBAN.finditer(text):
        start, end = match.start(), match.end()
        while end - start >= 15:
            if iban_valid(text[start:end]):
                yield start, end
                break
            cut = text.rfind(" ", start, end)
            end = cut if cut > start + 4 else end - 1
