"""The events engine selected from a run configuration: trains, records per-unit event
counts in the results file, and refuses what it cannot do with one line naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from pcsim import config, results
from pcsim.run import execute

EVENTS = """
[engine]
kind = "events"
[learning]
optimizer = "sgd"
tau_w = 50.0
epochs = 1
[data]
limit_train = 120
[network]
sizes = [64, 32, 10]  # two weight layers, in float32: the events core's signature the
                      # checkpoint tests compile too (each signature is ~9 s of compile)
[baseline]
bp = false
[chip]
preset = "ideal"
"""


def test_events_run_records_unit_events_and_learns(tmp_path):
    r = execute(config.loads(EVENTS), progress=False)
    assert r.summary["engine"] == "events"
    counts = [v for k, v in r.extra.items() if k.startswith(("value_events", "error_events"))]
    assert sum(int(v.sum()) for v in counts) == r.summary["unit_events"] > 0
    # clamped input units never fire; free hidden units all do
    assert r.extra["value_events_0"].sum() == 0 and r.extra["value_events_1"].min() > 0
    assert r.summary["test_accuracy"] > 0.3  # one short epoch, far above chance (0.1)
    path = tmp_path / "ev.h5"
    results.save(path, r)
    back = results.load(path)
    np.testing.assert_array_equal(back.extra["value_events_2"], r.extra["value_events_2"])


@pytest.mark.parametrize(
    "extra,field",
    [('[algorithm]\nname = "pc"\n', "algorithm.name"), ("", "learning.optimizer")],
)
def test_events_refuses_what_it_cannot_run(extra, field):
    # Adam (with its default per-step lr): a rule the events engine cannot run
    adam = EVENTS.replace('optimizer = "sgd"\ntau_w = 50.0\n', 'optimizer = "adam"\n')
    text = adam if field == "learning.optimizer" else EVENTS
    with pytest.raises(config.ConfigError, match=field):
        config.loads(text + extra)
