"""The openai engine's own cost per request: requests per second against the project's OpenAI-compatible server
(pugc.engines.hf_server) in another process, answering at once with no model behind it. Prints one JSON object.

    .venv/bin/python bench/openai_client_bench.py [--requests 1000] [--concurrency 16]

A served judge spends far longer per request than this (hundreds of ms of GPU work); the figure says how many
requests one stage process can issue before the client, not the server, is the limit.
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time

SERVER = r'''
import sys, time
from pugc.engines.base import Completion
from pugc.engines.hf_server import ChatServer

class Instant:  # answers every prompt at once: only the HTTP round trip and the client remain
    model_id = "instant"
    def generate(self, prompts, params):
        return [[Completion("ok", 1, "stop") for _ in range(params.n)] for _ in prompts]

ChatServer(Instant(), port=int(sys.argv[1])).start()
print("ready", flush=True)
time.sleep(3600)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    from pugc.config import EngineConfig
    from pugc.engines.base import Prompt, SamplingParams
    from pugc.engines.openai_engine import OpenAIEngine

    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        server.stdout.readline()
        engine = OpenAIEngine(EngineConfig(backend="openai", model="instant", options={
            "base_url": f"http://127.0.0.1:{port}/v1", "max_concurrency": args.concurrency}))
        prompts = [Prompt(messages=({"role": "user", "content": f"Question {i}?"},)) for i in range(args.requests)]
        params = SamplingParams(max_tokens=1, temperature=0.0)
        engine.generate(prompts[:20], params)  # imports and first connections out of the timing
        started = time.monotonic()
        out = engine.generate(prompts, params)
        seconds = time.monotonic() - started
    finally:
        server.kill()
    assert not any(c[0].error for c in out), "a request failed: the figure would not be the client's"
    print(json.dumps({"requests": args.requests, "concurrency": args.concurrency, "seconds": round(seconds, 3),
                      "requests_per_s": round(args.requests / seconds, 1),
                      "ms_per_request": round(1000 * seconds / args.requests, 2)}))


if __name__ == "__main__":
    main()
