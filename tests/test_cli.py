"""The command line: every command answers --help, every output format is written and read back,
and mistakes get one clear line (exit status 2), never a traceback."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from descentlab import cli, landscapes, optim


@pytest.mark.parametrize("command", [[], ["demo"], ["optimizers"], ["landscapes"], ["race"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: descentlab" in capsys.readouterr().out


def test_lists(capsys):
    assert cli.main(["optimizers"]) == 0
    assert cli.main(["landscapes"]) == 0
    printed = capsys.readouterr().out
    assert all(key in printed for key in optim.names())
    assert all(key in printed for key in landscapes.names())


def _race(tmp_path, name, *extra):
    out = tmp_path / name
    code = cli.main(
        [
            "race",
            "ravine",
            "--optimizers",
            "sgd:lr=0.3,momentum:lr=0.05,momentum=0.8,adam",
            "--start",
            "-2.5,1",
            "--steps",
            "20",
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )
    assert code == 0
    return out


def test_json_holds_the_documented_fields(tmp_path):
    data = json.loads(_race(tmp_path, "race.json").read_text())
    assert data["landscape"]["key"] == "ravine"
    assert [run["optimizer"] for run in data["runs"]] == ["sgd", "momentum", "adam"]
    run = data["runs"][1]
    assert run["hyperparameters"]["lr"] == 0.05 and run["hyperparameters"]["momentum"] == 0.8
    assert run["start"] == [-2.5, 1.0]
    assert len(run["path"]) == 21 and len(run["loss"]) == 21 and run["diverged"] is False


def test_csv_has_a_row_per_run_and_step(tmp_path):
    with _race(tmp_path, "race.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 21
    assert rows[0]["optimizer"] == "sgd" and float(rows[0]["x"]) == -2.5


@pytest.mark.parametrize("name", ["race.png", "race.gif"])
def test_pictures_are_written_at_their_size(tmp_path, name):
    with Image.open(_race(tmp_path, name)) as image:
        assert image.size[0] > 300 and image.size[1] > 200
        if name.endswith(".gif"):
            assert image.n_frames > 5


def test_svg_and_sweep(tmp_path):
    svg = _race(tmp_path, "race.svg")
    assert svg.read_text().lstrip().startswith("<?xml")
    out = tmp_path / "sweep.png"
    assert (
        cli.main(
            [
                "race",
                "rosenbrock",
                "--optimizers",
                "adam,sgd",
                "--sweep",
                "lr=1e-4:1e-1:6",
                "--steps",
                "30",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert out.stat().st_size > 1000


def test_mp4_when_ffmpeg_is_available(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    out = _race(tmp_path, "race.mp4")
    assert out.read_bytes()[4:8] == b"ftyp"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["race", "ravine", "--optimizers", "adamm"], "unknown optimizer 'adamm'"),
        (["race", "ravine", "--out", "race.txt"], "the extension picks the format"),
        (["race", "ravine", "--start", "1,a"], "a point is numbers"),
        (["race", "ravine", "--sweep", "lr=1:0.1:5"], "need 0 < LOW < HIGH"),
        (["race", "ravine", "--steps", "0"], "--steps must be at least 1"),
        (["race", "x +* y"], "invalid"),
        (["race", "ravine", "--optimizers", "lr=0.1"], "must follow an optimizer"),
    ],
)
def test_mistakes_are_one_clear_line(arguments, message, capsys, tmp_path):
    code = cli.main([*arguments, "--quiet"] if arguments[0] == "race" else arguments)
    error = capsys.readouterr().err
    assert code == 2
    assert message in error
    assert "Traceback" not in error


def test_bad_flag_value_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["race", "ravine", "--steps", "many"])
    assert exit_info.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


def test_modern_optimizers_race_as_an_animation(tmp_path):
    out = tmp_path / "race.gif"
    assert (
        cli.main(
            [
                "race",
                "rosenbrock",
                "--optimizers",
                "lion,prodigy,schedulefree_adamw,lookahead",
                "--steps",
                "30",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert out.stat().st_size > 1000


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["race", "x +* y"], "invalid"),
        (["race", "ravine", "--optimizers", "sgd:lr=-1"], "lr"),
        (["race", "ravine", "--start", "1,2,3"], "start"),
        (["race", "ravine", "--optimizers", "adam:beta9=0.5"], "beta9"),
    ],
)
def test_errors_found_by_the_race_print_before_any_progress_bar(
    arguments, message, capsys, tmp_path
):
    # Without --quiet: the progress bar must not have been drawn when the race rejects its input.
    code = cli.main([*arguments, "--out", str(tmp_path / "race.png")])
    error = capsys.readouterr().err
    assert code == 2
    assert message in error
    assert error.startswith("descentlab race: error:"), error
    assert "it/s" not in error and "step/s" not in error and "%|" not in error


def test_a_good_race_still_shows_its_progress_bar(capsys, tmp_path):
    out = tmp_path / "race.json"
    assert (
        cli.main(
            ["race", "ravine", "--optimizers", "sgd:lr=0.1", "--steps", "5", "--out", str(out)]
        )
        == 0
    )
    assert "step" in capsys.readouterr().err
    assert json.loads(out.read_text())["runs"]


# ----------------------------------------------------------------------------- the demo's races


def _demo_race(landscape: str):
    from descentlab import lab
    from descentlab.demo import RACES

    (race,) = [race for race in RACES if race.landscape == landscape]
    result = lab.race(race.landscape, list(race.optimizers), [list(race.start)], race.steps)
    return {info.optimizer: index for index, info in enumerate(result.runs)}, result


def test_demo_races_use_their_own_steps_and_registry_ranges():
    from descentlab.demo import RACES
    from descentlab.lab.runs import parse_entry

    assert cli.build_parser().parse_args(["demo"]).steps is None
    for race in RACES:
        assert 10 <= race.steps <= 1000
        for text in race.optimizers:
            key, given = parse_entry(text)
            ranges = {h.name: h for h in optim.spec(key).hyperparameters}
            for name, value in given.items():
                low, high = ranges[name].low, ranges[name].high
                assert low is None or low <= value <= high, (race.landscape, key, name, value)


def test_demo_ravine_momentum_arrives_well_before_gradient_descent():
    run, result = _demo_race("ravine")
    reached = result.steps_to_tolerance.tolist()
    assert 0 < reached[run["momentum"]] < reached[run["sgd"]] / 2
    assert 0 < reached[run["nesterov"]] < reached[run["sgd"]] / 2


def test_demo_well_gradient_descent_stays_on_the_rim_per_coordinate_methods_leave_it():
    run, result = _demo_race("anisotropic_well")
    start = result.path[0, run["sgd"]]
    assert float((result.final[run["sgd"]] - start).norm()) < 0.1
    for key in ("adagrad", "rmsprop", "adam", "rprop"):
        assert float(result.distance_to_minimum[run[key]]) < 0.01, key


def test_demo_rosenbrock_first_order_methods_get_far_from_the_start():
    run, result = _demo_race("rosenbrock")
    start_distance = float(result.distance_to_minimum.new_tensor([-2.2, 0.0]).norm())
    for key in ("sgd", "momentum", "adam"):
        assert float(result.distance_to_minimum[run[key]]) < start_distance / 2, key
    assert 0 < int(result.steps_to_tolerance[run["newton"]]) <= 10


def test_demo_saddle_newton_stops_on_the_saddle_gradient_methods_leave():
    run, result = _demo_race("saddle")
    assert result.path[1, run["newton"]].abs().max() < 1e-6  # one step onto (0, 0)
    for key in ("sgd", "adam"):
        assert float(result.path[-1, run[key], 1].abs()) > 1.0, key


def test_compare_writes_the_report_and_prints_the_recommendation(tmp_path, capsys):
    out = tmp_path / "report.html"
    arguments = ["compare", "--task", "toy2d", "--optimizers", "adam,sgd", "--budget", "2"]
    status = cli.main([*arguments, "--seeds", "1", "--epochs", "2", "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert status == 0
    assert out.exists() and out.with_suffix(".json").exists() and out.with_suffix(".csv").exists()
    assert out.with_suffix(".db").exists()  # the trials, in SQLite beside the report
    assert "Use " in printed and "wrote" in printed


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--task", "imagenet"], "unknown task 'imagenet'"),
        (["--optimizers", "adam,nope"], "unknown optimizer 'nope'"),
        (["--budget", "0"], "Invalid budget"),
        (["--batch-size", "big"], "--batch-size"),
        (["--out", "report.txt"], "--out: the report is an HTML file"),
        (["--storage", "postgresql+psycopg2://x@127.0.0.1:1/none"], "--storage: cannot open"),
    ],
)
def test_compare_bad_flags_are_one_line(tmp_path, capsys, flags, message):
    arguments = ["compare", "--task", "toy2d", "--budget", "1", "--seeds", "1", "--quiet"]
    if "--out" not in flags:
        arguments += ["--out", str(tmp_path / "r.html")]
    status = cli.main([*arguments, *flags])
    error = capsys.readouterr().err
    assert status == 2
    assert message in error and "Traceback" not in error


def test_compare_on_several_tasks_writes_an_overview_with_the_profile(tmp_path, capsys):
    out = tmp_path / "tasks.html"
    arguments = ["compare", "--task", "toy2d,digits-logreg", "--optimizers", "adam,sgd"]
    flags = ["--budget", "2", "--seeds", "2", "--epochs", "1", "--out", str(out), "--quiet"]
    assert cli.main([*arguments, *flags]) == 0
    page = out.read_text()
    assert (tmp_path / "tasks-toy2d.html").exists() and (
        tmp_path / "tasks-digits-logreg.html"
    ).exists()
    assert "href='tasks-toy2d.html'" in page and "data:image/png;base64," in page
    assert "Performance profile across tasks" in page
