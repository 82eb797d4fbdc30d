#!/usr/bin/python3
"""A processor whose loop stops turning ends itself: fault.block_loop_ms
blocks the loop for good (as a call that never returns would: a
rebalance waiting for a commit the brokers cannot answer); the watchdog
thread (processor.loop_stall_exit_ms, here 2 s) logs why, naming the
setting, and the process exits 1 for its supervisor to restart it. Without the fault, the same setting never fires (the loop turns every
100 ms, also when idle).
"""
import asyncio
import time

import pxtest


def log_text(d):
    d.log.flush()
    with open(d.log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


async def test(stack):
    quiet = stack.start_processor("--set", "processor.loop_stall_exit_ms=1500", name="quiet", instance="q1")
    blocked = stack.start_processor("--set", f"http.port={pxtest.free_port()}",
                                    "--set", "processor.loop_stall_exit_ms=2000",
                                    "--set", "fault.block_loop_ms=6000", name="blocked", instance="b1")
    deadline = time.monotonic() + 60
    while blocked.proc.poll() is None:
        assert time.monotonic() < deadline, "the blocked processor did not end itself"
        await asyncio.sleep(0.2)
    took = time.monotonic()
    assert blocked.proc.returncode == 1, blocked.proc.returncode
    text = log_text(blocked)
    assert "the loop blocks now" in text, text[-2000:]
    assert "stopping: the loop has not turned" in text and "setting=processor.loop_stall_exit_ms" in text, \
        text[-2000:]
    stack.retire(blocked)
    # the quiet one, idle the whole time with a tighter bound, is still up
    await asyncio.sleep(3)
    assert quiet.proc.poll() is None, log_text(quiet)[-2000:]
    assert "loop has not turned" not in log_text(quiet)
    print(f"blocked processor ended itself; quiet one alive {time.monotonic() - took:.1f} s later", flush=True)


if __name__ == "__main__":
    pxtest.run(test, "test_processor_blocked")
