"""What the serving tests share (tests/test_serving.py, tests/test_serving_refusals.py).

- `running_server(app)`: the app on a real uvicorn server on a free loopback
  port, in a thread, with an httpx client;
- `assert_error(response, status, *fragments)`: a clean refusal: the status,
  a JSON `{"error": ...}` of one line holding the fragments, no traceback.
"""

import contextlib
import socket
import threading
import time

import httpx
import uvicorn


def free_socket():
    """A bound loopback socket on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def running_server(app, timeout=30.0):
    """Runs `app` on uvicorn in a thread; yields an `httpx.Client` on its URL."""
    sock = free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not runner.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout,
                          limits=limits) as client:
            yield client
    finally:
        runner.should_exit = True
        thread.join(timeout=15)
        sock.close()


def assert_error(response, status, *fragments):
    """Asserts a clean refusal: `status`, one-line JSON `{"error"}` with `fragments`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    assert "\n" not in body["error"]
    for fragment in fragments:
        assert fragment in body["error"], (fragment, body["error"])
