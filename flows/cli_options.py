"""Command-line options shared by `screening-audit` and its `review` sub-commands: one wording each."""

from __future__ import annotations

from typing import Annotated

import typer

Landing = Annotated[str, typer.Option(help="Landing root: s3://bucket/prefix or a local folder.")]
Reports = Annotated[str, typer.Option(help="Reports root: s3://bucket/prefix or a local folder.")]
EndpointUrl = Annotated[
    str | None,
    typer.Option(help="S3-compatible endpoint (MinIO, moto...); AWS_ENDPOINT_URL works too.",
                 envvar="AWS_ENDPOINT_URL"),
]
