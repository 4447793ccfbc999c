"""A misspelt experiment name or setting key names the one meant (as an unknown preset does)."""

import pytest

from sparsecoder.cli import main


@pytest.mark.parametrize("argv, hint", [
    (["reproduce", "evtimova_fig6"], "did you mean 'evtimova-fig6'?"),
    (["reproduce", "Evtimova-Fig6"], "did you mean 'evtimova-fig6'?"),
    (["reproduce", "jiang-figure5"], "did you mean 'jiang-fig5'?"),
    (["reproduce", "fig9"], "did you mean 'evtimova-fig9'?"),
    (["reproduce", "evtimova-fig6", "--set", "epoch=2"], "did you mean 'epochs'?"),
    (["reproduce", "pyle-priors", "--set", "seed=[0]"], "did you mean 'seeds'?"),
])
def test_a_misspelt_name_says_which_was_meant(tmp_path, capsys, argv, hint):
    assert main([*argv, "--quick", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert hint in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_a_name_close_to_none_lists_them_without_a_guess(tmp_path, capsys):
    assert main(["reproduce", "table2", "--quick", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "did you mean" not in err and "the experiments are evtimova-fig6, " in err
