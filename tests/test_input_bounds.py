"""A small hostile app.yaml stays a small, located answer: no file read through a link, no flood of
problems, no pattern list that stalls the build, no number that cannot be printed, no unit lost to
another of the same name, no invisible character in what an admin reads.

Each case is an attack that once worked (see the commit that added it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .hostile import appdeb, assert_refused, make_app


def test_app_yaml_linked_out_of_the_checkout_is_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Root checking someone's checkout once parsed the link's target and quoted it back."""
    secret = tmp_path / "secret.yaml"
    secret.write_text("TOPSECRET_KEY: TOPSECRET_VALUE\n")
    app = make_app(tmp_path)
    (app / "app.yaml").unlink()
    (app / "app.yaml").symlink_to(secret)
    for args in (("check", app), ("build", app, "--out", tmp_path / "dist")):
        code, out, err = appdeb(capsys, *args)
        assert_refused(code, err, "(top)", "is a symbolic link")
        assert "TOPSECRET" not in out + err
    (app / "app.yaml").unlink()
    (app / "app.yaml").symlink_to("hello.py")  # inside the app, still a link: the same answer
    assert_refused(*appdeb(capsys, "check", app)[::2], "(top)", "is a symbolic link")
