"""Concurrent requests generated as one batch: a queue of jobs and one worker thread that owns the model.

A handler puts a Job (its completions' GenerationRequests) on the queue and awaits the job's future.
The worker takes the first job, then keeps collecting for up to `wait_s` (a few milliseconds) or until
`max_batch` completions are waiting, and generates them all in one HFBackend.complete call (which
groups rows with equal settings into one batched generate). A job whose future was cancelled before
the worker took it (client gone, request timed out) is dropped without generating; a job already in a
running batch finishes with it and its result is discarded (HF generate cannot drop one row).

Seeds: greedy rows do not depend on the batch. Sampled rows of one batch are drawn with the seed of its
first sampled job, so a seeded request is reproducible when it is generated alone (as on other batching
servers, where `seed` is best effort under load).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

log = logging.getLogger("posttrain.serve")


@dataclass
class Job:
    """One HTTP request's completions; `top_k` None: no log-probs; `echo`: the prompt's too."""

    requests: list  # GenerationRequest, one per completion
    seed: int
    sampled: bool
    top_k: int | None = None
    echo: bool = False
    future: Future = field(default_factory=Future)


@dataclass
class Answer:
    """A completion and, when asked, (token, log-prob or None, [(token, log-prob)]) for each token
    (the prompt's first when echoed: the first prompt token has no log-prob)."""

    completion: object
    details: list | None = None


class Batcher:
    def __init__(self, backend, max_batch: int, wait_s: float = 0.005):
        self.backend, self.max_batch, self.wait_s = backend, max_batch, wait_s
        self.jobs: queue.Queue[Job] = queue.Queue()
        self.dropped = 0  # jobs cancelled before generation (for the log and the tests)
        self.batches: list[int] = []  # completions per generate call, most recent last (bounded)
        self.generated = self.calls = 0  # completions and generate calls since the start
        self.thread = threading.Thread(target=self._work, name="serve-batcher", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> Future:
        self.jobs.put(job)
        return job.future

    def summary(self) -> str:
        mean = self.generated / self.calls if self.calls else 0.0
        return (
            f"{self.generated} completions in {self.calls} generate calls ({mean:.2f} per call), "
            f"{self.dropped} cancelled requests dropped"
        )

    def _work(self) -> None:
        while True:
            try:
                self._run_batch(self._collect())
            except Exception as err:  # noqa: BLE001 -- the worker must outlive any one batch
                log.error("batch failed: %s: %s", type(err).__name__, err)

    def _collect(self) -> list[Job]:
        """The first waiting job, then whatever arrives within wait_s, up to max_batch completions;
        cancelled jobs are dropped here (set_running_or_notify_cancel is False for them)."""
        batch: list[Job] = []
        size, deadline = 0, None
        while size < self.max_batch:
            try:
                if deadline is None:
                    job = self.jobs.get()
                    deadline = time.monotonic() + self.wait_s
                else:
                    job = self.jobs.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                break
            if not job.future.set_running_or_notify_cancel():
                self.dropped += 1
                log.info("dropped a cancelled request before generating it")
                if not batch:
                    deadline = None
                continue
            batch.append(job)
            size += len(job.requests)
        return batch

    def _run_batch(self, batch: list[Job]) -> None:
        requests = [r for job in batch for r in job.requests]
        seed = next((job.seed for job in batch if job.sampled), 0)
        try:
            done = self.backend.complete(requests, seed=seed, logprobs=False)
        except Exception as err:  # noqa: BLE001 -- each waiting handler answers it as an error object
            for job in batch:
                job.future.set_exception(err)
            return
        self.batches = (self.batches + [len(requests)])[-1000:]
        self.generated, self.calls = self.generated + len(requests), self.calls + 1
        start = 0
        for job in batch:
            mine = done[start : start + len(job.requests)]
            start += len(job.requests)
            try:
                job.future.set_result([self._answer(job, r, c) for r, c in zip(job.requests, mine)])
            except Exception as err:  # noqa: BLE001 -- only this job fails
                job.future.set_exception(err)

    def _answer(self, job: Job, request, completion) -> Answer:
        if job.top_k is None:
            return Answer(completion)
        return Answer(
            completion,
            token_details(self.backend.model, request.prompt, list(completion.token_ids or ()), job.top_k, job.echo),
        )


def token_details(
    model, prompt: list[int], completion: list[int], top_k: int, echo: bool = False
) -> list[tuple[int, float | None, list]]:
    """(token, log p(token | prefix) at temperature 1, the top_k likeliest [(token, log-prob)]) for
    each completion token, after each prompt token when `echo` (the first with None: nothing precedes it)."""
    import torch

    ids = prompt + completion
    first = 1 if echo else len(prompt)  # the first position whose token is scored
    if first >= len(ids):
        return [(prompt[0], None, [])] if echo and prompt else []
    tensor = torch.tensor([ids], device=next(model.parameters()).device)
    with torch.inference_mode():
        logits = model(tensor).logits[0, first - 1 : -1].float()
    logp = torch.log_softmax(logits, dim=-1)
    top = logp.topk(top_k, dim=-1) if top_k else None
    out: list[tuple[int, float | None, list]] = [(prompt[0], None, [])] if echo else []
    for t, token in enumerate(ids[first:]):
        alternatives = list(zip(top.indices[t].tolist(), top.values[t].tolist())) if top is not None else []
        out.append((token, logp[t, token].item(), alternatives))
    return out
