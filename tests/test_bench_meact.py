"""scripts/bench_meact.py runs and prints its table (small shapes by --quick; no timing checked)."""
from conftest import load_script


def test_each_setting_and_fraction_gets_a_row_with_the_fraction_it_asked_for(capsys):
    load_script("bench_meact").main(["--quick", "--reps", "1", "--calls", "2", "--fractions", "1", "0.25"])
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()
            if line.startswith("| small")]
    assert [(r[0], float(r[1])) for r in rows] == [("small, batch 10", 1.0), ("small, batch 10", 0.25),
                                                   ("small, batch 100", 1.0), ("small, batch 100", 0.25)]
    assert all(float(r[3]) > 0 and r[4].endswith("x)") for r in rows)
