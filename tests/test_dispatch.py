"""The broker's rules, without sockets: LRU order, bounds, deadlines, retry-once."""

from __future__ import annotations

from workers.dispatch import Dispatcher, Job


def job(name: str, deadline: float = 100.0) -> Job:
    return Job(name, b"client", "ocr", [], deadline, queued_at=0.0)


def test_longest_idle_worker_gets_the_oldest_job():
    d = Dispatcher(queue_size=10)
    for w in (b"a", b"b", b"c"):
        d.worker_idle(w)
    d.submit(job("1"))
    d.submit(job("2"))
    assert [(w, j.id) for w, j in d.assign(now=0)] == [(b"a", "1"), (b"b", "2")]
    assert list(d.idle) == [b"c"]
    assert d.finish(b"a", "1").id == "1"
    d.worker_idle(b"a")
    assert list(d.idle) == [b"c", b"a"]


def test_full_queue_refuses_instead_of_growing():
    d = Dispatcher(queue_size=2)
    assert d.submit(job("1")) and d.submit(job("2"))
    assert not d.submit(job("3"))
    assert len(d.queue) == 2


def test_expired_jobs_are_answered_not_run():
    d = Dispatcher(queue_size=5)
    d.submit(job("old", deadline=5))
    d.submit(job("new", deadline=50))
    d.worker_idle(b"a")
    assert [j.id for j in d.expire(now=10)] == ["old"]
    assert [j.id for _, j in d.assign(now=10)] == ["new"]


def test_assign_never_starts_an_expired_job():
    d = Dispatcher(queue_size=5)
    d.submit(job("old", deadline=5))
    d.worker_idle(b"a")
    assert list(d.assign(now=10)) == []
    assert list(d.idle) == [b"a"]


def test_job_lost_with_its_worker_is_retried_once():
    d = Dispatcher(queue_size=5)
    d.submit(job("poison"))
    for worker in (b"a", b"b"):
        d.worker_idle(worker)
    (first, lost), = d.assign(now=0)
    assert d.worker_gone(first) is lost
    assert d.retry(lost, now=1)
    (second, again), = d.assign(now=1)
    assert again is lost and second == b"b"
    assert d.worker_gone(second) is lost
    assert not d.retry(lost, now=2)


def test_late_reply_for_another_job_is_ignored():
    d = Dispatcher(queue_size=5)
    d.submit(job("1"))
    d.worker_idle(b"a")
    list(d.assign(now=0))
    assert d.finish(b"a", "stale") is None
    assert d.finish(b"z", "1") is None
    assert d.finish(b"a", "1").id == "1"


def test_paused_worker_gets_no_jobs_and_overdue_jobs_are_found():
    d = Dispatcher(queue_size=5)
    d.worker_idle(b"a")
    d.pause(b"a")
    d.worker_idle(b"a")
    d.submit(job("1", deadline=10))
    assert list(d.assign(now=0)) == []
    d.worker_gone(b"a")
    d.worker_idle(b"b")
    list(d.assign(now=0))
    assert d.abandon(now=9) == []
    assert [j.id for j in d.abandon(now=12)] == ["1"]
    assert d.abandon(now=13) == []
    assert d.overdue(now=12, grace=5) == []
    assert [w for w, _ in d.overdue(now=15, grace=5)] == [b"b"]
    assert not d.retry(d.worker_gone(b"b"), now=15)


def test_cancel_takes_out_only_the_senders_queued_job():
    d = Dispatcher(queue_size=10)
    d.submit(job("1"))
    d.submit(job("2"))
    assert d.cancel(b"someone else", "1") is None  # only the connection that sent it
    assert d.cancel(b"client", "1").id == "1"
    assert [j.id for j in d.queue] == ["2"]
    d.worker_idle(b"a")
    assert [j.id for _, j in d.assign(now=0)] == ["2"]
    assert d.cancel(b"client", "2") is None  # running: it finishes, its reply is dropped
    assert d.running[b"a"].id == "2"
