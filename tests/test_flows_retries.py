"""Retries only for transient failures: storage and network, never bad data or a bug."""

from __future__ import annotations

import errno
from datetime import date

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from prefect import flow, task
from prefect.states import Failed
from prefect.task_engine import TaskRunTimeoutError

import flows.retries
from flows.retries import IO_RETRIES, is_transient, retry_if_transient, retrying, site_or_unreadable
from storage import LocalStore


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetObject")


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="http://minio:9000"),
        ReadTimeoutError(endpoint_url="http://minio:9000"),
        _client_error("SlowDown", 503),
        _client_error("InternalError", 500),
        _client_error("Whatever", 503),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        TimeoutError("read timed out"),
        OSError(errno.EIO, "i/o error on the file server"),
    ],
)
def test_transient_errors_are_retried(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        _client_error("AccessDenied", 403),
        _client_error("NoSuchBucket", 404),
        _client_error("NoSuchKey", 404),
        FileNotFoundError(errno.ENOENT, "missing"),
        PermissionError(errno.EACCES, "denied"),
        KeyError("REASON_ONLY"),
        ValueError("bad date"),
        TaskRunTimeoutError("Task run exceeded timeout of 1800 second(s)"),
        None,
    ],
)
def test_permanent_errors_are_not_retried(error: BaseException | None) -> None:
    assert not is_transient(error)


def test_retry_condition_reads_the_exception_from_the_failed_state() -> None:
    assert retry_if_transient(None, None, Failed(data=ConnectionResetError(errno.ECONNRESET, "reset")))
    assert not retry_if_transient(None, None, Failed(data=ValueError("bad")))


def test_tasks_retry_transient_failures_and_stop_at_once_on_bad_data(prefect_harness: None) -> None:
    attempts = {"flaky": 0, "broken": 0}

    @task(**{**IO_RETRIES, "retry_delay_seconds": 0})
    def flaky() -> str:
        attempts["flaky"] += 1
        if attempts["flaky"] < 3:
            raise ConnectionResetError(errno.ECONNRESET, "connection reset by peer")
        return "read"

    @task(**{**IO_RETRIES, "retry_delay_seconds": 0})
    def broken() -> str:
        attempts["broken"] += 1
        raise KeyError("REASON_ONLY")

    @flow
    def night() -> tuple[str, str]:
        state = broken(return_state=True)
        return flaky(), type(state.result(raise_on_failure=False)).__name__

    assert night() == ("read", "KeyError")
    assert attempts == {"flaky": 3, "broken": 1}


def test_retrying_waits_the_given_delays_then_returns() -> None:
    waited: list[float] = []
    attempts = iter([ConnectionResetError(errno.ECONNRESET, "reset"), _client_error("SlowDown", 503), "read"])

    def call() -> str:
        outcome = next(attempts)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    assert retrying(call, delays=[2, 10, 30], sleep=waited.append) == "read"
    assert waited == [2, 10]


def test_retrying_raises_bad_data_at_once_and_gives_up_after_the_last_delay() -> None:
    waited: list[float] = []
    with pytest.raises(KeyError):
        retrying(lambda: {}["REASON_ONLY"], delays=[2, 10, 30], sleep=waited.append)
    assert waited == []
    calls = []

    def down() -> None:
        calls.append(1)
        raise _client_error("SlowDown", 503)

    with pytest.raises(ClientError):
        retrying(down, delays=[2, 10, 30], sleep=waited.append)
    assert waited == [2, 10, 30] and len(calls) == 4


def test_retrying_reads_the_module_delays_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flows.retries, "IO_RETRY_DELAYS", [0.5])
    waited: list[float] = []
    with pytest.raises(TimeoutError):
        retrying(lambda: (_ for _ in ()).throw(TimeoutError("read timed out")), sleep=waited.append)
    assert waited == [0.5]


def test_a_site_whose_storage_keeps_failing_is_not_audited_and_a_bug_still_fails() -> None:
    def denied() -> None:
        raise _client_error("AccessDenied", 403)

    site = site_or_unreadable(denied, "SZ003", "102", delays=[0], sleep=lambda _: None)
    assert not site.audited and site.frames == {} and site.inputs == []
    reason = "its storage could not be read (ClientError AccessDenied)"  # not retried: no "after every retry"
    assert site.findings.select("SITEID", "EXPECTATION", "OBSERVED").rows() == [
        ("102", "ingest.site_not_audited", reason)]
    with pytest.raises(KeyError):
        site_or_unreadable(lambda: {}["REASON_ONLY"], "SZ003", "102", delays=[0], sleep=lambda _: None)


def _three_sites(root) -> LocalStore:
    from generator import generate

    store = LocalStore(root)
    generate(store, study="SZ003", sites=3, subjects=12, seed=3, as_of=date(2026, 11, 28), formats="csv",
             plant_problems=False)
    return store


def test_one_flaky_site_is_retried_alone_inside_its_batch(prefect_harness: None, tmp_path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import ingestion
    from flows.tasks import ingest_sites_task

    store = _three_sites(tmp_path / "landing")
    sites = ingestion.list_sites(store, "SZ003")
    calls = {site: 0 for site in sites}
    real = ingestion.read_site

    def flaky(store, study, site, **kwargs):
        calls[site] += 1
        if site == sites[1] and calls[site] < 3:
            raise ConnectionResetError(errno.ECONNRESET, "connection reset by peer")
        if site == sites[2]:
            raise _client_error("SlowDown", 503)
        return real(store, study, site, **kwargs)

    monkeypatch.setattr(ingestion, "read_site", flaky)
    monkeypatch.setattr(flows.retries, "IO_RETRY_DELAYS", [0, 0, 0])

    @flow
    def night() -> list:
        return ingest_sites_task(store.uri, "SZ003", sites, None)

    results = night()
    assert calls == {sites[0]: 1, sites[1]: 3, sites[2]: 4}  # nobody else read again for the flaky site
    assert [r.site for r in results] == sites
    assert [r.audited for r in results] == [True, True, False]
    assert results[1].frames["dm"].height > 0
    assert "SlowDown" in results[2].findings["OBSERVED"][0]


@pytest.mark.parametrize(("sites", "name"), [(["101"], "ingest-site-101"),
                                             (["101", "102", "132"], "ingest-sites-101-132")])
def test_an_ingestion_task_is_named_by_its_sites(sites: list[str], name: str) -> None:
    from flows.tasks import ingest_run_name

    assert ingest_run_name(sites) == name


def test_missing_or_rejected_credentials_fail_the_night_instead_of_a_site() -> None:
    from botocore.exceptions import NoCredentialsError

    from flows.retries import CredentialsError

    def no_credentials() -> None:
        raise NoCredentialsError()

    def bad_key() -> None:
        raise _client_error("InvalidAccessKeyId", 403)

    for read in (no_credentials, bad_key):
        with pytest.raises(CredentialsError, match=r"study SZ003, site 102, read on .+ \(pid \d+\)"):
            site_or_unreadable(read, "SZ003", "102", delays=[0], sleep=lambda _: None)


def test_only_a_retried_error_is_said_to_have_been_retried() -> None:
    def slow() -> None:
        raise _client_error("SlowDown", 503)

    waited: list[float] = []
    site = site_or_unreadable(slow, "SZ003", "102", delays=[0], sleep=waited.append)
    assert waited == [0]
    assert site.findings["OBSERVED"].to_list() == [
        "its storage could not be read after every retry (ClientError SlowDown)"]
