"""Tests for the sandbox's clock mode (every_ms, burst, ticks, finish_ms).

The state tests drive a LiveState with a clock of their own, so that they never
sleep; the HTTP tests check the directives end to end over a real server.
Run with: python3 -m unittest discover -s sandbox -p 'test_*.py' -v
"""

import os
import sys
import time
import unittest

from test_server import ServerTestCase, history_path, runs_path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server  # noqa: E402  (the module under test, next to this file)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def clocked_state(directives, workflow="wf_empty"):
    clock = FakeClock()
    live_key = f"{workflow};{directives}"
    state = server.LiveState(server.RunFactory("2026"), server.WORKFLOWS[workflow], live_key, clock)
    return state, clock


class ClockStateTests(unittest.TestCase):
    def test_runs_arrive_by_the_clock_a_burst_per_tick(self):
        state, clock = clocked_state("every_ms=100;burst=3")
        self.assertEqual(state.advance(0, 0), 0)
        clock.now += 0.099
        self.assertEqual(state.advance(0, 0), 0)
        clock.now += 0.001
        self.assertEqual(state.advance(0, 0), 3)
        clock.now += 0.25
        self.assertEqual(state.advance(0, 0), 9)
        items, has_more = state.page(None, 0, 100)
        self.assertEqual((len(items), has_more), (9, False))
        self.assertEqual({run["status"] for run in items}, {"running"})
        # newest first: the last arrival heads the listing
        self.assertEqual(items, sorted(items, key=lambda run: run["startedAt"], reverse=True))

    def test_ticks_bound_the_arrivals(self):
        state, clock = clocked_state("every_ms=10;ticks=4")
        clock.now += 5
        self.assertEqual(state.advance(0, 0), 4)
        self.assertEqual(len(state.page(None, 0, 100)[0]), 4)

    def test_running_runs_finish_after_finish_ms_as_success_or_failure(self):
        state, clock = clocked_state("every_ms=100;burst=40;ticks=1;finish_ms=300")
        clock.now += 0.1
        state.advance(0, 0)
        before, _ = state.page(None, 0, 100)
        self.assertTrue(all(run["finishedAt"] is None for run in before))
        clock.now += 0.299
        self.assertEqual(state.advance(0, 0), 40)
        clock.now += 0.001
        self.assertEqual(state.advance(0, 0), 80)
        after, _ = state.page(None, 0, 100)
        self.assertEqual([run["id"] for run in after], [run["id"] for run in before])
        statuses = {run["status"] for run in after}
        self.assertEqual(statuses, {"success", "failure"})
        for old, new in zip(before, after):
            self.assertEqual(new["startedAt"], old["startedAt"])
            self.assertIsNotNone(new["finishedAt"])
        self.assertEqual({old for _, old, _ in state.events[40:]}, {"running"})
        failed, _ = state.page("failure", 0, 100)
        self.assertEqual(failed, [run for run in after if run["status"] == "failure"])

    def test_arrivals_and_finishes_happen_in_time_order(self):
        state, clock = clocked_state("every_ms=100;finish_ms=150")
        clock.now += 0.44  # arrivals at 100, 200, 300, 400 ms; finishes at 250, 350 ms
        state.advance(0, 0)
        kinds = ["arrival" if old is None else "finish" for _, old, _ in state.events]
        self.assertEqual(kinds, ["arrival", "arrival", "finish", "arrival", "finish", "arrival"])

    def test_a_run_churn_moved_on_does_not_finish(self):
        state, clock = clocked_state("every_ms=100;ticks=1;finish_ms=100;churn=1")
        clock.now += 0.1
        state.advance(0, 1)  # the one run arrives, then churn changes it
        changed = state.events[-1][2]
        clock.now += 0.1
        state.advance(0, 0)
        self.assertEqual(len(state.events), 2)
        self.assertEqual(state.page(None, 0, 10)[0][0]["status"], changed)

    def test_without_every_ms_nothing_happens_by_the_clock(self):
        state, clock = clocked_state("live=1")
        clock.now += 100
        self.assertEqual(state.advance(0, 0), 0)

    def test_history_follows_the_clock_too(self):
        state, clock = clocked_state("every_ms=100;burst=2")
        clock.now += 0.2
        version, present, _ = state.history(None, None)
        self.assertEqual((version, len(present)), (4, 4))
        clock.now += 0.1
        version, throughout, anytime = state.history(None, 4)
        self.assertEqual((version, throughout, len(anytime)), (6, present, 6))


class ClockDirectiveTests(unittest.TestCase):
    def test_directives_are_read_and_checked(self):
        _, directives = server.parse_workflow_id("wf_demo;every_ms=250;burst=3;ticks=9;finish_ms=0")
        self.assertEqual((directives.every_ms, directives.burst, directives.ticks,
                          directives.finish_ms), (250, 3, 9, 0))
        for bad, message in [
            ("wf_demo;every_ms=0", 'invalid sandbox directive "every_ms=0": '
                                   "expected milliseconds from 1 to 3600000"),
            ("wf_demo;every_ms=5;burst=0", 'invalid sandbox directive "burst=0": '
                                           "expected an integer from 1 to 10000"),
            ("wf_demo;burst=2", "invalid sandbox directives: burst, ticks and finish_ms need "
                                "every_ms"),
        ]:
            with self.assertRaises(server.DirectiveError) as raised:
                server.parse_workflow_id(bad)
            self.assertEqual(str(raised.exception), message)


class ClockHttpTests(ServerTestCase):
    def test_a_listing_fills_by_the_clock_between_requests(self):
        workflow_id = self.unique("wf_empty;every_ms=50;burst=2;finish_ms=0")
        self.assertEqual(self.page(workflow_id)["items"], [])
        give_up = time.monotonic() + 5
        while self.history(workflow_id)["version"] < 2 and time.monotonic() < give_up:
            time.sleep(0.01)  # until the clock's first tick
        items = self.page(workflow_id, limit=100)["items"]
        self.assertGreaterEqual(len(items), 2)
        # finish_ms=0: each run finished the moment it arrived
        self.assertTrue(all(run["status"] in ("success", "failure") for run in items))

    def test_a_bad_clock_directive_answers_400(self):
        status, _, body = self.sandbox.get_json(runs_path("wf_demo;finish_ms=5"))
        self.assertEqual((status, body["message"]), (
            400, "invalid sandbox directives: burst, ticks and finish_ms need every_ms"))
        status, _, body = self.sandbox.get_json(history_path("wf_demo;ticks=0"), token=None)
        self.assertEqual((status, body["message"]), (
            400, 'invalid sandbox directive "ticks=0": expected an integer >= 1'))


if __name__ == "__main__":
    unittest.main()
