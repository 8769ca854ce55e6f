"""scripts/bench_conv.py runs for every gradient kind and prints both layers and their parts (no timing checked)."""
import re
import sys

import pytest

from conftest import load_script


@pytest.fixture
def bench():
    return load_script("bench_conv")


@pytest.mark.parametrize("extra, nonzero", [([], None), (["--nonzero", "0.064", "0.016"], (0.064, 0.016)),
                                            (["--dense-gradient"], (1.0, 1.0))])
def test_both_layers_are_timed_with_their_parts(bench, capsys, monkeypatch, extra, nonzero):
    monkeypatch.setattr(sys, "argv", ["bench_conv.py", "--repeat", "1", "--ratio", "0.05", "--parts", *extra])
    bench.main()
    out = capsys.readouterr().out
    layers = re.findall(r"^(conv\d): grad nonzero ([\d.]+), dense [\d.]+ ms \| 5%: [\d.]+ ms", out, re.M)
    assert [name for name, _ in layers] == ["conv1", "conv2"]
    for (_, measured), wanted in zip(layers, nonzero or (0.25, 0.25)):
        if nonzero:
            assert float(measured) == pytest.approx(wanted, abs=0.01)
        else:  # ReLU + 2×2 max-pool: at most one entry of four
            assert 0.1 < float(measured) <= wanted
    assert len(re.findall(r"select [\d.]+, sparse dW [\d.]+, sparse dx [\d.]+, dense dW", out)) == 2
