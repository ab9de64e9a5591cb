"""Who may run what: tasks and model versions announced at READY, local workers first."""

from __future__ import annotations

from workers.capabilities import Announced, plan
from workers.dispatch import Dispatcher, Job, Offer

OCR_A, OCR_B, CLIP = "ocr-aaaa", "ocr-bbbb", "clip-cccc"


def local(**versions: str) -> Announced:
    return Announced(local=True, versions=versions)


def remote(**versions: str) -> Announced:
    return Announced(local=False, versions=versions)


def test_a_node_without_clip_is_never_offered_clip():
    farm = plan({b"w0": local(sleep="", ocr=OCR_A, clip_image=CLIP),
                 b"n0": remote(sleep="", ocr=OCR_A)})
    assert farm.offers[b"n0"] == Offer(frozenset({"sleep", "ocr"}), rest=False)
    assert farm.offers[b"w0"].tasks == {"sleep", "ocr", "clip_image"}
    assert farm.excluded == {}


def test_a_node_with_another_ocr_model_gets_no_ocr_jobs():
    farm = plan({b"w0": local(ocr=OCR_A), b"n0": remote(ocr=OCR_B, sleep="")})
    assert farm.offers[b"n0"].tasks == {"sleep"}
    assert farm.excluded == {b"n0": {"ocr": OCR_B}}
    assert farm.models["ocr"] == {OCR_A}


def test_the_local_model_wins_even_when_a_node_registered_first():
    farm = plan({b"n0": remote(ocr=OCR_B), b"w0": local(ocr=OCR_A)})
    assert farm.offers[b"w0"].tasks == {"ocr"} and farm.offers[b"n0"].tasks == set()


def test_without_a_local_model_the_first_node_sets_it_for_the_others():
    farm = plan({b"w0": local(sleep=""), b"n0": remote(ocr=OCR_B), b"n1": remote(ocr=OCR_A),
                 b"n2": remote(ocr=OCR_B)})
    assert [farm.offers[w].tasks for w in (b"n0", b"n1", b"n2")] == [{"ocr"}, set(), {"ocr"}]
    assert "ocr" in farm.served


def test_local_workers_keep_serving_through_a_model_update():
    """A rolling recycle after `mtai models fetch`: old and new local workers both serve
    (the operator changed the model); only nodes are held to the farm's models."""
    farm = plan({b"w0": local(ocr=OCR_A), b"w1": local(ocr=OCR_B), b"n0": remote(ocr=OCR_B)})
    assert all(farm.offers[w].tasks == {"ocr"} for w in (b"w0", b"w1", b"n0"))


def test_tasks_nobody_runs_go_to_local_workers_only():
    """They answer why ("model not installed", "unknown task"); a node never gets them."""
    farm = plan({b"w0": local(ocr=OCR_A), b"n0": remote(ocr=OCR_A)})
    dispatch = Dispatcher(queue_size=8)
    dispatch.plan(farm.offers, farm.served)
    assert dispatch.takes(b"w0", "clip_text") and not dispatch.takes(b"n0", "clip_text")
    assert dispatch.takes(b"n0", "ocr") and not dispatch.takes(b"n0", "no-such-task")


def test_announcements_that_are_not_strings_are_ignored():
    announced = Announced.from_info({"versions": {"ocr": OCR_A, "clip_image": 3, 4: "x"}},
                                    local=False)
    assert announced.versions == {"ocr": OCR_A}
    assert Announced.from_info({"versions": "all"}, local=True).versions == {}


def test_the_dispatcher_skips_jobs_no_idle_worker_may_take():
    dispatch = Dispatcher(queue_size=8)
    dispatch.plan({b"n0": Offer(frozenset({"sleep"})), b"w0": Offer(frozenset({"ocr"}))},
                  frozenset({"sleep", "ocr"}))
    dispatch.worker_idle(b"n0")
    for name, task in (("1", "ocr"), ("2", "ocr"), ("3", "sleep")):
        dispatch.submit(Job(name, b"c", task, [], 100.0, 0.0))
    assert [(w, j.id) for w, j in dispatch.assign(now=0)] == [(b"n0", "3")]
    assert [j.id for j in dispatch.queue] == ["1", "2"]  # they wait for the OCR worker
    dispatch.worker_idle(b"w0")
    assert [(w, j.id) for w, j in dispatch.assign(now=0)] == [(b"w0", "1")]


def test_a_job_that_never_reached_its_worker_is_not_counted_as_an_attempt():
    dispatch = Dispatcher(queue_size=4)
    dispatch.worker_idle(b"n0")
    dispatch.submit(Job("1", b"c", "ocr", [], 100.0, 0.0))
    [(worker, job)] = list(dispatch.assign(now=0))
    assert job.attempts == 1
    dispatch.undo(worker)
    dispatch.worker_gone(worker)
    assert job.attempts == 0 and list(dispatch.queue) == [job] and not dispatch.running


def test_a_paused_worker_resumes_idle_unless_it_runs_a_job():
    dispatch = Dispatcher(queue_size=4)
    dispatch.worker_idle(b"n0")
    dispatch.pause(b"n0")
    assert not dispatch.idle
    dispatch.resume(b"n0")
    assert list(dispatch.idle) == [b"n0"]
