import tomllib
from pathlib import Path

import pytest

from arcforge import formats
from arcforge.errors import ManifestError
from arcforge.sources.manifest import MANIFEST_DIR, glob_match, load_manifest, load_manifests, parse_manifest

MIRRORED = {
    "arc_agi_1",
    "arc_agi_2",
    "concept_arc",
    "arc_1d",
    "mini_arc",
    "neoneye_diva",
    "neoneye_tama",
    "synthetic_extend",
    "iparc",
    "arc_community",
    "neoneye_bad",
}
UNMIRRORED = {"sequence_arc", "barc", "re_arc"}
HUB = {
    "barc_100k_gpt4",
    "barc_100k_gpt4omini",
    "simon_arc_solve_color",
    "simon_arc_solve_translate",
    "simon_arc_solve_template",
    "simon_arc_combine",
    "arc_agi_1_parquet",
    "barc_200k_heavy",
    "arc_agi_2_parquet",
}
BY_REVISION = {"barc_200k_heavy", "arc_agi_2_parquet"}  # pinned by branch: the commit is locked on fetch
COLLECTION = {
    "neoneye_pqa",
    "neoneye_synth_riddles",
    "neoneye_sort_of_arc",
    "neoneye_nosound",
    "neoneye_dbigham",
}


def test_bundled_manifests_cover_every_shared_source(sources_json):
    ms = load_manifests()
    assert set(ms) == MIRRORED | UNMIRRORED | HUB | COLLECTION
    by_repo = {(m.repo, m.commit): m for m in ms.values() if m.name not in COLLECTION}
    for s in sources_json:
        m = by_repo[(f"{s['owner']}/{s['repo']}", s["commit"])]
        assert m.license == s["license"]
    assert {m.name for m in ms.values() if m.kind == "hub"} == HUB
    assert {n for n, m in ms.items() if m.revision} == BY_REVISION
    assert all(ms[n].revision == "main" and ms[n].commit == "" for n in BY_REVISION)
    # the collection's sources share neoneye_bad's repo@commit, each in its own cache folder
    assert {(ms[n].repo, ms[n].commit) for n in COLLECTION} == {
        (ms["neoneye_bad"].repo, ms["neoneye_bad"].commit)
    }
    assert {ms[n].cache_key for n in COLLECTION} == COLLECTION and ms["neoneye_bad"].cache_key == ""
    assert {m.name for m in ms.values() if m.is_eval} == {"arc_agi_1", "arc_agi_2"}
    assert ms["arc_agi_1"].eval_splits == ("evaluation",)
    assert ms["barc"].license == "unknown" and ms["barc"].format == "barc_list"


def _base(**over):
    d = tomllib.loads((MANIFEST_DIR / "arc_agi_1.toml").read_text())
    d.update(over)
    return d


@pytest.mark.parametrize(
    "over,needle",
    [
        ({"commit": "abc123"}, "field 'commit'"),
        ({"commit": "A" * 40}, "field 'commit'"),
        ({"license": ""}, "field 'license'"),
        (
            {"format": "nope"},
            "unknown format 'nope'; known formats: arc_parquet, barc_jsonl, barc_list, barc_problem, "
            "iparc, mini_arc, re_arc, simon_arc, standard",
        ),
        ({"name": "ARC-1"}, "field 'name'"),
        ({"role": "test"}, "field 'role'"),
        ({"repo": "noslash"}, "field 'repo'"),
        ({"tasks": []}, "field 'tasks'"),
        ({"tasks": [{"split": "bad-split", "include": ["*.json"]}]}, "split 'bad-split'"),
        ({"eval_splits": ["nope"]}, "eval split 'nope'"),
    ],
)
def test_invalid_manifest_errors_name_file_and_field(over, needle):
    with pytest.raises(ManifestError) as e:
        parse_manifest(_base(**over), Path("manifests/x.toml"), formats.names())
    assert "manifests/x.toml" in str(e.value)
    assert needle in str(e.value)


def _hub(**over):
    d = tomllib.loads((MANIFEST_DIR / "barc_200k_heavy.toml").read_text())
    d.update(over)
    return {k: v for k, v in d.items() if v is not None}


@pytest.mark.parametrize(
    "data,needle",
    [
        (
            _hub(commit="a" * 40),
            "x.toml: give either 'commit' (a full 40-hex id) or 'revision' (a branch or tag, locked on first "
            "fetch), not both",
        ),
        (
            _hub(revision=None),
            "x.toml: missing 'commit' (a full 40-hex id) or 'revision' (a branch or tag, locked on first "
            "fetch)",
        ),
        (_hub(revision="a" * 40), "must be a branch or tag name (a full commit id goes in 'commit')"),
        (_hub(revision="../main"), "field 'revision' = '../main' must be a branch or tag name"),
        (_hub(revision=3), "field 'revision' must be str"),
        (
            _base(revision="main"),
            "x.toml: field 'revision' is only for hub sources; a repo source names its 'commit'",
        ),
    ],
)
def test_a_hub_source_names_a_commit_or_a_revision_not_both(data, needle):
    with pytest.raises(ManifestError) as e:
        parse_manifest(data, Path("manifests/x.toml"), formats.names())
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_hub_source_pinned_by_revision_has_no_commit_until_locked():
    m = parse_manifest(_hub(), Path("manifests/x.toml"), formats.names())
    assert (m.revision, m.commit, m.short_commit) == ("main", "", "")
    pinned = parse_manifest(_hub(revision=None, commit="b" * 40), Path("manifests/x.toml"), formats.names())
    assert (pinned.revision, pinned.commit, pinned.short_commit) == ("", "b" * 40, "bbbbbbb")


def test_missing_license_field(tmp_path):
    d = _base()
    del d["license"]
    with pytest.raises(ManifestError, match="missing required field 'license'"):
        parse_manifest(d, tmp_path / "m.toml", formats.names())


def test_load_manifest_reports_bad_toml(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("name = ")
    with pytest.raises(ManifestError, match=r"bad\.toml: not valid TOML"):
        load_manifest(p)


@pytest.mark.parametrize(
    "path,pattern,ok",
    [
        ("data/training/a.json", "data/training/*.json", True),
        ("data/training/x/a.json", "data/training/*.json", False),
        ("corpus/AboveBelow/A1.json", "corpus/*/*.json", True),
        ("re_arc/tasks/a.json", "**/tasks/*.json", True),
        ("tasks/a.json", "**/tasks/*.json", True),
        ("Dataset/CatA/Task001_soln.json", "Dataset/*/Task*.json", True),
        ("a.json", "[ab].json", True),
        ("c.json", "[!ab].json", True),
    ],
)
def test_glob(path, pattern, ok):
    assert glob_match(path, pattern) is ok


def test_kind_defaults_to_repo_and_unknown_kind_names_known_ones():
    m = parse_manifest(_base(), Path("manifests/x.toml"), formats.names())
    assert m.kind == "repo" and m.settings == {}
    with pytest.raises(
        ManifestError, match=r"x\.toml: unknown source kind 'nope'; known kinds: generator, hub, repo"
    ):
        parse_manifest(_base(kind="nope"), Path("manifests/x.toml"), formats.names())
    with pytest.raises(ManifestError, match=r"\[generator\] must be a table"):
        parse_manifest(_base(kind="generator", generator=3), Path("manifests/x.toml"), formats.names())


def test_hub_kind_settings_are_checked():
    m = parse_manifest(_base(kind="hub"), Path("manifests/x.toml"), formats.names())
    assert m.kind == "hub" and m.settings == {"repo_type": "dataset"}
    with pytest.raises(ManifestError, match=r"x\.toml: \[hub\] 'repo_type' = 'model' must be one of dataset"):
        parse_manifest(
            _base(kind="hub", hub={"repo_type": "model"}), Path("manifests/x.toml"), formats.names()
        )
    with pytest.raises(ManifestError, match=r"\[hub\] has unknown field\(s\) revision"):
        parse_manifest(_base(kind="hub", hub={"revision": "main"}), Path("manifests/x.toml"), formats.names())
    with pytest.raises(ManifestError, match=r"field 'cache_key' = 'No-Good' must be"):
        parse_manifest(_base(cache_key="No-Good"), Path("manifests/x.toml"), formats.names())


def _gen(**gen):
    settings = {"driver": "re_arc", "code": ["README.md"], **gen}
    return _base(kind="generator", generator=settings)


def test_generator_kind_checks_its_table():
    m = parse_manifest(_gen(k=4), Path("manifests/x.toml"), formats.names())
    assert m.kind == "generator"
    assert m.settings["k"] == 4 and m.settings["split"] == "generated" and m.settings["code"] == ["README.md"]
    for bad, needle in [
        ({"driver": "nope"}, "'driver'"),
        ({"k": 0}, "'k' must be a positive int"),
        ({"code": []}, "'code' must name"),
        ({"code": ["gen.py"]}, "code file 'gen.py' is not"),
        ({"what": 1}, "unknown field"),
        ({"call_s": "x"}, "'call_s'"),
    ]:
        with pytest.raises(ManifestError, match=needle):
            parse_manifest(_gen(**bad), Path("manifests/x.toml"), formats.names())


@pytest.mark.parametrize(
    "over,needle",
    [
        ({"repo": "../.."}, "field 'repo'"),
        ({"repo": "owner/.."}, "field 'repo'"),
        ({"repo": "./x"}, "field 'repo'"),
        ({"files": ["../../etc/*"]}, "field 'files'"),
        ({"files": ["/etc/passwd"]}, "field 'files'"),
        ({"files": ["data\\..\\x"]}, "field 'files'"),
        ({"id_root": "../up"}, "field 'id_root'"),
        ({"tasks": [{"split": "training", "include": ["data/../../*.json"]}]}, "field 'include'"),
        ({"tasks": [{"split": "training", "include": ["a.zip!../x.json"]}]}, "field 'include'"),
        (
            {"tasks": [{"split": "training", "include": ["*.json"], "exclude": ["x/\x1b[2J"]}]},
            "field 'exclude'",
        ),
    ],
)
def test_a_manifest_cannot_reach_outside_its_source(over, needle):
    with pytest.raises(ManifestError) as e:
        parse_manifest(_base(**over), Path("manifests/x.toml"), formats.names())
    assert needle in str(e.value) and "\x1b" not in str(e.value)


def test_fetch_with_a_hostile_manifest_folder_writes_and_reads_nothing_outside(tmp_path, arcforge_home):
    from typer.testing import CliRunner

    from arcforge.cli.app import app

    mdir = tmp_path / "manifests"
    mdir.mkdir()
    text = (
        (MANIFEST_DIR / "arc_community.toml")
        .read_text()
        .replace('repo = "arc-community/arc"', 'repo = "../.."')
    )
    (mdir / "evil.toml").write_text(text)
    mirror = tmp_path / "deep" / "mirror"
    mirror.mkdir(parents=True)
    (tmp_path / "levels" / "npeter").mkdir(parents=True)
    (tmp_path / "levels" / "npeter" / "a.json").write_text("{}")  # what "../.." would reach from the mirror
    before = sorted(p for p in tmp_path.rglob("*"))
    r = CliRunner().invoke(app, ["fetch", "arc_community", "--manifests", str(mdir), "--mirror", str(mirror)])
    assert r.exit_code == 1 and "field 'repo' = '../..'" in r.output and "evil.toml" in r.output, r.output
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_a_binary_manifest_is_one_clear_line(tmp_path):
    from typer.testing import CliRunner

    from arcforge.cli.app import app

    (tmp_path / "bin.toml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 10)
    r = CliRunner().invoke(app, ["sources", "--manifests", str(tmp_path)])
    assert r.exit_code == 1 and "bin.toml: not a text (UTF-8) file" in r.output, r.output
    assert "internal error" not in r.output and "Traceback" not in r.output
