"""pocketstack: OpenStack's IaaS APIs in one Python package."""

__version__ = "0.1.0"
