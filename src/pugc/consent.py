"""Consent and language at ingest: which documents may become training data at all.

- Licence: with `input.license_field`, a document whose licence is not in `input.allowed_licenses` (compared
  case-insensitively; a missing licence is not allowed) is dropped as `license_not_allowed`.
- Opt-out: `input.opt_out` names a text file (local or gs://), one entry a line (`#` starts a comment): a
  document id, `author:NAME` (matched on `input.author_field`, case-insensitively) or `domain:example.com`
  (matched on the host of `input.url_field`, its subdomains included). A listed document is dropped as
  `opted_out`; the drop says which kind of entry matched, never the name or domain.
- Language: with `input.languages`, py3langid (its model ships inside the package: nothing is downloaded)
  names each document's language; one not among them with at least `language_min_confidence` is dropped as
  `language_not_kept`, and every document's language is counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pugc.config import InputConfig

UNDETERMINED = "und"  # ISO 639-2's code for a language not identified with enough confidence


@dataclass
class OptOutList:
    ids: set[str] = field(default_factory=set)
    authors: set[str] = field(default_factory=set)
    domains: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, lines, source: str) -> "OptOutList":
        listed = cls()
        for number, line in enumerate(lines, 1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            kind, _, value = entry.partition(":")
            if kind == "author" and value.strip():
                listed.authors.add(value.strip().casefold())
            elif kind == "domain" and value.strip():
                listed.domains.add(value.strip().lower().lstrip(".").removeprefix("www."))
            elif kind in ("author", "domain"):
                raise ValueError(f"{source}:{number}: '{kind}:' names no {kind}")
            else:
                listed.ids.add(entry)
        return listed

    def check_fields(self, config: InputConfig, source: str) -> None:
        """A list whose entries the recipe gives no field to match on would silently remove nobody."""
        if self.authors and not config.author_field:
            raise ValueError(f"{source} lists authors, but input.author_field is not set (the field naming a "
                             "document's author)")
        if self.domains and not config.url_field:
            raise ValueError(f"{source} lists domains, but input.url_field is not set (the field holding a "
                             "document's URL)")

    def match(self, doc_id: str, row: dict, config: InputConfig) -> str | None:
        """Which kind of entry lists this document (id, author, domain), or None."""
        if doc_id in self.ids:
            return "document id"
        author = row.get(config.author_field) if config.author_field else None
        if isinstance(author, str) and author.strip().casefold() in self.authors:
            return "author"
        url = row.get(config.url_field) if config.url_field else None
        if isinstance(url, str) and self.domains and _host_listed(url, self.domains):
            return "domain"
        return None


def _host_listed(url: str, domains: set[str]) -> bool:
    try:
        host = (urlsplit(url if "://" in url else f"//{url}").hostname or "").lower().removeprefix("www.")
    except ValueError:  # a malformed URL (an unclosed IPv6 bracket) names no host
        return False
    parts = host.split(".")
    return any(".".join(parts[i:]) in domains for i in range(len(parts)))


def load_opt_out(uri: str, config: InputConfig) -> OptOutList:
    from pugc.io import read_text

    listed = OptOutList.parse(read_text(uri).splitlines(), uri)
    listed.check_fields(config, uri)
    return listed


class LanguageFilter:
    """py3langid's identifier, loaded once (about 0.4 s); about 0.06 ms a document."""

    def __init__(self, config: InputConfig):
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self.identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        unknown = sorted(set(config.languages) - set(self.identifier.nb_classes))
        if unknown:
            raise ValueError(f"input.languages: {', '.join(unknown)} not among the {len(self.identifier.nb_classes)} "
                             f"languages py3langid identifies (ISO 639-1 codes such as en, de, ja)")
        self.keep = set(config.languages)
        self.min_confidence = config.language_min_confidence

    def identify(self, text: str) -> tuple[str, float]:
        language, confidence = self.identifier.classify(text)
        return (language if confidence >= self.min_confidence else UNDETERMINED), float(confidence)


@dataclass
class Screens:
    """What ingest checks a valid document against before it may pass, in this order."""

    opt_out: OptOutList | None = None
    languages: LanguageFilter | None = None

    @classmethod
    def for_config(cls, config: InputConfig) -> "Screens":
        return cls(opt_out=load_opt_out(config.opt_out, config) if config.opt_out else None,
                   languages=LanguageFilter(config) if config.languages else None)

    def reason(self, doc_id: str, row: dict, text: str, config: InputConfig,
               languages_seen: dict[str, int]) -> tuple[str, str] | None:
        """(reason code, detail) if the document may not pass, else None; counts the languages it names."""
        if config.license_field:
            licence = row.get(config.license_field)
            allowed = {a.casefold() for a in config.allowed_licenses}
            if not isinstance(licence, str) or licence.strip().casefold() not in allowed:
                if licence in (None, ""):
                    return "license_not_allowed", f"no licence in field '{config.license_field}'"
                return "license_not_allowed", f"licence {str(licence)[:64]!r} is not in input.allowed_licenses"
        if self.opt_out is not None and (kind := self.opt_out.match(doc_id, row, config)):
            return "opted_out", f"its {kind} is on the opt-out list"
        if self.languages is not None:
            language, confidence = self.languages.identify(text)
            languages_seen[language] = languages_seen.get(language, 0) + 1
            if language not in self.languages.keep:
                return "language_not_kept", f"identified as {language} (confidence {confidence:.2f})"
        return None


def licence_of(row: dict[str, Any], config: InputConfig) -> str | None:
    value = row.get(config.license_field) if config.license_field else None
    return value.strip() if isinstance(value, str) else None
