"""Prompt formats: how a role's chat messages become the text its model was trained on.

`engines.<role>.prompt_format` is one of
- `chat_template` (default): the tokenizer's own template (hf, vllm) or the server's (openai, chat endpoint).
  A template that refuses a system message (Mistral-7B-Instruct's, Llama-2-era ones: "Conversation roles must
  alternate ...") gets it merged into the first user turn instead: the system text, a blank line, the user text.
- `prometheus`: the format Prometheus 2 was trained on and prometheus-eval renders (fastchat's "mistral"
  conversation): "[INST] {system}\\n{user} [/INST]". The tokenizer adds the BOS token, as vLLM does for a text
  prompt; with the openai engine the text goes to the completions endpoint.
- any string with Jinja markup: a chat template of its own (transformers' semantics: `messages`,
  `add_generation_prompt`, `bos_token`, `eos_token`, `raise_exception`).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

CHAT_TEMPLATE = "chat_template"
PROMETHEUS = "prometheus"
NAMED_FORMATS = (CHAT_TEMPLATE, PROMETHEUS)
# What servers and templates say when they refuse a system message (vLLM passes the template's words on).
SYSTEM_REFUSED = re.compile(r"roles must alternate|system role|roles are supported|system message", re.IGNORECASE)


def is_jinja(prompt_format: str) -> bool:
    return "{{" in prompt_format or "{%" in prompt_format


def check_prompt_format(prompt_format: str) -> str:
    """The format as given, or a ValueError naming the formats there are (a Jinja string is compiled here, so a
    syntax error shows at recipe load, not hours into a run)."""
    if prompt_format in NAMED_FORMATS:
        return prompt_format
    if not is_jinja(prompt_format):
        raise ValueError(f"unknown prompt format {prompt_format!r}: use {' or '.join(NAMED_FORMATS)}, "
                         "or a Jinja chat template")
    from jinja2 import TemplateSyntaxError

    try:
        _compiled(prompt_format)
    except TemplateSyntaxError as exc:
        raise ValueError(f"prompt format: the Jinja chat template does not compile (line {exc.lineno}: {exc.message})") from None
    return prompt_format


def has_system(messages: Sequence[dict]) -> bool:
    return any(m.get("role") == "system" for m in messages)


def merge_system(messages: Sequence[dict]) -> list[dict]:
    """The messages without a system role: its text opens the first user turn, a blank line before the user's."""
    system = "\n\n".join(m.get("content") or "" for m in messages if m.get("role") == "system")
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if not system:
        return rest
    if rest and rest[0].get("role") == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0].get('content') or ''}"
    else:
        rest.insert(0, {"role": "user", "content": system})
    return rest


def prometheus_prompt(messages: Sequence[dict]) -> str:
    """fastchat's "mistral" conversation as prometheus-eval fills it (`PrometheusEval._get_conversation_prompt`:
    the last system message is the conversation's system message; user and assistant turns alternate by
    position; an empty turn contributes only its tag), ending with the assistant's tag, without BOS."""
    system = ""
    turns = []
    for message in messages:
        if message.get("role") == "system":
            system = message.get("content") or ""
        else:
            turns.append(message.get("content") or "")
    text = f"[INST] {system}\n" if system else "[INST] "
    for index, content in enumerate(turns):
        tag = ("[INST]", "[/INST]")[index % 2]
        if not content:
            text += tag
        elif index == 0:
            text += content + " "
        else:
            text += f"{tag} {content}" + (" ", "</s>")[index % 2]
    return text + ("[INST]", "[/INST]")[len(turns) % 2]


@lru_cache(maxsize=8)
def _compiled(template: str):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # transformers renders chat templates with these settings (trim_blocks, lstrip_blocks, sandboxed)
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return environment.from_string(template)


def render_jinja(template: str, messages: Sequence[dict], bos_token: str = "", eos_token: str = "") -> str:
    """A Jinja chat template rendered without a tokenizer (the openai engine: the server adds BOS to a text
    prompt, so `bos_token` is empty there)."""
    from jinja2.exceptions import TemplateError

    def raise_exception(message):
        raise TemplateError(message)

    return _compiled(template).render(messages=list(messages), add_generation_prompt=True, bos_token=bos_token,
                                      eos_token=eos_token, raise_exception=raise_exception)


def render_text(prompt_format: str, messages: Sequence[dict]) -> str:
    """A prompt for a server's completions endpoint: every format but the server's own chat template."""
    if prompt_format == PROMETHEUS:
        return prometheus_prompt(messages)
    return render_jinja(prompt_format, messages)
