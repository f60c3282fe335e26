"""One feature story for the package: test_features and the leakage test share it."""

from __future__ import annotations

import pytest

from tests.assets.features.feature_story import Story, build_story


@pytest.fixture(scope="package")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    return build_story(tmp_path_factory)
