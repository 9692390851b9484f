"""A driver the head refused closes its log stream in seconds (runner/fleet/driver.py, _bounded_log_stream_close).

Ray's own LogstreamClient against a real gRPC server on loopback whose Logstream holds the stream open, as the
head's Ray Client proxy does while it waits out its channel wait for a server that died as it started (seen in
`make test`: the driver idled 190 s). Ray's client closes its log stream before its channel and waits for the
stream to end; bounded, it goes on to close the channel, which ends the stream.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from types import SimpleNamespace

import pytest

pytest.importorskip("ray", reason="the fleet needs Ray: pip install -e '.[fleet]' (make fleet-venv installs it)")

import grpc  # noqa: E402  (Ray's dependency: after the skip)
import ray.core.generated.ray_client_pb2_grpc as ray_client_pb2_grpc  # noqa: E402
from ray.util.client.logsclient import LogstreamClient  # noqa: E402

from runner.fleet import driver  # noqa: E402

HELD_S = 30.0  # the proxy's hold, in this test (the head's is client_server_timeout_s plus 10 s)


class HoldingProxy(ray_client_pb2_grpc.RayletLogStreamerServicer):
    """A Logstream that answers nothing and ends only when released (or after HELD_S)."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.release = threading.Event()

    def Logstream(self, request_iterator, context):  # noqa: N802  (gRPC's name)
        self.opened.set()
        self.release.wait(HELD_S)
        return
        yield  # a server stream


@pytest.fixture
def held_stream():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    proxy = HoldingProxy()
    ray_client_pb2_grpc.add_RayletLogStreamerServicer_to_server(proxy, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", proxy
    finally:
        proxy.release.set()
        server.stop(0)


def test_a_held_log_stream_is_closed_in_seconds_and_the_channel_ends_it(held_stream, monkeypatch):
    address, proxy = held_stream
    monkeypatch.setattr(driver, "LOG_STREAM_CLOSE_S", 0.5)  # the bound, read as the close runs (5 s in a driver)
    driver._bounded_log_stream_close()
    driver._bounded_log_stream_close()  # once is enough: a second call wraps nothing again
    worker = SimpleNamespace(channel=grpc.insecure_channel(address), _in_shutdown=False,
                             _can_reconnect=lambda error: False)
    client = LogstreamClient(worker, [])
    assert proxy.opened.wait(10), "the log stream never reached the server"
    worker._in_shutdown = True  # as Ray's Worker.close: the log stream first, then the channel
    start = time.monotonic()
    client.close()
    closed_s = time.monotonic() - start
    worker.channel.close()
    assert closed_s < driver.LOG_STREAM_CLOSE_S + 2, closed_s  # unbounded: HELD_S
    client.log_thread.join(5)
    assert not client.log_thread.is_alive()  # the channel's close ended the stream
    assert getattr(LogstreamClient.close, "edgeasr_bounded", False)
