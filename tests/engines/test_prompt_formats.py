"""Each model's prompt in the format it was trained on (pugc.engines.formats).

The reference renderings are the real ones: prometheus-eval's `PrometheusEval._get_conversation_prompt` (over
fastchat's "mistral" conversation) for Prometheus 2, and Mistral-7B-Instruct-v0.2's published chat template on
the tokenizer the mistral-common wheel ships (`pugc-tiny/mistral`), which refuses a system message.
"""
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.exceptions import TemplateError

from pugc.config import EngineConfig
from pugc.engines.base import Prompt, SamplingParams
from pugc.engines.formats import check_prompt_format, merge_system, prometheus_prompt, render_jinja
from pugc.engines.hf import HFEngine
from pugc.engines.hf_server import ChatServer
from pugc.engines.openai_engine import OpenAIEngine
from pugc.stages import reward_scoring

prometheus_eval = pytest.importorskip("prometheus_eval", reason="make setup installs requirements-data.txt")
from fastchat.conversation import get_conv_template  # noqa: E402  (installed with prometheus-eval)
from prometheus_eval.judge import PrometheusEval  # noqa: E402
from prometheus_eval.prompts import (ABS_SYSTEM_PROMPT, ABSOLUTE_PROMPT, ABSOLUTE_PROMPT_WO_REF,  # noqa: E402
                                     SCORE_RUBRIC_TEMPLATE)

INSTRUCTION = "How do I keep basil alive indoors?"
RESPONSE = "Give it six hours of sun,\nwater when the top inch is dry, and pinch the flowers."
REFERENCE = "South window. Water only when the soil is dry an inch down; pinch off flower buds."
CANDIDATES = ["1", "2", "3", "4", "5"]


def prometheus_eval_rendering(user: str) -> str:
    """What prometheus-eval sends its vLLM judge for one absolute grading."""
    messages = [{"role": "system", "content": ABS_SYSTEM_PROMPT}, {"role": "user", "content": user}]
    return PrometheusEval._get_conversation_prompt(None, messages)


def our_rubric(template_name: str) -> str:
    from pugc.prompts import load_template

    return str(load_template(template_name).part("rubric"))


@pytest.fixture(scope="module")
def mistral():
    engine = HFEngine(EngineConfig(model="pugc-tiny/mistral", batch_size=4))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def mistral_judge(mistral):
    engine = HFEngine(EngineConfig(model="pugc-tiny/mistral", prompt_format="prometheus", batch_size=4))
    yield engine
    engine.close()


# ---------------------------------------------------------------------------------------- prometheus
def test_the_judge_prompt_is_prometheus_evals_rendering_byte_for_byte(mistral_judge):
    rubric = our_rubric("reward_judge")
    # the rubric is Prometheus's own score-rubric layout, so the whole prompt can be compared
    criteria, *scores = rubric.split("\n")
    assert rubric == SCORE_RUBRIC_TEMPLATE.format(criteria=criteria[1:-1], **{
        f"score{i}_description": line.split(": ", 1)[1] for i, line in enumerate(scores, 1)})
    expected = prometheus_eval_rendering(ABSOLUTE_PROMPT.format(
        instruction=INSTRUCTION, response=RESPONSE, reference_answer=REFERENCE, rubric=rubric))
    assert mistral_judge.render(reward_scoring.judge_prompt(INSTRUCTION, RESPONSE, REFERENCE)) == expected


def test_the_reference_free_judge_prompt_is_prometheus_evals_rendering_too(mistral_judge):
    expected = prometheus_eval_rendering(ABSOLUTE_PROMPT_WO_REF.format(
        instruction=INSTRUCTION, response=RESPONSE, rubric=our_rubric("reward_judge_no_reference")))
    assert mistral_judge.render(reward_scoring.judge_prompt(INSTRUCTION, RESPONSE, None)) == expected


def test_the_tokenizer_adds_bos_to_a_prometheus_prompt_as_vllm_does_and_the_verdict_follows_a_space_piece(mistral_judge):
    prompt = reward_scoring.judge_prompt(INSTRUCTION, RESPONSE, REFERENCE)
    prompt = Prompt(prompt.messages, assistant_prefix="Helpful and close to the reference. [RESULT] ")
    ids = mistral_judge.prompt_ids(prompt)
    tokenizer = mistral_judge.tokenizer
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert ids[1:] == tokenizer(mistral_judge.render(prompt), add_special_tokens=False)["input_ids"]
    prefix, digits = mistral_judge.verdict_position(prompt, CANDIDATES)
    # SentencePiece writes "] 4" as "]", "▁", "4": the verdict is read after the space piece
    assert tokenizer.convert_ids_to_tokens(prefix[-3:]) == ["RESULT", "]", "▁"]
    assert tokenizer.convert_ids_to_tokens(digits) == CANDIDATES
    (probs,) = mistral_judge.next_token_probs([prompt], CANDIDATES)
    assert set(probs) == set(CANDIDATES) and 0 < sum(probs.values()) <= 1


TURN_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(system=st.one_of(st.none(), TURN_TEXT), turns=st.lists(TURN_TEXT, min_size=1, max_size=5))
def test_prometheus_rendering_is_fastchats_for_any_conversation(system, turns):
    conversation = get_conv_template("mistral")
    messages = []
    if system is not None:
        conversation.set_system_message(system)
        messages.append({"role": "system", "content": system})
    for index, content in enumerate(turns):
        conversation.append_message(conversation.roles[index % 2], content)
        messages.append({"role": ("user", "assistant")[index % 2], "content": content})
    conversation.append_message(conversation.roles[len(turns) % 2], None)
    assert prometheus_prompt(messages) == conversation.get_prompt()


# ----------------------------------------------------------------------------- a template that refuses
def test_the_published_mistral_template_refuses_a_system_message_and_the_engine_merges_it(mistral):
    messages = [{"role": "system", "content": "Answer in one line."}, {"role": "user", "content": INSTRUCTION}]
    with pytest.raises(TemplateError, match="roles must alternate"):
        mistral.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    rendered = mistral.render(Prompt(tuple(messages)))
    assert rendered == f"<s>[INST] Answer in one line.\n\n{INSTRUCTION} [/INST]"
    assert mistral.merge_system  # remembered: later prompts are merged up front
    assert mistral.render(Prompt(({"role": "user", "content": "hi"},))) == "<s>[INST] hi [/INST]"


def test_every_prompt_template_of_the_method_renders_under_the_mistral_template(mistral):
    """No stage's prompt raises on the Mistral template (a system message or not), and each prompt carries one BOS."""
    from importlib import resources
    from string import Template

    from pugc.prompts import load_template

    names = sorted(p.name[:-5] for p in resources.files("pugc.prompts").iterdir() if p.name.endswith(".yaml"))
    for name in names:
        template = load_template(name)
        placeholders = {key for text in (template.system, template.user, template.assistant_prefix)
                        for key in Template(text).get_identifiers()}
        ids = mistral.prompt_ids(template.render(**{key: "text" for key in placeholders}))
        assert ids.count(mistral.tokenizer.bos_token_id) == 1, name


def test_a_jinja_format_of_the_recipes_own_replaces_the_tokenizers_template(mistral):
    template = "{{ bos_token }}{% for m in messages %}<<{{ m['role'] }}>> {{ m['content'] }}\n{% endfor %}<<assistant>>"
    engine = HFEngine(EngineConfig(model="pugc-tiny/mistral", prompt_format=template))
    prompt = Prompt(({"role": "system", "content": "S"}, {"role": "user", "content": "U"}))
    assert engine.render(prompt) == "<s><<system>> S\n<<user>> U\n<<assistant>>"
    assert render_jinja(template, prompt.messages) == "<<system>> S\n<<user>> U\n<<assistant>>"  # server adds BOS


@pytest.mark.parametrize("bad, words", [("chatml", "unknown prompt format 'chatml'"),
                                        ("{% for m in messages %}", "does not compile")])
def test_a_prompt_format_that_cannot_render_fails_at_recipe_load(bad, words):
    with pytest.raises(ValueError, match=words):
        check_prompt_format(bad)
    with pytest.raises(ValueError, match=words):
        EngineConfig(prompt_format=bad)


def test_the_policy_cannot_take_the_judges_format(tmp_path):
    from pugc.checks import UserError
    from pugc.config import load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text("engines: {policy: {prompt_format: prometheus}}\n")
    with pytest.raises((UserError, ValueError), match="engines.policy.prompt_format: prometheus is a judge's format"):
        load_recipe(str(recipe))


def test_merging_keeps_every_word_and_the_turn_order():
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                {"role": "assistant", "content": "A"}, {"role": "user", "content": "V"}]
    assert merge_system(messages) == [{"role": "user", "content": "S\n\nU"}, {"role": "assistant", "content": "A"},
                                      {"role": "user", "content": "V"}]
    assert merge_system([{"role": "system", "content": "S"}]) == [{"role": "user", "content": "S"}]


# --------------------------------------------------------------------------------- served (openai engine)
def served(server, **config) -> OpenAIEngine:
    return OpenAIEngine(EngineConfig(backend="openai", model="pugc-tiny/mistral",
                                     options={"base_url": server.url, "verdict_top_logprobs": 32000}, **config))


def test_a_served_prometheus_judge_gets_the_rendered_text_on_the_completions_endpoint(mistral, mistral_judge):
    prompt = reward_scoring.judge_prompt(INSTRUCTION, RESPONSE, REFERENCE)
    verdict = Prompt(prompt.messages, assistant_prefix="Close to the reference. [RESULT] ")
    with ChatServer(mistral) as server:
        engine = served(server, prompt_format="prometheus")
        (remote,) = engine.next_token_probs([verdict], CANDIDATES)
        (samples,) = engine.generate([prompt], SamplingParams(max_tokens=6, temperature=0.0))
    assert server.text_prompts == [mistral_judge.render(verdict), mistral_judge.render(prompt)]
    assert server.text_prompts[1] == prometheus_eval_rendering(ABSOLUTE_PROMPT.format(
        instruction=INSTRUCTION, response=RESPONSE, reference_answer=REFERENCE, rubric=our_rubric("reward_judge")))
    # Over HTTP only token texts are known: every token that reads as the digit counts (as for the chat endpoint)
    everything = mistral_judge.top_logprobs(verdict, 32000)
    expected = {d: sum(math.exp(lp) for token, lp in everything if token.strip() == d) for d in CANDIDATES}
    assert remote == pytest.approx(expected, rel=1e-4)  # the server added the BOS the local engine adds
    (local,) = mistral_judge.next_token_probs([verdict], CANDIDATES)
    assert all(remote[d] >= local[d] * (1 - 1e-4) for d in CANDIDATES)
    (expected,) = mistral_judge.generate([prompt], SamplingParams(max_tokens=6, temperature=0.0))
    assert [s.text for s in samples] == [s.text for s in expected]


def test_a_server_whose_template_refuses_the_system_message_is_asked_again_with_it_merged(mistral):
    """As `vllm serve` does with Mistral's template: the server answers 400 "Conversation roles must alternate";
    the engine merges the system message and asks again, then merges every later prompt up front."""
    prompts = [Prompt(({"role": "system", "content": "Be brief."}, {"role": "user", "content": q}))
               for q in (INSTRUCTION, "Why do leaves yellow?")]
    bodies = []
    with ChatServer(mistral) as server:
        original = server.complete
        server.complete = lambda body: bodies.append(json.dumps(body["messages"])) or original(body)
        engine = served(server)
        first = engine.generate(prompts, SamplingParams(max_tokens=4, temperature=0.0))
        second = engine.generate(prompts[:1], SamplingParams(max_tokens=4, temperature=0.0))
    assert all(c.error is None for completions in first + second for c in completions)
    assert engine.merge_system and engine.failed_requests == 0
    system_sent = ['"system"' in body for body in bodies]
    assert system_sent == [True, True, False, False, False]  # refused twice, then merged: asked again, later up front
    local = mistral.generate(prompts, SamplingParams(max_tokens=4, temperature=0.0))
    assert [c.text for c in first[0]] == [c.text for c in local[0]] == [c.text for c in second[0]]
