"""Many requests over one model: continuous batching on the tiny demo model, the fair FIFO queue, sizing."""
import dataclasses
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from engine.serving.batching import (ContinuousBatcher, FifoSlots, QueuedGenerator, build_scheduler, choose_path, size_cache)
from engine.errors import EngineBusy
from engine.serving.generation import GenerationParams
from engine.errors import GenerationError
from tests.waiting import wait_for

SAMPLED = GenerationParams(max_new_tokens=12, min_new_tokens=12, temperature=1.0, top_p=1.0)
HI = [{"role": "user", "content": "hi"}]


# -- the fair queue ------------------------------------------------------------------------------------

def test_fifo_slots_serve_waiters_in_arrival_order_and_refuse_when_full():
    slots = FifoSlots(1, max_waiting=3)
    never = threading.Event()
    assert slots.acquire(never)
    order, threads = [], []
    for i in range(3):
        t = threading.Thread(target=lambda i=i: (slots.acquire(never), order.append(i), time.sleep(0.02),
                                                 slots.release()))
        t.start()
        threads.append(t)
        wait_for(lambda: slots.stats("queue").waiting == i + 1, f"waiter {i} in the queue", stall=30, poll=0.01)
    with pytest.raises(EngineBusy):
        slots.check_room()
    slots.release()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2]
    s = slots.stats("queue")
    assert (s.active, s.waiting, s.served) == (0, 0, 4)


def test_a_cancelled_waiter_leaves_the_queue_without_taking_a_slot():
    slots = FifoSlots(1)
    assert slots.acquire(threading.Event())
    cancel, got = threading.Event(), []
    t = threading.Thread(target=lambda: got.append(slots.acquire(cancel)))
    t.start()
    wait_for(lambda: slots.stats("queue").waiting == 1, "the waiter in the queue", stall=30, poll=0.01)
    cancel.set()
    t.join(5)
    assert got == [False] and slots.stats("queue").waiting == 0
    slots.release()
    assert slots.stats("queue").active == 0


# -- sizing and the choice of path ---------------------------------------------------------------------

def test_cache_is_sized_explicitly_from_slots_context_and_budget():
    cfg = SimpleNamespace(num_attention_heads=32, num_key_value_heads=8, head_dim=128, hidden_size=4096,
                          num_hidden_layers=32)  # Mistral 7B
    per_token = 2 * 32 * 8 * 128 * 2
    roomy = size_cache(cfg, 2, slots=4, context_tokens=4096, budget_bytes=8 * 2**30)
    assert roomy.bytes_per_token == per_token and roomy.cache_tokens == 4 * 4096
    tight = size_cache(cfg, 2, slots=4, context_tokens=4096, budget_bytes=per_token * 6000)
    assert tight.cache_tokens <= 6000 and tight.cache_bytes <= per_token * 6000
    assert size_cache(cfg, 2, slots=4, context_tokens=4096, budget_bytes=per_token * 500) is None


def test_quantized_models_and_odd_attention_use_the_queue():
    quantized = SimpleNamespace(init_continuous_batching=None, is_quantized=True,
                                config=SimpleNamespace(_attn_implementation="sdpa"))
    assert choose_path(quantized)[0] == "queue" and "quantized" in choose_path(quantized)[1]
    odd = SimpleNamespace(init_continuous_batching=None, config=SimpleNamespace(_attn_implementation="flex_attention"))
    assert choose_path(odd)[0] == "queue"
    plain = SimpleNamespace(init_continuous_batching=None, config=SimpleNamespace(_attn_implementation="sdpa"))
    assert choose_path(plain)[0] == "continuous"
    assert choose_path(plain, "queue")[0] == "queue"
    with pytest.raises(ValueError, match="engine.batching"):
        choose_path(plain, "fastest")


# -- continuous batching on the tiny model ---------------------------------------------------------------

@pytest.fixture(scope="module")
def batcher(tiny_engine):
    if not isinstance(tiny_engine.scheduler, ContinuousBatcher):
        pytest.fail(f"the tiny engine should batch continuously, got {type(tiny_engine.scheduler).__name__}")
    return tiny_engine.scheduler


def test_the_engine_uses_the_cache_size_we_chose(tiny_engine, batcher):
    assert tiny_engine.stream(HI, SAMPLED).text()
    cache = batcher._manager.batch_processor.cache
    assert cache.num_blocks >= batcher.sizing.num_blocks
    assert cache.cache_tensor.numel() < 2 * batcher.sizing.cache_bytes + 2**22  # not 60 % of RAM
    assert "paged KV cache" in tiny_engine.report.reason


def test_concurrent_streams_share_the_batch_and_all_finish(tiny_engine, batcher):
    results, peak = {}, []

    def run(i):
        stream = tiny_engine.stream([{"role": "user", "content": f"hello {i}"}], SAMPLED)
        results[i] = (stream.text(), stream.stats)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak.append(tiny_engine.load_stats().active)
        time.sleep(0.01)
    assert max(peak) >= 2  # they ran at the same time
    for text, stats in results.values():
        assert text and stats.completion_tokens == 12 and stats.finish_reason == "length"
    assert tiny_engine.load_stats().active == 0


def test_cancel_and_close_free_the_slot_at_once(tiny_engine, batcher):
    long = SAMPLED.with_overrides(max_new_tokens=3000, min_new_tokens=3000)
    cancel = threading.Event()
    stream = tiny_engine.stream(HI, long, cancel)
    for i, _ in enumerate(stream):
        if i == 2:
            cancel.set()
    assert stream.stats.finish_reason == "cancelled" and stream.stats.completion_tokens < 50
    assert tiny_engine.load_stats().active == 0
    stream = tiny_engine.stream(HI, long)
    next(stream)
    assert tiny_engine.load_stats().active == 1
    stream.close()
    assert tiny_engine.load_stats().active == 0
    # and the freed cache takes new work at once
    assert tiny_engine.stream(HI, SAMPLED).text()


def test_a_relayed_reply_comes_from_the_batching_thread_and_matches_the_pulled_one(tiny_engine, batcher):
    """ChatStream.relay, how the API reads a stream: a batched reply's pieces reach the sink from the
    batching thread itself (no thread of the reader's wakes per token), and the text is the one iterating
    gives."""
    greedy = GenerationParams(max_new_tokens=24, min_new_tokens=24, temperature=0.0)
    pulled = tiny_engine.stream(HI, greedy).text()
    relayed, senders = [], set()

    def sink(piece: str) -> None:
        relayed.append(piece)
        senders.add(threading.current_thread())

    stream = tiny_engine.stream(HI, greedy)
    rest = list(stream.via(sink))       # only what is left at the end (text held back for UTF-8 or a stop)
    assert "".join(relayed + rest) == pulled
    assert senders == {batcher._manager._generation_thread}
    assert len(relayed) >= 12 and len(rest) <= 1, (relayed, rest)
    assert stream.stats.completion_tokens == 24 and stream.stats.finish_reason == "length"
    assert tiny_engine.load_stats().active == 0


def test_a_relayed_reply_ends_within_a_token_of_cancel(tiny_engine, batcher):
    cancel, got = threading.Event(), []

    def sink(piece: str) -> None:
        got.append(piece)
        if len(got) == 3:
            cancel.set()

    stream = tiny_engine.stream(HI, SAMPLED.with_overrides(max_new_tokens=3000, min_new_tokens=3000), cancel)
    stream.relay(sink)
    assert len(got) == 3 and stream.stats.finish_reason == "cancelled"
    assert tiny_engine.load_stats().active == 0


def test_a_failing_sink_ends_only_its_own_reply_with_an_error(tiny_engine, batcher):
    """What goes wrong in a reply's handler on the batching thread reaches that reply's reader as a
    GenerationError; the batching thread and the other requests go on."""
    def broken(piece: str) -> None:
        raise ValueError("the reader broke")

    failing = tiny_engine.stream(HI, SAMPLED.with_overrides(max_new_tokens=400, min_new_tokens=400))
    beside = tiny_engine.stream([{"role": "user", "content": "hello"}], SAMPLED)
    healthy = threading.Thread(target=lambda: beside.text())
    healthy.start()
    with pytest.raises(GenerationError, match="^generation failed: the reader broke$"):
        failing.relay(broken)
    healthy.join(60)
    assert failing.stats.finish_reason == "error"
    assert beside.stats.finish_reason == "length" and beside.stats.completion_tokens == 12
    assert batcher._manager.is_running() and tiny_engine.load_stats().active == 0


def test_stop_strings_cut_the_batched_stream(tiny_engine, batcher):
    stops = ["e", "a", "o", "i", "n"]
    stream = tiny_engine.stream(HI, SAMPLED.with_overrides(max_new_tokens=60, min_new_tokens=0, stop=stops))
    text = stream.text()
    assert not any(s in text for s in stops)
    assert stream.stats.finish_reason == "stop" and stream.stats.completion_tokens < 60


def test_a_plain_reply_beside_the_batch_stays_causal(tiny_engine, batcher):
    """A greedy (plain path) reply while batched requests run, and after them, is the reply it was before:
    the batch's forward once left config.is_causal False for every later plain call."""
    greedy = SAMPLED.with_overrides(temperature=0.0)
    plain = tiny_engine.generator            # the plain path itself, sharing the model with the batch
    before = plain.stream(HI, greedy).text()
    long = SAMPLED.with_overrides(max_new_tokens=150, min_new_tokens=150)
    threads = [threading.Thread(target=lambda: tiny_engine.stream(HI, long).text()) for _ in range(3)]
    for t in threads:
        t.start()
    during = [plain.stream(HI, greedy).text() for _ in range(3)]
    for t in threads:
        t.join(120)
    assert during == [before] * 3
    assert plain.stream(HI, greedy).text() == before
    assert getattr(tiny_engine.model.config, "is_causal", None) is None


def test_every_request_shape_joins_the_synchronous_batch(tiny_engine, batcher):
    """What stays on the plain path where batching is asynchronous: tests/test_batch_rows.py; what each shape
    does in the batch: tests/test_batch_rows.py and tests/test_batch_shapes.py."""
    assert not batcher.plain_path_reasons
    for joins in (SAMPLED, SAMPLED.with_overrides(seed=7), SAMPLED.with_overrides(top_k=5),
                  SAMPLED.with_overrides(repetition_penalty=1.2, presence_penalty=0.5, frequency_penalty=0.1),
                  SAMPLED.with_overrides(logprobs=2), dataclasses.replace(SAMPLED, constraint=object()),
                  dataclasses.replace(SAMPLED, tools=object())):
        assert not batcher.needs_plain_path(joins)
    # a seed on the plain path seeds torch's process-wide RNG: exact while nothing else samples meanwhile
    exact = SAMPLED.with_overrides(seed=7)
    wait_for(batcher.idle, "the batcher to go idle", stall=30, poll=0.01)
    assert tiny_engine.generator.stream(HI, exact).text() == tiny_engine.generator.stream(HI, exact).text()


def test_greedy_requests_share_the_batch_unless_told_to_stay_exact(tiny_engine, batcher):
    greedy = SAMPLED.with_overrides(temperature=0.0)
    assert not batcher.needs_plain_path(greedy)           # engine.batch_greedy defaults to true
    wait_for(batcher.idle, "the batcher to go idle", stall=30, poll=0.01)
    alone = [tiny_engine.stream(HI, greedy).text() for _ in range(2)]
    assert alone[0] and alone[0] == alone[1]               # alone in the batch, each step takes the argmax
    exact, why = build_scheduler(tiny_engine.model, tiny_engine.codec, tiny_engine.generator, slots=2,
                                 headroom=0.05, path="continuous", batch_greedy=False)
    try:
        assert exact.needs_plain_path(greedy) and "greedy requests exact on the plain path" in why
        assert exact.stream(HI, greedy).text() == tiny_engine.generator.stream(HI, greedy).text()
    finally:
        exact.close()


def test_every_end_token_of_the_folder_ends_a_batched_reply(tiny_engine, batcher):
    """A folder's generation_config may list several end tokens (Llama 3 lists three); the batch stops at
    each, as `generate` does. Here a token of the greedy reply is made an end token."""
    greedy = GenerationParams(max_new_tokens=12, temperature=0.0)
    wait_for(batcher.idle, "the batcher to go idle", stall=30, poll=0.01)
    first = tiny_engine.stream(HI, greedy)
    first.text()
    ids = list(first.stats.token_ids)
    k = next(k for k in range(2, len(ids)) if ids[k] not in ids[:k])
    codec = dataclasses.replace(tiny_engine.codec, stop_ids=(tiny_engine.codec.eos, ids[k]))
    two_ends, _ = build_scheduler(tiny_engine.model, codec, tiny_engine.generator, slots=2, headroom=0.05,
                                  path="continuous")
    try:
        stream = two_ends.stream(HI, greedy)
        stream.text()
        assert stream.stats.token_ids == ids[:k + 1], (ids, k)
        assert stream.stats.finish_reason == "stop" and stream.stats.completion_tokens == k
    finally:
        two_ends.close()


def test_a_request_with_a_minimum_never_ends_before_it_in_the_batch(tiny_engine, batcher):
    """min_new_tokens masks the end tokens (engine/sampling.HoldEnd): the reply is that long, all text."""
    greedy = GenerationParams(max_new_tokens=12, temperature=0.0)
    wait_for(batcher.idle, "the batcher to go idle", stall=30, poll=0.01)
    first = tiny_engine.stream(HI, greedy)
    first.text()
    ids = list(first.stats.token_ids)
    codec = dataclasses.replace(tiny_engine.codec, stop_ids=(tiny_engine.codec.eos, ids[1]))
    held, _ = build_scheduler(tiny_engine.model, codec, tiny_engine.generator, slots=2, headroom=0.05,
                              path="continuous")
    try:
        stream = held.stream(HI, greedy.with_overrides(min_new_tokens=6))
        stream.text()
        got = stream.stats.token_ids
        assert got[:1] == ids[:1] and ids[1] not in got[:6], (ids, got)   # the end token was held back
        assert stream.stats.completion_tokens >= 6
    finally:
        held.close()


def resident_bytes(tensor) -> int:
    """Bytes of the tensor's whole pages that are in RAM, as the kernel reports them (mincore)."""
    import ctypes
    import mmap

    page = mmap.PAGESIZE
    start = -(-tensor.data_ptr() // page) * page
    end = (tensor.data_ptr() + tensor.numel() * tensor.element_size()) // page * page
    pages = (end - start) // page
    vec = (ctypes.c_ubyte * pages)()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    assert libc.mincore(start, end - start, vec) == 0, ctypes.get_errno()
    return sum(v & 1 for v in vec) * page


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pages are handed back on Linux only")
def test_the_cpu_cache_takes_memory_as_it_is_written_not_all_at_start(tiny_engine, batcher):
    """transformers makes the paged cache with torch.zeros, which writes every page: a 1 GiB cache was 1 GiB
    of RSS before the first request. Its pages go back to the kernel (they read as zeros again)."""
    greedy = GenerationParams(max_new_tokens=12, temperature=0.0)
    wait_for(batcher.idle, "the batcher to go idle", stall=30, poll=0.01)
    expected = tiny_engine.stream(HI, greedy).text()
    big, _ = build_scheduler(tiny_engine.model, tiny_engine.codec, tiny_engine.generator, slots=256,
                             headroom=0.5, path="continuous")
    try:
        wait_for(lambda: big._manager.batch_processor is not None, "the batching thread to make its cache",
                 stall=60, poll=0.01)
        cache = big._manager.batch_processor.cache.cache_tensor
        assert cache.numel() >= 200 * 2**20
        assert resident_bytes(cache) < 2**20, resident_bytes(cache)      # nothing written yet: nothing held
        assert big.stream(HI, greedy).text() == expected                 # a cache of zeros, as transformers made it
        assert 0 < resident_bytes(cache) < 8 * 2**20                    # what one short reply wrote
    finally:
        big.close()


def test_the_queue_path_serves_the_same_interface(tiny_engine):
    sched, why = build_scheduler(tiny_engine.model, tiny_engine.codec, tiny_engine.generator, slots=1,
                                 headroom=0.1, max_waiting=0, path="queue")
    assert isinstance(sched, QueuedGenerator) and "FIFO" in why
    first = sched.stream(HI, SAMPLED)
    next(first)
    assert sched.stats().active == 1
    with pytest.raises(EngineBusy):  # one slot, nobody may wait
        sched.stream(HI, SAMPLED)
    first.close()
    assert sched.stats().active == 0
    stream = sched.stream(HI, SAMPLED)
    assert stream.text() and stream.stats.completion_tokens == 12
