"""Overload: a bounded queue per model and a deadline per request.

Model calls run on `workers` threads. A predict request takes a free thread
at once, or waits for one in its model's queue; the queue is bounded in
length (`max_queue` requests per model) and in time (`queue_timeout`
seconds). Past either bound the server answers with 503, a JSON
`{"error": ...}` and a `Retry-After` header, as TF Serving answers an
over-full batching queue, instead of letting requests pile up for ever. The
server answers at once, without queueing, when the queue is full or when the
wait it predicts (the requests ahead, times the recent average call time,
over `workers`) is already past `queue_timeout`; a request that was admitted
to the queue but still waited `queue_timeout` gets its 503 then.

Every predict request also has a deadline (`request_timeout` seconds from
its arrival): reading the body, waiting and the model call together. A
request past it is answered 504 (408 while its body had not arrived); the
model call already running finishes in its thread and frees it then, so the
threads in use never exceed `workers`.
"""

import asyncio
import math

from keras_seq.serving.defaults import (  # noqa: F401  (re-exported)
    DEFAULT_MAX_QUEUE,
    DEFAULT_QUEUE_TIMEOUT_MS,
    DEFAULT_REQUEST_TIMEOUT_MS,
)
from keras_seq.serving.logs import _one_line, scrub_paths
from keras_seq.serving.signatures import RequestError



class Overloaded(RequestError):
    """A request refused because the server is busy (503 with `Retry-After`).

    Args:
        message: one line naming the bound that was hit.
        retry_after: seconds the client should wait before retrying.
    """

    def __init__(self, message, retry_after=1):
        super().__init__(message, status=503)
        self.headers = {"Retry-After": str(min(60, max(1, math.ceil(retry_after))))}


class Admission:
    """Admits predict requests onto the model threads, or refuses them.

    Args:
        workers: threads running model calls (shared by every model).
        max_queue: most requests waiting for a thread, per model.
        queue_timeout: longest wait for a thread, in seconds.
        request_timeout: longest time from a request's arrival to its
            answer, in seconds.

    Create it inside the event loop that will use it (the app's lifespan).

    Example:

    >>> admission = Admission(8, 64, 2.0, 30.0)                    # doctest: +SKIP
    >>> result = await admission.call("fra", pool, deadline, fn, body)  # doctest: +SKIP
    """

    def __init__(self, workers, max_queue, queue_timeout, request_timeout):
        self.workers = workers
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.request_timeout = request_timeout
        self._slots = asyncio.Semaphore(workers)
        self._queued = {}  # model name -> requests waiting for a thread
        self._call_seconds = 0.0  # moving average of a model call's duration

    def deadline(self):
        """The event-loop time by which a request arriving now must be answered."""
        return asyncio.get_running_loop().time() + self.request_timeout

    def remaining(self, deadline):
        """Seconds left before `deadline` (negative once past it)."""
        return deadline - asyncio.get_running_loop().time()

    def queued(self, model):
        """How many requests for `model` wait for a thread now."""
        return self._queued.get(model, 0)

    async def call(self, model, executor, deadline, function, *args):
        """Runs `function(*args)` on `executor` once a thread is free.

        Args:
            model: the model's name (whose queue the request joins).
            executor: the `concurrent.futures.Executor` of the model threads.
            deadline: from `deadline()`, when the request arrived.
            function, *args: the call.

        Returns:
            What `function` returns (its exceptions propagate).

        Raises:
            Overloaded: the model's queue is full, or no thread came free in
                time (503).
            RequestError: the deadline passed (504).
        """
        await self._acquire(model, deadline)
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(executor, function, *args)
        except BaseException:
            self._slots.release()
            raise
        started = loop.time()

        def done(_):  # when the thread is done, not when the client gave up
            self._slots.release()
            self._call_seconds += 0.2 * (loop.time() - started - self._call_seconds)

        future.add_done_callback(done)
        try:
            left = max(0.0, self.remaining(deadline))
            return await asyncio.wait_for(asyncio.shield(future), left)
        except asyncio.TimeoutError:
            future.add_done_callback(_consume_exception)
            raise self._late() from None

    async def _acquire(self, model, deadline):
        if not self._slots.locked():
            await self._slots.acquire()  # a thread is free: no wait
            return
        waiting = self._queued.get(model, 0)
        if waiting >= self.max_queue:
            raise Overloaded(
                f"server overloaded: {waiting} requests for model '{model}' are already waiting "
                f"(the limit, --max-queue, is {self.max_queue}); retry later",
                retry_after=self.queue_timeout,
            )
        ahead = sum(self._queued.values()) + 1
        predicted = ahead * self._call_seconds / self.workers
        if predicted > self.queue_timeout:
            raise Overloaded(
                f"server overloaded: {ahead - 1} requests are waiting, about {_ms(predicted)} of "
                f"work, past the queue timeout of {_ms(self.queue_timeout)} "
                "(--queue-timeout-ms); retry later",
                retry_after=predicted,
            )
        wait = min(self.queue_timeout, self.remaining(deadline))
        self._queued[model] = waiting + 1
        try:
            await asyncio.wait_for(self._slots.acquire(), max(0.0, wait))
        except asyncio.TimeoutError:
            if wait < self.queue_timeout:
                raise self._late() from None
            raise Overloaded(
                f"server overloaded: no model thread came free within the queue timeout of "
                f"{_ms(self.queue_timeout)} (--queue-timeout-ms); retry later",
                retry_after=self.queue_timeout,
            ) from None
        finally:
            self._queued[model] -= 1
            if not self._queued[model]:
                del self._queued[model]

    def _late(self):
        return RequestError(
            f"request timed out: no answer within the request timeout of "
            f"{_ms(self.request_timeout)} (--request-timeout-ms)",
            status=504,
        )


def _ms(seconds):
    return f"{round(seconds * 1000)} ms"


def _consume_exception(future):
    """Retrieves a late call's exception so that asyncio does not log it."""
    if not future.cancelled():
        future.exception()


def call_signature(signature, arrays, base_dir):
    """Runs `signature(arrays)` for a client (REST and gRPC alike).

    A `RequestError` the model raises reaches the client as one line without
    the server's file paths under `base_dir`; a 503 (the model ran out of
    memory) becomes `Overloaded`, a busy server.
    """
    try:
        return signature(arrays)
    except RequestError as error:
        message = scrub_paths(_one_line(error), base_dir)
        if error.status == 503:
            raise Overloaded(f"server overloaded: {message}") from None
        raise RequestError(message, status=error.status) from None
