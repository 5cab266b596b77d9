"""Unit tests of loadtests._turns: the slot arithmetic of --turn, its options, and the run's books.

Everything here takes explicit times (``now=``, ``since``, ``until``, ``sent``), so no
test sleeps. ``Turns.wait`` is exercised only where it raises ``StopUser`` at once, and in
a child process: it imports Locust, whose import monkey-patches the interpreter with gevent,
and the unit tests keep Locust out of their own process (as ``bench`` does).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from loadtests._plan import PlanError
from loadtests._turns import (
    OFF_TURN_SLACK_S,
    TurnPlan,
    Turns,
    check_compatible,
    check_round,
    turn_plan_from_options,
)
from reporting.latency import LatencyBook, SeriesKey

ROOT = Path(__file__).resolve().parents[2]
FAST = settings(max_examples=200, deadline=None)

START = 100.0
SLOT = 0.25
ROUND = 2.0
ROUNDS = 3
END = START + ROUNDS * ROUND  # 106.0
KEY = SeriesKey("m", "rest", "infer")
OTHER_KEY = SeriesKey("m", "grpc", "infer")


def plan(index: int) -> TurnPlan:
    """Party ``index`` of two: slots of 0.25 s from 100.0, rounds of 2 s, three rounds (to 106.0)."""
    return TurnPlan(index, 2, start=START, slot_s=SLOT, round_s=ROUND, rounds=ROUNDS)


# The order within each cycle is shuffled, seeded by the start: from 100.0, party 0 of two owns
# these slots (every process computes the same; a change of the shuffle shows here first).
OWN_SLOTS_OF_0 = [0, 2, 5, 7, 8, 11, 13, 14, 17, 18, 20, 22]
THIRD = TurnPlan(2, 3, start=START, slot_s=SLOT, round_s=0.75, rounds=2)  # slots 1 and 5: 100.25, 101.25


def test_the_shuffled_order_is_pinned():
    assert [k for k in range(24) if plan(0).owns(k)] == OWN_SLOTS_OF_0
    assert [k for k in range(24) if plan(1).owns(k)] == [k for k in range(24) if k not in OWN_SLOTS_OF_0]


# -- TurnPlan: own_slot_at ---------------------------------------------------


def test_end_and_own_share_of_a_round():
    assert plan(0).end == END
    assert plan(1).own_per_round_s == ROUND / 2


@pytest.mark.parametrize(("index", "t"), [(0, 100.0), (0, 100.1), (1, 100.25), (1, 100.3), (1, 102.6),
                                          (0, 102.8), (1, 105.9)])
def test_inside_own_slot(index, t):
    assert plan(index).own_slot_at(t)
    assert not plan(1 - index).own_slot_at(t)  # the other party's slot at the same time


@pytest.mark.parametrize("t", [99.999, 50.0, END, END + 0.1, 200.0])
def test_no_slot_outside_the_window(t):
    assert not plan(0).own_slot_at(t)
    assert not plan(1).own_slot_at(t)


def test_slots_are_half_open():
    assert not plan(0).own_slot_at(100.25)  # slot 0 ends where slot 1 begins
    assert plan(0).own_slot_at(100.5)


# -- TurnPlan: next_own_start ------------------------------------------------


@pytest.mark.parametrize(("index", "t", "expected"), [
    (0, 90.0, 100.0),  # before the start: the first own slot
    (1, 90.0, 100.25),
    (0, 100.3, 100.5),  # inside the other party's slot: the next own one
    (1, 100.1, 100.25),
    (0, 100.1, 100.5),  # inside an own slot: that one began before t, so the next
    (0, 100.5, 100.5),  # exactly on a slot boundary: that slot
    (1, 100.25, 100.25),
    (1, 100.5, 100.75),
    (1, 105.6, 105.75),  # the last slot of the window is party 1's
])
def test_next_own_start(index, t, expected):
    assert plan(index).next_own_start(t) == pytest.approx(expected)


@pytest.mark.parametrize(("index", "t"), [(0, 105.6), (1, 105.8), (0, END), (1, END), (0, 200.0)])
def test_next_own_start_is_none_past_the_window(index, t):
    assert plan(index).next_own_start(t) is None


# -- TurnPlan: round_of -------------------------------------------------------


@pytest.mark.parametrize(("t", "expected"), [(100.0, 0), (101.999, 0), (102.0, 1), (103.9, 1), (104.0, 2),
                                             (105.999, 2)])
def test_round_of(t, expected):
    assert plan(0).round_of(t) == expected
    assert plan(1).round_of(t) == expected  # rounds are the same for every party


@pytest.mark.parametrize("t", [99.999, END, END + 5])
def test_round_of_is_none_outside_the_window(t):
    assert plan(0).round_of(t) is None


# -- TurnPlan: own_seconds ----------------------------------------------------


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("round_index", range(ROUNDS))
def test_own_seconds_of_a_whole_round(index, round_index):
    assert plan(index).own_seconds(round_index, since=START) == pytest.approx(ROUND / 2)
    assert plan(index).own_seconds(round_index, since=-math.inf) == pytest.approx(ROUND / 2)


def test_own_seconds_after_joining_late_mid_round():
    # Round 0 has slots 0..7 beginning at 100.0, 100.25, .., 101.75; joined at 101.1 only
    # slots 5 (101.25, party 0), 6 (101.5, party 1) and 7 (101.75, party 0) count.
    assert plan(0).own_seconds(0, since=101.1) == pytest.approx(0.5)
    assert plan(1).own_seconds(0, since=101.1) == pytest.approx(0.25)
    assert plan(0).own_seconds(1, since=101.1) == pytest.approx(1.0)  # later rounds are whole
    assert plan(0).own_seconds(0, since=102.0) == 0  # a round over before joining counts nothing


def test_own_seconds_counts_a_slot_beginning_exactly_at_since():
    assert plan(0).own_seconds(0, since=101.25) == pytest.approx(0.5)
    assert plan(0).own_seconds(0, since=101.26) == pytest.approx(0.25)


def test_own_seconds_until_cuts_slots_not_yet_begun():
    # until 100.6: slots 0, 1, 2 have begun (slot 2 of party 0 counts whole, it has begun)
    assert plan(0).own_seconds(0, since=START, until=100.6) == pytest.approx(0.5)
    assert plan(1).own_seconds(0, since=START, until=100.6) == pytest.approx(0.25)
    # until 100.5 exactly: slot 2 begins at until, so it has not begun
    assert plan(0).own_seconds(0, since=START, until=100.5) == pytest.approx(0.25)
    assert plan(0).own_seconds(0, since=START, until=START) == 0


# -- TurnPlan: three parties --------------------------------------------------


def test_three_parties():
    assert THIRD.end == pytest.approx(101.5)
    assert THIRD.own_per_round_s == pytest.approx(0.25)
    assert [THIRD.own_slot_at(t) for t in (100.1, 100.3, 100.6, 100.9, 101.1, 101.3)] == [
        False, True, False, False, False, True]
    assert THIRD.next_own_start(START) == pytest.approx(100.25)
    assert THIRD.next_own_start(100.3) == pytest.approx(101.25)
    assert THIRD.next_own_start(101.3) is None
    assert THIRD.round_of(100.8) == 1
    assert THIRD.own_seconds(0, since=START) == pytest.approx(0.25)
    assert THIRD.own_seconds(1, since=START) == pytest.approx(0.25)
    assert THIRD.own_seconds(1, since=START, until=101.2) == 0


# -- TurnPlan: properties -----------------------------------------------------

plans = st.builds(
    lambda parties, slot, cycles, rounds, start: [
        TurnPlan(i, parties, start, slot, slot * parties * cycles, rounds) for i in range(parties)],
    parties=st.integers(2, 5),
    slot=st.floats(0.01, 60),
    cycles=st.integers(1, 4),
    rounds=st.integers(1, 3),
    start=st.floats(0, 2e9),
)


@FAST
@given(parties=plans, fraction=st.floats(0, 1, exclude_max=True))
def test_exactly_one_party_owns_any_time_in_the_window(parties, fraction):
    first = parties[0]
    t = first.start + fraction * (first.end - first.start)
    assume(first.start <= t < first.end)
    assert sum(p.own_slot_at(t) for p in parties) == 1


@FAST
@given(parties=plans, round_index=st.integers(0, 2))
def test_own_seconds_of_all_parties_over_a_round_sum_to_the_round(parties, round_index):
    first = parties[0]
    assume(round_index < first.rounds)
    shares = [p.own_seconds(round_index, since=p.start) for p in parties]
    assert math.isclose(sum(shares), first.round_s, rel_tol=1e-9)
    assert all(math.isclose(share, first.own_per_round_s, rel_tol=1e-9) for share in shares)


# -- turn_plan_from_options ---------------------------------------------------

NOW = 1_700_000_000.0


def options(**overrides) -> argparse.Namespace:
    values = {"turn": "0/2", "turn_start": NOW + 5, "turn_slot": SLOT, "turn_round": ROUND,
              "turn_rounds": ROUNDS}
    values.update(overrides)
    return argparse.Namespace(**values)


@pytest.mark.parametrize("turn", ["", "   ", None])
def test_no_plan_without_turn(turn):
    assert turn_plan_from_options(options(turn=turn), now=NOW) is None


def test_no_plan_when_the_option_is_absent():
    assert turn_plan_from_options(argparse.Namespace(), now=NOW) is None


def test_plan_from_good_options():
    expected = TurnPlan(1, 2, NOW + 5, SLOT, ROUND, ROUNDS)
    assert turn_plan_from_options(options(turn="1/2"), now=NOW) == expected
    assert turn_plan_from_options(options(turn=" 2/3 ", turn_round=1.5), now=NOW) == TurnPlan(
        2, 3, NOW + 5, SLOT, 1.5, ROUNDS)


def test_a_start_in_the_past_is_fine_while_the_window_lasts():
    found = turn_plan_from_options(options(turn_start=NOW - 1), now=NOW)
    assert found is not None and found.start == NOW - 1


def test_a_start_exactly_600_s_ahead_is_fine():
    assert turn_plan_from_options(options(turn_start=NOW + 600), now=NOW) is not None


@pytest.mark.parametrize(("overrides", "words"), [
    ({"turn": "2/2"}, ["--turn 2/2", "2 or more", "counts from 0", "0/2 .. 1/2"]),
    ({"turn": "1/1"}, ["--turn 1/1", "2 or more", "0/2 .. 1/2"]),
    ({"turn": "x/2"}, ["--turn 'x/2'", "not I/N", "--turn 0/2", "--turn 1/2"]),
    ({"turn": "0-2"}, ["--turn '0-2'", "not I/N", "--turn 0/2"]),
    ({"turn_start": None}, ["--turn needs --turn-start", "same for every run", "date +%s"]),
    ({"turn_start": NOW * 1000}, ["--turn-start", "600 s ahead", "not milliseconds"]),
    ({"turn_start": NOW + 601}, ["--turn-start", "600 s ahead"]),
    ({"turn_start": NOW - 10}, ["--turn-start", "3 rounds of 2 s", "over already", "a few seconds ahead"]),
    ({"turn_slot": 0.001}, ["--turn-slot 0.001", "out of range", "0.01 to 60"]),
    ({"turn_slot": 100}, ["--turn-slot 100", "out of range", "0.01 to 60"]),
    ({"turn_round": 0.6}, ["--turn-round 0.6", "whole number of cycles", "2 slots of 0.25 s", "e.g. 0.5"]),
    ({"turn_round": 0.25}, ["--turn-round 0.25", "whole number of cycles", "e.g. 0.5"]),
    ({"turn_rounds": 0}, ["--turn-rounds 0", "1 or more"]),
    ({"turn": "\u00b2/2"}, ["not I/N"]),  # str.isdigit() takes a superscript two; int() does not
    ({"turn_start": float("nan")}, ["--turn-start nan", "not a time"]),
    ({"turn_round": float("nan")}, ["--turn-round nan", "whole number of cycles"]),
    ({"turn_round": float("inf")}, ["--turn-round inf", "whole number of cycles"]),
    ({"turn_slot": float("nan")}, ["--turn-slot nan", "out of range"]),
])
def test_bad_options_say_what_to_write(overrides, words):
    with pytest.raises(PlanError) as caught:
        turn_plan_from_options(options(**overrides), now=NOW)
    message = str(caught.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


# -- check_round ----------------------------------------------------------------


def test_check_round_accepts_whole_cycles():
    assert check_round(0.25, 2.0, 2) is None
    assert check_round(0.1, 0.6, 3) is None  # 0.1 * 3 is not exactly 0.3 in floating point
    assert check_round(0.01, 0.02, 2) is None  # the bounds of the slot are allowed
    assert check_round(60, 120, 2) is None


def test_check_round_names_the_options_it_is_given():
    names = ("--ab-slot", "--ab-round")
    with pytest.raises(PlanError, match="--ab-slot 0.001") as caught:
        check_round(0.001, 2.0, 2, names)
    assert "--turn-slot" not in str(caught.value)
    with pytest.raises(PlanError, match="--ab-round 0.6") as caught:
        check_round(0.25, 0.6, 2, names)
    assert "--turn-round" not in str(caught.value) and "e.g. 0.5" in str(caught.value)


# -- check_compatible -----------------------------------------------------------


def good_run(**overrides) -> argparse.Namespace:
    return argparse.Namespace(**{"shape": "steady", "headless": True, **overrides})


def test_check_compatible_accepts_a_closed_loop_steady_headless_local_run():
    assert check_compatible(plan(0), good_run(), 0.0, "local") is None
    assert check_compatible(plan(0), argparse.Namespace(headless=True), 0.0, "local") is None  # no --shape


@pytest.mark.parametrize(("options_", "rate", "role", "words"), [
    (good_run(), 50.0, "local", ["closed loop", "drop --arrival-rate"]),
    (good_run(shape="ramp"), 0.0, "local", ["--shape steady"]),
    (good_run(), 0.0, "master", ["one process", "drop --processes / --master / --worker"]),
    (good_run(), 0.0, "worker", ["one process", "drop --processes / --master / --worker"]),
    (good_run(headless=False), 0.0, "local", ["--turn needs --headless"]),
    (argparse.Namespace(shape="steady"), 0.0, "local", ["--turn needs --headless"]),
    (good_run(bad_share="5%"), 0.0, "local", ["--bad-share", "drop it"]),
    (good_run(slo_abort=True), 0.0, "local", ["--slo-abort", "drop it", "--slo is checked at the end"]),
])
def test_check_compatible_names_what_to_drop(options_, rate, role, words):
    with pytest.raises(PlanError) as caught:
        check_compatible(plan(0), options_, rate, role)
    for word in words:
        assert word in str(caught.value)


# -- Turns: books, joining, own seconds, report -------------------------------


def joined(index: int) -> Turns:
    """A run of ``plan(index)`` whose users were all up before the start."""
    turns = Turns(plan(index))
    turns.join(now=START - 1)
    return turns


def test_sends_before_joining_are_off_turn_and_in_no_round():
    turns = Turns(plan(0))
    turns.record(KEY, 1_000.0, True, None, sent=100.1)  # not joined yet: the gate let it out
    turns.join(now=101.1)
    turns.record(KEY, 1_000.0, True, None, sent=101.05)  # before the first counted slot (101.5)
    assert turns.off_turn == 1 and all(book.requests() == 0 for book in turns.books)


def test_record_puts_a_request_into_the_round_it_was_sent_in():
    turns = joined(0)
    turns.record(KEY, 1_000.0, True, None, sent=100.1)
    turns.record(KEY, 2_000.0, True, None, sent=102.3)
    turns.record(OTHER_KEY, 3_000.0, False, "timeout", sent=102.9)
    turns.record(KEY, 4_000.0, True, None, sent=105.9)
    assert [book.requests() for book in turns.books] == [1, 2, 1]
    assert turns.books[1].errors(OTHER_KEY) == 1
    assert turns.books[1].kinds(OTHER_KEY) == {"timeout": 1}


@pytest.mark.parametrize("sent", [99.9, END, END + 1])
def test_record_ignores_sends_outside_the_window(sent):
    turns = joined(0)
    turns.record(KEY, 1_000.0, True, None, sent=sent)
    assert [book.requests() for book in turns.books] == [0, 0, 0]


def test_join_resets_the_books():
    turns = joined(0)
    turns.record(KEY, 1_000.0, True, None, sent=100.1)
    old = turns.books
    turns.join(now=101.1)
    assert turns.joined == 101.1
    assert len(turns.books) == ROUNDS
    assert all(book.requests() == 0 for book in turns.books)
    assert old[0].requests() == 1  # a new book each, not the old ones emptied under a reader


def test_first_counted_slot():
    turns = Turns(plan(0))
    assert turns.first is None  # not joined
    turns.join(now=101.1)
    assert turns.first == pytest.approx(101.25)
    turns.join(now=END)
    assert turns.first is None  # joined too late


def test_own_seconds_before_joining_is_zero():
    assert Turns(plan(0)).own_seconds(now=200.0) == 0.0


@pytest.mark.parametrize(("index", "now", "expected"), [
    (0, 101.1, 0.0),
    (0, 101.25, 0.0),  # the slot at 101.25 has not begun before 101.25
    (0, 101.3, 0.25),  # slot 5 at 101.25 began after joining at 101.1
    (0, 101.8, 0.5),  # and slot 7 at 101.75 (slot 6 is party 1's)
    (0, 200.0, 0.5 + 1.0 + 1.0),
    (1, 101.3, 0.0),
    (1, 101.6, 0.25),  # slot 6 at 101.5
    (1, 200.0, 0.25 + 1.0 + 1.0),
])
def test_own_seconds_after_joining_late(index, now, expected):
    turns = Turns(plan(index))
    turns.join(now=101.1)
    assert turns.own_seconds(now=now) == pytest.approx(expected)


def test_over():
    turns = Turns(plan(0))
    assert not turns.over(now=105.9)
    assert turns.over(now=END)


def test_report_shape_and_histograms():
    turns = Turns(plan(0))
    turns.join(now=101.1)
    turns.record(KEY, 1_000.0, True, None, sent=101.3)
    turns.record(KEY, 2_000.0, True, None, sent=102.1)
    turns.record(KEY, 3_000.0, True, None, sent=102.8)
    turns.record(OTHER_KEY, 9_000.0, False, "timeout", sent=102.8)
    turns.record(KEY, 4_000.0, True, None, sent=99.0)  # before the window: off turn, in no round
    report = turns.report()  # the window (100..106) is long over by time.time()
    assert set(report) == {"turn", "start", "slot_s", "round_s", "rounds", "late_s", "own_s", "off_turn",
                           "per_round"}
    assert report["turn"] == "0/2"
    assert (report["start"], report["slot_s"], report["round_s"], report["rounds"]) == (START, SLOT, ROUND,
                                                                                         ROUNDS)
    assert report["late_s"] == pytest.approx(1.1)
    assert report["own_s"] == pytest.approx(2.5)
    assert report["off_turn"] == 1
    assert len(report["per_round"]) == ROUNDS
    assert all(set(entry) == {"own_s", "hdr"} for entry in report["per_round"])
    assert [entry["own_s"] for entry in report["per_round"]] == pytest.approx([0.5, 1.0, 1.0])
    books = [LatencyBook.from_wire(entry["hdr"]) for entry in report["per_round"]]
    assert [book.requests() for book in books] == [1, 3, 0]
    assert books[1].successes(KEY) == 2 and books[1].errors(KEY) == 0
    assert books[1].kinds(OTHER_KEY) == {"timeout": 1}
    assert books[0].histogram(KEY).count == 1


def test_report_of_a_run_that_never_joined():
    report = Turns(plan(1)).report()
    assert report["turn"] == "1/2"
    assert report["late_s"] == pytest.approx(ROUNDS * ROUND)
    assert report["own_s"] == 0
    assert [entry["own_s"] for entry in report["per_round"]] == [0, 0, 0]


# -- Turns.record: off_turn ----------------------------------------------------


@pytest.mark.parametrize("sent", [100.0, 100.1, 100.2495, 102.1, 105.7])
def test_a_send_inside_an_own_slot_is_on_turn(sent):
    turns = joined(0)
    turns.record(KEY, 1_000.0, True, None, sent=sent)
    assert turns.off_turn == 0


@pytest.mark.parametrize("sent", [100.2505, 99.9995, 100.4995])
def test_a_send_within_the_slack_of_an_own_slot_is_on_turn(sent):
    assert math.isclose(OFF_TURN_SLACK_S, 0.001)  # the slack these times are chosen for
    turns = joined(0)
    turns.record(KEY, 1_000.0, True, None, sent=sent)
    assert turns.off_turn == 0


@pytest.mark.parametrize("sent", [100.3, 100.252, 100.498, 105.9, 99.5, END + 1])
def test_a_send_outside_an_own_slot_is_off_turn(sent):
    turns = joined(0)
    turns.record(KEY, 1_000.0, True, None, sent=sent)
    turns.record(KEY, 1_000.0, True, None, sent=100.1)  # on turn: not counted
    assert turns.off_turn == 1


def test_join_resets_off_turn():
    turns = Turns(plan(0))
    turns.record(KEY, 1_000.0, True, None, sent=100.3)
    assert turns.off_turn == 1
    turns.join(now=101.1)
    assert turns.off_turn == 0


# -- Turns.wait: StopUser without sleeping ------------------------------------


PRELUDE = """
import time
import gevent
from loadtests._turns import TurnPlan, Turns

def _no_sleep(seconds):
    raise AssertionError(f"Turns.wait slept {seconds} s")

gevent.sleep = _no_sleep
now = time.time()
"""


def wait_in_a_child(body: str) -> str:
    """PRELUDE, ``body`` (which builds ``turns``), ``turns.wait()``, in a child: what wait raised."""
    script = PRELUDE + textwrap.dedent(body) + textwrap.dedent("""
        try:
            turns.wait()
            print("returned")
        except BaseException as exc:
            print(type(exc).__module__ + "." + type(exc).__name__)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


STOP_USER = "locust.exception.StopUser"


def test_importing_turns_does_not_load_locust_or_gevent():
    done = subprocess.run([sys.executable, "-c", "import sys, loadtests._turns; "
                           "print(sorted(m for m in ('locust', 'gevent') if m in sys.modules))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_wait_stops_the_user_after_the_window():
    assert wait_in_a_child("""
        turns = Turns(TurnPlan(0, 2, start=now - 100, slot_s=0.25, round_s=2.0, rounds=3))
        turns.join(now=now - 101)  # in time for the start, long ago
        assert turns.first is not None
    """) == STOP_USER


def test_wait_stops_the_user_that_joined_after_the_window():
    assert wait_in_a_child("""
        turns = Turns(TurnPlan(0, 2, start=now + 60, slot_s=0.25, round_s=2.0, rounds=3))
        turns.join(now=turns.plan.end + 1)
    """) == STOP_USER


def test_wait_stops_a_user_before_the_run_joined():
    assert wait_in_a_child("""
        turns = Turns(TurnPlan(0, 2, start=now + 60, slot_s=0.25, round_s=2.0, rounds=3))
    """) == STOP_USER


# -- the shuffle: what it is for --------------------------------------------------


def test_each_party_goes_first_in_about_half_the_cycles():
    shuffled = TurnPlan(0, 2, start=1_796_000_000.123, slot_s=0.1, round_s=0.2, rounds=2000)
    first = sum(shuffled.owns(2 * c) for c in range(2000))
    assert 900 <= first <= 1100  # a fixed order would give 0 or 2000


@pytest.mark.parametrize("period", [0.25, 1.0, 10.0])
def test_a_periodic_task_falls_into_both_parties_slots_alike(period):
    """Locust's 1 s statistics or a 10 s report of either process: half in each party's turns."""
    shuffled = TurnPlan(0, 2, start=1_796_000_000.123, slot_s=0.1, round_s=0.2, rounds=20_000)
    times = [shuffled.start + 0.037 + period * j for j in range(int(3000 / period))]
    share = sum(shuffled.own_slot_at(t) for t in times) / len(times)
    assert 0.4 <= share <= 0.6, share  # the fixed A B A B order put every one in the same party's slot


# -- slot edges at Unix times ---------------------------------------------------


def test_slot_edges_hold_at_unix_times():
    """start + k * slot is only good to ~2.4e-7 s near 1.8e9: no own slot may be skipped or misread."""
    at_unix = TurnPlan(0, 2, start=1_796_124_692.253417, slot_s=0.1, round_s=2.0, rounds=10)
    for k in range(200):
        edge = at_unix.start + k * at_unix.slot_s
        assert at_unix._slot(edge) == k
        if at_unix.owns(k):
            assert at_unix.next_own_start(edge) == pytest.approx(edge, abs=1e-6)
            assert at_unix.own_slot_at(edge)


def test_a_late_joiner_waits_for_its_first_counted_slot_not_the_one_after():
    at_unix = TurnPlan(0, 2, start=1_796_124_692.253417, slot_s=0.1, round_s=2.0, rounds=10)
    for late in (0.15, 0.95, 1.85, 3.05):
        turns = Turns(at_unix)
        turns.join(now=at_unix.start + late)
        first = turns.first
        assert first is not None and at_unix.own_slot_at(first)
        # what wait() sleeps to, from before the first slot: the first slot itself
        assert at_unix.next_own_start(first) == pytest.approx(first, abs=1e-6)


def test_own_seconds_stop_when_the_run_stopped():
    turns = joined(0)
    report = turns.report(until=102.3)  # stopped (aborted) in round 1: later slots count nothing
    assert [entry["own_s"] for entry in report["per_round"]] == pytest.approx([1.0, 0.25, 0.0])
    assert report["own_s"] == pytest.approx(1.25)
