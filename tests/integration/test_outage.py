#!/usr/bin/python3
"""A Redis outage mid-stream (a dependency outage is not a record failure): Redis is frozen
(SIGSTOP) for 10 s while records keep coming. The processor must report
not-ready during the outage, pause rather than skip anything, resume by itself
when Redis is back, and at the end Redis and presence.changes must equal an
offline fold of the log: no record lost, none applied twice."""
import signal
import threading
import time

import pxtest
from test_eos import TTLS, settle_and_verify, workload


async def test(stack):
    stack.tenant = pxtest.unique("t")
    redis = pxtest.Redis(stack.logdir)
    stack.env["REDIS_PORT"] = str(redis.port)
    stack.start_processor(*TTLS, "--set", "redis.timeout_ms=1000")
    stop, counts = threading.Event(), {"produced": 0}
    producer = threading.Thread(target=workload, args=(stack, stop, counts))
    producer.start()
    try:
        # ready once it owns its partitions, checked (fresh topics may
        # answer NOT_LEADER for a few seconds at first)
        deadline, last = time.time() + 30, None
        while True:
            try:
                last = stack.http("/readyz", stack.proc_port)
            except OSError as e:  # not listening yet
                last = (0, str(e))
            if last[0] == 200:
                break
            assert time.time() < deadline, last
            time.sleep(0.2)
        time.sleep(2)
        redis.proc.send_signal(signal.SIGSTOP)
        t0, saw_not_ready = time.time(), False
        while time.time() - t0 < 10:
            time.sleep(0.5)
            try:
                status, body = stack.http("/readyz", stack.proc_port)
            except OSError:
                continue  # the loop may be inside a Redis timeout
            if status == 503 and "redis=down" in body:
                saw_not_ready = True
        redis.proc.send_signal(signal.SIGCONT)
        assert saw_not_ready, "the processor never reported not-ready during the outage"
        deadline = time.time() + 30
        while stack.http("/readyz", stack.proc_port)[0] != 200:
            assert time.time() < deadline, "the processor did not become ready again"
            time.sleep(0.5)
        time.sleep(3)
    finally:
        stop.set()
        producer.join()
    print(f"outage: {counts['produced']} records produced")
    status, metrics = stack.http("/metrics", stack.proc_port)
    errors = [l for l in metrics.splitlines() if l.startswith("presence_processor_redis_errors_total ")]
    assert errors and int(errors[0].split()[-1]) >= 1, errors
    lags = [l for l in metrics.splitlines() if l.startswith("presence_processor_consumer_lag{")]
    assert len(lags) == 12 and all(stack.prefix in l for l in lags), lags  # 4 topics x 3 partitions
    settle_and_verify(stack)
    redis.kill()


if __name__ == "__main__":
    pxtest.run(test, "test_outage")
