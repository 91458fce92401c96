"""The serve batcher on the real tiny model: concurrent jobs meet in one generate call, a cancelled
job is dropped before generation, a disconnected client cancels its job, and a failing batch leaves
the worker serving."""

import asyncio
import threading

import pytest

from posttrain.generation.backend import GenerationRequest
from posttrain.generation.server.app import wait_for_answers
from posttrain.generation.server.batcher import Batcher, Job, token_details


@pytest.fixture(scope="module")
def backend(tiny_dir):
    from posttrain.generation.factory import make_backend

    b = make_backend(str(tiny_dir), "hf", 8, 0, "float32")
    b.show_progress = False
    return b


class GatedBackend:
    """The real backend, whose first complete call waits until the test opens the gate (so the test
    knows the worker is busy), recording the prompts of each call."""

    def __init__(self, backend):
        self.backend, self.model = backend, backend.model
        self.gate, self.busy = threading.Event(), threading.Event()
        self.calls: list[list[list[int]]] = []

    def complete(self, requests, seed=None, logprobs=False):
        self.calls.append([list(r.prompt) for r in requests])
        self.busy.set()
        self.gate.wait()
        return self.backend.complete(requests, seed=seed, logprobs=logprobs)


def request(prompt, max_new=3):
    return GenerationRequest(prompt, max_new, (), 0.0, 1.0)


def test_jobs_waiting_together_are_generated_in_one_call(backend):
    gated = GatedBackend(backend)
    batcher = Batcher(gated, max_batch=8, wait_s=0.0)
    first = batcher.submit(Job([request([1, 5])], 0, False))
    assert gated.busy.wait(60)
    later = [batcher.submit(Job([request([1, 6 + k])] * 2, 0, False)) for k in range(3)]
    gated.gate.set()
    alone = first.result(60)[0].completion
    answers = [f.result(60) for f in later]
    assert gated.calls[1] == [[1, 6], [1, 6], [1, 7], [1, 7], [1, 8], [1, 8]]  # the 3 waiting jobs: one call
    assert batcher.batches[-2:] == [1, 6]
    expected = backend.complete([request([1, 6 + k]) for k in range(3)])
    assert [a[0].completion.text for a in answers] == [c.text for c in expected]  # greedy: batch-independent
    assert alone.num_tokens <= 3


def test_a_cancelled_job_is_dropped_before_generation(backend):
    gated = GatedBackend(backend)
    batcher = Batcher(gated, max_batch=8, wait_s=0.0)
    batcher.submit(Job([request([1, 5])], 0, False))
    assert gated.busy.wait(60)
    gone = batcher.submit(Job([request([1, 9])], 0, False))
    kept = batcher.submit(Job([request([1, 10])], 0, False))
    assert gone.cancel()
    gated.gate.set()
    kept.result(60)
    assert [1, 9] not in [p for call in gated.calls for p in call] and batcher.dropped == 1


def test_a_disconnected_client_cancels_its_waiting_job(backend):
    gated = GatedBackend(backend)
    batcher = Batcher(gated, max_batch=8, wait_s=0.0)
    batcher.submit(Job([request([1, 5])], 0, False))
    assert gated.busy.wait(60)
    future = batcher.submit(Job([request([1, 11])], 0, False))

    async def disconnected():
        return True

    with pytest.raises(Exception, match="disconnected"):
        asyncio.run(wait_for_answers(future, disconnected, timeout_s=600, poll_s=0.01))
    assert future.cancelled()
    gated.gate.set()
    after = batcher.submit(Job([request([1, 12])], 0, False)).result(60)  # the worker goes on
    assert after and [1, 11] not in [p for call in gated.calls for p in call]


def test_a_failing_batch_fails_its_jobs_and_the_worker_keeps_serving(backend):
    batcher = Batcher(backend, max_batch=8, wait_s=0.0)
    bad = batcher.submit(Job([request([])], 0, False))  # an empty prompt: the model layer refuses it
    with pytest.raises(Exception, match="empty prompt"):
        bad.result(60)
    assert batcher.submit(Job([request([1, 5])], 0, False)).result(60)[0].completion.num_tokens >= 1


def test_token_details_match_the_backend_log_likelihood(backend):
    done = backend.complete([request([1, 5, 6], 4)], logprobs=True)[0]
    details = token_details(backend.model, [1, 5, 6], list(done.token_ids), 2)
    assert sum(lp for _, lp, _ in details) == pytest.approx(done.logprob, abs=1e-4)
    assert all(len(alts) == 2 and alts[0][1] >= lp - 1e-6 for _, lp, alts in details)
    echoed = token_details(backend.model, [1, 5, 6], list(done.token_ids), 0, echo=True)
    assert echoed[0][1] is None and len(echoed) == 3 + len(done.token_ids)
    assert [t for t, _, _ in echoed] == [1, 5, 6] + list(done.token_ids)
