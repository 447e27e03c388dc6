"""The safety screen with a scripted engine: planted unsafe documents are dropped (or flagged) with their reason,
every document is accounted for, and the recipe section refuses what cannot work."""
import json
from pathlib import Path

import pytest

from pugc.config import SafetyScreenConfig, load_recipe
from pugc.recipe_types import ConfigError
from pugc.records import Document
from pugc.stages import STAGE_SPECS, safety_screen
from tests.fakes import FakeEngine

PLANTED = Path(__file__).resolve().parents[1] / "data" / "planted_unsafe_ugc.jsonl"
MARKER = "PLANTED-UNSAFE"


def planted_and_safe() -> list[Document]:
    planted = [Document(id=row["id"], text=row["text"]) for row in map(json.loads, PLANTED.read_text().splitlines())]
    safe = [Document(id=f"safe-{i}", text=f"Descale the kettle with vinegar, then boil water twice ({i}).")
            for i in range(4)]
    return [safe[0], planted[0], safe[1], planted[1], safe[2], planted[2], safe[3]]


def unsafe_if_planted(text: str) -> dict:
    """P(yes: unsafe) 0.9 for a planted document, 0.1 for any other (the screen's prompt asks yes/no)."""
    assert "Is this content unsafe?" in text
    return {"yes": 0.9, "no": 0.1} if MARKER in text else {"yes": 0.1, "no": 0.9}


def accounted(result) -> bool:
    return result.counts["in"] == result.counts["out"] + sum(result.counts["dropped"].values())


def test_planted_unsafe_documents_are_dropped_and_accounted():
    docs = planted_and_safe()
    result = safety_screen.run(docs, SafetyScreenConfig(enabled=True), FakeEngine(probs=unsafe_if_planted))
    assert [d.id for d in result.kept] == ["safe-0", "safe-1", "safe-2", "safe-3"]
    assert result.counts == {"in": 7, "out": 4, "dropped": {"unsafe": 3}} and accounted(result)
    assert {d.record_id for d in result.dropped} == {"planted-unsafe-1", "planted-unsafe-2", "planted-unsafe-3"}
    assert all(d.stage == "safety_screen" and d.detail == "harm 0.900 > 0.5" for d in result.dropped)
    assert result.dropped[0].ids == {"doc_id": "planted-unsafe-1"}  # ids only, never the text
    assert [d.harm for d in result.kept] == [0.1] * 4 and not any(d.unsafe for d in result.kept)
    assert result.metrics["pass_rate"] == pytest.approx(4 / 7) and result.metrics["flagged"] == 0.0
    assert result.metrics["harm_mean"] == pytest.approx((3 * 0.9 + 4 * 0.1) / 7)


def test_flag_keeps_planted_documents_marked_unsafe():
    config = SafetyScreenConfig(enabled=True, action="flag")
    result = safety_screen.run(planted_and_safe(), config, FakeEngine(probs=unsafe_if_planted))
    assert result.counts == {"in": 7, "out": 7, "dropped": {}}
    assert {d.id for d in result.kept if d.unsafe} == {"planted-unsafe-1", "planted-unsafe-2", "planted-unsafe-3"}
    assert result.metrics["flagged"] == 3.0


def test_max_harm_is_the_line_and_a_document_on_it_stays():
    probs = {"EDGE": {"yes": 0.5, "no": 0.5}, "OVER": {"yes": 0.51, "no": 0.49}}
    engine = FakeEngine(probs=lambda text: next(v for k, v in probs.items() if k in text))
    result = safety_screen.run([Document("a", "EDGE"), Document("b", "OVER")], SafetyScreenConfig(enabled=True), engine)
    assert [d.id for d in result.kept] == ["a"] and result.counts["dropped"] == {"unsafe": 1}


def test_sampled_votes_drop_a_majority_unsafe_document_and_an_unreadable_verdict_is_its_own_reason():
    replies = {"MIXED": ["Yes.", "no", "yes, it is"], "CLEAN": ["No", "no.", "No, it is safe"],
               "MUMBLE": ["maybe", "???", "I cannot say"]}
    engine = FakeEngine(reply=lambda text, i: next(v for k, v in replies.items() if k in text)[i],
                        error=lambda text, params: "answered 503: overloaded" if "DOWN" in text else None)
    config = SafetyScreenConfig(enabled=True, mode="sampled", n=3, max_resamples=0)
    docs = [Document(name, name) for name in ("MIXED", "CLEAN", "MUMBLE", "DOWN")]
    result = safety_screen.run(docs, config, engine)
    assert [d.id for d in result.kept] == ["CLEAN"] and result.kept[0].harm == 0.0
    assert {d.record_id: d.reason for d in result.dropped} == {
        "MIXED": "unsafe", "MUMBLE": "unparsable_judgement", "DOWN": "engine_error"}
    assert accounted(result)


def test_disabled_screen_passes_everything_and_loads_no_model():
    config = SafetyScreenConfig()
    result = safety_screen.run(planted_and_safe(), config, engine=None)
    assert result.counts == {"in": 7, "out": 7, "dropped": {}} and result.metrics == {"screen_disabled": 1.0}
    assert STAGE_SPECS["safety_screen"].needs_engine(config) is False
    assert STAGE_SPECS["safety_screen"].needs_engine(SafetyScreenConfig(enabled=True)) is True


def test_documents_are_cut_to_the_budget_before_the_screen_reads_them():
    engine = FakeEngine(probs=lambda text: {"no": 1.0})
    long_doc = Document("long", " ".join(["word"] * 50))
    result = safety_screen.run([long_doc], SafetyScreenConfig(enabled=True, max_document_tokens=10), engine)
    assert result.metrics["documents_truncated"] == 1.0
    assert "word " * 11 not in engine.prob_calls[0][0].messages[-1]["content"]


@pytest.mark.parametrize("override, message", [
    ("safety_screen.action=quarantine", "safety_screen.action"),
    ("safety_screen.max_harm=50", "safety_screen.max_harm"),
    ("safety_screen.enable=true", "did you mean 'enabled'"),
])
def test_a_bad_safety_screen_setting_names_its_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe("tiny", [override])


@pytest.mark.parametrize("name", ["paper", "paper-simpo", "paper-base", "paper-base-simpo"])
def test_the_paper_recipes_screen_their_ugc(name):
    recipe = load_recipe(name)
    assert recipe.safety_screen.enabled and recipe.safety_screen.action == "drop"
    assert recipe.cluster.resources["safety_screen"].accelerator_count == \
        recipe.cluster.resources["ugc_filter"].accelerator_count
