"""A small OpenAI-compatible server (/v1/chat/completions, /v1/completions, /v1/models, and vLLM's /tokenize and
/detokenize) over the transformers engine.

It lets the `openai` engine be tried and tested end to end on one machine (`pugc serve`), with the tiny
models or any local checkpoint. It serves one request at a time; for real serving use vLLM's server.
`faults` makes it answer the next requests with given HTTP errors, to exercise clients' retries; `fail_on`
answers every request whose messages contain a marker with a given error, a prompt that never succeeds.
Injected errors ask for a 10 ms retry delay (`retry-after-ms`, which the openai client honours).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy

from pugc.engines.base import Prompt, SamplingParams

log = logging.getLogger(__name__)


def parse_request(body: dict) -> tuple[Prompt, SamplingParams]:
    """A chat request (`messages`) or a text one (`prompt`, sent as it is with BOS added, as vLLM does)."""
    if "prompt" in body:
        if not isinstance(body["prompt"], str):
            raise ValueError("prompt must be one string")
        prompt = Prompt(messages=(), text=body["prompt"])
    else:
        messages = [{"role": m["role"], "content": m.get("content") or ""} for m in body["messages"]]
        prefix = ""
        if body.get("continue_final_message") and messages and messages[-1]["role"] == "assistant":
            prefix = messages.pop()["content"]
        prompt = Prompt(messages=tuple(messages), assistant_prefix=prefix)
    params = SamplingParams(
        max_tokens=int(body.get("max_tokens") or 16), temperature=float(body.get("temperature", 1.0)),
        top_p=float(body.get("top_p", 1.0)), n=int(body.get("n", 1)), seed=body.get("seed"),
        repetition_penalty=float(body.get("repetition_penalty", 1.0)),
    )
    if params.greedy and params.n > 1:  # vLLM's contract, kept so clients that break it fail here first
        raise ValueError(f"n must be 1 when using greedy sampling, got {params.n}")
    return prompt, params


def check_template(tokenizer, prompt: Prompt) -> None:
    """The model's chat template applied as it is, as vLLM's server does: one that refuses the messages (a
    system role under Mistral's) is the request's 400, with the template's words."""
    from jinja2.exceptions import TemplateError

    if prompt.text is None:
        try:
            tokenizer.apply_chat_template(list(prompt.messages), tokenize=False, add_generation_prompt=True)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None


class ChatServer:
    def __init__(self, engine, host: str = "127.0.0.1", port: int = 0, faults: list[int] | None = None,
                 fail_on: dict[str, int] | None = None, tokenize: bool = True):
        self.engine = engine
        self.tokenize = tokenize  # serve /tokenize and /detokenize, as vLLM does (False: as the OpenAI API)
        self.faults = list(faults or [])
        self.fail_on = dict(fail_on or {})
        self.requests = 0
        self.text_prompts: list[str] = []  # every /v1/completions prompt, as received (what tests compare)
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "ChatServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def injected_fault(self, raw: bytes) -> int | None:
        with self._lock:
            if self.faults:
                return self.faults.pop(0)
        text = raw.decode("utf-8", "replace")
        return next((status for marker, status in self.fail_on.items() if marker in text), None)

    def complete(self, body: dict) -> dict:
        prompt, params = parse_request(body)
        check_template(self.engine.tokenizer, prompt)
        with self._lock:  # one model, one request at a time
            if prompt.text is not None:
                return self._complete_text(body, prompt, params)
            if body.get("logprobs"):
                top = self.engine.top_logprobs(prompt, int(body.get("top_logprobs") or 1))
                choices = [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": top[0][0]},
                            "logprobs": {"content": [{"token": top[0][0], "logprob": top[0][1], "top_logprobs": [
                                {"token": t, "logprob": lp} for t, lp in top]}]}}]
                generated = 1
            else:
                completions = self.engine.generate([prompt], params)[0]
                choices = [{"index": i, "finish_reason": c.finish_reason, "message": {"role": "assistant", "content": c.text}}
                           for i, c in enumerate(completions)]
                generated = sum(c.num_tokens for c in completions)
        return {"id": f"chatcmpl-{self.requests}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", self.engine.model_id), "choices": choices,
                "usage": {"prompt_tokens": 0, "completion_tokens": generated, "total_tokens": generated}}

    def _complete_text(self, body: dict, prompt: Prompt, params: SamplingParams) -> dict:
        """A /v1/completions reply; `logprobs: k` answers the first token's k most likely, as a mapping."""
        if body.get("logprobs"):
            top = self.engine.top_logprobs(prompt, int(body["logprobs"]))
            # A mapping by text: tokens sharing one (byte-fallback pieces) are summed, so no probability is lost
            by_text: dict[str, float] = {}
            for token, logprob in top:
                by_text[token] = float(numpy.logaddexp(by_text.get(token, -numpy.inf), logprob))
            choices = [{"index": 0, "finish_reason": "length", "text": top[0][0], "logprobs": {
                "tokens": [top[0][0]], "token_logprobs": [top[0][1]], "top_logprobs": [by_text], "text_offset": [0]}}]
            generated = 1
        else:
            completions = self.engine.generate([prompt], params)[0]
            choices = [{"index": i, "finish_reason": c.finish_reason, "text": c.text} for i, c in enumerate(completions)]
            generated = sum(c.num_tokens for c in completions)
        self.text_prompts.append(prompt.text)
        return {"id": f"cmpl-{self.requests}", "object": "text_completion", "created": int(time.time()),
                "model": body.get("model", self.engine.model_id), "choices": choices,
                "usage": {"prompt_tokens": 0, "completion_tokens": generated, "total_tokens": generated}}

    def tokens(self, body: dict, route: str) -> dict:
        """vLLM's /tokenize ({"tokens", "count"}) and /detokenize ({"prompt"}) replies, by the model's tokenizer."""
        tokenizer = self.engine.tokenizer
        if route == "/tokenize":
            ids = tokenizer(body["prompt"], add_special_tokens=bool(body.get("add_special_tokens", True)))["input_ids"]
            return {"tokens": ids, "count": len(ids)}
        return {"prompt": tokenizer.decode(body["tokens"], skip_special_tokens=True)}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._reply(200, {"object": "list", "data": [{"id": server.engine.model_id, "object": "model"}]})
                else:
                    self._reply(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                server.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status = server.injected_fault(raw)
                if status:
                    self._reply(status, {"error": {"message": f"injected fault {status}"}},
                                {"Retry-After": "0", "retry-after-ms": "10"})
                    return
                route = self.path.rstrip("/")
                if route in ("/tokenize", "/detokenize") and server.tokenize:
                    self._reply(200, server.tokens(json.loads(raw), route))
                    return
                if route not in ("/v1/chat/completions", "/v1/completions"):
                    self._reply(404, {"error": {"message": f"no route {self.path}"}})
                    return
                try:
                    body = json.loads(raw)
                    payload = server.complete(body)
                except (KeyError, ValueError, TypeError) as exc:
                    self._reply(400, {"error": {"message": f"bad request: {exc}"}})
                    return
                self._reply(200, payload)

            def log_message(self, fmt, *args):
                log.debug("serve: " + fmt, *args)

        return Handler
