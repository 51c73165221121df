"""The CLI takes its defaults from the config dataclasses (``arcforge.train.config``, the demo's
``DemoConfig``): no option of train, eval or demo has a default of its own, each shows the default of the
field it sets, and a command given no options runs with exactly the config defaults. Also the CLI's one
vocabulary: one ``--json`` (parameter ``json_``), an ``Example:`` in every command's own help, no
``<bool>`` column anywhere. Nothing is trained here (fast)."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest
import typer
from typer.testing import CliRunner

from arcforge.cli.app import COMMANDS, app
from arcforge.cli.demo import demo_config
from arcforge.cli.options import DEMO_SECTIONS, EVAL_SECTIONS, TRAIN_SECTIONS, fields_of, given
from arcforge.cli.train import _eval_config, train_config
from arcforge.demo.run import DemoConfig
from arcforge.train import config as C

COMMAND = typer.main.get_command(app)
# options that are actions or outputs of one invocation, not settings of a run
NOT_SETTINGS = {
    "--config",
    "--resume",
    "--overwrite",
    "--json",
    "--checkpoint",
    "--submission",
    "--help",
    "--out",
    "--mirror",
}
SECTIONS = {"train": TRAIN_SECTIONS, "eval": EVAL_SECTIONS, "demo": DEMO_SECTIONS}


def _config_default(path: str):
    """The default of a dotted setting, read from the dataclasses themselves."""
    section, _, name = path.partition(".")
    return getattr(DemoConfig(), name) if section == "demo" else C.default_of(path)


def _shown(d, flag: str) -> str:
    if isinstance(d, bool):
        return flag.split("/")[0 if d else -1].lstrip("-")
    if isinstance(d, list | tuple):
        return ",".join(d)
    return "all" if d is None else str(getattr(d, "value", d))


@pytest.mark.parametrize("command", ["train", "eval", "demo"])
def test_every_cli_default_is_the_config_default_of_its_setting(command):
    settings = [
        p
        for p in COMMAND.commands[command].params
        if p.param_type_name == "option" and p.opts[0] not in NOT_SETTINGS
    ]
    assert len(settings) >= 9
    for p in settings:
        paths = fields_of(p.opts[0], SECTIONS[command])
        assert paths, f"{command} {p.opts[0]} sets no config field"
        assert p.default in (None, ()), f"{command} {p.opts[0]} has a default of its own: {p.default!r}"
        defaults = {repr(_config_default(path)) for path in paths}
        assert len(defaults) == 1, (p.opts[0], paths, defaults)  # one option, one default
        flag = p.opts[0] if not p.secondary_opts else f"{p.opts[0]}/{p.secondary_opts[0]}"
        assert p.show_default == _shown(_config_default(paths[0]), flag), (command, p.opts[0])
    if command == "demo":  # every demo setting with an option is a DemoConfig field
        names = {f.name for f in fields(DemoConfig)}
        assert {fields_of(p.opts[0], DEMO_SECTIONS)[0].split(".", 1)[1] for p in settings} <= names


def _ctx(command: str, args: list[str]) -> typer.Context:
    return COMMAND.commands[command].make_context(command, args)


def test_no_options_means_the_config_defaults_and_given_ones_replace_them():
    assert train_config(_ctx("train", []), None, resume=False, overwrite=False) == C.RunConfig()
    run = train_config(
        _ctx("train", ["--seed", "7", "--source", "a,b", "-s", "c", "--no-augment"]),
        None,
        resume=False,
        overwrite=False,
    )
    assert (run.train.seed, run.data.seed, run.data.sources) == (7, 7, ["a", "b", "c"])
    assert not (run.data.augment.symmetries or run.data.augment.colors or run.data.augment.shuffle_train)
    assert _eval_config(given(_ctx("eval", ["-c", "run"]), EVAL_SECTIONS), None) == C.EvalConfig()
    ctx = _ctx("eval", ["-c", "run", "--seed", "3", "--threads", "1"])
    ev = _eval_config(given(ctx, EVAL_SECTIONS), None)
    assert (ev.seed, ev.threads, ev.ttt.seed) == (3, 1, C.TTTConfig().seed)
    demo = demo_config(given(_ctx("demo", []), DEMO_SECTIONS))
    assert demo.threads >= 1  # 0 = the CPUs free now, counted when the demo starts
    assert replace(demo, threads=DemoConfig().threads) == DemoConfig()
    assert demo_config(given(_ctx("demo", ["--steps", "5", "--seed", "2"]), DEMO_SECTIONS)).steps == 5


@pytest.mark.parametrize("command", list(COMMANDS))
def test_one_json_flag_and_an_example_in_every_commands_own_help(command):
    cmd = COMMAND.commands[command]
    json_opts = [p for p in cmd.params if "--json" in p.opts]
    assert [p.name for p in json_opts] == ["json_"], command
    assert "\nExample" in (cmd.help or ""), f"{command}: no Example in its help text"


@pytest.mark.parametrize("args", [[], *([c] for c in COMMANDS)])
def test_no_bool_column_in_any_help(args):
    res = CliRunner().invoke(app, [*args, "--help"], terminal_width=200)
    assert res.exit_code == 0 and "--help" in res.output
    assert "<bool>" not in res.output, args
