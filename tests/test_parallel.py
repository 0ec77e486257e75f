"""Independent runs side by side: results in order, one thread per worker, CPU only."""

import os

import torch

from lib.parallel import cpu_workers, process_map, start_order


def threads_and_square(value: int) -> tuple[int, int]:
    return torch.get_num_threads(), value * value


def progress_setting(_: int) -> str | None:
    return os.environ.get("CLOSER_LOOK_PROGRESS")


def test_process_map_keeps_the_order_and_gives_each_worker_one_thread():
    assert process_map(threads_and_square, [3, 1, 2], workers=2) == [(1, 9), (1, 1), (1, 4)]
    assert process_map(threads_and_square, [5], workers=2) == [(torch.get_num_threads(), 25)]  # in this process


def test_workers_are_one_per_core_on_the_cpu_and_one_on_a_gpu(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert cpu_workers(torch.device("cpu"), 14) == 2
    assert cpu_workers(torch.device("cpu"), 1) == 1
    assert cpu_workers(torch.device("cuda"), 14) == 1


def test_workers_draw_no_progress_bars(monkeypatch):
    monkeypatch.setenv("CLOSER_LOOK_PROGRESS", "1")
    assert process_map(progress_setting, [0, 1], workers=2) == ["0", "0"]


def test_costliest_items_start_first_and_results_keep_the_order_of_the_items():
    assert start_order(["a", "bbb", "cc"], len) == [1, 2, 0]
    assert start_order(["a", "bbb", "cc"], None) == [0, 1, 2]
    assert process_map(threads_and_square, [1, 3, 2], workers=2, cost=float) == [(1, 1), (1, 9), (1, 4)]
