"""The researcher view: a read-only reader of the published zones.

``FeatureStore`` is the researchers' entry point (``from flowehr_pipelines.researcher
import FeatureStore``); the modules beside it hold its reader, spines and SQL export.
"""

from flowehr_pipelines.config import ReaderSettings
from flowehr_pipelines.researcher.reader import FeatureTableInfo, PublishedLake
from flowehr_pipelines.researcher.store import FeatureStore

__all__ = ["FeatureStore", "FeatureTableInfo", "PublishedLake", "ReaderSettings"]
