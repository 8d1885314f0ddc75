"""Imports every service's models so ``Base.metadata`` is complete (Alembic, tests).

One line per service slice; a new slice adds its line here.
"""

from pocketstack.db.base import Base
from pocketstack.services.identity import models as identity_models  # noqa: F401
from pocketstack.services.image import models as image_models  # noqa: F401
from pocketstack.services.object_store import models as object_store_models  # noqa: F401
from pocketstack.services.volume import models as volume_models  # noqa: F401
from pocketstack.services.network import models as network_models  # noqa: F401,E402
from pocketstack.services.orchestration import models as orchestration_models  # noqa: F401,E402
from pocketstack.services.compute import models as compute_models  # noqa: F401,E402
from pocketstack.services.compute import console_tokens as compute_console_tokens  # noqa: F401,E402

metadata = Base.metadata
