"""One lookup of the Webis ads data set: ``--data DIR``, else ``ADSPACE_WEBIS_DATA``, else none."""

from __future__ import annotations

import pytest

from adspace.experiments.datasets import WEBIS_ENV, require_webis_data, webis_data


def test_the_folder_given_comes_first_then_the_variable_then_none(tmp_path, monkeypatch):
    given, named = tmp_path / "given", tmp_path / "named"
    given.mkdir()
    named.mkdir()
    monkeypatch.setenv(WEBIS_ENV, str(named))
    assert webis_data(given) == given
    assert webis_data(None) == named
    assert webis_data("") == named
    monkeypatch.delenv(WEBIS_ENV)
    assert webis_data() is None
    monkeypatch.setenv(WEBIS_ENV, "")
    assert webis_data() is None


def test_a_missing_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv(WEBIS_ENV, raising=False)
    with pytest.raises(ValueError, match="data: no such folder"):
        webis_data(tmp_path / "nope")
    monkeypatch.setenv(WEBIS_ENV, str(tmp_path / "gone"))
    with pytest.raises(ValueError, match=f"{WEBIS_ENV}: no such folder"):
        webis_data()


def test_an_experiment_that_needs_it_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv(WEBIS_ENV, raising=False)
    with pytest.raises(ValueError, match="data: the Webis ads data set is needed for the judgments; pass --data DIR"):
        require_webis_data(needed_for="the judgments")
    with pytest.raises(ValueError, match=f"none at {tmp_path}.*set {WEBIS_ENV}"):
        require_webis_data(tmp_path, needed_for="the judgments")
    (tmp_path / "advertisements").mkdir()
    assert require_webis_data(tmp_path, needed_for="the judgments") == tmp_path
