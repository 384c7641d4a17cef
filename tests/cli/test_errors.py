"""Every subcommand fails with one line on stderr and a non-zero exit on bad paths, bad shape
strings and unknown options; ``--verbose`` shows the traceback."""

from __future__ import annotations

import pytest

from tests.cli.conftest import assert_one_line_error

CASES = [
    # (argv, exit code, words the message must contain); {cnn} / {tmp} are filled in
    (["build", "{tmp}/missing.json", "--save-plan", "{tmp}/x.plan"], 1, ["no such file"]),
    (["build", "{cnn}", "--shapes", "image:1x3x16"], 1, ["rank 3", "[N, 3, 16, 16]"]),
    (["build", "{cnn}", "--workspace", "lots"], 2, ["--workspace", "expected a number"]),
    (["build", "{cnn}", "--save-plan", "{tmp}/no/such/dir/x.plan"], 1, ["does not exist"]),
    (["run", "{tmp}/missing.plan"], 1, ["no such file"]),
    (["run", "{cnn}", "--shapes", "image1x3x16x16"], 1, ["--shapes", "no ':'"]),
    (["run", "{cnn}", "--inputs", "{tmp}/missing.npz"], 1, ["--inputs", "no such file"]),
    (["bench", "{cnn}", "--shapes", "other:1x3x16x16"], 1, ["'other'", "not an input"]),
    (["bench", "{cnn}", "--frobnicate"], 2, ["unrecognized arguments: --frobnicate"]),
    (["inspect", "{notes}"], 1, ["not a model"]),
    (["inspect", "{cnn}", "--graph", "{tmp}/g.pdf"], 1, ["unknown format .pdf"]),
    (["compare", "{tmp}/missing.json"], 1, ["no such file"]),
    (["compare", "{cnn}", "--backends", "native"], 1, ["at least two"]),
    (["compare", "{cnn}", "--atol", "-1"], 2, ["--atol"]),
    (["run", "{cnn}", "--device", "tpu"], 1, ["--device", "cpu or cuda"]),
]


@pytest.mark.parametrize(
    "argv,code,words", CASES, ids=[" ".join(c[0][:2]) + f"-{i}" for i, c in enumerate(CASES)]
)
def test_one_line_errors(cli, models, tmp_path, argv, code, words) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model\n")
    args = [a.format(cnn=models["cnn"], tmp=tmp_path, notes=notes) for a in argv]
    assert_one_line_error(cli(*args), *words, code=code)


def test_verbose_shows_traceback(cli, tmp_path) -> None:
    r = cli("run", tmp_path / "missing.json", "--verbose")
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "no such file" in r.stderr


def test_unsupported_timing_free_options_are_refused_not_ignored(cli, models, tmp_path) -> None:
    r = cli("build", models["cnn"], "--calib-data", tmp_path)
    assert_one_line_error(r, "--calib-data", "int8")
    r = cli("build", models["cnn"], "--min-shapes", "image:1x3x16x16")
    assert_one_line_error(r, "--opt-shapes", "--max-shapes")
