"""The review ledger in the reports store: append-only objects of chained entries, verified on every read.

    <STUDYID>/_review/ledger/<SEQ>.json           entries SEQ.. of one command, workbook or night
    <STUDYID>/_review/checkpoint/<SEQ>-<sha>.parquet   the entries up to SEQ as last verified (a cache)

One object holds the entries one writer added at once (a CLI action, the rows of one workbook, one
night's automatic reopenings), named by the sequence number of its first entry and created with a
conditional write (`Store.create_exclusive`: If-None-Match on S3, O_EXCL on a folder). Two writers
that read the same end of the ledger race for the same name: one wins, the other re-reads the ledger,
checks its actions again against the new states, and tries the next number. Nothing is ever
overwritten or deleted, so an object's entries are all written or none (a workbook is never half
applied).

Reading verifies everything it returns: objects follow each other without gap or overlap, each entry's
hash matches its content, each entry names the hash of the one before it, each belongs to the study,
and each starts from the state its finding's previous entry left. A problem is named (the entry, the
object) and the ledger is not used: nothing is guessed around it. So that a night need not re-read
every entry, the nightly run keeps a checkpoint: the verified entries with the size and ETag (or
modification time) of the object that held each. The next read lists the ledger, takes unchanged
objects' entries from the checkpoint, and reads only new objects and objects whose size or ETag changed
(their entries must hash as the checkpoint recorded). The checkpoint's name carries the SHA-256 of its
bytes; a checkpoint that does not match it is ignored (every object is read again), never trusted.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from core.identity import fingerprint_text
from review.entries import ENTRY_SCHEMA, FORMAT, HASHED, empty_entries, entry_hash_expr
from storage import ObjectInfo, ObjectNotFound, Store, join_key

REVIEW_FOLDER = "_review"
_OBJECT = re.compile(r"(\d{10})\.json")
_CHECKPOINT = re.compile(r"(\d{10})-([0-9a-f]{64})\.parquet")
_OBJECTS = {"KEY": pl.String, "FIRST_SEQ": pl.Int64, "STORED": pl.String}
#: problems named in full before "and N more"
MAX_PROBLEMS = 20


class LedgerIntegrityError(RuntimeError):
    """The ledger fails verification: the problems name the entries and objects concerned."""

    def __init__(self, study: str, problems: list[str]) -> None:
        shown = problems[:3]
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(f"the review ledger of {study} fails verification: " + "; ".join(shown) + more)
        self.problems = problems


def review_key(study: str, *parts: str) -> str:
    return join_key(study, REVIEW_FOLDER, *parts)


def object_key(study: str, first_seq: int) -> str:
    return review_key(study, "ledger", f"{first_seq:010d}.json")


def _stored(info: ObjectInfo) -> str:
    """What storage says about an object's bytes without reading them: size and ETag (or mtime)."""
    return f"{info.size}:{info.etag}" if info.etag else f"{info.size}:{info.last_modified.isoformat()}"


@dataclass(frozen=True)
class LedgerView:
    """The ledger as read: its entries in order (verified unless `problems`), and its objects."""

    study: str
    entries: pl.DataFrame  # ENTRY_SCHEMA, sorted by SEQ
    objects: pl.DataFrame  # KEY, FIRST_SEQ, STORED
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checkpoint: str | None = None  # key of the checkpoint used
    from_checkpoint: int = 0  # entries taken from it

    @property
    def head_seq(self) -> int:
        return int(self.entries["SEQ"].max() or 0) if self.entries.height else 0

    @property
    def head_hash(self) -> str | None:
        return self.entries["ENTRY_HASH"][-1] if self.entries.height else None

    def require_intact(self) -> LedgerView:
        if self.problems:
            raise LedgerIntegrityError(self.study, self.problems)
        return self


def object_body(study: str, entries: list[dict[str, Any]]) -> bytes:
    return (json.dumps({"format": FORMAT, "study": study, "entries": entries}, sort_keys=True,
                       ensure_ascii=False) + "\n").encode("utf-8")


def _parse_object(data: bytes, key: str, study: str) -> tuple[list[dict[str, Any]], str | None]:
    """The entries of one ledger object, or a problem naming it."""
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return [], f"ledger object {key} is not readable JSON (it was changed or damaged)"
    if not isinstance(body, dict) or body.get("format") != FORMAT or not isinstance(body.get("entries"), list) \
            or set(body) != {"format", "study", "entries"}:
        return [], f"ledger object {key} is not a ledger object of this software"
    if body["study"] != study:
        return [], f"ledger object {key} belongs to study {body['study']!r}, not {study}"
    entries = []
    for entry in body["entries"]:
        if not isinstance(entry, dict) or set(entry) != set(ENTRY_SCHEMA) \
                or not isinstance(entry.get("SEQ"), int) \
                or not all(entry[name] is None or isinstance(entry[name], str) for name in ENTRY_SCHEMA
                           if name != "SEQ"):
            return [], f"ledger object {key} holds a malformed entry (fields changed)"
        entries.append(entry)
    if not entries:
        return [], f"ledger object {key} holds no entry"
    return entries, None


def _listing(store: Store, study: str) -> tuple[pl.DataFrame, list[str]]:
    """The ledger's objects (KEY, FIRST_SEQ, STORED) and the objects that have no business there."""
    prefix = review_key(study, "ledger") + "/"
    rows, stray = [], []
    for info in store.list(prefix):
        name = info.key[len(prefix):]
        match = _OBJECT.fullmatch(name)
        if match and info.key.startswith(prefix):
            rows.append((info.key, int(match.group(1)), _stored(info)))
        else:
            stray.append(f"{info.key} is not a ledger object (unexpected name or folder)")
    frame = pl.DataFrame(rows, schema=_OBJECTS, orient="row") if rows else pl.DataFrame(schema=_OBJECTS)
    return frame.sort("FIRST_SEQ"), stray


def _latest_checkpoint(store: Store, study: str) -> tuple[pl.DataFrame | None, str | None, list[str]]:
    """The newest checkpoint whose bytes match the SHA-256 in its name, as a frame, and its key."""
    notes: list[str] = []
    found = []
    for info in store.list(review_key(study, "checkpoint")):
        match = _CHECKPOINT.fullmatch(info.key.rsplit("/", 1)[-1])
        if match:
            found.append((int(match.group(1)), match.group(2), info.key))
    for _seq, digest, key in sorted(found, reverse=True):
        try:
            data = store.read_bytes(key)
        except ObjectNotFound:
            continue
        if hashlib.sha256(data).hexdigest() != digest:
            notes.append(f"checkpoint {key} does not match its digest: ignored, every ledger object read again")
            continue
        try:
            frame = pl.read_parquet(io.BytesIO(data))
        except (pl.exceptions.PolarsError, OSError):
            notes.append(f"checkpoint {key} is not readable: ignored, every ledger object read again")
            continue
        expected = {**ENTRY_SCHEMA, **_OBJECTS}
        if dict(frame.schema) != expected:
            notes.append(f"checkpoint {key} has other columns: ignored, every ledger object read again")
            continue
        return frame.drop("FIRST_SEQ"), key, notes
    return None, None, notes


def _read_objects(store: Store, study: str, keys: list[str]) -> tuple[pl.DataFrame, list[str]]:
    """The entries of the given objects (with KEY), and the problems of those that are not ledger objects."""
    entries, problems = [], []
    for key in keys:
        try:
            data = store.read_bytes(key)
        except ObjectNotFound:
            problems.append(f"ledger object {key} vanished while the ledger was read")
            continue
        found, problem = _parse_object(data, key, study)
        if problem:
            problems.append(problem)
        entries.extend({**entry, "KEY": key} for entry in found)
    schema = {**ENTRY_SCHEMA, "KEY": pl.String}
    return (pl.DataFrame(entries, schema=schema) if entries else pl.DataFrame(schema=schema)), problems


def _changed_entries(read: pl.DataFrame, checkpoint: pl.DataFrame) -> list[str]:
    """Entries re-read from an object whose storage metadata changed, and whose content did too."""
    now = read.select("SEQ", "KEY", entry_hash_expr().alias("_NOW"))
    then = (checkpoint.join(read.select("KEY").unique(), on="KEY", how="semi")
            .select("SEQ", pl.col("ENTRY_HASH").alias("_THEN"), pl.col("KEY").alias("_WAS")))
    both = now.join(then, on="SEQ", how="right")
    changed = both.filter(pl.col("_NOW").is_null() | (pl.col("_NOW") != pl.col("_THEN")))
    return [f"entry {seq} in {was} was changed or removed after it was verified (the object no longer holds "
            f"the content recorded then)" for seq, was in changed.select("SEQ", "_WAS").head(MAX_PROBLEMS).iter_rows()]


def verify(entries: pl.DataFrame, objects: pl.DataFrame, study: str, initial: str,
           recompute: pl.Expr | bool = True) -> list[str]:
    """Every problem of a ledger's entries (with KEY) and objects, named; [] when it holds.

    `recompute`: which entries' hashes to recompute (a boolean expression); entries from a verified
    checkpoint are not hashed again.
    """
    problems: list[str] = []
    expected = objects.sort("FIRST_SEQ").join(
        entries.group_by("KEY").agg(pl.len().alias("_N"), pl.col("SEQ").min().alias("_MIN")), on="KEY", how="left",
    ).with_columns(pl.col("_N").fill_null(0))
    starts = expected.with_columns((pl.col("FIRST_SEQ") + pl.col("_N")).shift(1).fill_null(1).alias("_EXPECT"))
    for key, first, expect in starts.filter(pl.col("FIRST_SEQ") != pl.col("_EXPECT")).select(
            "KEY", "FIRST_SEQ", "_EXPECT").iter_rows():
        if first > expect:
            problems.append(f"entries {expect} to {first - 1} are missing: the ledger object that held them was "
                            f"removed (the next object is {key})")
        else:
            problems.append(f"ledger object {key} overlaps the entries before it (entry {first} was written twice)")
    for key, first, low in expected.filter(pl.col("_MIN").is_not_null() & (pl.col("_MIN") != pl.col("FIRST_SEQ"))
                                           ).select("KEY", "FIRST_SEQ", "_MIN").iter_rows():
        problems.append(f"ledger object {key} is named for entry {first} but starts with entry {low}")
    flag = recompute if isinstance(recompute, pl.Expr) else pl.lit(recompute)
    ordered = entries.sort("SEQ", "KEY").with_row_index("_AT").with_columns(flag.alias("_FLAG"))
    # hashes recomputed for the flagged rows only: a checkpoint's are verified by its digest (read_ledger)
    fresh = ordered.filter(pl.col("_FLAG")).select("_AT", entry_hash_expr().alias("_HASH"))
    checks = ordered.join(fresh, on="_AT", how="left", maintain_order="left").with_columns(
        pl.col("_HASH").fill_null(pl.col("ENTRY_HASH")),
        pl.col("ENTRY_HASH").shift(1).alias("_PREV"),
        pl.col("SEQ").shift(1).alias("_PREV_SEQ"),
        pl.col("TO_STATE").shift(1).over("FINDING_ID").fill_null(initial).alias("_WAS"),  # rows in SEQ order
    )
    first = pl.col("_PREV_SEQ").is_null()
    named = [  # (what is wrong, how it reads); a missing field never equals a present one
        (pl.col("_HASH").ne_missing(pl.col("ENTRY_HASH")),
         "entry {SEQ} in {KEY} was changed: its content does not match its hash"),
        (pl.col("SEQ") == pl.col("_PREV_SEQ"), "entry {SEQ} appears twice ({KEY})"),
        (~first & (pl.col("PREV_HASH").fill_null("") != pl.col("_PREV").fill_null("")),
         "entry {SEQ} in {KEY} does not follow entry {_PREV_SEQ}: the entry before it was changed or replaced"),
        (first & pl.col("PREV_HASH").is_not_null(),
         "entry {SEQ} in {KEY} names an earlier entry that the ledger does not hold"),
        (pl.col("STUDYID").ne_missing(pl.lit(study)), "entry {SEQ} in {KEY} belongs to study {STUDYID}, not " + study),
        (pl.col("FROM_STATE").ne_missing(pl.col("_WAS")),
         "entry {SEQ} in {KEY} moves {FINDING_ID} from {FROM_STATE}, but its previous entry left it {_WAS}"),
    ]
    for condition, message in named:
        for row in checks.filter(condition.fill_null(False)).head(MAX_PROBLEMS).iter_rows(named=True):
            problems.append(message.format(**row))
    return problems


def read_ledger(store: Store, study: str, initial: str) -> LedgerView:
    """The whole ledger of `study`, verified (see the module docstring); problems are listed, not raised."""
    objects, stray = _listing(store, study)
    checkpoint, checkpoint_key, notes = _latest_checkpoint(store, study)
    problems = list(stray)
    reused = pl.DataFrame(schema={**ENTRY_SCHEMA, "KEY": pl.String})
    to_read = objects
    if checkpoint is not None:
        same = checkpoint.join(objects.select("KEY", pl.col("STORED").alias("_NOW")), on="KEY", how="left")
        for key, first, last in (same.filter(pl.col("_NOW").is_null()).group_by("KEY")
                                 .agg(pl.col("SEQ").min().alias("_FIRST"), pl.col("SEQ").max().alias("_LAST"))
                                 .sort("_FIRST").iter_rows()):
            problems.append(f"ledger object {key} (entries {first} to {last}) was removed")
        reused = same.filter(pl.col("_NOW") == pl.col("STORED")).select(*ENTRY_SCHEMA, "KEY")
        to_read = objects.join(reused.select("KEY").unique(), on="KEY", how="anti")
    read, unreadable = _read_objects(store, study, to_read["KEY"].to_list())
    problems += unreadable
    if checkpoint is not None:
        problems += _changed_entries(read, checkpoint)
    entries = pl.concat([reused.with_columns(pl.lit(False).alias("_RECOMPUTE")),
                         read.with_columns(pl.lit(True).alias("_RECOMPUTE"))], how="vertical").sort("SEQ")
    problems += verify(entries, objects, study, initial, recompute=pl.col("_RECOMPUTE"))
    return LedgerView(study=study, entries=entries.select(*ENTRY_SCHEMA, "KEY").sort("SEQ"), objects=objects,
                      problems=_unique(problems), notes=notes, checkpoint=checkpoint_key,
                      from_checkpoint=reused.height)


def _unique(problems: list[str]) -> list[str]:
    return list(dict.fromkeys(problems))


def append_object(store: Store, study: str, entries: list[dict[str, Any]]) -> str | None:
    """Create the object of `entries` (numbered from its first SEQ); its key, or None when another
    writer took that number first (re-read the ledger and try again)."""
    key = object_key(study, int(entries[0]["SEQ"]))
    return key if store.create_exclusive(key, object_body(study, entries)) else None


def write_checkpoint(store: Store, view: LedgerView) -> str | None:
    """Save the verified ledger as the checkpoint the next read starts from; None when there is nothing new.

    Only a verified ledger is saved. Older checkpoints are removed (they are caches, not the ledger).
    """
    if view.problems or view.entries.height == 0:
        return None
    if view.checkpoint is not None and view.from_checkpoint == view.entries.height:
        return None  # nothing read beyond it: it is still the ledger as verified
    frame = (view.entries.join(view.objects.select("KEY", "FIRST_SEQ", "STORED"), on="KEY", how="left")
             .select(*ENTRY_SCHEMA, *_OBJECTS).sort("SEQ"))
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", compression_level=3, statistics=False)
    data = buffer.getvalue()
    key = review_key(view.study, "checkpoint", f"{view.head_seq:010d}-{hashlib.sha256(data).hexdigest()}.parquet")
    if key == view.checkpoint:
        return None
    store.write_bytes(key, data, "application/vnd.apache.parquet")
    for info in list(store.list(review_key(view.study, "checkpoint"))):
        if info.key != key:
            store.delete(info.key)
    return key


def entry_digest(entry: dict[str, Any]) -> str:
    """ENTRY_HASH of one entry (as `entries.chained` computes it)."""
    return fingerprint_text(*(entry.get(name) for name in HASHED))


__all__ = ["REVIEW_FOLDER", "LedgerIntegrityError", "LedgerView", "append_object", "empty_entries", "entry_digest",
           "object_key", "read_ledger", "review_key", "verify", "write_checkpoint"]
