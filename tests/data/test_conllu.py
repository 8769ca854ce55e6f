"""CoNLL-U reading: syntactic words only, comments apart, malformed lines named by file and line."""
import pytest

from meprop_cli.data.conllu import read_conllu, write_conllu
from meprop_cli.errors import DataError

SAMPLE = """# sent_id = 1
# text = Don't go.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\tVB\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_
3.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t3:conj\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def test_reader_skips_ranges_and_empty_nodes_and_keeps_comments_apart(tmp_path):
    path = tmp_path / "a.conllu"
    path.write_text(SAMPLE)
    first, second = read_conllu(path)
    assert [t.form for t in first.tokens] == ["Do", "n't", "go", "."]
    assert [t.head for t in first.tokens] == [3, 3, 0, 3] and first.tokens[3].xpos == "."
    assert first.comments == ["# sent_id = 1", "# text = Don't go."]
    assert len(second) == 1 and second.tokens[0].upos == "INTJ"  # no blank line at the end is fine


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.conllu"
    path.write_text("1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n2\toops\n")
    with pytest.raises(DataError, match=r"bad.conllu:2: expected 10 tab-separated"):
        read_conllu(path)


def test_write_then_read_round_trips(tmp_path):
    path = tmp_path / "a.conllu"
    path.write_text(SAMPLE)
    sentences = read_conllu(path)
    sentences[0].tokens[0] = sentences[0].tokens[0].with_(xpos="MD")
    write_conllu(tmp_path / "b.conllu", sentences)
    again = read_conllu(tmp_path / "b.conllu")
    assert again[0].tokens[0].xpos == "MD" and again[0].comments == sentences[0].comments
    assert [len(s) for s in again] == [4, 1]
