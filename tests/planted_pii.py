"""Planted personal data for the screen's tests (pugc.personal_data): values of every type, and look-alikes
that are not personal data (numbers failing their checksum, versions, dates)."""
from __future__ import annotations

PLANTED = {  # type -> values the screen must find; cards pass Luhn, IBANs mod 97
    "email": ["jane.doe@example.com", "omar_k+forum@mail.example.org", "li42@uni-example.edu"],
    "phone": ["(212) 555-0147", "+44 20 7946 0958", "415.867.5309", "+49 30 12345678", "+33 6 12 34 56 78"],
    "address": ["42 Elm Street, Springfield, IL 62704", "221B Baker St., London NW1 6XE",
                "1600 Pennsylvania Avenue NW, Washington, DC 20500", "Hauptstraße 12, 10115 Berlin"],
    "card": ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "6011000990139424"],
    "iban": ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR14 2004 1010 0505 0001 3M02 606"],
    "ip": ["192.168.10.24", "8.8.4.4", "2001:db8:85a3::8a2e:370:7334"],
    "url": ["https://forum.example.com/t/how-to-fix-my-boiler/123", "www.example.net/wiki/Sourdough_bread",
            "http://example.org/p?id=77&ref=forum"],
    "handle": ["@jane_doe", "@dev_guy42", "@anna@mastodon.example"],
}
NOT_PERSONAL = [  # text the screen must leave as it is
    "Order 4111 1111 1111 1112 never arrived.",  # 16 digits failing the Luhn check: not a card
    "Reference 1234567812345678 on the invoice.",  # fails Luhn too
    "The account DE00 3704 0044 0532 0130 00 bounced.",  # fails mod 97: not an IBAN
    "Upgraded to v2.14.0 on 2024-03-15; Python 3.11.7 and build 10.0.19041 both work.",
    "It cost $1,234.56 in 1999; bake at 220 degrees for 35 minutes.",
    "Meeting on 12/03/2024 at 10:30; the ratio was 3:2.",
    "Room 101, page 42, chapter 7; score 9.5 of 10.",
    "I spent 12 years at 3 Main stores.",
]
SENTENCE = "Reach me: {} — thanks."
SEPARATED = "{} — {} — {}"  # a value between dashes: not read as part of a number or a name beside it


def planted_values() -> list[tuple[str, str]]:
    return [(kind, value) for kind, values in PLANTED.items() for value in values]


def planted_documents(topic: str) -> list[str]:
    """One document per type, each holding every planted value of that type inside ordinary text."""
    return [f"{topic} Ask {', or '.join(values)} for the details. {topic}" for values in PLANTED.values()]
