"""Ingestion: site deliveries in object storage -> all-text SDTM domain frames (DTS sections 1-2).

`list_sites` finds the site folders of a study (refusing a landing root that cannot be one),
`ingest_site` reads one site's newest complete delivery (falling back when it is rejected),
`ingest_sites` does the same for many sites with the rows of all their files checked at once
(`read_site` + `finish_sites` when the caller wants to retry each site's storage I/O on its own),
`combine_sites` puts the sites of a study together.
Values stay text exactly as delivered; typed stages convert them later. Every problem becomes a
finding (contracts.FINDINGS) and every row read is accounted for in `InputObject`.
"""

from ingestion.batch import finish_sites, ingest_site, ingest_sites
from ingestion.codes import Code, DeliveryStatus
from ingestion.combine import combine_sites
from ingestion.landing import LandingError, list_sites
from ingestion.options import DEFAULT_OPTIONS, IngestOptions
from ingestion.site import SiteRead, not_audited, read_site

__all__ = [
    "DEFAULT_OPTIONS",
    "Code",
    "DeliveryStatus",
    "IngestOptions",
    "LandingError",
    "SiteRead",
    "combine_sites",
    "finish_sites",
    "ingest_site",
    "ingest_sites",
    "list_sites",
    "not_audited",
    "read_site",
]
