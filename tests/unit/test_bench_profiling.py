"""The py-spy summary that README's "where the time goes" quotes: who runs each sample."""

from __future__ import annotations

from benchmarks.profiling import collapsed_summary

PROCESS = 'process 7:"celery worker"'
TASK = "deliver (workers/tasks.py:80)"
SERVICE = "delivery_attempt (apps/callbacks/services.py:200)"
DJANGO = "QuerySet.update (django/db/models/query.py:1227)"
REDIS = "Redis.execute_command (redis/client.py:866)"
STDLIB = "Thread.run (threading.py:982)"


def test_samples_are_split_by_whose_code_runs_and_by_whether_ours_is_underneath() -> None:
    text = "\n".join(
        [
            f"{PROCESS};{STDLIB};{TASK};{SERVICE};{DJANGO} 6",
            f"{PROCESS};{STDLIB};{REDIS} 3",
            f"{PROCESS};{STDLIB};{TASK} 1",
        ]
    )
    summary = collapsed_summary(text)
    assert summary.startswith("10 samples")
    assert "under our code (a frame of apps/, workers/ or project/ on the stack): 70.0 %" in summary
    by_package = summary.split("self, by whose code runs")[1].split("inclusive")[0]
    assert "60.0 %  django" in by_package
    assert "30.0 %  redis" in by_package
    assert "10.0 %  ours: workers" in by_package
    assert "100.0 %  Thread.run (threading.py)" in summary


def test_no_samples_says_so() -> None:
    assert collapsed_summary("") == "no samples\n"
