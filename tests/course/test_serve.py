"""``descentlab serve`` refuses broken content and bad flags in one message, before listening."""

from __future__ import annotations

from descentlab import cli


def test_broken_content_stops_serve_with_file_and_line(content_dir, capsys, tmp_path):
    path = content_dir / "lessons" / "02-momentum.md"
    path.write_text(path.read_text().replace("minutes: 8", "minutes: 99"))
    status = cli.main(
        ["serve", "--content", str(content_dir), "--db", str(tmp_path / "db.sqlite3")]
    )
    error = capsys.readouterr().err
    assert status == 2
    assert "02-momentum.md:5: minutes: Input should be less than or equal to 15" in error
    assert "Traceback" not in error
    assert "has no lesson file" not in error  # the file exists; it is only broken


def test_a_bad_port_is_a_usage_error(capsys):
    assert cli.main(["serve", "--port", "70000"]) == 2
    assert "--port must be from 1 to 65535" in capsys.readouterr().err
