"""Crawl sources stay inside their folder, and no file name can forge a line of the CLI's output."""

import os
import subprocess

from helpers import NR4DL, ROOT
from nr4dl_tasks.core.settings import SourceSettings
from nr4dl_tasks.crawl.discover import inbox_files


def test_the_inbox_does_not_follow_links_out_of_its_folder(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "show.wav").write_bytes(b"RIFF")
    os.utime(inbox / "show.wav", (1e9, 1e9))  # settled long ago
    os.symlink(inbox / "show.wav", inbox / "again.wav")  # a link inside the inbox is fine
    os.symlink("/etc/passwd", inbox / "x.wav")
    links = inbox_files(SourceSettings(name="inbox", kind="inbox", path=inbox))
    assert sorted(link.title for link in links) == ["again", "show"]


def test_a_newline_in_a_file_name_cannot_forge_an_output_line(tmp_path):
    forged = tmp_path / "FAILED x: bad\nok y.wav"
    forged.write_bytes(b"not media at all " * 100)
    run = subprocess.run(
        [str(NR4DL), "process", str(forged), "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT
    )
    lines = run.stdout.splitlines()
    assert run.returncode == 1 and len(lines) == 2, run.stdout
    assert lines[0].startswith("FAILED  ") and "bad\\nok y.wav" in lines[0]
    assert not any(line.startswith("ok") for line in lines)
