"""scripts/: one script per paper table or figure, each stating its wall time and offering --quick."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPTS = sorted(p for p in (Path(__file__).resolve().parent.parent / "scripts").glob("*.sh") if p.name != "common.sh")


def test_there_is_a_script_for_every_paper_table_and_figure():
    names = {p.stem for p in SCRIPTS}
    assert {"table1_main", "table2_overall", "table3_same_kh", "table4_dropout", "table5_layers", "table6_unified",
            "table7_synthetic", "fig4_ratio", "fig4_random", "fig4_small", "fig_curves", "table_mesimp",
            "fig_meact", "table_cnn"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_states_its_wall_time_parses_and_offers_quick(script, tmp_path):
    header = script.read_text().split("source ")[0]
    assert "Expected wall time on a 2-core CPU" in header or "Expected wall time:" in header
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    shown = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert shown.returncode == 0 and "--quick" in shown.stdout
    wrong = subprocess.run(["bash", str(script), "--fast"], capture_output=True, text=True, cwd=tmp_path,
                           env={"MEPROP": "false", "PATH": "/usr/bin:/bin"})
    assert wrong.returncode == 2 and "unknown option --fast" in wrong.stderr
    assert not any(tmp_path.iterdir())  # neither --help nor a wrong option starts a sweep
