"""The `Store` interface and its two implementations: a local folder and an S3 prefix."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from stat import S_ISREG
from typing import IO, Protocol
from urllib.parse import urlparse

from storage.errors import AccessDenied, BucketNotFound, ObjectNotFound, PreconditionFailed, describe, translate_s3
from storage.files import write_all
from storage.keys import safe_key

#: Encryption at rest for every object written to S3 (`AES256`, or `aws:kms` with a key id).
SSE_ENV = "SCREENING_AUDIT_SSE"
KMS_KEY_ENV = "SCREENING_AUDIT_KMS_KEY_ID"
#: The longest a presigned S3 link can live (Signature Version 4 refuses more than seven days).
MAX_LINK_LIFETIME = timedelta(days=7)


@dataclass(frozen=True)
class ObjectInfo:
    """One object under a store's root; `key` is relative to the root and already checked safe."""

    key: str
    size: int
    last_modified: datetime
    etag: str | None = None
    version_id: str | None = None


class Store(Protocol):
    """What the audit needs from object storage; keys are relative to the store's root."""

    uri: str

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object below `prefix`, recursively, in key order."""
        ...

    def list_dirs(self, prefix: str = "") -> list[str]:
        """The immediate child "folders" of `prefix` (names only, sorted)."""
        ...

    def open(self, key: str) -> IO[bytes]:
        """A streaming binary reader for one object."""
        ...

    def read_bytes(self, key: str) -> bytes: ...

    def head(self, key: str) -> ObjectInfo | None:
        """Metadata of one object, or None when it does not exist."""
        ...

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None: ...

    def write_file(self, key: str, path: Path, content_type: str | None = None) -> None: ...

    def move_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        """Write the file at `path` as `key` and take it: afterwards `path` is gone.

        For a file made only to be stored (a rendered output): a folder store renames it into place when
        it is on the store's filesystem (see `scratch_folder`), so its bytes are written once, not
        copied; an S3 store uploads it, then removes it."""
        ...

    def scratch_folder(self, prefix: str = "") -> AbstractContextManager[Path]:
        """A temporary local folder, removed on exit, for files to be stored with `move_file` under
        `prefix`: in a folder store, inside the folder of `prefix` (so that a move is a rename, and it
        needs no permission beyond that folder's) and never listed; the system's temporary folder
        otherwise."""
        ...

    def remove_scratch(self, prefix: str) -> None:
        """Remove what a killed run left under `prefix`: scratch folders and files it was still writing (a folder
        store's `.<random>.tmp`; nothing on S3, which keeps no unfinished upload in a listing). Only for a prefix
        no live run writes into (one's own under the lease, or a dead run's staging)."""
        ...

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create `key` only if it does not exist (a lock); True when this call created it."""
        ...

    def create_if_absent(self, key: str, data: bytes) -> str | None:
        """Create `key` only if it does not exist; the new object's ETag, or None when it existed."""
        ...

    def replace_if_match(self, key: str, data: bytes, etag: str) -> str | None:
        """Overwrite `key` only if its ETag is still `etag`; the new ETag, or None when the object changed
        or is gone (a conditional write that lost: someone else wrote in between)."""
        ...

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        """The object's content and the ETag of exactly that content (one request, no race between them)."""
        ...

    def delete(self, key: str) -> None: ...

    def copy(self, src_key: str, dst_key: str) -> None: ...

    def exists(self) -> bool:
        """Whether the root itself is there: the local folder, or the S3 bucket (a prefix always "exists")."""
        ...

    def presigned_url(self, key: str, expires: timedelta) -> str:
        """A URL that opens one object in a browser: presigned HTTPS for S3 (valid `expires`), file:// locally."""
        ...


def _rel(prefix: str) -> str:
    prefix = prefix.strip("/")
    return safe_key(prefix) if prefix else ""


def _local_etag(stat: os.stat_result) -> str:
    """A local file's version: every write replaces the file by a rename (a new inode) and sets a new
    modification time, so (inode, mtime in ns, size) changes with every write of the object."""
    return f"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"


#: a file being written beside its object: written whole, then renamed (or linked) into place
_TMP_PREFIX, _TMP_SUFFIX = ".", ".tmp"


def _in_progress(name: str) -> bool:
    return name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX)


#: a folder store's scratch folder (`scratch_folder`): named so that no delivered or published folder is
_SCRATCH_PREFIX = ".screening-audit-scratch-"


def _is_scratch(name: str) -> bool:
    return name.startswith(_SCRATCH_PREFIX) and name.endswith(_TMP_SUFFIX)


class LocalStore:
    """A local folder used exactly like an S3 prefix.

    Conditional writes (`create_if_absent`, `replace_if_match`) are atomic between processes and
    threads: each runs under an exclusive `flock` on the store's root folder (never removed, unlike the
    folders below it) and installs the new content with a rename, so that a reader sees the old or the
    new file, never half of one. The lock is held for a compare and a rename only; plain reads and
    writes never take it.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)
        self._inside = self.uri.rstrip("/") + "/"
        self._folders: dict[str, str] = {}  # folder key -> its real path, checked inside the root

    def _real(self, relative: str, key: str) -> str:
        path = os.path.realpath(os.path.join(self.uri, relative))
        if not path.startswith(self._inside):
            raise ValueError(f"key escapes the store root: {key!r}")
        return path

    def _path(self, key: str) -> Path:
        # A safe key has no "..", "." or absolute part, so only a symbolic link can lead out of the
        # root: realpath follows them all and the result must still be under the root. This runs for
        # every object a night reads (~25,000 at 1,000 sites), so a folder's real path is worked out
        # once; the last part is looked at every time.
        safe = safe_key(key)
        folder, _, name = safe.rpartition("/")
        real_folder = self._folders.get(folder)
        if real_folder is None:
            real_folder = self._real(folder, key) if folder else self.uri
            self._folders[folder] = real_folder
        path = os.path.join(real_folder, name)
        if os.path.islink(path):
            path = self._real(safe, key)
        return Path(path)

    def _folder(self, prefix: str) -> Path:
        """The folder of `prefix` (the root for an empty one)."""
        return self._path(prefix) if _rel(prefix) else self.root

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Regular files under `prefix`, in path order; symbolic links are neither listed nor followed, nor
        is a file still being written (`.<random>.tmp` beside its object), as S3 never lists an upload in
        progress."""
        base = self._folder(prefix)
        if not base.is_dir():
            return
        found: list[tuple[list[str], os.DirEntry[str]]] = []
        folders = [str(base)]
        while folders:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        if not _is_scratch(entry.name):
                            folders.append(entry.path)
                    elif entry.is_file(follow_symlinks=False) and not _in_progress(entry.name):
                        found.append((entry.path[len(self._inside):].split("/"), entry))
        for parts, entry in sorted(found, key=lambda item: item[0]):
            stat = entry.stat(follow_symlinks=False)
            yield ObjectInfo("/".join(parts), stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))

    def list_dirs(self, prefix: str = "") -> list[str]:
        base = self._folder(prefix)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.is_symlink() and not _is_scratch(p.name))

    def open(self, key: str) -> IO[bytes]:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as error:
            raise ObjectNotFound(describe("read", f"{self.uri}/{key}", None, "no such file"),
                                 where=f"{self.uri}/{key}", operation="read") from error

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as handle:
            return handle.read()

    def head(self, key: str) -> ObjectInfo | None:
        try:
            stat = os.stat(self._path(key))
        except FileNotFoundError:
            return None
        if not S_ISREG(stat.st_mode):
            return None
        return ObjectInfo(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC), etag=_local_etag(stat))

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        with self.open(key) as handle:
            stat = os.fstat(handle.fileno())  # the opened file: its content and its version agree
            return handle.read(), _local_etag(stat)

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        path = self._path(key)
        # write then rename, so a reader never sees half a file (nor, in a listing, the file being written)
        os.replace(self._staged(path, data), path)

    def write_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._install_copy(Path(path), target)

    def move_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, target)  # atomic, and no byte copied
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            self._install_copy(Path(path), target)  # another filesystem: copied, as write_file does
            Path(path).unlink()

    def _install_copy(self, source: Path, target: Path) -> None:
        """`source` copied beside `target`, then renamed over it: a reader sees the old or the new file."""
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def scratch_folder(self, prefix: str = "") -> Iterator[Path]:
        """`.screening-audit-scratch-<random>.tmp/` in the folder of `prefix`, so that `move_file` from it
        is a rename on one filesystem; listings never show it nor what is in it."""
        parent = self._folder(prefix)
        parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=parent, prefix=_SCRATCH_PREFIX, suffix=_TMP_SUFFIX))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            self._prune(parent)

    def remove_scratch(self, prefix: str) -> None:
        base = self._folder(prefix)
        if not base.is_dir():
            return
        for folder, names, files in os.walk(base):
            for name in [n for n in names if _is_scratch(n)]:
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
                names.remove(name)
            # a copy or write a kill interrupted: hidden from listings, so nothing else would ever remove it (a user
            # trial found a whole report.xlsx as `.3kfbbh4o.tmp` in a published night)
            for name in [n for n in files if _in_progress(n)]:
                Path(folder, name).unlink(missing_ok=True)
        self._prune(base)

    def _prune(self, folder: Path) -> None:
        """Remove `folder` and the folders above it while they are empty, up to the root (as `delete`)."""
        while str(folder).startswith(self._inside):
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): stop
                break
            folder = folder.parent

    def create_exclusive(self, key: str, data: bytes) -> bool:
        return self.create_if_absent(key, data) is not None

    @contextmanager
    def _conditional(self) -> Iterator[None]:
        """The critical section of a conditional write: an exclusive flock on the root folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _staged(self, path: Path, data: bytes) -> str:
        """`data` written completely to a temporary file beside `path`; its name."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX, delete=False) as tmp:
            try:
                write_all(tmp, data)  # a workbook of megabytes in small pieces (storage.files)
            except BaseException:
                Path(tmp.name).unlink(missing_ok=True)  # a full disk leaves no hidden half file behind
                raise
        return tmp.name

    def create_if_absent(self, key: str, data: bytes) -> str | None:
        path = self._path(key)
        with self._conditional():
            tmp = self._staged(path, data)
            try:
                os.link(tmp, path)  # fails if the object exists; never shows an empty file
            except FileExistsError:
                return None
            finally:
                os.unlink(tmp)
            return _local_etag(os.stat(path))

    def replace_if_match(self, key: str, data: bytes, etag: str) -> str | None:
        path = self._path(key)
        with self._conditional():
            try:
                current = os.stat(path)
            except FileNotFoundError:
                return None
            if _local_etag(current) != etag:
                return None
            tmp = self._staged(path, data)
            os.replace(tmp, path)
            return _local_etag(os.stat(path))

    def delete(self, key: str) -> None:
        """Delete one file, and the folders it leaves empty up to the root: a folder store behaves like
        S3, where a "folder" exists only while an object is under it."""
        path = self._path(key)
        path.unlink(missing_ok=True)
        self._prune(path.parent)

    def copy(self, src_key: str, dst_key: str) -> None:
        target = self._path(dst_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._install_copy(self._path(src_key), target)

    def exists(self) -> bool:
        return self.root.is_dir()

    def presigned_url(self, key: str, expires: timedelta) -> str:
        """The file's `file://` URL: a local folder has no signatures, so `expires` does not apply."""
        return self._path(key).as_uri()


class S3Store:
    """An `s3://bucket/prefix` on AWS or any S3-compatible endpoint (MinIO, moto, Ceph...)."""

    def __init__(self, uri: str, endpoint_url: str | None = None, client: object | None = None) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3:// URI: {uri!r}")
        self.uri = uri.rstrip("/")
        self.bucket = parsed.netloc
        self.prefix = _rel(parsed.path)
        self.client = client or make_s3_client(endpoint_url)

    @contextmanager
    def _translated(self, operation: str, key: str = "") -> Iterator[None]:
        """Raise storage's own error (storage/errors.py) for a botocore failure, naming the object."""
        try:
            yield
        except Exception as error:
            where = f"{self.uri}/{key}" if key else self.uri + "/"
            endpoint = str(getattr(getattr(self.client, "meta", None), "endpoint_url", "") or "")
            if endpoint and "amazonaws.com" not in endpoint:  # a MinIO / moto endpoint: say which one
                where += f" (endpoint {endpoint})"
            translated = translate_s3(error, operation=operation, where=where)
            if translated is None:
                raise
            raise translated from error

    def _full(self, key: str) -> str:
        key = safe_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def _list_prefix(self, prefix: str) -> str:
        rel = _rel(prefix)
        full = "/".join(p for p in (self.prefix, rel) if p)
        return f"{full}/" if full else ""

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")  # type: ignore[attr-defined]
        with self._translated("list", prefix):  # pages are fetched while iterating: the whole loop
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._list_prefix(prefix)):
                for obj in page.get("Contents", []):
                    yield ObjectInfo(
                        key=safe_key(self._strip(obj["Key"])),
                        size=obj["Size"],
                        last_modified=obj["LastModified"],
                        etag=obj.get("ETag", "").strip('"') or None,
                    )

    def list_dirs(self, prefix: str = "") -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")  # type: ignore[attr-defined]
        start = self._list_prefix(prefix)
        names: list[str] = []
        with self._translated("list", prefix):
            pages = list(paginator.paginate(Bucket=self.bucket, Prefix=start, Delimiter="/"))
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(start) :].strip("/")
                safe_key(name)
                names.append(name)
        return sorted(names)

    def open(self, key: str) -> IO[bytes]:
        with self._translated("read", key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._full(key))  # type: ignore[attr-defined]
        return response["Body"]

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as body:
            return body.read()

    def head(self, key: str) -> ObjectInfo | None:
        try:
            with self._translated("read", key):
                meta = self.client.head_object(Bucket=self.bucket, Key=self._full(key))  # type: ignore[attr-defined]
        except ObjectNotFound:
            return None
        return ObjectInfo(
            key=key,
            size=meta["ContentLength"],
            last_modified=meta["LastModified"],
            etag=meta.get("ETag", "").strip('"') or None,
            version_id=meta.get("VersionId"),
        )

    def _put_args(self, content_type: str | None) -> dict[str, str]:
        args = encryption_args()
        if content_type:
            args["ContentType"] = content_type
        return args

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        with self._translated("write", key):
            self.client.put_object(  # type: ignore[attr-defined]
                Bucket=self.bucket, Key=self._full(key), Body=data, **self._put_args(content_type)
            )

    def write_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        from boto3.s3.transfer import TransferConfig

        with self._translated("write", key):
            self.client.upload_file(  # type: ignore[attr-defined]
                str(path), self.bucket, self._full(key), ExtraArgs=self._put_args(content_type),
                Config=TransferConfig(max_concurrency=UPLOAD_PARTS),
            )

    def move_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        """Uploaded, then removed: one PUT from the file when small (a site's query CSV; `upload_file` sets
        up a transfer manager for each call), a multipart upload when large."""
        path = Path(path)
        if path.stat().st_size <= SINGLE_PUT_BYTES:
            with self._translated("write", key), path.open("rb") as body:
                self.client.put_object(  # type: ignore[attr-defined]
                    Bucket=self.bucket, Key=self._full(key), Body=body, **self._put_args(content_type))
        else:
            self.write_file(key, path, content_type)
        path.unlink()

    @contextmanager
    def scratch_folder(self, prefix: str = "") -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="screening-audit-") as folder:
            yield Path(folder)

    def remove_scratch(self, prefix: str) -> None:
        """Nothing: an S3 store's scratch folders are on the machine that made them, in its temporary folder."""

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        with self._translated("read", key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._full(key))  # type: ignore[attr-defined]
            with response["Body"] as body:
                return body.read(), response["ETag"].strip('"')

    def create_exclusive(self, key: str, data: bytes) -> bool:
        return self.create_if_absent(key, data) is not None

    def create_if_absent(self, key: str, data: bytes) -> str | None:
        try:
            with self._translated("create", key):
                response = self.client.put_object(  # type: ignore[attr-defined]
                    Bucket=self.bucket, Key=self._full(key), Body=data, IfNoneMatch="*", **encryption_args()
                )
        except PreconditionFailed:
            return None
        return str(response["ETag"]).strip('"')

    def replace_if_match(self, key: str, data: bytes, etag: str) -> str | None:
        # S3 answers 412 when the ETag differs and 404 when the object is gone: both mean "changed"
        try:
            with self._translated("replace", key):
                response = self.client.put_object(  # type: ignore[attr-defined]
                    Bucket=self.bucket, Key=self._full(key), Body=data, IfMatch=f'"{etag}"', **encryption_args()
                )
        except (PreconditionFailed, ObjectNotFound):
            return None
        return str(response["ETag"]).strip('"')

    def delete(self, key: str) -> None:
        with self._translated("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._full(key))  # type: ignore[attr-defined]

    def copy(self, src_key: str, dst_key: str) -> None:
        with self._translated("copy to", dst_key):
            self.client.copy_object(  # type: ignore[attr-defined]
                Bucket=self.bucket,
                Key=self._full(dst_key),
                CopySource={"Bucket": self.bucket, "Key": self._full(src_key)},
                **encryption_args(),
            )

    def exists(self) -> bool:
        """Whether the bucket exists: HeadBucket answers 404 for a missing bucket, 403 for one that exists
        but that these credentials may not inspect (a least-privilege role, deploy/iam-policy.json, may only
        list its study's prefix): that one exists."""
        try:
            with self._translated("find the bucket of"):
                self.client.head_bucket(Bucket=self.bucket)  # type: ignore[attr-defined]
        except (BucketNotFound, ObjectNotFound):  # HEAD has no error body: a missing bucket is a bare 404
            return False
        except AccessDenied:
            return True
        return True

    def presigned_url(self, key: str, expires: timedelta) -> str:
        """A presigned GET URL (HTTPS on AWS): whoever holds it can read the object until it expires.

        Signed locally with the credentials in use, without a request; a role's temporary credentials
        end the link's life when they expire, whatever `expires` says.
        """
        if not timedelta(0) < expires <= MAX_LINK_LIFETIME:
            raise ValueError(f"a presigned link lives more than 0 s and at most {MAX_LINK_LIFETIME.days} days")
        with self._translated("sign a link to", key):
            return self.client.generate_presigned_url(  # type: ignore[attr-defined]
                "get_object", Params={"Bucket": self.bucket, "Key": self._full(key)},
                ExpiresIn=int(expires.total_seconds()))


def encryption_args() -> dict[str, str]:
    """Server-side encryption for every write: AES256 unless a KMS key is configured."""
    kms_key = os.environ.get(KMS_KEY_ENV)
    if kms_key:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key}
    mode = os.environ.get(SSE_ENV, "AES256")
    return {"ServerSideEncryption": mode} if mode and mode.lower() != "none" else {}


#: requests a caller may run at once on one store (threads sharing its client): promotion's copies
#: (publication.promotion.PARALLEL_REQUESTS takes this value), publication's writer threads times the
#: parts of each upload (reporting.publish.PUBLISH_THREADS x UPLOAD_PARTS), the generator's uploads (8)
PARALLEL_REQUESTS = 16
#: parts of one `write_file` upload in flight at once (boto3's default, 10 per upload, times the 4
#: publication threads would be 40 connections to one client)
UPLOAD_PARTS = 4
#: a file up to this size is stored with one PUT (boto3's own multipart threshold, 8 MiB)
SINGLE_PUT_BYTES = 8 * 1024 * 1024
#: connections one client keeps open, per endpoint. Every thread that uses a client at the same moment
#: takes a connection from its pool; boto3's default pool (10) is smaller than promotion's 16 copies, so
#: urllib3 opened extra connections and logged `Connection pool is full, discarding connection` for each
#: one it could not keep (and paid a new TLS handshake for the next request). PARALLEL_REQUESTS, plus
#: the two threads that use the same store beside them (a publication lease's heartbeat, the Data Docs
#: writer), so that none is ever discarded.
POOL_CONNECTIONS = PARALLEL_REQUESTS + 2


def make_s3_client(endpoint_url: str | None = None) -> object:
    """A boto3 S3 client with standard retries and timeouts, a connection for each of the threads that
    may use it at once (POOL_CONNECTIONS); credentials from boto3's own chain.

    `endpoint_url` (or the standard `AWS_ENDPOINT_URL`, which boto3 reads itself) points at any
    S3-compatible endpoint.
    """
    import boto3
    from botocore.config import Config

    # Signature Version 4 for presigned links too (boto3 may sign those with the legacy version 2, which
    # puts the access key id in the URL and is refused for SSE-KMS objects and in newer regions)
    config = Config(
        signature_version="s3v4",
        retries={"mode": "standard", "max_attempts": int(os.environ.get("SCREENING_AUDIT_S3_ATTEMPTS", "5"))},
        connect_timeout=float(os.environ.get("SCREENING_AUDIT_S3_CONNECT_TIMEOUT", "10")),
        read_timeout=float(os.environ.get("SCREENING_AUDIT_S3_READ_TIMEOUT", "60")),
        s3={"addressing_style": "path"} if endpoint_url or os.environ.get("AWS_ENDPOINT_URL") else None,
        max_pool_connections=POOL_CONNECTIONS,
    )
    return boto3.client("s3", endpoint_url=endpoint_url or None, config=config)


def open_store(uri: str, endpoint_url: str | None = None) -> Store:
    """A store for `s3://bucket/prefix` or a local folder path (or `file://` URI)."""
    if uri.startswith("s3://"):
        return S3Store(uri, endpoint_url=endpoint_url)
    if uri.startswith("file://"):
        uri = urlparse(uri).path
    return LocalStore(uri)
