"""Fixtures of the end-to-end tests."""

from tests.e2e.campaign_process import reference  # noqa: F401 - one run for every module
