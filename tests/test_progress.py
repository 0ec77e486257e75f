"""Progress bars honour the book's switch and tqdm's own environment variables."""

from lib import progress as bars


def test_bars_are_silenced_by_the_book_or_by_tqdm(monkeypatch):
    for name in ("CLOSER_LOOK_PROGRESS", "TQDM_DISABLE"):
        monkeypatch.delenv(name, raising=False)
    assert not bars.progress_disabled()
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert bars.progress_disabled()
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert not bars.progress_disabled()
    monkeypatch.setenv("CLOSER_LOOK_PROGRESS", "0")
    assert bars.progress_disabled()


def test_tqdm_mininterval_sets_the_redraw_interval(monkeypatch):
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    assert bars._mininterval() == 0.5
    monkeypatch.setenv("TQDM_MININTERVAL", "2")
    assert bars._mininterval() == 2.0
    monkeypatch.setenv("TQDM_MININTERVAL", "often")
    assert bars._mininterval() == 0.5
    assert list(bars.progress(range(3), desc="x")) == [0, 1, 2]
