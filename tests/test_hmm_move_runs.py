"""The calibration's run mover (synthkit.models.hmm.margins._move_runs), vectorised in
session 8: it must make the same moves as the per-run loop it replaced, hit the target
counts exactly, and keep runs whole where it can."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from synthkit.models.hmm.margins import _move_runs, _targets, rebalance


def _vectorised_runs(codes, starts):
    """The runs as the loop of 55e2df6 found them (and _move_runs still does): (first row,
    length, code before the run or -1 at an entity's start, code after it or -1 at its end)."""
    m = len(codes)
    brk = starts.copy()
    brk[0] = True
    brk[1:] |= codes[1:] != codes[:-1]
    run_start = np.flatnonzero(brk)
    run_len = np.diff(np.append(run_start, m))
    run_end = run_start + run_len
    left = np.where(starts[run_start], -1, codes[np.maximum(run_start - 1, 0)])
    ends_entity = np.append(starts[1:], True)[run_end - 1]
    right = np.where(ends_entity, -1, codes[np.minimum(run_end, m - 1)])
    return run_start, run_len, left, right


def _groupby_runs(codes, starts):
    """The same runs found independently, row by row: itertools.groupby over (entity, code)."""
    entity = np.cumsum(starts | (np.arange(len(codes)) == 0))
    out = []
    for _, group in itertools.groupby(range(len(codes)), key=lambda i: (entity[i], codes[i])):
        rows = list(group)
        first, last = rows[0], rows[-1]
        before = -1 if first == 0 or entity[first - 1] != entity[first] else int(codes[first - 1])
        after = -1 if last == len(codes) - 1 or entity[last + 1] != entity[last] else int(codes[last + 1])
        out.append((first, len(rows), before, after))
    return tuple(np.array(col, dtype=np.int64) for col in zip(*out))


def _loop(codes, surplus, deficit, starts, rng, *, skip_partial=True, runs=_vectorised_runs):
    """The loop before vectorisation (session 7, 55e2df6), kept as the reference.
    `skip_partial=False` is it exactly: a run whose tail already moved to one code could
    then be moved whole to another, overwriting that tail. `runs=_groupby_runs` finds the
    runs independently of the code under test (the benchmark times the loop as it was)."""
    run_start, run_len, left, right = runs(codes, starts)
    run_code = codes[run_start]
    run_end = run_start + run_len
    used = np.zeros(len(run_start), dtype=bool)
    left_rows = run_len.copy()
    out = codes.copy()
    surplus = surplus.copy()
    tie = rng.random(len(run_start))
    for c in rng.permutation(np.flatnonzero(deficit > 0)):
        need = int(deficit[c])
        flank_c = (left == c).astype(np.int64) + (right == c)
        order = np.lexsort((tie, flank_c))
        for r in order:
            if need == 0:
                break
            a = run_code[r]
            if used[r] or surplus[a] <= 0 or run_len[r] > min(need, surplus[a]):
                continue
            if skip_partial and left_rows[r] < run_len[r]:
                continue
            out[run_start[r]:run_end[r]] = c
            used[r] = True
            surplus[a] -= run_len[r]
            need -= int(run_len[r])
        for r in order:
            if need == 0:
                break
            a = run_code[r]
            if used[r] or surplus[a] <= 0:
                continue
            take = int(min(need, surplus[a], left_rows[r]))
            stop = run_start[r] + left_rows[r]
            out[stop - take:stop] = c
            left_rows[r] -= take
            used[r] = left_rows[r] == 0
            surplus[a] -= take
            need -= take
    return out


def _panel(seed: int, *, n_entities: int = 300, n_codes: int = 4, stay: float = 0.8):
    """Codes of entities of 1..8 events, each code persisting with probability `stay`, and
    a target margin far from the sampled one (so many runs must move)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, size=n_entities)
    starts = np.zeros(int(lengths.sum()), dtype=bool)
    starts[np.concatenate([[0], np.cumsum(lengths)[:-1]])] = True
    codes = np.empty(len(starts), dtype=np.int64)
    for i in range(len(codes)):
        keep = not starts[i] and rng.random() < stay
        codes[i] = codes[i - 1] if keep else rng.choice(n_codes, p=np.arange(1, n_codes + 1) / (n_codes * (n_codes + 1) / 2))
    target = _targets(rng.dirichlet(np.ones(n_codes)), len(codes))
    have = np.bincount(codes, minlength=n_codes)
    return codes, np.clip(have - target, 0, None), np.clip(target - have, 0, None), starts, target


@pytest.mark.parametrize("seed", range(40))
def test_vectorised_moves_equal_the_loop(seed):
    """The same input and stream give the very rows the loop moved (40 random panels, 2-6
    codes, codes persisting with probability 0.5 to 1). Negative control, run once: the
    vectorised pass with its prefix cut at the first refusal but no further pass (a
    refused run ends the whole-run stage) differed from the loop on 34 of these 40."""
    codes, surplus, deficit, starts, _ = _panel(seed, n_codes=2 + seed % 5, stay=min(0.5 + 0.0125 * seed, 1.0),
                                                n_entities=50 + 10 * seed)
    got = _move_runs(codes, surplus, deficit, starts, np.random.default_rng(seed))
    want = _loop(codes, surplus, deficit, starts, np.random.default_rng(seed), runs=_groupby_runs)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", [0, 13, 39])
def test_runs_are_found_as_groupby_finds_them(seed):
    """The runs the mover and the benchmark's loop find (vectorised) are those of
    itertools.groupby over (entity, code), flanks included, on panels and on a hand-made
    case where one code continues across an entity boundary (two runs, not one). Negative
    control, run once: without `starts` in the breaks (a run crossing an entity boundary),
    planted in both margins.py and _vectorised_runs, this test and
    test_vectorised_moves_equal_the_loop failed (the latter on 40 of 40 panels); the
    equality test alone, with the loop's own run detection, passed all 40."""
    codes, _, _, starts, _ = _panel(seed, n_codes=2 + seed % 5, stay=0.9, n_entities=60)
    hand = (np.array([1, 1, 1, 0, 0, 2]), np.array([True, False, True, False, True, True]))
    for c, s in ((codes, starts), hand):
        for a, b in zip(_vectorised_runs(c, s), _groupby_runs(c, s)):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(_groupby_runs(*hand)[0], [0, 2, 3, 4, 5])


def test_counts_are_exact_where_the_old_loop_fell_short():
    """Every code ends on its target count, on 100 small panels of persistent codes (runs
    as long as the entities). The old loop (no skip of a run whose tail had moved) is the
    negative control: it overwrote a moved tail and left a code short of its target on 37
    of them."""
    short = []
    for seed in range(100):
        codes, surplus, deficit, starts, target = _panel(seed, n_entities=20, n_codes=3, stay=1.0)
        got = _move_runs(codes, surplus, deficit, starts, np.random.default_rng(seed))
        np.testing.assert_array_equal(np.bincount(got, minlength=len(target)), target)
        old = _loop(codes, surplus, deficit, starts, np.random.default_rng(seed), skip_partial=False)
        if not np.array_equal(np.bincount(old, minlength=len(target)), target):
            short.append(seed)
    assert short, "the control: the old loop should miss the target on some panel"


def test_rebalance_within_sequences_moves_whole_runs_first():
    """Bracket: with the within-sequence mover, moved rows form far fewer new transitions
    than with the uniform row mover (no `starts`) on the same panel and target."""
    codes, _, _, starts, target = _panel(7, n_entities=2000, n_codes=3, stay=0.9)
    p = target / target.sum()

    def transitions(x):
        return int(np.sum((x[1:] != x[:-1]) & ~starts[1:]))

    runs = rebalance(codes, p, np.random.default_rng(0), starts=starts)
    rows = rebalance(codes, p, np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(runs, minlength=3), np.bincount(rows, minlength=3))
    base = transitions(codes)
    assert transitions(runs) - base < 0.2 * (transitions(rows) - base)
