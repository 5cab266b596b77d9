"""Deviation files: bad files are refused in one line naming file and line; identities are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.deviations import DeviationsError, in_force, load, write

GOOD = '''[server]
name = "someserver"
version = "2.0"

[[deviation]]
rule = "infer_echoes_id"
transport = "grpc"
models = ["m1"]
trigger = { id = "[^ -~]" }
observed = ["INTERNAL"]
spec = "the id is echoed"
server_does = "INTERNAL for non-ASCII ids"
reproduce = "grpcurl $GRPC"
'''


def _file(tmp_path: Path, text: str, name: str = "baseline.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_good_file_loads_with_entry_lines(tmp_path: Path) -> None:
    baseline = load(_file(tmp_path, GOOD))
    (entry,) = baseline.entries
    assert (baseline.name, baseline.version, entry.line) == ("someserver", "2.0", 5)
    assert entry.trigger == {"id": "[^ -~]"} and entry.models == frozenset({"m1"})
    assert entry.triggered_by({"id": "é"}) and not entry.triggered_by({"id": "plain"})
    assert not entry.triggered_by({})  # an example without the feature is not covered


@pytest.mark.parametrize(("change", "message"), [
    (("rule = \"infer_echoes_id\"", "rule = \"no_such_rule\""), ":5: unknown rule 'no_such_rule'"),
    (("transport = \"grpc\"", "transport = \"soap\""), ":5: transport 'soap'"),
    (("observed = [\"INTERNAL\"]", "observed = []"), ":5: the entry lacks ['observed']"),
    (("spec = ", "colour = \"red\"\nspec = "), ":5: unknown keys ['colour']"),
    (("[^ -~]", "[unclosed"), ":5: trigger id = '[unclosed' is not a regular expression"),
    (("models = [\"m1\"]", "models = \"m1\""), ":5: models must be a list of strings"),
    (("[server]", "[serveur]"), ":1: needs a [server] table"),
    (("version = \"2.0\"", "version = 2.0"), ":1: needs a [server] table"),
    (("[[deviation]]", "[[deviation]"), "not valid TOML"),
    (("trigger = { id", "trigger = { modle"), ":5: trigger names unknown features ['modle']"),
    (("models = [\"m1\"]", "where = { paht = \"x\" }"), ":5: where names unknown test parameters ['paht']"),
])
def test_a_bad_file_is_refused_in_one_line_naming_file_and_line(tmp_path: Path, change, message) -> None:
    path = _file(tmp_path, GOOD.replace(*change))
    with pytest.raises(DeviationsError) as failure:
        load(path)
    text = str(failure.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text, text


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DeviationsError, match="cannot read"):
        load(tmp_path / "none.toml")


def test_a_baseline_of_another_server_identity_is_refused_naming_both(tmp_path: Path) -> None:
    path = _file(tmp_path, GOOD)
    assert len(in_force("SomeServer", "2.0", [path], builtin=False).entries) == 1
    with pytest.raises(DeviationsError) as failure:
        in_force("someserver", "2.1", [path])
    assert "someserver 2.0" in str(failure.value) and "someserver 2.1" in str(failure.value)


def test_user_files_add_to_the_builtin_one(tmp_path: Path) -> None:
    user = _file(tmp_path, GOOD.replace("someserver", "mlserver").replace("2.0", "1.7.1"))
    builtin = in_force("mlserver", "1.7.1")
    both = in_force("mlserver", "1.7.1", [user])
    assert len(both.entries) == len(builtin.entries) + 1
    assert len(in_force("mlserver", "1.7.1", [user], builtin=False).entries) == 1


def test_written_files_load_back_and_never_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "recorded.toml"
    entry = {"rule": "infer_echoes_id", "transport": "rest", "trigger": {"id": "^(?:é)$"},
             "observed": ["500 text"], "spec": "s", "server_does": "d", "reproduce": "curl $URL"}
    write(path, "someserver", "2.0", [entry], header="recorded\nreview it")
    assert path.read_text().startswith("# recorded\n# review it\n")
    (loaded,) = load(path).entries
    assert loaded.trigger == {"id": "^(?:é)$"} and loaded.observed == frozenset({"500 text"})
    with pytest.raises(FileExistsError):
        write(path, "someserver", "2.0", [entry])


def test_unused_entries_are_those_scoped_to_models_not_in_the_run(tmp_path: Path) -> None:
    class Model:
        name, implementation = "m2", "r"

    baseline = in_force("someserver", "2.0", [_file(tmp_path, GOOD)], builtin=False)
    assert baseline.unused([Model()]) == list(baseline.entries)
    Model.name = "m1"
    assert baseline.unused([Model()]) == []
