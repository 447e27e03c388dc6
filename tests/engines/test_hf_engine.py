"""The transformers engine on the real tiny models: batching, padding, sampling, verdict probabilities."""
import pytest
import torch

from pugc.config import EngineConfig
from pugc.engines.base import Prompt, SamplingParams
from pugc.engines.hf import HFEngine
from pugc.stages.verdicts import RATING_1_TO_5


def user(text, prefix=""):
    return Prompt(messages=({"role": "user", "content": text},), assistant_prefix=prefix)


PROMPTS = [user("Hi"), user("How do I keep basil alive on a windowsill in winter?"), user("Rate this: good tent, 4 out of 5.")]


@pytest.fixture(scope="module")
def engine():
    engine = HFEngine(EngineConfig(model="pugc-tiny/judge", batch_size=8))
    yield engine
    engine.close()


def test_batched_greedy_matches_one_prompt_at_a_time(engine):
    """Left padding with an attention mask must not change what a prompt generates."""
    params = SamplingParams(max_tokens=12, temperature=0.0)
    batched = [c[0].text for c in engine.generate(PROMPTS, params)]
    alone = [engine.generate([p], params)[0][0].text for p in PROMPTS]
    assert batched == alone


def test_n_samples_per_prompt_seeded_and_reproducible(engine):
    params = SamplingParams(max_tokens=10, temperature=1.0, top_p=0.95, n=3, seed=5)
    first = engine.generate(PROMPTS, params)
    assert [len(c) for c in first] == [3, 3, 3]
    assert len({c.text for c in first[1]}) > 1  # sampling, not copies
    assert [[c.text for c in r] for r in engine.generate(PROMPTS, params)] == [[c.text for c in r] for r in first]


def test_completions_report_tokens_and_truncation(engine):
    (completion,), = engine.generate([PROMPTS[1]], SamplingParams(max_tokens=3, temperature=0.0))
    assert completion.finish_reason in ("length", "stop")
    assert 1 <= completion.num_tokens <= 3
    assert engine.stats.generated_tokens > 0


def test_verdict_probabilities_match_a_manual_forward_pass(engine):
    prompt = user("Score it.", prefix="Fine answer. [RESULT] ")
    (probs,) = engine.next_token_probs([prompt], list(RATING_1_TO_5.options))
    prefix_ids, candidate_ids = engine.verdict_position(prompt, list(RATING_1_TO_5.options))
    with torch.inference_mode():
        logits = engine.model(input_ids=torch.tensor([prefix_ids])).logits[0, -1].float()
    expected = torch.softmax(logits, -1)[candidate_ids].tolist()
    assert list(probs.values()) == pytest.approx(expected, rel=1e-4)
    assert 0 < sum(probs.values()) <= 1


def test_verdict_position_handles_the_space_before_the_digit(engine):
    """'[RESULT] ' + '4' tokenises as ']', ' 4' in byte-level BPE: the verdict token is ' 4', read after ']'."""
    prefix_ids, candidate_ids = engine.verdict_position(user("x", prefix="ok [RESULT] "), ["1", "2", "3", "4", "5"])
    assert engine.tokenizer.decode(prefix_ids).endswith("[RESULT]")
    assert [engine.tokenizer.decode([i]) for i in candidate_ids] == [" 1", " 2", " 3", " 4", " 5"]


def test_batched_scores_match_single_scores(engine):
    prompts = [user("a", prefix="[RESULT] "), user("a much longer prompt " * 20, prefix="[RESULT] ")]
    together = engine.next_token_probs(prompts, ["1", "5"])
    alone = [engine.next_token_probs([p], ["1", "5"])[0] for p in prompts]
    for t, a in zip(together, alone):
        assert list(t.values()) == pytest.approx(list(a.values()), rel=1e-4)


def test_prompt_over_the_context_fails_with_a_clear_error():
    engine = HFEngine(EngineConfig(model="pugc-tiny/policy", max_model_len=64))
    with pytest.raises(ValueError, match="over the model's 64-token context"):
        engine.generate([user("word " * 100)], SamplingParams(max_tokens=8))


def test_tiny_models_are_deterministic(tmp_path, monkeypatch):
    from pugc.models.tiny import ensure_tiny_model
    from safetensors.torch import load_file

    monkeypatch.setenv("PUGC_CACHE_DIR", str(tmp_path / "a"))
    first = load_file(ensure_tiny_model("pugc-tiny/policy") / "model.safetensors")
    monkeypatch.setenv("PUGC_CACHE_DIR", str(tmp_path / "b"))
    second_dir = ensure_tiny_model("pugc-tiny/policy")
    second = load_file(second_dir / "model.safetensors")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert (second_dir / "chat_template.jinja").is_file() or "chat_template" in (second_dir / "tokenizer_config.json").read_text()
    with pytest.raises(ValueError, match="unknown tiny model"):
        ensure_tiny_model("pugc-tiny/nope")


def test_samples_depend_only_on_their_prompt_not_on_batch_or_neighbours(engine):
    """The basis of shard invariance: a prompt sampled alone or among others gives the same samples."""
    params = SamplingParams(max_tokens=8, temperature=1.0, top_p=0.9, n=2, seed=3)
    together = engine.generate(PROMPTS, params)
    alone = engine.generate([PROMPTS[2]], params)
    reordered = engine.generate([PROMPTS[2], PROMPTS[0]], params)
    assert [c.text for c in alone[0]] == [c.text for c in together[2]] == [c.text for c in reordered[0]]
    other_seed = engine.generate([PROMPTS[2]], SamplingParams(max_tokens=8, temperature=1.0, n=2, seed=4))
    assert [c.text for c in other_seed[0]] != [c.text for c in alone[0]]


def test_greedy_with_n_copies_one_decode(engine):
    out = engine.generate([PROMPTS[0]], SamplingParams(max_tokens=5, temperature=0.0, n=3))
    assert len(out[0]) == 3 and len({c.text for c in out[0]}) == 1
