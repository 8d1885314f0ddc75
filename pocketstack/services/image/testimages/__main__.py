import sys

from pocketstack.services.image.testimages import main

sys.exit(main())
