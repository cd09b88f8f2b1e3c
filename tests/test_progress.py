"""Progress bars: moved from inside the compiled loop, labelled, off unless visible."""

import io

import jax
import numpy as np
import pytest
from conftest import make_linear_gaussian, simulate_linear_gaussian

import rdppl
from rdppl.sampler import runner, segments

pytestmark = pytest.mark.filterwarnings("ignore::rdppl.RDWarning")


class RecordingBar:
    """Stands in for tqdm: records the position after every update."""

    bars: list = []

    def __init__(self, total, initial=0, desc="", disable=False, **_):
        self.total, self.n, self.desc, self.disable = total, initial, desc, disable
        self.positions, self.postfixes = [], []
        RecordingBar.bars.append(self)

    def update(self, count):
        self.n += count
        self.positions.append(self.n)

    def set_postfix_str(self, text):
        self.postfixes.append(text)

    def close(self):
        pass


@pytest.fixture
def recorded(monkeypatch):
    RecordingBar.bars = []
    monkeypatch.setattr(runner, "tqdm", RecordingBar)
    monkeypatch.setattr(segments, "interactive", lambda: True)
    return RecordingBar.bars


def run(progress=True, chunk_size=64):
    model, W, b = make_linear_gaussian(2, 3, 0.5, seed=1)
    data = simulate_linear_gaussian(W, b, 0.5, 2)
    return rdppl.rd_curve(
        model,
        data,
        rng_key=jax.random.key(0),
        schedule=rdppl.linear_schedule(64, beta_max=2.0),
        num_chains=4,
        kernel=rdppl.HMC(num_leapfrog=2),
        chunk_size=chunk_size,
        progress=progress,
    )


def test_the_bar_moves_during_a_compiled_segment_and_names_the_phase(recorded):
    result = run()
    preliminary, reported = recorded
    assert "preliminary run" in preliminary.desc and "reported run" in reported.desc
    for bar in recorded:
        assert not bar.disable and bar.total == 64 and bar.n == 64
        # one segment of 64 temperatures, reported every PROGRESS_STRIDE of them
        stride = segments.PROGRESS_STRIDE
        assert bar.positions[: 64 // stride] == list(range(stride, 65, stride))
        assert bar.postfixes[0] == "compiling"
    # the callback does not change the run (beyond float32 rounding: the program
    # with the callback may fuse the model's evaluation differently, seen on jax 0.12)
    np.testing.assert_allclose(
        result["rate_distortion"]["log_z"].values,
        run(progress=False)["rate_distortion"]["log_z"].values,
        rtol=1e-5,
        atol=1e-5,
    )


def test_no_bar_without_progress_or_without_a_terminal(recorded, monkeypatch):
    run(progress=False)
    assert all(bar.disable for bar in recorded)
    recorded.clear()
    monkeypatch.setattr(segments, "interactive", lambda: False)
    run(progress=True)
    assert all(bar.disable for bar in recorded)


def test_interactive_means_a_terminal_or_a_notebook(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    monkeypatch.delitem(__import__("sys").modules, "ipykernel", raising=False)
    assert not segments.interactive()

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", Terminal())
    assert segments.interactive()
