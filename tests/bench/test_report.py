#!/usr/bin/env python3
"""test_bench_report: bench/report.py turns one bench/run's raw output into
docs/benchmarks.md. Checked here on a recorded run (tests/bench/fixture-run,
the raw output of a `bench/run --quick`) figure by figure, then on hostile
inputs: an empty directory, truncated and binary logs, a skipped gateway
point, junk perf reports, several runs for the medians. The report must
always be written, must never invent a figure, and must say "not measured"
or "n/a" for what the run did not produce."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REPORT = os.path.join(ROOT, "bench", "report.py")
FIXTURE = os.path.join(HERE, "fixture-run")


def report(run_dir, tmp):
    doc = os.path.join(tmp, "out.md")
    p = subprocess.run([sys.executable, REPORT, run_dir, "--doc", doc, "--img", os.path.join(tmp, "img")],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"report.py exited {p.returncode}: {p.stderr}")
    with open(doc) as f:
        return f.read()


def slurp(path):
    with open(path) as f:
        return f.read()


def row(text, start):
    """The markdown table row starting with `start`."""
    for line in text.splitlines():
        if line.startswith(start):
            return line
    raise AssertionError(f"no row starting {start!r} in:\n{text}")


class Recorded(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="px-report-")
        cls.doc = report(FIXTURE, cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_summary(self):
        r = row(self.doc, "| processor, records/s")
        self.assertIn("| 26,911 |", r)
        self.assertIn("naive processor 23,797", r)
        self.assertIn("redis-benchmark, one script per event 83,717", r)
        self.assertIn("1.13 naive; 0.32 redis-benchmark", r)
        self.assertTrue(r.endswith("| 250,000 | no |"), r)
        r = row(self.doc, "| gateway memory per idle connection")
        self.assertIn("(2,000 connections) | 8,720 | Socket.IO 28,486 | 0.31 |", r)
        r = row(self.doc, "| LOCK -> LOCK_ACK p50")
        self.assertIn("at 2,000 client msgs/s | 58 | Socket.IO 0.37 |", r)
        self.assertTrue(r.endswith("| no |"))
        r = row(self.doc, "| presencectl replay in memory")
        self.assertIn("| 201,910 | kcat read of the same topics 82,828 | 2.44 |", r)

    def test_processor(self):
        self.assertIn("| 1 | 26,911 | 7.4 | 23,797 | 83,717 |", self.doc)
        self.assertIn("`bench/run_processor.sh 200000 20000 1`", self.doc)
        self.assertIn("over the first 20,000 records", self.doc)
        self.assertEqual(row(self.doc, "| redis |"), "| redis | 2.0 |")
        self.assertEqual(row(self.doc, "| commit |"), "| commit | 2.1 |")

    def test_scaling(self):
        self.assertEqual(row(self.doc, "| 1,000 | 37,739"), "| 1,000 | 37,739 | 2.6 | 0.1 | 0.1 | 1.5 |")
        self.assertIn("| 100,000 | 13,447 | 7.4 | 2.5 | 0.4 | 1.9 |", self.doc)
        self.assertIn("from 1,000 to 10,000 entities the rate is multiplied by 0.51", self.doc)
        self.assertIn("| 1,000 | 11,313 | 8.8 |", self.doc)

    def test_gateway(self):
        self.assertIn("| 500 | 500 | 12,706 | 500 | 56,107 | 0.23 |", self.doc)
        self.assertIn("| 250 | 500 (Socket.IO 500) | 32 / 83 / 100 | 0.76 / 4.86 / 19 | 41.92 | 0 | 1.52 |", self.doc)
        self.assertIn("| 500 | 109,450 | 11,490 | 9.53 |", self.doc)

    def test_replay_and_profiles(self):
        self.assertIn("| in memory | 201,910 | CPU (user + sys) per run: 0.5 s |", self.doc)
        self.assertIn("| baseline: kcat read | 82,828 | |", self.doc)
        self.assertIn("**presence-processor, processor benchmark run 1** (917 samples)", self.doc)
        self.assertIn("| 16.8 | [kernel.kallsyms] | `clear_page_erms` |", self.doc)
        self.assertIn("| redis-server |", self.doc)  # Debian's redis-check-rdb binary, named for what it is
        self.assertNotIn("redis-check-rdb", self.doc)

    def test_failover(self):
        self.assertIn("`bench/run_failover.sh 1` on 2026-12-06T08:50:58Z, commit `61f4683`", self.doc)
        self.assertEqual(row(self.doc, "| kill -9 of a processor, restarted"),
                         "| kill -9 of a processor, restarted at once under its name | 43.4 | 43.5 | 43.6 | 16/24 | "
                         "1840 | 0 | <= 3 s | no (0 of 1 rounds) |")
        self.assertIn("| 0.5 | 45.3 | 45.4 | 10/24 | 640 | 0 | <= 12 s | no (0 of 1 rounds) |", self.doc)
        self.assertIn("| 12.0 | 12.2 | 12.3 | 24/24 | 480 | 0 | <= 10 s, no exit | no (0 of 1 rounds) |", self.doc)
        # no entity affected: no figure invented for it, the exit target still judged
        self.assertIn("| n/a | n/a | 4.6 | 0/24 | 18 | 0 | no exit | yes (1 of 1 rounds) |", self.doc)
        self.assertEqual(row(self.doc, "| 1 | 15,666"), "| 1 | 15,666 | 1 |")
        self.assertIn("| 3 | 11,719 | 1 |", self.doc)
        self.assertIn("3 brokers / 1 broker (medians): **0.75**", self.doc)

    def test_plots_when_gnuplot_exists(self):
        if shutil.which("gnuplot") is None:
            self.assertNotIn("![", self.doc)  # no picture promised that was not drawn
            return
        for name in ("processor-throughput", "processor-entities", "gateway-memory", "gateway-latency"):
            png = os.path.join(self.tmp, "img", f"bench-{name}.png")
            self.assertTrue(os.path.getsize(png) > 1000, png)
            self.assertIn(f"(img/bench-{name}.png)", self.doc)


class Hostile(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="px-report-")
        self.run = os.path.join(self.tmp, "run")
        shutil.copytree(FIXTURE, self.run)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def write(self, name, data, mode="w"):
        with open(os.path.join(self.run, name), mode) as f:
            f.write(data)

    def test_empty_dir(self):
        empty = os.path.join(self.tmp, "empty")
        os.mkdir(empty)
        doc = report(empty, self.tmp)
        self.assertIn("| processor, records/s folded, exactly-once on (median) | n/a |", doc)
        self.assertIn("| **median** | not measured |", doc)
        self.assertIn("not profiled", doc)
        self.assertIn("| in memory | not measured |", doc)

    def test_truncated_processor_log(self):
        text = slurp(os.path.join(self.run, "processor.log"))
        self.write("processor.log", text[: text.index("run 1:") + 20])  # cut inside the result line
        doc = report(self.run, self.tmp)
        self.assertIn("| processor, records/s folded, exactly-once on (median) | n/a |", doc)
        self.assertNotIn("26,911", doc)

    def test_binary_garbage(self):
        self.write("gateway-conns-500.log", os.urandom(4096), "wb")
        self.write("replay.log", b"\xff\xfe in memory, run 1: \x00\x01 records/s\n", "wb")
        self.write("perf/processor.perf.txt", "  99.0%  \n%%%% junk [k]\n")
        doc = report(self.run, self.tmp)
        self.assertIn("| in memory | not measured |", doc)
        self.assertNotIn("12,706", doc)  # the garbled point is not reported
        self.assertIn("Runs that produced no result: `conns-500`", doc)
        self.assertIn("**presence-processor, processor benchmark run 1** (? samples)", doc)

    def test_skipped_point(self):
        self.write("gateway-conns-50000.log",
                   "not measured: 50000 connections need more than RLIMIT_NOFILE=20000 (hard limit 20000) allows\n")
        doc = report(self.run, self.tmp)
        self.assertIn("| 50,000 | not measured: 50000 connections need more than RLIMIT_NOFILE=20000", doc)
        self.assertIn("Points above 20000 connections are not measured", doc)
        # the most connections held is still the largest measured point
        self.assertIn("| connections held in one process (most measured) | 2,000 |", doc)

    def test_lock_parts(self):
        # a line as bench/run_gateway.sh prints it (bench-out of 2026-11-30), one with an empty histogram
        with open(os.path.join(self.run, "gateway-rate-250.log"), "a") as f:
            f.write("lock_parts: gateway_lock_ack_s n=63217 p50=0.5 p90=1 p99=1; processor_lock_age_ms n=128518 "
                    "p50=300 p90=500 p99=750; processor_decision_ms n=45 p50=50 p90=150 p99=inf; "
                    "gateway_kafka_delivery_s n=128518 p50=0.005 p90=0.025 p99=0.1\n")
        with open(os.path.join(self.run, "gateway-rate-1000.log"), "a") as f:
            f.write("lock_parts: gateway_lock_ack_s n=0; processor_lock_age_ms n=0; processor_decision_ms n=0\n")
        doc = report(self.run, self.tmp)
        self.assertIn("| 250 | 500 / 1000 | 5 / 100 | 300 / 750 | 50 / inf |", doc)
        # a line from before the delivery histogram: that column is n/a, not invented
        self.assertIn("| 1,000 | n/a | n/a | n/a | n/a |", doc)

    def test_cpu_table(self):
        # the lines as px_bench_gw prints them (2026-12-01), in the presence block only; the socket.io
        # block's own cpu line must not land in the presence table
        path = os.path.join(self.run, "gateway-rate-250.log")
        text = slurp(path)
        pres = ("cpu: phase_s=20.0 client_msgs=200028 machine_busy=93% gateway=62%/62us processor=23%/23us "
                "kafka=49%/49us redis=17%/17us self=24%/24us\n"
                "runq_wait: gateway=63% processor=101% kafka=90% redis=22% self=39%\n")
        sio = "cpu: phase_s=20.0 client_msgs=9 machine_busy=11% socketio=77%/1us redis=1%/1us self=1%/1us\n"
        text = text.replace("server: presence-gateway\n", "server: presence-gateway\n" + pres, 1)
        text = text.replace("server: socket.io (engine.io v4 framing)\n",
                            "server: socket.io (engine.io v4 framing)\n" + sio, 1)
        self.write("gateway-rate-250.log", text)
        # an older run's point (no cpu line) and one whose runq_wait line is missing
        with open(os.path.join(self.run, "gateway-rate-1000.log")) as f:
            t2 = f.read()
        t2 = t2.replace("server: presence-gateway\n", "server: presence-gateway\n"
                        "cpu: phase_s=20.0 client_msgs=1 machine_busy=50% gateway=1%/2us kafka=gone\n", 1)
        self.write("gateway-rate-1000.log", t2)
        doc = report(self.run, self.tmp)
        self.assertIn("| LOCKs/s asked | machine busy | gateway: core / per msg / waited | "
                      "processor: core / per msg / waited | kafka: core / per msg / waited | "
                      "redis: core / per msg / waited | self: core / per msg / waited |", doc)
        self.assertIn("| 250 | 93% | 62% / 62 us / 63% | 23% / 23 us / 101% | 49% / 49 us / 90% | "
                      "17% / 17 us / 22% | 24% / 24 us / 39% |", doc)
        # a process gone during the phase and a missing runq line: n/a, never a figure
        self.assertIn("| 1,000 | 50% | 1% / 2 us / n/a | n/a | n/a | n/a | n/a |", doc)
        self.assertNotIn("socketio:", doc)

    def test_no_cpu_table(self):
        doc = report(self.run, self.tmp)  # the recorded run predates the cpu line
        self.assertNotIn("Where the machine's CPU goes", doc)

    def test_no_lock_parts(self):
        doc = report(self.run, self.tmp)  # the recorded run predates them: no table, no invented figure
        self.assertNotIn("Where a presence LOCK's time goes", doc)

    def test_failover_missing(self):
        os.unlink(os.path.join(self.run, "failover.log"))
        os.unlink(os.path.join(self.run, "brokers.log"))
        doc = report(self.run, self.tmp)
        self.assertIn("Failover: not measured (no result in failover.log).", doc)
        self.assertIn("Processor throughput on 3 brokers beside 1: not measured (no brokers.log).", doc)

    def test_failover_truncated_and_garbage(self):
        text = slurp(os.path.join(self.run, "failover.log"))
        cut = text.index("result fault=broker-controller") + 45  # inside the line
        self.write("failover.log", text[:cut] + "\x00\xff result fault=x round=q\nresult fault=broker-follower\n")
        self.write("brokers.log", "run 1 (3 brokers): lots records folded\nrun 2 (1 broker): 1 records folded "
                   "in 1.00 s from launch: 77 records/s\n")
        doc = report(self.run, self.tmp)
        self.assertIn("| kill -9 of the quorum's leader | not measured | | | | | | | |", doc)
        self.assertIn("| a preferred-leader election (from the first leader seen moving) | not measured |", doc)
        self.assertNotIn("12.2", doc.split("## 5. Failover")[1].split("## 6.")[0])
        self.assertIn("| 1 | 77 | 1 |", doc)
        self.assertNotIn("| 3 |", doc.split("## 5. Failover")[1].split("## 6.")[0])
        self.assertNotIn("3 brokers / 1 broker", doc)

    def test_failover_rounds(self):
        extra = ("result fault=processor-dead round=2 entities=24 affected=12 first=0.60 last=9.50 gap=9.70 "
                 "errors=10 unanswered=0 exits=0\n"
                 "result fault=processor-dead round=3 entities=24 affected=12 first=0.70 last=8.00 gap=8.10 "
                 "errors=12 unanswered=0 exits=0\n"
                 "result fault=broker-follower round=2 entities=24 affected=24 first=5.00 last=6.00 gap=6.10 "
                 "errors=1 unanswered=3 exits=1\n")
        self.write("failover.log", slurp(os.path.join(self.run, "failover.log")) + extra)
        doc = report(self.run, self.tmp)
        self.assertIn("| **0.6** (0.5-0.7) | **9.5** (8.0-45.3) | **9.7** (8.1-45.4) | 10/24, 12/24, 12/24 | "
                      "640, 10, 12 | 0 | <= 12 s | no (2 of 3 rounds) |", doc)
        # an exit or an entity never answered fails a broker fault's round
        self.assertIn("| 243, 1 | 1 | <= 10 s, no exit | no (0 of 2 rounds) |", doc)
        self.assertIn("Entities never answered within 90 s of the fault: broker-follower 3.", doc)

    def test_medians_over_runs(self):
        extra = ("run 2: 10 records folded in 1.00 s from launch: 10000 records/s\n"
                 "baseline run 2: naive: 9 records in 1.0 s from launch: 5000 records/s (1 Redis commands)\n"
                 "run 3: 10 records folded in 1.00 s from launch: 30000 records/s\n")
        self.write("processor.log", slurp(os.path.join(self.run, "processor.log")) + extra)
        doc = report(self.run, self.tmp)
        self.assertIn("| **median** | **26,911** (min 10,000, max 30,000) | | **14,398** (min 5,000, max 23,797) |", doc)
        self.assertIn("| 3 | 30,000 | 1.0 | n/a | n/a |", doc)


if __name__ == "__main__":
    unittest.main(verbosity=2)
