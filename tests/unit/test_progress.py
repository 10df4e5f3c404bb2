"""Long steps report count, rate and ETA at intervals, and their totals at the end."""

from __future__ import annotations

import logging

from ragops.progress import Progress, track


def test_log_mode_reports_count_rate_eta_then_totals(monkeypatch, caplog):
    monkeypatch.setenv("RAGOPS_PROGRESS", "log")
    caplog.set_level(logging.INFO, logger="ragops.progress")
    with Progress("embed", total=10, unit="chunks", interval=0.0) as progress:
        for _ in range(4):
            progress.update(1)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("embed: 2/10 chunks,") and "chunks/s" in line and "ETA" in line for line in lines)
    assert lines[-1].startswith("embed done: 4 chunks in ")


def test_track_counts_items_and_stays_quiet_when_off(monkeypatch, caplog):
    monkeypatch.setenv("RAGOPS_PROGRESS", "off")
    caplog.set_level(logging.INFO, logger="ragops.progress")
    assert list(track(range(3), "load")) == [0, 1, 2]
    assert caplog.records == []


def test_bar_mode_draws_a_tqdm_bar(monkeypatch, capsys):
    monkeypatch.setenv("RAGOPS_PROGRESS", "bar")
    for _ in track(range(5), "chunk", unit="documents"):
        pass
    assert "chunk" in capsys.readouterr().err
