"""Fixtures shared by every test folder."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Tiny problems: one torch thread avoids oversubscribing a shared CPU (10x slower with two here);
    the previous thread count is restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def kept_figures(monkeypatch):
    """The matplotlib figures the code under test saves (viz's, the sweep's and the experiments' pictures),
    in order, to read their axes."""
    from matplotlib.figure import Figure

    figures, savefig = [], Figure.savefig

    def keep(fig, *args, **kwargs):
        figures.append(fig)
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures
