"""Where the continuous batch loses against transformers driving the same manager itself, in process.

The same bench-size model (bf16) and the same prompts, greedy, exact lengths; rounds alternate:
- ours: ContinuousBatcher.stream, one thread per request, relayed (as the API's StreamPump reads it: the
  batching thread decodes, matches stop strings, counts and hands the piece over; the request's thread
  only waits for the end) and iterated (as the UI reads it: the request's thread wakes per token to take
  the piece); engine/serving/sampling.py picks the tokens;
- direct: a manager with our cache and our processors, requests added with `add_request` and every output
  read by one thread from transformers' own queue, nothing decoded (what the manager alone costs);
- direct, no processors: the same without our sampler (the batch's plain argmax);
- direct, peer cache: no processors and the cache `bench peer` gives transformers serve (64 x 256 tokens).
Run: `.venv/bin/python -m bench batch_paths`.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Any, Callable

CLIENTS = 32
TOKENS = 32
ROUNDS = 3
PEER_CACHE = {"page_size": 256, "num_blocks": 64, "max_batch_tokens": 512}


def _direct(manager: Any, prompts: list[list[int]], kwargs: dict) -> float:
    started = time.perf_counter()
    for prompt in prompts:
        manager.add_request(prompt, max_new_tokens=TOKENS, streaming=True, eos_token_id=-1, **kwargs)
    done, tokens = set(), 0
    while len(done) < len(prompts):
        out = manager.output_router.output_queue.get(timeout=300)
        if out.is_finished():
            done.add(out.request_id)
            tokens += len(out.generated_tokens)
    return tokens / (time.perf_counter() - started)


def run() -> str:
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    from bench.bench_serving import client_messages, stream_clients
    from engine.serving.batching import _stop_manager, build_scheduler
    from engine.chat import ChatEngine
    from config import EngineConfig
    from engine.serving.generation import GenerationParams
    from engine.serving.sampling import batch_sampler
    from engine.loading.sources import resolve_source

    load = os.getloadavg()[0]
    engine = ChatEngine.from_source(resolve_source("demo:bench"), EngineConfig(max_concurrent=CLIENTS),
                                    batching="queue")
    greedy = GenerationParams(max_new_tokens=TOKENS, min_new_tokens=TOKENS, temperature=0.0)
    prompts = [engine.generator.prepare(client_messages(i), greedy, None)[1] for i in range(CLIENTS)]
    scheduler, why = build_scheduler(engine.model, engine.codec, engine.generator, slots=CLIENTS, headroom=0.15,
                                     path="continuous")
    sizing = scheduler.sizing
    ours_cache = {"page_size": sizing.page_size, "num_blocks": sizing.num_blocks,
                  "max_batch_tokens": sizing.max_batch_tokens, "max_requests_per_batch": sizing.max_requests}
    managers = []

    def manager(cache: dict, processors: Any) -> Any:
        gen = GenerationConfig(do_sample=False, eos_token_id=engine.codec.eos, pad_token_id=engine.codec.eos,
                               max_new_tokens=512)
        cb = ContinuousBatchingConfig(**cache, per_request_processors=True, auto_switch_to_flash=False,
                                      allow_block_sharing=False, max_memory_percent=0.9, cpu_offload_space=0.0)
        m = engine.model.init_continuous_batching(generation_config=gen, continuous_batching_config=cb)
        if processors is not None:
            m.logit_processor = processors
        m.start()
        managers.append(m)
        return m

    ours_kwargs = scheduler._sampling(greedy)
    with_sampler = manager(ours_cache, batch_sampler(engine.codec.stops))
    plain, peer = manager(ours_cache, None), manager(PEER_CACHE, None)
    rows: dict[str, Callable[[], float]] = {
        "ours, relayed as the API reads it: pieces handed over on the batching thread":
            lambda: stream_clients(scheduler, CLIENTS, TOKENS, greedy, relayed=True)[0],
        "ours, iterated: each request's thread wakes per token":
            lambda: stream_clients(scheduler, CLIENTS, TOKENS, greedy)[0],
        "direct: our cache, our sampler, one reader": lambda: _direct(with_sampler, prompts, ours_kwargs),
        "direct: our cache, no processors": lambda: _direct(plain, prompts, {}),
        "direct: the peer's cache (64 x 256), no processors": lambda: _direct(peer, prompts, {}),
    }
    try:
        for measure in rows.values():
            measure()                                   # warm-up
        results: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(ROUNDS):
            for name, measure in rows.items():
                results[name].append(measure())
    finally:
        scheduler.close()
        for m in managers:
            _stop_manager(m)
        engine.close()
    best = statistics.median(results["direct: our cache, no processors"])
    lines = ["## Continuous batch: our path against the manager alone (CPU, in process)", "",
             f"{CLIENTS} greedy requests x {TOKENS} tokens at once, bench model bf16, {ROUNDS} alternating rounds "
             f"after a warm-up; load average {load:.1f} at start. Ours: {why}.", "",
             "| path | tokens/s per round | median | vs direct, no processors |", "|---|---|---|---|"]
    for name, values in results.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {' / '.join(f'{v:.1f}' for v in values)} | {median:.1f} | {median / best:.3f} |")
    lines += ["", "Reproduce: `.venv/bin/python -m bench batch_paths`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
