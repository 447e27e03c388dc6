"""Deterministic tiny chat models, built locally for tests and laptop runs.

Each `pugc-tiny/<role>` model is a byte-level BPE tokenizer trained on local text (the prompt templates plus a
small corpus shipped with the package) and a randomly initialised 2-layer Llama with a chat template. The
same id always yields the same weights, so runs are reproducible without any download.
`pugc-tiny/judge-hd32` is the same recipe with 32-dim attention heads, the smallest vLLM's CPU build runs.
`pugc-tiny/mistral` is the paper's tokenization on a tiny network: the 32k SentencePiece tokenizer of
Mistral-7B v0.1/v0.2 (so of Mistral-7B-Instruct-v0.2 and Prometheus-7B-v2.0), as the `mistral-common` wheel
ships it, with Mistral-7B-Instruct-v0.2's published chat template, which refuses a system message.
`pugc-tiny/reward` is a scalar reward model (LlamaForSequenceClassification, one logit), as Skywork-Reward is.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from pugc.models import TINY_PREFIX, cache_dir

log = logging.getLogger(__name__)

BUILD_VERSION = "v2"  # bump when the recipe below changes; the text it trains on is keyed by its digest (build_id)
VOCAB_SIZE = 2048
SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
# One seed per role, so policy, generator and judge are different networks.
TINY_MODELS = {"policy": 11, "generator": 23, "judge": 37, "judge-hd32": 41, "mistral": 53, "reward": 67}
REWARD_ROLE = "reward"  # a sequence-classification head (one logit): a scalar reward model
MISTRAL_ROLE = "mistral"
MISTRAL_TOKENIZER = "data/tokenizer.model.v1"  # inside the mistral-common wheel
MISTRAL_TEMPLATE = "mistral_instruct_v0.2.jinja"  # Mistral-7B-Instruct-v0.2's tokenizer_config.json chat_template
HEAD_SIZE = 16
# vLLM's CPU attention refuses heads under 32 dims; this model runs on hf and vllm alike (tests, bench).
HEAD_SIZE_BY_ROLE = {"judge-hd32": 32}


def _training_text() -> list[str]:
    from pugc.prompts import all_template_text

    corpus = resources.files("pugc.models").joinpath("tiny_corpus.txt").read_text(encoding="utf-8")
    return corpus.splitlines() + all_template_text().splitlines() + [" ".join(str(i) for i in range(10))] * 20


def build_id() -> str:
    """The recipe version and a digest of the training text: a new or edited prompt template rebuilds the models."""
    import hashlib

    digest = hashlib.sha256("\n".join(_training_text()).encode("utf-8")).hexdigest()[:8]
    return f"{BUILD_VERSION}-{digest}"


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_training_text(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|bos|>", eos_token="<|end|>", pad_token="<|pad|>",
        chat_template=CHAT_TEMPLATE, padding_side="left", model_max_length=4096,
    )


def mistral_tokenizer_file() -> Path:
    """The SentencePiece model inside the installed mistral-common wheel, found without importing the package
    (only its data is used; requirements-data.txt says why it is installed without its dependencies)."""
    import importlib.util

    spec = importlib.util.find_spec("mistral_common")
    path = Path(next(iter(spec.submodule_search_locations))) / MISTRAL_TOKENIZER if spec else None
    if path is None or not path.is_file():
        raise ValueError(f"{TINY_PREFIX}{MISTRAL_ROLE} is built on the tokenizer the mistral-common wheel ships "
                         f"({MISTRAL_TOKENIZER}): pip install --no-deps -r requirements-data.txt")
    return path


def build_mistral_tokenizer():
    """Mistral-7B-Instruct-v0.2's tokenizer as its tokenizer_config.json sets it up (BOS added, no EOS, no pad),
    converted to a fast tokenizer and saved as tokenizer.json, so loading it later needs no sentencepiece."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as folder:
        shutil.copyfile(mistral_tokenizer_file(), os.path.join(folder, "tokenizer.model"))
        config = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                  "add_bos_token": True, "add_eos_token": False, "legacy": True, "model_max_length": 32768,
                  "chat_template": resources.files("pugc.models").joinpath(MISTRAL_TEMPLATE).read_text(encoding="utf-8")}
        Path(folder, "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
        return AutoTokenizer.from_pretrained(folder, padding_side="left")


def build_model(vocab_size: int, seed: int, tokenizer, head_size: int = HEAD_SIZE, reward_head: bool = False):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    hidden = 4 * head_size
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        # A wider init than usual makes a random model's verdicts spread out instead of sitting at uniform.
        initializer_range=0.3, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        **({"num_labels": 1} if reward_head else {}),
    )
    torch.manual_seed(seed)
    model = (LlamaForSequenceClassification if reward_head else LlamaForCausalLM)(config)
    if reward_head:
        return model
    # a tokenizer without a pad token (Mistral's) pads with EOS, as the engines and TRL do
    model.generation_config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def ensure_tiny_model(model_id: str) -> Path:
    role = model_id[len(TINY_PREFIX):]
    if role not in TINY_MODELS:
        raise ValueError(f"unknown tiny model {model_id!r}; known: {', '.join(TINY_PREFIX + r for r in TINY_MODELS)}")
    target = cache_dir() / "models" / f"pugc-tiny-{role}-{build_id()}"
    if (target / "config.json").is_file():
        return target
    log.info("building tiny model %s in %s", model_id, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        tokenizer = build_mistral_tokenizer() if role == MISTRAL_ROLE else build_tokenizer()
        model = build_model(len(tokenizer), TINY_MODELS[role], tokenizer, HEAD_SIZE_BY_ROLE.get(role, HEAD_SIZE),
                            reward_head=role == REWARD_ROLE)
        tokenizer.save_pretrained(staging)
        model.save_pretrained(staging)
        os.replace(staging, target)  # atomic: a concurrent builder's finished copy wins, never a half one
    except OSError:
        if not (target / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
