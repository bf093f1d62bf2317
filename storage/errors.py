"""Storage's own errors: what went wrong with which object, in words an operator can act on.

boto3 reports a failure as a `ClientError` carrying an S3 error code, or as one of botocore's
connection errors; a local folder raises `OSError`. Callers above storage (ingestion, publication,
the flows) must not branch on S3 error codes or on the kind of store, so `S3Store` turns every
failure into one of the classes below, named after what it means (an object or a bucket that does
not exist, access denied, no credentials, a write precondition that failed, an endpoint that is not
answering). The original error stays attached as `__cause__`; only its class and S3 code are
repeated in the message, never a response body that could quote keys or contents of other objects.

`is_transient` and `is_storage_error` tell retry logic which failures another attempt may not meet.
"""

from __future__ import annotations

import errno

#: S3 error codes that mean "try again later" (AWS and S3-compatible stores).
TRANSIENT_CODES = frozenset({
    "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed",
    "Throttling", "ThrottlingException", "OperationAborted", "500", "502", "503", "504",
})
#: OS errors of a flaky network or file server, not of a missing file or a permission.
TRANSIENT_ERRNOS = frozenset({
    errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EHOSTUNREACH,
    errno.ENETUNREACH, errno.ENETDOWN, errno.EPIPE, errno.EAGAIN, errno.EIO,
})
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_NO_BUCKET = frozenset({"NoSuchBucket"})
_DENIED = frozenset({"AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                     "ExpiredToken", "InvalidToken", "AccountProblem"})
_PRECONDITION = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
_UNSUPPORTED = frozenset({"NotImplemented", "501"})


class StorageError(Exception):
    """A storage operation that failed; `where` is the URI it was about, `code` the S3 code if any."""

    transient = False

    def __init__(self, message: str, *, where: str = "", operation: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.where = where
        self.operation = operation
        self.code = code

    def in_context(self, context: str) -> StorageError:
        """The same error (same class, same attributes) with `context: ` in front of its message.

        What storage cannot know, the caller adds: which study, and whether the URI is its landing or
        its reports location, so that an operator reads one line that names everything to fix.
        """
        return type(self)(f"{context}: {self}", where=self.where, operation=self.operation, code=self.code)


class ObjectNotFound(StorageError, FileNotFoundError):
    """The object does not exist (also a `FileNotFoundError`, as for a local file)."""


class BucketNotFound(StorageError):
    """The bucket of an `s3://` URI does not exist on that endpoint."""


class AccessDenied(StorageError, PermissionError):
    """The credentials in use may not do this (or are not valid on that endpoint)."""


class NoCredentials(StorageError):
    """boto3 found no credentials in its chain (environment, profile, instance role)."""


class PreconditionFailed(StorageError):
    """A conditional write lost: the object exists (If-None-Match) or changed (If-Match)."""


class ConditionalWritesUnsupported(StorageError):
    """The endpoint ignores or rejects conditional writes, so it cannot give mutual exclusion."""


class StorageUnavailable(StorageError):
    """The endpoint did not answer, throttled, or failed on its side: another attempt may pass."""

    transient = True


def describe(operation: str, where: str, code: str | None, kind: str) -> str:
    """The one-line message of a translated failure: operation, URI, what it means, the S3 code."""
    suffix = f" ({code})" if code else ""
    return f"cannot {operation} {where}: {kind}{suffix}"


def translate_s3(error: BaseException, *, operation: str, where: str) -> StorageError | None:
    """The storage error for a botocore failure, or None when `error` is not one of botocore's."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return NoCredentials(describe(operation, where, None, "no credentials found (environment, profile or "
                                      "instance role)"), where=where, operation=operation)
    if isinstance(error, ClientError):
        response = getattr(error, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", "") or "")
        status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", "") or "")
        for codes, cls, kind in ((_NO_BUCKET, BucketNotFound, "the bucket does not exist"),
                                 (_NOT_FOUND, ObjectNotFound, "no such object"),
                                 (_DENIED, AccessDenied, "access denied"),
                                 (_PRECONDITION, PreconditionFailed, "a conditional write failed"),
                                 (_UNSUPPORTED, ConditionalWritesUnsupported, "not supported by the endpoint")):
            if code in codes or (not code and status in codes):
                return cls(describe(operation, where, code or status, kind), where=where, operation=operation,
                           code=code or status)
        if code in TRANSIENT_CODES or status in TRANSIENT_CODES:
            return StorageUnavailable(describe(operation, where, code or status, "the endpoint failed, try again"),
                                      where=where, operation=operation, code=code or status)
        return StorageError(describe(operation, where, code or status, "S3 error"), where=where,
                            operation=operation, code=code or status)
    if isinstance(error, BotoCoreError):
        if _botocore_transient(error):
            return StorageUnavailable(describe(operation, where, None, f"the endpoint is not answering "
                                               f"({type(error).__name__})"), where=where, operation=operation)
        return StorageError(describe(operation, where, None, type(error).__name__), where=where, operation=operation)
    return None


def _botocore_transient(error: BaseException) -> bool:
    from botocore.exceptions import (
        ConnectionClosedError,
        EndpointConnectionError,
        IncompleteReadError,
        ResponseStreamingError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import ReadTimeoutError as BotoReadTimeoutError

    return isinstance(error, EndpointConnectionError | BotoConnectionError | BotoReadTimeoutError
                      | ConnectionClosedError | ResponseStreamingError | IncompleteReadError)


def is_transient(error: BaseException | None) -> bool:
    """True for failures another attempt may not meet: network, throttling, server-side 5xx.

    Knows storage's own errors and, for a streaming read that failed half-way (raised by botocore
    inside the reader), botocore's connection errors.
    """
    if error is None:
        return False
    if isinstance(error, StorageError):
        return error.transient
    try:
        if _botocore_transient(error):
            return True
        translated = translate_s3(error, operation="", where="")
    except ImportError:  # pragma: no cover - boto3 is a dependency
        translated = None
    if translated is not None:
        return translated.transient
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    if isinstance(error, OSError):
        return error.errno in TRANSIENT_ERRNOS
    return False


def is_storage_error(error: BaseException) -> bool:
    """Errors of the storage itself (network, throttling, access denied, a missing object), not of the data."""
    if isinstance(error, StorageError | OSError):
        return True
    try:
        return translate_s3(error, operation="", where="") is not None
    except ImportError:  # pragma: no cover
        return False


#: S3 codes that say the credentials themselves are missing, wrong or expired (not that a prefix is refused)
_BAD_CREDENTIALS = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                              "TokenRefreshRequired", "InvalidClientTokenId"})


def is_credentials_error(error: BaseException) -> bool:
    """True when the process has no usable credentials: none in boto3's chain, or keys the endpoint
    does not accept. Such a failure says nothing about the object read (every read fails the same way);
    a plain access denied on one prefix may be that prefix's policy."""
    if isinstance(error, StorageError):
        return isinstance(error, NoCredentials) or (isinstance(error, AccessDenied) and error.code in _BAD_CREDENTIALS)
    try:
        translated = translate_s3(error, operation="", where="")
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return False
    return translated is not None and is_credentials_error(translated)


def short_reason(error: BaseException) -> str:
    """`ClassName CODE`: what a report may say about a storage failure (never a message that could
    quote keys or record contents)."""
    code = getattr(error, "code", None)
    if code is None:
        code = (getattr(error, "response", None) or {}).get("Error", {}).get("Code")
    return f"{type(error).__name__}{f' {code}' if code else ''}"
