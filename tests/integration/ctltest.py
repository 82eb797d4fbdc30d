"""ctltest.py - helpers of the presencectl integration tests (test_ctl_*.py):
run presencectl on a test's topics, and a redis-cli wrapper."""
import os
import subprocess


def ctl(stack, *args, redis_port=None, timeout=120, check=None):
    """presencectl ARGS with the stack's Kafka/topic prefix and Redis (or
    redis_port); returns the CompletedProcess. check: the exit code required."""
    common = stack.common()
    if redis_port is not None:
        common += ["--set", f"redis.port={redis_port}"]
    args, sets = list(args), []
    while "--set" in args:  # a test's own --set comes last, so it overrides the stack's
        i = args.index("--set")
        sets += args[i:i + 2]
        del args[i:i + 2]
    r = subprocess.run([os.path.join(stack.build, "tools", "presencectl"), *args] + common + sets,
                       capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert r.returncode == check, (f"presencectl {' '.join(args)}: exit {r.returncode}, wanted {check}\n"
                                       f"stdout:\n{r.stdout[-4000:]}\nstderr:\n{r.stderr[-4000:]}")
    return r


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                          check=True).stdout.strip()
