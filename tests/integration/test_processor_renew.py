#!/usr/bin/python3
"""A consumer that librdkafka gives up on as fenced under its own instance
name is replaced inside the process, once; fenced again within 15 s,
the processor stops with exit 1 and says another instance may run under
its name. (librdkafka rejoins a static member whose session timed out
while the group's coordinator was away, e.g. after the coordinator
broker's death, and then finds it fenced by its own rejoin.)

fault.consumer_fenced_ms fences each consumer that long after it is made
(rd_kafka_test_fatal_error with FENCED_INSTANCE_ID), while test_eos's
workload runs:
- the first fence: logged once ("replacing it"), no exit; the new consumer
  gets the partitions again and the processor folds on (its committed
  offsets move after the replacement), /readyz ready again;
- the second, one fault period later: exit 1 naming the cause;
- started again without the fault, it catches up and presencectl verify
  says EQUAL: nothing lost or applied twice across the replacement.
"""
import time
import threading

import pxtest
from test_eos import TTLS, settle_and_verify, workload

FENCE_MS = 8000


def log_text(d):
    d.log.flush()
    with open(d.log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


def wait_for(what, pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def committed(stack):
    """The sum of the group's committed offsets over the input topics."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP"], "group.id": stack.group,
                  "enable.auto.commit": False})
    try:
        tps = [TopicPartition(stack.topic(t), n) for t in ("presence.heartbeats", "presence.locks",
               "core.entities.lifecycle.mutating", "core.entities.lifecycle.mutated") for n in range(3)]
        return sum(max(tp.offset, 0) for tp in c.committed(tps, timeout=10))
    finally:
        c.close()


def ready(stack):
    try:
        return stack.http("/readyz", stack.proc_port)[0] == 200
    except OSError:
        return False


async def test(stack):
    stack.tenant = pxtest.unique("t")
    redis = pxtest.Redis(stack.logdir)
    stack.env["REDIS_PORT"] = str(redis.port)
    common = TTLS + ["--set", "kafka.session.timeout.ms=6000", "--set", "kafka.heartbeat.interval.ms=1000"]
    p = stack.start_processor(*common, "--set", f"fault.consumer_fenced_ms={FENCE_MS}", name="processor-fenced")
    stop, counts = threading.Event(), {"produced": 0}
    producer = threading.Thread(target=workload, args=(stack, stop, counts))
    producer.start()
    try:
        wait_for("ready", lambda: ready(stack), 30)
        renewed = "the consumer was fenced under its own name: replacing it"
        wait_for("the first fence's replacement", lambda: renewed in log_text(p), FENCE_MS / 1000 + 10)
        t_renew = time.time()
        assert p.proc.poll() is None, f"the processor exited ({p.proc.returncode}) on the first fence"
        # the new consumer owns the partitions and folds: ready again, and
        # the group's committed offsets move after the replacement
        wait_for("ready after the replacement", lambda: ready(stack), FENCE_MS / 1000)
        c_then = committed(stack)
        print(f"renew: ready again {time.time() - t_renew:.1f} s after the replacement", flush=True)
        time.sleep(2)
        c_later = committed(stack)
        assert c_later > c_then, f"the new consumer's offsets did not move in 2 s ({c_then} -> {c_later})"
        print(f"renew: committed offsets {c_then} -> {c_later} under the new consumer", flush=True)
        code = p.proc.wait(timeout=FENCE_MS / 1000 + 20)
        text = log_text(p)
        assert code == 1, f"after the second fence: exit {code}, not 1"
        assert text.count(renewed) == 1, f"replaced {text.count(renewed)} times, not once"
        assert "fenced twice within 15 s" in text, "the second fence's exit does not say why"
        assigned = text[text.index(renewed):].count('msg="partitions assigned"')
        assert assigned >= 1, "the new consumer was never assigned partitions"
        print(f"renew: the second fence ended the process with 1; {assigned} assignment(s) after the replacement",
              flush=True)
        stack.retire(p)
        stack.start_processor(*common, name="processor-after")
    finally:
        stop.set()
        producer.join()
    print(f"renew: {counts['produced']} records produced", flush=True)
    settle_and_verify(stack)


if __name__ == "__main__":
    pxtest.run(test, "test_processor_renew")
