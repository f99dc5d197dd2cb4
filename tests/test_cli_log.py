"""The command line's log: ednas's messages on stderr, each once, whatever other libraries do to the root logger."""

import contextlib
import logging
import re

import ednas.latency.cli as lut_cli
from ednas.cli import main
from ednas.stage import run_stage


@contextlib.contextmanager
def bare_root():
    """The root logger of a command's process: no handler (pytest keeps its own there during a test; put back afterwards)."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        yield root
    finally:
        for h in root.handlers:
            h.close()
        root.handlers[:] = saved


def _two_stages_with_a_library_between(tmp_path):
    def command(cfg):
        run_stage(tmp_path / "first", {}, lambda d: {}, name="first")
        # ONNX Runtime's quantizer logs through the root logger (``logging.info``): on a root with no handler,
        # that calls ``logging.basicConfig()``, which installs one writing "LEVEL:name:message" to stderr
        logging.info("a library's message")
        run_stage(tmp_path / "second", {}, lambda d: {}, name="second")
        logging.getLogger("ednas.test").warning("a warning")
        return None

    return command


def test_each_message_is_logged_once_after_a_library_configures_the_root_logger(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(lut_cli, "lut_script", _two_stages_with_a_library_between(tmp_path))
    with bare_root() as root:
        assert main(["lut", "script", "--out", str(tmp_path / "kit")]) == 0
        assert len(root.handlers) == 1  # the library did install a root handler
    err = re.sub(r"done in [0-9.]+ s", "done in T s", capsys.readouterr().err)
    assert err.splitlines() == ["[first] running ...", "[first] done in T s", "[second] running ...", "[second] done in T s",
                                "ednas: warning: a warning"]


def test_the_command_line_gives_the_ednas_logger_back_when_it_returns(tmp_path, capsys, caplog, monkeypatch):
    """After ``main`` the ``ednas`` logger is a library's logger again: no handler of its own, records go to the root's."""
    log = logging.getLogger("ednas")
    before = (log.level, log.propagate, log.handlers[:])
    monkeypatch.setattr(lut_cli, "lut_script", _two_stages_with_a_library_between(tmp_path))
    assert main(["-v", "lut", "script", "--out", str(tmp_path / "kit")]) == 0
    assert "[second] running ..." in capsys.readouterr().err
    assert (log.level, log.propagate, log.handlers) == before
    with caplog.at_level(logging.INFO, logger="ednas"):
        logging.getLogger("ednas.stage").info("after the command")
    assert [r.getMessage() for r in caplog.records if r.name.startswith("ednas")] == ["after the command"]
    assert capsys.readouterr().err == ""
