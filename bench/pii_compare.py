"""Personal-data detectors against a planted corpus: precision and recall per type, per library.

Compares pugc.personal_data with Presidio's pattern recognizers (no spaCy model: each recognizer is called
directly, as no AnalyzerEngine is built), scrubadub's detectors and datatrove's PIIFormatter (e-mail and IP
only). Not part of `make test`; the libraries live in their own environment:

    python3 -m venv /tmp/pii-bench && /tmp/pii-bench/bin/pip install -r bench/requirements-pii.txt
    PYTHONPATH=src /tmp/pii-bench/bin/python bench/pii_compare.py [--lines 400] [--json out.json]

A library that is not installed is left out of the table. Scoring: a planted value counts as found when a
detection of its type overlaps it; a detection counts as correct when it overlaps a planted value of its type.
Detections contained in a longer one are dropped first, as an anonymizer resolving conflicts would.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import time
from dataclasses import dataclass

TYPES = ("email", "phone", "address", "card", "iban", "ip", "url", "handle")


# ------------------------------------------------------------------------------------ the planted corpus
@dataclass
class Line:
    text: str
    spans: list  # (type, start, end)


FIRST = ["jane", "omar", "li", "sofia", "raj", "anna", "tom", "mei", "lucas", "fatima", "olga", "ken"]
LAST = ["doe", "smith", "nguyen", "garcia", "khan", "mueller", "rossi", "tanaka", "silva", "novak"]
DOMAINS = ["example.com", "mail.example.org", "example.co.uk", "post.example.net", "uni-example.edu"]
STREETS = ["Elm", "Baker", "Maple", "Pennsylvania", "Oak Hill", "Sunset", "Church", "Mill", "King George"]
SUFFIXES = ["Street", "St.", "Avenue", "Ave", "Road", "Lane", "Drive", "Boulevard", "Court", "Way"]
CITIES = [("Springfield", "IL", "62704"), ("Portland", "OR", "97205"), ("Austin", "TX", "78701"),
          ("Boston", "MA", "02108")]
UK = [("London", "NW1 6XE"), ("Leeds", "LS1 4AP"), ("Bristol", "BS1 5TR")]
DE = [("Hauptstraße", "10115 Berlin"), ("Gartenweg", "80331 München"), ("Schillerplatz", "70173 Stuttgart")]
IBAN_LENGTH = {"DE": 22, "GB": 22, "FR": 27, "NL": 18, "ES": 24, "IT": 27}


def luhn_digit(partial: str) -> str:
    total = 0
    for i, c in enumerate(reversed(partial)):
        d = int(c)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def card(rng: random.Random, valid: bool) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16), ("4", 13)])
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    check = luhn_digit(body)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    digits = body + check
    style = rng.choice(["space", "dash", "none"])
    if style == "none" or length != 16:
        return digits
    sep = " " if style == "space" else "-"
    return sep.join(digits[i:i + 4] for i in range(0, 16, 4))


def iban(rng: random.Random, valid: bool) -> str:
    country = rng.choice(list(IBAN_LENGTH))
    bban = "".join(rng.choice("0123456789") for _ in range(IBAN_LENGTH[country] - 4))
    if country in ("GB", "NL"):
        bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + bban[4:]
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    check = 98 - number % 97
    if not valid:
        check = (check + rng.randint(1, 96)) % 97 or 1
    compact = f"{country}{check:02d}{bban}"
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4)) if rng.random() < 0.6 else compact


def phone(rng: random.Random) -> str:
    area = rng.choice(["212", "415", "312", "617", "206", "303"])
    exchange, line = rng.randint(201, 989), rng.randint(0, 9999)
    return rng.choice([
        f"({area}) {exchange}-{line:04d}", f"{area}-{exchange}-{line:04d}", f"+1 {area} {exchange} {line:04d}",
        f"{area}.{exchange}.{line:04d}", f"+44 20 7946 {rng.randint(0, 999):04d}", f"+49 30 {rng.randint(1000000, 99999999)}",
        f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        f"+61 4{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}",
    ])


def address(rng: random.Random) -> str:
    form = rng.random()
    number = f"{rng.randint(1, 9999)}{rng.choice(['', '', 'B'])}"
    if form < 0.5:
        city, state, zip_code = rng.choice(CITIES)
        return f"{number} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}, {city}, {state} {zip_code}"
    if form < 0.75:
        city, postcode = rng.choice(UK)
        return f"{number} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}, {city} {postcode}"
    if form < 0.9:
        street, town = rng.choice(DE)
        return f"{street} {rng.randint(1, 200)}, {town}"
    # forms the pugc patterns do not know (French and Spanish street types, PO boxes): recall is honest
    return rng.choice([f"{rng.randint(1, 99)} rue de Rivoli, 75001 Paris", f"Calle Mayor {rng.randint(1, 99)}, 28013 Madrid",
                       f"PO Box {rng.randint(100, 9999)}, Springfield, IL 62704"])


def value(kind: str, rng: random.Random) -> str:
    name = f"{rng.choice(FIRST)}{rng.choice(['.', '_', ''])}{rng.choice(LAST)}"
    if kind == "email":
        return f"{name}{rng.choice(['', '42', '+forum'])}@{rng.choice(DOMAINS)}"
    if kind == "phone":
        return phone(rng)
    if kind == "address":
        return address(rng)
    if kind == "card":
        return card(rng, valid=True)
    if kind == "iban":
        return iban(rng, valid=True)
    if kind == "ip":
        if rng.random() < 0.2:
            return f"2001:db8:{rng.randint(1, 0xffff):x}::{rng.randint(1, 0xffff):x}"
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    if kind == "url":
        path = rng.choice(["", "/t/how-to-fix-my-boiler/123", "/p?id=77&ref=forum", "/wiki/Sourdough_bread"])
        return rng.choice(["https://", "http://", "https://www.", "www."]) + rng.choice(DOMAINS) + path
    return "@" + name.replace(".", "_") + rng.choice(["", "_99", "dev"])


TEMPLATES = {
    "email": ["You can reach me at {} if the fix does not work.", "Mail {} for the spreadsheet.",
              "(contact: {}) I answer within a day."],
    "phone": ["Call the shop on {} before noon.", "My number is {}, text first.", "Phone: {}"],
    "address": ["The repair cafe is at {} and opens Saturdays.", "Ship it to {} please.", "We met at {}."],
    "card": ["I paid with card {} and got charged twice.", "Card number {} was declined.", "my card: {}"],
    "iban": ["Transfer the deposit to {} by Friday.", "IBAN {} (the club account).", "Pay into {} please."],
    "ip": ["My router shows {} as the gateway.", "Blocked connections from {} all night.", "ssh to {} fails."],
    "url": ["The guide at {} explains the steps.", "See {} for the photos.", "Source: {}."],
    "handle": ["Thanks to {} for the tip!", "Follow {} on the forum for updates.", "cc {} who asked earlier"],
}
NEGATIVES = [
    lambda r: f"Order {card(r, valid=False)} never arrived.",  # 13-16 digits failing the Luhn check
    lambda r: f"Reference {card(r, valid=False)} on the invoice.",
    lambda r: f"The account {iban(r, valid=False)} bounced (a typo in it).",  # failing mod 97
    lambda r: f"Upgraded to v{r.randint(1, 9)}.{r.randint(0, 30)}.{r.randint(0, 9)} on {r.randint(2019, 2025)}-0{r.randint(1, 9)}-{r.randint(10, 28)}.",
    lambda r: f"Python {r.randint(2, 3)}.{r.randint(6, 13)}.{r.randint(0, 9)} and build 10.0.{r.randint(10000, 22000)} both work.",
    lambda r: f"It cost ${r.randint(1, 9)},{r.randint(100, 999)}.{r.randint(10, 99)} in {r.randint(1990, 2024)}.",
    lambda r: f"Bake at {r.randint(150, 250)} degrees for {r.randint(20, 90)} minutes; ISBN 978-3-16-148410-{r.randint(0, 9)}.",
    lambda r: f"Meeting on {r.randint(1, 28)}/{r.randint(1, 12)}/{r.randint(2000, 2030)} at {r.randint(1, 12)}:{r.randint(10, 59)}.",
    lambda r: f"Room {r.randint(100, 999)}, page {r.randint(1, 400)}, chapter {r.randint(1, 30)}; score {r.randint(0, 9)}.{r.randint(0, 99)}.",
    lambda r: f"I have {r.randint(2, 40)} years at {r.randint(2, 9)} Main stores and {r.randint(2, 9)} kids.",
    lambda r: "Use the @property decorator, then email support through the form.",
    lambda r: f"The ratio was {r.randint(1, 9)}:{r.randint(1, 9)} and the hash was {r.getrandbits(64):016x}.",
]


def planted_corpus(lines: int, seed: int = 0) -> list[Line]:
    rng = random.Random(seed)
    corpus = []
    for index in range(lines):
        if index % 4 == 3:
            corpus.append(Line(rng.choice(NEGATIVES)(rng), []))
            continue
        parts, spans, text = rng.sample(TYPES, rng.choice([1, 1, 2])), [], ""
        for kind in parts:
            sentence = rng.choice(TEMPLATES[kind])
            planted = value(kind, rng)
            text += (" " if text else "") + sentence.split("{}")[0]
            spans.append((kind, len(text), len(text) + len(planted)))
            text += planted + sentence.split("{}")[1]
        corpus.append(Line(text, spans))
    return corpus


# ------------------------------------------------------------------------------------ the detectors
def pugc_detector():
    from pugc.personal_data import find

    return lambda text: [(f.kind, f.start, f.end) for f in find(text)]


def presidio_detector():
    from presidio_analyzer.predefined_recognizers import (CreditCardRecognizer, EmailRecognizer, IbanRecognizer,
                                                          IpRecognizer, PhoneRecognizer, UrlRecognizer)

    kinds = {"EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "CREDIT_CARD": "card", "IBAN_CODE": "iban",
             "IP_ADDRESS": "ip", "URL": "url"}
    recognizers = [EmailRecognizer(), PhoneRecognizer(), CreditCardRecognizer(), IbanRecognizer(), IpRecognizer(),
                   UrlRecognizer()]

    def detect(text):
        found = []
        for recognizer in recognizers:
            for result in recognizer.analyze(text, recognizer.supported_entities, None):
                if result.score > 0:  # a validator's 0 means rejected
                    found.append((kinds[result.entity_type], result.start, result.end))
        return found

    return detect


def scrubadub_detector():
    import scrubadub

    kinds = {"email": "email", "phone": "phone", "credit_card": "card", "url": "url", "twitter": "handle",
             "postalcode": "address", "address": "address"}
    scrubber = scrubadub.Scrubber(locale="en_US")
    for name in ("postalcode",):
        try:
            scrubber.add_detector(name)
        except Exception:  # noqa: BLE001  (a detector that does not fit the locale)
            pass

    def detect(text):
        return [(kinds[f.type], f.beg, f.end) for f in scrubber.iter_filth(text) if f.type in kinds]

    return detect


def datatrove_detector():
    from datatrove.pipeline.formatters import PIIFormatter

    formatter = PIIFormatter()  # its defaults: e-mails, and public IPv4 addresses (a validator on the match)
    replacers = {"email": formatter.emails_replacer, "ip": formatter.ip_replacer}

    def detect(text):
        return [(kind, m.start(), m.end()) for kind, r in replacers.items() for m in r.regex.finditer(text)
                if not r.validator or r.validator(m.group(0))]

    return detect


DETECTORS = {"pugc": pugc_detector, "presidio": presidio_detector, "scrubadub": scrubadub_detector,
             "datatrove": datatrove_detector}


# ------------------------------------------------------------------------------------ scoring
def overlaps(a, b) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def outermost(found):
    """Detections not inside a longer one."""
    return [d for d in found if not any(o is not d and o[1] <= d[1] and d[2] <= o[2] and (o[2] - o[1]) > (d[2] - d[1])
                                        for o in found)]


def score(corpus, detect):
    planted = {k: 0 for k in TYPES}
    found = {k: 0 for k in TYPES}
    detections = {k: 0 for k in TYPES}
    correct = {k: 0 for k in TYPES}
    started = time.perf_counter()
    for line in corpus:
        hits = outermost(list(dict.fromkeys(detect(line.text))))
        for span in line.spans:
            planted[span[0]] += 1
            found[span[0]] += any(h[0] == span[0] and overlaps(h, span) for h in hits)
        for hit in hits:
            detections[hit[0]] += 1
            correct[hit[0]] += any(s[0] == hit[0] and overlaps(hit, s) for s in line.spans)
    seconds = time.perf_counter() - started
    return {kind: {"planted": planted[kind], "detections": detections[kind],
                   "precision": correct[kind] / detections[kind] if detections[kind] else None,
                   "recall": found[kind] / planted[kind] if planted[kind] else None} for kind in TYPES}, seconds


def cell(figures, kind):
    p, r = figures[kind]["precision"], figures[kind]["recall"]
    if not figures[kind]["detections"] and not r:
        return "—"
    return f"{'—' if p is None else f'{p:.2f}'} / {r:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json")
    args = parser.parse_args()
    corpus = planted_corpus(args.lines, args.seed)
    planted = {k: sum(s[0] == k for line in corpus for s in line.spans) for k in TYPES}
    print(f"{len(corpus)} lines, {sum(not line.spans for line in corpus)} negatives; planted: "
          + ", ".join(f"{k} {n}" for k, n in planted.items()))
    results = {}
    for name, make in DETECTORS.items():
        try:
            detect = make()
        except ImportError as error:
            print(f"{name}: not installed ({error})")
            continue
        results[name], seconds = score(corpus, detect)
        results[name]["seconds"] = round(seconds, 3)
    print("\nprecision / recall per type (— : the library has no detector for it)\n")
    print("| type | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for kind in TYPES:
        print(f"| {kind} ({planted[kind]}) | " + " | ".join(cell(results[n], kind) for n in results) + " |")
    print("| seconds | " + " | ".join(str(results[n]["seconds"]) for n in results) + " |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"lines": len(corpus), "planted": planted, "results": results}, out, indent=1)


if __name__ == "__main__":
    main()
