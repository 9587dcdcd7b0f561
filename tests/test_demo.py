"""The README's first command: ``python -m minirnn.demo`` (here in its short --fast form)."""
import pathlib

from minirnn import demo


def test_demo_trains_prints_accuracy_and_saves_a_figure(tmp_path, capsys):
    accuracy = demo.main(["--fast", "--out", str(tmp_path), "--seed", "0"])
    out = capsys.readouterr().out
    assert accuracy >= 0.8
    assert "accuracy on 512 fresh trials" in out
    assert (tmp_path / "demo_trial.png").stat().st_size > 10_000
    assert pathlib.Path(tmp_path / "demo_weights.npz").exists()
